"""Certified top-K robustness to arbitrary word substitutions by random masking.

Smoothing (after RanMASK, Zeng et al., arXiv:2105.03743, and its ranking use in
RobustMask, Liu et al., arXiv:2512.23307): of a document's T words, a uniformly random
subset of ``k = T − round(ρ·T)`` positions is kept and the rest are masked (dropped, or
replaced by ``mask_token``); ``g(q, d) = E[σ(f(q, mask(d)))]``.

Bound (derived here). Let ``d'`` differ from ``d`` in at most R positions (same length).
If the kept set avoids those positions, the masked documents coincide; that happens with
probability ``C(T − R, k) / C(T, k)``. Hence ``TV <= Δ(R) = 1 − C(T−R, k)/C(T, k)`` and
``|g(q, d') − g(q, d)| <= Δ(R)``. (RobustMask's printed bound carries an extra
``1/C(T, k)`` factor, which makes it far too small and unsound; we do not use it.)

Certificate. For each K, the radius is the largest R such that the top-K rule of
:mod:`certkit.rank.smoothing` holds with ``o_j = Δ_j(R)`` for every candidate (each has
its own T_j and k_j); -1 if it fails even at R = 0. ``certified[K]`` means radius >= 1.
Masks come from the core sampler: the keep set of sample s of (query, doc) is the k
smallest of ``uniform_noise(T, seed, offset=s·T, stream=query << 32 | doc)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import comb

import numpy as np
import numpy.typing as npt

from certkit.core import uniform_noise
from certkit.core.validation import check_int
from certkit.rank.candidates import CertResult, check_common, prepare_candidates
from certkit.rank.rankers import Ranker, check_docs, choice_texts, score_choices_batch
from certkit.rank.smoothing import (
    DEFAULT_KS,
    ScoreTransform,
    correct_alpha,
    decide_topk,
    mean_bounds,
    stream_key,
)

__all__ = ["certify_query_masking", "delta", "kept_count", "mask_choices", "sample_keep", "sample_masks"]

_BERNOULLI_OFFSET = 1 << 62


def kept_count(t: int, mask_rate: float) -> int:
    """k = T − round(ρ·T), at least 1 when T >= 1."""
    if not 0.0 <= mask_rate < 1.0:
        raise ValueError(f"mask_rate: expected a value in [0, 1), got {mask_rate!r}")
    if t == 0:
        return 0
    return max(1, t - round(mask_rate * t))


def delta(t: int, k: int, r: int) -> float:
    """Δ = 1 − C(T−R, k) / C(T, k): the TV bound for R substituted positions out of T with
    k kept. Exact rational arithmetic on Python ints, then one division."""
    t = check_int(t, "t", minimum=0)
    k = check_int(k, "k", minimum=0)
    r = check_int(r, "r", minimum=0)
    if k > t:
        raise ValueError(f"k: expected k <= T, got k={k}, T={t}")
    if r == 0:
        return 0.0
    if r > t - k:
        return 1.0
    return 1.0 - comb(t - r, k) / comb(t, k)


def sample_keep(t: int, k: int, n: int, *, seed: int, stream: int,
                first_sample: int = 0) -> npt.NDArray[np.bool_]:
    """(n, T) keep masks: row s keeps the k positions with the smallest of the uniforms
    ``uniform_noise((n, T), seed, offset=first_sample·T, stream=stream)[s]``."""
    if t == 0:
        return np.zeros((n, 0), dtype=bool)
    u = uniform_noise((n, t), 0.0, 1.0, seed, first_sample * t, np.float64, stream=stream)
    keep_idx = np.argsort(u, axis=1, kind="stable")[:, :k]
    keep = np.zeros((n, t), dtype=bool)
    np.put_along_axis(keep, keep_idx, True, axis=1)
    return keep


def mask_choices(words: Sequence[str], mask_token: str = "") -> list[tuple[str, str]]:
    """Per position ``(word, mask_token)``: choice 0 keeps, choice 1 masks (``""``: drop)."""
    return [(w, mask_token) for w in words]


def sample_masks(words: Sequence[str], k: int, n: int, *, seed: int, stream: int,
                 mask_token: str = "", first_sample: int = 0) -> list[str]:
    """``n`` masked copies as texts: keep the k positions with the smallest uniforms."""
    if len(words) == 0:
        return [""] * n
    keep = sample_keep(len(words), k, n, seed=seed, stream=stream, first_sample=first_sample)
    return choice_texts(mask_choices(words, mask_token), (~keep).astype(np.int64))


def certify_query_masking(ranker: Ranker, query: str, docs: Sequence[str], *,
                          mask_rate: float = 0.3, n: int = 200, alpha: float = 0.05,
                          ks: Sequence[int] = DEFAULT_KS, bound: str = "bernstein",
                          correction: str = "bonferroni", threat: str = "promote",
                          transform: ScoreTransform | None = None, mask_token: str = "",
                          max_radius: int | None = None, seed: int = 0, query_index: int = 0,
                          qid: str = "", doc_ids: Sequence[str] | None = None) -> CertResult:
    """Random-masking certificate for one query (N candidate ``docs``); see module doc.
    Returns a :class:`~certkit.rank.candidates.CertResult` with ``radius[K]`` filled."""
    docs = check_docs(query, docs)
    n, alpha, seed, query_index = check_common(n, alpha, seed, query_index)
    ids, transform, words = prepare_candidates(ranker, query, docs, doc_ids, transform)
    ts = np.array([len(w) for w in words], dtype=np.int64)
    kk = np.array([kept_count(int(t), mask_rate) for t in ts], dtype=np.int64)
    items = [(mask_choices(w, mask_token),
              (~sample_keep(len(w), int(kk[j]), n, seed=seed, stream=stream_key(query_index, j))).astype(np.int64))
             for j, w in enumerate(words)]
    vals = transform(np.stack(score_choices_batch(ranker, query, items)))
    per_doc = correct_alpha(alpha, len(docs), correction)
    bern = None
    if bound == "clopper_pearson":
        bern = np.stack([uniform_noise(n, 0.0, 1.0, seed, _BERNOULLI_OFFSET, np.float64,
                                       stream=stream_key(query_index, j)) for j in range(len(docs))])
    lo, hi = mean_bounds(vals, per_doc, bound, bern)
    g = vals.mean(1)
    r_max = int(ts.max()) if max_radius is None else check_int(max_radius, "max_radius", minimum=0)

    def deltas(r: int) -> npt.NDArray[np.float64]:
        return np.array([delta(int(t), int(k), min(r, int(t))) for t, k in zip(ts, kk, strict=True)])

    ks = [check_int(k, "ks", minimum=1) for k in ks]
    radius = {k: -1 for k in ks}
    base = decide_topk(g, lo, hi, np.zeros_like(g), ks, threat)
    pending = [k for k in ks if base.certified[k]]
    for k in pending:
        radius[k] = 0
    r = 1
    while pending and r <= r_max:
        dec = decide_topk(g, lo, hi, deltas(r), pending, threat)
        still = [k for k in pending if dec.certified[k]]
        for k in still:
            radius[k] = r
        pending = still
        r += 1
    d1 = deltas(1)
    dec1 = decide_topk(g, lo, hi, d1, ks, threat)
    return CertResult(qid, ids, g, lo, hi, d1, base.order, {k: radius[k] >= 1 for k in ks},
                      dec1.margin, n, alpha, method="masking", radius=radius)
