"""CROWN's ReLU backward rule and the ℓ∞ concretisation at the input, each as one compiled
pass (``certkit.core._core.bounds.relu_patches`` / ``box_patches``,
cpp/src/bounds/relu_rule.cpp), for inference-only CPU calls, on patches (each row's window)
and on dense rows (one window covering the node).

The rule (Zhang et al. 2018, arXiv:1811.00866, Eq. 5 with the adaptive lower slope): a
coefficient a on a ReLU's output becomes ``a·ld`` on its input where a > 0 and ``a·ud``
where a < 0, and the row's bias gains ``min(a, 0)·ub``, with (ud, ub, ld) from
:func:`certkit.core.bounds.ops.relu_relaxation`. The torch rules compute the same with a
window gather and five element-wise passes over the coefficients; the kernel reads the
coefficients once and the node's relaxation (small, cache-resident) at each row's window,
and rows of several examples read their own example's relaxation (no per-row copy of the
bounds). The concretisation is ``Σ a·mid − |a|·rad`` over each row's window of the box's
centre and radius.

Guarantee: every output coefficient is the same single product as the torch rule's (equal
bits); the bias and the concretised bound are the same sums in another order (float
rounding). Used only when no gradient is needed (α-CROWN and autograd keep the torch rules)
and the tensors are float32 or float64 on the CPU; :data:`ENABLED` = False forces the torch
rules (tests compare both).
"""

from __future__ import annotations

import math
from typing import Any

import torch

Tensor = torch.Tensor

ENABLED = True


def _kernels() -> Any:
    from certkit.core._ext import core_ext

    return core_ext.bounds


def usable(t: Tensor) -> bool:
    """Whether the compiled rule applies to coefficients t (no autograd, CPU, f32 / f64, and
    an extension built with the kernels)."""
    return (ENABLED and not torch.is_grad_enabled() and t.device.type == "cpu"
            and t.dtype in (torch.float32, torch.float64) and hasattr(_kernels(), "box_patches"))


def relaxation(l: Tensor, u: Tensor) -> Tensor:  # noqa: E741
    """The relaxation of pre-activation bounds l, u (E, C, H, W) as (E, 3, H, W, C): the
    lower slopes, upper slopes and upper intercepts, each channels last (the kernel's layout)."""
    from certkit.core.bounds.ops import relu_relaxation

    ud, ub, ld = relu_relaxation(l, u)
    return torch.stack([ld, ud, ub], 1).permute(0, 1, 3, 4, 2).contiguous()


def relu_patches(P: Tensor, rel: Tensor, ex: Tensor, hr: Tensor, wr: Tensor, stride: tuple[int, int],
                 pad: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """The rule on patches P (R, Kh, Kw, C) (row r at window position r % k of hr, wr (k,),
    example ex[r] of rel (E, 3, H, W, C)); entries outside the node give 0. Returns the
    input patches (R, Kh, Kw, C) and the bias (R,)."""
    P = P.contiguous()
    A = torch.empty_like(P)
    bias = torch.empty(P.shape[0], dtype=P.dtype)
    _kernels().relu_patches(P.detach().numpy(), rel.detach().numpy(), ex.contiguous().numpy(), hr.contiguous().numpy(),
                            wr.contiguous().numpy(), A.numpy(), bias.numpy(), int(rel.shape[2]), int(rel.shape[3]),
                            int(stride[0]), int(stride[1]), int(pad[0]), int(pad[1]), torch.get_num_threads())
    return A, bias


def _flat(A: Tensor) -> tuple[Tensor, bool]:
    """Dense rows A (E, S, *shape) as (E·S, n) without a copy when A is channels last
    (then flattened in H, W, C order: True) or contiguous."""
    cl = A.dim() == 5 and not A.is_contiguous() and A.permute(0, 1, 3, 4, 2).is_contiguous()
    A0 = A.permute(0, 1, 3, 4, 2) if cl else A.contiguous()
    return A0.reshape(A.shape[0] * A.shape[1], -1), cl


def _rows_of(t: Tensor, cl: bool) -> Tensor:
    """A node tensor (E, K, *shape) flattened per (e, K) like :func:`_flat`: (E, K, 1, 1, n)."""
    if cl:
        t = t.permute(0, 1, 3, 4, 2)
    return t.contiguous().reshape(t.shape[0], t.shape[1], 1, 1, -1)


_ZERO = torch.zeros(1, dtype=torch.long)


def relu_dense(A: Tensor, l: Tensor, u: Tensor, ex: Tensor | None = None) -> tuple[Tensor, Tensor]:  # noqa: E741
    """The rule on dense rows A (E_A, S, *shape) with bounds l, u (E, *shape): (A_in like A,
    in A's memory layout when A is channels last, bias (E_A, S)). Row (e, s) reads example
    e, or ``ex[e·S + s]`` when given (rows of several examples without a copy of their
    bounds per row). (Each row is one window covering the whole node.)"""
    from certkit.core.bounds.ops import relu_relaxation

    E_A, S = A.shape[:2]
    A0, cl = _flat(A)
    ud, ub, ld = relu_relaxation(l, u)
    rel = _rows_of(torch.stack([ld, ud, ub], 1), cl)  # (E, 3, 1, 1, n)
    if ex is None:
        ex = torch.arange(E_A).repeat_interleave(S)
    Ain, bias = relu_patches(A0.view(E_A * S, 1, 1, -1), rel, ex, _ZERO, _ZERO, (1, 1), (0, 0))
    if cl:
        return Ain.view(E_A, S, *A.shape[3:], A.shape[2]).permute(0, 1, 4, 2, 3), bias.view(E_A, S)
    return Ain.view(A.shape), bias.view(E_A, S)


def centre_radius(lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    """The box's centre and half-widths: ``(lo + hi) / 2`` and
    ``(hi - lo) / 2`` bit for bit where those are finite, else ``lo / 2 ± hi / 2``. On a box
    wider than the dtype's range (±1e308 in float64, ±3e38 in float32) the plain forms were
    inf: IBP's next bounds ±inf on the wrong side (an upper bound -inf: a wrong unsat), an attack's
    start outside the box, and an ``eps: expected a finite value`` error."""
    s, w = lo + hi, hi - lo
    # (finite sums: every entry finite, the usual case, one pass each; else the entrywise choice)
    if math.isfinite(float(s.detach().sum())) and math.isfinite(float(w.detach().sum())):
        return s / 2, w / 2
    return (torch.where(torch.isfinite(s), s / 2, lo / 2 + hi / 2),
            torch.where(torch.isfinite(w), w / 2, hi / 2 - lo / 2))


def box_rows(A: Tensor, lo: Tensor, hi: Tensor, ex: Tensor) -> Tensor:
    """min over the box [lo, hi] (E, *in) of each dense row of A (E_A, S, *in), row r of
    example ex[r]: ``Σ a·mid − |a|·rad`` (E_A, S)."""
    A0, cl = _flat(A)
    bx = _rows_of(torch.stack(centre_radius(lo, hi), 1), cl)
    return box_patches(A0.view(A0.shape[0], 1, 1, -1), bx, ex, _ZERO, _ZERO, (1, 1), (0, 0)).view(A.shape[:2])


def box(lo: Tensor, hi: Tensor) -> Tensor:
    """The centre and radius of the box [lo, hi] (E, C, H, W) as (E, 2, H, W, C)."""
    return torch.stack(centre_radius(lo, hi), 1).permute(0, 1, 3, 4, 2).contiguous()


def box_patches(P: Tensor, bx: Tensor, ex: Tensor, hr: Tensor, wr: Tensor, stride: tuple[int, int],
                pad: tuple[int, int]) -> Tensor:
    """min over the box of each patch row's linear function, ``Σ P·mid − |P|·rad`` over the
    window entries inside the input (R,), for patches P (R, Kh, Kw, C) laid out as in
    :func:`relu_patches` and the box ``bx`` (E, 2, H, W, C) of :func:`box`."""
    P = P.contiguous()
    bias = torch.empty(P.shape[0], dtype=P.dtype)
    _kernels().box_patches(P.detach().numpy(), bx.detach().numpy(), ex.contiguous().numpy(), hr.contiguous().numpy(),
                           wr.contiguous().numpy(), bias.numpy(), int(stride[0]), int(stride[1]), int(pad[0]),
                           int(pad[1]), torch.get_num_threads())
    return bias
