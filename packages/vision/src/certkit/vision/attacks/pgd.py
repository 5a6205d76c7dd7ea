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

from certkit.core.validation import check_positive, check_seed
from certkit.vision.attacks._common import (
    Model,
    ascent_direction,
    check_bounds,
    check_eps,
    check_inputs,
    check_labels,
    check_norm,
    check_restarts,
    check_steps,
    check_targeting,
    eps_like,
    eps_rows,
    eval_mode,
    first_logits,
    loss_fn,
    make_generator,
    normalized,
    project,
    random_start,
)


def fgsm(model: Model, x: torch.Tensor, y: torch.Tensor, eps: float | torch.Tensor, *,
         norm: str = "linf", targeted: bool = False, target: torch.Tensor | None = None,
         loss: str = "ce", bounds: tuple[float, float] = (0.0, 1.0), mean=None, std=None) -> torch.Tensor:
    """Fast gradient (sign) method: x_adv = clip(x ± ε·dir(∇ₓL(x, y))), every example (also
    the ones already misclassified). x: (B, ...) in ``bounds``; y: (B,) true labels (the
    targets when ``targeted``; or pass ``target`` (B,) and the step descends towards it);
    eps: a number or per-example (B,); mean/std: the model's per-channel normalisation.
    Returns x_adv (B, ...)."""
    norm = check_norm(norm)
    lo, hi = check_bounds(bounds)
    x = check_inputs(x, (lo, hi))
    eps = check_eps(eps, norm, (lo, hi), x[0].numel(), batch=x.shape[0])
    check_targeting(targeted, target)
    lf = loss_fn(loss)
    with eval_mode(model):
        f = normalized(model, mean, std, x)
        z0 = first_logits(f, x)
        y = check_labels(y, x.shape[0], z0.shape[1])
        goal = y if target is None else check_labels(target, x.shape[0], z0.shape[1], name="target")
        xr = x.clone().requires_grad_(True)
        g, = torch.autograd.grad(lf(f(xr), goal).sum(), xr)
        sign = -1.0 if targeted or target is not None else 1.0
        return (x + sign * eps_like(eps, x) * ascent_direction(g, norm)).clamp(lo, hi).detach()


def pgd(model: Model, x: torch.Tensor, y: torch.Tensor, eps: float | torch.Tensor, *,
        norm: str = "linf", steps: int = 40, step_size: float | None = None,
        alpha: float | None = None, random_start: bool = True, restarts: int = 1,
        n_restarts: int | None = None, targeted: bool = False, target: torch.Tensor | None = None,
        loss: str = "ce", bounds: tuple[float, float] = (0.0, 1.0), mean=None, std=None,
        seed: int = 0) -> torch.Tensor:
    """PGD under ℓ∞ or ℓ2 (norm also 'Linf' / 'L2').

    x: (B, ...) inside ``bounds``; y: (B,) int labels. Untargeted by default (success: the
    prediction differs from y). ``targeted=True``: y are the target labels (torchattacks'
    convention); ``target=t`` (B,): y stay the true labels and the attack aims at t. Either
    way success means the prediction equals the target, and CE(z, target) or the margin
    max_{i≠t} z_i − z_t ('cw') is minimised; untargeted, loss 'ce' | 'cw' | 'dlr' is maximised.
    eps: a number or per-example radii (B,); step_size (alias alpha): default 2.5·ε/steps
    (Madry et al.); restarts (alias n_restarts); mean/std: the model's per-channel
    normalisation (the attack works on unnormalised x in ``bounds``).
    Returns x_adv (B, ...), same dtype/device as x.
    """
    norm = check_norm(norm)
    lo, hi = check_bounds(bounds)
    x = check_inputs(x, (lo, hi))
    eps = check_eps(eps, norm, (lo, hi), x[0].numel(), batch=x.shape[0])
    steps = check_steps(steps)
    restarts = check_restarts(restarts, n_restarts)
    seed = check_seed(seed)
    check_targeting(targeted, target)
    if alpha is not None and step_size is not None and alpha != step_size:
        raise ValueError(f"step_size: given as step_size={step_size!r} and alpha={alpha!r}; pass one")
    step_size = step_size if step_size is not None else alpha
    step = 2.5 * eps / steps if step_size is None else check_positive(step_size, "step_size")
    lf = loss_fn(loss)
    is_targeted = targeted or target is not None
    if is_targeted and loss == "dlr":
        raise ValueError("loss: 'dlr' is untargeted here; use 'ce' or 'cw' with a targeted attack")
    with eval_mode(model):
        f = normalized(model, mean, std, x)
        z0 = first_logits(f, x)
        y = check_labels(y, x.shape[0], z0.shape[1])
        goal = y if target is None else check_labels(target, x.shape[0], z0.shape[1], name="target")
        gen = make_generator(x, seed)
        best = x.clone()
        best_loss = torch.full((x.shape[0],), float("-inf"), device=x.device, dtype=x.dtype)
        done = (z0.argmax(1) == goal) if is_targeted else (z0.argmax(1) != y)
        for _ in range(restarts):
            idx = (~done).nonzero()[:, 0]
            if idx.numel() == 0:
                break
            adv, adv_loss, succ = _pgd_run(f, x[idx], goal[idx], eps_rows(eps, idx), norm, steps,
                                           eps_rows(step, idx), random_start, is_targeted, lf, lo, hi, gen)
            take = succ | (adv_loss > best_loss[idx])
            best[idx[take]] = adv[take]
            best_loss[idx] = torch.where(take, adv_loss, best_loss[idx])
            done[idx[succ]] = True
        return best


def _pgd_run(model: Model, x: torch.Tensor, y: torch.Tensor, eps: float | torch.Tensor, norm: str,
             steps: int, alpha: float | torch.Tensor, rand: bool, targeted: bool, lf, lo: float,
             hi: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One PGD run (y: the true labels, or the targets when ``targeted``). Returns (x_adv
    (B, ...), objective at x_adv (B,), fooled (B,) bool)."""
    sign = -1.0 if targeted else 1.0
    a = eps_like(alpha, x)
    x_adv = random_start(x, eps, norm, lo, hi, gen) if rand else x.clone()
    found = x.clone()
    fooled = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    if norm == "linf":  # the ε-ball ∩ box is a box: one clamp per step
        e = eps_like(eps, x)
        lower, upper = torch.clamp(x - e, min=lo), torch.clamp(x + e, max=hi)
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
                x_adv = torch.clamp(x_adv + (sign * a) * g.sign_(), lower, upper)
            else:
                x_adv = project(x_adv + sign * a * ascent_direction(g, norm), x, eps, norm, lo, hi)
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
