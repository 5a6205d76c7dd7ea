"""Loss fusion: a certified upper bound on the worst-case cross-entropy loss over the
perturbation set, with the loss fused into the bound's specification (Xu et al. 2020,
"Automatic Perturbation Analysis for Scalable Certified Robustness and Beyond",
arXiv:2002.12920, Sec. 3.3 / the "loss fusion" of auto_LiRPA's CROWN-IBP training).

Instead of bounding the K-1 margins (K-1 specification rows per example in the backward
pass) and feeding their lower bounds to the CE loss, the loss itself is relaxed, so one
backward pass with a single row per example bounds it: the cost no longer grows with the
number of classes.

Derivation (ours, from the paper's description; not a transcription of its code). With
``d_j = z_j - z_y`` (logits z, label y), ``CE(z, y) = log(1 + Σ_{j≠y} exp(d_j))``.

1. IBP gives ``l_j <= d_j <= u_j`` over the set (margin spec merged into the last Linear).
2. exp is convex, so on ``[l_j, u_j]`` it lies below its chord. With a shift
   ``M = max(0, max_j u_j)`` for floating-point safety,
   ``exp(d_j - M) <= a_j d_j + c_j`` with ``a_j = exp(l_j - M)·expm1(w_j)/w_j``
   (``w_j = u_j - l_j``, floored at 1e-6: the chord of a wider interval containing
   ``[l_j, u_j]`` is still above exp on it) and ``c_j = exp(l_j - M) - a_j l_j``.
3. ``Σ_j a_j d_j = c_f · z`` with the fused row ``c_f = Σ_j a_j (e_j - e_y)`` (B, 1, K); one
   CROWN / CROWN-IBP / IBP pass gives ``U >= max c_f · z`` over the set.
4. log is increasing: ``max CE <= M + log(exp(-M) + U + Σ_j c_j)``. The IBP-only bound
   ``log(1 + Σ_j exp(u_j))`` is also valid; the result is the smaller of the two.

Guarantee: for every x' in the perturbation set, ``CE(model(x'), y) <= bound`` in real
arithmetic (float rounding as in :mod:`certkit.core.bounds.model`). Differentiable (for
certified training) when gradients are enabled.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from certkit.core.bounds.model import BoundedModel, margin_spec

Tensor = torch.Tensor

_METHODS = ("IBP", "CROWN-IBP", "CROWN")


def robust_ce_upper(bm: BoundedModel, x: Tensor, y: Tensor, eps: float | Tensor, *,
                    method: str = "CROWN-IBP", x_L: Tensor | None = None, x_U: Tensor | None = None,
                    norm: float | str = math.inf, intersect_ibp: bool = True, **kw: Any) -> Tensor:
    """Upper bound (B,) on ``max over x' of CE(model(x'), y)`` by loss fusion.

    Args:
        bm: the bounded model (K-class logits).
        x: (B, *input_shape) clean inputs; y: (B,) labels.
        eps, norm, x_L, x_U: the perturbation set, as in ``BoundedModel.compute_bounds``.
        method: the pass that bounds the fused row: ``"CROWN-IBP"`` (default, as in
            CROWN-IBP training), ``"CROWN"`` or ``"IBP"``.
        intersect_ibp: return min(fused, IBP-only bound) (default); ``False`` returns the
            fused bound alone (tests check that it is sound on its own).
    """
    if method not in _METHODS:
        raise ValueError(f"method: expected one of {', '.join(_METHODS)}, got {method!r}")
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"y: expected a torch.Tensor, got {type(y).__name__}")
    B = x.shape[0]
    if y.shape != (B,):
        raise ValueError(f"y: expected shape ({B},), got {tuple(y.shape)}")
    K = bm.graph.shapes[bm.graph.output][0]
    # (1) IBP bounds on d_j = z_j - z_y (the negated margin spec)
    Cm = -margin_spec(y, K, x.dtype).to(x.device)  # (B, K-1, K): rows e_j - e_y
    l, u = bm.compute_bounds(x, eps, norm=norm, method="IBP", C=Cm, x_L=x_L, x_U=x_U)  # noqa: E741
    # (2) chords of exp on [l_j, u_j], shifted by M
    M = torch.clamp(u.max(1).values, min=0.0).detach()  # (B,)
    w = (u - l).clamp_min(1e-6)
    el = torch.exp(l - M.unsqueeze(1))
    a = el * torch.expm1(w) / w  # (B, K-1)
    c = el - a * l
    # (3) one fused row per example
    Cf = torch.einsum("bj,bjk->bk", a, Cm).unsqueeze(1)  # (B, 1, K)
    _, U = bm.compute_bounds(x, eps, norm=norm, method=method, C=Cf, x_L=x_L, x_U=x_U,
                             bound_lower=False, **kw)
    floor = torch.exp(-M)  # the true inner sum is >= exp(-M) > 0: flooring there is sound
    inner = torch.maximum(floor + U[:, 0] + c.sum(1), floor)
    fused = M + torch.log(inner)
    if not intersect_ibp:
        return fused
    # (4) the IBP-only bound log(1 + Σ exp(u_j)), also sound
    ibp_only = torch.logsumexp(torch.cat([torch.zeros_like(u[:, :1]), u], 1), 1)
    return torch.minimum(fused, ibp_only)
