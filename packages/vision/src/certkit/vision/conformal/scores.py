"""Split conformal prediction with THR/LAC, APS and RAPS scores (TorchCP's ``lac`` is
accepted for THR; ``calibrate`` takes inputs, probabilities or logits, and alpha).

- THR / LAC (Sadinle, Lei & Wasserman 2019, arXiv 1609.00451): s(x, y) = 1 − p_y(x).
- APS (Romano, Sesia & Candès 2020, arXiv 2006.02544), randomised: the mass of the classes
  ranked above y plus U·p_y, U ~ U(0, 1) per input.
- RAPS (Angelopoulos, Bates, Malik & Jordan 2021, arXiv 2009.14193): APS + λ·(rank_y − k_reg)⁺.

**Guarantee** (split conformal, Vovk et al. 2005; Lei et al. 2018): with n exchangeable
calibration points and τ the ⌈(1−α)(n+1)⌉-th smallest calibration score — the
(1−α)(1+1/n) empirical quantile — the set C(x) = {y : s(x, y) ≤ τ} satisfies
P(Y ∈ C(X)) ≥ 1 − α for a new exchangeable (X, Y). When ⌈(1−α)(n+1)⌉ > n, τ = +∞.

The API follows MAPIE/TorchCP: ``fit`` (optional training), ``calibrate``, ``predict_set``
(a (N, K) boolean mask), ``evaluate`` (coverage and average set size). Probabilities are
softmax(logits) of any (B, C, H, W) → (B, K) model; every function also has a
probability-level form for use without a model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from certkit.core.validation import check_alpha, check_int, check_positive

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

SCORES = ("thr", "aps", "raps")
#: TorchCP / MAPIE names accepted for certkit's scores (case-insensitive)
SCORE_ALIASES = {"lac": "thr", "thr": "thr", "aps": "aps", "raps": "raps"}


def canonical_score(score: Any) -> str:
    """``thr`` | ``aps`` | ``raps`` from certkit's or TorchCP's name (``LAC`` / ``lac`` is THR)."""
    key = str(score).lower() if isinstance(score, str) else score
    if key not in SCORE_ALIASES:
        raise ValueError(f"score: expected one of thr (alias lac), aps, raps, got {score!r}")
    return SCORE_ALIASES[key]

__all__ = ["SCORES", "SCORE_ALIASES", "SplitConformal", "canonical_score", "class_scores", "conformal_quantile",
           "coverage_and_size",
           "softmax_probs"]


def _check_probs(probs: Any) -> FloatArray:
    p = np.asarray(probs.detach().cpu() if isinstance(probs, torch.Tensor) else probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"probs: expected shape (N, K) with K >= 2, got {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError("probs: contains NaN or inf")
    if p.size and (p.min() < -1e-9 or np.abs(p.sum(1) - 1).max() > 1e-4):
        raise ValueError("probs: expected rows of probabilities (non-negative, summing to 1); "
                         "for a model's raw outputs pass logits=")
    return p


def _from_logits(logits: Any) -> FloatArray:
    z = torch.as_tensor(logits.detach().cpu() if isinstance(logits, torch.Tensor) else np.asarray(logits),
                        dtype=torch.float64)
    if z.dim() != 2 or z.shape[1] < 2:
        raise ValueError(f"logits: expected shape (N, K) with K >= 2, got {tuple(z.shape)}")
    if not bool(torch.isfinite(z).all()):
        raise ValueError("logits: contains NaN or inf")
    return torch.softmax(z, 1).numpy()


def class_scores(probs: Any, score: str = "thr", *, u: Any = None, lam: float = 0.01,
                 k_reg: int = 5) -> FloatArray:
    """Non-conformity score of every class. probs: (N, K) → (N, K) float64.

    u: (N,) uniforms for the randomised APS/RAPS (default: 1, i.e. non-randomised);
    lam, k_reg: RAPS penalty λ·(rank − k_reg)⁺ with rank starting at 1.
    """
    p = _check_probs(probs)
    score = canonical_score(score)
    if score == "thr":
        return 1.0 - p
    n, k = p.shape
    u_arr = np.ones(n) if u is None else np.asarray(u, dtype=np.float64).reshape(n)
    order = np.argsort(-p, axis=1, kind="stable")
    ps = np.take_along_axis(p, order, 1)
    above = np.cumsum(ps, axis=1) - ps  # mass strictly ranked above
    s_sorted = above + u_arr[:, None] * ps
    if score == "raps":
        check_positive(lam, "lam", allow_zero=True)
        k_reg = check_int(k_reg, "k_reg", minimum=0)
        s_sorted = s_sorted + lam * np.maximum(0, np.arange(1, k + 1) - k_reg)[None, :]
    out = np.empty_like(s_sorted)
    np.put_along_axis(out, order, s_sorted, 1)
    return out


def conformal_quantile(cal_scores: Any, alpha: float) -> float:
    """The ⌈(1−α)(n+1)⌉-th smallest score (+∞ when that exceeds n). cal_scores: (n,)."""
    alpha = check_alpha(alpha)
    s = np.sort(np.asarray(cal_scores, dtype=np.float64).reshape(-1))
    if s.size == 0:
        raise ValueError("cal_scores: empty")
    if np.isnan(s).any():
        raise ValueError("cal_scores: contains NaN")
    k = int(np.ceil((1 - alpha) * (s.size + 1)))
    return float("inf") if k > s.size else float(s[k - 1])


def coverage_and_size(sets: Any, labels: Any) -> dict[str, float]:
    """Empirical coverage P(y ∈ C) and average |C|. sets: (N, K) bool; labels: (N,)."""
    m = np.asarray(sets, dtype=bool)
    y = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels).astype(np.int64)
    if m.ndim != 2 or y.shape != (m.shape[0],):
        raise ValueError(f"sets/labels: expected (N, K) and (N,), got {m.shape} and {y.shape}")
    return {"coverage": float(m[np.arange(len(y)), y].mean()), "size": float(m.sum(1).mean())}


@torch.no_grad()
def softmax_probs(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> FloatArray:
    """softmax(model(x)) as float64 numpy. x: (N, C, H, W) → (N, K)."""
    model.eval()
    dev = next((p.device for p in model.parameters()), torch.device("cpu"))
    out = [torch.softmax(model(x[i:i + batch_size].to(dev)).double(), 1).cpu()
           for i in range(0, x.shape[0], batch_size)]
    return torch.cat(out).numpy()


class SplitConformal:
    """Split conformal classifier sets.

    model: (B, C, H, W) → (B, K) logits, or None to work on probabilities or logits
    directly (``calibrate(probs=..., y=...)``, ``calibrate(logits=..., y=..., alpha=...)``).
    score: "thr" (TorchCP's "lac") | "aps" | "raps"; alpha: miscoverage.
    randomized: draw U ~ U(0, 1) per input for APS/RAPS (seeded by ``seed``).
    """

    def __init__(self, model: nn.Module | None = None, score: str = "thr", alpha: float = 0.1, *,
                 randomized: bool = True, lam: float = 0.01, k_reg: int = 5, seed: int = 0) -> None:
        self.model, self.score, self.alpha = model, canonical_score(score), check_alpha(alpha)
        self.randomized, self.lam, self.k_reg = randomized, lam, k_reg
        self.rng = np.random.default_rng(seed)
        self.threshold: float | None = None

    def fit(self, x: torch.Tensor, y: torch.Tensor, trainer: Callable[..., nn.Module] | None = None,
            **kwargs: Any) -> SplitConformal:
        """Train the model on (x, y) with ``trainer(model, x, y, **kwargs)`` (default
        :func:`certkit.vision.data.models.train_classifier`). Returns self."""
        if self.model is None:
            raise ValueError("model: fit needs a model")
        from certkit.vision.data.models import train_classifier

        (trainer or train_classifier)(self.model, x, y, **kwargs)
        return self

    def _probs(self, x: torch.Tensor | None, probs: Any, logits: Any = None) -> FloatArray:
        if probs is not None and logits is not None:
            raise ValueError("logits: give probs or logits, not both")
        if probs is not None:
            return _check_probs(probs)
        if logits is not None:
            return _from_logits(logits)
        if x is None or self.model is None:
            raise ValueError("x: give inputs with a model, or probs / logits")
        return softmax_probs(self.model, x)

    def scores(self, x: torch.Tensor | None = None, *, probs: Any = None, logits: Any = None) -> FloatArray:
        p = self._probs(x, probs, logits)
        u = self.rng.random(p.shape[0]) if (self.randomized and self.score != "thr") else None
        return class_scores(p, self.score, u=u, lam=self.lam, k_reg=self.k_reg)

    def calibrate(self, x: torch.Tensor | None = None, y: Any = None, *, probs: Any = None, logits: Any = None,
                  alpha: float | None = None) -> SplitConformal:
        """Set the threshold from a calibration set (never seen by ``fit``): inputs x with the
        model, or its softmax ``probs`` (N, K), or its ``logits`` (N, K) (TorchCP's
        ``calculate_threshold(logits, labels, alpha)``). ``alpha`` (TorchCP: at calibration
        time) replaces the constructor's."""
        if y is None:
            raise ValueError("y: calibration labels are required")
        if alpha is not None:
            self.alpha = check_alpha(alpha)
        s = self.scores(x, probs=probs, logits=logits)
        yy = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y).astype(np.int64)
        if yy.shape != (s.shape[0],) or yy.min() < 0 or yy.max() >= s.shape[1]:
            raise ValueError(f"y: expected ({s.shape[0]},) labels in [0, {s.shape[1]})")
        self.threshold = conformal_quantile(s[np.arange(len(yy)), yy], self.alpha)
        return self

    def predict_set(self, x: torch.Tensor | None = None, *, probs: Any = None, logits: Any = None) -> BoolArray:
        """(N, K) boolean mask of the prediction sets."""
        if self.threshold is None:
            raise ValueError("calibrate() must be called before predict_set()")
        return self.scores(x, probs=probs, logits=logits) <= self.threshold

    def evaluate(self, x: torch.Tensor | None = None, y: Any = None, *, probs: Any = None,
                 logits: Any = None) -> dict[str, float]:
        """Coverage and average set size on labelled data."""
        return coverage_and_size(self.predict_set(x, probs=probs, logits=logits), y)
