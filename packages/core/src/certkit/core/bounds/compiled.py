"""Dispatch from :class:`~certkit.core.bounds.BoundedModel` to the compiled IBP/CROWN
kernels (``certkit.core._core.bounds``, cpp/src/bounds/) for inference-only CPU calls on
chains of Linear / Conv2d / ReLU (with Flatten / Identity in between). An eval-mode
BatchNorm right after a Linear / Conv2d is folded into it (``W' = s·W``, ``b' = s·b + t``
with the per-channel scale ``s = γ/√(var+ε)`` and shift ``t = β − mean·s``), so BN nets
(certified training puts BN after every layer) run in the kernels too. Folding is exact
in real arithmetic: IBP of the folded layer equals IBP of layer-then-BN (|s·W| = |s|·|W|),
and the CROWN backward pass composes the same two affine maps; the float results agree up
to rounding (tests check it).

Kernel structure (cpp/src/bounds/bounds_cpu.cpp): the CROWN backward pass through a
Conv2d is a transposed convolution of the coefficient rows, run as an im2col-style GEMM
(register-tiled ``W^T @ A``) plus col2im for dense rows, and as a windowed scatter for
rows that are local (the unit-vector rows of a conv neuron's intermediate bound stay inside
a small spatial window through conv/ReLU layers, like auto_LiRPA's "patches" mode); the
Linear backward is a register-tiled GEMM over the non-zero coefficient columns.
Intermediate-bound rows run in cache-sized chunks, in parallel. IBP runs over the whole
batch in centre/radius form (``W·c + b ± |W|·r``): one GEMM-shaped register-tiled pass per
Linear layer, an im2col product per example for a Conv2d, summed in double in a fixed
order per output element (bit-identical results for any batch split or thread count),
with W^T cached per layer in 16-column panels (:func:`_ibp_operands`).

The kernels run the same algorithm as the torch layer (same relaxation, same per-example
CROWN∩IBP intermediate-bound policy), so both agree up to float rounding; tests check it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from certkit.core.bounds import ops

_DENSE, _CONV, _RELU = 0, 1, 2
_CODES = {"IBP": 0, "CROWN": 1, "CROWN-IBP": 2}


def _bn_foldable(op: Any) -> bool:
    m = op.m
    return (not m.training) and m.track_running_stats and m.running_mean is not None


def _consts(op: Any, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """An Affine's scale and shift broadcast to one example's ``shape`` (float64)."""
    sc, sh = op._get(len(shape), torch.float64, torch.device("cpu"))
    one = torch.ones(shape, dtype=torch.float64)
    return ((one if sc is None else sc * one).numpy(), (0 * one if sh is None else sh * one).numpy())


def _per_channel(a: np.ndarray) -> np.ndarray | None:
    """(C, ...) → (C,) when constant over the other dimensions, else None."""
    flat = a.reshape(a.shape[0], -1)
    return flat[:, 0].copy() if np.all(flat == flat[:, :1]) else None


def _affine_foldable(bm: Any) -> bool:
    """Every Affine of the plan is per output channel / feature (after a layer) or, before
    the first layer, per input channel with no shift into a zero-padded convolution."""
    for kind, _op, _, _, geo, post, *rest in bm._compiled_plan:
        for a, shape in ((a, a.out_shape) for a in post if isinstance(a, ops.Affine)):
            if kind == "conv" and any(_per_channel(c) is None for c in _consts(a, shape)):
                return False
        for a in (rest[0] if rest else []):
            sc, sh = _consts(a, a.out_shape)
            if kind == "conv" and (_per_channel(sc) is None or _per_channel(sh) is None
                                   or (np.any(sh != 0) and (geo[10] or geo[11]))):
                return False
    return True


def _plan(bm: Any) -> list[tuple[Any, ...]] | None:
    g = bm.graph
    if not g.is_chain():
        return None
    layers: list[tuple[Any, ...]] = []
    pre: list[Any] = []  # Affines (input normalisation) before the first layer, folded into it
    prev_affine = False  # the previous graph node is the last planned Linear/Conv (or a BN folded into it)
    for i, op in enumerate(g.nodes[1:], start=1):
        n_in = int(np.prod(g.shapes[i - 1]))
        n_out = int(np.prod(g.shapes[i]))
        if isinstance(op, ops.Affine) and not layers:
            pre.append(op)
        elif isinstance(op, ops.Linear):
            layers.append(("dense", op, n_in, n_out, None, [], pre if len(layers) == 0 else []))
            prev_affine = True
        elif isinstance(op, ops.Conv) and op.nd == 2 and op.m.groups == 1 and tuple(op.m.dilation) == (1, 1):
            ci, hi, wi = g.shapes[i - 1]
            co, ho, wo = g.shapes[i]
            m = op.m
            geo = (ci, hi, wi, co, ho, wo, m.kernel_size[0], m.kernel_size[1], m.stride[0], m.stride[1],
                   m.padding[0], m.padding[1])
            layers.append(("conv", op, n_in, n_out, geo, [], pre if len(layers) == 0 else []))
            prev_affine = True
        elif isinstance(op, (ops.BatchNorm, ops.Affine)) and prev_affine and g.shapes[i] == g.shapes[i - 1]:
            layers[-1][5].append(op)  # folded into the Linear/Conv before it
        elif isinstance(op, ops.ReLU):
            layers.append(("relu", op, n_in, n_out, None, [], []))
            prev_affine = False
        elif type(op) is ops.Identity:
            continue
        elif type(op) is ops.Flatten or (isinstance(op, ops.Reshape) and len(g.shapes[i]) == 1):
            prev_affine = prev_affine and len(g.shapes[i - 1]) == 1
            continue
        else:
            return None
    if not layers or layers[0][0] == "relu":
        return None
    return layers


def _folded(op: Any, bns: list[Any], pre: list[Any] | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(W, b) of a Linear/Conv with the eval-mode BNs and Affines after it, and the input
    Affines before it (``pre``, x → x·s + t), folded in (float64 math)."""
    W = op.m.weight.detach().to(torch.float64)
    b = None if op.m.bias is None else op.m.bias.detach().to(torch.float64)
    if pre:
        S = T = None
        for a in pre:  # compose x·s1 + t1 then ·s2 + t2, ... on one example's input shape
            sc, sh = _consts(a, a.out_shape)
            S, T = (sc, sh) if S is None else (S * sc, T * sc + sh)
        assert S is not None and T is not None
        if W.dim() == 2:
            s_in, t_in = torch.from_numpy(S.reshape(-1)), torch.from_numpy(T.reshape(-1))
            shift = W @ t_in
            W = W * s_in.unsqueeze(0)
        else:  # per input channel (checked by _affine_foldable; no shift into zero padding)
            s_in, t_in = torch.from_numpy(_per_channel(S)), torch.from_numpy(_per_channel(T))  # type: ignore[arg-type]
            shift = W.sum((2, 3)) @ t_in
            W = W * s_in.reshape(1, -1, 1, 1)
        b = shift if b is None else b + shift
    for bn in bns:
        if isinstance(bn, ops.Affine):
            sc, sh = _consts(bn, bn.out_shape)
            s_o = torch.from_numpy(_per_channel(sc) if W.dim() > 2 else sc.reshape(-1))  # type: ignore[arg-type]
            t_o = torch.from_numpy(_per_channel(sh) if W.dim() > 2 else sh.reshape(-1))  # type: ignore[arg-type]
            W = W * s_o.reshape(-1, *([1] * (W.dim() - 1)))
            b = t_o if b is None else b * s_o + t_o
            continue
        m = bn.m
        s = torch.rsqrt(m.running_var.detach().to(torch.float64) + m.eps)
        if m.weight is not None:
            s = s * m.weight.detach().to(torch.float64)
        t = -m.running_mean.detach().to(torch.float64) * s
        if m.bias is not None:
            t = t + m.bias.detach().to(torch.float64)
        W = W * s.reshape(-1, *([1] * (W.dim() - 1)))
        b = t if b is None else b * s + t
    return W, b


def supported(bm: Any) -> bool:
    """True when the model is a Linear/Conv2d/ReLU chain the kernels handle (BNs after a
    Linear/Conv folded in; a BN in train mode sends the call to the torch layer)."""
    if bm._compiled_plan is None:
        plan = _plan(bm)
        bm._compiled_plan = plan if plan is not None else False
    if bm._compiled_plan is False:
        return False
    return all(_bn_foldable(bn) for layer in bm._compiled_plan for bn in layer[5]
               if isinstance(bn, ops.BatchNorm)) and _affine_foldable(bm)


def _arrays(bm: Any, dtype: np.dtype, key: Any = None) -> list[tuple[Any, ...]]:
    """The kernel's layer tuples in ``dtype``, rebuilt only when a parameter / buffer changed
    (``key``: :meth:`BoundedModel._param_key`, computed here when not given)."""
    plan = bm._compiled_plan
    # Affine constants may be plain attributes or Python numbers (not parameters or
    # buffers): their values are part of the key
    consts = tuple(c.tobytes() for layer in plan for a in [*layer[5], *layer[6]] if isinstance(a, ops.Affine)
                   for c in _consts(a, a.out_shape))
    key = (np.dtype(dtype).str, bm._param_key() if key is None else key, consts)
    cache = getattr(bm, "_compiled_arrays", None)
    if cache is not None and cache[0] == key:
        return cache[1]  # type: ignore[no-any-return]
    out = []
    for kind, op, n_in, n_out, geo, bns, pre in plan:
        meta = np.zeros(14, dtype=np.int64)
        meta[0], meta[1] = n_in, n_out
        if kind == "relu":
            out.append((_RELU, None, None, meta))
            continue
        if geo is not None:
            meta[2:] = geo
        if bns or pre:
            Wt, bt = _folded(op, bns, pre)
        else:
            Wt, bt = op.m.weight.detach(), (None if op.m.bias is None else op.m.bias.detach())
        W = np.ascontiguousarray(Wt.cpu().numpy(), dtype=dtype)
        b = None if bt is None else np.ascontiguousarray(bt.cpu().numpy(), dtype=dtype)
        out.append((_DENSE if kind == "dense" else _CONV, W, b, meta, _ibp_operands(W, b)))
    bm._compiled_arrays = (key, out)
    return out


def _ibp_operands(W: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """Cached IBP operands of a Linear/Conv2d layer for the kernels (cpp/src/bounds/bounds.h,
    ``Layer::ibp``): (ceil(N/16), K+1, 16) in W's dtype, W viewed as (N, K) (N outputs or
    channels, K the fan-in); panel p row k < K = W^T[k, 16p:16p+16], row K = b[16p:16p+16],
    zero past N. The same array the kernel builds when it gets none."""
    N = W.shape[0]
    Wk = W.reshape(N, -1)
    K = Wk.shape[1]
    P = (N + 15) // 16
    full = np.zeros((P * 16, K + 1), dtype=W.dtype)  # (n, k)
    full[:N, :K] = Wk
    if b is not None:
        full[:N, K] = b
    # (P, 16, K+1) -> (P, K+1, 16)
    return np.ascontiguousarray(full.reshape(P, 16, K + 1).transpose(0, 2, 1))


_NP_DTYPE = {torch.float32: np.dtype(np.float32), torch.float64: np.dtype(np.float64)}

# CROWN on a conv chain whose conv layers do more multiply-adds per example than this runs
# in torch, whose patches pass (certkit.core.bounds.patches, channels-last conv_transpose2d)
# is faster there: CIFAR CNN + BN (7.1 M) 2x faster in torch at B = 1; the digits CNN of
# benchmarks/bounds.py (0.45 M) stays 2-3x faster compiled (docs/bounds.md)
CROWN_CONV_MACS = 2_000_000


def conv_macs(bm: Any) -> int:
    """Multiply-adds of the plan's conv layers for one example (0 without a plan)."""
    plan = bm._compiled_plan
    if not plan:
        return 0
    return sum(g[3] * g[4] * g[5] * g[0] * g[6] * g[7] for kind, _op, _, _, g, *_ in plan if kind == "conv")


def compute(bm: Any, lo: torch.Tensor, hi: torch.Tensor, C: torch.Tensor, method: str, *,
            key: Any = None) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Bounds (B, S) from the kernels, or None when the call is not eligible. ``key``: the
    caller's :meth:`BoundedModel._param_key` of this call, if it has one. The input box and
    C reach the kernel without a copy when they are contiguous in the right dtype (numpy
    views of the torch buffers), and the results come back as views of the kernel's arrays."""
    from certkit.core._ext import core_ext

    if method not in _CODES or not supported(bm):
        return None
    if method == "CROWN" and conv_macs(bm) > CROWN_CONV_MACS:
        return None  # the torch patches pass is faster on conv layers of this size
    dt = _NP_DTYPE.get(lo.dtype, _NP_DTYPE[torch.float64])
    layers = _arrays(bm, dt, key)
    B, n_in = lo.shape[0], bm._compiled_plan[0][2]
    lo_n = np.ascontiguousarray(lo.detach().reshape(B, n_in).numpy(), dtype=dt)
    hi_n = np.ascontiguousarray(hi.detach().reshape(B, n_in).numpy(), dtype=dt)
    C_n = np.ascontiguousarray(C.detach().numpy(), dtype=dt)
    low, up = core_ext.bounds.compute(layers, lo_n, hi_n, C_n, _CODES[method])
    return torch.from_numpy(low), torch.from_numpy(up)
