"""PointGuard: certified robustness by random sub-sampling (Liu, Jia, Gong, CVPR 2021,
arXiv:2011.11834).

The smoothed classifier votes over random k-subsets (without replacement) of the cloud.
An adversary adds, deletes or modifies up to t points. Bound (derived here; it is the
structure of PointGuard's theorem, recalled, not read): with X the clean cloud (N points),
X' the perturbed one (N' points) and I = X ∩ X' (N_I points), a uniform k-subset S of X
lies in I with probability a = C(N_I, k) / C(N, k), a k-subset S' of X' with probability
a' = C(N_I, k) / C(N', k), and conditioned on that both are uniform k-subsets of I. Hence

    P[f(S') = A] >= (p_A - (1 - a)) * a' / a,
    P[f(S') = B] <= p_B * a' / a + (1 - a').

The prediction is certified for the threat model when the first exceeds the second, with
p_A a lower and p_B an upper confidence bound. Modification: N' = N, N_I = N - t; addition:
N' = N + t, N_I = N; deletion: N' = N - t, N_I = N - t. ``certified_t`` returns the largest
t for which this holds.

Confidence bounds (:func:`vote_bounds`): with counts c over C classes, A the most-voted class
and b the most-voted other class, ``p_A`` is the Clopper-Pearson lower bound of c_A at
alpha/2 and the bound used for *every* other class is ``min(U(c_b), 1 - p_A)`` with U the
Clopper-Pearson upper bound at alpha/2. The first term is valid for all other classes at once,
for any C, without Bonferroni over the classes: let B* be the class with the largest *true*
probability among those other than A. Every other class B has p_B <= p_B*, and c_b >= c_B*
(b has the most votes among them), and U is increasing in the count, so

    {exists B != A: p_B > U(c_b)}  is contained in  {p_B* > U(c_B*)},

an event of probability <= alpha/2 for the fixed class B*. Bonferroni over the C - 1 other
classes (U at alpha / (2 (C - 1))) would give a larger bound and certify less; 1 - p_A holds
whenever p_A does. The lower and the upper bound together hold with probability >= 1 - alpha.
A is chosen from the same votes; the coverage simulations in the tests (3 to 10 classes, the
observed runner-up usually not the true one, exact ties included) stay below alpha, the worst
case being an exact two-class tie (a wrong certificate needs the drawn winner's lower bound
above 1/2: probability <= 2 * alpha/2).
"""

from __future__ import annotations

from math import lgamma
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch

from certkit.core.stats import clopper_pearson
from certkit.core.validation import check_alpha, check_int, check_seed
from certkit.pointcloud._votes import count_votes

Threat = Literal["modify", "add", "delete"]


def _log_comb(n: int, k: int) -> float:
    return lgamma(n + 1) - lgamma(k + 1) - lgamma(n - k + 1)


def _ratio(n_i: int, n: int, k: int) -> float:
    """C(n_i, k) / C(n, k) (0 when n_i < k)."""
    if n_i < k:
        return 0.0
    return float(np.exp(_log_comb(n_i, k) - _log_comb(n, k)))


def is_certified(p_a: float, p_b: float, n: int, k: int, t: int, threat: Threat = "modify") -> bool:
    """Whether the bound certifies t perturbed points (see module docstring)."""
    if threat == "modify":
        n2, ni = n, n - t
    elif threat == "add":
        n2, ni = n + t, n
    elif threat == "delete":
        n2, ni = n - t, n - t
    else:
        raise ValueError(f"threat: expected 'modify', 'add' or 'delete', got {threat!r}")
    if ni < k or n2 < k:
        return False
    a = _ratio(ni, n, k)
    a2 = _ratio(ni, n2, k)
    lower_a = (p_a - (1 - a)) * a2 / a
    upper_b = p_b * a2 / a + (1 - a2)
    # margin: an exact tie must not be certified through rounding
    return bool(lower_a > upper_b + 1e-12)


def certified_t(p_a: float, p_b: float, n: int, k: int, threat: Threat = "modify") -> int:
    """Largest t with :func:`is_certified` (-1 when even t = 0 fails: abstain)."""
    if not is_certified(p_a, p_b, n, k, 0, threat):
        return -1
    t = 0
    while t + 1 <= n and is_certified(p_a, p_b, n, k, t + 1, threat):
        t += 1
    return t


@torch.no_grad()
def vote_counts(
    model: torch.nn.Module,
    x: Any,
    k: int,
    n: int,
    num_classes: int,
    *,
    seed: int = 0,
    index: int = 0,
    batch_size: int = 200,
) -> np.ndarray:
    """Class counts (C,) of ``model`` on ``n`` random k-subsets of cloud x (N, 3)."""
    xa = np.asarray(x, dtype=np.float32)
    if xa.ndim != 2 or xa.shape[1] != 3 or not np.isfinite(xa).all():
        raise ValueError("x: expected a finite (N, 3) cloud")
    if not 1 <= k <= len(xa):
        raise ValueError(f"k: expected 1 <= k <= {len(xa)}, got {k}")
    rng = np.random.default_rng([check_seed(seed), index])
    # draws are consumed in order from one generator, so batching does not change them
    return count_votes(model, lambda _start, b: xa[np.argsort(rng.random((b, len(xa))), axis=1)[:, :k]],
                       n, batch_size, num_classes)


def certify(
    model: torch.nn.Module,
    x: Any,
    k: int,
    num_classes: int,
    *,
    n: int = 1000,
    alpha: float = 0.001,
    threat: Threat = "modify",
    seed: int = 0,
    index: int = 0,
) -> tuple[int, int]:
    """``(label, certified t)`` for one cloud; label -1 and t = -1 when it abstains."""
    alpha = check_alpha(alpha)
    n = check_int(n, "n", minimum=1)
    c = vote_counts(model, x, k, n, num_classes, seed=seed, index=index)
    a, p_a, p_b = vote_bounds(c, alpha)
    t = certified_t(float(p_a[0]), float(p_b[0]), len(np.asarray(x)), k, threat)
    return (int(a[0]), t) if t >= 0 else (-1, -1)


def vote_bounds(counts: Any, alpha: float) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64],
                                                    npt.NDArray[np.float64]]:
    """``(A, p_A lower, bound on every other class)`` from vote counts (R, C) or (C,), C >= 2.

    Returns three (R,) arrays (R = 1 for a single (C,) row): the most-voted class (lowest index
    on ties), the Clopper-Pearson lower bound on its probability at alpha/2, and an upper bound
    valid simultaneously for every other class, ``min(U_{alpha/2}(c_b), 1 - p_A)`` with b the
    most-voted other class (module docstring: why one bound at alpha/2 covers all C - 1).
    """
    alpha = check_alpha(alpha)
    c = np.atleast_2d(np.asarray(counts))
    if c.ndim != 2 or c.shape[1] < 2 or not np.issubdtype(c.dtype, np.integer) or (c < 0).any():
        raise ValueError(f"counts: expected non-negative integer counts (R, C) with C >= 2, got shape "
                         f"{np.shape(counts)} and dtype {np.asarray(counts).dtype}")
    n = c.sum(1)
    order = np.argsort(-c, axis=1, kind="stable")
    rows = np.arange(len(c))
    a = order[:, 0].astype(np.int64)
    p_a = clopper_pearson(c[rows, a], n, alpha / 2, side="lower")
    p_b = clopper_pearson(c[rows, order[:, 1]], n, alpha / 2, side="upper")
    return a, p_a, np.minimum(p_b, 1 - p_a)


__all__ = ["certified_t", "certify", "is_certified", "vote_bounds", "vote_counts"]
