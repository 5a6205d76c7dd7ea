"""FGSM and projected gradient descent (PGD) under ℓ∞ and ℓ2.

- FGSM: Goodfellow, Shlens & Szegedy, "Explaining and Harnessing Adversarial Examples",
  arXiv:1412.6572. One step x + ε·sign(∇ₓL) (ℓ∞) or x + ε·∇ₓL/‖∇ₓL‖₂ (ℓ2).
- PGD: Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks",
  arXiv:1706.06083. Iterated steepest ascent on the loss, projected back onto the ε-ball ∩
  box, from a uniform random start, with restarts.

Guarantee (of the implementation, not of the model): every returned x_adv satisfies
‖x_adv − x‖ ≤ ε in the chosen norm (up to float rounding) and lies in the box. An attack
gives an *upper* bound on robust accuracy; it proves nothing about robustness.

PGD returns inputs the model already misclassifies unchanged (they need no attack).
Strength: besides the final iterate we keep, per example, the first iterate that already
fools the model (checked on the logits the step computes anyway, so it costs no extra
forward pass), and restarts only re-attack the examples not yet broken; among unbroken
restarts we keep the iterate of highest loss.
"""

from __future__ import annotations

import torch

from certkit.core.validation import check_int, check_positive, check_seed
from certkit.vision.attacks._common import (
    Model,
    ascent_direction,
    check_bounds,
    check_eps,
    check_inputs,
    check_labels,
    check_norm,
    check_steps,
    eval_mode,
    first_logits,
    loss_fn,
    make_generator,
    project,
    random_start,
)


def fgsm(model: Model, x: torch.Tensor, y: torch.Tensor, eps: float, *, norm: str = "linf",
         targeted: bool = False, loss: str = "ce",
         bounds: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
    """Fast gradient (sign) method: x_adv = clip(x ± ε·dir(∇ₓL(x, y))), every example (also
    the ones already misclassified). x: (B, ...) in ``bounds``; y: (B,) true labels (or
    targets when ``targeted``, then the step descends). Returns x_adv (B, ...)."""
    norm = check_norm(norm)
    lo, hi = check_bounds(bounds)
    x = check_inputs(x, (lo, hi))
    eps = check_eps(eps, norm, (lo, hi), x[0].numel())
    lf = loss_fn(loss)
    with eval_mode(model):
        z0 = first_logits(model, x)
        y = check_labels(y, x.shape[0], z0.shape[1])
        xr = x.clone().requires_grad_(True)
        g, = torch.autograd.grad(lf(model(xr), y).sum(), xr)
        sign = -1.0 if targeted else 1.0
        return (x + sign * eps * ascent_direction(g, norm)).clamp(lo, hi).detach()


def pgd(model: Model, x: torch.Tensor, y: torch.Tensor, eps: float, *, norm: str = "linf",
        steps: int = 40, step_size: float | None = None, random_start: bool = True,
        restarts: int = 1, targeted: bool = False, loss: str = "ce",
        bounds: tuple[float, float] = (0.0, 1.0), seed: int = 0) -> torch.Tensor:
    """PGD under ℓ∞ or ℓ2.

    x: (B, ...) inside ``bounds``; y: (B,) int labels (targets when ``targeted``).
    eps: radius; step_size: default 2.5·ε/steps (Madry et al.); loss: 'ce' | 'cw' | 'dlr',
    maximised when untargeted; when targeted, CE(z, t) or the margin max_{i≠t} z_i − z_t
    ('cw') is minimised instead.
    Returns x_adv (B, ...), same dtype/device as x.
    """
    norm = check_norm(norm)
    lo, hi = check_bounds(bounds)
    x = check_inputs(x, (lo, hi))
    eps = check_eps(eps, norm, (lo, hi), x[0].numel())
    steps = check_steps(steps)
    restarts = check_int(restarts, "restarts", minimum=1)
    seed = check_seed(seed)
    alpha = 2.5 * eps / steps if step_size is None else check_positive(step_size, "step_size")
    lf = loss_fn(loss)
    if targeted and loss == "dlr":
        raise ValueError("loss: 'dlr' is untargeted here; use 'ce' or 'cw' with targeted=True")
    with eval_mode(model):
        z0 = first_logits(model, x)
        y = check_labels(y, x.shape[0], z0.shape[1])
        gen = make_generator(x, seed)
        best = x.clone()
        best_loss = torch.full((x.shape[0],), float("-inf"), device=x.device, dtype=x.dtype)
        done = (z0.argmax(1) == y) if targeted else (z0.argmax(1) != y)
        for _ in range(restarts):
            idx = (~done).nonzero()[:, 0]
            if idx.numel() == 0:
                break
            xr, yr = x[idx], y[idx]
            adv, adv_loss, succ = _pgd_run(model, xr, yr, eps, norm, steps, alpha,
                                           random_start, targeted, lf, lo, hi, gen)
            take = succ | (adv_loss > best_loss[idx])
            best[idx[take]] = adv[take]
            best_loss[idx] = torch.where(take, adv_loss, best_loss[idx])
            done[idx[succ]] = True
        return best


def _pgd_run(model: Model, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str, steps: int,
             alpha: float, rand: bool, targeted: bool, lf, lo: float, hi: float,
             gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One PGD run. Returns (x_adv (B, ...), objective at x_adv (B,), fooled (B,) bool)."""
    sign = -1.0 if targeted else 1.0
    x_adv = random_start(x, eps, norm, lo, hi, gen) if rand else x.clone()
    found = x.clone()
    fooled = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    if norm == "linf":  # the ε-ball ∩ box is a box: one clamp per step
        lower, upper = (x - eps).clamp_(min=lo), (x + eps).clamp_(max=hi)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        z = model(x_adv)
        obj = lf(z, y)
        g, = torch.autograd.grad(obj.sum(), x_adv)
        with torch.no_grad():
            pred = z.argmax(1)
            hit = (pred == y) if targeted else (pred != y)
            new = hit & ~fooled
            x_adv = x_adv.detach()
            if bool(new.any()):
                found[new] = x_adv[new]
                fooled |= new
            if norm == "linf":
                x_adv = torch.clamp(x_adv.add_(g.sign_(), alpha=sign * alpha), lower, upper)
            else:
                x_adv = project(x_adv + sign * alpha * ascent_direction(g, norm), x, eps, norm,
                                lo, hi)
    with torch.no_grad():
        z = model(x_adv)
        pred = z.argmax(1)
        hit = (pred == y) if targeted else (pred != y)
        obj = sign * lf(z, y)
        # examples fooled at the end keep the last iterate; earlier hits fill the rest
        out = torch.where(_bcast(hit, x), x_adv, torch.where(_bcast(fooled, x), found, x_adv))
        return out, obj, hit | fooled


def _bcast(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.view(-1, *([1] * (like.ndim - 1)))
