"""IR measures exactly as trec_eval computes them, under trec_eval's and ir-measures' names.

Conventions (those of trec_eval 9.x, which pytrec_eval wraps and ir-measures calls; the
tests compare every shared measure with both to 1e-12 on fuzzed runs):

- **Score comparison.** ``ties="trec_eval"`` (default) orders a query's documents by
  score descending, then by docno descending (byte-wise, ``strcmp``), exactly as
  trec_eval does, whatever ranks the run file claims. ``precision="single"`` (default)
  compares the scores as trec_eval 9.x stores them, in single precision (C ``float``), so
  scores that differ only beyond float32 precision are tied and ordered by docno;
  ``precision="double"`` is trec_eval 10's comparison. ``ties="input"`` keeps the run's
  insertion order among equal scores (a stable sort of the scores as given), which is what
  a ranker's own output order means.
- **Which queries.** By default (trec_eval's) a query is evaluated when the qrels judge it
  and the run retrieves something for it; the mean is over those queries. With
  ``complete=True`` (``trec_eval -c``; ir-measures' per-query output) every qrels query is
  evaluated and a query the run misses scores 0 on every measure (``num_rel`` included, as
  trec_eval 9's ``-c`` and ir-measures). Run queries absent from the qrels are ignored,
  with a warning that gives their count.
- **Relevance.** A document is relevant when its grade is >= the relevance level
  (``relevance_level``, ``trec_eval -l``, default 1; ir-measures' ``(rel=N)`` sets it per
  measure). Judged non-relevant: 0 <= grade < level. A negative grade is "in the pool but
  unjudged" (trec_eval): never relevant, not a judged non-relevant document for bpref,
  counted as judged by Judged@k (ir-measures). nDCG uses the grade as gain (negative grades
  gain 0) and ignores the relevance level, as trec_eval; the ideal ranking sorts every
  judged document by grade. A query with no relevant document scores 0.
- **Cut-offs.** P@k divides by k even when fewer than k documents are retrieved; R@k and
  AP@k (``map_cut``) divide by the number of relevant documents; RR@k is 0 when the first
  relevant document is below k. Judged@k divides by min(k, retrieved) (ir-measures).
- **Aggregates.** :meth:`Evaluation.aggregate` is trec_eval's ``all`` line: the mean, or
  the sum for the counts ``num_q``, ``num_ret``, ``num_rel``, ``num_rel_ret``.

Names (:func:`parse_measure`):

======================  =========================  ==========================
measure                 trec_eval                  ir-measures / ours
======================  =========================  ==========================
average precision       ``map``, ``map_cut.k``     ``AP``, ``AP@k``, ``map``, ``ap@k``
nDCG                    ``ndcg``, ``ndcg_cut.k``   ``nDCG``, ``nDCG@k``
precision               ``P.k``                    ``P@k``
recall                  ``recall.k``, ``set_recall``  ``R@k``, ``SetR`` (``R``: all retrieved)
set precision           ``set_P``                  ``SetP``
reciprocal rank         ``recip_rank``             ``RR``, ``RR@k``
R-precision             ``Rprec``                  ``Rprec``
bpref                   ``bpref``                  ``Bpref``
success                 ``success.k``              ``Success@k``
judged fraction         --                         ``Judged@k``
counts                  ``num_q``, ``num_ret``, ``num_rel``, ``num_rel_ret``
                                                   ``NumQ``, ``NumRet``, ``NumRel``, ``NumRelRet``
======================  =========================  ==========================

trec_eval's ``.`` and ``_`` forms are both accepted (``ndcg_cut.10``, ``ndcg_cut_10``);
``P.5,10`` and a bare family name (``P``, ``ndcg_cut``, ``recall``, ``map_cut``,
``success``) expand to those or to trec_eval's default cut-offs (:func:`expand_measures`).
ir-measures' ``(rel=N)`` goes before the cut-off: ``P(rel=2)@10``, ``AP(rel=2)``.
:func:`evaluate` returns per-query arrays (for variance and worst-k% analysis) in an
:class:`Evaluation`.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from certkit.core.validation import check_int

__all__ = ["COUNT_MEASURES", "DEFAULT_METRICS", "Evaluation", "Measure", "evaluate", "expand_measures",
           "format_trec_eval", "parse_measure", "parse_metric", "rank_docs"]

DEFAULT_METRICS = ("ndcg@10", "map", "rr@10", "p@10", "r@100")
COUNT_MEASURES = ("num_q", "num_ret", "num_rel", "num_rel_ret")

# kinds: ap ndcg p r rr rprec bpref success judged num_q num_ret num_rel num_rel_ret
_CUT_KINDS = {"ap", "ndcg", "p", "r", "rr", "success", "judged"}
_NEEDS_CUT = {"p", "success", "judged"}
_NO_CUT = {"rprec", "bpref", "setp", *COUNT_MEASURES}
# lower-cased name -> kind (ours, trec_eval's and ir-measures' spellings)
_ALIASES = {
    "ap": "ap", "map": "ap", "map_cut": "ap",
    "ndcg": "ndcg", "ndcg_cut": "ndcg",
    "p": "p",
    "r": "r", "recall": "r", "set_recall": "r", "setr": "r",
    "set_p": "setp", "setp": "setp",
    "rr": "rr", "recip_rank": "rr", "mrr": "rr",
    "rprec": "rprec", "bpref": "bpref",
    "success": "success", "judged": "judged",
    "num_q": "num_q", "numq": "num_q",
    "num_ret": "num_ret", "numret": "num_ret",
    "num_rel": "num_rel", "numrel": "num_rel",
    "num_rel_ret": "num_rel_ret", "numrelret": "num_rel_ret",
}
# trec_eval families whose bare name means a list of default cut-offs
_TREC_DEFAULT_CUTS = {
    "p": ("P", (5, 10, 15, 20, 30, 100, 200, 500, 1000)),
    "recall": ("recall", (5, 10, 15, 20, 30, 100, 200, 500, 1000)),
    "ndcg_cut": ("ndcg_cut", (5, 10, 15, 20, 30, 100, 200, 500, 1000)),
    "map_cut": ("map_cut", (5, 10, 15, 20, 30, 100, 200, 500, 1000)),
    "success": ("success", (1, 5, 10)),
}
_IRM_RE = re.compile(r"^([A-Za-z_]+?)(?:\(\s*rel\s*=\s*(-?\d+)\s*\))?(?:@(\d+))?$")
_TREC_RE = re.compile(r"^(P|recall|ndcg_cut|map_cut|success)[._](\d+)$", re.IGNORECASE)


@dataclass(frozen=True)
class Measure:
    """One measure: ``kind`` (see the module table), cut-off ``cut`` (None: whole ranking),
    per-measure relevance level ``rel`` (None: the evaluation's) and the ``name`` it was
    asked for (the key of its results)."""

    name: str
    kind: str
    cut: int | None = None
    rel: int | None = None


def parse_measure(name: str) -> Measure:
    """A measure from its trec_eval, ir-measures or certkit name (module docstring):
    ``"ndcg_cut.10"``, ``"ndcg_cut_10"``, ``"nDCG@10"``, ``"P.10"``, ``"AP(rel=2)"``,
    ``"recip_rank"``, ``"Rprec"``, ``"map"`` ... One name gives one measure; see
    :func:`expand_measures` for trec_eval's lists (``P.5,10``, bare ``P``)."""
    if not isinstance(name, str):
        raise TypeError(f"metrics: expected measure names (str), got {type(name).__name__}")
    text = name.strip()
    m = _TREC_RE.match(text)
    if m:
        family, cut_s = m.group(1).lower(), m.group(2)
        base, rel = family, None
    else:
        m = _IRM_RE.match(text)
        if m is None:
            raise ValueError(f"metrics: unknown measure {name!r}; expected a trec_eval name (map, "
                             "ndcg_cut.10, P.10, recall.100, recip_rank, Rprec, bpref, success.10, "
                             "num_rel, ...) or an ir-measures name (nDCG@10, AP, RR@10, R@100, P@10, "
                             "Judged@10, AP(rel=2), ...)")
        base, rel_s, cut_s = m.group(1).lower(), m.group(2), m.group(3)
        rel = int(rel_s) if rel_s is not None else None
    kind = _ALIASES.get(base)
    if kind is None:
        raise ValueError(f"metrics: unknown measure {name!r} (no measure called {base!r})")
    if base == "numret" and rel is not None:  # ir-measures spells NumRelRet as NumRet(rel=N)
        kind = "num_rel_ret"
    if base in ("map_cut", "ndcg_cut") and cut_s is None:
        raise ValueError(f"metrics: {name!r} needs a cut-off, e.g. {base}.10")
    cut = int(cut_s) if cut_s is not None else None
    if cut is not None and kind not in _CUT_KINDS:
        raise ValueError(f"metrics: {name!r} takes no cut-off")
    if cut is None and kind in _NEEDS_CUT:
        raise ValueError(f"metrics: {name!r} needs a cut-off, e.g. {text}@10 or {text}.10")
    if cut is not None and cut < 1:
        raise ValueError(f"metrics: cut-off must be >= 1 in {name!r}")
    if kind == "num_q" and rel is not None:
        raise ValueError(f"metrics: {name!r} takes no relevance level")
    return Measure(text, kind, cut, rel)


def parse_metric(name: str) -> tuple[str, int | None]:
    """``"ndcg@10"`` -> ``("ndcg", 10)``; ``"map"`` -> ``("ap", None)`` (kind, cut-off)."""
    m = parse_measure(name)
    return m.kind, m.cut


def expand_measures(names: str | Sequence[str]) -> list[Measure]:
    """Measures of one or more names, expanding trec_eval's lists: ``"P.5,10"`` gives P_5
    and P_10 and a bare family (``P``, ``recall``, ``ndcg_cut``, ``map_cut``, ``success``)
    gives trec_eval's default cut-offs. A name asked twice is kept once."""
    if isinstance(names, str):
        names = [names]
    out: dict[str, Measure] = {}
    for raw in names:
        text = raw.strip() if isinstance(raw, str) else raw
        if isinstance(text, str):
            fam, dot, params = text.partition(".")
            key = fam.lower() if fam in ("P", "recall", "ndcg_cut", "map_cut", "success") else None
            if key is not None and (not dot or "," in params):
                label, default = _TREC_DEFAULT_CUTS[key]
                cuts = [c.strip() for c in params.split(",")] if dot else [str(c) for c in default]
                for c in cuts:
                    m = parse_measure(f"{label}_{c}")
                    out.setdefault(m.name, m)
                continue
        m = parse_measure(text)
        out.setdefault(m.name, m)
    return list(out.values())


def rank_docs(scores: Mapping[str, float], ties: str = "trec_eval", precision: str = "single") -> list[str]:
    """Docids of one query in ranked order (see the module docstring for ``ties`` and
    ``precision``; ``precision`` applies to ``ties="trec_eval"``)."""
    if ties not in ("trec_eval", "input"):
        raise ValueError(f"ties: expected 'trec_eval' or 'input', got {ties!r}")
    if precision not in ("single", "double"):
        raise ValueError(f"precision: expected 'single' or 'double', got {precision!r}")
    docs = list(scores)
    if not docs:
        return []
    s = np.fromiter((float(v) for v in scores.values()), dtype=np.float64, count=len(docs))
    if ties == "input":
        return [docs[i] for i in np.argsort(-s, kind="stable").tolist()]
    if precision == "single":
        s = s.astype(np.float32)
    # docno descending among equal scores: a stable sort by score of the docs in docno-
    # descending order (docids are unique keys, so reverse=True is exactly descending)
    by_doc = sorted(range(len(docs)), key=docs.__getitem__, reverse=True)
    order = np.argsort(-s[by_doc], kind="stable")
    return [docs[by_doc[i]] for i in order.tolist()]


@dataclass
class Evaluation:
    """Per-query measure values. ``per_query[m]`` has shape (Q,) aligned with ``qids``."""

    qids: list[str]
    per_query: dict[str, npt.NDArray[np.float64]]
    kinds: dict[str, str] | None = None

    def mean(self) -> dict[str, float]:
        return {m: float(v.mean()) if v.size else 0.0 for m, v in self.per_query.items()}

    def aggregate(self) -> dict[str, float]:
        """trec_eval's ``all`` line: the mean over the evaluated queries, or the sum for
        the counts (``num_q``, ``num_ret``, ``num_rel``, ``num_rel_ret``)."""
        kinds = self.kinds or {}
        return {m: (float(v.sum()) if kinds.get(m) in COUNT_MEASURES else (float(v.mean()) if v.size else 0.0))
                for m, v in self.per_query.items()}

    def std(self) -> dict[str, float]:
        return {m: float(v.std(ddof=1)) if v.size > 1 else 0.0 for m, v in self.per_query.items()}

    def worst(self, fraction: float = 0.1) -> dict[str, float]:
        """Mean over the worst ``fraction`` of queries (at least one) per metric."""
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"fraction: expected a value in (0, 1], got {fraction!r}")
        out = {}
        for m, v in self.per_query.items():
            if v.size == 0:
                out[m] = 0.0
                continue
            n = max(1, math.ceil(fraction * v.size))
            out[m] = float(np.sort(v)[:n].mean())
        return out


def _one_query(grades: Sequence[int | None], judged: Mapping[str, int], m: Measure, level: int,
               rel: Sequence[bool], num_rel: int) -> float:
    """trec_eval's value of measure ``m`` for one query: ``grades`` of the ranked documents
    (None: not in the qrels), ``rel`` whether each is relevant at ``level``, ``num_rel``
    the query's relevant documents at ``level``."""
    kind, cut = m.kind, m.cut
    if kind == "num_q":
        return 1.0
    if kind == "num_ret":
        return float(len(grades))
    if kind == "num_rel":
        return float(num_rel)
    if kind == "num_rel_ret":
        return float(sum(rel))
    if kind == "setp":
        return sum(rel) / len(grades) if grades else 0.0
    if kind == "judged":
        assert cut is not None
        seen = grades[:cut]
        return sum(1 for g in seen if g is not None) / len(seen) if seen else 0.0
    if kind == "ndcg":
        return _ndcg(grades, judged, cut)
    top = rel if cut is None else rel[:cut]
    if kind == "p":
        assert cut is not None
        return sum(top) / cut
    if kind == "success":
        return float(any(top))
    if num_rel == 0:
        return 0.0
    if kind == "r":
        return sum(top) / num_rel
    if kind == "rr":
        return next((1.0 / i for i, r in enumerate(top, 1) if r), 0.0)
    if kind == "ap":
        hits, total = 0, 0.0
        for i, r in enumerate(top, 1):
            if r:
                hits += 1
                total += hits / i
        return total / num_rel
    if kind == "rprec":
        return sum(rel[:num_rel]) / num_rel
    if kind == "bpref":
        return _bpref(grades, judged, level, num_rel)
    raise AssertionError(kind)  # pragma: no cover


def _ndcg(grades: Sequence[int | None], judged: Mapping[str, int], cut: int | None) -> float:
    top = grades if cut is None else grades[:cut]
    gains = np.array([g if g is not None and g > 0 else 0 for g in top], dtype=np.float64)
    dcg = float((gains / np.log2(np.arange(2, gains.size + 2))).sum()) if gains.size else 0.0
    ideal = np.sort(np.array([g for g in judged.values() if g > 0], dtype=np.float64))[::-1]
    if cut is not None:
        ideal = ideal[:cut]
    idcg = float((ideal / np.log2(np.arange(2, ideal.size + 2))).sum()) if ideal.size else 0.0
    return dcg / idcg if idcg > 0 else 0.0


def _bpref(grades: Sequence[int | None], judged: Mapping[str, int], level: int, num_rel: int) -> float:
    # trec_eval's m_bpref.c: unjudged (and negative-grade) documents are skipped
    num_nonrel = sum(1 for g in judged.values() if 0 <= g < level)
    nonrel_so_far, total = 0, 0.0
    for g in grades:
        if g is None or g < 0:
            continue
        if g < level:
            nonrel_so_far += 1
        elif nonrel_so_far:
            total += 1.0 - min(nonrel_so_far, num_rel) / min(num_nonrel, num_rel)
        else:
            total += 1.0
    return total / num_rel


def evaluate(run: Mapping[str, Mapping[str, float]], qrels: Mapping[str, Mapping[str, int]],
             metrics: str | Sequence[str | Measure] = DEFAULT_METRICS, *, ties: str = "trec_eval",
             relevance_level: int = 1, complete: bool = False, precision: str = "single",
             warn_unknown: bool = True) -> Evaluation:
    """Evaluate ``run`` against ``qrels`` as trec_eval does (module docstring).

    metrics: names (:func:`expand_measures`) or :class:`Measure` objects; results are keyed
    by the name as given. complete: every qrels query is evaluated, a missing one scores 0
    (``trec_eval -c``); otherwise the queries the run answers. relevance_level: trec_eval's
    ``-l``. Returns per-query values in sorted qid order."""
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    measures = [m for m in names if isinstance(m, Measure)]
    measures += expand_measures([m for m in names if not isinstance(m, Measure)])
    relevance_level = check_int(relevance_level, "relevance_level", minimum=0)
    if ties not in ("trec_eval", "input"):
        raise ValueError(f"ties: expected 'trec_eval' or 'input', got {ties!r}")
    if precision not in ("single", "double"):
        raise ValueError(f"precision: expected 'single' or 'double', got {precision!r}")
    extra = [q for q in run if q not in qrels]
    if extra and warn_unknown:
        warnings.warn(f"evaluate: {len(extra)} run queries are not in the qrels and are ignored "
                      f"(e.g. {sorted(extra)[:3]})", stacklevel=2)
    missing = [q for q in qrels if q not in run or not run[q]]
    if missing and warn_unknown:
        what = "they count as 0 (complete)" if complete else "they are not evaluated (pass complete=True / -c to count them as 0)"
        warnings.warn(f"evaluate: {len(missing)} qrels queries have no results in the run; {what}", stacklevel=2)
    qids = sorted(qrels) if complete else sorted(q for q in qrels if run.get(q))
    out = {m.name: np.zeros(len(qids), dtype=np.float64) for m in measures}
    for i, qid in enumerate(qids):
        docs = run.get(qid)
        if not docs:
            continue
        for sc in docs.values():
            if not math.isfinite(float(sc)):
                raise ValueError(f"run: query {qid!r} has a non-finite score")
        judged = qrels[qid]
        grades = [judged.get(d) for d in rank_docs(docs, ties, precision)]
        at_level: dict[int, tuple[list[bool], int]] = {}
        for m in measures:
            level = relevance_level if m.rel is None else m.rel
            if level not in at_level:
                at_level[level] = ([g is not None and g >= level for g in grades],
                                   sum(1 for g in judged.values() if g >= level))
            out[m.name][i] = _one_query(grades, judged, m, level, *at_level[level])
    return Evaluation(qids, out, {m.name: m.kind for m in measures})


def format_trec_eval(ev: Evaluation, per_query: bool = False) -> list[str]:
    """trec_eval's output lines: ``measure<TAB>qid<TAB>value`` per query (query-major, with
    ``per_query``), then the ``all`` lines (:meth:`Evaluation.aggregate`). Values print as
    ``%6.4f``, counts as integers; trec_eval names print in its ``_`` form (``P_10``)."""
    kinds = ev.kinds or {}

    def label(name: str) -> str:
        m = _TREC_RE.match(name)
        return f"{m.group(1)}_{m.group(2)}" if m else name

    def fmt(name: str, qid: str, v: float) -> str:
        val = f"{round(v):d}" if kinds.get(name) in COUNT_MEASURES else f"{v:6.4f}"
        return f"{label(name):<22}\t{qid}\t{val}"

    lines: list[str] = []
    if per_query:
        for i, q in enumerate(ev.qids):
            lines.extend(fmt(m, q, float(v[i])) for m, v in ev.per_query.items())
    lines.extend(fmt(m, "all", v) for m, v in ev.aggregate().items())
    return lines
