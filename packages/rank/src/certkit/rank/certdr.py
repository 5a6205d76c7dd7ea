"""Certified top-K robustness to word substitution by randomized synonym smoothing
(CertDR: Wu, Zhang, Guo, de Rijke, Cheng, CIKM 2022, arXiv:2209.06691; the smoothing
and TV bound follow SAFER, Ye, Gong, Liu, ACL 2020, arXiv:2005.14424).

Smoothing. Every word ``w`` of a document is replaced by a word drawn uniformly from its
perturbation set ``P_w = {w} ∪ neighbours(w)``, independently per position; the smoothed
score is ``g(q, d) = E[σ(f(q, Z(d)))]`` (σ: :class:`~certkit.rank.smoothing.ScoreTransform`).
Draws come from the core Philox sampler keyed by (seed, query index, document index,
position, sample index): stream ``query << 32 | doc``, raw 32-bit word
``(position << 32) + sample``, mapped to a choice by multiply-shift
(:func:`sample_rows`, one sampler call for every position of every document), so any split
of the work reproduces bit for bit, and a position's draws do not depend on which other
positions are sampled. Rankers whose score is a function of summed per-word features
(BM25: length and query-term counts; :class:`~certkit.rank.rankers.AdditiveScorer`) are
scored without building documents, sampling only the positions that can change them.

Threat model. The attacker replaces each word ``w`` by any ``w' ∈ S_w`` (the attack's
synonym set, by default ``S_w = P_w``; a capitalised token keeps itself in place of its
lower-case form in both sets, see :class:`SubstitutionTable`). For the perturbed document the smoothing draws
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
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from certkit.core._ext import core_ext
from certkit.core.validation import check_int, check_seed
from certkit.rank.candidates import CertResult, check_common, prepare_candidates, split_words
from certkit.rank.rankers import (
    AdditiveScorer,
    Ranker,
    check_docs,
    choice_texts,
    score_choices_batch,
)
from certkit.rank.smoothing import (
    DEFAULT_KS,
    ScoreTransform,
    correct_alpha,
    decide_topk,
    mean_bounds,
    stream_key,
)
from certkit.rank.synonyms import SynonymSource, perturbation_set

__all__ = ["CertResult", "SubstitutionTable", "certify_query", "sample_indices",
           "sample_rows", "sample_substitutions", "smoothed_scores", "split_words", "substitution_sets",
           "substitution_table", "tv_bound", "tv_bounds"]

_WORD = re.compile(r"^[A-Za-z]+$")
_BERNOULLI_OFFSET = 1 << 62  # disjoint counter range for Clopper-Pearson rounding
_POS_SHIFT = 32  # sample s of position i: element (i << 32) + s of the (query, doc) stream
_MAX_POSITIONS = 1 << 30  # keeps every substitution draw below _BERNOULLI_OFFSET
_SAMPLER_TV = 2.0**-33  # per choice: |P(choice) − 1/|A|| < 2^-32 with multiply-shift


def substitution_sets(words: Sequence[str], source: SynonymSource, *,
                      _cache: dict[tuple[str, str], object] | None = None) -> list[tuple[str, ...]]:
    """``A(w)`` per position: the token itself first, then the neighbours of its lower-case
    form (non-alphabetic tokens keep ``(token,)``). For lower-case words ``A(w) = P_w``."""
    cache: dict[tuple[str, str], object] = {} if _cache is None else _cache
    out: list[tuple[str, ...]] = []
    for w in words:
        hit = cache.get(("s", w))
        if hit is None:
            hit = _aset(w, source)
            cache[("s", w)] = hit
        out.append(hit)  # type: ignore[arg-type]
    return out


def _aset(w: str, source: SynonymSource) -> tuple[str, ...]:
    if not _WORD.match(w):
        return (w,)
    lw = w.lower()
    return perturbation_set(lw, source) if lw == w else (w, *[x for x in source(lw) if x != lw])


class SubstitutionTable:
    """Smoothing sets and TV factors per token, as arrays, shared by every document and
    query certified with the same (smoothing source, attack source). Filled lazily;
    sources must not change after use (the table caches their answers).

    For a token ``w`` (case kept): ``A(w)`` as in :func:`substitution_sets`, the attack
    set ``S_w`` built the same way from the attack source (``w`` itself and the attack
    neighbours of ``lower(w)``; ``S_w = P_w`` for lower-case words), and for alphabetic
    tokens ``q_w = min_{w' ∈ S_w} |A(w) ∩ A(w')| / max(|A(w)|, |A(w')|)`` (1 for other
    tokens, which are never substituted), less ``(|A(w)| + |A(w')|)·2⁻³³`` for the
    sampler's distance from uniform (:func:`sample_rows`). Using the token's own ``A(w)``
    (not ``P_{lower(w)}``) keeps the bound exact for case-sensitive rankers.

    Arrays, indexed by word id (``ids``): ``size`` (V,) = |A(w)| (0: not a registered
    token), ``start`` (V,) into ``choice`` (Σ size,), the word ids of ``A(w)`` in order,
    ``q`` (V,). ``words[i]`` is the word of id i.
    """

    def __init__(self, source: SynonymSource, attack_source: SynonymSource | None = None) -> None:
        self.source = source
        self.attack_source = attack_source
        self.words: list[str] = []
        self._id: dict[str, int] = {}
        self._size: list[int] = []
        self._start: list[int] = []
        self._q: list[float] = []
        self._choice: list[int] = []
        self._sets: dict[str, frozenset[str]] = {}
        self._docs: dict[str, npt.NDArray[np.int64]] = {}
        self._arrays: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64],
                            npt.NDArray[np.float64]] | None = None

    def _word_id(self, w: str) -> int:
        i = self._id.get(w)
        if i is None:
            i = self._id[w] = len(self.words)
            self.words.append(w)
            self._size.append(0)
            self._start.append(0)
            self._q.append(1.0)
        return i

    def _frozen(self, w: str) -> frozenset[str]:
        s = self._sets.get(w)
        if s is None:
            s = self._sets[w] = frozenset(_aset(w, self.source))
        return s

    def _register(self, w: str) -> int:
        i = self._word_id(w)
        if self._size[i]:
            return i
        a = _aset(w, self.source)
        choice = [self._word_id(x) for x in a]
        self._start[i] = len(self._choice)
        self._size[i] = len(a)
        self._choice.extend(choice)
        if _WORD.match(w):
            pw = self._frozen(w)
            q = 1.0
            for alt in _aset(w, self.attack_source or self.source):
                if alt == w:
                    continue  # unchanged: the same distribution
                pa = self._frozen(alt)
                # the sampler's choice probabilities are within 2^-32 of uniform
                # (sample_rows), so its draws over A and A' are within (|A| + |A'|)/2^33
                # in TV of U(A), U(A'): the maximal coupling loses that much more
                q = min(q, len(pw & pa) / max(len(pw), len(pa)) - (len(pw) + len(pa)) * _SAMPLER_TV)
            self._q[i] = max(0.0, q)
        self._arrays = None
        return i

    def ids(self, tokens: Sequence[str]) -> npt.NDArray[np.int64]:
        """Word ids of ``tokens`` (T,), registering new tokens. Shape (T,)."""
        get = self._id.get
        size = self._size
        out = []
        for w in tokens:
            i = get(w)
            if i is None or not size[i]:
                i = self._register(w)
            out.append(i)
        return np.fromiter(out, dtype=np.int64, count=len(out))

    def doc_ids(self, doc: str) -> npt.NDArray[np.int64]:
        """Word ids of a document's positions (:func:`split_words`), cached per text
        (candidates recur across the queries of a run). Shape (T,)."""
        hit = self._docs.get(doc)
        if hit is None:
            if len(self._docs) > 200_000:
                self._docs.clear()
            hit = self._docs[doc] = self.ids(split_words(doc))
        return hit

    def arrays(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64],
                              npt.NDArray[np.float64]]:
        """(size (V,), start (V,), choice (Σ size,), q (V,)) as numpy arrays."""
        if self._arrays is None:
            self._arrays = (np.array(self._size, np.int64), np.array(self._start, np.int64),
                            np.array(self._choice, np.int64), np.array(self._q, np.float64))
        return self._arrays

    def choices(self, token_id: int) -> tuple[str, ...]:
        """``A(w)`` of a registered token id, as words."""
        st, sz = self._start[token_id], self._size[token_id]
        return tuple(self.words[c] for c in self._choice[st: st + sz])


_TABLES: weakref.WeakKeyDictionary[Any, dict[Any, SubstitutionTable]] = weakref.WeakKeyDictionary()


def substitution_table(source: SynonymSource, attack_source: SynonymSource | None = None
                       ) -> SubstitutionTable:
    """The shared :class:`SubstitutionTable` of these sources (one per pair, kept while
    ``source`` lives); a fresh one when ``source`` cannot be weakly referenced."""
    try:
        per = _TABLES.setdefault(source, {})
    except TypeError:
        return SubstitutionTable(source, attack_source)
    key = attack_source if attack_source is not None else None
    try:
        tab = per.get(key)
    except TypeError:  # unhashable attack source
        return SubstitutionTable(source, attack_source)
    if tab is None:
        tab = per[key] = SubstitutionTable(source, attack_source)
    return tab


def tv_bounds(q: npt.NDArray[np.float64], doc_ptr: npt.NDArray[np.int64],
              budget: int | None = None) -> npt.NDArray[np.float64]:
    """``o_d = 1 − ∏ q_w`` per document (see module docstring), vectorised over D documents
    whose positions' factors are ``q[doc_ptr[d]:doc_ptr[d + 1]]``. ``budget``: only the
    ``budget`` smallest factors of each document enter the product. Shape (D,)."""
    d = doc_ptr.size - 1
    doc_of = np.repeat(np.arange(d), np.diff(doc_ptr))
    qv = np.asarray(q, dtype=np.float64)
    sub = np.flatnonzero(qv < 1.0)  # factors of 1 change no product
    doc_of, qv = doc_of[sub], qv[sub]
    if budget is not None and qv.size:
        order = np.lexsort((qv, doc_of))
        sd = doc_of[order]
        rank = np.arange(sd.size) - np.searchsorted(sd, sd)  # position within its document
        keep = order[rank < budget]
        doc_of, qv = doc_of[keep], qv[keep]
    with np.errstate(divide="ignore"):
        logs = np.bincount(doc_of, weights=np.log(qv), minlength=d)
    return np.clip(-np.expm1(logs), 0.0, 1.0)


def tv_bound(words: Sequence[str], source: SynonymSource,
             attack_source: SynonymSource | None = None, budget: int | None = None) -> float:
    """``o_d = 1 − ∏_w q_w`` of one document (see module docstring). ``attack_source`` gives
    ``S_w`` (default: the smoothing source, i.e. ``S_w = P_w``). ``budget``: the attacker
    substitutes at most that many positions, so only the ``budget`` smallest ``q_w`` enter
    the product (the others are 1); None: every position."""
    if budget is not None:
        budget = check_int(budget, "budget", minimum=0)
    tab = substitution_table(source, attack_source)
    ids = tab.ids(list(words))
    return float(tv_bounds(tab.arrays()[3][ids], np.array([0, ids.size]), budget)[0])


def _uniform_rows(n: int, seed: int, streams: npt.NDArray[np.integer],
                  offsets: npt.NDArray[np.integer]) -> npt.NDArray[np.float64]:
    """(R, n) float64 U(0, 1): row r holds elements ``[offsets[r], offsets[r] + n)`` of the
    core sampler's stream ``(seed, streams[r])``, i.e. ``uniform_noise(n, 0, 1, seed,
    offsets[r], float64, stream=streams[r])``, for every row in one call (the core's
    one-call row sampler, ``core_ext.rng.fill``, as ``gaussian_rows`` uses it)."""
    out = np.empty((streams.size, n), dtype=np.float64)
    if out.size:
        core_ext.rng.fill(out, seed, streams.astype(np.uint64), offsets.astype(np.uint64), 1, 0.0, 1.0)
    return out


def sample_rows(sizes: npt.NDArray[np.int64], streams: npt.NDArray[np.integer],
                positions: npt.NDArray[np.int64], n: int, *, seed: int,
                first_sample: int = 0) -> npt.NDArray[np.int64]:
    """Choice indices of R (document, position) rows in one sampler call. Shape (R, n):
    ``idx[r, s] = ⌊b·sizes[r] / 2³²⌋`` (Lemire's multiply-shift, exact integer arithmetic)
    with ``b`` the raw 32-bit Philox word number ``(positions[r] << 32) + first_sample + s``
    of stream ``(seed, streams[r])`` (``certkit.core.random_bits``), drawn for every row by
    the core's one-call row sampler. Each choice then has probability within 2⁻³² of
    ``1/size``; the TV factors of :class:`SubstitutionTable` account for it."""
    seed = check_seed(seed)
    if positions.size and int(positions.max()) >= _MAX_POSITIONS:
        raise ValueError(f"docs: documents longer than {_MAX_POSITIONS} words are not supported")
    if first_sample + n > 1 << _POS_SHIFT:
        raise ValueError("n: first_sample + n must stay below 2**32")
    bits = np.empty((streams.size, n), dtype=np.uint32)
    if bits.size:
        offsets = (positions.astype(np.uint64) << np.uint64(_POS_SHIFT)) + np.uint64(first_sample)
        core_ext.rng.fill_bits(bits, seed, streams.astype(np.uint64), offsets)
    x = bits.astype(np.uint64)
    x *= sizes.astype(np.uint64)[:, None]
    x >>= np.uint64(32)
    return x.view(np.int64)


def sample_indices(sizes: Sequence[int] | npt.NDArray[np.integer], n: int, *, seed: int, stream: int,
                   first_sample: int = 0) -> npt.NDArray[np.int64]:
    """(n, T) choice indices of one document: ``idx[s, i] = ⌊b·sizes[i] / 2³²⌋`` with ``b``
    raw word ``(i << 32) + first_sample + s`` of the core sampler's stream ``(seed,
    stream)`` (:func:`sample_rows`; position-major keying: a position's draws do not depend on which
    other positions are sampled, so certificates may skip positions that cannot change
    the score). Single-choice positions take choice 0 and draw nothing."""
    sz = np.asarray(sizes, dtype=np.int64)
    n = check_int(n, "n", minimum=0)
    idx = np.zeros((n, sz.size), dtype=np.int64)
    var = np.flatnonzero(sz > 1)
    if var.size and n:
        streams = np.full(var.size, check_seed(stream, "stream"), dtype=np.uint64)
        idx[:, var] = sample_rows(sz[var], streams, var, n, seed=seed, first_sample=first_sample).T
    return idx


def sample_substitutions(words: Sequence[str], sets: Sequence[Sequence[str]], n: int, *,
                         seed: int, stream: int, first_sample: int = 0) -> list[str]:
    """``n`` smoothed copies of a document as texts: position i takes
    ``sets[i][idx[s, i]]`` with ``idx`` from :func:`sample_indices`."""
    if len(words) == 0:
        return [""] * n
    idx = sample_indices([len(x) for x in sets], n, seed=seed, stream=stream, first_sample=first_sample)
    return choice_texts(sets, idx)


def _is_additive(ranker: object) -> bool:
    # attribute test: cheaper than isinstance on a runtime-checkable Protocol
    return callable(getattr(ranker, "choice_features", None)) and callable(getattr(ranker, "score_features", None))


def smoothed_scores(ranker: Ranker, query: str, table: SubstitutionTable,
                    tokens: npt.NDArray[np.int64], doc_ptr: npt.NDArray[np.int64], n: int, *,
                    seed: int, query_index: int, first_sample: int = 0) -> npt.NDArray[np.float64]:
    """Raw scores ``f(q, Z(d_j))`` of n smoothed copies of each of D documents. Shape (D, n).

    tokens: (P,) word ids (``table.ids``) of the documents' positions, document j being
    ``tokens[doc_ptr[j]:doc_ptr[j + 1]]``. Copy s of document j draws position i from
    :func:`sample_rows` with stream ``stream_key(query_index, j)``, so the copies equal
    ``sample_substitutions`` of the document. Rankers with :class:`AdditiveScorer`
    are scored from summed features, sampling only the positions whose choices differ
    in features (the others add a constant); others through :func:`score_choices_batch`.
    """
    stream0 = np.uint64(stream_key(query_index, 0))
    if _is_additive(ranker):
        plan = feature_plan(ranker, query, table, tokens, doc_ptr)
        idx = sample_rows(plan.row_size, stream0 | plan.row_doc.astype(np.uint64), plan.row_pos, n,
                          seed=seed, first_sample=first_sample)
        out = np.asarray(ranker.score_features(query, plan_features(plan, idx)), dtype=np.float64)
        return out.reshape(doc_ptr.size - 1, n)
    d = doc_ptr.size - 1
    doc_of = np.repeat(np.arange(d, dtype=np.int64), np.diff(doc_ptr))
    pos = np.arange(tokens.size, dtype=np.int64) - doc_ptr[doc_of]
    sz = table.arrays()[0][tokens]
    streams_all = stream0 | doc_of.astype(np.uint64)
    var = np.flatnonzero(sz > 1)
    rows = sample_rows(sz[var], streams_all[var], pos[var], n, seed=seed, first_sample=first_sample)
    items = []
    owner = doc_of[var]
    bounds = np.searchsorted(owner, np.arange(d + 1))
    for j in range(d):
        lo, hi = int(doc_ptr[j]), int(doc_ptr[j + 1])
        idx = np.zeros((n, hi - lo), dtype=np.int64)
        idx[:, pos[var[bounds[j]: bounds[j + 1]]]] = rows[bounds[j]: bounds[j + 1]].T
        items.append(([table.choices(int(t)) for t in tokens[lo:hi]], idx))
    return np.stack(score_choices_batch(ranker, query, items)) if d else np.zeros((0, n))


@dataclass
class FeaturePlan:
    """What an :class:`AdditiveScorer` needs to score smoothed copies of D documents:
    the constant part of each document's features and the R positions that vary.

    base: (D, m) summed features of the fixed positions; rows: (R,) the varying positions
    (indices into the (P,) positions), in document order; row_doc (R,), row_pos (R,),
    row_size (R,), row_first (R,): their document, position in it, |A(w)| and first entry
    in ``phi``; phi: (Σ|A(w)|, m) features of every (position, choice). packed: when the
    features are non-negative integers whose per-document sums fit, ``phi`` and ``base``
    packed into one int64 per entry (fields ``shifts``/``masks``; sums never carry across
    fields), else None. udocs/ustart: the documents with varying positions and the first
    row of each."""

    base: npt.NDArray[Any]
    rows: npt.NDArray[np.int64]
    row_doc: npt.NDArray[np.int64]
    row_pos: npt.NDArray[np.int64]
    row_size: npt.NDArray[np.int64]
    row_first: npt.NDArray[np.int64]
    phi: npt.NDArray[Any]
    udocs: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    ustart: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    packed: npt.NDArray[np.int64] | None = None
    packed_base: npt.NDArray[np.int64] | None = None
    shifts: npt.NDArray[np.int64] | None = None
    masks: npt.NDArray[np.int64] | None = None


def feature_plan(ranker: AdditiveScorer, query: str, table: SubstitutionTable,
                 tokens: npt.NDArray[np.int64], doc_ptr: npt.NDArray[np.int64]) -> FeaturePlan:
    """The :class:`FeaturePlan` of D documents (``tokens``/``doc_ptr`` as in
    :func:`smoothed_scores`)."""
    size, start, choice, _ = table.arrays()
    d = doc_ptr.size - 1
    doc_of = np.repeat(np.arange(d, dtype=np.int64), np.diff(doc_ptr))
    sz, st = size[tokens], start[tokens]
    first = np.cumsum(sz) - sz
    total = int(sz.sum())
    pc = choice[np.repeat(st - first, sz) + np.arange(total)]
    uniq, inv = np.unique(pc, return_inverse=True)
    phi_u = np.asarray(ranker.choice_features(query, [table.words[c] for c in uniq.tolist()]))
    if phi_u.ndim != 2 or phi_u.shape[0] != uniq.size:
        raise ValueError("choice_features: expected shape (W, m)")
    phi = phi_u[inv]
    m = phi.shape[1]
    if total == 0:
        e = np.zeros(0, np.int64)
        return FeaturePlan(np.zeros((d, m), phi.dtype), e, e, e, e, e, phi)
    shifts = masks = None
    if np.issubdtype(phi.dtype, np.integer) and int(phi.min()) >= 0:
        # Pack the m non-negative integer features of an entry into one int64. Field f gets
        # the bits of Σ_entries φ_f, an upper bound on any document's sum (a document
        # takes one entry per position), so packed sums never carry across fields and
        # packing is injective: equal keys <=> equal features.
        widths = np.array([max(1, int(t).bit_length()) for t in phi.sum(0)], dtype=np.int64)
        if int(widths.sum()) <= 63:
            shifts = np.concatenate(([0], np.cumsum(widths)[:-1])).astype(np.int64)
            masks = (np.int64(1) << widths) - 1
    if shifts is not None and masks is not None:
        key = (phi.astype(np.int64) << shifts).sum(1)
        klo = np.minimum.reduceat(key, first)
        rel = klo != np.maximum.reduceat(key, first)
        cs = np.concatenate(([0], np.cumsum(np.where(rel, 0, klo))))
        packed_base = cs[doc_ptr[1:]] - cs[doc_ptr[:-1]]
        base: npt.NDArray[Any] = (packed_base[:, None] >> shifts) & masks
    else:
        lo = np.minimum.reduceat(phi, first, axis=0)
        rel = np.any(lo != np.maximum.reduceat(phi, first, axis=0), axis=1)
        fixed = ~rel
        base = np.stack([np.bincount(doc_of[fixed], weights=lo[fixed, c], minlength=d) for c in range(m)], 1)
    r = np.flatnonzero(rel)
    plan = FeaturePlan(base, r, doc_of[r], r - doc_ptr[doc_of[r]], sz[r], first[r], phi)
    plan.udocs, plan.ustart = np.unique(plan.row_doc, return_index=True)
    if shifts is not None:
        plan.packed, plan.packed_base, plan.shifts, plan.masks = key, packed_base, shifts, masks
    return plan


def plan_features(plan: FeaturePlan, idx: npt.NDArray[np.int64]) -> npt.NDArray[Any]:
    """Summed features of the n copies of each document, given the choices ``idx`` (R, n)
    of the plan's varying positions. Shape (D·n, m), document-major."""
    d, m = plan.base.shape
    n = idx.shape[1]
    udocs, ustart = plan.udocs, plan.ustart
    at = idx + plan.row_first[:, None]
    if plan.packed is not None:
        acc = np.repeat(plan.packed_base[:, None], n, axis=1)
        if at.size:
            acc[udocs] += np.add.reduceat(plan.packed[at], ustart, axis=0)
        return (acc.reshape(-1, 1) >> plan.shifts) & plan.masks
    acc_f = np.repeat(plan.base[:, None, :], n, axis=1)
    if at.size:
        acc_f[udocs] += np.add.reduceat(plan.phi[at], ustart, axis=0)
    return acc_f.reshape(d * n, m)


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
                  seed: int = 0, query_index: int = 0, qid: str = "", doc_ids: Sequence[str] | None = None,
                  table: SubstitutionTable | None = None) -> CertResult:
    """CertDR certificate for one query over its candidate documents ``docs`` (N,).

    n: Monte-Carlo samples per document; alpha: joint failure probability of all the
    bounds of this query; correction: ``"bonferroni"`` | ``"sidak"`` (over the N
    candidates); bound: see :func:`~certkit.rank.smoothing.mean_bounds`; transform: the
    frozen σ (default: fitted to the clean candidates' scores); budget: at most that many
    substituted words per document (None: any number); table: the per-token sets and TV
    factors (default: the one shared by these sources, :func:`substitution_table`).
    """
    docs = check_docs(query, docs)
    n, alpha, seed, query_index = check_common(n, alpha, seed, query_index)
    if budget is not None:
        budget = check_int(budget, "budget", minimum=0)
    ids, transform, _ = prepare_candidates(ranker, query, docs, doc_ids, transform, split=False)
    tab = table if table is not None else substitution_table(source, attack_source)
    if tab.source is not source or tab.attack_source is not attack_source:
        raise ValueError("table: built for other synonym sources")
    per = [tab.doc_ids(d) for d in docs]
    doc_ptr = np.concatenate(([0], np.cumsum([p.size for p in per]))).astype(np.int64)
    tokens = np.concatenate(per)
    vals = transform(smoothed_scores(ranker, query, tab, tokens, doc_ptr, n, seed=seed,
                                     query_index=query_index))
    per_doc = correct_alpha(alpha, len(docs), correction)
    bern = None
    if bound == "clopper_pearson":
        streams = np.uint64(stream_key(query_index, 0)) | np.arange(len(docs), dtype=np.uint64)
        bern = _uniform_rows(n, seed, streams, np.full(len(docs), _BERNOULLI_OFFSET, dtype=np.uint64))
    lo, hi = mean_bounds(vals, per_doc, bound, bern)
    tv = tv_bounds(tab.arrays()[3][tokens], doc_ptr, budget)
    g = vals.mean(1)
    dec = decide_topk(g, lo, hi, tv, ks, threat)
    return CertResult(qid, ids, g, lo, hi, tv, dec.order, dec.certified, dec.margin, n, alpha)
