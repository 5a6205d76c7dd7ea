"""Bounded operators: forward, interval (IBP) and backward linear-relaxation (CROWN) rules.

Conventions (B = batch, S = number of linear specifications):

- a value / bound of a node is a tensor (B, *shape);
- a backward coefficient ``A`` of a node is (B, S, *shape): the bound being built is
  ``sum(A * node_value) + bias`` with bias (B, S);
- ``backward`` always builds a *lower* bound. An upper bound on ``A·f`` is computed as
  ``-lower(-A·f)``, so the caller stacks ``[C, -C]`` and runs one pass.

ReLU relaxation (Zhang et al. 2018, CROWN, arXiv:1811.00866): for pre-activation bounds
l < 0 < u the upper line is ``u/(u-l)·(z-l)`` and the lower line ``α·z`` with the adaptive
choice α = 1 if u > -l else 0 (the same "adaptive" rule as auto_LiRPA); stable neurons are
exact. Max-pool relaxation (derived here, sound by construction): lower ``max ≥ x_j*`` with
j* the window element of largest lower bound; upper ``max ≤ x_j*`` when that element
dominates (l_j* ≥ u_i for every other i), else the constant ``max_i u_i``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from certkit.core.bounds import fused

Tensor = torch.Tensor
Bounds = tuple[Tensor, Tensor]


class UnsupportedLayerError(ValueError):
    """A module or function that bound propagation does not support."""


def unsupported(name: str, what: str, detail: str) -> UnsupportedLayerError:
    """``node 'name' (what): detail`` as an :class:`UnsupportedLayerError`."""
    return UnsupportedLayerError(f"node '{name}' ({what}): {detail}")


class Op:
    """Base class. ``in_shapes`` / ``out_shape`` are per-example shapes set by capture."""

    linear = False  # affine in its (single) input
    nonlinear = False  # a relaxed activation: its pre-activation bounds are worth tightening
    name: str
    in_shapes: list[tuple[int, ...]]
    out_shape: tuple[int, ...]
    prepare_shapes = False

    def __init__(self, name: str) -> None:
        self.name = name

    def forward(self, *xs: Tensor) -> Tensor:
        raise NotImplementedError

    def ibp(self, *bounds: Bounds) -> Bounds:
        raise NotImplementedError

    def backward(self, A: Tensor, in_bounds: list[Bounds], alpha: Tensor | None = None
                 ) -> tuple[list[Tensor], Tensor | None]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


class Input(Op):
    pass


class Identity(Op):
    linear = True

    def forward(self, x: Tensor) -> Tensor:
        return x

    def ibp(self, b: Bounds) -> Bounds:
        return b

    def backward(self, A: Tensor, in_bounds: list[Bounds], alpha: Tensor | None = None
                 ) -> tuple[list[Tensor], Tensor | None]:
        return [A], None


class Flatten(Identity):
    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(1)

    def ibp(self, b: Bounds) -> Bounds:
        return b[0].flatten(1), b[1].flatten(1)

    def backward(self, A: Tensor, in_bounds: list[Bounds], alpha: Tensor | None = None
                 ) -> tuple[list[Tensor], Tensor | None]:
        return [A.reshape(*A.shape[:2], *self.in_shapes[0])], None


class Reshape(Flatten):
    """``x.view(...)`` / ``x.reshape(...)`` / ``x.flatten(start, end)`` that keep the batch
    dimension: the target's first entry is the batch (a ``x.size(0)`` node, given as None)
    with at most one -1 in the rest, or -1 with an explicit per-example shape (LeNet's
    ``x.view(-1, 16*5*5)``), checked to hold exactly one example's elements."""

    def __init__(self, name: str, args: Any) -> None:
        super().__init__(name)
        self.args = args

    def _resolve(self, x: Tensor) -> tuple[int, ...]:
        args = self.args
        if args and args[0] == "flatten":  # flatten(start, end) with 1 <= start <= end
            s, e = args[1] % x.dim(), args[2] % x.dim()
            sh = tuple(x.shape[1:])
            return (*sh[:s - 1], math.prod(sh[s - 1:e]), *sh[e:])
        if len(args) == 1 and isinstance(args[0], (tuple, list)):
            args = args[0]
        shape = [a if isinstance(a, int) else None for a in args]
        per = math.prod(x.shape[1:])
        what = "view/reshape"
        if len(shape) < 1 or any(s is None for s in shape[1:]):
            raise unsupported(self.name, what, "only a static per-example shape after the batch dimension is supported")
        rest = [int(s) for s in shape[1:]]  # type: ignore[arg-type]
        if shape[0] is None or (shape[0] == -1 and -1 not in rest):
            if rest.count(-1) > 1 or any(s < -1 for s in rest):
                raise unsupported(self.name, what, f"invalid shape {tuple(shape)}")
            known = math.prod(s for s in rest if s != -1)
            if -1 in rest:
                if known == 0 or per % known:
                    raise unsupported(self.name, what, f"cannot view one example of {per} elements as {rest}")
                rest[rest.index(-1)] = per // known
            if math.prod(rest) != per:
                raise unsupported(self.name, what, f"the batch dimension must be kept: {tuple(shape)} mixes examples "
                                  f"(one example has {per} elements); use x.view(x.size(0), ...) or x.flatten(1)")
            return tuple(rest)
        raise unsupported(self.name, what, f"the batch dimension must be kept, got a literal batch size {shape[0]} "
                          "(use x.size(0) or -1 with an explicit per-example shape)")

    def forward(self, x: Tensor) -> Tensor:
        if self.prepare_shapes:
            self.target = self._resolve(x)
        return x.reshape(x.shape[0], *self.target)

    def ibp(self, b: Bounds) -> Bounds:
        return self.forward(b[0]), self.forward(b[1])


class Linear(Op):
    linear = True

    def __init__(self, name: str, m: nn.Linear) -> None:
        super().__init__(name)
        self.m = m

    @property
    def weight(self) -> Tensor:
        return self.m.weight

    @property
    def bias(self) -> Tensor | None:
        return self.m.bias

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.m.weight, self.m.bias)

    def ibp(self, b: Bounds) -> Bounds:
        mid, rad = fused.centre_radius(b[0], b[1])
        c = F.linear(mid, self.m.weight, self.m.bias)
        d = F.linear(rad, self.m.weight.abs())
        return c - d, c + d

    def ibp_with_spec(self, b: Bounds, C: Tensor) -> Bounds:
        """IBP of C @ (W x + b) with C merged into W (tighter); C: (B, S, out)."""
        W = torch.matmul(C, self.m.weight)  # (B, S, in)
        mid, rad = fused.centre_radius(b[0], b[1])
        c = torch.einsum("bsi,bi->bs", W, mid)
        if self.m.bias is not None:
            c = c + torch.matmul(C, self.m.bias)
        d = torch.einsum("bsi,bi->bs", W.abs(), rad)
        return c - d, c + d

    def l2_first(self, x: Tensor, eps: float) -> Bounds:
        c = self.forward(x)
        d = eps * self.m.weight.norm(dim=1)
        return c - d, c + d

    def backward(self, A: Tensor, in_bounds: list[Bounds], alpha: Tensor | None = None
                 ) -> tuple[list[Tensor], Tensor | None]:
        bias = torch.matmul(A, self.m.bias) if self.m.bias is not None else None
        return [torch.matmul(A, self.m.weight)], bias


class Conv(Op):
    """nn.Conv1d / nn.Conv2d (zero padding)."""

    linear = True

    def __init__(self, name: str, m: nn.Conv1d | nn.Conv2d) -> None:
        super().__init__(name)
        self.m = m
        self.nd = 1 if isinstance(m, nn.Conv1d) else 2
        self._conv = F.conv1d if self.nd == 1 else F.conv2d
        self._convT = F.conv_transpose1d if self.nd == 1 else F.conv_transpose2d

    def _kw(self) -> dict[str, Any]:
        m = self.m
        return dict(stride=m.stride, padding=m.padding, dilation=m.dilation, groups=m.groups)

    def forward(self, x: Tensor) -> Tensor:
        return self._conv(x, self.m.weight, self.m.bias, **self._kw())

    def ibp(self, b: Bounds) -> Bounds:
        mid, rad = fused.centre_radius(b[0], b[1])
        c = self._conv(mid, self.m.weight, self.m.bias, **self._kw())
        d = self._conv(rad, self.m.weight.abs(), None, **self._kw())
        return c - d, c + d

    def l2_first(self, x: Tensor, eps: float) -> Bounds:
        c = self.forward(x)
        d = eps * self._conv(torch.ones_like(x), self.m.weight ** 2, None, **self._kw()).clamp_min(0).sqrt()
        return c - d, c + d

    def backward(self, A: Tensor, in_bounds: list[Bounds], alpha: Tensor | None = None
                 ) -> tuple[list[Tensor], Tensor | None]:
        B, S = A.shape[:2]
        m = self.m
        out_sp = self.out_shape[1:]
        in_sp = self.in_shapes[0][1:]
        op = []
        for i in range(self.nd):
            full = (out_sp[i] - 1) * m.stride[i] - 2 * m.padding[i] + m.dilation[i] * (m.kernel_size[i] - 1) + 1
            op.append(in_sp[i] - full)
        a = A.reshape(B * S, *self.out_shape)
        if self.nd == 2:  # channels last: the transposed convolution is 2-2.5× faster on one thread
            a = a.contiguous(memory_format=torch.channels_last)  # (a no-op when A already is)
        Ain = self._convT(a, m.weight, None, stride=m.stride, padding=m.padding, output_padding=tuple(op),
                          groups=m.groups, dilation=m.dilation)
        bias = None
        if m.bias is not None:
            bias = torch.matmul(A.reshape(B, S, self.out_shape[0], -1).sum(-1), m.bias)
        return [Ain.reshape(B, S, *self.in_shapes[0])], bias


class BatchNorm(Op):
    """Per-channel affine. Eval: running statistics. Train: statistics of the clean batch
    seen by the last ``forward`` (run by ``compute_bounds`` before bounding), as in
    certified training with BN (Shi et al. 2021). Running statistics are not updated."""

    linear = True

    def __init__(self, name: str, m: nn.BatchNorm1d | nn.BatchNorm2d) -> None:
        super().__init__(name)
        self.m = m
        self._scale: Tensor | None = None
        self._shift: Tensor | None = None

    def _affine(self, x: Tensor | None) -> tuple[Tensor, Tensor]:
        m = self.m
        # (as torch: in eval mode the running statistics whenever they exist, even with
        # track_running_stats switched off after construction; red team s6)
        if m.training or (m.running_mean is None and m.running_var is None):
            if x is None:
                if self._scale is None or self._shift is None:
                    raise RuntimeError(f"BatchNorm '{self.name}': train mode needs a clean forward first")
                return self._scale, self._shift
            dims = [0, *range(2, x.dim())]
            mean = x.mean(dims)
            var = x.var(dims, unbiased=False)
        else:
            mean, var = m.running_mean, m.running_var
        scale = torch.rsqrt(var + m.eps)
        if m.weight is not None:
            scale = scale * m.weight
        shift = -mean * scale
        if m.bias is not None:
            shift = shift + m.bias
        self._scale, self._shift = scale, shift
        return scale, shift

    def _view(self, t: Tensor, ndim: int) -> Tensor:
        return t.reshape(t.shape[0], *([1] * (ndim - 1)))

    def forward(self, x: Tensor) -> Tensor:
        s, b = self._affine(x)
        return x * self._view(s, x.dim() - 1) + self._view(b, x.dim() - 1)

    def ibp(self, bd: Bounds) -> Bounds:
        s, b = self._affine(None)
        nd = bd[0].dim() - 1
        s, b = self._view(s, nd), self._view(b, nd)
        mid, rad = fused.centre_radius(bd[0], bd[1])
        c = mid * s + b
        d = rad * s.abs()
        return c - d, c + d

    def backward(self, A: Tensor, in_bounds: list[Bounds], alpha: Tensor | None = None
                 ) -> tuple[list[Tensor], Tensor | None]:
        s, b = self._affine(None)
        nd = A.dim() - 2
        sv = self._view(s, nd)
        # per-channel sums times the shift: no product temporary, and no copy of a
        # channels-last A (the conv rule's layout)
        red = A.sum(tuple(range(3, A.dim()))) if A.dim() > 3 else A
        bias = red @ b.to(A.dtype)
        return [A * sv], bias


class AvgPool2d(Conv):
    """Average pooling as a depthwise convolution with constant weights."""

    def __init__(self, name: str, channels: int, k: tuple[int, int], stride: tuple[int, int],
                 padding: tuple[int, int], dtype: torch.dtype = torch.float32) -> None:
        # (built in the bounds' dtype: a float32 1/9 cast to float64 is off by 5e-8, unsound there)
        conv = nn.Conv2d(channels, channels, k, stride=stride, padding=padding, groups=channels, bias=False,
                         dtype=dtype)
        with torch.no_grad():
            conv.weight.fill_(1.0 / (k[0] * k[1]))
        conv.requires_grad_(False)
        Op.__init__(self, name)
        self.m = conv
        self.nd = 2
        self._conv, self._convT = F.conv2d, F.conv_transpose2d

    @staticmethod
    def from_module(name: str, m: nn.AvgPool2d) -> _LazyAvgPool:
        def pair(v: Any) -> tuple[int, int]:
            return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))
        k = pair(m.kernel_size)
        st = pair(m.stride if m.stride is not None else m.kernel_size)
        pad = pair(m.padding)
        if m.ceil_mode:
            raise ValueError(f"module '{name}' (AvgPool2d): ceil_mode=True is not supported")
        if (pad[0] or pad[1]) and not m.count_include_pad:
            raise ValueError(f"module '{name}' (AvgPool2d): padding with count_include_pad=False is not supported")
        if m.divisor_override is not None:
            raise ValueError(f"module '{name}' (AvgPool2d): divisor_override is not supported")
        return _LazyAvgPool(name, k, st, pad)


class _LazyAvgPool(Op):
    """AvgPool2d whose channel count is known at the first forward."""

    linear = True

    def __init__(self, name: str, k: tuple[int, int], st: tuple[int, int], pad: tuple[int, int]) -> None:
        super().__init__(name)
        self.k, self.st, self.pad = k, st, pad
        self.impl: AvgPool2d | None = None

    def _get(self, x: Tensor) -> AvgPool2d:
        w = None if self.impl is None else self.impl.m.weight
        if w is None or w.shape[0] != x.shape[1] or w.dtype != x.dtype:
            self.impl = AvgPool2d(self.name, int(x.shape[1]), self.k, self.st, self.pad, x.dtype)
            self.impl.m.to(device=x.device)
        return self.impl

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, self.k, self.st, self.pad)

    def ibp(self, b: Bounds) -> Bounds:
        return F.avg_pool2d(b[0], self.k, self.st, self.pad), F.avg_pool2d(b[1], self.k, self.st, self.pad)

    def backward(self, A: Tensor, in_bounds: list[Bounds], alpha: Tensor | None = None
                 ) -> tuple[list[Tensor], Tensor | None]:
        impl = self._get(in_bounds[0][0])
        impl.in_shapes, impl.out_shape = self.in_shapes, self.out_shape
        if impl.m.weight.dtype != A.dtype:
            impl = AvgPool2d(self.name, impl.m.weight.shape[0], self.k, self.st, self.pad, A.dtype)
            impl.in_shapes, impl.out_shape = self.in_shapes, self.out_shape
        impl.m.to(device=A.device)
        return impl.backward(A, in_bounds)


class GlobalAvgPool2d(Op):
    linear = True

    def forward(self, x: Tensor) -> Tensor:
        return x.mean((2, 3), keepdim=True)

    def ibp(self, b: Bounds) -> Bounds:
        return self.forward(b[0]), self.forward(b[1])

    def backward(self, A: Tensor, in_bounds: list[Bounds], alpha: Tensor | None = None
                 ) -> tuple[list[Tensor], Tensor | None]:
        h, w = self.in_shapes[0][1:]
        return [(A / (h * w)).expand(*A.shape[:3], h, w)], None


class Add(Op):
    """``ca·a + cb·b`` of two tensors of the same shape (residual sums; ``torch.add(a, b,
    alpha=k)`` is cb = k, ``sub`` cb = -alpha, ``rsub(a, b, alpha)`` = b - alpha·a)."""

    linear = False  # two inputs: handled specially

    def __init__(self, name: str, ca: float = 1.0, cb: float = 1.0) -> None:
        super().__init__(name)
        self.ca, self.cb = float(ca), float(cb)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        if self.ca == 1.0 and self.cb == 1.0:
            return a + b
        return a * self.ca + b * self.cb

    @staticmethod
    def _scaled(b: Bounds, c: float) -> Bounds:
        if c == 1.0:
            return b
        return (b[0] * c, b[1] * c) if c >= 0 else (b[1] * c, b[0] * c)

    def ibp(self, a: Bounds, b: Bounds) -> Bounds:
        sa, sb = self._scaled(a, self.ca), self._scaled(b, self.cb)
        return sa[0] + sb[0], sa[1] + sb[1]

    def backward(self, A: Tensor, in_bounds: list[Bounds], alpha: Tensor | None = None
                 ) -> tuple[list[Tensor], Tensor | None]:
        return [A if self.ca == 1.0 else A * self.ca, A if self.cb == 1.0 else A * self.cb], None


def per_example(t: Tensor, nd: int) -> Tensor:
    """A constant broadcast against (B, *shape) (``nd = len(shape)``) as a rank-``nd``
    tensor that broadcasts against ``shape`` (leading size-1 dimensions dropped)."""
    while t.dim() > nd:
        t = t.squeeze(0)
    return t.reshape((1,) * (nd - t.dim()) + tuple(t.shape))


class Affine(Op):
    """``x·s + t`` with constants s, t (tensors broadcasting against one example, or
    scalars) read through getters at every call, so buffers stay live: input
    normalisation (``(x - mean) / std``), ``x * c``, ``c - x``, ``-x``."""

    linear = True

    def __init__(self, name: str, scale: Any = None, shift: Any = None) -> None:
        super().__init__(name)
        self._s, self._t = scale, shift

    def _get(self, nd: int, dtype: torch.dtype, device: torch.device) -> tuple[Tensor | None, Tensor | None]:
        out = []
        for g in (self._s, self._t):
            v = g() if callable(g) else g
            if v is None:
                out.append(None)
                continue
            v = torch.as_tensor(v, dtype=dtype, device=device)
            if not bool(torch.isfinite(v).all()):
                raise ValueError(f"model: constant of '{self.name}' contains NaN or inf")
            out.append(per_example(v, nd))
        return out[0], out[1]

    def forward(self, x: Tensor) -> Tensor:
        s, t = self._get(x.dim() - 1, x.dtype, x.device)
        y = x * s if s is not None else x
        return y + t if t is not None else y

    def ibp(self, b: Bounds) -> Bounds:
        s, t = self._get(b[0].dim() - 1, b[0].dtype, b[0].device)
        if s is None:
            lo, hi = b
        else:
            mid, rad = fused.centre_radius(b[0], b[1])
            c, d = mid * s, rad * s.abs()
            lo, hi = c - d, c + d
        return (lo + t, hi + t) if t is not None else (lo, hi)

    def backward(self, A: Tensor, in_bounds: list[Bounds], alpha: Tensor | None = None
                 ) -> tuple[list[Tensor], Tensor | None]:
        s, t = self._get(A.dim() - 2, A.dtype, A.device)
        bias = None if t is None else (A * t).sum(tuple(range(2, A.dim())))  # (no copy of a channels-last A)
        return [A * s if s is not None else A], bias


class Pad(Op):
    """``F.pad(x, pad, mode='constant', value=v)`` (negative pads crop)."""

    linear = True

    def __init__(self, name: str, pad: tuple[int, ...], value: float = 0.0) -> None:
        super().__init__(name)
        self.pad, self.value = tuple(int(p) for p in pad), float(value)

    def forward(self, x: Tensor) -> Tensor:
        return F.pad(x, self.pad, value=self.value)

    def ibp(self, b: Bounds) -> Bounds:
        return self.forward(b[0]), self.forward(b[1])

    def backward(self, A: Tensor, in_bounds: list[Bounds], alpha: Tensor | None = None
                 ) -> tuple[list[Tensor], Tensor | None]:
        Ain = F.pad(A, tuple(-p for p in self.pad))
        bias = None
        if self.value != 0.0:
            B, S = A.shape[:2]
            bias = self.value * (A.reshape(B, S, -1).sum(-1) - Ain.reshape(B, S, -1).sum(-1))
        return [Ain], bias


class Permute(Op):
    """``x.permute(0, *perm)`` / ``x.transpose(i, j)`` with the batch dimension kept first;
    ``perm`` indexes the per-example dimensions."""

    linear = True

    def __init__(self, name: str, perm: tuple[int, ...]) -> None:
        super().__init__(name)
        self.perm = tuple(perm)
        self.inv = tuple(sorted(range(len(perm)), key=lambda i: perm[i]))

    def forward(self, x: Tensor) -> Tensor:
        return x.permute(0, *(p + 1 for p in self.perm))

    def ibp(self, b: Bounds) -> Bounds:
        return self.forward(b[0]), self.forward(b[1])

    def backward(self, A: Tensor, in_bounds: list[Bounds], alpha: Tensor | None = None
                 ) -> tuple[list[Tensor], Tensor | None]:
        return [A.permute(0, 1, *(p + 2 for p in self.inv))], None


class Cat(Op):
    """``torch.cat(xs, dim)`` along a per-example dimension ``dim`` (>= 1 in (B, ...))."""

    def __init__(self, name: str, dim: int) -> None:
        super().__init__(name)
        self.dim = dim

    def forward(self, *xs: Tensor) -> Tensor:
        return torch.cat(xs, self.dim)

    def ibp(self, *bs: Bounds) -> Bounds:
        return torch.cat([b[0] for b in bs], self.dim), torch.cat([b[1] for b in bs], self.dim)

    def backward(self, A: Tensor, in_bounds: list[Bounds], alpha: Tensor | None = None
                 ) -> tuple[list[Tensor], Tensor | None]:
        sizes = [s[self.dim - 1] for s in self.in_shapes]
        return list(torch.split(A, sizes, dim=self.dim + 1)), None


class Mean(Op):
    """``x.mean(dims, keepdim)`` over per-example dimensions (``dims`` >= 1 in (B, ...))."""

    linear = True

    def __init__(self, name: str, dims: tuple[int, ...], keepdim: bool) -> None:
        super().__init__(name)
        self.dims, self.keepdim = tuple(sorted(dims)), bool(keepdim)

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(self.dims, keepdim=self.keepdim)

    def ibp(self, b: Bounds) -> Bounds:
        return self.forward(b[0]), self.forward(b[1])

    def backward(self, A: Tensor, in_bounds: list[Bounds], alpha: Tensor | None = None
                 ) -> tuple[list[Tensor], Tensor | None]:
        ins = self.in_shapes[0]
        n = math.prod(ins[d - 1] for d in self.dims)
        if not self.keepdim:
            for d in self.dims:
                A = A.unsqueeze(d + 1)
        return [(A / n).expand(*A.shape[:2], *ins)], None


class MatMulConst(Op):
    """``x @ W`` (``side='right'``) or ``W @ x`` (``'left'``) with a constant 2-D ``W``
    read through a getter at every call; x is (B, ..., n) resp. (B, ..., n, k)."""

    linear = True

    def __init__(self, name: str, weight: Any, side: str) -> None:
        super().__init__(name)
        self._w, self.side = weight, side

    def _W(self, like: Tensor) -> Tensor:
        W = self._w() if callable(self._w) else self._w
        W = torch.as_tensor(W, dtype=like.dtype, device=like.device)
        if not bool(torch.isfinite(W).all()):
            raise ValueError(f"model: constant of '{self.name}' contains NaN or inf")
        return W

    def _mm(self, x: Tensor, W: Tensor) -> Tensor:
        return torch.matmul(x, W) if self.side == "right" else torch.matmul(W, x)

    def forward(self, x: Tensor) -> Tensor:
        return self._mm(x, self._W(x))

    def ibp(self, b: Bounds) -> Bounds:
        W = self._W(b[0])
        mid, rad = fused.centre_radius(b[0], b[1])
        c, d = self._mm(mid, W), self._mm(rad, W.abs())
        return c - d, c + d

    def backward(self, A: Tensor, in_bounds: list[Bounds], alpha: Tensor | None = None
                 ) -> tuple[list[Tensor], Tensor | None]:
        W = self._W(A)
        return [torch.matmul(A, W.t()) if self.side == "right" else torch.matmul(W.t(), A)], None


class AdaptiveAvgPool2d(Op):
    """``F.adaptive_avg_pool2d(x, (Ho, Wo))`` for any output size: a fixed averaging matrix
    P (Ho·Wo, H·W) per channel, built once from the shapes (backward: ``A @ P``)."""

    linear = True

    def __init__(self, name: str, output_size: Any) -> None:
        super().__init__(name)
        self.size = output_size
        self._P: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(x, self.size)

    def ibp(self, b: Bounds) -> Bounds:
        return self.forward(b[0]), self.forward(b[1])

    def backward(self, A: Tensor, in_bounds: list[Bounds], alpha: Tensor | None = None
                 ) -> tuple[list[Tensor], Tensor | None]:
        C, H, W = self.in_shapes[0]
        Ho, Wo = self.out_shape[1:]
        if self._P is None or self._P.dtype != A.dtype or self._P.device != A.device:
            eye = torch.eye(H * W, dtype=A.dtype, device=A.device).reshape(H * W, 1, H, W)
            self._P = F.adaptive_avg_pool2d(eye, self.size).reshape(H * W, Ho * Wo).t().contiguous()
        B, S = A.shape[:2]
        return [(A.reshape(B, S, C, Ho * Wo) @ self._P).reshape(B, S, C, H, W)], None


def relu_relaxation(l: Tensor, u: Tensor) -> tuple[Tensor, Tensor, Tensor]:  # noqa: E741
    """CROWN ReLU relaxation. Returns (upper slope, upper intercept, adaptive lower slope),
    each shaped like ``l``. Stable neurons get exact lines."""
    lr = l.clamp(max=0)
    ur = u.clamp(min=0)
    ur = torch.max(ur, lr + 1e-8)
    ud = ur / (ur - lr)
    ub = -lr * ud
    ld = (ud > 0.5).to(ud.dtype)
    return ud, ub, ld


class ReLU(Op):
    nonlinear = True

    def unstable(self, l: Tensor, u: Tensor) -> Tensor:  # noqa: E741
        return (l < 0) & (u > 0)

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(x)

    def ibp(self, b: Bounds) -> Bounds:
        return b[0].clamp_min(0), b[1].clamp_min(0)

    def backward(self, A: Tensor, in_bounds: list[Bounds], alpha: Tensor | None = None
                 ) -> tuple[list[Tensor], Tensor | None]:
        l, u = in_bounds[0]  # noqa: E741
        if alpha is None and A.shape[0] == l.shape[0] and fused.usable(A):
            Ain, bias = fused.relu_dense(A, l, u)  # (the same rule in one compiled pass)
            return [Ain], bias
        ud, ub, ld = relu_relaxation(l, u)
        ud, ub = ud.unsqueeze(1), ub.unsqueeze(1)
        if alpha is not None:
            # alpha: (B, S, *shape) in [0, 1], used only where the neuron is unstable
            unstable = ((l < 0) & (u > 0)).unsqueeze(1)
            ld = torch.where(unstable, alpha, ld.unsqueeze(1))
        else:
            ld = ld.unsqueeze(1)
        if not torch.is_grad_enabled() and A.shape[0] == ub.shape[0]:
            # inference: two live temporaries instead of five (the intermediate-bound rows
            # make A the largest tensor of a conv net's CROWN pass), bias as a batched GEMV
            An = A.clamp(max=0)
            B, S = A.shape[:2]
            if A.dim() == 5 and not A.is_contiguous() and A.permute(0, 1, 3, 4, 2).is_contiguous():
                # channels last (the conv rule's layout): flatten both in that order (no copy of A)
                bias = torch.bmm(An.permute(0, 1, 3, 4, 2).reshape(B, S, -1),
                                 ub.permute(0, 1, 3, 4, 2).reshape(B, -1, 1)).squeeze(-1)
            else:
                bias = torch.bmm(An.reshape(B, S, -1), ub.reshape(B, -1, 1)).squeeze(-1)
            return [A.clamp(min=0).mul_(ld).addcmul_(An, ud)], bias
        Ap, An = A.clamp(min=0), A.clamp(max=0)
        Ain = Ap * ld + An * ud
        bias = (An * ub).reshape(*A.shape[:2], -1).sum(-1)
        return [Ain], bias


class _MaxWindows(Op):
    """max over windows of the flattened input: out[o] = max_k in_flat[index[o, k]]."""

    index: Tensor  # (n_out, K) long, built at the first forward
    nonlinear = True

    def unstable(self, l: Tensor, u: Tensor) -> Tensor:  # noqa: E741
        return (l < 0) & (u > 0)  # the policy used for pooled pre-activations (as ReLU's)

    def _windows(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _gather(self, x: Tensor) -> Tensor:
        flat = x.reshape(x.shape[0], -1)
        idx = self._windows(x).to(x.device)
        return flat[:, idx]  # (B, n_out, K)

    def _shape_out(self, y: Tensor, x: Tensor) -> Tensor:
        return y.reshape(x.shape[0], *self.out_shape)

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(x)

    def pool(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def ibp(self, b: Bounds) -> Bounds:
        return self.pool(b[0]), self.pool(b[1])

    def relaxation(self, l: Tensor, u: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # noqa: E741
        """(index (n_out, K) of each window's inputs, j* (B, n_out) the window element of
        largest lower bound, whether it dominates (B, n_out), the largest upper bound
        (B, n_out)): the relaxation of the class docstring."""
        B = l.shape[0]
        idx = self._windows(l).to(l.device)  # (n_out, K)
        gl = l.reshape(B, -1)[:, idx]  # (B, n_out, K)
        gu = u.reshape(B, -1)[:, idx]
        jstar = gl.argmax(-1)  # (B, n_out)
        lstar = gl.gather(-1, jstar.unsqueeze(-1)).squeeze(-1)
        gu_others = gu.scatter(-1, jstar.unsqueeze(-1), float("-inf"))
        dominates = lstar >= gu_others.max(-1).values  # (B, n_out)
        return idx, jstar, dominates, gu.max(-1).values

    def backward(self, A: Tensor, in_bounds: list[Bounds], alpha: Tensor | None = None
                 ) -> tuple[list[Tensor], Tensor | None]:
        l, u = in_bounds[0]  # noqa: E741
        B, S = A.shape[:2]
        idx, jstar, dominates, umax = self.relaxation(l, u)
        src = idx.unsqueeze(0).expand(B, -1, -1).gather(-1, jstar.unsqueeze(-1)).squeeze(-1)  # (B, n_out)
        a = A.reshape(B, S, -1)
        Ap, An = a.clamp(min=0), a.clamp(max=0)
        coef = Ap + An * dominates.unsqueeze(1).to(a.dtype)
        bias = (An * (~dominates).unsqueeze(1).to(a.dtype) * umax.unsqueeze(1)).sum(-1)
        n_in = math.prod(self.in_shapes[0])
        Ain = torch.zeros(B, S, n_in, dtype=A.dtype, device=A.device)
        Ain.scatter_add_(2, src.unsqueeze(1).expand(B, S, -1), coef)
        return [Ain.reshape(B, S, *self.in_shapes[0])], bias


class MaxPool2d(_MaxWindows):
    def __init__(self, name: str, k: tuple[int, int], st: tuple[int, int]) -> None:
        super().__init__(name)
        self.k, self.st = k, st
        self._idx: Tensor | None = None

    @staticmethod
    def from_module(name: str, m: nn.MaxPool2d) -> MaxPool2d:
        def pair(v: Any) -> tuple[int, int]:
            return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))
        if pair(m.padding) != (0, 0) or pair(m.dilation) != (1, 1) or m.ceil_mode or m.return_indices:
            raise ValueError(f"module '{name}' (MaxPool2d): only padding=0, dilation=1, ceil_mode=False is supported")
        return MaxPool2d(name, pair(m.kernel_size), pair(m.stride if m.stride is not None else m.kernel_size))

    def pool(self, x: Tensor) -> Tensor:
        return F.max_pool2d(x, self.k, self.st)

    def _windows(self, x: Tensor) -> Tensor:
        C, H, W = x.shape[1:]
        if self._idx is None or self._idx_shape != (C, H, W):
            ar = torch.arange(C * H * W, dtype=torch.float64).reshape(1, C, H, W)
            cols = F.unfold(ar, self.k, stride=self.st)  # (1, C*k*k, L)
            K = self.k[0] * self.k[1]
            L = cols.shape[-1]
            self._idx = cols.reshape(C, K, L).permute(0, 2, 1).reshape(C * L, K).round().long()
            self._idx_shape = (C, H, W)
        return self._idx


class GlobalMax(_MaxWindows):
    """max over one non-batch dimension (PointNet's global max-pool)."""

    def __init__(self, name: str, dim: int, keepdim: bool) -> None:
        super().__init__(name)
        self.dim, self.keepdim = dim, keepdim
        self._idx: Tensor | None = None

    def pool(self, x: Tensor) -> Tensor:
        if self.dim % x.dim() == 0:
            raise ValueError(f"function '{self.name}' (max): the max over the batch dimension is not supported")
        return x.amax(self.dim, keepdim=self.keepdim)

    def _windows(self, x: Tensor) -> Tensor:
        shape = tuple(x.shape[1:])
        if self._idx is None or self._idx_shape != shape:
            d = self.dim % x.dim() - 1
            ar = torch.arange(math.prod(shape)).reshape(shape)
            self._idx = ar.movedim(d, -1).reshape(-1, shape[d])
            self._idx_shape = shape
        return self._idx
