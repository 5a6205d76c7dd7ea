"""Elementwise activations other than ReLU: Sigmoid, Tanh, LeakyReLU, GELU, ELU, Softplus,
Hardtanh (and ReLU6 as a Hardtanh), with sound interval (IBP) and linear (CROWN) bounds.

Relaxation (one rule for every activation f on a pre-activation interval [l, u]): pick a
slope k for each line, then take the *exact* intercepts

    b_lo = min_{x in [l,u]} f(x) - k·x,     b_up = max_{x in [l,u]} f(x) - k·x,

so ``k·x + b_lo <= f(x) <= k·x + b_up`` on [l, u] by construction, whatever k is. The
extremes of g(x) = f(x) - k·x lie at l, u, a kink of f, or a stationary point f'(x) = k;
each activation declares its kinks and the points that split the line into pieces where
f' is monotone, so every stationary point is found by bisection inside one piece (60
halvings in float64; the error in g is second order in the step, far below float32
resolution). Slopes, as in CROWN (Zhang et al. 2018, arXiv:1811.00866, the tangent /
secant rules): where f is convex on [l, u] the lower line is the tangent at the midpoint
and the upper line the secant; where f is concave, the reverse; otherwise both lines take
the secant slope (the tightest parallel pair: each touches f). In the convex / concave
cases these are exactly CROWN's lines. IBP is [f(l), f(u)] for monotone f, and the k = 0
extremes otherwise (GELU). Only ReLU slopes are optimised by α-CROWN; the branch and bound
of :mod:`certkit.core.bounds.act_bab` optimises Sigmoid / Tanh slopes per row (``backward``'s
``alpha``: any slope is sound, its intercepts being exact). Sigmoid and Tanh solve
f'(x) = k in closed form instead of by bisection. Shapes: bounds (B, *shape); backward
coefficients (B, S, *shape).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from certkit.core.bounds import ops

Tensor = torch.Tensor
Bounds = tuple[Tensor, Tensor]
_INF = math.inf


def _outward(b: Tensor, dt: torch.dtype, up: bool) -> Tensor:
    """Intercepts b (float64) in ``dt``, rounded outward (a lower line's down, an upper line's
    up), so the line stays valid after the cast: rounding to nearest moved it by up to half an
    ulp of |b| (float32: 5e-4 at |b| ~ 1e4, on Tanh / GELU / ELU over wide intervals). The
    value keeps b's gradient (straight through)."""
    t = b.to(dt)
    if dt == torch.float64:
        return t
    with torch.no_grad():
        bad = t.double() < b if up else t.double() > b
        fixed = torch.where(bad, torch.nextafter(t, torch.full_like(t, _INF if up else -_INF)), t)
    return t + (fixed - t).detach()


class Elementwise(ops.Op):
    """f applied elementwise; subclasses give f, f', kinks, monotone pieces of f' and the
    convex / concave intervals of f."""

    nonlinear = True
    monotone = True  # f non-decreasing: IBP = [f(l), f(u)]
    kinks: tuple[float, ...] = ()  # where f' jumps
    pieces: tuple[float, ...] = ()  # split points of the line into intervals where f' is monotone
    convex: tuple[float, float] = (_INF, -_INF)  # interval where f is convex (empty by default)
    concave: tuple[float, float] = (_INF, -_INF)
    jump: float = 0.0  # |f - smooth f| bound where f is a thresholded smooth function (Softplus)

    def f(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def df(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        return self.f(x)

    def unstable(self, l: Tensor, u: Tensor) -> Tensor:  # noqa: E741
        """Neurons whose relaxation is not exact (tightening their bounds helps)."""
        return u > l

    def stationary(self, k: Tensor) -> list[Tensor] | None:
        """Closed-form solutions of f'(x) = k (every one, ±inf where none), or None: then
        bisection inside each monotone piece of f' finds them."""
        return None

    # ---- exact extremes of g(x) = f(x) - k x on [l, u]
    def _candidates(self, l: Tensor, u: Tensor, k: Tensor) -> list[Tensor]:  # noqa: E741
        cands = [l, u] + [torch.clamp(torch.full_like(l, p), l, u) for p in self.kinks]
        with torch.no_grad():
            roots = self.stationary(k.detach())
        if roots is not None:
            return cands + [torch.clamp(r, l.detach(), u.detach()) for r in roots]
        edges = (-_INF, *self.pieces, _INF)
        with torch.no_grad():
            for a, b in itertools.pairwise(edges):
                lo = torch.clamp(l, min=a) if a > -_INF else l.clone()
                hi = torch.clamp(u, max=b) if b < _INF else u.clone()
                lo, hi = lo.detach(), torch.max(hi.detach(), lo.detach())
                # f' from inside the piece (f' may jump at its ends: ELU with α > 1 at 0)
                dlo = self.df(torch.nextafter(lo, hi)) - k.detach()
                dhi = self.df(torch.nextafter(hi, lo)) - k.detach()
                inc = dhi >= dlo  # f' increasing on this piece (else decreasing)
                for _ in range(60):
                    mid = (lo + hi) / 2
                    dm = self.df(mid) - k.detach()
                    go_right = torch.where(inc, dm < 0, dm > 0)
                    lo = torch.where(go_right, mid, lo)
                    hi = torch.where(go_right, hi, mid)
                cands.append(torch.clamp((lo + hi) / 2, l.detach(), u.detach()))
        return cands

    def _extremes(self, l: Tensor, u: Tensor, k: Tensor) -> Bounds:  # noqa: E741
        """(min, max) over [l, u] of f(x) - k x (float64 in, float64 out)."""
        vals = torch.stack([self.f(c) - k * c for c in self._candidates(l, u, k)])
        lo, hi = vals.amin(0), vals.amax(0)
        pad = 1e-12 * (1.0 + torch.max(lo.abs(), hi.abs())).detach() + self.jump
        return lo - pad, hi + pad

    def relax(self, l: Tensor, u: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # noqa: E741
        """(lower slope, lower intercept, upper slope, upper intercept), each like ``l``.

        The last few results are cached by the identity *and version* of ``l`` and ``u``
        (a bound tensor changed in place is recomputed): branch and bound alternates between
        a domain's bounds and its children's (:mod:`certkit.core.bounds.act_bab`'s FSB)."""
        cache: list[tuple[Tensor, Tensor, int, int, Any]] = self.__dict__.setdefault("_relax_cache", [])
        for cl, cu, vl, vu, hit in cache:
            if cl is l and cu is u and vl == l._version and vu == u._version:
                return hit  # type: ignore[no-any-return]
        dt = l.dtype
        l64, u64 = l.double(), torch.max(u.double(), l.double())
        w = u64 - l64
        mid = (l64 + u64) / 2
        tiny = w <= 1e-9 * (1.0 + mid.abs())
        sec = torch.where(tiny, self.df(mid), (self.f(u64) - self.f(l64)) / torch.where(tiny, torch.ones_like(w), w))
        tan = self.df(mid)
        in_cvx = (l64 >= self.convex[0]) & (u64 <= self.convex[1])
        in_ccv = (l64 >= self.concave[0]) & (u64 <= self.concave[1])
        # the slopes as the model's dtype holds them, so that the intercepts are exact for them
        k_lo = torch.where(in_cvx, tan, sec).to(dt).double()
        k_up = torch.where(in_ccv, tan, sec).to(dt).double()
        b_lo = self._extremes(l64, u64, k_lo)[0]
        b_up = self._extremes(l64, u64, k_up)[1]
        out = (k_lo.to(dt), _outward(b_lo, dt, False), k_up.to(dt), _outward(b_up, dt, True))
        cache.insert(0, (l, u, l._version, u._version, out))
        del cache[4:]
        return out

    def relax_slopes(self, l: Tensor, u: Tensor, k_lo: Tensor, k_up: Tensor  # noqa: E741
                     ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Lines with given slopes k_lo, k_up (B, S, *shape) on [l, u] (B, *shape): (k_lo, b_lo,
        k_up, b_up) with the exact intercepts ``min / max f(x) - k x`` (differentiable in k:
        the extreme points are found without gradient, the value is ``f(x*) - k x*``)."""
        dt = l.dtype
        L = l.double().unsqueeze(1).expand_as(k_lo)
        U = torch.max(u.double(), l.double()).unsqueeze(1).expand_as(k_lo)
        ks = torch.stack([k_lo.double(), k_up.double()])
        mn, mx = self._extremes(torch.stack([L, L]), torch.stack([U, U]), ks)
        return k_lo, _outward(mn[0], dt, False), k_up, _outward(mx[1], dt, True)

    def ibp(self, b: Bounds) -> Bounds:
        l, u = b  # noqa: E741
        if self.monotone:
            if self.jump:
                return self.f(l) - self.jump, self.f(u) + self.jump
            return self.f(l), self.f(u)
        lo, hi = self._extremes(l.double(), u.double(), torch.zeros_like(l, dtype=torch.float64))
        return _outward(lo, l.dtype, False), _outward(hi, l.dtype, True)

    def backward(self, A: Tensor, in_bounds: list[Bounds], alpha: Tensor | None = None
                 ) -> tuple[list[Tensor], Tensor | None]:
        """``alpha`` (B, S, 2, *shape): optimised (lower, upper) slopes per row (act_bab); the
        intercepts are then the exact ones for those slopes on [l, u], so any slope is sound."""
        l, u = in_bounds[0]  # noqa: E741
        if alpha is None:
            k_lo, b_lo, k_up, b_up = (t.unsqueeze(1) for t in self.relax(l, u))
        else:
            k_lo, b_lo, k_up, b_up = self.relax_slopes(l, u, alpha[:, :, 0], alpha[:, :, 1])
        Ap, An = A.clamp(min=0), A.clamp(max=0)
        Ain = Ap * k_lo + An * k_up
        bias = (Ap * b_lo + An * b_up).reshape(*A.shape[:2], -1).sum(-1)
        return [Ain], bias


class Sigmoid(Elementwise):
    pieces = (0.0,)
    convex = (-_INF, 0.0)
    concave = (0.0, _INF)

    def f(self, x: Tensor) -> Tensor:
        return torch.sigmoid(x)

    def df(self, x: Tensor) -> Tensor:
        s = torch.sigmoid(x)
        return s * (1 - s)

    def stationary(self, k: Tensor) -> list[Tensor] | None:
        """σ(1 - σ) = k: σ = 2k / (1 + √(1 - 4k)) (the small root, without cancellation) and
        1 - σ, so x = ±(log σ - log1p(-σ)); 0 where k >= 1/4, ∓inf where k <= 0."""
        kk = k.clamp(1e-300, 0.25)
        sm = 2 * kk / (1 + torch.sqrt(1 - 4 * kk))
        x = torch.log(sm) - torch.log1p(-sm)  # <= 0
        return [x, -x]


class Tanh(Sigmoid):
    def f(self, x: Tensor) -> Tensor:
        return torch.tanh(x)

    def df(self, x: Tensor) -> Tensor:
        return 1 - torch.tanh(x) ** 2

    def stationary(self, k: Tensor) -> list[Tensor] | None:
        """1 - tanh² = k: tanh x = ±t, t = √(1 - k), x = ±(log(1 + t) - log(k) / 2) (as
        atanh t = ½ log((1 + t)² / k), without cancellation); 0 where k >= 1, ±inf where k <= 0."""
        kk = k.clamp(1e-300, 1.0)
        x = torch.log1p(torch.sqrt(1 - kk)) - 0.5 * torch.log(kk)
        return [x, -x]


class Softplus(Elementwise):
    """``F.softplus(x, beta, threshold)``: (1/β)·log(1 + e^{βx}), and x where βx > threshold
    (the switch moves the value by at most (1/β)·log1p(e^{-threshold}), added to both
    bounds)."""

    convex = (-_INF, _INF)

    def __init__(self, name: str, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__(name)
        if not beta > 0:
            raise ops.unsupported(name, "softplus", f"beta={beta} (expected > 0)")
        self.beta, self.threshold = float(beta), float(threshold)
        self.jump = math.log1p(math.exp(-self.threshold)) / self.beta

    def forward(self, x: Tensor) -> Tensor:
        return F.softplus(x, self.beta, self.threshold)

    def f(self, x: Tensor) -> Tensor:  # the smooth function (the bounds allow for the switch)
        # max(βx, 0) + log1p(e^{-|βx|}), / β: log1p(e^{βx}) overflowed past βx ≈ 88 (float32) / 710
        bx = self.beta * x
        return (bx.clamp(min=0) + torch.log1p(torch.exp(-bx.abs()))) / self.beta

    def df(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.beta * x)


class ELU(Elementwise):
    """α(e^x − 1) for x < 0, x for x >= 0 (α >= 0)."""

    kinks = (0.0,)
    pieces = (0.0,)

    def __init__(self, name: str, alpha: float = 1.0) -> None:
        super().__init__(name)
        if not alpha >= 0:
            raise ops.unsupported(name, "elu", f"alpha={alpha} (expected >= 0)")
        self.alpha = float(alpha)
        if self.alpha <= 1:
            self.convex = (-_INF, _INF)

    def f(self, x: Tensor) -> Tensor:
        return F.elu(x, self.alpha)

    def df(self, x: Tensor) -> Tensor:
        return torch.where(x < 0, self.alpha * torch.exp(torch.clamp(x, max=0)), torch.ones_like(x))


class GELU(Elementwise):
    """x·Φ(x) (``approximate='none'``); Φ'' changes sign at ±√2, so f' is monotone on
    (−∞, −√2], [−√2, √2], [√2, ∞); f is convex on [−√2, √2] and not monotone (min ≈ −0.17
    at x ≈ −0.75)."""

    monotone = False
    pieces = (-math.sqrt(2.0), math.sqrt(2.0))
    convex = (-math.sqrt(2.0), math.sqrt(2.0))

    def f(self, x: Tensor) -> Tensor:
        return F.gelu(x)

    def df(self, x: Tensor) -> Tensor:
        cdf = 0.5 * (1 + torch.erf(x / math.sqrt(2.0)))
        pdf = torch.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        return cdf + x * pdf


class _PiecewiseLinear(Elementwise):
    def unstable(self, l: Tensor, u: Tensor) -> Tensor:  # noqa: E741
        m = torch.zeros_like(l, dtype=torch.bool)
        for p in self.kinks:
            m |= (l < p) & (u > p)
        return m


class LeakyReLU(_PiecewiseLinear):
    """x for x >= 0, a·x below (any slope a >= 0; convex for a <= 1, concave above)."""

    kinks = (0.0,)
    pieces = (0.0,)

    def __init__(self, name: str, negative_slope: float = 0.01) -> None:
        super().__init__(name)
        a = float(negative_slope)
        if not a >= 0:
            raise ops.unsupported(name, "leaky_relu", f"negative_slope={a} (expected >= 0)")
        self.a = a
        if a <= 1:
            self.convex = (-_INF, _INF)
        else:
            self.concave = (-_INF, _INF)

    def relax(self, l: Tensor, u: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # noqa: E741
        """As the ReLU relaxation: secant on one side; on the other the line through the
        origin with slope 1 or a, whichever covers more (both are valid)."""
        k_lo, b_lo, k_up, b_up = super().relax(l, u)
        cross = (l < 0) & (u > 0)
        big = (u > -l).to(l.dtype)
        k = big + (1 - big) * self.a  # adaptive, like CROWN's ReLU rule
        if self.a <= 1:
            k_lo, b_lo = torch.where(cross, k, k_lo), torch.where(cross, torch.zeros_like(b_lo), b_lo)
        else:
            k_up, b_up = torch.where(cross, k, k_up), torch.where(cross, torch.zeros_like(b_up), b_up)
        return k_lo, b_lo, k_up, b_up

    def f(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, self.a)

    def df(self, x: Tensor) -> Tensor:
        return torch.where(x < 0, torch.full_like(x, self.a), torch.ones_like(x))


class Hardtanh(_PiecewiseLinear):
    """clamp(x, min_val, max_val) (ReLU6 = Hardtanh(0, 6))."""

    def __init__(self, name: str, min_val: float = -1.0, max_val: float = 1.0) -> None:
        super().__init__(name)
        if not min_val < max_val:
            raise ops.unsupported(name, "hardtanh", f"min_val={min_val} >= max_val={max_val}")
        self.lo, self.hi = float(min_val), float(max_val)
        self.kinks = self.pieces = (self.lo, self.hi)
        self.convex = (-_INF, self.hi)
        self.concave = (self.lo, _INF)

    def f(self, x: Tensor) -> Tensor:
        return torch.clamp(x, self.lo, self.hi)

    def df(self, x: Tensor) -> Tensor:
        return ((x >= self.lo) & (x < self.hi)).to(x.dtype)


def from_module(name: str, m: nn.Module) -> Elementwise | None:
    """The bounded op of an activation module, or None if ``m`` is not one."""
    if isinstance(m, nn.Sigmoid):
        return Sigmoid(name)
    if isinstance(m, nn.Tanh):
        return Tanh(name)
    if isinstance(m, nn.LeakyReLU):
        return LeakyReLU(name, m.negative_slope)
    if isinstance(m, nn.GELU):
        if m.approximate != "none":
            raise ops.unsupported(name, "GELU", f"approximate={m.approximate!r} (only 'none')")
        return GELU(name)
    if isinstance(m, nn.ELU):
        return ELU(name, m.alpha)
    if isinstance(m, nn.Softplus):
        return Softplus(name, m.beta, m.threshold)
    if isinstance(m, nn.Hardtanh):  # ReLU6 is a Hardtanh(0, 6)
        return Hardtanh(name, m.min_val, m.max_val)
    return None


def from_call(name: str, fname: str, kw: dict[str, Any]) -> Elementwise:
    """The bounded op of a functional activation (``kw``: its bound arguments)."""
    if fname == "sigmoid":
        return Sigmoid(name)
    if fname == "tanh":
        return Tanh(name)
    if fname == "leaky_relu":
        return LeakyReLU(name, kw.get("negative_slope", 0.01))
    if fname == "gelu":
        if kw.get("approximate", "none") != "none":
            raise ops.unsupported(name, "gelu", f"approximate={kw['approximate']!r} (only 'none')")
        return GELU(name)
    if fname == "elu":
        return ELU(name, kw.get("alpha", 1.0))
    if fname == "softplus":
        return Softplus(name, kw.get("beta", 1.0), kw.get("threshold", 20.0))
    if fname == "hardtanh":
        return Hardtanh(name, kw.get("min_val", -1.0), kw.get("max_val", 1.0))
    if fname == "relu6":
        return Hardtanh(name, 0.0, 6.0)
    raise ops.unsupported(name, fname, "unknown activation")
