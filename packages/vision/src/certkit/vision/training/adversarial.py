"""Adversarial training: PGD-AT, TRADES, instance- and class-reweighted AT, FGSM-AT with a
catastrophic-overfitting guard, and defensive distillation as a (broken) baseline.

- PGD-AT: Madry et al., arXiv:1706.06083. min_θ E max_{‖δ‖≤ε} CE(f(x + δ), y), the inner
  max by PGD from a random start.
- TRADES: Zhang et al., arXiv:1901.08573. min_θ E[ CE(f(x), y) + β·KL(p(x) ‖ p(x')) ], x'
  maximising the KL term by PGD started at x + 0.001·N(0, I).
- Instance-reweighted AT via KL-regularised DRO, in the style of "Doubly Robust
  Instance-Reweighted Adversarial Training" (Xu et al., arXiv:2308.00311; id recalled).
  Derived here (Gibbs variational principle): for per-instance adversarial losses ℓ_i,
      max_{w ∈ Δ_n} Σ_i w_i ℓ_i − τ·KL(w ‖ uniform) = τ·log( (1/n) Σ_i exp(ℓ_i / τ) ),
  attained at w_i = softmax(ℓ / τ)_i, and ∇_θ of the right side is Σ_i w_i ∇_θ ℓ_i with w
  held fixed. We apply it per mini-batch (a plug-in estimate of the paper's compositional
  objective, not its full algorithm): τ → ∞ gives PGD-AT, τ → 0 the worst instance.
- Class reweighting for imbalanced data: the baseline the seed "Imbalanced Adversarial
  Training with Reweighting" (Wang et al., arXiv:2107.13639; id recalled) studies, weights
  w_c ∝ n_c^{−β}. The paper's SRAT feature-separability term is not implemented.
- FGSM-AT (Wong et al., arXiv:2001.03994: random init, step 1.25ε) with the Abnormal
  Adversarial Examples Regularisation guard of "Eliminating Catastrophic Overfitting Via
  Abnormal Adversarial Examples Regularization" (Lin et al., NeurIPS 2023). An adversarial
  example is *abnormal* when the FGSM step lowered its loss: ℓ(x_adv) < ℓ(x_init). Our
  regulariser (the form is recalled, not copied; weights are ours) scales by the ratio of
  abnormal to normal examples their loss drop and the squared change of their logits:
      (n_AAE/n_NAE)·[λ₁·mean_AAE(ℓ(x_init) − ℓ(x_adv)) + λ₂·mean_AAE ‖z(x_adv) − z(x_init)‖²₂].
  :func:`catastrophic_overfitting` is the detector: FGSM accuracy far above PGD accuracy.
- Defensive distillation: Papernot et al., arXiv:1511.04508. Teacher and student are
  trained at softmax temperature T, the student on the teacher's soft labels, then deployed
  at T = 1: its logits are ~T times larger, softmax saturates to exactly one in float32,
  the cross-entropy gradient underflows to zero and FGSM stalls; Carlini & Wagner
  (arXiv:1608.04644) attack the logits and break it anyway, as the seed "Evaluating
  Adversarial Robustness: A Comparison of FGSM, Carlini-Wagner Attacks, and the Role of
  Distillation" reports. Reproduced on digits in the tests and the report.

All trainers: x (N, C, H, W) in [0, 1], y (N,) int64; Adam with cosine decay; the model is
returned in eval mode. Adversarial examples are generated with the model in eval mode.
No certificate is stated: robustness of the trained models is measured by attacks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from certkit.core.validation import check_int, check_positive
from certkit.vision.attacks._common import (
    ascent_direction,
    check_eps,
    check_inputs,
    check_labels,
    check_norm,
    project,
    random_start,
)

BatchLoss = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]


@dataclass
class TrainHistory:
    """Per-epoch mean training loss and (FGSM-AT) share of abnormal adversarial examples."""

    loss: list[float] = field(default_factory=list)
    abnormal: list[float] = field(default_factory=list)
    rollbacks: int = 0


def _check_data(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = check_inputs(x, (0.0, 1.0))
    y = check_labels(y, x.shape[0])
    if int(y.min()) < 0:
        raise ValueError("y: labels must be >= 0")
    return x, y


def _fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_loss: BatchLoss, *,
         epochs: int, batch_size: int, lr: float, seed: int,
         history: TrainHistory | None = None,
         on_epoch: Callable[[], None] | None = None) -> nn.Module:
    epochs = check_int(epochs, "epochs", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    lr = check_positive(lr, "lr")
    g = torch.Generator().manual_seed(seed)
    gdev = torch.Generator(device=x.device).manual_seed(seed + 1)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    n = x.shape[0]
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g).to(x.device)
        tot, cnt = 0.0, 0
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            loss = batch_loss(model, x[idx], y[idx], gdev)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot += float(loss.detach()) * idx.numel()
            cnt += idx.numel()
        sched.step()
        if history is not None:
            history.loss.append(tot / max(cnt, 1))
        if on_epoch is not None:
            on_epoch()
    model.eval()
    return model


def pgd_examples(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str,
                 steps: int, step_size: float, gen: torch.Generator,
                 objective: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Final PGD iterate (B, ...) maximising ``objective(logits)`` (default: summed CE),
    model switched to eval for the attack and back to train after. No checks (hot loop)."""
    model.eval()
    x_adv = random_start(x, eps, norm, 0.0, 1.0, gen)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        z = model(x_adv)
        obj = F.cross_entropy(z, y, reduction="sum") if objective is None else objective(z)
        g, = torch.autograd.grad(obj, x_adv)
        x_adv = project(x_adv.detach() + step_size * ascent_direction(g, norm), x, eps, norm,
                        0.0, 1.0)
    model.train()
    return x_adv.detach()


def _at_args(x: torch.Tensor, eps: float, norm: str, steps: int,
             step_size: float | None) -> tuple[float, str, int, float]:
    norm = check_norm(norm)
    eps = check_eps(eps, norm, (0.0, 1.0), x[0].numel())
    steps = check_int(steps, "steps", minimum=1)
    alpha = 2.5 * eps / steps if step_size is None else check_positive(step_size, "step_size")
    return eps, norm, steps, alpha


def pgd_at(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float = 0.2,
           norm: str = "linf", steps: int = 7, step_size: float | None = None,
           epochs: int = 20, batch_size: int = 64, lr: float = 3e-3, seed: int = 0,
           class_weights: torch.Tensor | None = None, dro_tau: float | None = None,
           history: TrainHistory | None = None) -> nn.Module:
    """Madry PGD-AT. ``class_weights`` (C,) reweights the per-example loss by class;
    ``dro_tau`` switches to KL-DRO instance reweighting (see module docstring)."""
    x, y = _check_data(x, y)
    eps, norm, steps, alpha = _at_args(x, eps, norm, steps, step_size)
    if dro_tau is not None:
        dro_tau = check_positive(dro_tau, "dro_tau")
    cw = None if class_weights is None else class_weights.to(x)

    def batch_loss(m: nn.Module, xb: torch.Tensor, yb: torch.Tensor,
                   g: torch.Generator) -> torch.Tensor:
        xa = pgd_examples(m, xb, yb, eps, norm, steps, alpha, g)
        per = F.cross_entropy(m(xa), yb, reduction="none")
        if cw is not None:
            per = per * cw[yb]
        if dro_tau is not None:
            return dro_objective(per, dro_tau)
        return per.mean()

    model.train()
    return _fit(model, x, y, batch_loss, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                history=history)


def dro_weights(losses: torch.Tensor, tau: float) -> torch.Tensor:
    """argmax_{w ∈ Δ} Σ w_i ℓ_i − τ KL(w ‖ uniform) = softmax(ℓ / τ). losses: (B,) → (B,)."""
    tau = check_positive(tau, "tau")
    return torch.softmax(losses / tau, dim=0)


def dro_objective(losses: torch.Tensor, tau: float) -> torch.Tensor:
    """τ·log((1/B) Σ exp(ℓ_i/τ)): the value of the KL-regularised DRO over instances; its
    gradient is Σ dro_weights(ℓ)_i ∇ℓ_i. losses: (B,) → scalar."""
    b = losses.shape[0]
    return tau * (torch.logsumexp(losses / tau, dim=0) - math.log(b))


def reweighted_at(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, tau: float = 1.0,
                  **kwargs) -> nn.Module:
    """Instance-reweighted PGD-AT with KL-DRO weights w = softmax(ℓ_adv / τ) per batch."""
    return pgd_at(model, x, y, dro_tau=tau, **kwargs)


def class_balanced_weights(y: torch.Tensor, num_classes: int, beta: float = 1.0) -> torch.Tensor:
    """Per-class weights (C,) ∝ n_c^{−β}, normalised so the mean weight over the *samples*
    is 1 (so the loss scale matches unweighted training). Classes absent from y get 0."""
    num_classes = check_int(num_classes, "num_classes", minimum=1)
    beta = check_positive(beta, "beta", allow_zero=True)
    counts = torch.bincount(y, minlength=num_classes).double()
    w = torch.where(counts > 0, counts.clamp_min(1).pow(-beta), torch.zeros_like(counts))
    w = w / (w * counts).sum() * counts.sum()
    return w.float()


def imbalanced_at(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, num_classes: int = 10,
                  beta: float = 1.0, **kwargs) -> nn.Module:
    """PGD-AT with class weights n_c^{−β} for imbalanced data."""
    return pgd_at(model, x, y, class_weights=class_balanced_weights(y, num_classes, beta),
                  **kwargs)


def trades(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float = 0.2,
           norm: str = "linf", beta: float = 6.0, steps: int = 7, step_size: float | None = None,
           epochs: int = 20, batch_size: int = 64, lr: float = 3e-3, seed: int = 0,
           history: TrainHistory | None = None) -> nn.Module:
    """TRADES: CE(f(x), y) + β·KL(p(x) ‖ p(x')), x' = argmax of the KL term in the ε-ball."""
    x, y = _check_data(x, y)
    eps, norm, steps, alpha = _at_args(x, eps, norm, steps, step_size)
    beta = check_positive(beta, "beta", allow_zero=True)

    def batch_loss(m: nn.Module, xb: torch.Tensor, yb: torch.Tensor,
                   g: torch.Generator) -> torch.Tensor:
        m.eval()
        with torch.no_grad():
            p_clean = F.softmax(m(xb), dim=1)
        x_adv = (xb + 0.001 * torch.randn(xb.shape, generator=g, device=xb.device,
                                          dtype=xb.dtype)).clamp(0, 1)
        for _ in range(steps):
            x_adv.requires_grad_(True)
            kl = F.kl_div(F.log_softmax(m(x_adv), dim=1), p_clean, reduction="sum")
            gr, = torch.autograd.grad(kl, x_adv)
            x_adv = project(x_adv.detach() + alpha * ascent_direction(gr, norm), xb, eps, norm,
                            0.0, 1.0)
        m.train()
        z = m(xb)
        kl = F.kl_div(F.log_softmax(m(x_adv.detach()), dim=1), F.softmax(z, dim=1),
                      reduction="batchmean")
        return F.cross_entropy(z, yb) + beta * kl

    model.train()
    return _fit(model, x, y, batch_loss, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                history=history)


def fgsm_at(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float = 0.2,
            step_size: float | None = None, aaer: bool = True, lambda1: float = 1.0,
            lambda2: float = 1.0, guard: bool = False, guard_size: int = 128,
            epochs: int = 20, batch_size: int = 64, lr: float = 3e-3,
            seed: int = 0, history: TrainHistory | None = None) -> nn.Module:
    """FGSM-AT (ℓ∞, random init, step 1.25ε) with the optional AAER regulariser against
    catastrophic overfitting. ``history.abnormal`` records the per-epoch AAE share.

    ``guard``: after every epoch, run :func:`catastrophic_overfitting` (FGSM vs PGD-10) on
    ``guard_size`` training inputs; on detection, roll the weights back to the previous
    epoch and halve the FGSM step (``history.rollbacks`` counts them). This rollback is our
    addition, a last line of defence where AAER alone does not prevent CO (it did not on
    digits at ε = 0.3 in our runs)."""
    x, y = _check_data(x, y)
    eps = check_eps(eps, "linf", (0.0, 1.0), x[0].numel())
    alpha = 1.25 * eps if step_size is None else check_positive(step_size, "step_size")
    lambda1 = check_positive(lambda1, "lambda1", allow_zero=True)
    lambda2 = check_positive(lambda2, "lambda2", allow_zero=True)
    hist = history if history is not None else TrainHistory()
    counts = [0, 0]

    def batch_loss(m: nn.Module, xb: torch.Tensor, yb: torch.Tensor,
                   g: torch.Generator) -> torch.Tensor:
        x0 = random_start(xb, eps, "linf", 0.0, 1.0, g).requires_grad_(True)
        z0 = m(x0)
        l0 = F.cross_entropy(z0, yb, reduction="none")
        gr, = torch.autograd.grad(l0.sum(), x0, retain_graph=aaer)
        xa = project(x0.detach() + state["alpha"] * gr.sign(), xb, eps, "linf", 0.0, 1.0)
        za = m(xa)
        la = F.cross_entropy(za, yb, reduction="none")
        abnormal = (la < l0).detach()
        counts[0] += int(abnormal.sum())
        counts[1] += int(abnormal.numel())
        loss = la.mean()
        if aaer and bool(abnormal.any()):
            drop = (l0 - la)[abnormal]
            dz = (za - z0)[abnormal].pow(2).sum(1)
            n_a = abnormal.float().sum()
            share = n_a / (abnormal.numel() - n_a).clamp_min(1.0)
            loss = loss + share * (lambda1 * drop.mean() + lambda2 * dz.mean())
        return loss

    guard_size = check_int(guard_size, "guard_size", minimum=1)
    gx, gy = x[:guard_size], y[:guard_size]
    state = {"alpha": alpha, "prev": {k: v.clone() for k, v in model.state_dict().items()}}

    def on_epoch() -> None:
        hist.abnormal.append(counts[0] / max(counts[1], 1))
        counts[0] = counts[1] = 0
        if guard:
            model.eval()
            flag, _, _ = catastrophic_overfitting(model, gx, gy, eps, steps=10)
            model.train()
            if flag:
                model.load_state_dict(state["prev"])
                state["alpha"] = state["alpha"] / 2
                hist.rollbacks += 1
            else:
                state["prev"] = {k: v.clone() for k, v in model.state_dict().items()}

    model.train()
    return _fit(model, x, y, batch_loss, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                history=hist, on_epoch=on_epoch)


def catastrophic_overfitting(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *,
                             steps: int = 20, gap: float = 0.2) -> tuple[bool, float, float]:
    """Detect CO: (flag, FGSM accuracy, PGD accuracy); flag when FGSM accuracy exceeds PGD
    accuracy by more than ``gap`` (a distorted, gradient-masked classifier)."""
    from certkit.vision.attacks import fgsm, pgd, robust_accuracy

    a_f = robust_accuracy(model, fgsm(model, x, y, eps), y)
    a_p = robust_accuracy(model, pgd(model, x, y, eps, steps=steps), y)
    return (a_f - a_p > gap), a_f, a_p


class Temperature(nn.Module):
    """logits / T around a model (used to train distillation teachers and students)."""

    def __init__(self, model: nn.Module, temperature: float) -> None:
        super().__init__()
        self.model = model
        self.temperature = check_positive(temperature, "temperature")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) / self.temperature  # type: ignore[no-any-return]


def defensive_distillation(teacher: nn.Module, student: nn.Module, x: torch.Tensor,
                           y: torch.Tensor, *, temperature: float = 50.0, epochs: int = 20,
                           batch_size: int = 64, lr: float = 3e-3, seed: int = 0
                           ) -> nn.Module:
    """Train ``teacher`` at temperature T on hard labels, then ``student`` at T on the
    teacher's soft labels; return the student deployed at T = 1 (its raw logits)."""
    x, y = _check_data(x, y)
    temperature = check_positive(temperature, "temperature")

    def hard(m: nn.Module, xb: torch.Tensor, yb: torch.Tensor,
             g: torch.Generator) -> torch.Tensor:
        return F.cross_entropy(m(xb) / temperature, yb)

    teacher.train()
    _fit(teacher, x, y, hard, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
    with torch.no_grad():
        soft = F.softmax(teacher(x) / temperature, dim=1)
    index = torch.arange(x.shape[0], device=x.device)
    lookup = {"soft": soft}

    def distill(m: nn.Module, xb: torch.Tensor, yb: torch.Tensor,
                g: torch.Generator) -> torch.Tensor:
        # yb carries row indices into the soft-label table
        target = lookup["soft"][yb]
        return -(target * F.log_softmax(m(xb) / temperature, dim=1)).sum(1).mean()

    student.train()
    return _fit(student, x, index, distill, epochs=epochs, batch_size=batch_size, lr=lr,
                seed=seed + 1)


__all__ = [
    "Temperature",
    "TrainHistory",
    "catastrophic_overfitting",
    "class_balanced_weights",
    "defensive_distillation",
    "dro_objective",
    "dro_weights",
    "fgsm_at",
    "imbalanced_at",
    "pgd_at",
    "pgd_examples",
    "reweighted_at",
    "trades",
]
