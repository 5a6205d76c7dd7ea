"""Structured ("patches") CROWN backward pass for the intermediate bounds of convolutional
layers (the representation of auto_LiRPA's ``conv_mode="patches"``; Xu et al. 2020,
"Automatic perturbation analysis for scalable certified robustness and beyond",
arXiv:2002.12920, Appendix: convolution).

A CROWN bound on one neuron (c, h, w) of a conv-like start node (per-example shape
(C, H, W)) is a linear function of every earlier node whose coefficients are non-zero only
inside a small spatial window: through a k×k convolution with stride s and padding p the
window of the node before has size ``(K - 1)·s + k`` and sits at ``h·S - P`` with the
cumulative stride ``S·s`` and offset ``P·s + p``. :class:`Patches` stores, for the k start
rows, only that window:

- ``P``: (Bp, k, Kh, Kw, C_j), channels last (the layout of ``conv_transpose2d``'s fast
  path for many small images; the window gathers copy whole windows), Bp = B or 1 (a
  batch-independent patch broadcasts);
- ``stride`` (Sh, Sw) and ``pad`` (Ph, Pw): row r (start position (hr, wr)) covers node
  rows ``hr·Sh - Ph + [0, Kh)`` and columns ``wr·Sw - Pw + [0, Kw)``.

The dense coefficient (B, k, C_j, H_j, W_j) of row r is the patch placed at that offset;
entries that fall outside [0, H_j) × [0, W_j) (over the zero padding of a convolution)
stand for nothing. Invariant: they are zero. Every rule that creates them (the conv rule)
masks them, so the per-channel biases (BatchNorm, conv bias) and the ReLU relaxation
gathered at those entries contribute nothing; the test suite plants a wrong mask and sees
the bounds change.

Rules (each equal in real arithmetic to the dense rule of :mod:`certkit.core.bounds.ops`):
Conv2d (dilation 1, any groups: ``conv_transpose2d`` of the patch with the weight, no
padding), AvgPool2d (as its depthwise conv), BatchNorm / per-channel or per-element Affine,
ReLU (the CROWN relaxation's slopes and intercepts gathered at each row's window), a
non-overlapping MaxPool2d (each window's coefficient moved to its selected element),
``Add`` (two patches aligned by their offsets), Identity; at the input the bound is
concretised on the windows of the box's centre and radius (ℓ∞) or of x with the patch's
ℓ2 norm. Any other op, or a patch whose window is no smaller than the node itself (then
the dense row is cheaper), converts to the dense (B, k, C, H, W) coefficient and the rest
of the pass is the dense one.

Guarantee: the bounds equal the dense CROWN pass up to float rounding (the same
relaxations are composed in a different order); tests compare both within 1e-5 and check
sampled points against them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F

from certkit.core.bounds import fused, ops
from certkit.core.bounds.alpha_sets import SparseAlpha, dense_alpha

Tensor = torch.Tensor

__all__ = ["Patches", "RowAlpha", "alpha_slopes", "chunk_rows", "crown_rows", "supported_start", "to_dense", "windows"]


@dataclass
class Patches:
    """Coefficients of k start rows over one (C, H, W) node, stored as local windows.

    ``P`` (Bp, k, Kh, Kw, C); or, right at the start, ``P = None`` and ``eye = (ch, coef)``:
    the row is ``coef`` (Bp, k) times the unit vector of channel ``ch`` (k,) at the row's
    own position (a 1×1 window), which the first BatchNorm / Conv rule uses directly."""

    P: Tensor | None
    stride: tuple[int, int]
    pad: tuple[int, int]
    hr: Tensor  # (k,) start-row positions
    wr: Tensor
    eye: tuple[Tensor, Tensor] | None = None
    dirty: tuple[int, int] | None = None  # (H, W) of the node when entries over its padding may be non-zero
    br: Tensor | None = None  # (k,) the example of each row (P then has Bp = 1), or every example
    cache: dict[Any, Tensor] = field(default_factory=dict, repr=False, compare=False)  # window indices

    @property
    def kernel(self) -> tuple[int, int]:
        if self.P is None:
            return 1, 1
        return int(self.P.shape[2]), int(self.P.shape[3])

    def dense_patch(self, channels: int) -> Tensor:
        """P itself (materialising the start's unit rows when needed)."""
        if self.P is not None:
            return self.P
        assert self.eye is not None
        ch, coef = self.eye
        k = ch.numel()
        P = torch.zeros(coef.shape[0], k, 1, 1, channels, dtype=coef.dtype, device=coef.device)
        P[:, torch.arange(k, device=ch.device), 0, 0, ch] = coef
        return P

    def like(self, P: Tensor, stride: tuple[int, int] | None = None, pad: tuple[int, int] | None = None,
             dirty: tuple[int, int] | None = None) -> Patches:
        return replace(self, P=P, stride=stride or self.stride, pad=pad or self.pad, eye=None, dirty=dirty)

    def with_eye(self, ch: Tensor, coef: Tensor) -> Patches:
        return replace(self, P=None, eye=(ch, coef), dirty=None)

    def clean(self) -> Patches:
        """The same coefficients with the entries over the node's padding zeroed."""
        return self if self.dirty is None else mask_padding(self, self.dirty)


def windows(t: Tensor, p: Patches, kernel: tuple[int, int], rows: Tensor | None = None,
            tag: Any = None) -> Tensor:
    """Each start row's window of a node-shaped tensor t (Bt, C, H, W), zero outside the
    node: (Bt, k, Kh, Kw, C); with per-row examples (``p.br``) and Bt > 1, row r's window
    of example br[r]: (1, k, Kh, Kw, C). ``rows`` (k,): read row r's window from
    ``t[rows[r]]`` instead of ``t[br[r]]`` (per-row tensors such as α-CROWN's slopes, one
    (C, H, W) map per start row; ``tag`` names that index in the cache). With more window
    positions than rows: one gather of C-long rows of the zero-padded, channels-last t (no
    unfolded copy of the whole batch), its index cached per geometry for the call (the ReLU
    rule reads three tensors through the same windows); else one unfolded copy and
    whole-window copies."""
    Kh, Kw = kernel
    (Sh, Sw), (Ph, Pw) = p.stride, p.pad
    Bt, C, H, W = t.shape
    bot = max(0, int(p.hr.max()) * Sh + Kh - Ph - H) if p.hr.numel() else 0
    right = max(0, int(p.wr.max()) * Sw + Kw - Pw - W) if p.wr.numel() else 0
    Hp, Wp = H + Ph + bot, W + Pw + right
    sel = p.br if rows is None else rows
    per_row = sel is not None and Bt > 1
    k = p.hr.numel()
    nh, nw = (Hp - Kh) // Sh + 1, (Wp - Kw) // Sw + 1
    if Bt * nh * nw <= k:  # few positions, many rows: unfold once, then copy whole windows
        tp = F.pad(t, (Pw, right, Ph, bot))
        u = tp.unfold(2, Kh, Sh).unfold(3, Kw, Sw).permute(0, 2, 3, 4, 5, 1)  # (Bt, nh, nw, Kh, Kw, C)
        pos = p.hr * nw + p.wr
        if per_row:
            u = u.reshape(Bt * nh * nw, Kh * Kw * C)
            return u.index_select(0, sel * (nh * nw) + pos).view(1, k, Kh, Kw, C)  # type: ignore[operator]
        return u.reshape(Bt, nh * nw, Kh * Kw * C).index_select(1, pos).view(Bt, k, Kh, Kw, C)
    key = (kernel, p.stride, p.pad, Hp, Wp, per_row, None if rows is None else ("rows", tag))
    idx = p.cache.get(key)
    if idx is None:
        base = p.hr * (Sh * Wp) + p.wr * Sw
        if per_row:
            base = base + sel * (Hp * Wp)  # type: ignore[operator]
        off = (torch.arange(Kh, device=t.device) * Wp).view(Kh, 1) + torch.arange(Kw, device=t.device).view(1, Kw)
        idx = (base.view(-1, 1) + off.view(1, -1)).reshape(-1)
        p.cache[key] = idx
    tp = F.pad(t, (Pw, right, Ph, bot)).permute(0, 2, 3, 1).contiguous()  # (Bt, Hp, Wp, C)
    if per_row or Bt == 1:
        return tp.view(-1, C).index_select(0, idx).view(1, k, Kh, Kw, C)
    return tp.view(Bt, -1, C).index_select(1, idx).view(Bt, k, Kh, Kw, C)


def _mask(p: Patches, kernel: tuple[int, int], hw: tuple[int, int], like: Tensor) -> Tensor:
    """(1, k, Kh, Kw, 1): 1 where the window entry lies inside the (H, W) node."""
    ones = torch.ones(1, 1, *hw, dtype=like.dtype, device=like.device)
    return windows(ones, p, kernel)


def mask_padding(p: Patches, hw: tuple[int, int]) -> Patches:
    """Zero the entries of p.P that lie over the padding of an (H, W) node. The conv rule
    leaves them (``dirty``); a ReLU's windows (zero outside the node) and the ℓ∞ input
    windows ignore them, and every rule that would sum or spread them (a bias or BN
    shift, the next conv, the ℓ2 norm) cleans first. A module-level function so a test
    can plant a wrong one."""
    assert p.P is not None
    Kh, Kw = p.kernel
    (Sh, Sw), (Ph, Pw) = p.stride, p.pad
    H, W = hw
    # nothing to mask when every window lies inside the node
    if (Ph == 0 and Pw == 0 and int(p.hr.max()) * Sh + Kh <= H and int(p.wr.max()) * Sw + Kw <= W):
        return p
    return p.like(p.P * _mask(p, (Kh, Kw), hw, p.P))  # (a new, clean Patches)


def to_dense(p: Patches, shape: tuple[int, ...]) -> Tensor:
    """The dense coefficient (Bp, k, C, H, W) of p over a node of per-example ``shape``."""
    C, H, W = shape
    P = p.dense_patch(C)
    Bp, k = P.shape[:2]
    Kh, Kw = p.kernel
    (Sh, Sw), (Ph, Pw) = p.stride, p.pad
    # each dense entry (r, h, w) is its row's window entry (h - hr·Sh + Ph, w - wr·Sw + Pw),
    # zero where that lies outside the window: one gather of C-long rows (no canvas over
    # the windows' whole extent), then the outside entries zeroed
    dev = P.device
    y = torch.arange(H, device=dev).view(1, H) - (p.hr * Sh - Ph).view(k, 1)  # (k, H) window row
    x = torch.arange(W, device=dev).view(1, W) - (p.wr * Sw - Pw).view(k, 1)
    inside = ((y >= 0) & (y < Kh)).view(k, H, 1) & ((x >= 0) & (x < Kw)).view(k, 1, W)
    src = (torch.arange(k, device=dev).view(k, 1, 1) * Kh + y.view(k, H, 1)) * Kw + x.view(k, 1, W)
    src = torch.where(inside, src, 0).view(1, -1) + (torch.arange(Bp, device=dev) * (k * Kh * Kw)).view(Bp, 1)
    out = P.reshape(-1, C).index_select(0, src.view(-1)).view(Bp, k, H, W, C)
    out.masked_fill_(~inside.view(1, k, H, W, 1), 0.0)
    # a channels-last view: the dense conv rule's fast layout (no channels-first copy)
    return out.permute(0, 1, 4, 2, 3)


def _add(a: Patches, b: Patches) -> Patches | None:
    """a + b over the same node (same rows), aligned by offset; None when the strides differ."""
    if a.stride != b.stride:
        return None
    if a.P is None and b.P is None and a.eye is not None and b.eye is not None and bool(torch.equal(a.eye[0], b.eye[0])):
        return a.with_eye(a.eye[0], a.eye[1] + b.eye[1])
    C = max(t.P.shape[4] if t.P is not None else 0 for t in (a, b))
    if C == 0:
        return None
    (Ka, La), (Kb, Lb) = a.kernel, b.kernel
    ph = max(a.pad[0], b.pad[0])
    pw = max(a.pad[1], b.pad[1])
    eh = max(Ka - a.pad[0], Kb - b.pad[0])
    ew = max(La - a.pad[1], Lb - b.pad[1])
    Pa, Pb = a.dense_patch(C), b.dense_patch(C)
    if Pa.shape[0] == Pb.shape[0]:
        # one window padded to the union (a copy), the other added in place at its offset;
        # entries over the node's padding are summed as they are (they stand for nothing)
        # and the sum is marked dirty instead of cleaning both terms first
        dirty = a.dirty or b.dirty
        if b.kernel == (eh + ph, ew + pw):
            a, b, Pa, Pb = b, a, Pb, Pa
        Kh, Kw = a.kernel
        top, left = ph - a.pad[0], pw - a.pad[1]
        out = F.pad(Pa, (0, 0, left, ew + pw - Kw - left, top, eh + ph - Kh - top)) if (Kh, Kw) != (eh + ph, ew + pw) \
            else Pa.clone()
        Kh, Kw = b.kernel
        top, left = ph - b.pad[0], pw - b.pad[1]
        out[:, :, top:top + Kh, left:left + Kw] += Pb
        return a.like(out, a.stride, (ph, pw), dirty)
    a, b = a.clean(), b.clean()
    out = None
    for t in (a, b):
        P = t.dense_patch(C)
        Kh, Kw = t.kernel
        top, left = ph - t.pad[0], pw - t.pad[1]
        P = F.pad(P, (0, 0, left, ew + pw - Kw - left, top, eh + ph - Kh - top))
        out = P if out is None else out + P
    assert out is not None
    return a.like(out, a.stride, (ph, pw))


def _conv(op: Any, m: Any, p: Patches, in_shape: tuple[int, ...]) -> tuple[Patches, Tensor | None] | None:
    """Back through a Conv2d m (weight (Cout, Cin/g, kh, kw)); None when unsupported."""
    if tuple(m.dilation) != (1, 1) or isinstance(m.padding, str):
        return None
    return _conv_w(m, m.weight, m.bias, p.clean(), in_shape)


def _conv_w(m: Any, Wt: Tensor, cb: Tensor | None, p: Patches, in_shape: tuple[int, ...]
            ) -> tuple[Patches, Tensor | None]:
    """Back through the conv geometry of m with weight Wt and bias cb (p clean)."""
    s, pd = tuple(m.stride), tuple(m.padding)
    stride = (p.stride[0] * s[0], p.stride[1] * s[1])
    pad = (p.pad[0] * s[0] + pd[0], p.pad[1] * s[1] + pd[1])
    bias = None
    if p.P is None and p.eye is not None and m.groups == 1:
        ch, coef = p.eye
        # (Bp, k, kh, kw, Cin), contiguous (a channels-first P would be copied by every later rule)
        P = coef[:, :, None, None, None] * Wt.permute(0, 2, 3, 1).contiguous()[ch].unsqueeze(0)
        if cb is not None:
            bias = coef * cb[ch]
    else:
        P0 = p.dense_patch(Wt.shape[0])
        Bp, k, Kh, Kw, Co = P0.shape
        # a channels-last view: no copy, and the fast conv_transpose2d path (its output
        # is channels last too, so the permute back is a view)
        x = P0.reshape(Bp * k, Kh, Kw, Co).permute(0, 3, 1, 2)
        P = F.conv_transpose2d(x, Wt, stride=s, groups=m.groups).permute(0, 2, 3, 1)
        P = P.reshape(Bp, k, *P.shape[1:])
        if cb is not None:
            bias = P0.sum((2, 3)) @ cb
    H, W = in_shape[1:]
    clean = pad == (0, 0) and int(p.hr.max()) * stride[0] + P.shape[2] <= H and \
        int(p.wr.max()) * stride[1] + P.shape[3] <= W
    return p.like(P, stride, pad, None if clean else (H, W)), bias


def _channel_affine(p: Patches, s: Tensor | None, t: Tensor | None, C: int) -> tuple[Patches, Tensor | None]:
    """Back through x·s + t with per-channel s, t (C,) (either may be None)."""
    if p.P is None and p.eye is not None:
        ch, coef = p.eye
        bias = None if t is None else coef * t[ch]
        return p.with_eye(ch, coef if s is None else coef * s[ch]), bias
    if t is not None:
        p = p.clean()
    P = p.P
    assert P is not None
    bias = None if t is None else P.sum((2, 3)) @ t
    return (p if s is None else p.like(P * s, dirty=p.dirty)), bias


def _affine(op: ops.Affine, p: Patches, shape: tuple[int, ...], like: Tensor) -> tuple[Patches, Tensor | None]:
    C = shape[0]
    s, t = op._get(3, like.dtype, like.device)
    if all(v is None or tuple(v.shape[-2:]) == (1, 1) for v in (s, t)):
        sc = None if s is None else s.reshape(-1).expand(C)
        sh = None if t is None else t.reshape(-1).expand(C)
        return _channel_affine(p, sc, sh, C)
    P = p.dense_patch(C)
    bias = None  # (the windows are zero outside the node: the result is clean)
    if t is not None:
        bias = (P * windows(t.expand(shape).unsqueeze(0), p, p.kernel)).sum((2, 3, 4))
    if s is None:
        return p.like(P, dirty=p.dirty), bias
    return p.like(P * windows(s.expand(shape).unsqueeze(0), p, p.kernel)), bias


@dataclass
class RowAlpha:
    """α-CROWN's lower ReLU slopes for the rows of one :func:`crown_rows` call: ``alpha``
    (R, C, H, W), one slope map per α row (R = B·P_a for a (B, P_a, C, H, W) α set), and
    ``rows`` (k,), the α row of each start row; ``tag`` identifies ``rows`` in the window
    index cache. Sparse (:class:`~certkit.core.bounds.alpha_sets.SparseAlpha`): ``alpha``
    (R, m + 1), the slopes of the m stored neurons and a last column that is never read,
    and ``lut`` (1, C, H, W) one more than each neuron's column (m + 1: not stored)."""

    alpha: Tensor
    rows: Tensor
    tag: Any
    lut: Tensor | None = None
    sparse: SparseAlpha | None = None  # (the set itself: its index and shape)


def alpha_slopes(p: Patches, kernel: tuple[int, int], a: RowAlpha, unst: Tensor, wl: Tensor) -> Tensor:
    """Per-row lower slopes in window space: row r's α (``a.alpha[a.rows[r]]``) at row r's
    window where the neuron is unstable for r's example (``unst``: the windows of the
    0/1 unstable mask), else the CROWN slope ``wl`` (windowed). Window entries outside the
    node are zero in ``unst`` (windows pad with zeros), so they take ``wl`` there, which is
    zero: the result stays clean. A module-level function so a test can plant a wrong
    gather or a missing mask.

    Sparse α (``a.lut``): each window entry's neuron is looked up in ``lut`` (one window
    gather of the node's (C, H, W) lookup table, which is batch-independent) and its slope
    read from row r's stored values; no (C, H, W) map per row is built. Every neuron
    unstable now was unstable at the start (bounds only tighten), so it is stored."""
    if a.sparse is None:
        return torch.where(unst > 0, windows(a.alpha, p, kernel, rows=a.rows, tag=a.tag), wl)
    assert a.lut is not None
    m1 = a.alpha.shape[1]  # m + 1
    # column m for neurons not stored and for window entries outside the node (read as 0 - 1)
    col = windows(a.lut, p, kernel).sub_(1).remainder_(m1)  # (1, k, Kh, Kw, C)
    flat = col.add_((a.rows * m1).view(1, -1, 1, 1, 1))
    return torch.where(unst > 0, a.alpha.reshape(-1).index_select(0, flat.reshape(-1)).view(flat.shape), wl)


def _relu(p: Patches, bounds: tuple[Tensor, Tensor], C: int, alpha: RowAlpha | None = None
          ) -> tuple[Patches, Tensor]:
    """(windows zero outside the node: the result is clean)"""
    l, u = bounds  # noqa: E741
    if alpha is None and fused.usable(l):
        r = _relu_fused(p, l, u, C)
        if r is not None:
            return r
    ud, ub, ld = ops.relu_relaxation(l, u)
    parts = [ud, ld]
    if alpha is not None:
        parts.append(((l < 0) & (u > 0)).to(l.dtype))
    # the slopes (and mask) in one gather, side by side (used element-wise, strided); the
    # intercepts alone (contiguous for the dot product: a strided slice would be copied)
    w = windows(torch.cat(parts, 1), p, p.kernel)  # (Bw, k, Kh, Kw, 2C or 3C)
    wud, wl = w[..., :C], w[..., C:2 * C]
    wub = windows(ub, p, p.kernel)
    if alpha is not None:
        wl = alpha_slopes(p, p.kernel, alpha, w[..., 2 * C:], wl)
    P = p.dense_patch(C)
    An = P.clamp(max=0)
    bias = _dot(An, wub)
    if not torch.is_grad_enabled() and P.shape[0] == wl.shape[0]:
        Ain = P.clamp(min=0).mul_(wl).addcmul_(An, wud)  # fewer temporaries
    else:
        Ain = torch.addcmul(P.clamp(min=0) * wl, An, wud)
    return p.like(Ain), bias


def _relu_fused(p: Patches, l: Tensor, u: Tensor, C: int) -> tuple[Patches, Tensor] | None:  # noqa: E741
    """:func:`_relu` in one compiled pass (:mod:`certkit.core.bounds.fused`): each row's
    example is ``p.br`` (per-row examples) or its batch index; None when neither fits."""
    P = p.dense_patch(C)
    Bp, k = P.shape[:2]
    ex = _row_examples(p, P, l.shape[0])
    if ex is None:
        return None
    A, bias = fused.relu_patches(P.reshape(Bp * k, *P.shape[2:]), fused.relaxation(l, u), ex, p.hr, p.wr,
                                 p.stride, p.pad)
    return p.like(A.view(P.shape)), bias.view(Bp, k)


def _row_examples(p: Patches, P: Tensor, E: int) -> Tensor | None:
    """The example (of E) of each of the Bp·k rows of P (Bp, k, ...): ``p.br`` (per-row
    examples), or the batch index; None for a batch-independent patch over a batch."""
    Bp, k = P.shape[:2]
    if p.br is not None and Bp == 1:
        return p.br
    if Bp == E:
        return torch.arange(E, device=P.device).repeat_interleave(k)
    return None


def _maxpool(op: ops.MaxPool2d, p: Patches, bounds: tuple[Tensor, Tensor], in_shape: tuple[int, ...]
             ) -> tuple[Patches, Tensor]:
    """Back through a non-overlapping max pool (kernel = stride s, no padding) with the
    relaxation of :class:`certkit.core.bounds.ops._MaxWindows`: each window's coefficient
    goes to its element j* (the lower line ``max >= x_j*``; the upper line too when j*
    dominates, else the constant largest upper bound). The result's windows are s times
    larger and lie on the s-times coarser grid. (Windows zero outside: the result is clean.)"""
    l, u = bounds  # noqa: E741
    B = l.shape[0]
    C = in_shape[0]
    sh, sw = op.st
    _, jstar, dom, umax = op.relaxation(l, u)
    Ho, Wo = op.out_shape[1:]
    # one gather of three maps: j* (as a value), the dominance mask, the constant upper bound
    node = torch.cat([jstar.to(l.dtype).view(B, C, Ho, Wo), dom.to(l.dtype).view(B, C, Ho, Wo),
                      (~dom).to(l.dtype).mul_(umax).view(B, C, Ho, Wo)], 1)
    P = p.dense_patch(C)
    Kh, Kw = p.kernel
    w = windows(node, p, (Kh, Kw))  # (B, k, Kh, Kw, 3C)
    An = P.clamp(max=0)
    bias = _dot(An, w[..., 2 * C:].contiguous())
    coef = P.clamp(min=0) + An * w[..., C:2 * C]  # (B, k, Kh, Kw, C)
    # each window entry's coefficient goes to its j* of the s×s block (entries outside the
    # node: P is clean there, so coef is 0 and j* reads 0)
    Ain = coef.new_zeros(*coef.shape[:4], sh * sw, C)
    Ain.scatter_(4, w[..., :C].to(torch.long).unsqueeze(4), coef.unsqueeze(4))
    Ain = Ain.view(*coef.shape[:4], sh, sw, C).permute(0, 1, 2, 4, 3, 5, 6)  # (B, k, Kh, sh, Kw, sw, C)
    Ain = Ain.reshape(*Ain.shape[:2], Kh * sh, Kw * sw, C)
    return p.like(Ain, (p.stride[0] * sh, p.stride[1] * sw), (p.pad[0] * sh, p.pad[1] * sw)), bias


def _step(op: ops.Op, p: Patches, in_shapes: list[tuple[int, ...]], in_bounds: list[tuple[Tensor, Tensor]],
          alpha: RowAlpha | None = None) -> tuple[list[Patches], Tensor | None] | None:
    """One op's backward rule on patches: (patches per input, bias (Bp, k) or None), or
    None when the op has no patch rule. ``alpha``: the rows' lower slopes at a ReLU."""
    like = in_bounds[0][0]
    if type(op) is ops.Identity:
        return [p], None
    if isinstance(op, ops.Conv) and op.nd == 2:
        r = _conv(op, op.m, p, in_shapes[0])
        return None if r is None else ([r[0]], r[1])
    if isinstance(op, ops._LazyAvgPool):
        impl = op._get(like)
        r = _conv(impl, impl.m, p, in_shapes[0])
        return None if r is None else ([r[0]], r[1])
    if isinstance(op, ops.BatchNorm) and len(in_shapes[0]) == 3:
        s, t = op._affine(None)
        q, b = _channel_affine(p, s, t, in_shapes[0][0])
        return [q], b
    if isinstance(op, ops.Affine) and len(in_shapes[0]) == 3:
        q, b = _affine(op, p, in_shapes[0], like)
        return [q], b
    if isinstance(op, ops.ReLU):
        q, b = _relu(p, in_bounds[0], in_shapes[0][0], alpha)
        return [q], b
    if isinstance(op, ops.MaxPool2d) and op.k == op.st and len(in_shapes[0]) == 3:
        q, b = _maxpool(op, p.clean(), in_bounds[0], in_shapes[0])
        return [q], b
    if isinstance(op, ops.Add):
        outs = []
        for c in (op.ca, op.cb):
            if c == 1.0:
                outs.append(p)
            elif p.P is None and p.eye is not None:
                outs.append(p.with_eye(p.eye[0], p.eye[1] * c))
            else:
                assert p.P is not None
                outs.append(p.like(p.P * c, dirty=p.dirty))
        return outs, None
    return None


def supported_start(shape: tuple[int, ...]) -> bool:
    """Whether rows of a node of this per-example shape start as patches."""
    return len(shape) == 3


def _cheaper_dense(p: Patches, shape: tuple[int, ...]) -> bool:
    if len(shape) != 3:
        return True
    Kh, Kw = p.kernel
    return Kh * Kw >= shape[1] * shape[2]


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """sum(a * b) over all but the first two dimensions: (Ba, k, ...) · (Bb, k, ...) →
    (max(Ba, Bb), k). (einsum's contraction: 3-10× faster on one thread than k batched
    1×L·L×1 matrix products at L ≥ 1000, and no product temporary.)"""
    return torch.einsum("bkl,bkl->bk", a.reshape(*a.shape[:2], -1), b.reshape(*b.shape[:2], -1))


def _concretize(ctx: Any, p: Patches) -> Tensor:
    """min over the input set of the rows' linear functions of the input: (B, k)."""
    P = p.dense_patch(ctx.lo.shape[1])
    K = p.kernel
    if ctx.norm == math.inf and fused.usable(P):
        ex = _row_examples(p, P, ctx.lo.shape[0])
        if ex is not None:
            bias = fused.box_patches(P.reshape(-1, *P.shape[2:]), fused.box(ctx.lo, ctx.hi), ex, p.hr, p.wr,
                                     p.stride, p.pad)
            return bias.view(P.shape[:2])
    if ctx.norm == math.inf:
        mid, rad = fused.centre_radius(ctx.lo, ctx.hi)
        return _dot(P, windows(mid, p, K)) - _dot(P.abs(), windows(rad, p, K))
    P = p.clean().dense_patch(ctx.lo.shape[1])
    x0 = windows(ctx.x, p, K)
    B = ctx.x.shape[0]
    eps = ctx.eps.reshape(B, 1) if p.br is None else ctx.eps.reshape(1, B)[:, p.br]
    return _dot(P, x0) - eps * P.flatten(2).norm(dim=-1)


def _concretize_rows(ctx: Any, A: Tensor, br: Tensor) -> Tensor:
    """As ``_Ctx._concretize`` for dense rows (1, k, *in) of examples br (k,): (1, k). The
    rows meet the centre / radius / x of every example in one GEMM and their own column
    is picked (no per-row copy of the input)."""
    k = br.numel()
    B = ctx.lo.shape[0]
    if ctx.norm == math.inf and fused.usable(A):  # each row against its own example's box, one pass
        return fused.box_rows(A, ctx.lo, ctx.hi, br)
    a = A.reshape(k, -1)
    col = br.view(k, 1)
    if ctx.norm == math.inf:
        mid, rad = fused.centre_radius(ctx.lo, ctx.hi)
        mid, rad = mid.reshape(B, -1), rad.reshape(B, -1)
        v = (a @ mid.t()).gather(1, col) - (a.abs() @ rad.t()).gather(1, col)
    else:
        x0 = ctx.x.reshape(B, -1)
        v = (a @ x0.t()).gather(1, col) - ctx.eps.reshape(B, 1)[br] * a.norm(dim=-1, keepdim=True)
    return v.view(1, k)


def crown_rows(ctx: Any, start: int, rows: Tensor, mask: Tensor | None = None,
               alphas: dict[int, Tensor | SparseAlpha] | None = None) -> tuple[Tensor, Tensor]:
    """CROWN lower and upper bounds (B, k) of the neurons ``rows`` (k,) (flat indices into
    the (C, H, W) start node) with patches, falling back to the dense pass per node (see the
    module docstring). ``ctx``: the call's :class:`certkit.core.bounds.model._Ctx` with
    every earlier node's bounds filled.

    ``mask`` (B, k): bound neuron ``rows[j]`` of example b only where ``mask[b, j]`` (the
    neurons unstable for that example); the others get -inf / +inf. Each (example, neuron)
    pair is then one row of its own (``Patches.br``; a dense fallback runs the rows as a
    batch of single-row examples), so the work follows the per-example unstable counts,
    not B times their union.

    ``alphas`` (α-CROWN with optimised intermediate slopes; Xu et al. 2021,
    arXiv:2011.13824, the per-(start node, ReLU) α sets of auto_LiRPA's
    ``fix_interm_bounds=False``): ReLU node → (B, 2k, *shape) lower slopes in [0, 1], rows
    [0, k) for the lower bounds of ``rows``, [k, 2k) for the upper ones (as
    ``_Ctx.alpha_crown``'s dense α sets), or (B, 1, *shape) shared by all rows. Each
    (example, neuron) row reads its own slope map at its window; only unstable neurons
    take α. A :class:`~certkit.core.bounds.alpha_sets.SparseAlpha` set (B, 2k or 1, m)
    holds the same slopes for its stored neurons only (see :func:`alpha_slopes`).
    Differentiable in α (and in the bounds) by autograd."""
    g = ctx.g
    _, H, W = g.shapes[start]
    like = ctx.lo
    B = like.shape[0]
    if mask is None:
        mask = torch.ones(B, rows.numel(), dtype=torch.bool, device=rows.device)
    b_idx, j_idx = mask.nonzero(as_tuple=True)
    n = b_idx.numel()
    r = rows[j_idx]
    hr, wr, ch = (r // W) % H, r % W, r // (H * W)
    # lower rows, then the negated rows for the upper bound (one pass)
    coef = torch.cat([torch.ones(n, dtype=like.dtype, device=like.device),
                      -torch.ones(n, dtype=like.dtype, device=like.device)]).unsqueeze(0)
    br = b_idx.repeat(2)
    start_p = Patches(None, (1, 1), (0, 0), hr.repeat(2), wr.repeat(2), (ch.repeat(2), coef), br=br)
    As: dict[int, Patches | Tensor] = {start: start_p}
    bias = torch.zeros(1, 2 * n, dtype=like.dtype, device=like.device)
    for i in range(start, 0, -1):
        A = As.pop(i, None)
        if A is None:
            continue
        op = g.nodes[i]
        ins = g.inputs[i]
        in_bounds = [ctx.bounds[j] for j in ins]
        in_shapes = [g.shapes[j] for j in ins]
        ra = _row_alpha(alphas.get(i), b_idx, j_idx, rows.numel()) if alphas else None
        res = _step(op, A, in_shapes, in_bounds, ra) if isinstance(A, Patches) else None
        if res is None:
            Ad = to_dense(A, g.shapes[i]) if isinstance(A, Patches) else A
            a_d = None if ra is None else _row_slopes(ra)  # (2n, *shape): each row's slopes
            if B == 1:  # one example: its 2n rows as the spec dimension, as the dense pass
                Ain, b = op.backward(Ad, in_bounds, None if a_d is None else a_d.unsqueeze(0))
            elif a_d is None and type(op) is ops.ReLU and fused.usable(Ad):  # each row reads its example's bounds
                a0, b = fused.relu_dense(Ad.reshape(2 * n, 1, *g.shapes[i]), *in_bounds[0], ex=br)
                Ain, b = [a0.reshape(1, 2 * n, *a0.shape[2:])], b.reshape(1, 2 * n)
            else:  # the 2n rows as 2n single-row examples with their examples' bounds
                rb = ([(lo.index_select(0, br), up.index_select(0, br)) for lo, up in in_bounds] if op.nonlinear
                      else in_bounds)  # (the affine ops read no bounds)
                Ain_d, b = op.backward(Ad.reshape(2 * n, 1, *g.shapes[i]), rb,
                                       None if a_d is None else a_d.unsqueeze(1))
                Ain = [a.reshape(1, 2 * n, *a.shape[2:]) for a in Ain_d]
                b = None if b is None else b.reshape(1, 2 * n)
        else:
            Ain, b = res  # type: ignore[assignment]
        if b is not None:
            bias = bias + b
        for j, a in zip(ins, Ain):
            if isinstance(a, Patches) and j > 0 and _cheaper_dense(a, g.shapes[j]):
                a = to_dense(a, g.shapes[j])
            if j in As:
                prev = As[j]
                if isinstance(prev, Patches) and isinstance(a, Patches):
                    s = _add(prev, a)
                    if s is not None:
                        As[j] = s
                        continue
                As[j] = _dense(prev, g.shapes[j]) + _dense(a, g.shapes[j])
            else:
                As[j] = a
    A_in = As.get(0)
    if A_in is not None:
        if isinstance(A_in, Patches):
            bias = bias + _concretize(ctx, A_in)
        else:
            bias = bias + _concretize_rows(ctx, A_in, br)
    k = rows.numel()
    lo = torch.full((B, k), -math.inf, dtype=like.dtype, device=like.device)
    up = torch.full((B, k), math.inf, dtype=like.dtype, device=like.device)
    lo[b_idx, j_idx] = bias[0, :n]
    up[b_idx, j_idx] = -bias[0, n:]
    return lo, up


def _row_alpha(a: Tensor | SparseAlpha | None, b_idx: Tensor, j_idx: Tensor, k: int) -> RowAlpha | None:
    """The α rows of the 2n (example, neuron) rows of :func:`crown_rows` (lower rows, then
    upper rows) in an α set a (B, 2k or 1, *shape), dense or sparse."""
    if a is None:
        return None
    v = a.values if isinstance(a, SparseAlpha) else a
    Pa = v.shape[1]
    if Pa == 1:
        r = b_idx.repeat(2)
    else:
        if Pa != 2 * k:
            raise ValueError(f"alphas: expected (B, {2 * k} or 1, ...) slopes for {k} rows, got {tuple(v.shape)}")
        r = torch.cat([b_idx * Pa + j_idx, b_idx * Pa + k + j_idx])
    if isinstance(a, SparseAlpha):
        flat = v.reshape(-1, v.shape[2])
        lut = a.lookup().add(1).view(1, *a.shape) if len(a.shape) == 3 else None
        return RowAlpha(F.pad(flat, (0, 1)), r, Pa, lut, a)
    return RowAlpha(v.reshape(-1, *v.shape[2:]), r, Pa)


def _row_slopes(ra: RowAlpha) -> Tensor:
    """(2n, *shape) each row's dense slope map (a sparse set scattered; the neurons not
    stored get 0, never read)."""
    a = ra.alpha.index_select(0, ra.rows)
    if ra.sparse is None:
        return a
    return dense_alpha(ra.sparse.with_values(a[:, :-1].unsqueeze(0)))[0]


# elements of one coefficient tensor per chunk of start rows (the patches of one row are at
# most one dense row of the largest node before the start: chunks bound the peak memory)
CHUNK_ELEMENTS = 1 << 21
CHUNK_ELEMENTS_MAX = 1 << 25  # at B > 1: CHUNK_ELEMENTS per example, up to this
CHUNK_MIN_PAIRS = 256  # but at least this many (example, neuron) pairs per chunk (speed)


def chunk_rows(ctx: Any, start: int, limit: int, mask: Tensor) -> int:
    """Start rows per :func:`crown_rows` call: ``limit`` or fewer, so that even a dense
    coefficient tensor (2·pairs, *node) of any node before ``start`` stays within
    B · :data:`CHUNK_ELEMENTS` (at most :data:`CHUNK_ELEMENTS_MAX`), or
    :data:`CHUNK_MIN_PAIRS` pairs (``mask`` (B, k): the
    (example, row) pairs to bound)."""
    g = ctx.g
    biggest = max(math.prod(g.shapes[j]) for j in range(start + 1))
    per_row = max(1.0, float(mask.sum()) / max(1, int(mask.any(0).sum())))  # examples per bounded row
    budget = min(CHUNK_ELEMENTS * ctx.lo.shape[0], CHUNK_ELEMENTS_MAX)  # grows with the batch, as the dense pass
    return max(1, min(limit, int(max(budget / (2 * biggest), CHUNK_MIN_PAIRS) / per_row)))


def _dense(a: Patches | Tensor, shape: tuple[int, ...]) -> Tensor:
    return to_dense(a, shape) if isinstance(a, Patches) else a
