"""Lower confidence bounds on the survival function ``S(ν) = P[F ≥ ν]`` of an episode
return ``F``, from ``m`` i.i.d. returns, simultaneously over a set of thresholds.

All three return ``p̲`` with ``P[∀i: p̲_i ≤ S(ν_i)] ≥ 1 − α``:

- ``"cp"`` — Clopper & Pearson (1934) exact binomial lower bound on ``S(ν_i)`` from
  ``k_i = #{F ≥ ν_i}``, each at level ``α/H`` (Bonferroni over the H thresholds). The
  thresholds must be fixed before seeing the data (an a-priori grid, e.g. every integer
  return): the union bound needs a data-independent set.
- ``"dkw"`` — the Dvoretzky–Kiefer–Wolfowitz band with Massart's (1990) constant:
  ``P[sup_ν (Ŝ(ν) − S(ν)) > ε] ≤ exp(−2mε²)`` for the one-sided deviation when
  ``exp(−2mε²) ≤ ½``, so ``p̲(ν) = Ŝ(ν) − sqrt(ln(1/α)/(2m))`` holds *uniformly* over all
  ν for α ≤ ½ (two-sided ``ln(2/α)`` otherwise); thresholds may depend on the data.
  (One-sidedness of Massart's bound is recalled, not re-derived.)
- ``"bernstein"`` — the empirical Bernstein bound of Maurer & Pontil (2009, Thm. 4) for
  [0,1]-valued indicators ``1{F ≥ ν_i}``: ``p̲ = p̂ − sqrt(2 V̂ ln(2H/α)/m) −
  7 ln(2H/α)/(3(m−1))``, V̂ the unbiased sample variance, Bonferroni over H fixed
  thresholds; valid for bounded returns.

Since ``S`` is non-increasing, every ``p̲_i`` is then raised to ``max_{j ≥ i} p̲_j``
(still simultaneously valid). Shapes: ``returns (m,)``, ``thresholds (H,)`` ascending,
output ``(H,)`` float64 in [0, 1].
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from certkit.core import stats
from certkit.core.validation import as_float_array, check_alpha

BOUNDS = ("cp", "dkw", "bernstein")


def exceedance_counts(returns: npt.NDArray[np.float64],
                      thresholds: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """k_i = #{j : returns_j ≥ thresholds_i}, (H,)."""
    srt = np.sort(returns)
    return (srt.size - np.searchsorted(srt, thresholds, side="left")).astype(np.int64)


def survival_lower_bounds(returns: Any, thresholds: Any, alpha: float,
                          bound: str = "cp") -> npt.NDArray[np.float64]:
    """Simultaneous (1 − α) lower bounds p̲_i ≤ P[F ≥ ν_i] (see the module docstring)."""
    r = as_float_array(returns, "returns")
    v = as_float_array(thresholds, "thresholds")
    alpha = check_alpha(alpha)
    if r.ndim != 1 or r.size < 1:
        raise ValueError("returns: expected a non-empty 1-D array")
    if v.ndim != 1 or v.size < 1:
        raise ValueError("thresholds: expected a non-empty 1-D array")
    if np.any(np.diff(v) <= 0):
        raise ValueError("thresholds: expected strictly increasing values")
    m, h = r.size, v.size
    k = exceedance_counts(r, v)
    if bound == "cp":
        p = stats.clopper_pearson(k, np.full(h, m), alpha / h, side="lower")
    elif bound == "dkw":
        eps = math.sqrt(math.log((1.0 if alpha <= 0.5 else 2.0) / alpha) / (2 * m))
        p = k / m - eps
    elif bound == "bernstein":
        if m < 2:
            raise ValueError("episodes: the empirical Bernstein bound needs at least 2 episodes")
        ph = k / m
        var = ph * (1 - ph) * m / (m - 1)
        lg = math.log(2 * h / alpha)
        p = ph - np.sqrt(2 * var * lg / m) - 7 * lg / (3 * (m - 1))
    else:
        raise ValueError(f"bound: expected one of {BOUNDS}, got {bound!r}")
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    return np.maximum.accumulate(p[::-1])[::-1].copy()
