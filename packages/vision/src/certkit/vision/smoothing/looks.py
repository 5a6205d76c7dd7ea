"""Clopper-Pearson bounds on a fixed schedule of looks, with α spent across the looks:
an anytime-valid lower confidence bound for a Bernoulli mean that is nearly as tight as
the fixed-n Clopper-Pearson bound at every look.

Cohen et al. (2019, arXiv 1902.02918) certify with one Clopper-Pearson (Clopper & Pearson
1934) bound after a fixed n. Sequential certification (:mod:`certkit.vision.smoothing.sequential`)
wants to look at the counts repeatedly and stop early. This module fixes, *before any
sample is drawn*, look times ``n_1 < n_2 < ... < n_J`` and levels ``α_j > 0`` with
``Σ_j α_j ≤ α`` (the α-spending / Bonferroni device of group-sequential testing), and
reports at look j the exact one-sided Clopper-Pearson bounds at level α_j:

    L_j = CP_lower(S_{n_j}, n_j; α_j),   U_j = CP_upper(S_{n_j}, n_j; α_j).

**Validity (derived here; standard union-bound argument).** For a fixed n the
Clopper-Pearson lower bound satisfies P_p(p < CP_lower(S_n, n; a)) ≤ a for every
p ∈ [0, 1] (Clopper & Pearson 1934: it inverts the exact one-sided binomial test). By the
union bound over the J looks,

    P(∃ j : p < L_j) ≤ Σ_j P(p < L_j) ≤ Σ_j α_j ≤ α.

So for *any* stopping time τ with values in the look set — a rule that may look at all
the counts seen so far, at the grid, at anything — P(p < L_τ) ≤ α: on the complement
event every L_j, in particular L_τ, is ≤ p. The same argument gives P(∃ j : p > U_j) ≤ α
for the upper bounds (both sides together: 1 - 2α). Certification uses only L (a
certificate is wrong only if p_A < L_τ); U only chooses *when* to stop, so the
certificate's guarantee is 1 - α whatever U does. Bounds at a time that is not a look
time are not covered by the argument, and :meth:`LookClopperPearsonCS.bounds` refuses them.

**Cost.** Compared with a fixed-n CP bound, look j pays log(1/α_j) instead of log(1/α)
in the exponent (e.g. with all t samples agreeing, L = α_j^{1/t}). Spending: ``share``
of α goes equally to the looks that the radius grid makes special (see
:func:`grid_schedule`), the rest equally to geometric looks. A uniform split over J looks
costs log J nats; this is the price of validity at data-dependent times.

**Physical floor.** Any valid level-a lower bound after t straight successes is at most
a^{1/t} (if it were larger, at p just below it the all-success run, of probability
p^t > a, would miscover). So certifying radius r, i.e. L ≥ Φ(r/σ), needs at least
``t ≥ log(1/a) / -log Φ(r/σ) ≈ log(1/a) / (1 - Φ(r/σ))`` samples even when p_A = 1
(:func:`all_success_floor`). The grid looks are placed exactly at these floors, so an
input with p_A ≈ 1 stops at the first sample count where its level can be certified.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from certkit.core import stats
from certkit.core.validation import (
    as_float_array,
    as_int_array,
    check_alpha,
    check_int,
    check_positive,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

__all__ = ["LookClopperPearsonCS", "all_success_floor", "grid_schedule"]


def all_success_floor(p: Any, alpha: float) -> IntArray:
    """Fewest samples t with α^{1/t} ≥ p: no valid level-α lower bound reaches p sooner,
    even when every sample succeeds. p: array of thresholds in (0, 1). Returns int64."""
    alpha = check_alpha(alpha)
    p_arr = as_float_array(p, "p")
    if np.any((p_arr <= 0) | (p_arr >= 1)):
        raise ValueError("p: expected thresholds in (0, 1)")
    return np.ceil(np.log(alpha) / np.log(p_arr) - 1e-9).astype(np.int64)


@dataclass(frozen=True)
class LookClopperPearsonCS:
    """Per-look Clopper-Pearson bounds at levels ``levels[j]`` (Σ ≤ alpha) on the fixed
    look times ``looks`` (strictly increasing). See the module docstring for validity.

    bounds(s, t) accepts only look times t; ``next_total`` walks the schedule.
    """

    alpha: float
    looks: tuple[int, ...]
    levels: tuple[float, ...]
    _index: dict[int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_alpha(self.alpha)
        looks = np.asarray(self.looks, dtype=np.int64)
        lv = np.asarray(self.levels, dtype=np.float64)
        if looks.ndim != 1 or looks.size == 0 or looks.shape != lv.shape:
            raise ValueError("looks: expected a non-empty 1-d schedule with one level per look")
        if looks[0] < 1 or np.any(np.diff(looks) <= 0):
            raise ValueError("looks: expected strictly increasing positive sample counts")
        if np.any(lv <= 0) or lv.sum() > self.alpha * (1 + 1e-12):
            raise ValueError(f"levels: expected positive levels summing to <= alpha={self.alpha}")
        object.__setattr__(self, "_index", {int(t): j for j, t in enumerate(looks)})

    @property
    def max_n(self) -> int:
        return int(self.looks[-1])

    def level_at(self, t: Any) -> FloatArray:
        """α_j of the look at each sample count t (ValueError if t is not a look time)."""
        t_arr = as_int_array(t, "t")
        try:
            j = np.array([self._index[int(v)] for v in t_arr.ravel()], dtype=np.int64)
        except KeyError as exc:
            raise ValueError(f"t: {exc.args[0]} is not a look time of this schedule") from None
        return np.asarray(self.levels, dtype=np.float64)[j].reshape(t_arr.shape)

    def bounds(self, s: Any, t: Any) -> tuple[FloatArray, FloatArray]:
        """(lower, upper) after ``s`` successes at look time ``t`` (broadcast int arrays)."""
        s_arr, t_arr = np.broadcast_arrays(as_int_array(s, "s"), as_int_array(t, "t"))
        if np.any(s_arr < 0) or np.any(s_arr > t_arr):
            raise ValueError("s: expected 0 <= s <= t")
        lv = self.level_at(t_arr)
        lo = np.empty(s_arr.shape, dtype=np.float64)
        hi = np.empty(s_arr.shape, dtype=np.float64)
        for a in np.unique(lv):  # the core's CP takes one alpha per call
            m = lv == a
            lo[m] = stats.clopper_pearson(s_arr[m], t_arr[m], float(a), side="lower")
            hi[m] = stats.clopper_pearson(s_arr[m], t_arr[m], float(a), side="upper")
        return lo, hi

    def next_total(self, n_used: Any) -> IntArray:
        """The next look time after each ``n_used`` (the last look once past it)."""
        u = as_int_array(n_used, "n_used")
        looks = np.asarray(self.looks, dtype=np.int64)
        j = np.minimum(np.searchsorted(looks, u, side="right"), looks.size - 1)
        return looks[j]

    def lower_if_all_succeed(self, t: int) -> float:
        """The lower bound after ``t`` straight successes at the last look ≤ t."""
        looks = np.asarray(self.looks, dtype=np.int64)
        j = int(np.searchsorted(looks, t, side="right")) - 1
        if j < 0:
            return 0.0
        return float(self.levels[j] ** (1.0 / looks[j]))


def grid_schedule(alpha: float, max_n: int, *, first: int = 128, growth: float = 1.1,
                  sigma: float | None = None, radius_grid: Sequence[float] | None = None,
                  grid_share: float = 0.25, final_share: float = 0.5) -> LookClopperPearsonCS:
    """A look schedule for sequential certification; Σ α_j ≤ α by construction.

    - the final look at ``max_n`` gets ``final_share`` of α, so an input that runs to the
      end gets nearly the fixed-n Clopper-Pearson bound (log(1/(final_share·α)) instead of
      log(1/α): with max_n = Cohen's n it matches Cohen's certificate almost exactly);
    - with a radius grid (and σ), one look per grid radius r > 0 at the all-success floor
      (:func:`all_success_floor`) of Φ(r/σ) at that look's own level; the grid looks share
      ``grid_share`` of α equally, so an input with p_A ≈ 1 stops at its floor;
    - geometric looks ``first, first·growth, ...`` below ``max_n`` share the rest equally.

    A time that is several kinds of look keeps the largest of its levels (the sum only
    drops).
    """
    alpha = check_alpha(alpha)
    max_n = check_int(max_n, "max_n", minimum=1)
    first = check_int(first, "first", minimum=1)
    growth = check_positive(growth, "growth")
    if growth <= 1:
        raise ValueError(f"growth: expected > 1, got {growth}")
    for name, v in (("grid_share", grid_share), ("final_share", final_share)):
        if not 0 <= v < 1:
            raise ValueError(f"{name}: expected a value in [0, 1), got {v!r}")
    if grid_share + final_share >= 1:
        raise ValueError("grid_share + final_share: expected < 1 (the geometric looks need a share)")
    geo = [min(first, max_n)]
    while geo[-1] < max_n:
        geo.append(min(max_n, max(geo[-1] + 1, int(np.ceil(geo[-1] * growth)))))
    geo = geo[:-1] if len(geo) > 1 else []
    grid_t: list[int] = []
    if radius_grid is not None and sigma is not None and grid_share > 0:
        r = np.asarray([v for v in radius_grid if v > 0], dtype=np.float64)
        q = stats.norm_cdf(r / sigma) if r.size else np.zeros(0)
        q = q[q < 1]
        if q.size:
            grid_t = [int(t) for t in all_success_floor(q, grid_share * alpha / q.size) if t < max_n]
    g_share = grid_share if grid_t else 0.0
    level: dict[int, float] = {max_n: final_share * alpha}
    for t in geo:
        level[t] = max(level.get(t, 0.0), (1 - final_share - g_share) * alpha / max(1, len(geo)))
    for t in grid_t:
        level[t] = max(level.get(t, 0.0), g_share * alpha / len(grid_t))
    if not geo:  # everything left goes to the one look
        level[max_n] = alpha * (1 - g_share)
    looks = sorted(level)
    return LookClopperPearsonCS(alpha, tuple(looks), tuple(level[t] for t in looks))
