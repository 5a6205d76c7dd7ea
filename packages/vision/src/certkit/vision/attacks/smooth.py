"""SmoothAdv-style attack on a Gaussian-smoothed classifier.

Salman et al., "Provably Robust Deep Learning via Adversarially Trained Smoothed
Classifiers", NeurIPS 2019, arXiv:1906.04584. The smoothed *soft* classifier
G(x)_k = E_δ~N(0,σ²I)[softmax(f(x + δ))_k] is attacked with PGD on
J(x') = −log( (1/m) Σ_i softmax(f(x' + δ_i))_y ), a Monte-Carlo estimate from m fresh noise
draws per step (the paper's gradient of the log of the average, not the average of
the logs, which is what makes it stronger than attacking the base classifier).

Noise is keyed by (seed, input index, sample index) with certkit's counter-based Philox
sampler, so the attack is reproducible bit for bit whatever the batching: the noise of
step s for input b is elements [ (s·m)·M, (s+1)·m·M ) of stream (seed, indices[b]),
M = prod(x.shape[1:]).

What this is for: other engineers' soundness tests of smoothing certificates. A
certificate "g is constant on the ℓ2 ball of radius R around x" is broken by any x' with
‖x' − x‖₂ ≤ R on which the (Monte-Carlo) smoothed prediction changes. The attack returns
the final iterate; judging whether it fools the smoothed classifier is left to the caller's
own (independent-noise) prediction, as a noisy m-sample argmax must not decide success.
No certificate is stated by this module.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from certkit.core import gaussian_rows
from certkit.core.validation import check_int, check_positive, check_seed, check_sigma
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
    project,
)


def smoothed_noise(shape: tuple[int, ...], num_noise: int, sigma: float, seed: int,
                   indices: torch.Tensor, step: int, device: torch.device,
                   dtype: torch.dtype) -> torch.Tensor:
    """Gaussian noise (B, m, ...) for attack step ``step``, keyed by (seed, index, sample)."""
    b = shape[0]
    m_el = int(np.prod(shape[1:]))
    offs = np.full(b, step * num_noise * m_el, dtype=np.int64)
    arr = gaussian_rows((b, num_noise, *shape[1:]), sigma, seed,
                        indices.detach().cpu().numpy().astype(np.int64), offs)
    return torch.from_numpy(arr).to(device=device, dtype=dtype)


def smoothed_log_probs(model: Model, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """log( (1/m) Σ_i softmax(f(x + δ_i)) ), shape (B, K). x: (B, ...); noise: (B, m, ...)."""
    b, m = noise.shape[:2]
    xs = (x[:, None] + noise).reshape(b * m, *x.shape[1:])
    logp = F.log_softmax(model(xs), dim=1).view(b, m, -1)
    return torch.logsumexp(logp, dim=1) - float(np.log(m))


def smoothadv_pgd(model: Model, x: torch.Tensor, y: torch.Tensor, sigma: float, eps: float, *,
                  norm: str = "l2", steps: int = 10, num_noise: int = 16,
                  step_size: float | None = None, random_start: bool = False,
                  targeted: bool = False, bounds: tuple[float, float] = (0.0, 1.0),
                  seed: int = 0, indices: torch.Tensor | None = None) -> torch.Tensor:
    """PGD on the Monte-Carlo smoothed soft classifier (SmoothAdv).

    model: base classifier (B, ...) → logits (B, K); x: (B, ...) in ``bounds``; y: (B,)
    labels (targets when ``targeted``); sigma: the smoothing noise level; eps: radius
    (ℓ2 by default, as certificates of Gaussian smoothing are ℓ2); num_noise: m noise draws
    per step; step_size: default 2·ε/steps; indices: (B,) stream ids for the noise (default
    0..B−1). Returns x_adv (B, ...) within the ε-ball ∩ box.
    """
    norm = check_norm(norm)
    lo, hi = check_bounds(bounds)
    x = check_inputs(x, (lo, hi))
    sigma = check_sigma(sigma)
    eps = check_eps(eps, norm, (lo, hi), x[0].numel())
    steps = check_steps(steps)
    num_noise = check_int(num_noise, "num_noise", minimum=1)
    seed = check_seed(seed)
    alpha = 2.0 * eps / steps if step_size is None else check_positive(step_size, "step_size")
    if indices is None:
        indices = torch.arange(x.shape[0])
    elif not isinstance(indices, torch.Tensor) or indices.shape != (x.shape[0],):
        raise ValueError(f"indices: expected a tensor of shape ({x.shape[0]},)")
    sign = -1.0 if targeted else 1.0
    with eval_mode(model):
        z0 = first_logits(model, x)
        y = check_labels(y, x.shape[0], z0.shape[1])
        if random_start:
            gen = torch.Generator(device=x.device).manual_seed(seed)
            from certkit.vision.attacks._common import random_start as _rs
            x_adv = _rs(x, eps, norm, lo, hi, gen)
        else:
            x_adv = x.clone()
        for s in range(steps):
            noise = smoothed_noise(tuple(x.shape), num_noise, sigma, seed, indices, s,
                                   x.device, x.dtype)
            x_adv.requires_grad_(True)
            lp = smoothed_log_probs(model, x_adv, noise)
            obj = F.nll_loss(lp, y, reduction="sum")
            g, = torch.autograd.grad(obj, x_adv)
            with torch.no_grad():
                x_adv = project(x_adv.detach() + sign * alpha * ascent_direction(g, norm), x, eps,
                                norm, lo, hi)
        return x_adv.detach()


__all__ = ["smoothadv_pgd", "smoothed_log_probs", "smoothed_noise"]
