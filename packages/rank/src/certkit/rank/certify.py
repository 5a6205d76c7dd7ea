"""Certificates over a whole run: :func:`certify_run` certifies every query of a
candidate run with CertDR (:mod:`certkit.rank.certdr`) or random masking
(:mod:`certkit.rank.masking`), resumably; :func:`crq` is the certified robust query rate
(CRQ@K, Wu et al., CIKM 2022).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from certkit.core.validation import check_int
from certkit.rank.candidates import CertResult, split_words
from certkit.rank.io import Run
from certkit.rank.rankers import Ranker
from certkit.rank.smoothing import DEFAULT_KS
from certkit.rank.synonyms import SynonymSource

__all__ = ["certify_run", "closure_vocab", "crq", "query_key"]


def query_key(qid: str) -> int:
    """The sampler key of query ``qid``: the first 4 bytes of BLAKE2b(qid), big-endian,
    so a query's noise stream depends on its id only, never on the other queries of the
    job (a shared key between two queries correlates their noise, which leaves each
    query's guarantee intact: every query's bounds hold at level α on their own)."""
    if not isinstance(qid, str):
        raise TypeError(f"qid: expected str, got {type(qid).__name__}")
    return int.from_bytes(hashlib.blake2b(qid.encode("utf-8"), digest_size=4).digest(), "big")


def closure_vocab(docs: Sequence[str]) -> set[str]:
    """The alphabetic words of one query's candidate documents: the vocabulary its
    synonym closure is built on (see :class:`~certkit.rank.synonyms.ClosureSynonyms`)."""
    return {w for d in docs for w in split_words(d) if w.isalpha()}


def certify_run(ranker: Ranker, queries: Mapping[str, str], candidates: Run,
                corpus: Mapping[str, str], source: SynonymSource | None, *, depth: int = 100,
                log: str | None = None, method: str = "certdr", seed: int = 0,
                closure: bool = False, closure_max_size: int = 100_000,
                log_settings: Mapping[str, Any] | None = None, new: bool = False,
                **kwargs: Any) -> list[CertResult | dict[str, Any]]:
    """Certify every query of ``candidates`` that ``queries`` holds (its top-``depth``
    documents in trec_eval order, :func:`~certkit.rank.metrics.rank_docs`).

    Query independence: a query's certificate depends only on that query, its candidates,
    the ranker and the settings. Its noise is keyed by :func:`query_key` of its qid (not by
    its position in the job) and, with ``closure=True`` (CertDR), its smoothing sets are
    the synonym closure of ``source`` over *its own* candidates' words
    (:func:`closure_vocab`, components up to ``closure_max_size`` words) with ``source`` as
    the attack source; so a query certified alone and inside any job gets the same
    result, bit for bit. Any split of the work across processes gives identical results.

    log: a ResultLog path (rows keyed by the position ``idx`` in ``sorted`` qids, each with
    its ``qid`` and ``seed``); rows already there are skipped (resume) and returned as
    dicts. log_settings: recorded in the log, which refuses to resume other settings;
    new: move an old log aside. method: ``"certdr"`` or ``"masking"`` (kwargs go to the
    certify function; ``query_index`` is set per query)."""
    from certkit.core.progress import progress
    from certkit.rank.metrics import rank_docs

    if "query_index" in kwargs:
        raise ValueError("query_index: set per query by certify_run (query_key of the qid)")
    if method == "certdr":
        from certkit.rank.certdr import certify_query
        from certkit.rank.synonyms import ClosureSynonyms

        if source is None:
            raise ValueError("source: CertDR needs a synonym source")
        if closure and kwargs.get("attack_source") is not None:
            raise ValueError("attack_source: with closure=True the attack source is `source` itself")
        check_int(closure_max_size, "closure_max_size", minimum=1)

        def fn(q: str, d: list[str], **kw: Any) -> CertResult:
            if closure:
                smooth = ClosureSynonyms(source, closure_vocab(d), max_size=closure_max_size)
                return certify_query(ranker, q, d, smooth, attack_source=source, **kw)
            return certify_query(ranker, q, d, source, **kw)
    elif method == "masking":
        from certkit.rank.masking import certify_query_masking

        def fn(q: str, d: list[str], **kw: Any) -> CertResult:
            return certify_query_masking(ranker, q, d, **kw)
    else:
        raise ValueError(f"method: expected 'certdr' or 'masking', got {method!r}")
    depth = check_int(depth, "depth", minimum=1)
    qids = sorted(q for q in candidates if q in queries)
    rl = _open_log(log, log_settings, new)
    todo = set(rl.todo(range(len(qids)))) if rl is not None else set(range(len(qids)))
    done_rows = {r["idx"]: r for r in rl.rows()} if rl is not None else {}
    out: list[CertResult | dict[str, Any]] = []
    try:
        for i in progress(range(len(qids)), total=len(qids), desc=f"certify ({method})", unit="query"):
            qid = qids[i]
            if i not in todo:
                if done_rows[i].get("qid") != qid:
                    raise ValueError(f"log: row {i} of {log} is query {done_rows[i].get('qid')!r}, "
                                     f"not {qid!r} (another job's log; pass new=True / --new)")
                out.append(done_rows[i])
                continue
            ranked = rank_docs(candidates[qid])[:depth]
            missing = [d for d in ranked if d not in corpus]
            if missing:
                raise ValueError(f"candidates: query {qid!r} names {len(missing)} documents not in "
                                 f"the corpus (e.g. {missing[0]!r})")
            res = fn(queries[qid], [corpus[d] for d in ranked], seed=seed, query_index=query_key(qid),
                     qid=qid, doc_ids=ranked, **kwargs)
            if rl is not None:
                rl.write({**res.to_row(i), "seed": seed})
            out.append(res)
    finally:
        if rl is not None:
            rl.close()
    return out


def _open_log(log: str | None, settings: Mapping[str, Any] | None, new: bool) -> Any:
    from certkit.core.results import ResultLog

    if log is None:
        return None
    if settings is None and not new:
        return ResultLog(log)
    return ResultLog(log, settings=dict(settings) if settings is not None else None, new=new)


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
