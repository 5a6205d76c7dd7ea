"""certkit.rl: Policy smoothing reward certificates and adaptive attacks for gymnasium agents."""

from certkit.rl.version import __version__

__all__ = ["__version__"]
