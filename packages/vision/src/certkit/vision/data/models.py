"""Small reference classifiers for the embedded digits data (inputs (B, 1, 8, 8) in
[0, 1], outputs (B, 10) logits), and a plain trainer with optional Gaussian augmentation
(Cohen et al. 2019 train the base classifier under the smoothing noise)."""

from __future__ import annotations

import torch
from torch import nn


class DigitsCNN(nn.Module):
    """conv(1→16, 3) → ReLU → conv(16→32, 3, stride 2) → ReLU → linear(32·4·4 → 64) →
    ReLU → linear(64 → 10). (B, 1, 8, 8) → (B, 10) logits."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(),
            nn.Linear(2 * width * 4 * 4, 64), nn.ReLU(),
            nn.Linear(64, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]


class DigitsMLP(nn.Module):
    """Flatten → 64 → hidden → hidden → 10. (B, 1, 8, 8) → (B, 10) logits."""

    def __init__(self, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(),
                                 nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]


def train_classifier(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int = 30,
                     batch_size: int = 64, lr: float = 3e-3, noise_sigma: float = 0.0,
                     seed: int = 0, weight_decay: float = 0.0) -> nn.Module:
    """Adam + cross-entropy; with ``noise_sigma > 0`` every batch gets N(0, σ²) noise
    (Gaussian augmentation). x: (N, C, H, W) in [0, 1]; y: (N,). Returns the model in eval mode."""
    if noise_sigma < 0:
        raise ValueError(f"noise_sigma: expected >= 0, got {noise_sigma!r}")
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs))
    model.train()
    n = x.shape[0]
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            xb, yb = x[idx], y[idx]
            if noise_sigma > 0:
                xb = xb + noise_sigma * torch.randn(xb.shape, generator=g)
            loss = nn.functional.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    model.eval()
    return model


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> float:
    """Clean top-1 accuracy. x: (N, C, H, W); y: (N,)."""
    model.eval()
    correct = 0
    for i in range(0, x.shape[0], batch_size):
        correct += int((model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum())
    return correct / max(1, int(x.shape[0]))
