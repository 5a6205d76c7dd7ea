"""Auto-PGD (APGD) and an AutoAttack-style ensemble of APGD-CE and APGD-DLR.

Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks", ICML 2020, arXiv:2003.01690.

APGD is PGD with momentum (α = 0.75) and a step size η that starts at 2ε and is halved
at checkpoints w_j = ⌈p_j·N⌉, p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03,
0.06), whenever (1) the loss increased in fewer than ρ = 0.75 of the steps since the last
checkpoint, or (2) the step size was not reduced at the last checkpoint and the best loss
has not improved since; on a halving the iterate restarts from the best point so far.
These constants and conditions are recalled from the paper's Algorithm 1 and §3.2, not
copied from code. The ensemble runs APGD-CE on every input, then APGD with the DLR loss
(shift- and scale-invariant in the logits) on the inputs still classified correctly, and
optionally the targeted DLR variant (APGD-T) against the top-ranked wrong classes.

Guarantee of the implementation: outputs stay in the ε-ball ∩ box. The robust accuracy
measured is an upper bound on the true robust accuracy.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from certkit.core.validation import check_int, check_seed
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
    dlr_loss,
    eps_rows,
    eval_mode,
    first_logits,
    loss_fn,
    make_generator,
    margin_loss,
    normalized,
    project,
    random_start,
)


def checkpoints(steps: int) -> list[int]:
    """The iterations w_j = ⌈p_j·N⌉ at which APGD may halve its step size (w_0 = 0 excluded)."""
    p = [0.0, 0.22]
    while p[-1] < 1.0:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return sorted({math.ceil(round(pj * steps, 9)) for pj in p[1:] if pj <= 1.0 + 1e-12} - {0})


def targeted_dlr_loss(z: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """−(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2 + 1e-12), shape (B,); needs K >= 4."""
    zs = z.sort(dim=1, descending=True).values
    zy = z.gather(1, y[:, None])[:, 0]
    zt = z.gather(1, t[:, None])[:, 0]
    return -(zy - zt) / (zs[:, 0] - 0.5 * (zs[:, 2] + zs[:, 3]) + 1e-12)


def targeted_objective(loss: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Per-example objective (B,) to *maximise* towards targets t when the true labels are
    not given (``targeted=True``): −CE(z, t) ('ce'), −(max_{i≠t} z_i − z_t) ('cw'), or the
    targeted DLR loss with the true class replaced by the strongest non-target class ('dlr')."""
    if loss == "ce":
        return lambda z, t: -F.cross_entropy(z, t, reduction="none")
    if loss in ("cw", "margin"):
        return lambda z, t: -margin_loss(z, t)
    if loss == "dlr":
        return lambda z, t: targeted_dlr_loss(z, z.scatter(1, t[:, None], float("-inf")).argmax(1), t)
    raise ValueError(f"loss: expected 'ce', 'cw' or 'dlr', got {loss!r}")


def apgd(model: Model, x: torch.Tensor, y: torch.Tensor, eps: float | torch.Tensor, *,
         norm: str = "linf", loss: str = "ce", steps: int = 100, restarts: int = 1,
         n_restarts: int | None = None, rho: float = 0.75, momentum: float = 0.75,
         targeted: bool = False, target: torch.Tensor | None = None,
         bounds: tuple[float, float] = (0.0, 1.0), mean=None, std=None, seed: int = 0) -> torch.Tensor:
    """APGD. x: (B, ...) in ``bounds``; y: (B,) labels; loss 'ce' | 'dlr' | 'cw'.

    Targeting works as in :func:`~certkit.vision.attacks.pgd`: untargeted by default (success:
    prediction != y); ``targeted=True``: y are the target labels and the objective is
    :func:`targeted_objective` of ``loss``; ``target=t``: y stay the true labels and the
    objective is the targeted DLR loss of APGD-T (needs K >= 4). Targeted success means the
    prediction equals the target. eps: a number or per-example (B,); restarts (alias
    n_restarts); mean/std: the model's per-channel normalisation. Returns x_adv (B, ...)."""
    return _apgd(model, x, y, eps, norm=norm, loss=loss, steps=steps, restarts=check_restarts(restarts, n_restarts),
                 rho=rho, momentum=momentum, targeted=targeted, target=target, bounds=bounds, mean=mean,
                 std=std, seed=seed, success="target")


def _apgd(model: Model, x: torch.Tensor, y: torch.Tensor, eps: float | torch.Tensor, *, norm: str,
          loss: str, steps: int, restarts: int, rho: float, momentum: float, targeted: bool,
          target: torch.Tensor | None, bounds: tuple[float, float], mean, std, seed: int,
          success: str) -> torch.Tensor:
    """apgd with the success rule chosen: 'target' (the public one) or 'misclassified'
    (AutoAttack's APGD-T inside :func:`apgd_ensemble`: any wrong prediction counts)."""
    norm = check_norm(norm)
    lo, hi = check_bounds(bounds)
    x = check_inputs(x, (lo, hi))
    eps = check_eps(eps, norm, (lo, hi), x[0].numel(), batch=x.shape[0])
    steps = check_steps(steps)
    seed = check_seed(seed)
    check_targeting(targeted, target)
    with eval_mode(model):
        f = normalized(model, mean, std, x)
        z0 = first_logits(f, x)
        k = z0.shape[1]
        y = check_labels(y, x.shape[0], k)
        if target is not None:
            target = check_labels(target, x.shape[0], k, name="target")
            if k < 4:
                raise ValueError(f"target: the targeted DLR loss needs at least 4 classes, the model has {k}")
        elif loss == "dlr" and k < (4 if targeted else 3):
            raise ValueError(f"loss: the {'targeted ' if targeted else ''}DLR loss needs at least "
                             f"{4 if targeted else 3} classes, the model has {k}")
        goal = target if target is not None else y
        aims = (targeted or target is not None) and success == "target"
        gen = make_generator(x, seed)
        best = x.clone()
        best_loss = torch.full((x.shape[0],), float("-inf"), device=x.device, dtype=x.dtype)
        done = (z0.argmax(1) == goal) if aims else (z0.argmax(1) != y)
        for _ in range(restarts):
            idx = (~done).nonzero()[:, 0]
            if idx.numel() == 0:
                break
            yr = y[idx]
            if target is not None:
                tr = target[idx]
                def obj(z: torch.Tensor, yy: torch.Tensor, tr: torch.Tensor = tr, yr: torch.Tensor = yr) -> torch.Tensor:
                    return targeted_dlr_loss(z, yr, tr)
            else:
                obj = targeted_objective(loss) if targeted else loss_fn(loss)
            adv, fl, succ = _apgd_run(f, x[idx], (goal if aims else y)[idx], eps_rows(eps, idx), norm, steps,
                                      rho, momentum, obj, lo, hi, gen, aims)
            take = succ | (fl > best_loss[idx])
            best[idx[take]] = adv[take]
            best_loss[idx] = torch.where(take, fl, best_loss[idx])
            done[idx[succ]] = True
        return best


def _apgd_run(model: Model, x: torch.Tensor, y: torch.Tensor, eps: float | torch.Tensor, norm: str,
              steps: int, rho: float, mom: float, lf, lo: float, hi: float, gen: torch.Generator,
              aims: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One APGD run on a batch (y: true labels, or the targets when ``aims``: then success is
    prediction == y). Returns (x_adv, best loss (B,), fooled (B,))."""
    b = x.shape[0]
    shape = (-1, *([1] * (x.ndim - 1)))
    ckpts = set(checkpoints(steps))
    eta = (2.0 * eps.to(device=x.device, dtype=x.dtype) if isinstance(eps, torch.Tensor)
           else torch.full((b,), 2.0 * eps, device=x.device, dtype=x.dtype))
    x_cur = random_start(x, eps, norm, lo, hi, gen)
    x_prev = x_cur.clone()
    x_best = x_cur.clone()
    g_best = torch.zeros_like(x)
    f_best = torch.full((b,), float("-inf"), device=x.device, dtype=x.dtype)
    f_prev = torch.full((b,), float("-inf"), device=x.device, dtype=x.dtype)
    found = x.clone()
    fooled = torch.zeros(b, dtype=torch.bool, device=x.device)
    n_incr = torch.zeros(b, device=x.device, dtype=x.dtype)
    f_best_ckpt = f_best.clone()
    reduced_last = torch.zeros(b, dtype=torch.bool, device=x.device)
    last_ckpt = 0
    for k in range(steps):
        x_cur.requires_grad_(True)
        z = model(x_cur)
        f = lf(z, y)
        g, = torch.autograd.grad(f.sum(), x_cur)
        with torch.no_grad():
            x_cur = x_cur.detach()
            f = f.detach()
            hit = (z.argmax(1) == y) if aims else (z.argmax(1) != y)
            new = hit & ~fooled
            if bool(new.any()):
                found[new] = x_cur[new]
                fooled |= new
            if k > 0:
                n_incr += (f > f_prev).to(x.dtype)
            f_prev = f
            better = f > f_best
            bm = better.view(shape)
            x_best = torch.where(bm, x_cur, x_best)
            g_best = torch.where(bm, g, g_best)
            f_best = torch.where(better, f, f_best)
            if k == 0:
                f_best_ckpt = f_best.clone()
            if k in ckpts:
                osc = n_incr < rho * (k - last_ckpt)
                stall = ~reduced_last & (f_best <= f_best_ckpt)
                red = osc | stall
                eta = torch.where(red, eta / 2, eta)
                rm = red.view(shape)
                x_cur = torch.where(rm, x_best, x_cur)
                x_prev = torch.where(rm, x_best, x_prev)
                g = torch.where(rm, g_best, g)
                reduced_last = red
                f_best_ckpt = f_best.clone()
                n_incr.zero_()
                last_ckpt = k
            if k == steps - 1:
                break
            zk = project(x_cur + eta.view(shape) * ascent_direction(g, norm), x, eps, norm, lo, hi)
            a = 1.0 if k == 0 else mom
            x_next = project(x_cur + a * (zk - x_cur) + (1 - a) * (x_cur - x_prev), x, eps, norm,
                             lo, hi)
            x_prev, x_cur = x_cur, x_next
    out = torch.where(fooled.view(shape), found, x_best)
    return out, f_best, fooled


def apgd_ensemble(model: Model, x: torch.Tensor, y: torch.Tensor, eps: float | torch.Tensor, *,
                  norm: str = "linf", steps: int = 100, restarts: int = 1, n_restarts: int | None = None,
                  losses: tuple[str, ...] = ("ce", "dlr"), n_target_classes: int = 0,
                  bounds: tuple[float, float] = (0.0, 1.0), mean=None, std=None, seed: int = 0) -> torch.Tensor:
    """AutoAttack-style worst case over APGD-CE, APGD-DLR and (``n_target_classes`` > 0)
    APGD-T against the top-ranked wrong classes. Each attack only sees the inputs that all
    earlier ones failed on. x: (B, ...); y: (B,) true labels; eps: a number or per-example
    (B,); mean/std: the model's per-channel normalisation. The class count is checked before
    anything runs (DLR needs K >= 3, APGD-T K >= 4). Returns x_adv (B, ...)."""
    norm = check_norm(norm)
    lo, hi = check_bounds(bounds)
    x = check_inputs(x, (lo, hi))
    eps = check_eps(eps, norm, (lo, hi), x[0].numel(), batch=x.shape[0])
    restarts = check_restarts(restarts, n_restarts)
    n_target_classes = check_int(n_target_classes, "n_target_classes", minimum=0)
    if not losses and not n_target_classes:
        raise ValueError("losses: expected at least one attack in the ensemble")
    for name in losses:
        loss_fn(name)
    with eval_mode(model):
        f = normalized(model, mean, std, x)
        z0 = first_logits(f, x)
        k = z0.shape[1]
        if "dlr" in losses and k < 3:
            raise ValueError(f"losses: the DLR loss needs at least 3 classes, the model has {k}; "
                             "use losses=('ce',)")
        if n_target_classes and k < 4:
            raise ValueError(f"n_target_classes: APGD-T needs at least 4 classes, the model has {k}")
        y = check_labels(y, x.shape[0], k)
        adv = x.clone()
        robust = z0.argmax(1) == y
        runs: list[tuple[str, int]] = [(name, -1) for name in losses]
        runs += [("dlr-t", j) for j in range(n_target_classes)]
        for i, (name, j) in enumerate(runs):
            idx = robust.nonzero()[:, 0]
            if idx.numel() == 0:
                break
            tgt = None
            if j >= 0:
                if j + 1 >= k:
                    break
                tgt = z0[idx].sort(1, descending=True).indices[:, j + 1]
                tgt = torch.where(tgt == y[idx], z0[idx].sort(1, descending=True).indices[:, 0],
                                  tgt)
            xa = _apgd(model, x[idx], y[idx], eps_rows(eps, idx), norm=norm, loss=name if j < 0 else "dlr",
                       steps=steps, restarts=restarts, rho=0.75, momentum=0.75, targeted=False, target=tgt,
                       bounds=(lo, hi), mean=mean, std=std, seed=seed + i, success="misclassified")
            with torch.no_grad():
                fooled = f(xa).argmax(1) != y[idx]
            adv[idx[fooled]] = xa[fooled]
            robust[idx[fooled]] = False
        return adv


__all__ = ["apgd", "apgd_ensemble", "checkpoints", "dlr_loss", "targeted_dlr_loss", "targeted_objective"]
