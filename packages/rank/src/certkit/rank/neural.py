"""A small trainable neural ranker: K-NRM kernel pooling over a hashed vocabulary.

Model (K-NRM: Xiong, Dai, Callan, Liu, Power, "End-to-End Neural Ad-hoc Ranking with
Kernel Pooling", SIGIR 2017, arXiv:1706.06613; formula recalled, not re-read). For a query
of Lq terms and a document of Ld terms with embeddings e (dim E):

    M[i, j]   = cos(e(q_i), e(d_j))                               (Lq, Ld) translation matrix
    K_k(i)    = Σ_j exp(−(M[i, j] − μ_k)² / (2 σ_k²))             (Lq, K) soft-TF per kernel
    φ_k       = Σ_i a_i · log(1 + K_k(i))                         (K,)
    score     = w · φ + b

with K = 11 kernels (μ = 1 with σ = 1e-3: exact match; μ = 0.9, 0.7, …, −0.9 with
σ = 0.1). Our changes, stated: ``log(1 + ·)`` instead of the paper's ``log(max(·, 1e-10))``
(keeps φ >= 0 and gradients finite when a kernel is empty), and a query-term gate
``a_i = softplus(c · idf(q_i) + v · e(q_i) + b_a)`` (the paper weights terms equally;
the IDF feature, computed on the collection being ranked, is what lets a model trained on
a few dozen queries generalise to unseen ones and to other collections).

Vocabulary: none. Text is lower-cased, split on ``[a-z0-9]+``, stop words (bm25s' English
list) dropped, Snowball-stemmed (PyStemmer), and each token hashed with CRC-32 into one of
``buckets − 1`` embedding rows (row 0 is padding). Hash collisions are shared rows.

:class:`NeuralRanker` implements the :class:`~certkit.rank.rankers.Ranker` protocol
(batched), the :class:`~certkit.rank.rankers.ChoiceScorer` fast path used by the smoothing
certificates, and ``substitution_gains`` (first-order score change of every candidate
substitution from the gradient w.r.t. the word embeddings, HotFlip-style: Ebrahimi et al.,
arXiv:1712.06751) used by the gradient-guided attack. ``output="sigmoid"`` bounds scores in
(0, 1) (the certificates apply their own frozen transform on top of any score).

Training (:func:`train_knrm`): pairwise logistic loss (RankNet) on (query, better, worse)
triples from graded qrels, worse documents drawn from BM25's top candidates (hard
negatives) and from the whole corpus; Adam. Deterministic for a seed on one thread count.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from certkit.core.validation import check_int, check_positive, check_seed
from certkit.rank.rankers import BM25Ranker, check_choices, check_docs

__all__ = ["KNRM", "HashTokenizer", "NeuralRanker", "load_or_train_knrm", "split_queries",
           "train_knrm"]

FloatArray = npt.NDArray[np.float64]
_TOKEN = re.compile(r"[a-z0-9]+")


class HashTokenizer:
    """Text -> hashed token ids (see module docstring). ``word_ids(word)`` is cached, so a
    document is tokenised word by word (whitespace-separated), which is what the choice
    fast path and the gradient attack need."""

    def __init__(self, buckets: int = 1 << 15, stemmer: str | None = "english",
                 stopwords: bool = True) -> None:
        self.buckets = check_int(buckets, "buckets", minimum=2)
        self.stemmer_name = stemmer
        self._stem = None
        if stemmer is not None:
            import Stemmer

            self._stem = Stemmer.Stemmer(stemmer)
        if stopwords:
            from bm25s.stopwords import STOPWORDS_EN

            self._stop = frozenset(STOPWORDS_EN)
        else:
            self._stop = frozenset()
        self.use_stopwords = stopwords
        self._cache: dict[str, tuple[int, ...]] = {}

    def config(self) -> dict[str, Any]:
        return {"buckets": self.buckets, "stemmer": self.stemmer_name, "stopwords": self.use_stopwords}

    def token_id(self, token: str) -> int:
        return 1 + zlib.crc32(token.encode("utf-8")) % (self.buckets - 1)

    def word_ids(self, word: str) -> tuple[int, ...]:
        hit = self._cache.get(word)
        if hit is not None:
            return hit
        toks = [t for t in _TOKEN.findall(word.lower()) if t not in self._stop]
        if self._stem is not None:
            toks = self._stem.stemWords(toks)
        out = tuple(self.token_id(t) for t in toks)
        if len(self._cache) < 1_000_000:
            self._cache[word] = out
        return out

    def ids(self, text: str) -> list[int]:
        return [i for w in text.split() for i in self.word_ids(w)]

    def batch(self, texts: Sequence[str], max_len: int) -> npt.NDArray[np.int64]:
        """(B, L) padded id matrix (0 = padding), each text cut to its first max_len tokens."""
        rows = [self.ids(t)[:max_len] for t in texts]
        width = max(1, max((len(r) for r in rows), default=1))
        out = np.zeros((len(rows), width), dtype=np.int64)
        for i, r in enumerate(rows):
            out[i, : len(r)] = r
        return out


class KNRM(nn.Module):
    """K-NRM with an IDF/embedding query-term gate. forward(q (B, Lq), q_idf (B, Lq),
    d (B, Ld)) -> (B,) raw scores; ids 0 are padding."""

    def __init__(self, buckets: int, dim: int = 32, n_kernels: int = 11,
                 exact_sigma: float = 1e-3, sigma: float = 0.1) -> None:
        super().__init__()
        n_kernels = check_int(n_kernels, "n_kernels", minimum=2)
        self.emb = nn.Embedding(buckets, dim, padding_idx=0)
        mus = [1.0] + [1.0 - (2 * i + 1) / (n_kernels - 1) for i in range(n_kernels - 1)]
        sigmas = [exact_sigma] + [sigma] * (n_kernels - 1)
        self.register_buffer("mu", torch.tensor(mus, dtype=torch.float32))
        self.register_buffer("sigma", torch.tensor(sigmas, dtype=torch.float32))
        self.gate = nn.Linear(dim, 1)
        self.idf_weight = nn.Parameter(torch.tensor(1.0))
        self.out = nn.Linear(n_kernels, 1)
        with torch.no_grad():
            self.emb.weight.normal_(0.0, 0.3)
            self.emb.weight[0].zero_()
            self.gate.weight.zero_()
            self.gate.bias.fill_(-1.0)
            self.out.weight.fill_(0.1)
            self.out.weight[0, 0] = 1.0  # start near "IDF-weighted log exact-match TF"
            self.out.bias.zero_()

    def forward_emb(self, qe: torch.Tensor, qmask: torch.Tensor, q_idf: torch.Tensor,
                    de: torch.Tensor, dmask: torch.Tensor) -> torch.Tensor:
        """qe (B or 1, Lq, E), qmask/q_idf (B or 1, Lq), de (B, Ld, E), dmask (B, Ld) -> (B,)."""
        qn = nn.functional.normalize(qe, dim=-1, eps=1e-8)
        dn = nn.functional.normalize(de, dim=-1, eps=1e-8)
        if qn.shape[0] == 1 and dn.shape[0] != 1:
            sim = torch.einsum("qe,ble->bql", qn[0], dn)
        else:
            sim = torch.einsum("bqe,ble->bql", qn, dn)                   # (B, Lq, Ld)
        k = torch.exp(-((sim.unsqueeze(-1) - self.mu) ** 2) / (2 * self.sigma**2))
        k = k * dmask[:, None, :, None]
        soft_tf = k.sum(2)                                               # (B, Lq, K)
        a = nn.functional.softplus(self.idf_weight * q_idf + self.gate(qe).squeeze(-1)) * qmask
        phi = (a.unsqueeze(-1) * torch.log1p(soft_tf)).sum(1)           # (B, K)
        return self.out(phi).squeeze(-1)

    def forward(self, q: torch.Tensor, q_idf: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        return self.forward_emb(self.emb(q), (q > 0).float(), q_idf, self.emb(d), (d > 0).float())


def bucket_idf(tokenizer: HashTokenizer, corpus: Mapping[str, str] | Sequence[str]) -> npt.NDArray[np.float32]:
    """Lucene IDF ``log(1 + (N − df + 0.5) / (df + 0.5))`` per hash bucket, (buckets,)."""
    texts = list(corpus.values()) if isinstance(corpus, Mapping) else list(corpus)
    df = np.zeros(tokenizer.buckets, dtype=np.float64)
    for t in texts:
        ids = np.unique(np.asarray(tokenizer.ids(t), dtype=np.int64))
        df[ids] += 1
    n = max(len(texts), 1)
    return np.log1p((n - df + 0.5) / (df + 0.5)).astype(np.float32)


class NeuralRanker:
    """A trained :class:`KNRM` as a Ranker over a collection (its IDF statistics).

    output: ``"logit"`` (raw score) or ``"sigmoid"`` (bounded in (0, 1)). max_len: documents
    are cut to their first max_len tokens. batch_size: documents per forward pass.
    """

    def __init__(self, model: KNRM, tokenizer: HashTokenizer, corpus: Mapping[str, str] | Sequence[str],
                 *, output: str = "logit", max_len: int = 256, batch_size: int = 2048,
                 name: str = "knrm") -> None:
        if output not in ("logit", "sigmoid"):
            raise ValueError(f"output: expected 'logit' or 'sigmoid', got {output!r}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.output = output
        self.max_len = check_int(max_len, "max_len", minimum=1)
        self.batch_size = check_int(batch_size, "batch_size", minimum=1)
        self.name = name
        self.idf = bucket_idf(tokenizer, corpus)
        self._unit: torch.Tensor | None = None

    def with_corpus(self, corpus: Mapping[str, str] | Sequence[str], **kwargs: Any) -> NeuralRanker:
        """The same model over another collection (its own IDF): for OOD evaluation."""
        kw = {"output": self.output, "max_len": self.max_len, "batch_size": self.batch_size,
              "name": self.name, **kwargs}
        return NeuralRanker(self.model, self.tokenizer, corpus, **kw)

    def _query(self, query: str) -> tuple[torch.Tensor, torch.Tensor]:
        ids = self.tokenizer.ids(query)[: self.max_len] or [0]
        q = torch.tensor([ids], dtype=torch.int64)
        return q, torch.from_numpy(self.idf[np.asarray(ids)][None, :].copy())

    def _finish(self, s: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(s) if self.output == "sigmoid" else s

    @torch.no_grad()
    def _unit_table(self) -> torch.Tensor:
        """L2-normalised embedding table (buckets, E), computed once: the ranker treats
        its model's weights as frozen (call :meth:`with_corpus` after changing them)."""
        if self._unit is None:
            self._unit = nn.functional.normalize(self.model.emb.weight, dim=-1, eps=1e-8)
        return self._unit

    @torch.no_grad()
    def _score_ids(self, q: torch.Tensor, q_idf: torch.Tensor, d: npt.NDArray[np.int64]) -> FloatArray:
        """Scores of the (B, L) id matrix ``d``. The model is a bag of tokens, so for a fixed
        query a document's soft-TF is a sum of per-bucket kernel rows: the kernels are
        evaluated once per distinct bucket of the batch ((U, Lq, K)), then gathered and
        summed, instead of an exp per (document, token). Equal to ``KNRM.forward`` up to
        float rounding (tested against a naive loop)."""
        out = np.empty(d.shape[0], dtype=np.float64)
        m = self.model
        qe = m.emb(q)[0]                                                 # (Lq, E)
        qn = nn.functional.normalize(qe, dim=-1, eps=1e-8)
        a = nn.functional.softplus(m.idf_weight * q_idf[0] + m.gate(qe).squeeze(-1)) * (q[0] > 0).float()
        unit = self._unit_table()
        for s in range(0, d.shape[0], self.batch_size):
            chunk = d[s: s + self.batch_size]
            uniq, inv = np.unique(chunk, return_inverse=True)
            sim = unit[torch.from_numpy(uniq)] @ qn.T                    # (U, Lq)
            kt = torch.exp(-((sim.unsqueeze(-1) - m.mu) ** 2) / (2 * m.sigma**2))
            kt[torch.from_numpy(uniq == 0)] = 0.0                        # padding
            soft_tf = kt[torch.from_numpy(inv.reshape(chunk.shape))].sum(1)   # (B, Lq, K)
            phi = (a[None, :, None] * torch.log1p(soft_tf)).sum(1)       # (B, K)
            r = m.out(phi).squeeze(-1)
            out[s: s + chunk.shape[0]] = self._finish(r).double().numpy()
        return out

    def score(self, query: str, docs: Sequence[str]) -> FloatArray:
        """Scores (D,) of any texts for ``query``. An empty query scores every document
        the same (the model's bias)."""
        docs = check_docs(query, docs)
        if not docs:
            return np.zeros(0, dtype=np.float64)
        q, q_idf = self._query(query)
        return self._score_ids(q, q_idf, self.tokenizer.batch(docs, self.max_len))

    def score_choices(self, query: str, choices: Sequence[Sequence[str]],
                      idx: npt.NDArray[np.integer]) -> FloatArray:
        """Scores of the documents ``idx`` (n, T) selects from ``choices`` (T,) without
        building texts: each distinct word is hashed once; equal to ``score`` of the
        joined texts (the model is a bag of tokens; tested)."""
        check_docs(query, [])
        a = check_choices(choices, idx)
        n, t = a.shape
        if n == 0:
            return np.zeros(0, dtype=np.float64)
        sizes = np.fromiter((len(c) for c in choices), dtype=np.int64, count=t)
        flat = [self.tokenizer.word_ids(x) for c in choices for x in c]
        m = max(1, max((len(f) for f in flat), default=1))
        table = np.zeros((len(flat) + 1, m), dtype=np.int64)
        for r, f in enumerate(flat):
            table[r, : len(f)] = f
        if t == 0:
            ids = np.zeros((n, 1), dtype=np.int64)
        else:
            base = np.concatenate(([0], np.cumsum(sizes)[:-1]))
            ids = table[a + base[None, :]].reshape(n, t * m)         # (n, T·m)
            nz = ids > 0
            ids = np.where(nz & (np.cumsum(nz, axis=1) <= self.max_len), ids, 0)
        q, q_idf = self._query(query)
        return self._score_ids(q, q_idf, ids)

    def substitution_gains(self, query: str, words: Sequence[str],
                           candidates: Sequence[Sequence[str]]) -> list[FloatArray]:
        """First-order score change of replacing ``words[i]`` by each ``candidates[i][c]``:
        ``(e(c) − e(w_i)) · ∂score/∂e(w_i)`` (summed over the word's tokens). Shapes: one
        (len(candidates[i]),) array per position. Positions or candidates that are not a
        single token (stop words, punctuation, multi-token words) get 0."""
        if len(candidates) != len(words):
            raise ValueError("candidates: expected one candidate list per word")
        slots: list[int] = []
        ids: list[int] = []
        for w in words:
            wi = self.tokenizer.word_ids(w)
            slots.append(len(ids) if len(wi) == 1 and len(ids) < self.max_len else -1)
            ids.extend(wi)
        ids = ids[: self.max_len] or [0]
        q, q_idf = self._query(query)
        d = torch.tensor([ids], dtype=torch.int64)
        emb = self.model.emb
        de = emb(d).detach().requires_grad_(True)
        s = self._finish(self.model.forward_emb(emb(q).detach(), (q > 0).float(), q_idf, de,
                                                (d > 0).float()))
        (grad,) = torch.autograd.grad(s.sum(), de)
        g = grad[0].numpy().astype(np.float64)
        e_doc = de[0].detach().numpy().astype(np.float64)
        weight = emb.weight.detach()
        out = []
        for i, cands in enumerate(candidates):
            gains = np.zeros(len(cands), dtype=np.float64)
            j = slots[i]
            if j >= 0 and cands:
                cid = [self.tokenizer.word_ids(c) for c in cands]
                ok = [k for k, c in enumerate(cid) if len(c) == 1]
                if ok:
                    ec = weight[torch.tensor([cid[k][0] for k in ok])].numpy().astype(np.float64)
                    gains[ok] = (ec - e_doc[j]) @ g[j]
            out.append(gains)
        return out


# --------------------------------------------------------------------------- training


def split_queries(qids: Sequence[str], test_fraction: float = 0.25, seed: int = 0
                  ) -> tuple[list[str], list[str]]:
    """Deterministic (train, test) split of ``sorted(qids)`` by a seeded permutation."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction: expected a value in (0, 1), got {test_fraction!r}")
    q = sorted(qids)
    perm = np.random.default_rng(check_seed(seed)).permutation(len(q))
    n_test = max(1, round(test_fraction * len(q)))
    test = sorted(q[i] for i in perm[:n_test])
    return sorted(set(q) - set(test)), test


def _triples(corpus_ids: list[str], queries: Mapping[str, str], qrels: Mapping[str, Mapping[str, int]],
             cands: Mapping[str, list[str]], rng: np.random.Generator, count: int
             ) -> list[tuple[str, str, str]]:
    doc_pos = {d: i for i, d in enumerate(corpus_ids)}
    qs = [q for q in sorted(queries) if any(r > 0 and d in doc_pos for d, r in qrels.get(q, {}).items())]
    if not qs:
        raise ValueError("qrels: no training query has a relevant document in the corpus")
    out = []
    for _ in range(count):
        q = qs[rng.integers(len(qs))]
        rel = qrels.get(q, {})
        pos = [d for d, r in rel.items() if r > 0 and d in doc_pos]
        p = pos[rng.integers(len(pos))]
        rp = rel[p]
        hard = [d for d in cands.get(q, []) if rel.get(d, 0) < rp]
        if hard and rng.random() < 0.7:
            n = hard[rng.integers(len(hard))]
        else:
            n = corpus_ids[rng.integers(len(corpus_ids))]
            if rel.get(n, 0) >= rp:
                continue
        out.append((q, p, n))
    return out


def train_knrm(corpus: Mapping[str, str], queries: Mapping[str, str],
               qrels: Mapping[str, Mapping[str, int]], *, steps: int = 400, batch_size: int = 32,
               lr: float = 0.02, dim: int = 32, buckets: int = 1 << 15, max_len: int = 128,
               depth: int = 50, seed: int = 0, time_budget_s: float | None = None,
               output: str = "logit", log: list[float] | None = None,
               num_threads: int | None = 1) -> NeuralRanker:
    """Train a :class:`KNRM` on ``queries`` (use only training queries here) and return
    it as a :class:`NeuralRanker` over ``corpus``. steps × batch_size triples, Adam;
    ``time_budget_s`` stops early (the result then depends on the machine's speed: the
    cache key does not include it, so use it only for quick runs). ``log`` receives the
    mean loss of every 20 steps. num_threads: torch threads while training (1 by
    default: the batches are small and extra threads mostly contend; None leaves torch's
    setting)."""
    prev = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(check_int(num_threads, "num_threads", minimum=1))
    try:
        return _train(corpus, queries, qrels, steps=steps, batch_size=batch_size, lr=lr, dim=dim,
                      buckets=buckets, max_len=max_len, depth=depth, seed=seed,
                      time_budget_s=time_budget_s, output=output, log=log)
    finally:
        torch.set_num_threads(prev)


def _train(corpus: Mapping[str, str], queries: Mapping[str, str],
           qrels: Mapping[str, Mapping[str, int]], *, steps: int, batch_size: int, lr: float,
           dim: int, buckets: int, max_len: int, depth: int, seed: int,
           time_budget_s: float | None, output: str, log: list[float] | None) -> NeuralRanker:
    steps = check_int(steps, "steps", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    check_positive(lr, "lr")
    seed = check_seed(seed)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    tok = HashTokenizer(buckets)
    model = KNRM(buckets, dim)
    ids = list(corpus)
    bm25 = BM25Ranker(corpus)
    with_terms = {q: t for q, t in queries.items() if q in qrels}
    if not with_terms:
        raise ValueError("queries: no query has qrels")
    run = bm25.retrieve(with_terms, depth) if depth > 0 else {}
    cands = {q: list(r) for q, r in run.items()}
    idf = torch.from_numpy(bucket_idf(tok, corpus))
    doc_cache: dict[str, list[int]] = {}
    q_cache: dict[str, list[int]] = {}

    def pad(rows: list[list[int]]) -> torch.Tensor:
        w = max(1, max(len(r) for r in rows))
        out = torch.zeros(len(rows), w, dtype=torch.int64)
        for i, r in enumerate(rows):
            if r:
                out[i, : len(r)] = torch.tensor(r)
        return out

    def doc(d: str) -> list[int]:
        if d not in doc_cache:
            doc_cache[d] = tok.ids(corpus[d])[:max_len]
        return doc_cache[d]

    def qry(q: str) -> list[int]:
        if q not in q_cache:
            q_cache[q] = tok.ids(queries[q])[:max_len]
        return q_cache[q]

    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    t0 = time.perf_counter()
    acc: list[float] = []
    for step in range(steps):
        trip = _triples(ids, with_terms, qrels, cands, rng, batch_size)
        if not trip:
            continue
        q = pad([qry(a) for a, _, _ in trip])
        qi = idf[q]
        sp = model(q, qi, pad([doc(p) for _, p, _ in trip]))
        sn = model(q, qi, pad([doc(n) for _, _, n in trip]))
        loss = nn.functional.softplus(sn - sp).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.emb.weight[0].zero_()
        acc.append(float(loss.detach()))
        if log is not None and (step + 1) % 20 == 0:
            log.append(float(np.mean(acc[-20:])))
        if time_budget_s is not None and time.perf_counter() - t0 > time_budget_s:
            break
    model.eval()
    ranker = NeuralRanker(model, tok, corpus, output=output, max_len=max_len)
    ranker.train_info = {"steps": step + 1, "seconds": time.perf_counter() - t0,  # type: ignore[attr-defined]
                         "final_loss": float(np.mean(acc[-20:])) if acc else math.nan}
    return ranker


def _key(name: str, corpus: Mapping[str, str], queries: Mapping[str, str],
         qrels: Mapping[str, Mapping[str, int]], cfg: Mapping[str, Any]) -> str:
    """Cache key of a trained K-NRM: everything its weights depend on (the whole corpus,
    the training queries' texts and judgements, the configuration)."""
    h = hashlib.sha256()
    h.update(json.dumps({"name": name, "n": len(corpus), **cfg}, sort_keys=True).encode())
    for d, text in corpus.items():
        h.update(f"\0{d}\0{text}".encode())
    train = {q: [queries[q], sorted((qrels.get(q) or {}).items())] for q in sorted(queries)}
    h.update(json.dumps(train, sort_keys=True).encode())
    return h.hexdigest()[:16]


def load_or_train_knrm(cache_dir: str | Path, name: str, corpus: Mapping[str, str],
                       queries: Mapping[str, str], qrels: Mapping[str, Mapping[str, int]],
                       **train_kwargs: Any) -> tuple[NeuralRanker, bool]:
    """Train once and cache the weights under ``cache_dir`` (``knrm-<name>-<key>.pt``,
    loaded with ``weights_only=True``). Returns (ranker, loaded_from_cache)."""
    from certkit.core.cache import load_state, save_state

    cfg = {k: train_kwargs.get(k, v) for k, v in
           (("steps", 400), ("batch_size", 32), ("lr", 0.02), ("dim", 32), ("buckets", 1 << 15),
            ("max_len", 128), ("depth", 50), ("seed", 0))}
    path = Path(cache_dir) / f"knrm-{name}-{_key(name, corpus, queries, qrels, cfg)}.pt"
    if path.exists():
        try:
            state = load_state(path)
            model = KNRM(cfg["buckets"], cfg["dim"])
            model.load_state_dict(state["model"])
            return NeuralRanker(model, HashTokenizer(cfg["buckets"]), corpus, max_len=cfg["max_len"],
                                output=train_kwargs.get("output", "logit")), True
        except (RuntimeError, KeyError, EOFError, ValueError):
            path.unlink(missing_ok=True)  # a torn or stale checkpoint: retrain
    ranker = train_knrm(corpus, queries, qrels, **train_kwargs)
    save_state({"model": ranker.model.state_dict()}, path)
    return ranker, False
