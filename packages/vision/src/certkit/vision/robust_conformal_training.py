"""RCT: robust conformal training (Yan, Zhang & Weng 2024, arXiv 2404.19651, building on
the conformal training of Stutz et al. 2022, arXiv 2110.09192).

Fine-tune the base classifier so that RSCP/RSCP+ sets are small. Each batch is split in a
calibration half and a prediction half. With m noisy copies per input the smoothed THR
score is S̃(x, y) = 1 − mean_i softmax(f(x + δ_i))_y. A differentiable threshold τ is the
(1 − α)(1 + 1/n) quantile of the calibration half's true-label scores (``torch.quantile``,
differentiable in the scores), and the soft set membership of class k on the prediction
half mirrors the RSCP test, shifted by ε/σ in Φ⁻¹ space:

    c_k = sigmoid((Φ⁻¹(τ) − Φ⁻¹(S̃(x, k)) + ε/σ) / T).

The loss is the cross-entropy on the noisy copies plus ``size_weight`` · mean(max(0,
Σ_k c_k − κ)). Training only changes f; any certificate (RSCP+) is computed afterwards on
fresh calibration data, so its guarantee is unaffected. (Loss recalled from the papers,
simplified: no coverage-loss term, THR score only.)
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from certkit.core.validation import check_alpha, check_int, check_positive, check_sigma

__all__ = ["rct_loss", "train_rct"]


def rct_loss(logits: torch.Tensor, y: torch.Tensor, sigma: float, eps: float, alpha: float = 0.1, *,
             temperature: float = 0.1, size_weight: float = 0.05, kappa: float = 1.0) -> torch.Tensor:
    """logits: (m, B, K) on m noisy copies; y: (B,), B ≥ 4. Scalar loss (module docs)."""
    if logits.dim() != 3 or logits.shape[1] != y.shape[0] or y.shape[0] < 4:
        raise ValueError(f"logits: expected (m, B, K) with B = len(y) >= 4, got {tuple(logits.shape)}")
    m, b, k = logits.shape
    ce = nn.functional.cross_entropy(logits.reshape(m * b, k), y.repeat(m))
    s = (1.0 - torch.softmax(logits, -1).mean(0)).clamp(1e-6, 1 - 1e-6)  # (B, K)
    half = b // 2
    cal_true = s[:half].gather(1, y[:half, None])[:, 0]
    level = min(1.0, (1 - alpha) * (1 + 1 / half))
    tau = torch.quantile(cal_true, level)
    z = (torch.special.ndtri(tau) - torch.special.ndtri(s[half:]) + eps / sigma) / temperature
    size = torch.sigmoid(z).sum(1)
    return ce + size_weight * torch.relu(size - kappa).mean()


def train_rct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, sigma: float, eps: float, *,
              alpha: float = 0.1, m: int = 4, epochs: int = 5, batch_size: int = 128, lr: float = 1e-3,
              temperature: float = 0.1, size_weight: float = 0.05, seed: int = 0) -> nn.Module:
    """Fine-tune a *copy* of ``model`` with :func:`rct_loss`; returns it in eval mode."""
    sigma = check_sigma(sigma)
    check_positive(eps, "eps", allow_zero=True)
    alpha = check_alpha(alpha)
    m = check_int(m, "m", minimum=1)
    net = copy.deepcopy(model).train()
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    n = x.shape[0]
    for _ in range(check_int(epochs, "epochs", minimum=1)):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n - 3, batch_size):
            idx = perm[i:i + batch_size]
            if idx.numel() < 4:
                continue
            xb, yb = x[idx], y[idx]
            noisy = xb.unsqueeze(0) + sigma * torch.randn((m, *xb.shape), generator=g)
            logits = net(noisy.reshape(-1, *xb.shape[1:])).reshape(m, xb.shape[0], -1)
            loss = rct_loss(logits, yb, sigma, eps, alpha, temperature=temperature, size_weight=size_weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()
