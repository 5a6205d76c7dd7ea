"""Certificates over a whole run: :func:`certify_run` certifies every query of a
candidate run with CertDR (:mod:`certkit.rank.certdr`) or random masking
(:mod:`certkit.rank.masking`), resumably; :func:`crq` is the certified robust query rate
(CRQ@K, Wu et al., CIKM 2022).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from certkit.rank.candidates import CertResult
from certkit.rank.io import Run
from certkit.rank.rankers import Ranker
from certkit.rank.smoothing import DEFAULT_KS
from certkit.rank.synonyms import SynonymSource

__all__ = ["certify_run", "crq"]


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
        from certkit.rank.certdr import certify_query

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
