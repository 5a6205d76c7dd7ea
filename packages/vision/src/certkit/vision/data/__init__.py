"""Data and reference models: the embedded digits data (:mod:`~certkit.vision.data.digits`),
readers for the user's data (:mod:`~certkit.vision.data.datasets`, :func:`load_data`),
checks of a model against the data (:mod:`~certkit.vision.data.checks`), the small reference
classifiers and their trainer (:mod:`~certkit.vision.data.models`) and the cached,
noise-trained reference models (:mod:`~certkit.vision.data.reference`).

Pixel convention everywhere: float32 in [0, 1], images (N, C, H, W)."""

from __future__ import annotations

from certkit.vision._lazy import lazy_exports

_P = "certkit.vision.data."
_LAZY = {
    "Split": _P + "digits",
    "load_digits": _P + "digits",
    "load_cifar10": _P + "datasets",
    "load_dataset": _P + "datasets",
    "load_image_folder": _P + "datasets",
    "DigitsCNN": _P + "models",
    "DigitsMLP": _P + "models",
    "accuracy": _P + "models",
    "train_classifier": _P + "models",
    "digits_cnn": _P + "reference",
    "load_arrays": _P + "datasets",
    "load_cifar100": _P + "datasets",
    "load_data": _P + "datasets",
    "PixelRangeWarning": _P + "checks",
    "check_model_input": _P + "checks",
    "check_pixel_range": _P + "checks",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
__all__ = sorted(_LAZY)
