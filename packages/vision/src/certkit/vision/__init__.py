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

Layout: one subpackage per topic, each with its command and report section beside its
code: :mod:`~certkit.vision.smoothing`, :mod:`~certkit.vision.conformal`,
:mod:`~certkit.vision.attacks`, :mod:`~certkit.vision.training`,
:mod:`~certkit.vision.corruptions`, :mod:`~certkit.vision.data`.
"""

from __future__ import annotations

from certkit.vision._lazy import lazy_exports
from certkit.vision.version import __version__

_LAZY = {
    "ABSTAIN": "certkit.vision.smoothing.smooth",
    "Certificate": "certkit.vision.smoothing.smooth",
    "Smooth": "certkit.vision.smoothing.smooth",
    "certify_batch": "certkit.vision.smoothing.smooth",
    "BetaBinomialCS": "certkit.vision.smoothing.sequential",
    "LookClopperPearsonCS": "certkit.vision.smoothing.looks",
    "grid_schedule": "certkit.vision.smoothing.looks",
    "average_certified_radius": "certkit.vision.smoothing.metrics",
    "certified_accuracy": "certkit.vision.smoothing.metrics",
    "plot_certified_accuracy": "certkit.vision.smoothing.metrics",
    "SplitConformal": "certkit.vision.conformal.scores",
    "RSCP": "certkit.vision.conformal.robust",
    "RSCPPlus": "certkit.vision.conformal.robust",
    "PTTransform": "certkit.vision.conformal.robust",
    "train_rct": "certkit.vision.conformal.rct",
    "DualSmooth": "certkit.vision.smoothing.dual",
    "AdaptiveSmoothing": "certkit.vision.smoothing.adaptive",
    "train_gaussian": "certkit.vision.training.noise",
    "train_consistency": "certkit.vision.training.noise",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = ["__version__", *sorted(_LAZY)]
