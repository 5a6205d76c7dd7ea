"""Training for robustness: Gaussian noise augmentation and consistency regularisation
(:mod:`~certkit.vision.training.noise`, the base classifiers of randomized smoothing),
adversarial training (:mod:`~certkit.vision.training.adversarial`: PGD-AT, TRADES, fast
FGSM-AT, DRO / class-balanced reweighting, defensive distillation)."""

from __future__ import annotations

from certkit.vision._lazy import lazy_exports

_P = "certkit.vision.training."
_LAZY = {
    "consistency_loss": _P + "noise",
    "train_consistency": _P + "noise",
    "train_gaussian": _P + "noise",
    "fgsm_at": _P + "adversarial",
    "pgd_at": _P + "adversarial",
    "trades": _P + "adversarial",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
__all__ = sorted(_LAZY)
