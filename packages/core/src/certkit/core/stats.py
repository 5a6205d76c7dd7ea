"""Certificate statistics, vectorised and computed in the compiled core.

The confidence bounds and quantiles behind randomized-smoothing certificates (Cohen,
Rosenfeld & Kolter 2019, arXiv:1902.02918): the Clopper-Pearson interval (Clopper & Pearson
1934), the normal cdf and quantile, the two-sided exact binomial test used to abstain in
``PREDICT``, and the certified L2 radius ``sigma * Phi^{-1}(p_lower)``.

Everything runs in C++ (``cpp/src/stats``) over numpy arrays, with OpenMP threads and the
GIL released. Inputs broadcast like numpy; any array-like is accepted and copied to a
C-contiguous int64/float64 array when it is not one already (non-contiguous views are
copied). Scalars give 0-d arrays.

Accuracy (tested against scipy and mpmath in ``packages/core/tests/test_stats*.py``):

* ``clopper_pearson``: relative error <= 1e-10 for every 0 <= k <= n <= 1e7 and
  1e-10 <= alpha < 1 (measured ~1e-16 against a 40-digit mpmath reference; scipy's
  ``beta.ppf`` itself is off by up to ~1.5e-10 at n = 1e7, and by O(1) at k = 1000,
  n = 1e9). n is limited to 2**48 (~2.8e14); accuracy is checked up to there. The regularised incomplete beta is
  the positive continued fraction of Didonato & Morris (1992) with a prefactor expanded about
  the mean, and the quantile is found by safeguarded Halley steps on the log of the smaller
  tail. Bounds are exact closed forms where they exist: lower = 0 at k = 0 and
  ``alpha ** (1 / n)`` at k = n; upper = 1 at k = n and ``-expm1(log(alpha) / n)`` at k = 0;
  ``-expm1(log1p(-alpha) / n)`` (lower, k = 1) and ``exp(log1p(-alpha) / n)`` (upper,
  k = n - 1).
* ``norm_cdf`` / ``norm_ppf``: ~1e-15 relative, tails included (p down to 1e-300).
* ``binom_test_two_sided``: scipy's ``binomtest(k, n, p).pvalue`` rule ("minlike", relative tie
  tolerance 1e-7), p-values to ~1e-12 relative.

Repeated ``(k, n)`` pairs are solved once (the realistic certify workload: one n and one
alpha for a whole run), so a batch of 10^6 pairs with n = 10^5 costs at most 10^5 + 1 solves.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from certkit.core._ext import core_ext
from certkit.core.validation import (
    as_float_array,
    as_int_array,
    check_alpha,
    check_finite_scalar,
    check_sigma,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_SIDES = {"lower": 0, "upper": 1, "two-sided": 2}
_MAX_N = 2**48  # counts become float64 in the kernels (k + 1 + n - k exact); tested up to here


def _ints(value: Any, name: str) -> IntArray:
    """as_int_array, keeping 0-d inputs 0-d."""
    return as_int_array(value, name).reshape(np.shape(value))


def _floats(value: Any, name: str, *, finite: bool = True) -> FloatArray:
    """as_float_array, keeping 0-d inputs 0-d."""
    return as_float_array(value, name, finite=finite).reshape(np.shape(value))


def _counts(k: Any, n: Any) -> tuple[IntArray, IntArray, tuple[int, ...]]:
    """Validated (k, n) as C-contiguous int64: k with the broadcast shape, n of size 1 (shared)
    or with the broadcast shape. Raises ValueError/TypeError naming the argument."""
    k_arr = _ints(k, "k")
    n_arr = _ints(n, "n")
    try:
        shape = np.broadcast_shapes(k_arr.shape, n_arr.shape)
    except ValueError:
        raise ValueError(f"k, n: shapes {k_arr.shape} and {n_arr.shape} do not broadcast") from None
    if n_arr.size and n_arr.min() < 1:
        raise ValueError(f"n: expected n >= 1, got {int(n_arr.min())}")
    if n_arr.size and n_arr.max() > _MAX_N:
        raise ValueError(f"n: expected n <= 2**48, got {int(n_arr.max())}")
    if k_arr.size and k_arr.min() < 0:
        raise ValueError(f"k: expected non-negative counts, got {int(k_arr.min())}")
    if n_arr.size == 1:
        n_flat = n_arr.reshape(1)
        if k_arr.size and k_arr.max() > n_flat[0]:
            raise ValueError(
                f"k: expected k <= n, got k = {int(k_arr.max())} > n = {int(n_flat[0])}"
            )
        k_b = np.asarray(np.broadcast_to(k_arr, shape), order="C")
        return k_b, n_flat, shape
    k_b = np.asarray(np.broadcast_to(k_arr, shape), order="C")
    n_b = np.asarray(np.broadcast_to(n_arr, shape), order="C")
    if k_b.size and np.any(k_b > n_b):
        i = int(np.argmax(k_b > n_b))
        raise ValueError(f"k: expected k <= n, got k = {int(k_b.flat[i])} > n = {int(n_b.flat[i])}")
    return k_b, n_b, shape


def clopper_pearson(k: Any, n: Any, alpha: float, side: str = "lower") -> FloatArray:
    """Exact (Clopper-Pearson) confidence bound on a binomial proportion.

    k: successes, n: trials (integer arrays that broadcast, 0 <= k <= n, n >= 1).
    alpha: significance level in (0, 1). side: ``"lower"`` (P[p >= bound] >= 1 - alpha),
    ``"upper"`` (P[p <= bound] >= 1 - alpha) or ``"two-sided"`` (alpha / 2 per side).

    Returns float64 of the broadcast shape (...,), or (..., 2) ``[lower, upper]`` for
    two-sided. Guarantee: for every true p, P_k[bound(k) <= p] >= 1 - alpha (lower side).
    """
    if not isinstance(side, str) or side not in _SIDES:
        raise ValueError(f"side: expected 'lower', 'upper' or 'two-sided', got {side!r}")
    alpha = check_alpha(alpha)
    k_b, n_b, _ = _counts(k, n)
    return core_ext.stats.clopper_pearson(k_b, n_b, alpha, _SIDES[side])  # type: ignore[no-any-return]


def norm_ppf(p: Any) -> FloatArray:
    """Standard normal quantile Phi^{-1}(p), elementwise. p in [0, 1] (0 -> -inf, 1 -> +inf);
    NaN or values outside [0, 1] raise ValueError. Returns float64 of p's shape."""
    arr = _floats(p, "p")
    if arr.size and (arr.min() < 0.0 or arr.max() > 1.0):
        raise ValueError("p: expected probabilities in [0, 1]")
    return core_ext.stats.norm_ppf(arr)  # type: ignore[no-any-return]


def norm_cdf(x: Any) -> FloatArray:
    """Standard normal cdf Phi(x) = erfc(-x / sqrt 2) / 2, elementwise (+-inf allowed, NaN
    rejected). Returns float64 of x's shape."""
    return core_ext.stats.norm_cdf(_floats(x, "x", finite=False))  # type: ignore[no-any-return]


def binom_test_two_sided(k: Any, n: Any, p: float = 0.5) -> FloatArray:
    """Two-sided exact binomial test p-value of H0: success probability = p.

    k, n: integer arrays that broadcast (0 <= k <= n, n >= 1); p in [0, 1]. Same rule and value
    as ``scipy.stats.binomtest(k, n, p).pvalue``: the probability of all outcomes no more likely
    than k (relative tolerance 1e-7). Returns float64 of the broadcast shape.
    """
    pf = check_finite_scalar(p, "p")
    if not 0.0 <= pf <= 1.0:
        raise ValueError(f"p: expected a value in [0, 1], got {p!r}")
    k_b, n_b, _ = _counts(k, n)
    return core_ext.stats.binom_test_two_sided(k_b, n_b, pf)  # type: ignore[no-any-return]


def certified_radius(p_lower: Any, sigma: float) -> FloatArray:
    """Certified L2 radius of Gaussian randomized smoothing (Cohen et al. 2019, Thm. 1):
    ``sigma * Phi^{-1}(p_lower)`` where ``p_lower > 1/2``, else 0 (abstain).

    p_lower: lower confidence bound on the top-class probability, in [0, 1] (NaN or values
    outside raise ValueError). sigma > 0. ``p_lower == 1`` gives ``+inf``, which is what the
    theorem says for a classifier that is constant under the noise and what
    ``scipy.stats.norm.ppf(1)`` gives; a Clopper-Pearson lower bound is < 1 for every finite n
    and alpha > 0 (at most ``alpha ** (1 / n)``), so a certificate computed from counts is
    always finite. Returns float64 of p_lower's shape.
    """
    sigma = check_sigma(sigma)
    arr = _floats(p_lower, "p_lower")
    if arr.size and (arr.min() < 0.0 or arr.max() > 1.0):
        raise ValueError("p_lower: expected probabilities in [0, 1]")
    return core_ext.stats.certified_radius(arr, sigma)  # type: ignore[no-any-return]


__all__ = [
    "binom_test_two_sided",
    "certified_radius",
    "clopper_pearson",
    "norm_cdf",
    "norm_ppf",
]
