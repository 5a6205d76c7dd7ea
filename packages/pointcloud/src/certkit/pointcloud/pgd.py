"""Point-wise PGD on coordinates (Madry et al. 2018, arXiv:1706.06083), the usual baseline
for point-cloud attacks: maximise the cross-entropy with signed-gradient (ℓ∞) or normalised
gradient (ℓ2, per cloud) steps and project onto the ball around the clean cloud.

Shapes: x (B, N, 3), y (B,). The result is in point correspondence with x.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

from certkit.core.validation import check_int, check_positive
from certkit.pointcloud.distances import chamfer, hausdorff
from certkit.pointcloud.gsda import AttackResult, _check_batch


def pgd_attack(
    model: torch.nn.Module,
    x: Any,
    y: Any,
    *,
    eps: float = 0.05,
    steps: int = 20,
    step_size: float | None = None,
    norm: Literal["linf", "l2"] = "linf",
    seed: int = 0,
) -> AttackResult:
    """Untargeted PGD with a random start; ``eps`` is per coordinate (linf) or per cloud (l2)."""
    xt, yt = _check_batch(x, y)
    eps = check_positive(eps, "eps")
    steps = check_int(steps, "steps", minimum=1)
    if norm not in ("linf", "l2"):
        raise ValueError(f"norm: expected 'linf' or 'l2', got {norm!r}")
    alpha = 2.5 * eps / steps if step_size is None else check_positive(step_size, "step_size")
    g = torch.Generator().manual_seed(seed)

    def project(d: torch.Tensor) -> torch.Tensor:
        if norm == "linf":
            return d.clamp(-eps, eps)
        nrm = d.flatten(1).norm(dim=1).clamp_min(1e-12)
        return d * (eps / nrm).clamp(max=1.0)[:, None, None]

    delta = project((torch.rand(xt.shape, generator=g) * 2 - 1) * eps * (0.5 if norm == "l2" else 1))
    model.eval()
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(model(xt + delta), yt)
        (grad,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            if norm == "linf":
                step = grad.sign()
            else:
                step = grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12)[:, None, None]
            delta = project(delta + alpha * step)
    with torch.no_grad():
        adv = xt + delta
        success = model(adv).argmax(1) != yt
        return AttackResult(
            adv.numpy(),
            success.numpy(),
            np.atleast_1d(chamfer(adv.numpy(), xt.numpy())),       # float64: no float32 floor
            np.atleast_1d(hausdorff(adv.numpy(), xt.numpy())),
            delta.flatten(1).norm(dim=1).double().numpy(),
            len(xt) * (steps + 1),
        )


__all__ = ["pgd_attack"]
