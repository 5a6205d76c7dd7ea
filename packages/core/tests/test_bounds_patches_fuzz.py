"""Red-team fuzz of the structured (patches) CROWN pass (certkit.core.bounds.patches) and of
ReLU-split branch and bound (certkit.core.bounds.relu_bab) on conv nets (issue #18).

Patches: seeded random conv architectures in float64 (kernels 1-5 incl. non-square, strides
1-3 incl. non-square, paddings 0-2 incl. non-square, asymmetric nn.ZeroPad2d / F.pad,
dilation, groups, bias on/off, odd input sizes whose last window does not fit, conv → BN →
ReLU, residual adds whose paths have different geometries, average pools with padding,
overlapping and non-overlapping max pools, per-element / per-channel input normalisation),
B = 1..4 with per-example ε, x_L / x_U and ℓ2. Every intermediate and output bound of
``conv_mode="patches"`` must equal ``"matrix"`` to 1e-9 (relative) and contain sampled
points; also with the dense fallback disabled (every patch rule used, windows larger than
the node) and with start rows in chunks of 3. A planted wrong padding mask is caught.

relu_bab: small conv nets (conv / BN / ZeroPad2d between ReLUs, root bounds by patches)
against an exact MILP reference on the equivalent dense MLP; a planted sign error in the β
terms is caught.
"""

from __future__ import annotations

import math
import random
import time
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from certkit.core.bounds import BoundedModel, patches

TOL = 1e-9


def _out(n: int, k: int, s: int, p: int, d: int = 1) -> int:
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


class _Res(nn.Module):
    def __init__(self, a: nn.Module, b: nn.Module) -> None:
        super().__init__()
        self.a, self.b = a, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x) + self.b(x)


class _FPad(nn.Module):
    def __init__(self, p: tuple[int, ...]) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.p)


class _Norm(nn.Module):
    def __init__(self, shape: tuple[int, ...], per_element: bool) -> None:
        super().__init__()
        s = shape if per_element else (shape[0], 1, 1)
        self.register_buffer("mean", torch.rand(*s, dtype=torch.float64) * 0.3)
        self.register_buffer("std", torch.rand(*s, dtype=torch.float64) + 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class _Sub(nn.Module):
    """``torch.add(a, relu(b), alpha=-0.7) - 0.5·x``: Add with coefficients ≠ 1."""

    def __init__(self, C: int) -> None:
        super().__init__()
        self.a = nn.Conv2d(C, C, 3, 1, 1)
        self.b = nn.Conv2d(C, C, (1, 3), 1, (0, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.add(self.a(x), F.relu(self.b(x)), alpha=-0.7) - 0.5 * x


class _Sum3(nn.Module):
    """Three paths of different window geometry (3×3 pad 1, 1×1 pad 0, avg pool pad 1)."""

    def __init__(self, C: int) -> None:
        super().__init__()
        self.a = nn.Conv2d(C, C, 3, 2, 1)
        self.b = nn.Conv2d(C, C, 1, 2, 0)
        self.c = nn.AvgPool2d(3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x) + self.b(x) + self.c(x)


def _bn(C: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(C)


def _rand_conv(rng: random.Random, C: int, H: int, W: int) -> tuple[nn.Conv2d, int, int, int] | None:
    for _ in range(50):
        kh = rng.randint(1, 5)
        kw = rng.choice([kh, rng.randint(1, 5)])
        sh = rng.randint(1, 3)
        sw = rng.choice([sh, rng.randint(1, 3)])
        ph = rng.randint(0, 2)
        pw = rng.choice([ph, rng.randint(0, 2)])
        d = rng.choice([1, 1, 1, 2])
        Ho, Wo = _out(H, kh, sh, ph, d), _out(W, kw, sw, pw, d)
        if Ho >= 1 and Wo >= 1:
            break
    else:
        return None
    g = rng.choice([1, 1, 2, C])
    g = g if C % g == 0 else 1
    Co = rng.randint(1, 3) * g
    m = nn.Conv2d(C, Co, (kh, kw), (sh, sw), (ph, pw), dilation=d, groups=g, bias=rng.random() < 0.7)
    return m, Co, Ho, Wo


def _shortcut(rng: random.Random, C: int, H: int, W: int, Co: int, Ho: int, Wo: int) -> nn.Module | None:
    """A conv (C, H, W) → (Co, Ho, Wo) of another geometry than the main path's."""
    for _ in range(200):
        kh, kw, sh, sw = rng.randint(1, 5), rng.randint(1, 5), rng.randint(1, 3), rng.randint(1, 3)
        ph, pw = rng.randint(0, 2), rng.randint(0, 2)
        if _out(H, kh, sh, ph) == Ho and _out(W, kw, sw, pw) == Wo:
            m = nn.Conv2d(C, Co, (kh, kw), (sh, sw), (ph, pw), bias=rng.random() < 0.5)
            return nn.Sequential(m, _bn(Co)) if rng.random() < 0.4 else m
    return nn.Identity() if (C, H, W) == (Co, Ho, Wo) else None


def _random_net(seed: int) -> tuple[nn.Module, tuple[int, int, int], random.Random]:
    rng = random.Random(seed)
    C, H, W = rng.randint(1, 3), rng.randint(3, 16), rng.randint(3, 16)
    shape = (C, H, W)
    layers: list[nn.Module] = []
    if rng.random() < 0.3:
        layers.append(_Norm(shape, rng.random() < 0.5))
    for _ in range(rng.randint(2, 5)):
        kind = rng.choice(["conv", "conv", "conv", "res", "pad", "avg", "max"])
        if kind == "conv":
            r = _rand_conv(rng, C, H, W)
            if r is None:
                continue
            m, C, H, W = r
            layers.append(m)
            if rng.random() < 0.5:
                layers.append(_bn(C))
            if rng.random() < 0.8:
                layers.append(nn.ReLU())
        elif kind == "pad":
            p = tuple(rng.randint(0, 2) for _ in range(4))
            layers.append(nn.ZeroPad2d(p) if rng.random() < 0.5 else _FPad(p))
            H, W = H + p[2] + p[3], W + p[0] + p[1]
        elif kind == "avg":
            k, s = rng.randint(1, 3), rng.randint(1, 3)
            p = rng.randint(0, k // 2)
            if min(_out(H, k, s, p), _out(W, k, s, p)) >= 1:
                layers.append(nn.AvgPool2d(k, s, p))
                H, W = _out(H, k, s, p), _out(W, k, s, p)
        elif kind == "max":
            k = rng.randint(2, 3)
            s = rng.choice([k, 1, 2])
            if min(_out(H, k, s, 0), _out(W, k, s, 0)) >= 1:
                layers.append(nn.MaxPool2d(k, s))
                H, W = _out(H, k, s, 0), _out(W, k, s, 0)
        else:
            r = _rand_conv(rng, C, H, W)
            if r is None:
                continue
            m1, Co, Ho, Wo = r
            main: list[nn.Module] = [m1] + ([_bn(Co)] if rng.random() < 0.5 else [])
            main += [nn.ReLU(), nn.Conv2d(Co, Co, 3, 1, 1, bias=rng.random() < 0.5)]
            sc = _shortcut(rng, C, H, W, Co, Ho, Wo)
            if sc is None:
                continue
            layers += [_Res(nn.Sequential(*main), sc), nn.ReLU()]
            C, H, W = Co, Ho, Wo
    layers += [nn.Flatten(), nn.Linear(C * H * W, 4)]
    return _finish(nn.Sequential(*layers), shape, seed), shape, rng


def _finish(net: nn.Module, shape: tuple[int, ...], seed: int) -> nn.Module:
    """float64, materialised lazy modules, random weights and BN statistics, eval."""
    net = net.double().eval()
    torch.manual_seed(seed)
    net(torch.zeros(1, *shape, dtype=torch.float64))
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
                m.weight.normal_(0, 1.0 / math.sqrt(m.weight[0].numel()))
                if m.bias is not None:
                    m.bias.uniform_(-0.3, 0.3)
            elif isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(-1.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return net.eval().requires_grad_(False)


def _settings(rng: random.Random, x: torch.Tensor, gen: torch.Generator, mode: str | None = None) -> dict[str, Any]:
    B = x.shape[0]
    mode = mode or rng.choice(["inf", "inf_domain", "l2", "inf_per_example"])
    if mode == "l2":
        return dict(eps=torch.rand(B, generator=gen, dtype=x.dtype) * 0.5 + 0.05, norm=2.0)
    if mode == "inf_per_example":
        return dict(eps=torch.rand(B, generator=gen, dtype=x.dtype) * 0.1, norm=math.inf)
    if mode == "inf_domain":
        return dict(eps=0.05, norm=math.inf, x_L=(x - 0.02).clamp(0, 1), x_U=(x + 0.03).clamp(0, 1))
    return dict(eps=0.05, norm=math.inf)


def _bounds(net: nn.Module, shape: tuple[int, ...], x: torch.Tensor, kw: dict[str, Any], mode: str
            ) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], tuple[torch.Tensor, torch.Tensor]]:
    bm = BoundedModel(net, shape, use_compiled=False, conv_mode=mode)
    rest = {k: v for k, v in kw.items() if k != "eps"}
    with torch.no_grad():
        inter = bm.intermediate_bounds(x, kw["eps"], method="CROWN", **rest)
        out = bm.compute_bounds(x, method="CROWN", **kw)
    return inter, out


def _disagreement(net: nn.Module, shape: tuple[int, ...], x: torch.Tensor, kw: dict[str, Any]
                  ) -> tuple[float, tuple[torch.Tensor, torch.Tensor]]:
    """max |matrix - patches| over every intermediate and output bound, relative to the
    largest output bound (≥ 1); and patches' output bounds."""
    (im, om), (ip, op) = _bounds(net, shape, x, kw, "matrix"), _bounds(net, shape, x, kw, "patches")
    assert im.keys() == ip.keys()
    pairs = [*zip(om, op)] + [ab for k in im for ab in zip(im[k], ip[k])]
    worst = 0.0
    for a, b in pairs:
        fin = torch.isfinite(a)
        assert torch.equal(fin, torch.isfinite(b))
        if bool(fin.any()):
            worst = max(worst, float((a[fin] - b[fin]).abs().max()))
    scale = max(1.0, max(float(t.abs().max()) for t in om))
    return worst / scale, op


def _sample_violation(net: nn.Module, x: torch.Tensor, kw: dict[str, Any], bounds: tuple[torch.Tensor, torch.Tensor],
                      gen: torch.Generator, n: int = 8) -> float:
    """Largest amount by which a sampled point (box vertices; ℓ2 sphere) leaves the bounds."""
    lo, up = bounds
    B = x.shape[0]
    e = kw["eps"] if isinstance(kw["eps"], float) else kw["eps"].view(B, *[1] * (x.dim() - 1))
    worst = -math.inf
    for _ in range(n):
        if kw["norm"] == math.inf:
            a, b = x - e, x + e
            if "x_L" in kw:
                a, b = torch.max(a, kw["x_L"]), torch.min(b, kw["x_U"])
            xs = a + (b - a) * torch.rand(x.shape, generator=gen, dtype=x.dtype).round()
        else:
            d = torch.randn(x.shape, generator=gen, dtype=x.dtype)
            xs = x + d / d.flatten(1).norm(dim=1).view(B, *[1] * (x.dim() - 1)) * e
        with torch.no_grad():
            y = net(xs)
        worst = max(worst, float((lo - y).max()), float((y - up).max()))
    return worst


def _fuzz_one(seed: int) -> tuple[float, float]:
    net, shape, rng = _random_net(seed)
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(rng.randint(1, 4), *shape, generator=gen, dtype=torch.float64)
    kw = _settings(rng, x, gen)
    rel, out = _disagreement(net, shape, x, kw)
    return rel, _sample_violation(net, x, kw, out, gen)


@pytest.mark.parametrize("seed", range(16))
def test_random_conv_nets_patches_equal_matrix_and_sound(seed: int) -> None:
    rel, viol = _fuzz_one(seed)
    assert rel < TOL and viol < TOL


@pytest.mark.parametrize("seed", range(100, 110))
def test_random_conv_nets_without_dense_fallback(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every rule kept in patch form (windows as large as or larger than the node)."""
    monkeypatch.setattr(patches, "_cheaper_dense", lambda p, shape: len(shape) != 3)
    rel, viol = _fuzz_one(seed)
    assert rel < TOL and viol < TOL


@pytest.mark.parametrize("seed", range(200, 206))
def test_random_conv_nets_chunked_rows(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(patches, "CHUNK_ELEMENTS", 1)
    monkeypatch.setattr(patches, "CHUNK_MIN_PAIRS", 3)
    rel, viol = _fuzz_one(seed)
    assert rel < TOL and viol < TOL


def _targeted() -> dict[str, tuple[tuple[int, ...], Any]]:
    def lin() -> nn.Module:
        return nn.LazyLinear(3)
    return {
        # non-overlapping max pool (patch rule) over an odd size: the last row is dropped
        "maxpool_odd": ((2, 13, 11), lambda: nn.Sequential(
            nn.Conv2d(2, 4, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, 1, 1), nn.ReLU(),
            nn.Conv2d(4, 3, 2, 1, 0), nn.ReLU(), nn.Flatten(), lin())),
        "maxpool_rect_bn": ((2, 12, 9), lambda: nn.Sequential(
            nn.Conv2d(2, 4, 3, 1, 1), _bn(4), nn.ReLU(), nn.MaxPool2d((2, 3)), nn.Conv2d(4, 4, 3, 1, 1), nn.ReLU(),
            nn.Conv2d(4, 3, (3, 1), 1, (1, 0)), nn.ReLU(), nn.Flatten(), lin())),
        # overlapping max pool: dense fallback
        "maxpool_overlap": ((2, 11, 11), lambda: nn.Sequential(
            nn.Conv2d(2, 4, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(3, 2), nn.Conv2d(4, 4, 3, 1, 1), nn.ReLU(),
            nn.Flatten(), lin())),
        "maxpool_after_conv": ((2, 12, 12), lambda: nn.Sequential(
            nn.Conv2d(2, 4, 3, 1, 1), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, 1, 1), nn.ReLU(),
            nn.Conv2d(4, 4, 3, 1, 1), nn.ReLU(), nn.Flatten(), lin())),
        "add_alpha_sub": ((3, 9, 7), lambda: nn.Sequential(
            nn.Conv2d(3, 4, 3, 1, 1), nn.ReLU(), _Sub(4), nn.ReLU(), _Sub(4), nn.ReLU(), nn.Flatten(), lin())),
        "add_three_paths": ((3, 11, 9), lambda: nn.Sequential(
            nn.Conv2d(3, 4, 3, 1, 1), nn.ReLU(), _Sum3(4), nn.ReLU(), nn.Conv2d(4, 4, 3, 1, 2), nn.ReLU(),
            nn.Flatten(), lin())),
        "avgpool_padding_bn": ((3, 10, 9), lambda: nn.Sequential(
            nn.Conv2d(3, 4, 3, 1, 0), _bn(4), nn.AvgPool2d(3, 2, 1), _bn(4), nn.ReLU(), nn.Conv2d(4, 4, 3, 1, 1),
            nn.ReLU(), nn.AvgPool2d((2, 3), (1, 2), (1, 1)), nn.Conv2d(4, 4, 3, 1, 1), nn.ReLU(), nn.Flatten(), lin())),
        "dilation": ((2, 11, 13), lambda: nn.Sequential(
            nn.Conv2d(2, 4, 3, 1, 2, dilation=2), nn.ReLU(), nn.Conv2d(4, 4, 3, 2, 1), _bn(4), nn.ReLU(),
            nn.Conv2d(4, 4, (3, 2), (1, 2), (2, 1), dilation=(1, 2)), nn.ReLU(), nn.Flatten(), lin())),
        "pads_asymmetric": ((2, 9, 7), lambda: nn.Sequential(
            nn.Conv2d(2, 4, 3, 1, 1), nn.ReLU(), nn.ZeroPad2d((0, 2, 1, 0)), nn.Conv2d(4, 4, 3, 2, 0), _bn(4),
            nn.ReLU(), nn.ConstantPad2d((1, 0, 0, 1), 0.3), nn.Conv2d(4, 4, 2, 1, 0), nn.ReLU(), nn.Flatten(), lin())),
        "groups_bn_then_padded_conv": ((4, 10, 10), lambda: nn.Sequential(
            nn.Conv2d(4, 8, 3, 1, 1, groups=4), nn.ReLU(), nn.Conv2d(8, 8, 3, 2, 1, groups=2), _bn(8),
            nn.Conv2d(8, 8, 1, 1, 1, groups=8), nn.ReLU(), nn.Conv2d(8, 4, 3, 1, 1, groups=4), nn.ReLU(),
            nn.Flatten(), lin())),
        "conv1d": ((3, 17), lambda: nn.Sequential(
            nn.Conv1d(3, 4, 3, 1, 1), nn.ReLU(), nn.Conv1d(4, 4, 3, 2, 1), nn.ReLU(), nn.Flatten(), lin())),
        "stride3_last_window_short": ((2, 14, 11), lambda: nn.Sequential(
            nn.Conv2d(2, 4, (4, 5), (3, 2), (2, 0)), nn.ReLU(), nn.Conv2d(4, 4, (2, 3), (2, 3), (0, 2)), nn.ReLU(),
            nn.Conv2d(4, 4, 1, 1, 0), nn.ReLU(), nn.Flatten(), lin())),
    }


TARGETED = _targeted()


@pytest.mark.parametrize("name", list(TARGETED))
def test_targeted_architectures(name: str) -> None:
    shape, make = TARGETED[name]
    net = _finish(make(), shape, 0)
    gen = torch.Generator().manual_seed(1)
    rng = random.Random(1)
    for B, mode in ((1, "inf"), (3, "inf_per_example"), (2, "l2"), (4, "inf_domain")):
        x = torch.rand(B, *shape, generator=gen, dtype=torch.float64)
        kw = _settings(rng, x, gen, mode)
        rel, out = _disagreement(net, shape, x, kw)
        assert rel < TOL, (mode, rel)
        assert _sample_violation(net, x, kw, out, gen, n=4) < TOL, mode


def test_planted_wrong_padding_mask_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fuzz can fail: without the padding mask some seed disagrees with the dense pass."""
    monkeypatch.setattr(patches, "mask_padding", lambda p, hw: p)
    assert max(_fuzz_one(seed)[0] for seed in range(8)) > 1e-3


# ---- relu_bab on conv nets against an exact reference

def _bab_net(seed: int, shape: tuple[int, int, int]) -> nn.Sequential:
    """conv (BN) | ReLU | (ZeroPad2d) conv | ReLU | flatten, linear: three affine blocks."""
    rng = random.Random(seed)
    C = shape[0]
    c1 = rng.randint(2, 3)
    b1: list[nn.Module] = [nn.Conv2d(C, c1, (rng.randint(2, 3), rng.randint(1, 3)), rng.randint(1, 2), rng.randint(0, 1))]
    if rng.random() < 0.5:
        b1.append(_bn(c1))
    b2: list[nn.Module] = [nn.Conv2d(c1, 2, 3, 2, 1)]
    if rng.random() < 0.5:
        b2.insert(0, nn.ZeroPad2d((0, 1, 1, 0)))
    net = nn.Sequential(nn.Sequential(*b1), nn.ReLU(), nn.Sequential(*b2), nn.ReLU(),
                        nn.Sequential(nn.Flatten(), nn.LazyLinear(3)))
    return _finish(net, shape, seed)  # type: ignore[return-value]


def _as_mlp(net: nn.Sequential, shape: tuple[int, ...]) -> nn.Sequential:
    """The same function as Linear / ReLU layers (each affine block applied to a basis)."""
    layers: list[nn.Module] = []
    cur = shape
    for m in net:
        if isinstance(m, nn.ReLU):
            layers.append(nn.ReLU())
            continue
        n = math.prod(cur)
        zero = torch.zeros(1, *cur, dtype=torch.float64)
        with torch.no_grad():
            b = m(zero).reshape(-1)
            Wt = (m(torch.eye(n, dtype=torch.float64).reshape(n, *cur)).reshape(n, -1) - b).T
            lin = nn.Linear(n, Wt.shape[0]).double()
            lin.weight.copy_(Wt)
            lin.bias.copy_(b)
            cur = tuple(m(zero).shape[1:])
        layers.append(lin)
    return nn.Sequential(*layers).eval()


def _bab_instance(seed: int) -> tuple[Any, ...]:
    import numpy as np
    from test_bounds_relu_bab import _best_slack  # isort: skip

    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(1, 3)), int(rng.integers(5, 8)), int(rng.integers(5, 8)))
    net = _bab_net(seed, shape)
    mlp = _as_mlp(net, shape)
    x = torch.rand(4, *shape, dtype=torch.float64)
    assert torch.allclose(net(x), mlp(x.flatten(1)), atol=1e-10)
    n = math.prod(shape)
    c0, r = rng.uniform(-1, 1, n), rng.uniform(0.2, 0.6, n)
    lo, hi = c0 - r, c0 + r
    N, S = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    C = rng.normal(size=(N, S, 3))
    d = np.zeros((N, S))
    d = d - _best_slack(mlp, lo, hi, C, d) + (0.01 if seed % 2 else -0.01)
    slack = _best_slack(mlp, lo, hi, C, d)
    assert abs(slack) > 0.005
    return net, shape, torch.tensor(lo), torch.tensor(hi), torch.tensor(C), torch.tensor(d), slack > 0


# seeds whose search branches (a few to a few hundred domains) and decides within seconds
BAB_SEEDS = (2, 3, 4)


def _bab_verdicts(**kw: Any) -> list[str]:
    from certkit.core.bounds.relu_bab import relu_split

    bad = []
    for seed in BAB_SEEDS:
        net, shape, lo, hi, C, d, sat = _bab_instance(seed)
        r = relu_split(net, shape, lo, hi, C, d, deadline=time.perf_counter() + 10,
                       pgd_steps=0, attack_domains=1, batch=16, **kw)
        want = "sat" if sat else "unsat"
        if r.status != want:
            bad.append(f"seed {seed}: {r.status}, exact {want}")
    return bad


@pytest.mark.parametrize("kw", [{}, {"branching": "babsr", "interm": "crown"}], ids=["fsb-ibp", "babsr-crown"])
def test_relu_bab_conv_nets_equal_the_exact_reference(kw: dict[str, Any]) -> None:
    pytest.importorskip("scipy.optimize")
    assert _bab_verdicts(**kw) == []


def test_relu_bab_conv_planted_wrong_sign_beta_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("scipy.optimize")
    from certkit.core.bounds import relu_bab

    monkeypatch.setattr(relu_bab, "_beta_signs", lambda s: -s)
    assert any("unsat, exact sat" in b for b in _bab_verdicts()), "the planted β sign error went unnoticed"
