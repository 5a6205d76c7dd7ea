"""certkit.rl: Policy smoothing reward certificates and adaptive attacks for gymnasium agents."""

from typing import Any

from certkit.rl.version import __version__

__all__ = ["__version__", "make_vec_env"]


def __getattr__(name: str) -> Any:
    """``certkit.rl.make_vec_env`` (:func:`certkit.rl.noise.make_vec_env`), imported on use
    so that ``import certkit.rl`` stays light."""
    if name == "make_vec_env":
        from certkit.rl.noise import make_vec_env

        return make_vec_env
    raise AttributeError(f"module 'certkit.rl' has no attribute {name!r}")
