"""Loading users' models for the ``certkit`` command and the Python API.

A model is given either as
- a TorchScript file (``model.pt`` saved with ``torch.jit.save``; torch ≥ 2.13 marks
  TorchScript deprecated, so its deprecation warning is silenced here), or
- a ``torch.export`` program (``model.pt2`` from ``torch.export.save``; export it with a
  dynamic batch dimension, since certification batches many noisy copies), or
- ``module:factory`` (a callable returning an ``nn.Module``, the module importable or a
  file in the current directory) plus an optional
  state_dict file, read with ``torch.load(..., weights_only=True)`` — never unpickling code.

Every failure is a :class:`ModelLoadError` (a ``ValueError``) whose message names the
argument, so the command prints one line and exits with code 2.
"""

from __future__ import annotations

import importlib
import warnings
import zipfile
from pathlib import Path
from typing import Any


class ModelLoadError(ValueError):
    """The model spec or weights could not be loaded."""


def load_model(spec: str, weights: str | Path | None = None, *, device: str = "cpu",
               factory_kwargs: dict[str, Any] | None = None) -> Any:
    """Load ``spec`` (TorchScript path or ``module:factory``) in eval mode on ``device``."""
    import torch

    path = Path(spec)
    if path.suffix == ".pt2":
        if not path.exists():
            raise ModelLoadError(f"model: no such file {spec}")
        try:
            program = torch.export.load(str(path))
        except Exception as exc:
            raise ModelLoadError(f"model: could not load torch.export file {spec}: "
                                 f"{str(exc).splitlines()[0]}") from exc
        return program.module().to(device)
    if path.suffix in (".pt", ".pth", ".ts", ".torchscript") or path.exists():
        if weights is not None:
            raise ModelLoadError("weights: a TorchScript file carries its own weights; drop --weights")
        if not path.exists():
            raise ModelLoadError(f"model: no such file {spec}")
        if not zipfile.is_zipfile(path):
            raise ModelLoadError(f"model: {spec} is not a TorchScript archive (truncated or not saved "
                                 "with torch.jit.save)")
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=DeprecationWarning, module="torch.jit")
                warnings.filterwarnings("ignore", message=".*torch.jit.*deprecated.*")
                model = torch.jit.load(str(path), map_location=device)
        except Exception as exc:  # torch raises RuntimeError subclasses with long text
            raise ModelLoadError(f"model: could not load TorchScript file {spec}: "
                                 f"{str(exc).splitlines()[0]}") from exc
        return model.eval()
    if ":" not in spec:
        raise ModelLoadError(f"model: expected a TorchScript file or 'module:factory', got {spec!r}")
    mod_name, _, attr = spec.partition(":")
    try:
        module = _import_from_cwd_first(mod_name)
    except ImportError as exc:
        raise ModelLoadError(f"model: cannot import module {mod_name!r}: {exc}") from exc
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise ModelLoadError(f"model: {mod_name!r} has no callable {attr!r}")
    model = factory(**(factory_kwargs or {}))
    if not isinstance(model, torch.nn.Module):
        raise ModelLoadError(f"model: {spec} returned {type(model).__name__}, expected torch.nn.Module")
    if weights is not None:
        wp = Path(weights)
        if not wp.exists():
            raise ModelLoadError(f"weights: no such file {weights}")
        try:
            state = torch.load(wp, map_location=device, weights_only=True)
        except Exception as exc:
            raise ModelLoadError(f"weights: could not read {weights} as a state_dict "
                                 f"(weights_only=True): {str(exc).splitlines()[0]}") from exc
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError) as exc:
            raise ModelLoadError(f"weights: do not fit {spec}: {str(exc).splitlines()[0]}") from exc
    return model.to(device).eval()


def _import_from_cwd_first(name: str) -> Any:
    """``importlib.import_module(name)`` with the current directory first on ``sys.path``
    (as ``python -m`` does), so ``--model mymodel:factory`` finds ``./mymodel.py`` without
    PYTHONPATH."""
    import os
    import sys

    cwd = os.getcwd()
    added = not sys.path or sys.path[0] not in ("", cwd)
    if added:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(name)
    finally:
        if added:
            sys.path.remove(cwd)


def check_num_classes(model: Any, example: Any, num_classes: int) -> None:
    """Run ``model`` on ``example`` (a batch) and check its output is (B, num_classes)."""
    import torch

    with torch.no_grad():
        out = model(example)
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[1] != num_classes:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelLoadError(f"model: output shape {shape} does not match num_classes={num_classes} "
                             f"(expected (B, {num_classes}) logits)")
