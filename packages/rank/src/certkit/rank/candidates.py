"""Shared candidate preparation of the top-K certificates (:mod:`certkit.rank.certdr`,
:mod:`certkit.rank.masking`): the candidate list of one query, the frozen score
transform fitted on its clean scores, the document words, and the result type
:class:`CertResult`. Both certificates depend on this module and not on each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from certkit.core.validation import check_alpha, check_int, check_seed
from certkit.rank.rankers import Ranker
from certkit.rank.smoothing import ScoreTransform

__all__ = ["CertResult", "check_common", "prepare_candidates", "split_words"]


def split_words(text: str) -> list[str]:
    """Whitespace tokens; only alphabetic tokens are substitutable (lower-cased lookup)."""
    return text.split()


@dataclass
class CertResult:
    """One query's certificate. Arrays are aligned with the candidate list (N,).

    order: candidates by ĝ descending; certified[K], margin[K]: the decision per K;
    tv: the TV bound o_d (certdr) or Δ at radius 1 (masking); radius[K] (masking only):
    the largest number of substituted words per document still certified (-1: none).
    """

    qid: str
    doc_ids: list[str]
    g_hat: npt.NDArray[np.float64]
    lower: npt.NDArray[np.float64]
    upper: npt.NDArray[np.float64]
    tv: npt.NDArray[np.float64]
    order: npt.NDArray[np.int64]
    certified: dict[int, bool]
    margin: dict[int, float]
    n: int
    alpha: float
    method: str = "certdr"
    radius: dict[int, int] | None = None

    def to_row(self, idx: int) -> dict[str, Any]:
        return {"idx": idx, "qid": self.qid, "method": self.method, "n": self.n,
                "alpha": self.alpha,
                "certified": {str(k): bool(v) for k, v in self.certified.items()},
                "margin": {str(k): float(v) for k, v in self.margin.items()},
                "radius": None if self.radius is None else {str(k): int(v) for k, v in self.radius.items()},
                "ranking": [self.doc_ids[i] for i in self.order.tolist()],
                "mean_tv": float(self.tv.mean()) if self.tv.size else 0.0}


def prepare_candidates(ranker: Ranker, query: str, docs: list[str],
                       doc_ids: Sequence[str] | None, transform: ScoreTransform | None,
                       split: bool = True) -> tuple[list[str], ScoreTransform, list[list[str]]]:
    """Shared set-up of the top-K certificates for N candidate ``docs``: their ids (N,),
    the score transform (fitted on the clean scores when not given) and their words
    (``[]`` when ``split`` is False)."""
    if not docs:
        raise ValueError("docs: no candidate documents")
    ids = list(doc_ids) if doc_ids is not None else [str(i) for i in range(len(docs))]
    if len(ids) != len(docs):
        raise ValueError("doc_ids: length differs from docs")
    if transform is None:
        transform = ScoreTransform.fit(ranker.score(query, docs))
    return ids, transform, [split_words(d) for d in docs] if split else []


def check_common(n: int, alpha: float, seed: int, query_index: int) -> tuple[int, float, int, int]:
    """Validated (n, alpha, seed, query_index) of a certificate call."""
    return (check_int(n, "n", minimum=2), check_alpha(alpha), check_seed(seed),
            check_int(query_index, "query_index", minimum=0))
