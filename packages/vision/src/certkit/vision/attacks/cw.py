"""Carlini-Wagner ℓ2 attack with a binary search on the trade-off constant c.

Carlini & Wagner, "Towards Evaluating the Robustness of Neural Networks", IEEE S&P 2017,
arXiv:1608.04644. Change of variables x' = lo + (hi − lo)·(tanh(w) + 1)/2 (so x' is always
in the box), then Adam on

    ‖x' − x‖₂² + c · max(Z_y(x') − max_{i≠y} Z_i(x'), −κ)        (untargeted)
    ‖x' − x‖₂² + c · max(max_{i≠t} Z_i(x') − Z_t(x'), −κ)         (targeted, target t)

on the logits Z. Per example, c is bisected: halved towards the last failure after a
success, multiplied by 10 (while no success has been seen) or bisected after a failure.
We keep, per example, the adversarial point of smallest ℓ2 distance over all c.

Guarantee of the implementation: outputs lie in the box; an example the attack fails on is
returned unchanged (x_adv = x), so ``distance > 0`` marks a success. Because it works on
logits (not softmax probabilities) it is not blunted by defensive distillation's
temperature, which is the point of the paper's §7 and of the distillation baseline here.
"""

from __future__ import annotations

import torch

from certkit.core.validation import check_int, check_positive
from certkit.vision.attacks._common import (
    Model,
    check_bounds,
    check_inputs,
    check_labels,
    eval_mode,
    first_logits,
)


def cw_l2(model: Model, x: torch.Tensor, y: torch.Tensor, *, targeted: bool = False,
          c_init: float = 0.1, binary_steps: int = 8, steps: int = 200, lr: float = 0.05,
          kappa: float = 0.0, bounds: tuple[float, float] = (0.0, 1.0),
          max_c: float = 1e10) -> torch.Tensor:
    """CW ℓ2. x: (B, ...) in ``bounds``; y: (B,) labels (targets when ``targeted``).
    Returns x_adv (B, ...): the smallest-ℓ2 adversarial found, or x where none was found."""
    lo, hi = check_bounds(bounds)
    x = check_inputs(x, (lo, hi))
    c_init = check_positive(c_init, "c_init")
    binary_steps = check_int(binary_steps, "binary_steps", minimum=1)
    steps = check_int(steps, "steps", minimum=1)
    lr = check_positive(lr, "lr")
    kappa = check_positive(kappa, "kappa", allow_zero=True)
    b = x.shape[0]
    shape = (-1, *([1] * (x.ndim - 1)))
    with eval_mode(model):
        z0 = first_logits(model, x)
        y = check_labels(y, b, z0.shape[1])
        onehot = torch.nn.functional.one_hot(y, z0.shape[1]).to(torch.bool)
        # w such that x' = x at w (up to the clamp that keeps atanh finite)
        s = ((x - lo) / (hi - lo) * 2 - 1).clamp(-1 + 1e-6, 1 - 1e-6)
        w0 = torch.atanh(s)
        c = torch.full((b,), c_init, device=x.device, dtype=x.dtype)
        c_lo = torch.zeros(b, device=x.device, dtype=x.dtype)
        c_hi = torch.full((b,), float("inf"), device=x.device, dtype=x.dtype)
        best_d = torch.full((b,), float("inf"), device=x.device, dtype=x.dtype)
        best = x.clone()
        for _ in range(binary_steps):
            w = w0.clone().requires_grad_(True)
            opt = torch.optim.Adam([w], lr=lr)
            succ_c = torch.zeros(b, dtype=torch.bool, device=x.device)
            for _ in range(steps):
                xa = lo + (hi - lo) * (torch.tanh(w) + 1) / 2
                z = model(xa)
                zt = z.masked_fill(~onehot, float("-inf")).amax(1)
                zo = z.masked_fill(onehot, float("-inf")).amax(1)
                f = (zo - zt) if targeted else (zt - zo)
                d2 = (xa - x).flatten(1).pow(2).sum(1)
                loss = (d2 + c * f.clamp_min(-kappa)).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                with torch.no_grad():
                    ok = f <= -kappa if kappa > 0 else f < 0
                    imp = ok & (d2 < best_d)
                    best_d = torch.where(imp, d2, best_d)
                    best = torch.where(imp.view(shape), xa.detach(), best)
                    succ_c |= ok
            with torch.no_grad():
                c_hi = torch.where(succ_c, torch.minimum(c_hi, c), c_hi)
                c_lo = torch.where(succ_c, c_lo, torch.maximum(c_lo, c))
                mid = (c_lo + c_hi) / 2
                c = torch.where(torch.isinf(c_hi), (c * 10).clamp(max=max_c), mid)
        return best


__all__ = ["cw_l2"]
