"""Shared machinery of the smoothed top-K ranking certificates (:mod:`certdr`, :mod:`masking`).

A smoothed score is ``g(q, d) = E_Z[σ(f(q, Z(d)))] ∈ [0, 1]`` for a random perturbation
``Z`` of the document. Both certificates have the same shape: every document ``j`` gets a
bound ``o_j`` on how far an admissible attack can move ``g(q, d_j)`` (a total-variation
bound: ``|E_P h − E_Q h| <= TV(P, Q)`` for any ``h`` with values in [0, 1]), and the
top-K set is certified when, with Monte-Carlo confidence bounds ``L_j <= g_j <= U_j``
that hold **simultaneously for every document in the candidate list**,

- threat ``"promote"`` (CertDR's: the attacker perturbs documents ranked beyond K):
  ``min_{i<=K} L_i > max_{j>K} (U_j + o_j)``;
- threat ``"any"`` (every candidate may be perturbed):
  ``min_{i<=K} (L_i − o_i) > max_{j>K} (U_j + o_j)``.

Then no admissible perturbation moves a document from beyond K above any top-K document
under ``g``: the top-K *set* is certified. This is sound where CertDR's released code is
not: the code corrects for sampling error on two documents only, while the ``max`` above
ranges over every document beyond K. Our bounds are simultaneous over all N candidates
(``correction="bonferroni"``: each two-sided interval at level α/N, valid under any
dependence; ``"sidak"``: 1 − (1 − α)^(1/N), valid because the documents' samples come
from disjoint sampler streams and are independent). As all N intervals hold jointly, the
statements for every K hold jointly too, with probability >= 1 − α.

Mean bounds for [0, 1]-valued samples (``bound=``): ``"hoeffding"`` (Hoeffding 1963),
``"bernstein"`` (empirical Bernstein, Maurer & Pontil 2009, arXiv:0907.3740, Thm 4),
``"clopper_pearson"`` (each σ-value is rounded to a Bernoulli with an independent core
uniform, ``B = 1[U < σ]``, ``E[B] = g``, then the exact binomial interval from
``certkit.core.stats``), and ``"hybrid"`` (the tighter of Hoeffding and Bernstein, each at
half the level: a union bound).

The score transform σ maps raw ranker scores into [0, 1]; it must be fixed before the
documents are perturbed (:class:`ScoreTransform` freezes it, by default from the clean
candidates' scores). The certificate is about the smoothed ranker built with that frozen σ.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from certkit.core import stats
from certkit.core.validation import check_alpha, check_int, check_positive

__all__ = ["DEFAULT_KS", "ScoreTransform", "TopKDecision", "correct_alpha", "decide_topk",
           "mean_bounds", "stream_key"]

FloatArray = npt.NDArray[np.float64]
DEFAULT_KS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 20, 50)
BOUNDS = ("hoeffding", "bernstein", "clopper_pearson", "hybrid")
CORRECTIONS = ("bonferroni", "sidak")
THREATS = ("promote", "any")


@dataclass(frozen=True)
class ScoreTransform:
    """σ(s) = 1 / (1 + exp(−(s − shift) / scale)): raw scores -> (0, 1)."""

    shift: float = 0.0
    scale: float = 1.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.shift):
            raise ValueError(f"shift: expected a finite number, got {self.shift!r}")
        check_positive(self.scale, "scale")

    def __call__(self, scores: npt.ArrayLike) -> FloatArray:
        s = np.asarray(scores, dtype=np.float64)
        if not np.all(np.isfinite(s)):
            raise ValueError("scores: the ranker returned NaN or inf")
        z = np.clip((s - self.shift) / self.scale, -60.0, 60.0)
        return 1.0 / (1.0 + np.exp(-z))

    @classmethod
    def fit(cls, clean_scores: npt.ArrayLike) -> ScoreTransform:
        """shift = median, scale = max(std, 1e-3·(1+|median|)) of the clean candidates'
        scores (shape (N,)): spreads the candidates over the sigmoid's sensitive range."""
        s = np.asarray(clean_scores, dtype=np.float64)
        if s.size == 0 or not np.all(np.isfinite(s)):
            raise ValueError("clean_scores: expected a non-empty finite array")
        med = float(np.median(s))
        sd = float(s.std())
        return cls(med, max(sd, 1e-3 * (1.0 + abs(med))))


def stream_key(query_index: int, doc_index: int) -> int:
    """The sampler stream of (query, document): ``query_index << 32 | doc_index``."""
    q = check_int(query_index, "query_index", minimum=0)
    d = check_int(doc_index, "doc_index", minimum=0)
    if q >= 2**32 or d >= 2**32:
        raise ValueError("query_index/doc_index: expected < 2**32")
    return (q << 32) | d


def correct_alpha(alpha: float, n_docs: int, correction: str = "bonferroni") -> float:
    """Per-document level so that n_docs two-sided intervals hold jointly w.p. >= 1 − α."""
    alpha = check_alpha(alpha)
    n_docs = check_int(n_docs, "n_docs", minimum=1)
    if correction == "bonferroni":
        return alpha / n_docs
    if correction == "sidak":
        return -math.expm1(math.log1p(-alpha) / n_docs)
    raise ValueError(f"correction: expected one of {CORRECTIONS}, got {correction!r}")


def mean_bounds(values: npt.ArrayLike, alpha: float, bound: str = "bernstein",
                bernoulli: npt.ArrayLike | None = None) -> tuple[FloatArray, FloatArray]:
    """Two-sided (1 − α) confidence bounds on the means of [0, 1]-valued samples.

    values: (N, n) — n i.i.d. samples for each of N means. bernoulli: (N, n) uniforms
    for ``bound="clopper_pearson"`` (independent of ``values``). Returns lower (N,),
    upper (N,), clipped to [0, 1].
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] < 2:
        raise ValueError(f"values: expected shape (N, n) with n >= 2, got {v.shape}")
    if not np.all((v >= 0) & (v <= 1)):
        raise ValueError("values: expected samples in [0, 1]")
    alpha = check_alpha(alpha)
    n = v.shape[1]
    mean = v.mean(1)
    if bound == "hoeffding":
        w = math.sqrt(math.log(2.0 / alpha) / (2.0 * n))
        lo, hi = mean - w, mean + w
    elif bound == "bernstein":
        lo, hi = _bernstein(v, alpha)
    elif bound == "hybrid":
        w = math.sqrt(math.log(4.0 / alpha) / (2.0 * n))
        blo, bhi = _bernstein(v, alpha / 2.0)
        lo, hi = np.maximum(mean - w, blo), np.minimum(mean + w, bhi)
    elif bound == "clopper_pearson":
        if bernoulli is None:
            raise ValueError("bernoulli: uniforms are required for bound='clopper_pearson'")
        u = np.asarray(bernoulli, dtype=np.float64)
        if u.shape != v.shape:
            raise ValueError(f"bernoulli: expected shape {v.shape}, got {u.shape}")
        k = (u < v).sum(1)
        ci = stats.clopper_pearson(k, np.full_like(k, n), alpha, side="two-sided")
        lo, hi = ci[..., 0], ci[..., 1]
    else:
        raise ValueError(f"bound: expected one of {BOUNDS}, got {bound!r}")
    return np.clip(lo, 0.0, 1.0), np.clip(hi, 0.0, 1.0)


def _bernstein(v: FloatArray, alpha: float) -> tuple[FloatArray, FloatArray]:
    # Maurer & Pontil (2009), Theorem 4, one-sided at δ = α/2 per side:
    #   E X >= mean − sqrt(2 V ln(2/δ) / n) − 7 ln(2/δ) / (3 (n − 1)),  V = sample variance.
    n = v.shape[1]
    mean = v.mean(1)
    var = v.var(1, ddof=1)
    log_term = math.log(2.0 / (alpha / 2.0))
    w = np.sqrt(2.0 * var * log_term / n) + 7.0 * log_term / (3.0 * (n - 1))
    return mean - w, mean + w


@dataclass
class TopKDecision:
    """order: candidate indices by ĝ descending (ties by index). certified[K]: bool."""

    order: npt.NDArray[np.int64]
    certified: dict[int, bool] = field(default_factory=dict)
    margin: dict[int, float] = field(default_factory=dict)

    @property
    def max_certified_k(self) -> int:
        """Largest K in the checked list that is certified (0 if none)."""
        ok = [k for k, c in self.certified.items() if c]
        return max(ok) if ok else 0


def decide_topk(g_hat: npt.ArrayLike, lower: npt.ArrayLike, upper: npt.ArrayLike,
                shift: npt.ArrayLike, ks: Sequence[int] = DEFAULT_KS,
                threat: str = "promote") -> TopKDecision:
    """The certification rule of the module docstring.

    g_hat, lower, upper: (N,) estimates and simultaneous bounds; shift: (N,) TV bounds
    ``o_j`` (how far an attack can move ``g_j``). K >= N is never certified (no document
    beyond K: the question is void, and we answer conservatively).
    """
    g = np.asarray(g_hat, dtype=np.float64)
    lo = np.asarray(lower, dtype=np.float64)
    hi = np.asarray(upper, dtype=np.float64)
    o = np.asarray(shift, dtype=np.float64)
    if not (g.shape == lo.shape == hi.shape == o.shape) or g.ndim != 1:
        raise ValueError("g_hat/lower/upper/shift: expected equal shapes (N,)")
    if threat not in THREATS:
        raise ValueError(f"threat: expected one of {THREATS}, got {threat!r}")
    if np.any(o < 0) or np.any(o > 1):
        raise ValueError("shift: TV bounds must lie in [0, 1]")
    order = np.lexsort((np.arange(g.size), -g)).astype(np.int64)
    top_val = lo[order] - (o[order] if threat == "any" else 0.0)
    rest_val = (hi + o)[order]
    # prefix minima of the top side, suffix maxima of the rest
    pre_min = np.minimum.accumulate(top_val)
    suf_max = np.maximum.accumulate(rest_val[::-1])[::-1]
    dec = TopKDecision(order)
    for k in ks:
        k = check_int(k, "ks", minimum=1)
        if k >= g.size:
            dec.certified[k] = False
            dec.margin[k] = float("-inf")
            continue
        m = float(pre_min[k - 1] - suf_max[k])
        dec.certified[k] = m > 0
        dec.margin[k] = m
    return dec
