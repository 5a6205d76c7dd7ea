"""Conformal prediction for image classifiers: split conformal with THR / APS / RAPS scores
(:mod:`~certkit.vision.conformal.scores`), RSCP, RSCP+ and PTT
(:mod:`~certkit.vision.conformal.robust`), robust conformal training RCT
(:mod:`~certkit.vision.conformal.rct`), coverage experiments under attack
(:mod:`~certkit.vision.conformal.experiments`); the ``certkit vision conformal`` command
(:mod:`~certkit.vision.conformal.cli`) and its report table (:mod:`~certkit.vision.conformal.report`)."""

from __future__ import annotations

from certkit.vision._lazy import lazy_exports

_P = "certkit.vision.conformal."
_LAZY = {
    "SCORES": _P + "scores",
    "SplitConformal": _P + "scores",
    "class_scores": _P + "scores",
    "conformal_quantile": _P + "scores",
    "coverage_and_size": _P + "scores",
    "softmax_probs": _P + "scores",
    "RSCP": _P + "robust",
    "RSCPPlus": _P + "robust",
    "PTTransform": _P + "robust",
    "smoothed_scores": _P + "robust",
    "rct_loss": _P + "rct",
    "train_rct": _P + "rct",
    "robust_coverage_experiment": _P + "experiments",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
__all__ = sorted(_LAZY)
