"""Certified top-K robustness to word substitution by randomized synonym smoothing
(CertDR: Wu, Zhang, Guo, de Rijke, Cheng, CIKM 2022, arXiv:2209.06691; the smoothing
and TV bound follow SAFER, Ye, Gong, Liu, ACL 2020, arXiv:2005.14424).

Smoothing. Every word ``w`` of a document is replaced by a word drawn uniformly from its
perturbation set ``P_w = {w} ∪ neighbours(w)``, independently per position; the smoothed
score is ``g(q, d) = E[σ(f(q, Z(d)))]`` (σ: :class:`~certkit.rank.smoothing.ScoreTransform`).
Draws come from the core Philox sampler keyed by (seed, query index, document index,
sample index): ``uniform_noise`` with ``stream = query << 32 | doc`` and
``offset = sample · T``, so any split of the work reproduces bit for bit.

Threat model. The attacker replaces each word ``w`` by any ``w' ∈ S_w`` (the attack's
synonym set, by default ``S_w = P_w``). For the perturbed document the smoothing draws
from ``U(P_{w'})`` at that position, and ``TV(U(A), U(B)) = 1 − |A∩B| / max(|A|, |B|)``
(derived here; SAFER and the issue write ``|A∩B|/|A|``, which equals it when the sets
have equal size and is otherwise optimistic). A maximal coupling per position gives

    o_d = 1 − ∏_w q_w,   q_w = min_{w' ∈ S_w} |P_w ∩ P_{w'}| / max(|P_w|, |P_{w'}|),

and ``|g(q, d') − g(q, d)| <= o_d`` for every admissible ``d'``. The top-K decision rule
and the simultaneous Monte-Carlo bounds (sound over every document beyond K, unlike
CertDR's code which corrects two documents only) are in :mod:`certkit.rank.smoothing`.

Guarantee. With probability >= 1 − α over the sampling, for every K reported certified,
no admissible perturbation of the documents ranked beyond K (threat ``"promote"``; every
candidate under ``"any"``) brings one of them above a top-K document under ``g``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from certkit.core import uniform_noise
from certkit.core.validation import check_alpha, check_int, check_seed
from certkit.rank.io import Run
from certkit.rank.rankers import Ranker, check_docs, choice_texts, score_choices_batch
from certkit.rank.smoothing import (
    DEFAULT_KS,
    ScoreTransform,
    correct_alpha,
    decide_topk,
    mean_bounds,
    stream_key,
)
from certkit.rank.synonyms import SynonymSource, perturbation_set

__all__ = ["CertResult", "certify_query", "certify_run", "crq", "sample_indices", "sample_substitutions",
           "split_words", "substitution_sets", "tv_bound"]

_WORD = re.compile(r"^[A-Za-z]+$")
_BERNOULLI_OFFSET = 1 << 62  # disjoint counter range for Clopper-Pearson rounding


def split_words(text: str) -> list[str]:
    """Whitespace tokens; only alphabetic tokens are substitutable (lower-cased lookup)."""
    return text.split()


def substitution_sets(words: Sequence[str], source: SynonymSource, *,
                      _cache: dict[tuple[str, str], object] | None = None) -> list[tuple[str, ...]]:
    """``P_w`` per position (the word first). Non-alphabetic tokens keep ``(token,)``."""
    cache: dict[tuple[str, str], object] = {} if _cache is None else _cache
    out: list[tuple[str, ...]] = []
    for w in words:
        hit = cache.get(("s", w))
        if hit is None:
            if _WORD.match(w):
                lw = w.lower()
                hit = perturbation_set(lw, source) if lw == w else (w, *[x for x in source(lw) if x != lw])
            else:
                hit = (w,)
            cache[("s", w)] = hit
        out.append(hit)  # type: ignore[arg-type]
    return out


def tv_bound(words: Sequence[str], source: SynonymSource,
             attack_source: SynonymSource | None = None, budget: int | None = None, *,
             _cache: dict[tuple[str, str], object] | None = None) -> float:
    """``o_d = 1 − ∏_w q_w`` (see module docstring). ``attack_source`` gives ``S_w``
    (default: the smoothing source, i.e. ``S_w = P_w``). ``budget``: the attacker
    substitutes at most that many positions, so only the ``budget`` smallest ``q_w``
    enter the product (the others are 1); None: every position."""
    att = attack_source or source
    if budget is not None:
        budget = check_int(budget, "budget", minimum=0)
    qs: list[float] = []
    cache: dict[tuple[str, str], object] = {} if _cache is None else _cache

    def pset(x: str) -> frozenset[str]:
        s = cache.get(("p", x))
        if s is None:
            s = frozenset(perturbation_set(x, source))
            cache[("p", x)] = s
        return s  # type: ignore[return-value]

    for w in words:
        if not _WORD.match(w):
            continue
        lw = w.lower()
        q = cache.get(("q", lw))
        if q is None:
            pw = pset(lw)
            q = 1.0
            for alt in perturbation_set(lw, att):
                pa = pset(alt)
                q = min(q, len(pw & pa) / max(len(pw), len(pa)))
            cache[("q", lw)] = q
        qs.append(q)  # type: ignore[arg-type]
    qs.sort()
    if budget is not None:
        qs = qs[:budget]
    if any(q <= 0.0 for q in qs):
        return 1.0
    log_q = float(np.log(np.array(qs)).sum()) if qs else 0.0
    return float(min(1.0, max(0.0, -np.expm1(log_q))))


def sample_indices(sizes: Sequence[int] | npt.NDArray[np.integer], n: int, *, seed: int, stream: int,
                   first_sample: int = 0) -> npt.NDArray[np.int64]:
    """(n, T) choice indices: ``idx[s, i] = min(⌊u[s, i]·sizes[i]⌋, sizes[i] − 1)`` with
    ``u`` from one ``uniform_noise((n, T), seed, offset=first_sample·T, stream=stream)``
    call (sample s of position i is element ``(first_sample + s)·T + i`` of the stream)."""
    sz = np.asarray(sizes, dtype=np.int64)
    t = sz.size
    if t == 0:
        return np.zeros((n, 0), dtype=np.int64)
    u = uniform_noise((n, t), 0.0, 1.0, seed, first_sample * t, np.float64, stream=stream)
    var = np.flatnonzero(sz > 1)
    if var.size == t:
        u *= sz
        idx = u.astype(np.int64)
        np.minimum(idx, sz - 1, out=idx)
        return idx
    idx = np.zeros((n, t), dtype=np.int64)  # single-choice positions always take choice 0
    if var.size:
        sv = sz[var]
        idx[:, var] = np.minimum((u[:, var] * sv).astype(np.int64), sv - 1)
    return idx


def sample_substitutions(words: Sequence[str], sets: Sequence[Sequence[str]], n: int, *,
                         seed: int, stream: int, first_sample: int = 0) -> list[str]:
    """``n`` smoothed copies of a document as texts: position i takes
    ``sets[i][idx[s, i]]`` with ``idx`` from :func:`sample_indices`. (Certification scores
    the index arrays directly through :func:`~certkit.rank.rankers.score_choices`.)"""
    if len(words) == 0:
        return [""] * n
    idx = sample_indices([len(x) for x in sets], n, seed=seed, stream=stream, first_sample=first_sample)
    return choice_texts(sets, idx)


@dataclass
class CertResult:
    """One query's certificate. Arrays are aligned with the candidate list (N,).

    order: candidates by ĝ descending; certified[K], margin[K]: the decision per K;
    tv: the TV bound o_d (certdr) or Δ at radius 1 (masking); radius[K] (masking only):
    the largest number of substituted words per document still certified (-1: none).
    """

    qid: str
    doc_ids: list[str]
    g_hat: npt.NDArray[np.float64]
    lower: npt.NDArray[np.float64]
    upper: npt.NDArray[np.float64]
    tv: npt.NDArray[np.float64]
    order: npt.NDArray[np.int64]
    certified: dict[int, bool]
    margin: dict[int, float]
    n: int
    alpha: float
    method: str = "certdr"
    radius: dict[int, int] | None = None

    def to_row(self, idx: int) -> dict[str, Any]:
        return {"idx": idx, "qid": self.qid, "method": self.method, "n": self.n,
                "alpha": self.alpha,
                "certified": {str(k): bool(v) for k, v in self.certified.items()},
                "margin": {str(k): float(v) for k, v in self.margin.items()},
                "radius": None if self.radius is None else {str(k): int(v) for k, v in self.radius.items()},
                "ranking": [self.doc_ids[i] for i in self.order.tolist()],
                "mean_tv": float(self.tv.mean()) if self.tv.size else 0.0}


def prepare_candidates(ranker: Ranker, query: str, docs: list[str],
                       doc_ids: Sequence[str] | None, transform: ScoreTransform | None
                       ) -> tuple[list[str], ScoreTransform, list[list[str]]]:
    """Shared set-up of the top-K certificates for N candidate ``docs``: their ids (N,),
    the score transform (fitted on the clean scores when not given) and their words."""
    if not docs:
        raise ValueError("docs: no candidate documents")
    ids = list(doc_ids) if doc_ids is not None else [str(i) for i in range(len(docs))]
    if len(ids) != len(docs):
        raise ValueError("doc_ids: length differs from docs")
    if transform is None:
        transform = ScoreTransform.fit(ranker.score(query, docs))
    return ids, transform, [split_words(d) for d in docs]


def _check_common(n: int, alpha: float, seed: int, query_index: int) -> tuple[int, float, int, int]:
    return (check_int(n, "n", minimum=2), check_alpha(alpha), check_seed(seed),
            check_int(query_index, "query_index", minimum=0))


def smoothed_values(ranker: Ranker, query: str, variants: list[list[str]],
                    transform: ScoreTransform, batch_size: int = 8192) -> npt.NDArray[np.float64]:
    """σ(f(q, ·)) of (N, n) variant documents, scored in flat batches. Shape (N, n)."""
    flat = [d for v in variants for d in v]
    out = np.empty(len(flat), dtype=np.float64)
    for s in range(0, len(flat), batch_size):
        out[s: s + batch_size] = ranker.score(query, flat[s: s + batch_size])
    n = len(variants[0]) if variants else 0
    return transform(out).reshape(len(variants), n)


def certify_query(ranker: Ranker, query: str, docs: Sequence[str], source: SynonymSource, *,
                  n: int = 200, alpha: float = 0.05, ks: Sequence[int] = DEFAULT_KS,
                  bound: str = "bernstein", correction: str = "bonferroni",
                  threat: str = "promote", transform: ScoreTransform | None = None,
                  attack_source: SynonymSource | None = None, budget: int | None = None,
                  seed: int = 0, query_index: int = 0, qid: str = "", doc_ids: Sequence[str] | None = None
                  ) -> CertResult:
    """CertDR certificate for one query over its candidate documents ``docs`` (N,).

    n: Monte-Carlo samples per document; alpha: joint failure probability of all the
    bounds of this query; correction: ``"bonferroni"`` | ``"sidak"`` (over the N
    candidates); bound: see :func:`~certkit.rank.smoothing.mean_bounds`; transform: the
    frozen σ (default: fitted to the clean candidates' scores); budget: at most that many
    substituted words per document (None: any number).
    """
    docs = check_docs(query, docs)
    n, alpha, seed, query_index = _check_common(n, alpha, seed, query_index)
    ids, transform, words = prepare_candidates(ranker, query, docs, doc_ids, transform)
    pcache: dict[tuple[str, str], object] = {}  # P_w and q_w, shared by this query's documents
    sets = [substitution_sets(w, source, _cache=pcache) for w in words]
    items = [(st, sample_indices([len(x) for x in st], n, seed=seed, stream=stream_key(query_index, j)))
             for j, st in enumerate(sets)]
    vals = transform(np.stack(score_choices_batch(ranker, query, items)))
    per_doc = correct_alpha(alpha, len(docs), correction)
    bern = None
    if bound == "clopper_pearson":
        bern = np.stack([uniform_noise(n, 0.0, 1.0, seed, _BERNOULLI_OFFSET, np.float64,
                                       stream=stream_key(query_index, j)) for j in range(len(docs))])
    lo, hi = mean_bounds(vals, per_doc, bound, bern)
    tv = np.array([tv_bound(w, source, attack_source, budget, _cache=pcache) for w in words],
                  dtype=np.float64)
    g = vals.mean(1)
    dec = decide_topk(g, lo, hi, tv, ks, threat)
    return CertResult(qid, ids, g, lo, hi, tv, dec.order, dec.certified, dec.margin, n, alpha)


def certify_run(ranker: Ranker, queries: Mapping[str, str], candidates: Run,
                corpus: Mapping[str, str], source: SynonymSource, *, depth: int = 100,
                log: str | None = None, method: str = "certdr", seed: int = 0,
                **kwargs: Any) -> list[CertResult | dict[str, Any]]:
    """Certify every query of ``candidates`` (its top-``depth`` documents). Each query is
    an independent work unit keyed by its position in ``sorted(candidates)``, so any
    split across processes gives identical results. ``log``: a ResultLog path; rows
    already there are skipped (resume) and returned as dicts.
    ``method``: ``"certdr"`` or ``"masking"`` (kwargs go to the certify function)."""
    from certkit.core.progress import progress
    from certkit.core.results import ResultLog
    from certkit.rank.metrics import rank_docs

    if method == "certdr":
        def fn(q: str, d: list[str], **kw: Any) -> CertResult:
            return certify_query(ranker, q, d, source, **kw)
    elif method == "masking":
        from certkit.rank.masking import certify_query_masking

        def fn(q: str, d: list[str], **kw: Any) -> CertResult:
            return certify_query_masking(ranker, q, d, **kw)
    else:
        raise ValueError(f"method: expected 'certdr' or 'masking', got {method!r}")
    qids = sorted(q for q in candidates if q in queries)
    rl = ResultLog(log) if log else None
    todo = set(rl.todo(range(len(qids)))) if rl is not None else set(range(len(qids)))
    done_rows = {r["idx"]: r for r in rl.rows()} if rl is not None else {}
    out: list[CertResult | dict[str, Any]] = []
    for i in progress(range(len(qids)), total=len(qids), desc=f"certify ({method})", unit="query"):
        qid = qids[i]
        if i not in todo:
            out.append(done_rows[i])
            continue
        ranked = rank_docs(candidates[qid])[:depth]
        res = fn(queries[qid], [corpus[d] for d in ranked], seed=seed, query_index=i, qid=qid,
                 doc_ids=ranked, **kwargs)
        if rl is not None:
            rl.write(res.to_row(i))
        out.append(res)
    if rl is not None:
        rl.close()
    return out


def crq(results: Sequence[CertResult | Mapping[str, Any]], ks: Sequence[int] = DEFAULT_KS,
        radius: int | None = None) -> dict[int, float]:
    """Certified robust query rate at each K: the fraction of queries certified at K.
    For masking results, ``radius`` asks for certification against that many word
    substitutions (default: as certified, radius >= 1)."""
    out = {}
    for k in ks:
        ok = 0
        for r in results:
            if isinstance(r, CertResult):
                cert, rad = r.certified.get(k, False), (r.radius or {}).get(k)
            else:
                cert = r["certified"].get(str(k), False)
                rad = (r.get("radius") or {}).get(str(k))
            if radius is not None and rad is not None:
                ok += int(rad >= radius)
            else:
                ok += int(bool(cert))
        out[k] = ok / len(results) if results else 0.0
    return out
