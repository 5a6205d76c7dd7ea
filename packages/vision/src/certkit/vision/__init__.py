"""certkit.vision: randomized smoothing, sequential certification, robust conformal
prediction, attacks and corruptions for image classifiers.

Public names are imported lazily (``import certkit.vision`` does not import torch):

- :class:`Smooth`, :func:`certify_batch`, :class:`Certificate`, ``ABSTAIN`` —
  randomized smoothing (Cohen et al. 2019) with ``mode="cohen" | "sequential"``;
- :class:`LookClopperPearsonCS`, :func:`grid_schedule` (the default anytime-valid bound of
  sequential mode) and :class:`BetaBinomialCS` (the mixture confidence sequence);
- :func:`certified_accuracy`, :func:`average_certified_radius`,
  :func:`plot_certified_accuracy`;
- :class:`SplitConformal`, :class:`RSCP`, :class:`RSCPPlus`, :class:`PTTransform`,
  :func:`train_rct`;
- :class:`DualSmooth` (dual randomized smoothing), :class:`AdaptiveSmoothing`,
  :func:`train_gaussian`, :func:`train_consistency`.
"""

from __future__ import annotations

import importlib
from typing import Any

from certkit.vision.version import __version__

_LAZY = {
    "ABSTAIN": "certkit.vision.smoothing",
    "Certificate": "certkit.vision.smoothing",
    "Smooth": "certkit.vision.smoothing",
    "certify_batch": "certkit.vision.smoothing",
    "BetaBinomialCS": "certkit.vision.sequential",
    "LookClopperPearsonCS": "certkit.vision.cp_looks",
    "grid_schedule": "certkit.vision.cp_looks",
    "average_certified_radius": "certkit.vision.metrics",
    "certified_accuracy": "certkit.vision.metrics",
    "plot_certified_accuracy": "certkit.vision.metrics",
    "SplitConformal": "certkit.vision.conformal",
    "RSCP": "certkit.vision.robust_conformal",
    "RSCPPlus": "certkit.vision.robust_conformal",
    "PTTransform": "certkit.vision.robust_conformal",
    "train_rct": "certkit.vision.robust_conformal_training",
    "DualSmooth": "certkit.vision.dual_smoothing",
    "AdaptiveSmoothing": "certkit.vision.adaptive_smoothing",
    "train_gaussian": "certkit.vision.training",
    "train_consistency": "certkit.vision.training",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'certkit.vision' has no attribute {name!r}")


__all__ = ["__version__", *sorted(_LAZY)]
