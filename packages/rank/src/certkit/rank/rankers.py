"""The ``Ranker`` protocol and the BM25 ranker (through bm25s; we do not reimplement BM25).

A ranker scores a batch of documents for one query::

    scores = ranker.score(query, docs)        # docs: Sequence[str] (D,) -> float64 (D,)

Documents need not be in any index: attacks and certificates score perturbed texts.
:class:`BM25Ranker` indexes a corpus with ``bm25s`` (Lù, arXiv:2407.03618) and scores any
text with the index's statistics (idf, average length), using bm25s' own term-frequency
and idf functions, so ``score(q, corpus_docs)`` equals ``bm25s.BM25.get_scores`` (tested).

Smoothing certificates score thousands of perturbed copies of a few documents. Rankers may
implement the optional :class:`ChoiceScorer` fast path (``score_choices(query, choices,
idx)``: position i of copy s is ``choices[i][idx[s, i]]``) so that no text is built or
re-tokenised; :func:`score_choices` / :func:`score_choices_batch` use it when present and
fall back to joining texts otherwise. BM25's is bit-identical to ``score`` of the texts.
Other rankers: :mod:`certkit.rank.neural` (trainable K-NRM) and :mod:`certkit.rank.dense`
(MiniLM bi-encoder, optional extra).
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

__all__ = ["AdditiveScorer", "BM25Ranker", "ChoiceScorer", "Ranker", "check_choices", "check_docs", "choice_texts",
           "rerank", "score_choices", "score_choices_batch"]

FloatArray = npt.NDArray[np.float64]


@runtime_checkable
class Ranker(Protocol):
    """Scores documents for a query: ``score(query, docs) -> (D,) float64``; higher is
    more relevant. Implementations must be deterministic for a given input."""

    name: str

    def score(self, query: str, docs: Sequence[str]) -> FloatArray: ...


@runtime_checkable
class ChoiceScorer(Protocol):
    """Optional fast path for smoothing and attacks: score the ``n`` documents
    ``" ".join(choices[i][idx[s, i]] for i in range(T))`` (s < n) without building them.

    choices: (T,) sequences of words (position i may become any ``choices[i][c]``; ``""``
    deletes the position); idx: (n, T) integer array. Returns (n,) float64, equal to
    ``score(query, choice_texts(choices, idx))``."""

    def score_choices(self, query: str, choices: Sequence[Sequence[str]],
                      idx: npt.NDArray[np.integer]) -> FloatArray: ...


@runtime_checkable
class AdditiveScorer(Protocol):
    """Optional fastest path for smoothing: rankers whose score of a document depends on
    it only through a sum of per-word features, ``score(q, w_1 … w_T) =
    score_features(q, Σ_i choice_features(q, [w_i]))`` exactly (BM25: token count and
    query-term counts). Certificates then sample only the positions whose choices change
    the features and never build a document.

    choice_features(query, words (W,)) -> (W, m) array (integer features may be packed);
    score_features(query, feats (D, m)) -> (D,) float64."""

    def choice_features(self, query: str, words: Sequence[str]) -> npt.NDArray[Any]: ...

    def score_features(self, query: str, feats: npt.NDArray[Any]) -> FloatArray: ...


def check_choices(choices: Sequence[Sequence[str]], idx: Any) -> npt.NDArray[np.int64]:
    """Validate (choices (T,), idx (n, T)) and return idx as int64."""
    a = np.asarray(idx)
    if a.ndim != 2 or a.shape[1] != len(choices):
        raise ValueError(f"idx: expected shape (n, {len(choices)}), got {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"idx: expected an integer array, got {a.dtype}")
    a = a.astype(np.int64, copy=False)
    if a.size:
        sizes = np.array([len(c) for c in choices], dtype=np.int64)
        if np.any(sizes == 0):
            raise ValueError("choices: every position needs at least one word")
        if a.min() < 0 or np.any(a >= sizes[None, :]):
            raise ValueError("idx: index out of range of choices")
    return a


def choice_texts(choices: Sequence[Sequence[str]], idx: npt.NDArray[np.integer]) -> list[str]:
    """The (n,) documents that ``idx`` (n, T) selects from ``choices`` (T,), space-joined
    (``""`` choices are dropped)."""
    a = check_choices(choices, idx)
    n, t = a.shape
    if t == 0:
        return [""] * n
    grid = np.empty((n, t), dtype=object)
    for i, c in enumerate(choices):
        if len(c) == 1:
            grid[:, i] = c[0]
        else:
            grid[:, i] = np.array(list(c), dtype=object)[a[:, i]]
    return [" ".join(w for w in row if w) for row in grid.tolist()]


def score_choices(ranker: Ranker, query: str, choices: Sequence[Sequence[str]],
                  idx: npt.NDArray[np.integer], batch_size: int = 8192) -> FloatArray:
    """``ranker.score_choices`` when the ranker has it (no texts built), else the scores
    of :func:`choice_texts` in batches. Shape (n,)."""
    if isinstance(ranker, ChoiceScorer):
        return np.asarray(ranker.score_choices(query, choices, idx), dtype=np.float64)
    texts = choice_texts(choices, idx)
    out = np.empty(len(texts), dtype=np.float64)
    for s in range(0, len(texts), batch_size):
        out[s: s + batch_size] = ranker.score(query, texts[s: s + batch_size])
    return out


def score_choices_batch(ranker: Ranker, query: str,
                        items: Sequence[tuple[Sequence[Sequence[str]], npt.NDArray[np.integer]]]
                        ) -> list[FloatArray]:
    """:func:`score_choices` of several documents (``items``: (choices (T_j,), idx (n_j, T_j))
    pairs) for one query, in one call when the ranker has ``score_choices_batch``."""
    fn = getattr(ranker, "score_choices_batch", None)
    if fn is not None:
        return [np.asarray(v, dtype=np.float64) for v in fn(query, items)]
    return [score_choices(ranker, query, c, i) for c, i in items]


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
        self.stemmer_name = stemmer
        self.stopwords_name = stopwords
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
        self._doc_id_array = np.array(self.doc_ids, dtype=object)
        self._qcache: dict[str, tuple[list[str], npt.NDArray[np.float32]]] = {}
        self._wcache: dict[str, tuple[str, ...]] = {}
        # per-word token ids (in self._tok, every token seen), CSR: row of a word, its
        # token count, the flat ids; arrays rebuilt lazily after new words
        self._tok: dict[str, int] = {}
        self._wrow: dict[str, int] = {}
        self._wlen: list[int] = []
        self._wflat: list[int] = []
        self._warr: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]] | None = None

    # -- tokenisation (bm25s' tokenizer, same settings as the index) --------------
    def tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        import bm25s

        if not texts:
            return []
        out = bm25s.tokenize(list(texts), stopwords=self._stopwords, stemmer=self._stem,
                             return_ids=False, show_progress=False)
        return [list(t) for t in out]

    def _query_weights(self, query: str) -> tuple[list[str], npt.NDArray[np.float32]]:
        """In-vocabulary query terms (deduplicated, first-occurrence order) and their
        weights idf·qtf (float32). Cached per query text."""
        hit = self._qcache.get(query)
        if hit is not None:
            return hit
        q_terms = [t for t in self.tokenize([query])[0] if t in self.vocab]
        qset = Counter(q_terms)
        terms = list(qset)
        w = np.array([self.idf[self.vocab[t]] * qset[t] for t in terms], dtype=np.float32)
        if len(self._qcache) >= 4096:
            self._qcache.clear()
        self._qcache[query] = (terms, w)
        return terms, w

    def word_tokens(self, words: Sequence[str]) -> list[tuple[str, ...]]:
        """bm25s tokens of each whitespace-free word (stop words dropped, stemmed), from a
        per-word cache; the missing words go to one ``bm25s.tokenize`` call."""
        cache = self._wcache
        missing = [w for w in dict.fromkeys(words) if w not in cache]
        if missing:
            if len(cache) > 500_000:
                cache.clear()
            for w, t in zip(missing, self.tokenize(missing), strict=True):
                cache[w] = tuple(t)
        return [cache[w] for w in words]

    def _word_token_ids(self, words: Sequence[str]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Token ids (in a ranker-wide table of every token seen, ``self._tok``) of each
        word, as CSR: (W,) token counts and the flat ids. Words are tokenised once and
        kept in CSR arrays, so a call is one dict lookup per word plus numpy gathers."""
        get = self._wrow.get
        rows = [get(w, -1) for w in words]
        if -1 in rows:
            if len(self._wrow) > 500_000:
                self._wrow.clear()
                self._wlen.clear()
                self._wflat.clear()
                self._tok.clear()
            missing = [w for w in dict.fromkeys(words) if w not in self._wrow]
            tok = self._tok
            for w, t in zip(missing, self.word_tokens(missing), strict=True):
                self._wrow[w] = len(self._wlen)
                self._wlen.append(len(t))
                self._wflat.extend(tok.setdefault(x, len(tok)) for x in t)
            self._warr = None
            rows = [self._wrow[w] for w in words]
        if self._warr is None:
            ln = np.array(self._wlen, dtype=np.int64)
            self._warr = (ln, np.cumsum(ln) - ln, np.array(self._wflat, dtype=np.int64))
        wlen, wptr, wflat = self._warr
        r = np.array(rows, dtype=np.int64)
        lengths = wlen[r]
        total = int(lengths.sum())
        flat = wflat[np.repeat(wptr[r] - (np.cumsum(lengths) - lengths), lengths) + np.arange(total)]
        return lengths, flat

    def choice_features(self, query: str, words: Sequence[str]) -> npt.NDArray[np.int64]:
        """Additive features of single words (:class:`AdditiveScorer`): column 0 the word's
        bm25s token count (0 for a stop word), column 1 + j the count of query term j among
        its tokens (query terms as in :meth:`score`). Shape (W, 1 + Qt), int64."""
        check_docs(query, [])
        terms, _ = self._query_weights(query)
        lengths, flat = self._word_token_ids(words)
        out = np.zeros((len(words), 1 + len(terms)), dtype=np.int64)
        out[:, 0] = lengths
        if terms and flat.size:
            lut = np.full(len(self._tok), -1, dtype=np.int64)
            for j, t in enumerate(terms):
                if t in self._tok:
                    lut[self._tok[t]] = j
            cols = lut[flat]
            rows = np.repeat(np.arange(len(words)), lengths)
            keep = cols >= 0
            nq = len(terms)
            out[:, 1:] = np.bincount(rows[keep] * nq + cols[keep],
                                     minlength=len(words) * nq).reshape(len(words), nq)
        return out

    def score_features(self, query: str, feats: npt.NDArray[np.integer]) -> FloatArray:
        """BM25 from summed :meth:`choice_features` (D, 1 + Qt): column 0 the document
        length in tokens, the rest the query-term counts. Shape (D,); equal bit for bit to
        :meth:`score` of the documents."""
        terms, w = self._query_weights(query)
        f = np.asarray(feats)
        if f.ndim != 2 or f.shape[1] != 1 + len(terms):
            raise ValueError(f"feats: expected shape (D, {1 + len(terms)}), got {f.shape}")
        if not terms:
            return np.zeros(f.shape[0], dtype=np.float64)
        return self._bm25(f[:, 1:], f[:, 0], w)

    def score_token_ids(self, query: str, ids: npt.NDArray[np.integer],
                        lengths: npt.NDArray[np.integer]) -> FloatArray:
        """BM25 of D already tokenised documents given as index-vocabulary ids
        (``self.vocab``; -1 for a token outside it), CSR: ``ids`` (sum(lengths),) flat,
        ``lengths`` (D,) tokens per document. Equal to :meth:`score` of the texts."""
        terms, w = self._query_weights(query)
        ln = np.asarray(lengths, dtype=np.int64)
        flat = np.asarray(ids, dtype=np.int64)
        if ln.ndim != 1 or flat.ndim != 1 or int(ln.sum()) != flat.size:
            raise ValueError("ids/lengths: expected flat ids with sum(lengths) elements")
        if not terms:
            return np.zeros(ln.size, dtype=np.float64)
        lut = np.full(len(self.vocab) + 1, -1, dtype=np.int64)  # index -1: out of vocabulary
        lut[[self.vocab[t] for t in terms]] = np.arange(len(terms))
        cols = lut[flat]
        hit = np.flatnonzero(cols >= 0)  # query terms are rare: locate only their documents
        rows = np.searchsorted(np.cumsum(ln), hit, side="right")
        tf = np.bincount(rows * len(terms) + cols[hit], minlength=ln.size * len(terms))
        return self._bm25(tf.reshape(ln.size, len(terms)), ln, w)

    def _bm25(self, tf: npt.NDArray[np.int64], lengths: npt.NDArray[np.int64],
              w: npt.NDArray[np.float32]) -> FloatArray:
        """Scores from term counts tf (D, Qt) and document lengths (D,), with bm25s'
        term-frequency component, in float32 as bm25s computes them."""
        tfc = self._tfc(tf_array=tf.astype(np.float32), l_d=lengths.astype(np.float32)[:, None],
                        l_avg=self.avg_doc_len, k1=self.k1, b=self.b)
        return (tfc.astype(np.float32) * w).sum(1, dtype=np.float32).astype(np.float64)

    def score(self, query: str, docs: Sequence[str]) -> FloatArray:
        """BM25 scores of ``docs`` (any texts) for ``query`` with the index statistics.
        Shape (D,). Empty query or document: 0."""
        docs = check_docs(query, docs)
        terms, w = self._query_weights(query)
        if not terms or not docs:
            return np.zeros(len(docs), dtype=np.float64)
        import bm25s

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
        return self._bm25(tf.reshape(len(docs), len(terms)), lengths, w)

    def score_choices(self, query: str, choices: Sequence[Sequence[str]],
                      idx: npt.NDArray[np.integer]) -> FloatArray:
        """Scores of the (n,) documents ``idx`` (n, T) selects from ``choices`` (T,) (see
        :class:`ChoiceScorer`), equal to ``score`` of the joined texts (tested bit for
        bit): bm25s' tokenizer splits on whitespace boundaries, so each distinct word is
        tokenised once and a document's term counts and length are sums over positions."""
        return self.score_choices_batch(query, [(choices, idx)])[0]

    def score_choices_batch(self, query: str,
                            items: Sequence[tuple[Sequence[Sequence[str]], npt.NDArray[np.integer]]]
                            ) -> list[FloatArray]:
        """:meth:`score_choices` of several (choices (T_j,), idx (n_j, T_j)) pairs at once:
        one gather over every (document, sample, position) and one ``bincount`` per query
        term, with no per-document Python work beyond validation."""
        check_docs(query, [])
        idxs = [check_choices(c, i) for c, i in items]
        terms, w = self._query_weights(query)
        ns = [a.shape[0] for a in idxs]
        if not terms or not items:
            return [np.zeros(n, dtype=np.float64) for n in ns]
        flat_words = [x for c, _ in items for p in c for x in p]
        toks = self.word_tokens(flat_words)
        col = {tt: j for j, tt in enumerate(terms)}
        n_q = len(terms)
        # per (document, position, choice) row: token count and query-term counts (R, Qt)
        length = np.fromiter((len(x) for x in toks), dtype=np.int64, count=len(flat_words))
        counts = np.zeros((len(flat_words), n_q), dtype=np.int64)
        for r, x in enumerate(toks):
            for tt in x:
                j = col.get(tt)
                if j is not None:
                    counts[r, j] += 1
        # Only positions whose choices differ in token count or that can match a query
        # term change a document's length or term counts; every other position adds a
        # constant length, so it is summed once and never gathered.
        any_hit = counts.any(1)
        rows_l, seg_l = [], []
        const_len = np.zeros(0, dtype=np.int64)
        base, first = 0, 0
        const_parts = []
        for (c, _), a in zip(items, idxs, strict=True):
            n, t = a.shape
            if t == 0:
                const_parts.append(np.zeros(n, dtype=np.int64))
                first += n
                continue
            sizes = np.fromiter((len(p) for p in c), dtype=np.int64, count=t)
            local = np.concatenate(([0], np.cumsum(sizes)[:-1]))
            starts = base + local
            seg_len = length[base: base + int(sizes.sum())]
            lmin = np.minimum.reduceat(seg_len, local)
            lmax = np.maximum.reduceat(seg_len, local)
            hitp = np.add.reduceat(any_hit[base: base + int(sizes.sum())].astype(np.int64), local) > 0
            sel = np.flatnonzero((lmin != lmax) | hitp)
            const_parts.append(np.full(n, int(lmin[(lmin == lmax) & ~hitp].sum()), dtype=np.int64))
            if sel.size:
                rows_l.append((a[:, sel] + starts[sel][None, :]).ravel())
                seg_l.append(np.repeat(np.arange(first, first + n), sel.size))
            base += int(sizes.sum())
            first += n
        const_len = np.concatenate(const_parts) if const_parts else const_len
        rows = np.concatenate(rows_l) if rows_l else np.zeros(0, np.int64)
        seg = np.concatenate(seg_l) if seg_l else np.zeros(0, np.int64)
        lengths = const_len + np.bincount(seg, weights=length[rows], minlength=first).astype(np.int64)
        tf = np.zeros((first, n_q), dtype=np.int64)
        hit = any_hit[rows]
        if hit.any():
            r_hit, s_hit = rows[hit], seg[hit]
            for j in range(n_q):
                tf[:, j] = np.bincount(s_hit, weights=counts[r_hit, j], minlength=first).astype(np.int64)
        scores = self._bm25(tf, lengths, w)
        out, at = [], 0
        for n in ns:
            out.append(scores[at: at + n])
            at += n
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
        (queries that match no document: every score 0; their rows are meaningless).

        The queries go to ``bm25s.tokenize`` and ``BM25.retrieve`` as they are, with no
        per-query work of ours (bm25s drops out-of-vocabulary terms and scores an empty
        query as all zeros); emptiness is read off the score matrix."""
        import bm25s

        k = check_int(k, "k", minimum=1)
        k = min(k, self._n_docs)
        queries = list(queries)
        if not queries:
            return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32), np.zeros(0, bool)
        qtok = bm25s.tokenize(queries, stopwords=self._stopwords, stemmer=self._stem,
                              return_ids=False, show_progress=False)
        idx, scores = self.retriever.retrieve(qtok, k=k, show_progress=False, n_threads=1)
        scores = np.asarray(scores, dtype=np.float32)
        empty = ~np.any(scores != 0, axis=1)
        return np.asarray(idx, dtype=np.int64), scores, empty

    def retrieve(self, queries: Mapping[str, str], k: int = 1000, *, pad: bool = False) -> Run:
        """Top-``k`` run ``{qid: {docid: score}}`` of the documents that match a query term.

        pad: also keep zero-score documents (matching no query term, in bm25s' arbitrary
        order) to fill ``k``; without it a query returns only its matching documents (a
        padded run's recall at a deep cut-off counts documents found by no query term).
        Queries with no indexed term get an empty result (they count as 0 in every metric)
        and one warning with their count."""
        qids = list(queries)
        idx, scores, empty = self.retrieve_arrays([queries[q] for q in qids], k)
        if empty.any():
            warnings.warn(f"retrieve: {int(empty.sum())} queries have no indexed term and "
                          "retrieve nothing", stacklevel=2)
        names = self._doc_id_array[idx].tolist()
        vals = scores.tolist()
        # a document matching no query term scores exactly 0; bm25s sorts each row by score
        # descending, so the zeros are one block between the positive and negative scores
        n_pos = (scores > 0).sum(axis=1).tolist()
        n_neg = (scores < 0).sum(axis=1).tolist()
        width = scores.shape[1]
        out: Run = {}
        for i, (qid, e, nm, v) in enumerate(zip(qids, empty.tolist(), names, vals, strict=True)):
            if e:
                out[qid] = {}
            elif pad or n_pos[i] + n_neg[i] == width:
                out[qid] = dict(zip(nm, v, strict=True))
            else:
                p, q = n_pos[i], width - n_neg[i]
                out[qid] = dict(zip(nm[:p] + nm[q:], v[:p] + v[q:], strict=True))
        return out


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
