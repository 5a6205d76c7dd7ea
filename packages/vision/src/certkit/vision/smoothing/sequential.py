"""Anytime-valid confidence sequences for a Bernoulli mean, and the stopping rule of
sequential randomized-smoothing certification.

Cohen et al. (2019, arXiv 1902.02918) spend a fixed n = 100,000 noisy forward passes on
every input. A *confidence sequence* (CS) is a sequence of intervals ``[L_t, U_t]`` that
holds the unknown mean at *every* time simultaneously:

    P(∃ t ≥ 1 : p ∉ [L_t, U_t]) ≤ α,

so sampling may stop at any data-dependent time τ and ``[L_τ, U_τ]`` keeps its 1-α
coverage. Sequential certification draws samples in rounds, recomputes the CS after each
round and stops as soon as the certificate is decided (see :func:`stop_rule`).

**The confidence sequence: a conjugate beta-binomial mixture (Robbins 1970; Howard,
Ramdas, McAuliffe & Sekhon 2021, "Time-uniform, nonparametric, nonasymptotic confidence
sequences", arXiv 1810.08240, Sec. 3 on conjugate mixtures).** For X_1, X_2, ... i.i.d.
Bernoulli(p), S_t = Σ X_i, F_t = t - S_t, and a prior π on θ ∈ (0, 1), define

    M_t(p) = ∫ θ^{S_t} (1-θ)^{F_t} π(dθ) / (p^{S_t} (1-p)^{F_t})
           = N_t / ℓ_t(p),     N_t = Σ_j w_j B(a_j + S_t, b_j + F_t) / B(a_j, b_j)

for a finite mixture π = Σ_j w_j Beta(a_j, b_j) (weights summing to one). The CS is
``C_t = {q : M_t(q) < 1/α} = {q : ℓ_t(q) > α N_t}``.

*Proof of validity (derived here from the cited result).* For each fixed θ,
ℓ_t(θ)/ℓ_t(p) = Π_i (θ/p)^{X_i} ((1-θ)/(1-p))^{1-X_i} is a product of independent
mean-one factors under the true p, hence a non-negative martingale with initial value 1.
By Fubini/Tonelli M_t(p), a π-mixture of such martingales, is again a non-negative
martingale with M_0(p) = 1. Ville's inequality gives P(∃ t : M_t(p) ≥ 1/α) ≤ α, i.e.
P(∃ t : p ∉ C_t) ≤ α. The bound holds uniformly over t, so for any stopping time τ
(including one that looks at the whole past, and τ = ∞) P(p ∉ C_τ) ≤ α. Because
log ℓ_t(q) = S_t log q + F_t log(1-q) is concave in q with its maximum at p̂ = S_t/t and
N_t does not depend on q, C_t is an interval ``(L_t, U_t)`` around p̂; we find its end
points by bisection and round outwards (``L`` down, ``U`` up), so the returned bounds are
never tighter than the exact ones. Both ends come from one Ville event, so the lower and
the upper bound hold *simultaneously* with probability ≥ 1-α.

**Why this gives a certificate.** Selection uses n0 samples independent of the estimation
stream, so conditional on the selected class ĉ the estimation outcomes
X_i = 1[f(x + ε_i) = ĉ] are i.i.d. Bernoulli(p_ĉ). With probability ≥ 1-α,
p_ĉ ≥ L_τ; if L_τ > ½ then ĉ is the smoothed classifier's prediction g(x) and, by Cohen
et al.'s Theorem 1, g(x + δ) = ĉ for every ‖δ‖₂ < σ Φ⁻¹(L_τ).

The default prior ``0.5·Beta(1, 1) + 0.5·Beta(1, 0.05)`` puts half its mass near θ = 1,
where confident inputs live: with all t samples agreeing the lower bound is within a
constant of the fixed-n Clopper-Pearson bound (log-prior penalty ≈ 1 nat instead of the
log t of a uniform prior). The prior choice affects efficiency only, never validity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from certkit.core import stats
from certkit.core.validation import as_float_array, as_int_array, check_alpha, check_positive

FloatArray = npt.NDArray[np.float64]

_BISECT = 14
_NEWTON = 8

DEFAULT_PRIOR: tuple[tuple[float, float, float], ...] = ((0.5, 1.0, 1.0), (0.5, 1.0, 0.05))


@dataclass(frozen=True)
class BetaBinomialCS:
    """Anytime-valid two-sided confidence sequence for a Bernoulli mean (see module docs).

    alpha: the error level; ``P(∃t: p ∉ [L_t, U_t]) ≤ alpha``.
    prior: ``((weight, a, b), ...)``, a mixture of Beta(a, b) priors; weights sum to 1.
    """

    alpha: float = 0.001
    prior: tuple[tuple[float, float, float], ...] = DEFAULT_PRIOR

    def __post_init__(self) -> None:
        check_alpha(self.alpha)
        if not self.prior:
            raise ValueError("prior: expected at least one (weight, a, b) component")
        w = 0.0
        for comp in self.prior:
            if len(comp) != 3:
                raise ValueError(f"prior: expected (weight, a, b) triples, got {comp!r}")
            wj, a, b = comp
            check_positive(wj, "prior weight")
            check_positive(a, "prior a")
            check_positive(b, "prior b")
            w += wj
        if abs(w - 1.0) > 1e-9:
            raise ValueError(f"prior: weights must sum to 1, got {w}")

    def log_mixture(self, s: Any, t: Any) -> FloatArray:
        """log N_t for successes ``s`` out of ``t`` trials (broadcast arrays)."""
        from scipy.special import betaln, logsumexp

        s_arr, t_arr = np.broadcast_arrays(as_int_array(s, "s"), as_int_array(t, "t"))
        f_arr = t_arr - s_arr
        terms = [np.log(w) + betaln(a + s_arr, b + f_arr) - betaln(a, b) for w, a, b in self.prior]
        return np.asarray(logsumexp(np.stack(terms), axis=0), dtype=np.float64)

    def bounds(self, s: Any, t: Any) -> tuple[FloatArray, FloatArray]:
        """(lower, upper) of the CS after ``s`` successes in ``t`` trials, vectorised.

        s, t: integer arrays of one broadcast shape, 0 ≤ s ≤ t. Returns two float64 arrays
        of that shape; ``t == 0`` gives (0, 1).
        """
        s_arr, t_arr = np.broadcast_arrays(as_int_array(s, "s"), as_int_array(t, "t"))
        if np.any(s_arr < 0) or np.any(s_arr > t_arr):
            raise ValueError("s: expected 0 <= s <= t")
        s_f = s_arr.astype(np.float64)
        f_f = (t_arr - s_arr).astype(np.float64)
        thresh = np.log(self.alpha) + self.log_mixture(s_arr, t_arr)
        phat = np.where(t_arr > 0, s_f / np.maximum(t_arr, 1), 0.5)

        def h(q: FloatArray) -> FloatArray:
            with np.errstate(divide="ignore", invalid="ignore"):
                ll = np.where(s_f > 0, s_f * np.log(q), 0.0) + np.where(f_f > 0, f_f * np.log1p(-q), 0.0)
            return ll - thresh  # > 0 inside the CS

        def dh(q: FloatArray) -> FloatArray:
            with np.errstate(divide="ignore", invalid="ignore"):
                return s_f / q - f_f / (1.0 - q)

        # h is concave in q with its maximum at phat, so C_t is an interval. Each end is
        # bracketed by bisection, then refined by Newton steps taken from the *outside*
        # (h <= 0): for a concave h the tangent lies above h, so every Newton iterate stays
        # outside the CS and the bound is conservative at every iteration.
        lo = np.zeros_like(phat)
        hi = phat.copy()
        for _ in range(_BISECT):
            mid = 0.5 * (lo + hi)
            inside = h(mid) > 0
            hi = np.where(inside, mid, hi)
            lo = np.where(inside, lo, mid)
        lo = self._newton(h, dh, lo, hi)
        lower = np.where((s_arr == 0) | (t_arr == 0), 0.0, lo)
        lo2 = phat.copy()
        hi2 = np.ones_like(phat)
        for _ in range(_BISECT):
            mid = 0.5 * (lo2 + hi2)
            inside = h(mid) > 0
            lo2 = np.where(inside, mid, lo2)
            hi2 = np.where(inside, hi2, mid)
        hi2 = self._newton(h, dh, hi2, lo2)
        upper = np.where((s_arr == t_arr) | (t_arr == 0), 1.0, hi2)
        return lower, upper

    @staticmethod
    def _newton(h: Any, dh: Any, out: FloatArray, inner: FloatArray) -> FloatArray:
        """Newton from the outside point ``out`` (h <= 0) towards the root; never crosses
        into the CS (see :meth:`bounds`), never passes ``inner``."""
        for _ in range(_NEWTON):
            hv = h(out)
            d = dh(out)
            with np.errstate(divide="ignore", invalid="ignore"):
                step = np.where((d != 0) & np.isfinite(hv), -hv / d, 0.0)
            cand = out + step
            # keep a step only if it stays on the outside (guards against rounding)
            ok = np.isfinite(cand) & (np.abs(cand - inner) <= np.abs(out - inner)) & (h(cand) <= 0)
            out = np.where(ok, cand, out)
        return out

    def lower_if_all_succeed(self, t: int) -> float:
        """The lower bound after ``t`` straight successes: the largest p̲ any run of length
        ``t`` can reach (used to stop when a target is out of reach within ``max_n``)."""
        lo, _ = self.bounds(np.array([t]), np.array([t]))
        return float(lo[0])


def _thresholds(radius_grid: FloatArray, sigma: float) -> FloatArray:
    """p-thresholds Φ(r/σ) of a radius grid (r = 0 maps to ½, certified only when p̲ > ½)."""
    return stats.norm_cdf(radius_grid / sigma)


def stop_rule(lower: Any, upper: Any, n_used: Any, *, max_n: int, sigma: float,
              p_cap: float, radius_grid: Sequence[float] | None = None,
              tol: float | None = None, reach_at_max: Any = None) -> npt.NDArray[np.bool_]:
    """Which inputs can stop sampling now.

    lower, upper: (B,) current CS bounds on p_A; n_used: (B,) estimation samples so far.
    p_cap: the lower bound reachable after ``max_n`` straight successes.

    An input stops when n_used ≥ max_n, when U ≤ ½ (it will abstain), or:

    - with a ``radius_grid`` (a target radius is a grid of one): when its certified grid
      level is decided — the lower bound certifies grid radius r_k and either r_k is the
      top of the grid or r_{k+1} is out of reach (U < Φ(r_{k+1}/σ), or p_cap below it);
    - without a grid: when the radius can no longer grow by more than ``tol``:
      σΦ⁻¹(min(U, p_cap)) − σΦ⁻¹(L) ≤ tol (radii below ½ count as 0).

    reach_at_max: optional (B,) optimistic forecast of the lower bound at ``max_n`` (see
    :func:`forecast_lower`); with a grid, an input also stops when even that forecast
    misses the next grid radius (futility stop: saves samples on inputs that would run to
    ``max_n`` and still fail).

    Stopping decisions only choose *when* to stop; validity never depends on them.
    """
    lo = as_float_array(lower, "lower")
    hi = as_float_array(upper, "upper")
    n_arr = as_int_array(n_used, "n_used")
    done = (n_arr >= max_n) | (hi <= 0.5)
    reach = np.minimum(hi, p_cap)
    if radius_grid is not None:
        grid = np.sort(as_float_array(radius_grid, "radius_target"))
        if grid.size == 0 or np.any(grid < 0):
            raise ValueError("radius_target: expected non-negative radii")
        q = _thresholds(grid, sigma)
        certified = (lo[:, None] >= q[None, :]) & (lo[:, None] > 0.5)
        level = certified.sum(axis=1)
        top = level >= grid.size
        q_next = q[np.minimum(level, grid.size - 1)]
        unreachable = reach < q_next
        if reach_at_max is not None:
            unreachable |= as_float_array(reach_at_max, "reach_at_max") < q_next
        return np.asarray(done | top | unreachable)
    tol_v = 0.05 * sigma if tol is None else check_positive(tol, "tol")
    r_lo = np.where(lo > 0.5, sigma * stats.norm_ppf(np.clip(lo, 0.5, 1 - 1e-16)), 0.0)
    r_hi = np.where(reach > 0.5, sigma * stats.norm_ppf(np.clip(reach, 0.5, 1 - 1e-16)), 0.0)
    return np.asarray(done | (r_hi - r_lo <= tol_v))


def next_total(n_used: npt.NDArray[np.int64], *, first: int, growth: float,
               max_n: int) -> npt.NDArray[np.int64]:
    """The sample count to reach in the next round: geometric growth (so at most a
    ``growth - 1`` fraction is overshot), at least ``first``, at most ``max_n``."""
    nxt = np.maximum(np.ceil(n_used * growth).astype(np.int64), first)
    return np.minimum(nxt, max_n)


def forecast_lower(cs: Any, s: Any, t: Any, max_n: int, optimism: float = 0.05) -> FloatArray:
    """An optimistic forecast of the lower bound at ``max_n`` samples: the bound ``cs``
    would give at ``max_n`` if p_A equalled the (pointwise, level ``optimism``)
    Clopper-Pearson upper bound now. ``cs``: anything with ``bounds(s, t)`` defined at
    ``max_n``. A heuristic for futility stopping only (it never touches validity)."""
    s_arr, t_arr = np.broadcast_arrays(as_int_array(s, "s"), as_int_array(t, "t"))
    p_opt = np.where(s_arr >= t_arr, 1.0,
                     stats.clopper_pearson(s_arr, np.maximum(t_arr, 1), optimism, side="upper"))
    s_max = np.floor(p_opt * max_n).astype(np.int64)
    lo, _ = cs.bounds(s_max, np.full_like(s_max, max_n))
    return np.asarray(lo, dtype=np.float64)
