"""IR test collections: the embedded default, Cranfield, Vaswani, BEIR folders and an
``ir_datasets`` adapter, all as one :class:`Collection` (corpus, queries, graded qrels).

Cranfield traps (handled by :func:`load_cranfield`, tested on the real files):

- ``cranqrel`` numbers queries 1..225 **in file order**, not by the ``.I`` id of
  ``cran.qry`` (ids run 001..365 with gaps). Matching by ``.I`` silently ruins every
  metric (BM25 MAP falls from about 0.3 to about 0.01). Our qids are the file-order
  numbers ``"1".."225"``; the ``.I`` ids are kept in ``Collection.meta["smart_ids"]``.
- relevance codes: Cleverdon's note (``cranqrel.readme``) defines 1 = complete answer
  ... 4 = minimum interest, 5 = no interest (never present), and the file uses -1 for
  judged non-relevant. ``ir_datasets`` reads the codes as grades as they are (its
  ``qrels_defs`` call 4 the complete answer), so by default (``grades="ir_datasets"``) so
  do we: rel = code, -1 judged non-relevant; nDCG of a run then equals the one computed
  on ``ir_datasets.load("cranfield")``'s qrels. ``grades="5-code"`` follows the readme
  instead: ``rel = 5 - code`` for codes 1..4 and 0 for -1 and 5. Binary measures (MAP,
  P@k, R@k with relevance level 1) are the same either way; graded ones (nDCG) differ.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from certkit.rank.io import (
    Corpus,
    Qrels,
    Topics,
    _lines,
    read_beir,
    read_qrels,
    read_smart,
    read_trec_docs,
    read_trec_topics,
)

__all__ = ["CRANFIELD_GRADES", "Collection", "default_collection", "from_ir_datasets", "load_beir",
           "load_cranfield", "load_vaswani", "shared_data_dir"]


@dataclass
class Collection:
    """corpus: docid -> text; queries: qid -> text; qrels: qid -> docid -> graded rel."""

    name: str
    corpus: Corpus
    queries: Topics
    qrels: Qrels
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def doc_ids(self) -> list[str]:
        return list(self.corpus)

    def check(self) -> dict[str, int]:
        """Warn (with counts) about qrels that name unknown queries or documents, and about
        empty documents/queries. Returns the counts. Nothing is dropped silently: unknown
        docids stay in the qrels (they count as unretrieved relevant documents)."""
        unknown_q = [q for q in self.qrels if q not in self.queries]
        unknown_d = sum(1 for q in self.qrels for d in self.qrels[q] if d not in self.corpus)
        empty_docs = sum(1 for t in self.corpus.values() if not t.strip())
        empty_q = sum(1 for t in self.queries.values() if not t.strip())
        counts = {"unknown_qids": len(unknown_q), "unknown_docids": unknown_d,
                  "empty_docs": empty_docs, "empty_queries": empty_q}
        if unknown_q:
            warnings.warn(f"{self.name}: {len(unknown_q)} qrels queries are not in the queries "
                          f"(e.g. {unknown_q[:3]}); they count as 0 in every metric", stacklevel=2)
        if unknown_d:
            warnings.warn(f"{self.name}: {unknown_d} qrels judgements name documents not in the "
                          "corpus; they are kept (relevant-but-unretrievable)", stacklevel=2)
        return counts

    def subset(self, qids: list[str]) -> Collection:
        return Collection(self.name, self.corpus, {q: self.queries[q] for q in qids},
                          {q: self.qrels.get(q, {}) for q in qids}, dict(self.meta))


def shared_data_dir() -> Path:
    """``../shared/data`` beside the repository root (may not exist)."""
    return Path(__file__).resolve().parents[5].parent / "shared" / "data"


def default_collection() -> Collection:
    """The embedded default collection, written by hand for certkit (``data/README.txt``):
    309 short documents on 12 topics, 36 natural queries (3 per topic), graded qrels
    (2 = answers the query, 1 = partly relevant, 0 = judged distractor sharing the query's
    words). Runs with no data beside the package."""
    pkg = resources.files("certkit.rank") / "data"
    corpus: Corpus = {}
    with (pkg / "default_corpus.jsonl").open("r", encoding="utf-8") as fh:
        for line in fh:
            obj = json.loads(line)
            corpus[obj["_id"]] = obj["text"]
    queries: Topics = {}
    with (pkg / "default_queries.jsonl").open("r", encoding="utf-8") as fh:
        for line in fh:
            obj = json.loads(line)
            queries[obj["_id"]] = obj["text"]
    with resources.as_file(pkg / "default_qrels.tsv") as p:
        qrels = read_qrels(p)
    return Collection("default", corpus, queries, qrels)


CRANFIELD_GRADES = ("ir_datasets", "5-code")


def load_cranfield(folder: str | Path, grades: str = "ir_datasets") -> Collection:
    """Cranfield 1400 from ``cran.all.1400``, ``cran.qry`` and ``cranqrel`` (see module
    docstring for the qid mapping and the relevance codes). Document text is ``.T`` title
    + ``.W`` abstract. grades: ``"ir_datasets"`` (rel = the file's code, as ir_datasets)
    or ``"5-code"`` (rel = 5 − code for codes 1..4, 0 otherwise). A pair judged twice, a
    malformed line or a code outside -1..5 raises ``ValueError`` with its line."""
    if grades not in CRANFIELD_GRADES:
        raise ValueError(f"grades: expected 'ir_datasets' or '5-code', got {grades!r}")
    folder = Path(folder)
    docs = read_smart(folder / "cran.all.1400")
    corpus = {d["I"].lstrip("0") or "0": " ".join(x for x in (d.get("T", ""), d.get("W", "")) if x)
              for d in docs}
    if len(corpus) != len(docs):
        raise ValueError(f"{folder / 'cran.all.1400'}: repeated .I document ids")
    qrecs = read_smart(folder / "cran.qry")
    queries = {str(i): q.get("W", "") for i, q in enumerate(qrecs, 1)}
    smart_ids = {str(i): q["I"] for i, q in enumerate(qrecs, 1)}
    qrels: Qrels = {}
    path = folder / "cranqrel"
    first: dict[tuple[str, str], int] = {}
    for lineno, line in _lines(path):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3:
            raise ValueError(f"{path}:{lineno}: expected 'query doc code', got {line.strip()!r}")
        try:
            q, d, code = parts[0], parts[1], int(parts[2])
        except ValueError:
            raise ValueError(f"{path}:{lineno}: code must be an integer, got {parts[2]!r}") from None
        if code not in (-1, 1, 2, 3, 4, 5):
            raise ValueError(f"{path}:{lineno}: code must be -1 or 1..5, got {code}")
        if grades == "ir_datasets":
            rel = code
        else:
            rel = 5 - code if 1 <= code <= 4 else 0
        qid, did = q.lstrip("0") or "0", d.lstrip("0") or "0"
        if (qid, did) in first:
            raise ValueError(f"{path}:{lineno}: query {qid!r}, document {did!r} judged twice "
                             f"(first on line {first[qid, did]})")
        first[qid, did] = lineno
        qrels.setdefault(qid, {})[did] = rel
    coll = Collection("cranfield", corpus, queries, qrels, {"smart_ids": smart_ids, "grades": grades})
    coll.check()
    return coll


def load_vaswani(folder: str | Path) -> Collection:
    """Vaswani / NPL in TREC format: ``doc-text.trec``, ``query-text.trec``, ``qrels``.
    Queries are upper case in the file; text is lower-cased."""
    folder = Path(folder)
    corpus = read_trec_docs(folder / "doc-text.trec")
    queries = {q: t.lower() for q, t in read_trec_topics(folder / "query-text.trec").items()}
    qrels = read_qrels(folder / "qrels")
    coll = Collection("vaswani", corpus, queries, qrels)
    coll.check()
    return coll


def load_beir(folder: str | Path, split: str = "test") -> Collection:
    corpus, queries, qrels = read_beir(folder, split)
    coll = Collection(Path(folder).name, corpus, queries, qrels)
    coll.check()
    return coll


def from_ir_datasets(dataset: Any, name: str | None = None) -> Collection:
    """Adapt an ``ir_datasets`` dataset (an object from ``ir_datasets.load(...)``, or the
    id string to load: the package is imported lazily, only then). Duck-typed: uses
    ``docs_iter()`` (``doc_id`` and ``text`` or ``title``+``body``/``abstract``),
    ``queries_iter()`` (``query_id``, ``text`` or ``title``) and ``qrels_iter()``
    (``query_id``, ``doc_id``, ``relevance``)."""
    if isinstance(dataset, str):
        try:
            import ir_datasets  # type: ignore[import-not-found]
        except ImportError as exc:
            raise ImportError("from_ir_datasets: install the 'ir_datasets' extra "
                              "(pip install certkit-rank[ir_datasets])") from exc
        name = name or dataset
        dataset = ir_datasets.load(dataset)

    def doc_text(d: Any) -> str:
        if hasattr(d, "text") and d.text is not None:
            head = getattr(d, "title", "") or ""
            return f"{head} {d.text}".strip()
        parts = [getattr(d, a, "") or "" for a in ("title", "body", "abstract")]
        return " ".join(p for p in parts if p)

    def query_text(q: Any) -> str:
        for a in ("text", "title", "query"):
            v = getattr(q, a, None)
            if v:
                return str(v)
        return ""

    corpus = {str(d.doc_id): doc_text(d) for d in dataset.docs_iter()}
    queries = {str(q.query_id): query_text(q) for q in dataset.queries_iter()}
    qrels: Qrels = {}
    for r in dataset.qrels_iter():
        qrels.setdefault(str(r.query_id), {})[str(r.doc_id)] = int(r.relevance)
    coll = Collection(name or getattr(dataset, "name", "ir_datasets"), corpus, queries, qrels)
    coll.check()
    return coll
