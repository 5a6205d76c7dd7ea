"""IBP tightness τ (Mao et al. 2023, "Understanding Certified Training with Interval Bound
Propagation", arXiv:2306.10426).

For a ReLU network linearised at the clean input x (activation pattern fixed), the exact
output box of the linear map J = ∂f/∂x over an ℓ∞ ball of radius ε has radius
``ε·|J|·1`` (the optimal box), while IBP through the same linearised layers gives
``ε·|W_L||D_{L-1}|···|W_1|·1``. τ = optimal radius / IBP radius ∈ (0, 1], averaged over the
outputs; τ = 1 means IBP is exact for that pattern, small τ means IBP is loose. (Formula
recalled from the paper's definition; the layer-wise propagation is derived here.)
"""

from __future__ import annotations

from typing import Any

import torch

from certkit.core.bounds import activations, ops

Tensor = torch.Tensor


def ibp_tightness(bm: Any, x: Tensor, reduce: bool = True) -> Tensor:
    """τ for each example (or their mean). bm: a :class:`BoundedModel`; x: (B, *input_shape).
    Returns a scalar tensor (``reduce``) or (B,) tensor. No gradients."""
    g = bm.graph
    with torch.no_grad():
        vals = g.forward(x)
        rad: dict[int, Tensor] = {0: torch.ones_like(x)}
        for i in range(1, len(g.nodes)):
            op = g.nodes[i]
            ins = g.inputs[i]
            if isinstance(op, ops.ReLU):
                rad[i] = rad[ins[0]] * (vals[ins[0]] > 0).to(x.dtype)
            elif isinstance(op, activations.Elementwise):  # linearised: |f'(x)| at the clean input
                rad[i] = rad[ins[0]] * op.df(vals[ins[0]]).abs()
            elif isinstance(op, ops._MaxWindows):
                # linearised max: the argmax element passes through
                r = rad[ins[0]]
                xin = vals[ins[0]]
                idx = op._windows(xin)
                arg = xin.reshape(x.shape[0], -1)[:, idx].argmax(-1)
                src = idx.unsqueeze(0).expand(x.shape[0], -1, -1).gather(-1, arg.unsqueeze(-1)).squeeze(-1)
                rad[i] = r.reshape(x.shape[0], -1).gather(1, src).reshape(x.shape[0], *op.out_shape)
            else:  # affine (one input, or sums / concatenations of several): IBP of the radii
                lo, hi = op.ibp(*[(-rad[j], rad[j]) for j in ins])
                rad[i] = (hi - lo) / 2
        ibp_r = rad[g.output].reshape(x.shape[0], -1)

    def f(z: Tensor) -> Tensor:
        return g.forward(z.unsqueeze(0))[g.output].squeeze(0)

    with torch.enable_grad():
        J = torch.func.vmap(torch.func.jacrev(f))(x.detach())  # (B, K, *in)
    opt_r = J.reshape(x.shape[0], ibp_r.shape[1], -1).abs().sum(-1)
    tau = (opt_r / ibp_r.clamp_min(1e-12)).mean(1)
    return tau.mean() if reduce else tau
