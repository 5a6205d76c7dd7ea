"""Dual Randomized Smoothing (Xia, Yu, Jiang & Ding, "Mitigating the Curse of
Dimensionality for Certified Robustness via Dual Randomized Smoothing", ICLR 2024,
arXiv 2404.09586).

The image x (C, H, W) is split into two sub-images of d/2 pixels each by a checkerboard
partition (pixel (i, j) goes left when i + j is even), packed as (C, H, W/2) tensors.
Each half is smoothed in its own lower dimension by its own classifier, f_l and f_r, with
N(0, σ²) noise; the dual classifier predicts argmax_c p^l_c(x_l) + p^r_c(x_r).

**Certificate (derived here).** Let u_l = Φ⁻¹(p̲^l_A), u_r = Φ⁻¹(p̲^r_A) be lower bounds
for the common top class A of the two halves, each at level α/2, so both hold jointly with
probability ≥ 1 − α (union bound). A perturbation δ splits into (δ_l, δ_r), a = ‖δ_l‖,
b = ‖δ_r‖, a² + b² = ‖δ‖². By Cohen et al.'s Lemma, p^l_A(x_l + δ_l) ≥ Φ(u_l − a/σ) and
every other class has p^l_c ≤ 1 − Φ(u_l − a/σ) (same for r); so A stays on top if
Φ(u_l − a/σ) + Φ(u_r − b/σ) > 1, i.e. a + b < σ(u_l + u_r). Since max{a + b : a² + b² ≤ R²}
= √2·R, the dual classifier is robust within

    R = σ (u_l + u_r) / √2 = (R_l + R_r) / √2,     R_h = σ Φ⁻¹(p̲^h_A).

When R_l = R_r this equals √(R_l² + R_r²) (the form quoted in our issue tracker), but for
R_l ≠ R_r √(R_l² + R_r²) is larger than what the argument above supports (e.g. R_r = 0:
δ spread evenly over both halves with ‖δ‖ = R_l flips the sum), so we use the sound
(R_l + R_r)/√2. One half may even have p̲ < ½ as long as u_l + u_r > 0.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from certkit.core import stats
from certkit.core.validation import check_alpha, check_int, check_seed
from certkit.vision.smoothing.smooth import ABSTAIN, Smooth

__all__ = ["DualSmooth", "split_checkerboard"]

_RIGHT_STREAM = 2**40


def split_checkerboard(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, C, H, W) with even W → two (B, C, H, W/2) halves: pixel (i, j) goes to the left
    half when i + j is even (column j // 2), otherwise to the right half."""
    if x.dim() != 4 or x.shape[-1] % 2:
        raise ValueError(f"x: expected (B, C, H, W) with even W, got {tuple(x.shape)}")
    h = x.shape[2]
    even = x[..., 0::2]
    odd = x[..., 1::2]
    rows_odd = (torch.arange(h, device=x.device) % 2 == 1).view(1, 1, h, 1)
    left = torch.where(rows_odd, odd, even)
    right = torch.where(rows_odd, even, odd)
    return left, right


class DualSmooth:
    """Dual randomized smoothing with classifiers f_l, f_r on the two half images."""

    def __init__(self, model_left: nn.Module, model_right: nn.Module, num_classes: int, sigma: float) -> None:
        self.left = Smooth(model_left, num_classes, sigma)
        self.right = Smooth(model_right, num_classes, sigma)
        self.num_classes, self.sigma = self.left.num_classes, self.left.sigma

    def certify_batch(self, xs: torch.Tensor, n0: int = 100, n: int = 100_000, alpha: float = 0.001,
                      batch_size: int = 1000, *, seed: int = 0) -> list[tuple[int, float]]:
        """(class | -1, radius) per input of xs (B, C, H, W); noise keyed (seed, i, j) for the
        left half and (seed, i + 2⁴⁰, j) for the right half."""
        n0 = check_int(n0, "n0", minimum=1)
        n = check_int(n, "n", minimum=1)
        if n < n0:
            raise ValueError(f"n: expected n >= n0 (n={n}, n0={n0})")
        alpha = check_alpha(alpha)
        seed = check_seed(seed)
        xl, xr = split_checkerboard(self.left._inputs(xs, single=False))
        ids = np.arange(xl.shape[0], dtype=np.int64)
        req = [(g, 0, n0, 0) for g in range(len(ids))] + [(g, n0, n0 + n, 1) for g in range(len(ids))]
        cl = self.left._sample_counts(xl.contiguous(), ids, req, 2, batch_size, seed).cpu().numpy()
        cr = self.right._sample_counts(xr.contiguous().to(self.right.device), ids + _RIGHT_STREAM, req, 2,
                                       batch_size, seed).cpu().numpy()
        c_a = (cl[:, 0] + cr[:, 0]).argmax(1)
        rows = np.arange(len(ids))
        pl = stats.clopper_pearson(cl[rows, 1, c_a], np.full(len(ids), n), alpha / 2, side="lower")
        pr = stats.clopper_pearson(cr[rows, 1, c_a], np.full(len(ids), n), alpha / 2, side="lower")
        ul = stats.norm_ppf(np.clip(pl, 1e-300, 1 - 1e-16))
        ur = stats.norm_ppf(np.clip(pr, 1e-300, 1 - 1e-16))
        radius = self.sigma * (ul + ur) / math.sqrt(2.0)
        return [(int(c), float(r)) if r > 0 else (ABSTAIN, 0.0) for c, r in zip(c_a, radius, strict=True)]
