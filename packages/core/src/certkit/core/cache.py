"""The user's cache directory for trained reference models and generated data.

``$CERTKIT_CACHE`` when set, else ``$XDG_CACHE_HOME/certkit``, else ``~/.cache/certkit``.
Checkpoints are written atomically and read with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def cache_dir(*parts: str) -> Path:
    """The cache directory (or a subdirectory), created on first use."""
    base = os.environ.get("CERTKIT_CACHE")
    if base:
        root = Path(base)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = (Path(xdg) if xdg else Path.home() / ".cache") / "certkit"
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_state(state: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Atomically save a state_dict-like object with torch.save."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_state(path: str | os.PathLike[str]) -> Any:
    """Load a checkpoint saved by :func:`save_state` (``weights_only=True``: no pickle code)."""
    import torch

    return torch.load(Path(path), map_location="cpu", weights_only=True)
