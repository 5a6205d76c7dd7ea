"""certkit.vision: Randomized smoothing, sequential certification, robust conformal prediction, attacks and corruptions for image classifiers."""

from certkit.vision.version import __version__

__all__ = ["__version__"]
