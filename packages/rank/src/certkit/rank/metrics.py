"""IR metrics with trec_eval semantics: nDCG@k (graded), RR@k, R@k, P@k, AP / MAP.

Conventions (they match ``trec_eval -c`` / pytrec_eval, and are cross-checked against
pytrec_eval in the tests):

- **Ties.** ``ties="trec_eval"`` (default) orders a query's documents by score
  descending, then by docno descending (string comparison), exactly as trec_eval does —
  whatever ranks the run file claims. ``ties="input"`` keeps the run's insertion order
  among equal scores (a stable sort), which is what a ranker's own output order means.
- **Missing queries count as 0.** Every query of the qrels is evaluated; a query the run
  does not answer scores 0 on every metric (``trec_eval -c``). Run queries absent from the
  qrels are ignored, with a warning that gives their count.
- **Relevance.** Binary metrics count ``rel >= relevance_level`` (default 1) as relevant;
  nDCG uses the graded ``rel`` as gain (linear gain, log2(rank + 1) discount, as
  trec_eval's ``ndcg_cut``), negative grades count as 0. A query with no relevant document
  scores 0.
- P@k divides by k even when fewer than k documents are retrieved (trec_eval's P_k).

Names: ``ndcg@k``, ``ndcg`` (no cut), ``rr@k``, ``rr``, ``r@k``, ``p@k``, ``ap`` (and its
mean ``map``), ``ap@k``. :func:`evaluate` returns per-query arrays (for variance and
worst-k% analysis) in an :class:`Evaluation`.
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

__all__ = ["DEFAULT_METRICS", "Evaluation", "evaluate", "parse_metric", "rank_docs"]

DEFAULT_METRICS = ("ndcg@10", "map", "rr@10", "p@10", "r@100")
_METRIC_RE = re.compile(r"^(ndcg|rr|r|p|ap|map)(?:@(\d+))?$")


def parse_metric(name: str) -> tuple[str, int | None]:
    """``"ndcg@10"`` -> ``("ndcg", 10)``; ``"map"`` -> ``("ap", None)``."""
    if not isinstance(name, str):
        raise TypeError(f"metrics: expected metric names (str), got {type(name).__name__}")
    m = _METRIC_RE.match(name.strip().lower())
    if m is None:
        raise ValueError(f"metrics: unknown metric {name!r}; expected ndcg[@k], rr[@k], r@k, p@k, ap[@k] or map")
    kind, k = m.group(1), m.group(2)
    if kind == "map":
        kind = "ap"
    if kind in ("r", "p") and k is None:
        raise ValueError(f"metrics: {name!r} needs a cutoff, e.g. {kind}@10")
    cut = int(k) if k is not None else None
    if cut is not None and cut < 1:
        raise ValueError(f"metrics: cutoff must be >= 1 in {name!r}")
    return kind, cut


class _Desc:
    __slots__ = ("s",)

    def __init__(self, s: str) -> None:
        self.s = s

    def __lt__(self, other: _Desc) -> bool:
        return self.s > other.s


def rank_docs(scores: Mapping[str, float], ties: str = "trec_eval") -> list[str]:
    """Docids of one query in ranked order (see module docstring for ``ties``)."""
    items = list(scores.items())
    if ties == "trec_eval":
        items.sort(key=lambda kv: (-float(kv[1]), _Desc(kv[0])))
    elif ties == "input":
        items.sort(key=lambda kv: -float(kv[1]))
    else:
        raise ValueError(f"ties: expected 'trec_eval' or 'input', got {ties!r}")
    return [d for d, _ in items]


@dataclass
class Evaluation:
    """Per-query metric values. ``per_query[m]`` has shape (Q,) aligned with ``qids``."""

    qids: list[str]
    per_query: dict[str, npt.NDArray[np.float64]]

    def mean(self) -> dict[str, float]:
        return {m: float(v.mean()) if v.size else 0.0 for m, v in self.per_query.items()}

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


def _one_query(ranked: Sequence[str], judged: Mapping[str, int], kind: str, cut: int | None,
               relevance_level: int) -> float:
    num_rel = sum(1 for r in judged.values() if r >= relevance_level)
    top = ranked if cut is None else ranked[:cut]
    if kind == "p":
        assert cut is not None
        return sum(1 for d in top if judged.get(d, 0) >= relevance_level) / cut
    if num_rel == 0 and kind != "ndcg":
        return 0.0
    if kind == "r":
        return sum(1 for d in top if judged.get(d, 0) >= relevance_level) / num_rel
    if kind == "rr":
        for i, d in enumerate(top, 1):
            if judged.get(d, 0) >= relevance_level:
                return 1.0 / i
        return 0.0
    if kind == "ap":
        hits, total = 0, 0.0
        for i, d in enumerate(top, 1):
            if judged.get(d, 0) >= relevance_level:
                hits += 1
                total += hits / i
        return total / num_rel
    if kind == "ndcg":
        gains = np.array([max(judged.get(d, 0), 0) for d in top], dtype=np.float64)
        disc = 1.0 / np.log2(np.arange(2, gains.size + 2))
        dcg = float((gains * disc).sum())
        ideal = np.sort(np.array([max(r, 0) for r in judged.values()], dtype=np.float64))[::-1]
        if cut is not None:
            ideal = ideal[:cut]
        idcg = float((ideal * (1.0 / np.log2(np.arange(2, ideal.size + 2)))).sum())
        return dcg / idcg if idcg > 0 else 0.0
    raise AssertionError(kind)  # pragma: no cover


def evaluate(run: Mapping[str, Mapping[str, float]], qrels: Mapping[str, Mapping[str, int]],
             metrics: Sequence[str] = DEFAULT_METRICS, *, ties: str = "trec_eval",
             relevance_level: int = 1, warn_unknown: bool = True) -> Evaluation:
    """Evaluate ``run`` against ``qrels``: per-query values for every query of the qrels
    (sorted qids; a missing query scores 0). See the module docstring for conventions."""
    if isinstance(metrics, str):
        metrics = [metrics]
    parsed = [(m, *parse_metric(m)) for m in metrics]
    relevance_level = check_int(relevance_level, "relevance_level", minimum=1)
    if ties not in ("trec_eval", "input"):
        raise ValueError(f"ties: expected 'trec_eval' or 'input', got {ties!r}")
    extra = [q for q in run if q not in qrels]
    if extra and warn_unknown:
        warnings.warn(f"evaluate: {len(extra)} run queries are not in the qrels and are ignored "
                      f"(e.g. {sorted(extra)[:3]})", stacklevel=2)
    missing = [q for q in qrels if q not in run or not run[q]]
    if missing and warn_unknown:
        warnings.warn(f"evaluate: {len(missing)} qrels queries have no results in the run; "
                      "they count as 0", stacklevel=2)
    qids = sorted(qrels)
    out = {m: np.zeros(len(qids), dtype=np.float64) for m, _, _ in parsed}
    for i, qid in enumerate(qids):
        docs = run.get(qid)
        if not docs:
            continue
        for sc in docs.values():
            if not math.isfinite(float(sc)):
                raise ValueError(f"run: query {qid!r} has a non-finite score")
        ranked = rank_docs(docs, ties)
        judged = qrels[qid]
        for name, kind, cut in parsed:
            out[name][i] = _one_query(ranked, judged, kind, cut, relevance_level)
    return Evaluation(qids, out)
