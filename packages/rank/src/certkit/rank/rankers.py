"""The ``Ranker`` protocol and the BM25 ranker (through bm25s; we do not reimplement BM25).

A ranker scores a batch of documents for one query::

    scores = ranker.score(query, docs)        # docs: Sequence[str] (D,) -> float64 (D,)

Documents need not be in any index: attacks and certificates score perturbed texts.
:class:`BM25Ranker` indexes a corpus with ``bm25s`` (Lù, arXiv:2407.03618) and scores any
text with the index's statistics (idf, average length), using bm25s' own term-frequency
and idf functions, so ``score(q, corpus_docs)`` equals ``bm25s.BM25.get_scores`` (tested).
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from certkit.core.validation import check_int, check_positive
from certkit.rank.io import Run

__all__ = ["BM25Ranker", "Ranker", "check_docs", "rerank"]

FloatArray = npt.NDArray[np.float64]


@runtime_checkable
class Ranker(Protocol):
    """Scores documents for a query: ``score(query, docs) -> (D,) float64``; higher is
    more relevant. Implementations must be deterministic for a given input."""

    name: str

    def score(self, query: str, docs: Sequence[str]) -> FloatArray: ...


def check_docs(query: Any, docs: Any) -> list[str]:
    if not isinstance(query, str):
        raise TypeError(f"query: expected str, got {type(query).__name__}")
    if isinstance(docs, str):
        raise TypeError("docs: expected a sequence of str, got a single str")
    docs = list(docs)
    for i, d in enumerate(docs):
        if not isinstance(d, str):
            raise TypeError(f"docs[{i}]: expected str, got {type(d).__name__}")
    return docs


def _stemmer(stemmer: str | None) -> Any:
    if stemmer is None:
        return None
    try:
        import Stemmer  # PyStemmer
    except ImportError as exc:  # pragma: no cover - dependency declared
        raise ImportError("stemmer: PyStemmer is not installed (pip install PyStemmer), "
                          "or pass stemmer=None") from exc
    return Stemmer.Stemmer(stemmer)


class BM25Ranker:
    """BM25 over a corpus, through bm25s.

    corpus: ``{docid: text}`` or a sequence of texts (docids ``"0".."N-1"``).
    k1, b, method (``lucene`` | ``robertson`` | ``atire``): bm25s' parameters.
    stemmer: a Snowball language for PyStemmer (``"english"``) or None.
    stopwords: bm25s stop-word list name (``"en"``) or None.
    """

    def __init__(self, corpus: Mapping[str, str] | Sequence[str], *, k1: float = 1.2,
                 b: float = 0.75, method: str = "lucene", stemmer: str | None = "english",
                 stopwords: str | None = "en", name: str = "bm25") -> None:
        import bm25s
        from bm25s import scoring

        if method not in ("lucene", "robertson", "atire"):
            raise ValueError(f"method: expected 'lucene', 'robertson' or 'atire', got {method!r}")
        self.k1 = check_positive(k1, "k1", allow_zero=True)
        self.b = check_positive(b, "b", allow_zero=True)
        if self.b > 1:
            raise ValueError(f"b: expected a value in [0, 1], got {b!r}")
        if isinstance(corpus, Mapping):
            self.doc_ids = [str(k) for k in corpus]
            texts = list(corpus.values())
        else:
            texts = list(corpus)
            self.doc_ids = [str(i) for i in range(len(texts))]
        if not texts:
            raise ValueError("corpus: empty")
        check_docs("", texts)
        self.name = name
        self.method = method
        self._stem = _stemmer(stemmer)
        self._stopwords = stopwords if stopwords is not None else []
        tok = bm25s.tokenize(texts, stopwords=self._stopwords, stemmer=self._stem,
                             show_progress=False)
        self.retriever = bm25s.BM25(k1=self.k1, b=self.b, method=method)
        self.retriever.index(tok, show_progress=False)
        self.vocab: dict[str, int] = dict(self.retriever.vocab_dict)
        # corpus statistics for scoring texts outside the index, with bm25s' functions
        lengths = np.array([len(ids) for ids in tok.ids], dtype=np.float64)
        self.avg_doc_len = float(lengths.mean())
        df = scoring._calculate_doc_freqs(tok.ids, list(tok.vocab.values()), show_progress=False)
        self.idf = scoring._build_idf_array(df, len(texts), scoring._select_idf_scorer(method),
                                            dtype="float32")
        self._tfc = scoring._select_tfc_scorer(method)
        self._n_docs = len(texts)

    # -- tokenisation (bm25s' tokenizer, same settings as the index) --------------
    def tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        import bm25s

        if not texts:
            return []
        out = bm25s.tokenize(list(texts), stopwords=self._stopwords, stemmer=self._stem,
                             return_ids=False, show_progress=False)
        return [list(t) for t in out]

    def score(self, query: str, docs: Sequence[str]) -> FloatArray:
        """BM25 scores of ``docs`` (any texts) for ``query`` with the index statistics.
        Shape (D,). Empty query or document: 0."""
        docs = check_docs(query, docs)
        q_terms = [t for t in self.tokenize([query])[0] if t in self.vocab]
        out = np.zeros(len(docs), dtype=np.float64)
        if not q_terms or not docs:
            return out
        import bm25s

        qset = Counter(q_terms)
        terms = list(qset)
        w = np.array([self.idf[self.vocab[t]] * qset[t] for t in terms], dtype=np.float32)
        tok = bm25s.tokenize(docs, stopwords=self._stopwords, stemmer=self._stem,
                             show_progress=False)
        # local token id -> query-term column (or -1)
        col = {t: j for j, t in enumerate(terms)}
        lut = np.full(max(len(tok.vocab), 1), -1, dtype=np.int64)
        for t, i in tok.vocab.items():
            lut[i] = col.get(t, -1)
        lengths = np.fromiter((len(ids) for ids in tok.ids), dtype=np.int64, count=len(docs))
        flat = np.fromiter((i for ids in tok.ids for i in ids), dtype=np.int64, count=int(lengths.sum()))
        rows = np.repeat(np.arange(len(docs)), lengths)
        cols = lut[flat]
        keep = cols >= 0
        tf = np.bincount(rows[keep] * len(terms) + cols[keep], minlength=len(docs) * len(terms))
        tf = tf.reshape(len(docs), len(terms)).astype(np.float32)
        tfc = self._tfc(tf_array=tf, l_d=lengths.astype(np.float32)[:, None],
                        l_avg=self.avg_doc_len, k1=self.k1, b=self.b)
        out[:] = (tfc.astype(np.float32) * w).sum(1, dtype=np.float32)
        return out

    def score_index(self, query: str) -> FloatArray:
        """Scores of every indexed document (bm25s' ``get_scores``), shape (N,)."""
        q = [t for t in self.tokenize([query])[0] if t in self.vocab]
        if not q:
            return np.zeros(self._n_docs, dtype=np.float64)
        return np.asarray(self.retriever.get_scores(q), dtype=np.float64)

    def retrieve_arrays(self, queries: Sequence[str], k: int = 1000
                        ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
        """bm25s retrieval: (Q, k) document indices, (Q, k) scores, (Q,) empty-query mask
        (queries with no indexed term; their rows are meaningless)."""
        import bm25s

        k = check_int(k, "k", minimum=1)
        k = min(k, self._n_docs)
        qtok = bm25s.tokenize(list(queries), stopwords=self._stopwords, stemmer=self._stem,
                              return_ids=False, show_progress=False)
        qtok = [[t for t in q if t in self.vocab] for q in qtok]
        empty = np.array([len(q) == 0 for q in qtok], dtype=bool)
        if empty.all():
            return (np.zeros((len(qtok), k), np.int64), np.zeros((len(qtok), k), np.float32), empty)
        # bm25s cannot take an empty query: score a placeholder and mask it out
        fill = next(q for q in qtok if q)
        qtok = [q if q else fill for q in qtok]
        idx, scores = self.retriever.retrieve(qtok, k=k, show_progress=False, n_threads=1)
        return np.asarray(idx, dtype=np.int64), np.asarray(scores, dtype=np.float32), empty

    def retrieve(self, queries: Mapping[str, str], k: int = 1000) -> Run:
        """Top-``k`` run ``{qid: {docid: score}}``. Queries with no indexed term get an
        empty result (they count as 0 in every metric) and one warning with their count."""
        qids = list(queries)
        idx, scores, empty = self.retrieve_arrays([queries[q] for q in qids], k)
        if empty.any():
            warnings.warn(f"retrieve: {int(empty.sum())} queries have no indexed term and "
                          "retrieve nothing", stacklevel=2)
        ids = self.doc_ids
        run: Run = {}
        for r, qid in enumerate(qids):
            if empty[r]:
                run[qid] = {}
                continue
            run[qid] = {ids[j]: float(s) for j, s in zip(idx[r].tolist(), scores[r].tolist(), strict=True)}
        return run


def rerank(ranker: Ranker, queries: Mapping[str, str], candidates: Run,
           corpus: Mapping[str, str], depth: int | None = None) -> Run:
    """Re-score each query's candidates (the top ``depth`` of ``candidates``) with ``ranker``."""
    from certkit.rank.metrics import rank_docs

    out: Run = {}
    for qid, docs in candidates.items():
        if qid not in queries:
            continue
        ranked = rank_docs(docs)
        if depth is not None:
            ranked = ranked[:depth]
        unknown = [d for d in ranked if d not in corpus]
        if unknown:
            raise ValueError(f"candidates: query {qid!r} names {len(unknown)} docids not in corpus")
        s = ranker.score(queries[qid], [corpus[d] for d in ranked])
        out[qid] = {d: float(v) for d, v in zip(ranked, s, strict=True)}
    return out
