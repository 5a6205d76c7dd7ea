"""CROWN's ReLU backward rule as one compiled pass (``certkit.core._core.bounds.relu_patches``
/ ``relu_dense``, cpp/src/bounds/relu_rule.h), for inference-only CPU calls.

The rule (Zhang et al. 2018, arXiv:1811.00866, Eq. 5 with the adaptive lower slope): a
coefficient a on a ReLU's output becomes ``a·ld`` on its input where a > 0 and ``a·ud``
where a < 0, and the row's bias gains ``min(a, 0)·ub``, with (ud, ub, ld) from
:func:`certkit.core.bounds.ops.relu_relaxation`. The torch rules compute the same with a
window gather and five element-wise passes over the coefficients; the kernel reads the
coefficients once and the node's relaxation (small, cache-resident) at each row's window.

Guarantee: every output coefficient is the same single product as the torch rule's (equal
bits); the bias (and the concretised bound) is the same sum in another order (float
rounding). Used only when no
gradient is needed (α-CROWN and autograd keep the torch rules) and the tensors are float32
or float64 on the CPU; :data:`ENABLED` = False forces the torch rules (tests compare both).
"""

from __future__ import annotations

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
            and t.dtype in (torch.float32, torch.float64) and hasattr(_kernels(), "relu_patches"))


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
    _kernels().relu_patches(P.numpy(), rel.numpy(), ex.contiguous().numpy(), hr.contiguous().numpy(),
                            wr.contiguous().numpy(), A.numpy(), bias.numpy(), int(rel.shape[2]), int(rel.shape[3]),
                            int(stride[0]), int(stride[1]), int(pad[0]), int(pad[1]), torch.get_num_threads())
    return A, bias


def relu_dense(A: Tensor, l: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:  # noqa: E741
    """The rule on dense rows A (E, S, *shape) with bounds l, u (E, *shape): (A_in like A,
    in A's memory layout when A is channels last, bias (E, S))."""
    from certkit.core.bounds.ops import relu_relaxation

    E, S = A.shape[:2]
    ud, ub, ld = relu_relaxation(l, u)
    rel = torch.stack([ld, ud, ub], 1)  # (E, 3, *shape)
    cl = A.dim() == 5 and not A.is_contiguous() and A.permute(0, 1, 3, 4, 2).is_contiguous()
    if cl:  # channels last (the conv rule's layout): both flattened in H, W, C order, no copy of A
        A0 = A.permute(0, 1, 3, 4, 2)
        rel = rel.permute(0, 1, 3, 4, 2)
    else:
        A0 = A.contiguous()
    out = torch.empty(A0.shape, dtype=A.dtype)
    bias = torch.empty(E, S, dtype=A.dtype)
    _kernels().relu_dense(A0.reshape(E, S, -1).numpy(), rel.contiguous().reshape(E, 3, -1).numpy(),
                          out.view(E, S, -1).numpy(), bias.numpy(), torch.get_num_threads())
    return (out.permute(0, 1, 4, 2, 3) if cl else out), bias


def box(lo: Tensor, hi: Tensor) -> Tensor:
    """The centre and radius of the box [lo, hi] (E, C, H, W) as (E, 2, H, W, C)."""
    return torch.stack([(hi + lo) / 2, (hi - lo) / 2], 1).permute(0, 1, 3, 4, 2).contiguous()


def box_patches(P: Tensor, bx: Tensor, ex: Tensor, hr: Tensor, wr: Tensor, stride: tuple[int, int],
                pad: tuple[int, int]) -> Tensor:
    """min over the box of each patch row's linear function, ``Σ P·mid − |P|·rad`` over the
    window entries inside the input (R,), for patches P (R, Kh, Kw, C) laid out as in
    :func:`relu_patches` and the box ``bx`` (E, 2, H, W, C) of :func:`box`."""
    P = P.contiguous()
    bias = torch.empty(P.shape[0], dtype=P.dtype)
    _kernels().box_patches(P.numpy(), bx.numpy(), ex.contiguous().numpy(), hr.contiguous().numpy(),
                           wr.contiguous().numpy(), bias.numpy(), int(stride[0]), int(stride[1]), int(pad[0]),
                           int(pad[1]), torch.get_num_threads())
    return bias
