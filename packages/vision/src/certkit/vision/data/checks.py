"""Checks of the user's model against the user's data, before any sampling.

- :func:`check_model_input`: one dry forward pass on one input; a model that does not
  accept the data's shape, or whose output is not (1, num_classes) logits, gives one
  ``ValueError`` line that names both shapes (exit code 2 on the command line) instead of
  a torch traceback from deep inside a sampling loop;
- :func:`check_pixel_range`: a :class:`PixelRangeWarning` naming the range found when the
  inputs are not in [0, 1] (certkit's σ, radii and ε are in [0, 1] pixel units; 0-255
  images certify "successfully" at a radius 255 times too small).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

__all__ = ["PixelRangeWarning", "check_model_input", "check_pixel_range", "error_line"]


class PixelRangeWarning(UserWarning):
    """Inputs outside [0, 1]: noise levels and radii are in the units of the inputs."""


def error_line(exc: BaseException) -> str:
    """The informative line of a (possibly TorchScript, many-line) torch error."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    for ln in reversed(lines):  # TorchScript puts the Python-level error last
        if "Error:" in ln:
            return ln.split("Error:", 1)[1].strip() or ln
    return lines[0] if len(lines) == 1 else lines[-1]


def check_pixel_range(x: torch.Tensor, name: str = "x", *, stacklevel: int = 2) -> None:
    """Warn (:class:`PixelRangeWarning`) when ``x`` has values outside [0, 1]."""
    if x.numel() == 0:
        return
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        hint = " (0-255 images: divide by 255)" if hi > 1.5 else ""
        warnings.warn(f"{name}: values in [{lo:.4g}, {hi:.4g}], outside [0, 1]; σ, radii and ε are in the "
                      f"units of the inputs, which certkit takes as [0, 1] pixels{hint}",
                      PixelRangeWarning, stacklevel=stacklevel + 1)


@torch.no_grad()
def check_model_input(model: Any, x: torch.Tensor, num_classes: int | None = None, *,
                      name: str = "x") -> torch.Tensor:
    """Run ``model`` once on the first input of ``x`` (N, C, H, W) and check it returns
    (1, num_classes) logits. Returns those logits. Raises ``ValueError`` naming the input
    shape and the model's complaint (or its output shape)."""
    if x.dim() != 4 or x.shape[0] < 1:
        raise ValueError(f"{name}: expected images (N, C, H, W), got shape {tuple(x.shape)}")
    one = x[:1]
    shape = tuple(one.shape[1:])
    try:
        out = model(one)
    except (RuntimeError, ValueError, TypeError, IndexError, AssertionError) as exc:
        raise ValueError(f"{name}: the model does not accept inputs of shape (C, H, W) = {shape}: "
                         f"{error_line(exc)}") from exc
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != 1:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"model: maps an input (1, {', '.join(map(str, shape))}) to {got}; expected "
                         "(1, num_classes) logits")
    if num_classes is not None and out.shape[1] != num_classes:
        raise ValueError(f"num_classes: the model maps an input (1, {', '.join(map(str, shape))}) to "
                         f"{tuple(out.shape)} logits, but num_classes={num_classes}")
    return out
