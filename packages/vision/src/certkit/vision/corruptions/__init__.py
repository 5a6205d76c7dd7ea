"""Common corruptions (:mod:`~certkit.vision.corruptions.suite`: ImageNet-C style families
at five severities, corruption errors, mCE) and translation robustness
(:mod:`~certkit.vision.corruptions.translation`: crop selection certificates, flip rates,
shift augmentation)."""

from __future__ import annotations

from certkit.vision._lazy import lazy_exports

_P = "certkit.vision.corruptions."
_LAZY = {
    "CORRUPTIONS": _P + "suite",
    "FAMILIES": _P + "suite",
    "corrupt": _P + "suite",
    "corruption_errors": _P + "suite",
    "mce": _P + "suite",
    "CropSelection": _P + "translation",
    "consistency_certificate": _P + "translation",
    "translation_report": _P + "translation",
    "shift_augment": _P + "translation",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
__all__ = sorted(_LAZY)
