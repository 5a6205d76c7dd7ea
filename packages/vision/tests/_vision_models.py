"""Small exact models shared by the vision tests (imported through conftest's sys.path)."""
from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch
from torch import nn


class Linear2(nn.Module):
    """Binary linear classifier on (B, 1, 2, 2) inputs: logits (s, -s), s = w·x + b.
    Its smoothed classifier is itself and p_A = Φ(|w·x+b| / (σ‖w‖)) exactly, so the exact
    certified radius is |w·x + b| / ‖w‖."""

    def __init__(self, w: npt.ArrayLike = (1.0, -2.0, 0.5, 1.5), b: float = -0.3) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(np.asarray(w, dtype=np.float64)), requires_grad=False)
        self.b = b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.reshape(x.shape[0], -1).to(torch.float64) @ self.w + self.b
        return torch.stack([s, -s], 1)
