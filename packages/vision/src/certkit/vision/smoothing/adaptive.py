"""Adaptive smoothing (Bai, Anderson, Kim & Sojoudi, "Improving the Accuracy-Robustness
Trade-Off of Classifiers via Adaptive Smoothing", SIAM J. Math. Data Sci. 2024,
arXiv 2301.12554): mix the probabilities of an accurate standard classifier g and a robust
classifier h with an input-dependent weight from a small mixing network,

    p(x) = (1 − w(x)) · softmax(g(x)) + w(x) · softmax(h(x)),   w(x) ∈ [0, 1].

The mixer is trained (g and h frozen) on clean and PGD-attacked inputs of the *mixed*
model, so it learns to lean on h when an input looks attacked. This is an empirical
defence: we evaluate it with ℓ∞/ℓ2 PGD on the mixed model (end to end, through w), not a
certificate. (Mixer architecture simplified from the paper: an MLP on the two logit
vectors and the flattened input.)
"""

from __future__ import annotations

import torch
from torch import nn

from certkit.core.validation import check_int, check_positive

__all__ = ["AdaptiveSmoothing", "pgd_accuracy", "train_mixer"]


class AdaptiveSmoothing(nn.Module):
    """(B, C, H, W) → (B, K) log-probabilities of the mixture (usable as logits)."""

    def __init__(self, standard: nn.Module, robust: nn.Module, in_features: int, num_classes: int,
                 hidden: int = 32) -> None:
        super().__init__()
        self.standard, self.robust = standard.eval(), robust.eval()
        for p in list(self.standard.parameters()) + list(self.robust.parameters()):
            p.requires_grad_(False)
        self.mixer = nn.Sequential(nn.Linear(in_features + 2 * num_classes, hidden), nn.ReLU(),
                                   nn.Linear(hidden, 1))
        self.fixed_weight: float | None = None

    def weight(self, x: torch.Tensor, zs: torch.Tensor, zr: torch.Tensor) -> torch.Tensor:
        if self.fixed_weight is not None:
            return torch.full((x.shape[0], 1), self.fixed_weight, dtype=x.dtype, device=x.device)
        return torch.sigmoid(self.mixer(torch.cat([x.flatten(1), zs, zr], 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        zs, zr = self.standard(x), self.robust(x)
        w = self.weight(x, zs, zr)
        p = (1 - w) * torch.softmax(zs, 1) + w * torch.softmax(zr, 1)
        return torch.log(p.clamp_min(1e-12))


def _pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int, norm: str) -> torch.Tensor:
    delta = torch.zeros_like(x)
    step = 2.5 * eps / steps
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = nn.functional.cross_entropy(model(x + delta), y)
        (grad,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            if norm == "linf":
                delta = (delta + step * grad.sign()).clamp(-eps, eps)
            else:
                gn = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (x.dim() - 1))
                delta = delta + step * grad / gn
                dn = delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (x.dim() - 1))
                delta = delta * torch.clamp(eps / dn, max=1.0)
            delta = (x + delta).clamp(0, 1) - x
    return (x + delta).detach()


def pgd_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, steps: int = 20,
                 norm: str = "linf") -> float:
    """Accuracy under PGD (``norm`` "linf" or "l2", pixels kept in [0, 1])."""
    if norm not in ("linf", "l2"):
        raise ValueError(f"norm: expected 'linf' or 'l2', got {norm!r}")
    check_positive(eps, "eps", allow_zero=True)
    model.eval()
    adv = _pgd(model, x, y, eps, check_int(steps, "steps", minimum=1), norm) if eps > 0 else x
    with torch.no_grad():
        return float((model(adv).argmax(1) == y).float().mean())


def train_mixer(model: AdaptiveSmoothing, x: torch.Tensor, y: torch.Tensor, eps: float, *, epochs: int = 5,
                steps: int = 5, norm: str = "linf", lr: float = 3e-3, batch_size: int = 128,
                seed: int = 0) -> AdaptiveSmoothing:
    """Train only the mixing network on clean + PGD examples of the mixed model."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.mixer.parameters(), lr=lr)
    for _ in range(check_int(epochs, "epochs", minimum=1)):
        perm = torch.randperm(x.shape[0], generator=g)
        for i in range(0, x.shape[0], batch_size):
            idx = perm[i:i + batch_size]
            xb, yb = x[idx], y[idx]
            adv = _pgd(model, xb, yb, eps, steps, norm)
            loss = nn.functional.nll_loss(model(torch.cat([xb, adv])), torch.cat([yb, yb]))
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()
