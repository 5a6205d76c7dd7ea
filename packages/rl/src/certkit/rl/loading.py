"""Policies from files: certkit-rl checkpoints, TorchScript and ``module:factory``.

Every format is read without running pickled code: checkpoints and state dicts with
``torch.load(weights_only=True)``, TorchScript with ``torch.jit.load``.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import torch
from torch import nn

from certkit.rl.checkpoints import load_trained


def load_module(spec: str, state_dict: str | None = None) -> nn.Module:
    """A TorchScript file, or ``package.module:factory`` (called with no arguments) with an
    optional state_dict file loaded with ``weights_only=True``."""
    p = Path(spec)
    if p.exists():
        if state_dict is None:
            try:
                return load_trained(p).module
            except ValueError:
                pass  # not a certkit-rl checkpoint: try TorchScript
        try:
            return torch.jit.load(str(p), map_location="cpu")
        except RuntimeError as exc:
            raise ValueError(f"model: {spec} is neither a certkit-rl checkpoint nor TorchScript") from exc
    if ":" not in spec:
        raise ValueError(f"model: {spec!r} is neither a file nor 'module:factory'")
    mod_name, fn_name = spec.split(":", 1)
    try:
        factory = getattr(importlib.import_module(mod_name), fn_name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"model: cannot import {spec!r}: {exc}") from exc
    module = factory()
    if state_dict is not None:
        sd = torch.load(state_dict, map_location="cpu", weights_only=True)
        module.load_state_dict(sd)
    return module
