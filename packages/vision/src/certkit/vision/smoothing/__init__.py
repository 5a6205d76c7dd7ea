"""Randomized smoothing: Cohen et al. (2019) CERTIFY and its anytime-valid sequential mode
(:mod:`~certkit.vision.smoothing.smooth`), the Clopper-Pearson looks bound
(:mod:`~certkit.vision.smoothing.looks`) and the beta-binomial mixture
(:mod:`~certkit.vision.smoothing.sequential`), Dual RS (:mod:`~certkit.vision.smoothing.dual`),
adaptive smoothing (:mod:`~certkit.vision.smoothing.adaptive`), certified-accuracy metrics
(:mod:`~certkit.vision.smoothing.metrics`); the ``certkit vision certify | evaluate | plot``
commands (:mod:`~certkit.vision.smoothing.cli`) and their report tables
(:mod:`~certkit.vision.smoothing.report`)."""

from __future__ import annotations

from certkit.vision._lazy import lazy_exports

_P = "certkit.vision.smoothing."
_LAZY = {
    "ABSTAIN": _P + "smooth",
    "Certificate": _P + "smooth",
    "Smooth": _P + "smooth",
    "certify_batch": _P + "smooth",
    "BetaBinomialCS": _P + "sequential",
    "LookClopperPearsonCS": _P + "looks",
    "grid_schedule": _P + "looks",
    "DualSmooth": _P + "dual",
    "split_checkerboard": _P + "dual",
    "AdaptiveSmoothing": _P + "adaptive",
    "average_certified_radius": _P + "metrics",
    "certified_accuracy": _P + "metrics",
    "plot_certified_accuracy": _P + "metrics",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
__all__ = sorted(_LAZY)
