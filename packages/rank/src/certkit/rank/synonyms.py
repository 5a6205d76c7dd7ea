"""Synonym sources for word-substitution attacks and certificates.

- :class:`WordNetSynonyms`: reads a local WordNet 3.0 (Debian's ``wordnet-base``:
  ``/usr/share/wordnet/index.*`` and ``data.*``) directly; nothing is downloaded. The
  synonyms of a word are the single-word lemmas of every synset listing it (Miller, 1995).
- :class:`EmbeddingNeighbours`: words whose embeddings have cosine similarity >= a
  threshold (the CertDR / SAFER construction, Wu et al. CIKM 2022; Ye et al., ACL 2020,
  arXiv:2005.14424). :func:`cooccurrence_embeddings` builds embeddings offline from a
  corpus (PPMI + truncated SVD), so the construction needs no pretrained vectors.
- :class:`DictSynonyms`: an explicit table (tests, user-supplied lists).

Every source is a callable ``source(word) -> tuple[str, ...]`` of neighbours, sorted, never
containing ``word`` itself. Perturbation sets ``P_w = {w} ∪ source(w)``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_WORDNET",
    "ClosureSynonyms",
    "DictSynonyms",
    "EmbeddingNeighbours",
    "SynonymSource",
    "WordNetSynonyms",
    "cooccurrence_embeddings",
    "perturbation_set",
]

DEFAULT_WORDNET = Path("/usr/share/wordnet")
_POS = ("noun", "verb", "adj", "adv")


class SynonymSource(Protocol):
    def __call__(self, word: str) -> tuple[str, ...]: ...


def perturbation_set(word: str, source: SynonymSource) -> tuple[str, ...]:
    """``P_w``: the word itself first, then its neighbours (sorted, deduplicated)."""
    return (word, *[w for w in source(word) if w != word])


class DictSynonyms:
    """Neighbours from an explicit mapping ``{word: [neighbours...]}``. ``symmetric``
    adds the reverse edges."""

    def __init__(self, table: Mapping[str, Iterable[str]], symmetric: bool = False) -> None:
        t: dict[str, set[str]] = {}
        for w, ns in table.items():
            if isinstance(ns, str):
                raise TypeError(f"table[{w!r}]: expected a list of words, got a str")
            t.setdefault(w, set()).update(n for n in ns if n != w)
            if symmetric:
                for n in ns:
                    if n != w:
                        t.setdefault(n, set()).add(w)
        self._t = {w: tuple(sorted(s)) for w, s in t.items()}

    def __call__(self, word: str) -> tuple[str, ...]:
        return self._t.get(word, ())


class WordNetSynonyms:
    """Synonyms from a local WordNet dictionary folder (``index.<pos>``, ``data.<pos>``).

    path: the dict folder (default ``/usr/share/wordnet``); ``FileNotFoundError`` if absent.
    pos: parts of speech to use. max_senses: only the first senses of each word (WordNet
    orders senses by frequency), None for all. Multi-word lemmas (``ice_cream``) are
    skipped; adjective markers such as ``(a)`` are stripped. Words are lower-cased.
    """

    def __init__(self, path: str | Path = DEFAULT_WORDNET, pos: Sequence[str] = _POS,
                 max_senses: int | None = None) -> None:
        self.path = Path(path)
        for p in pos:
            if p not in _POS:
                raise ValueError(f"pos: expected some of {_POS}, got {p!r}")
            for kind in ("index", "data"):
                if not (self.path / f"{kind}.{p}").exists():
                    raise FileNotFoundError(f"{self.path / f'{kind}.{p}'}: WordNet file missing "
                                            "(install Debian's wordnet-base)")
        self.pos = tuple(pos)
        self.max_senses = max_senses
        self._index: dict[str, list[tuple[str, int]]] = {}
        for p in self.pos:
            with open(self.path / f"index.{p}", encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    if line.startswith(" "):
                        continue
                    parts = line.split()
                    lemma, n_synsets, n_ptr = parts[0], int(parts[2]), int(parts[3])
                    offsets = parts[4 + n_ptr + 2: 4 + n_ptr + 2 + n_synsets]
                    self._index.setdefault(lemma, []).extend((p, int(o)) for o in offsets)
        self._files = {p: open(self.path / f"data.{p}", "rb") for p in self.pos}
        self._call = lru_cache(maxsize=200_000)(self._lookup)

    def _synset_words(self, pos: str, offset: int) -> list[str]:
        fh = self._files[pos]
        fh.seek(offset)
        parts = fh.readline().decode("utf-8", "replace").split()
        n = int(parts[3], 16)
        words = parts[4: 4 + 2 * n: 2]
        return [re.sub(r"\(.*\)$", "", w).lower() for w in words]

    def _lookup(self, word: str) -> tuple[str, ...]:
        w = word.lower()
        entries = self._index.get(w, [])
        out: set[str] = set()
        per_pos: Counter[str] = Counter()
        for p, off in entries:
            per_pos[p] += 1
            if self.max_senses is not None and per_pos[p] > self.max_senses:
                continue
            for s in self._synset_words(p, off):
                if "_" not in s and "-" not in s and s != w and s.isalpha():
                    out.add(s)
        return tuple(sorted(out))

    def __call__(self, word: str) -> tuple[str, ...]:
        return self._call(word)

    def __contains__(self, word: str) -> bool:
        return word.lower() in self._index

    def close(self) -> None:
        for fh in self._files.values():
            fh.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass


class EmbeddingNeighbours:
    """Words within cosine similarity ``threshold`` of each other.

    words: (V,) vocabulary; vectors: (V, D) float embeddings. max_neighbours caps each
    set (most similar first, then sorted). Words outside the vocabulary have no neighbours.
    """

    def __init__(self, words: Sequence[str], vectors: npt.ArrayLike, threshold: float = 0.8,
                 max_neighbours: int | None = None) -> None:
        vec = np.asarray(vectors, dtype=np.float64)
        if vec.ndim != 2 or vec.shape[0] != len(words):
            raise ValueError(f"vectors: expected shape ({len(words)}, D), got {vec.shape}")
        if not np.all(np.isfinite(vec)):
            raise ValueError("vectors: contains NaN or inf")
        if not -1.0 <= threshold <= 1.0:
            raise ValueError(f"threshold: expected a cosine in [-1, 1], got {threshold!r}")
        norms = np.linalg.norm(vec, axis=1, keepdims=True)
        self._unit = vec / np.where(norms > 0, norms, 1.0)
        self.words = list(words)
        self._pos = {w: i for i, w in enumerate(self.words)}
        self.threshold = float(threshold)
        self.max_neighbours = max_neighbours
        self._cache: dict[str, tuple[str, ...]] = {}

    def __call__(self, word: str) -> tuple[str, ...]:
        hit = self._cache.get(word)
        if hit is not None:
            return hit
        i = self._pos.get(word)
        if i is None:
            return ()
        sims = self._unit @ self._unit[i]
        sims[i] = -np.inf
        idx = np.flatnonzero(sims >= self.threshold)
        idx = idx[np.argsort(-sims[idx], kind="stable")]
        if self.max_neighbours is not None:
            idx = idx[: self.max_neighbours]
        out = tuple(sorted(self.words[j] for j in idx))
        self._cache[word] = out
        return out


def cooccurrence_embeddings(texts: Iterable[str], dim: int = 50, window: int = 3,
                            min_count: int = 2) -> tuple[list[str], npt.NDArray[np.float64]]:
    """Word vectors from positive PMI co-occurrence counts + truncated SVD (Levy &
    Goldberg, NeurIPS 2014). Returns (words (V,), vectors (V, dim)). Deterministic."""
    toks = [re.findall(r"[a-z]+", t.lower()) for t in texts]
    cnt = Counter(w for t in toks for w in t)
    vocab = sorted(w for w, c in cnt.items() if c >= min_count)
    pos = {w: i for i, w in enumerate(vocab)}
    v = len(vocab)
    if v < 2:
        raise ValueError("texts: fewer than two words occur min_count times")
    m = np.zeros((v, v), dtype=np.float64)
    for t in toks:
        ids = [pos[w] for w in t if w in pos]
        for a, i in enumerate(ids):
            for j in ids[max(0, a - window): a]:
                m[i, j] += 1
                m[j, i] += 1
    total = m.sum()
    if total == 0:
        raise ValueError("texts: no co-occurrences")
    row = m.sum(1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        pmi = np.log(m * total / (row @ row.T))
    ppmi = np.where(np.isfinite(pmi) & (pmi > 0), pmi, 0.0)
    u, s, _ = np.linalg.svd(ppmi, full_matrices=False)
    k = min(dim, v)
    vec = u[:, :k] * np.sqrt(s[:k])
    # fix SVD sign ambiguity for determinism across LAPACK builds
    signs = np.sign(vec[np.abs(vec).argmax(0), np.arange(k)])
    return vocab, vec * np.where(signs == 0, 1.0, signs)


class ClosureSynonyms:
    """Perturbation sets closed under the synonym relation (connected components of the
    graph ``w — source(w)`` restricted to ``vocab``).

    Used as the *smoothing* source with the original ``source`` as the *attack* source
    (CertDR's ``attack_source``): every ``w' ∈ S_w`` lies in ``w``'s component, so
    ``P_w = P_{w'}`` and ``q_w = 1`` — the TV bound vanishes and the certificate only pays
    for sampling error. The price is a coarser (less accurate) smoothed ranker.
    max_size: components larger than this are left unsmoothed-by-closure (each word then
    keeps its own neighbours, and the TV bound is no longer 0 for it).
    """

    def __init__(self, source: SynonymSource, vocab: Iterable[str], max_size: int = 64) -> None:
        vocab = sorted(set(vocab))
        parent: dict[str, str] = {}

        def find(x: str) -> str:
            parent.setdefault(x, x)
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for w in vocab:
            for n in source(w):
                a, b = find(w), find(n)
                if a != b:
                    parent[max(a, b)] = min(a, b)
        groups: dict[str, list[str]] = {}
        for w in list(parent):
            groups.setdefault(find(w), []).append(w)
        self._source = source
        self._sets: dict[str, tuple[str, ...]] = {}
        for members in groups.values():
            if len(members) <= max_size:
                ms = tuple(sorted(members))
                for w in members:
                    self._sets[w] = ms

    def __call__(self, word: str) -> tuple[str, ...]:
        s = self._sets.get(word)
        if s is None:
            return self._source(word)
        return tuple(w for w in s if w != word)
