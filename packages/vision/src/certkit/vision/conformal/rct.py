"""RCT: robust conformal training (Yan, Zhang & Weng 2024, arXiv 2404.19651, building on
the conformal training of Stutz et al. 2022, arXiv 2110.09192).

Fine-tune the base classifier so that RSCP/RSCP+ sets are small. Each batch is split in a
calibration half and a prediction half. With m noisy copies per input the smoothed THR
score is S̃(x, y) = 1 − mean_i softmax(f(x + δ_i))_y. A differentiable threshold τ is the
(1 − α)(1 + 1/n) quantile of the calibration half's true-label scores (``torch.quantile``,
differentiable in the scores), and the soft set membership of class k on the prediction
half mirrors the RSCP test, shifted by ε/σ in Φ⁻¹ space:

    c_k = sigmoid((Φ⁻¹(τ) − Φ⁻¹(S̃(x, k)) + ε/σ) / T).

The loss, following conformal training (Stutz et al. 2022, Sec. 3: a size loss plus a
classification loss on the soft set, optionally added to the cross-entropy):

    L = ce_weight · CE(noisy copies)
        + size_weight  · mean_b max(0, Σ_k c_k − κ)              (size loss Ω)
        + class_weight · mean_b [(1 − c_{y_b}) + Σ_{k≠y_b} L_{y_b,k} c_k]   (classification loss)

with L the off-diagonal loss matrix (default 0: the classification loss is then the
coverage term 1 − c_y, which penalises soft sets that drop the true label; with a matrix,
wrong classes in the set are penalised too, as Stutz et al.'s L_class with their L_{y,k}).
Without the classification term the size loss alone can shrink sets by moving the true
label out (coverage is restored by calibration later, but the sets then carry less
information); the term keeps the true label's soft membership high. Training only changes
f; any certificate (RSCP+) is computed afterwards on fresh calibration data, so its
guarantee is unaffected.

Measured on digits (σ = 0.25, ε = 0.125, α = 0.1, 5 fine-tuning epochs, RSCP+ sets with
256 Monte-Carlo samples under 20-step PGD, 50 splits): RSCP+ on the base model 1.250;
RCT size loss only 1.198; class_weight 0.1 → 1.209 (0.3 → 1.221, 1.0 → 1.284), coverage
0.975-0.979 throughout. The classification term protects the true label's soft
membership; it does not shrink the sets further here, and a large weight undoes the
size loss. Default class_weight 0.1. (Loss recalled from the papers, not copied: THR score only, and
torch.quantile instead of Stutz et al.'s smooth sorting for the threshold.)
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from certkit.core.validation import check_alpha, check_int, check_positive, check_sigma

__all__ = ["rct_loss", "train_rct"]


def rct_loss(logits: torch.Tensor, y: torch.Tensor, sigma: float, eps: float, alpha: float = 0.1, *,
             temperature: float = 0.1, size_weight: float = 0.05, kappa: float = 1.0,
             class_weight: float = 0.0, loss_matrix: torch.Tensor | None = None,
             ce_weight: float = 1.0) -> torch.Tensor:
    """logits: (m, B, K) on m noisy copies; y: (B,), B ≥ 4. Scalar loss (module docs).

    class_weight: weight of the classification loss on the soft set of the prediction
    half; loss_matrix: optional (K, K) non-negative L_{y,k} for wrong classes in the set
    (its diagonal is ignored). ce_weight: weight of the cross-entropy (0 drops it).
    """
    if logits.dim() != 3 or logits.shape[1] != y.shape[0] or y.shape[0] < 4:
        raise ValueError(f"logits: expected (m, B, K) with B = len(y) >= 4, got {tuple(logits.shape)}")
    check_positive(class_weight, "class_weight", allow_zero=True)
    check_positive(ce_weight, "ce_weight", allow_zero=True)
    m, b, k = logits.shape
    if loss_matrix is not None and (loss_matrix.shape != (k, k) or bool((loss_matrix < 0).any())):
        raise ValueError(f"loss_matrix: expected a non-negative ({k}, {k}) matrix, got {tuple(loss_matrix.shape)}")
    ce = nn.functional.cross_entropy(logits.reshape(m * b, k), y.repeat(m))
    s = (1.0 - torch.softmax(logits, -1).mean(0)).clamp(1e-6, 1 - 1e-6)  # (B, K)
    half = b // 2
    cal_true = s[:half].gather(1, y[:half, None])[:, 0]
    level = min(1.0, (1 - alpha) * (1 + 1 / half))
    tau = torch.quantile(cal_true, level)
    z = (torch.special.ndtri(tau) - torch.special.ndtri(s[half:]) + eps / sigma) / temperature
    soft = torch.sigmoid(z)  # (B - half, K) soft membership of the prediction half
    size = soft.sum(1)
    loss = ce_weight * ce + size_weight * torch.relu(size - kappa).mean()
    if class_weight > 0:
        y_pred = y[half:]
        miss = 1.0 - soft.gather(1, y_pred[:, None])[:, 0]
        if loss_matrix is not None:
            lm = loss_matrix.to(soft.dtype)[y_pred].clone()
            lm.scatter_(1, y_pred[:, None], 0.0)
            miss = miss + (lm * soft).sum(1)
        loss = loss + class_weight * miss.mean()
    return loss


def train_rct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, sigma: float, eps: float, *,
              alpha: float = 0.1, m: int = 4, epochs: int = 5, batch_size: int = 128, lr: float = 1e-3,
              temperature: float = 0.1, size_weight: float = 0.05, class_weight: float = 0.1,
              seed: int = 0) -> nn.Module:
    """Fine-tune a *copy* of ``model`` with :func:`rct_loss`; returns it in eval mode.
    x: (N, C, H, W), y: (N,). ``class_weight`` weighs the classification (coverage) loss."""
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
            loss = rct_loss(logits, yb, sigma, eps, alpha, temperature=temperature, size_weight=size_weight,
                            class_weight=class_weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()
