"""certkit.theory: Closed-form robustness theory next to faithful simulations, with plots."""

from certkit.theory.version import __version__

__all__ = ["__version__"]
