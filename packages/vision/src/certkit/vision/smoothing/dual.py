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
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from certkit.core import stats
from certkit.core.results import ResultLog
from certkit.core.validation import check_alpha, check_int, check_seed
from certkit.vision.smoothing.smooth import (
    ABSTAIN,
    Certificate,
    Smooth,
    _indices,
    _labels,
    _one_input,
    open_log,
)

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
    """Dual randomized smoothing with classifiers f_l, f_r on the two half images.

    model_left / model_right: ``nn.Module`` (B, C, H, W/2) → (B, num_classes) logits
    (the same module may serve both halves). sigma: the noise level of both halves, in
    the units of x ([0, 1] pixels). Noise of input ``idx`` is keyed (seed, idx, sample)
    for the left half and (seed, idx + 2⁴⁰, sample) for the right half, so a certificate
    depends only on the input and its index, never on the batch it was certified in.
    """

    def __init__(self, model_left: nn.Module, model_right: nn.Module, num_classes: int, sigma: float) -> None:
        self.left = Smooth(model_left, num_classes, sigma)
        self.right = Smooth(model_right, num_classes, sigma)
        self.num_classes, self.sigma = self.left.num_classes, self.left.sigma

    def certify(self, x: torch.Tensor, n0: int = 100, n: int = 100_000, alpha: float = 0.001,
                batch_size: int = 1000, *, seed: int = 0, idx: int = 0) -> tuple[int, float]:
        """One input x (C, H, W): ``(class | -1, radius)``; see :meth:`certify_batch`."""
        cert = self.certify_batch(_one_input(x, "certify"), n0, n, alpha, batch_size, seed=seed, indices=[idx])[0]
        return cert.prediction, cert.radius

    def certify_batch(self, xs: torch.Tensor, n0: int = 100, n: int = 100_000, alpha: float = 0.001,
                      batch_size: int = 1000, *, seed: int = 0, indices: Sequence[int] | None = None,
                      labels: Any = None, log: str | os.PathLike[str] | ResultLog | None = None,
                      group_size: int | None = None, new: bool = False) -> list[Certificate]:
        """Certificates (``mode="dual"``) of xs (B, C, H, W), W even.

        indices: (B,) global input ids that key the noise (default 0..B-1); labels: optional
        (B,) true classes; log: a JSON-lines path (opened with the run's settings, ``new``
        moves an old file aside) or ResultLog, resumed like :meth:`Smooth.certify_batch`
        (rows written per group of ``group_size`` inputs).
        Each certificate holds p_lower (left half) and p_lower_right, both at level α/2;
        radius = σ(Φ⁻¹(p̲_l) + Φ⁻¹(p̲_r))/√2, -1 (abstain) when that is not positive."""
        n0 = check_int(n0, "n0", minimum=1)
        n = check_int(n, "n", minimum=1)
        if n < n0:
            raise ValueError(f"n: expected n >= n0 (n={n}, n0={n0})")
        alpha = check_alpha(alpha)
        seed = check_seed(seed)
        batch_size = check_int(batch_size, "batch_size", minimum=1)
        xl, xr = split_checkerboard(self.left._inputs(xs, single=False))
        xl, xr = xl.contiguous(), xr.contiguous().to(self.right.device)
        self.left._check_inputs(xl, "x (left half)")
        self.right._check_inputs(xr, "x (right half)")
        b_total = xl.shape[0]
        ids = _indices(indices, b_total)
        if len(set(ids.tolist())) != b_total:
            raise ValueError("indices: expected distinct input indices")
        lab = _labels(labels, b_total, self.num_classes)
        rlog, own_log = open_log(log, self, new=new, n0=n0, n=n, alpha=alpha, seed=seed, mode="dual")
        results: dict[int, Certificate] = {}
        if rlog is not None:
            done = {int(r["idx"]): r for r in rlog.rows()}
            results = {q: Certificate.from_row(done[int(ids[q])]) for q in range(b_total) if int(ids[q]) in done}
        todo = [q for q in range(b_total) if q not in results]
        group_size = check_int(group_size or max(1, min(256, (4 * batch_size) // (n0 + n))), "group_size", minimum=1)
        try:
            for a in range(0, len(todo), group_size):
                pos = todo[a:a + group_size]
                t0 = time.perf_counter()
                certs = self._certify_group(xl[pos], xr[pos], ids[pos], n0, n, alpha, batch_size, seed)
                dt = (time.perf_counter() - t0) / len(pos)
                for q, c in zip(pos, certs, strict=True):
                    c.seconds = dt
                    if lab is not None:
                        c.label, c.correct = int(lab[q]), bool(c.prediction == int(lab[q]))
                    results[q] = c
                    if rlog is not None:
                        rlog.write(c.as_row())
        finally:
            if own_log and rlog is not None:
                rlog.close()
        return [results[q] for q in range(b_total)]

    def _certify_group(self, xl: torch.Tensor, xr: torch.Tensor, ids: npt.NDArray[np.int64], n0: int, n: int,
                       alpha: float, batch_size: int, seed: int) -> list[Certificate]:
        g = len(ids)
        req = [(i, 0, n0, 0) for i in range(g)] + [(i, n0, n0 + n, 1) for i in range(g)]
        cl = self.left._sample_counts(xl, ids, req, 2, batch_size, seed).cpu().numpy()
        cr = self.right._sample_counts(xr, ids + _RIGHT_STREAM, req, 2, batch_size, seed).cpu().numpy()
        c_a = (cl[:, 0] + cr[:, 0]).argmax(1)
        rows = np.arange(g)
        nl, nr = cl[rows, 1, c_a], cr[rows, 1, c_a]
        pl = stats.clopper_pearson(nl, np.full(g, n), alpha / 2, side="lower")
        pr = stats.clopper_pearson(nr, np.full(g, n), alpha / 2, side="lower")
        ul = stats.norm_ppf(np.clip(pl, 1e-300, 1 - 1e-16))
        ur = stats.norm_ppf(np.clip(pr, 1e-300, 1 - 1e-16))
        radius = self.sigma * (ul + ur) / math.sqrt(2.0)
        return [Certificate(idx=int(ids[i]), prediction=int(c_a[i]) if radius[i] > 0 else ABSTAIN,
                            radius=float(radius[i]) if radius[i] > 0 else 0.0, p_lower=float(pl[i]),
                            count=int(nl[i]), n=n, n0=n0, seconds=0.0, sigma=self.sigma, alpha=alpha,
                            mode="dual", seed=seed, p_lower_right=float(pr[i]), count_right=int(nr[i]))
                for i in range(g)]
