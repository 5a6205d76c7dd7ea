"""Training base classifiers for randomized smoothing.

- Gaussian augmentation (Cohen et al. 2019, arXiv 1902.02918): train f on x + N(0, σ²I)
  so that the smoothed classifier is accurate.
- Consistency regularisation (Jeong & Shin, "Consistency Regularization for Certified
  Robustness of Smoothed Classifiers", NeurIPS 2020, arXiv 2006.04062): with m noisy
  copies x + δ_i, softmaxes p_i and their mean p̂,

      L = (1/m) Σ_i CE(f(x + δ_i), y) + λ · (1/m) Σ_i KL(p̂ ‖ p_i) + η · H(p̂).

  (Formula recalled from the paper; defaults m = 2, λ = 10, η = 0.5 as in its CIFAR runs.)
"""

from __future__ import annotations

import torch
from torch import nn

from certkit.core.validation import check_int, check_positive, check_sigma
from certkit.vision.data.models import train_classifier

__all__ = ["consistency_loss", "train_consistency", "train_gaussian"]


def train_gaussian(model: nn.Module, x: torch.Tensor, y: torch.Tensor, sigma: float, *, epochs: int = 30,
                   batch_size: int = 64, lr: float = 3e-3, seed: int = 0) -> nn.Module:
    """Gaussian-augmentation training. x: (N, C, H, W) in [0, 1]; y: (N,). Eval-mode model."""
    return train_classifier(model, x, y, epochs=epochs, batch_size=batch_size, lr=lr,
                            noise_sigma=check_sigma(sigma), seed=seed)


def consistency_loss(logits: torch.Tensor, y: torch.Tensor, lam: float = 10.0,
                     eta: float = 0.5) -> torch.Tensor:
    """The consistency objective. logits: (m, B, K) for m noisy copies; y: (B,). Scalar."""
    if logits.dim() != 3 or logits.shape[1] != y.shape[0]:
        raise ValueError(f"logits: expected (m, B, K) with B = {y.shape[0]}, got {tuple(logits.shape)}")
    m, b, k = logits.shape
    ce = nn.functional.cross_entropy(logits.reshape(m * b, k), y.repeat(m))
    logp = torch.log_softmax(logits, -1)
    p_mean = logp.exp().mean(0)  # (B, K)
    log_mean = torch.log(p_mean.clamp_min(1e-12))
    kl = (p_mean.unsqueeze(0) * (log_mean.unsqueeze(0) - logp)).sum(-1).mean()
    ent = -(p_mean * log_mean).sum(-1).mean()
    return ce + lam * kl + eta * ent


def train_consistency(model: nn.Module, x: torch.Tensor, y: torch.Tensor, sigma: float, *, m: int = 2,
                      lam: float = 10.0, eta: float = 0.5, epochs: int = 30, batch_size: int = 64,
                      lr: float = 3e-3, seed: int = 0) -> nn.Module:
    """Train with :func:`consistency_loss` on m noisy copies per input (Adam, cosine LR)."""
    sigma = check_sigma(sigma)
    m = check_int(m, "m", minimum=1)
    check_positive(lam, "lam", allow_zero=True)
    check_positive(eta, "eta", allow_zero=True)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs))
    model.train()
    n = x.shape[0]
    for _ in range(check_int(epochs, "epochs", minimum=1)):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            xb, yb = x[idx], y[idx]
            noisy = xb.unsqueeze(0) + sigma * torch.randn((m, *xb.shape), generator=g)
            logits = model(noisy.reshape(-1, *xb.shape[1:])).reshape(m, xb.shape[0], -1)
            loss = consistency_loss(logits, yb, lam, eta)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    return model.eval()
