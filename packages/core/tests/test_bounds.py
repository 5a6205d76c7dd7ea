"""Soundness and reference tests for certkit.core.bounds (torch layer).

Soundness: over thousands of (net, input, sample) cases, every sampled input and a PGD
attack stay inside the bounds. Reference: a plain numpy interval propagation. Bad input
gets errors that name the argument or the module.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from certkit.core.bounds import BoundedModel, UnsupportedLayerError, margin_spec  # noqa: E402

METHODS = ["IBP", "CROWN", "CROWN-IBP", "alpha-CROWN"]
TOL = 1e-5


def _mlp(seed: int, d: int = 6, h: int = 12, k: int = 4, depth: int = 2) -> nn.Module:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    w = d
    for _ in range(depth):
        layers += [nn.Linear(w, h), nn.ReLU()]
        w = h
    layers.append(nn.Linear(w, k))
    return nn.Sequential(*layers).double()


def _sample_ball(x: torch.Tensor, eps: float, n: int, norm: float, gen: torch.Generator) -> torch.Tensor:
    """(B, *s) → (B, n, *s) points inside the ball (and on its surface)."""
    shape = (x.shape[0], n, *x.shape[1:])
    if norm == math.inf:
        u = torch.rand(shape, generator=gen, dtype=x.dtype) * 2 - 1
        u[:, : n // 4] = u[:, : n // 4].sign()  # vertices
    else:
        u = torch.randn(shape, generator=gen, dtype=x.dtype)
        flat = u.reshape(x.shape[0], n, -1)
        r = torch.rand(x.shape[0], n, 1, generator=gen, dtype=x.dtype) ** (1 / flat.shape[-1])
        r[:, : n // 4] = 1.0
        u = (flat / flat.norm(dim=-1, keepdim=True) * r).reshape(shape)
    return x.unsqueeze(1) + eps * u


def _pgd(model: nn.Module, x: torch.Tensor, C: torch.Tensor, eps: float, norm: float, sign: float,
         steps: int = 10) -> torch.Tensor:
    """Minimise sign * (C @ model(x')) per spec row (each row attacked separately):
    returns (B, S) values reached."""
    B, S = C.shape[:2]
    xr = x.unsqueeze(1).expand(B, S, *x.shape[1:]).reshape(B * S, *x.shape[1:])
    Cr = C.reshape(B * S, 1, -1)
    delta = torch.zeros_like(xr, requires_grad=True)
    best = torch.full((B * S,), math.inf, dtype=x.dtype)
    for _ in range(steps):
        v = sign * torch.einsum("nok,nk->n", Cr, model(xr + delta))
        best = torch.minimum(best, v.detach())
        (g,) = torch.autograd.grad(v.sum(), delta)
        with torch.no_grad():
            if norm == math.inf:
                delta -= eps / 4 * g.sign()
                delta.clamp_(-eps, eps)
            else:
                gn = g.reshape(B * S, -1).norm(dim=1).clamp_min(1e-12).reshape(-1, *([1] * (g.dim() - 1)))
                delta -= eps / 4 * g / gn
                dn = delta.reshape(B * S, -1).norm(dim=1).reshape(-1, *([1] * (g.dim() - 1)))
                delta *= torch.clamp(eps / dn.clamp_min(1e-12), max=1.0)
    with torch.no_grad():
        v = sign * torch.einsum("nok,nk->n", Cr, model(xr + delta))
    return torch.minimum(best, v).reshape(B, S) * sign


def _check_inside(model: nn.Module, bm: BoundedModel, x: torch.Tensor, eps: float, norm: float,
                  method: str, C: torch.Tensor, n: int, gen: torch.Generator, **kw: object) -> int:
    lo, up = bm.compute_bounds(x, eps, norm=norm, method=method, C=C, **kw)  # type: ignore[arg-type]
    with torch.no_grad():
        pts = _sample_ball(x, eps, n, norm, gen)
        out = model(pts.reshape(-1, *x.shape[1:])).reshape(x.shape[0], n, -1)
        vals = torch.einsum("bsk,bnk->bns", C, out)
    assert (vals >= lo.unsqueeze(1) - TOL).all(), f"{method}: a sample falls below the lower bound"
    assert (vals <= up.unsqueeze(1) + TOL).all(), f"{method}: a sample exceeds the upper bound"
    worst_lo = _pgd(model, x, C, eps, norm, +1.0)
    worst_up = _pgd(model, x, C, eps, norm, -1.0)
    assert (worst_lo >= lo - TOL).all(), f"{method}: PGD breaks the lower bound"
    assert (worst_up <= up + TOL).all(), f"{method}: PGD breaks the upper bound"
    return int(vals.numel())


@pytest.mark.parametrize("norm", [math.inf, 2.0])
@pytest.mark.parametrize("method", METHODS)
def test_random_mlps_sound(method: str, norm: float) -> None:
    gen = torch.Generator().manual_seed(1)
    cases = 0
    for seed in range(8):
        net = _mlp(seed, depth=1 + seed % 3)
        bm = BoundedModel(net, (6,))
        x = torch.randn(4, 6, generator=gen, dtype=torch.float64)
        y = torch.randint(0, 4, (4,), generator=gen)
        eps = [0.05, 0.2, 0.5][seed % 3]
        cases += _check_inside(net, bm, x, eps, norm, method, margin_spec(y, 4, torch.float64), 150, gen)
    assert cases >= 10_000  # (net, input, sample, spec) cases


def _cnn(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(4, 3))
    with torch.no_grad():
        net[1].running_mean.uniform_(-0.3, 0.3)
        net[1].running_var.uniform_(0.5, 2.0)
        net[1].weight.uniform_(-1.5, 1.5)
    return net.double().eval()


class _Res(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(5, 8)
        self.fc2 = nn.Linear(8, 8)
        self.fc3 = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.fc1(x))
        h = h + torch.relu(self.fc2(h))
        return self.fc3(h)


class _PointNet(nn.Module):
    """PointNet-style: shared Conv1d MLP over points, global max-pool, classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv1d(3, 8, 1)
        self.bn = nn.BatchNorm1d(8)
        self.c2 = nn.Conv1d(8, 16, 1)
        self.fc = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.c1(x)))
        h = torch.relu(self.c2(h))
        h = torch.max(h, 2)[0]
        return self.fc(h)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("arch", ["cnn", "res", "pointnet"])
def test_layer_zoo_sound(arch: str, method: str) -> None:
    gen = torch.Generator().manual_seed(2)
    for seed in range(3):
        if arch == "cnn":
            net, shape = _cnn(seed), (1, 8, 8)
        elif arch == "res":
            torch.manual_seed(seed)
            net, shape = _Res().double(), (5,)
        else:
            torch.manual_seed(seed)
            net, shape = _PointNet().double().eval(), (3, 10)
        bm = BoundedModel(net, shape)
        x = torch.rand(3, *shape, generator=gen, dtype=torch.float64)
        k = bm(x).shape[1]
        C = torch.randn(3, 5, k, generator=gen, dtype=torch.float64)
        kw = {"alpha_iterations": 4} if method == "alpha-CROWN" else {}  # full α-CROWN, few steps (time)
        _check_inside(net, bm, x, 0.1, math.inf, method, C, 300, gen, **kw)


def test_forward_matches_model() -> None:
    for net, shape in [(_cnn(0), (1, 8, 8)), (_Res().double(), (5,)), (_PointNet().double().eval(), (3, 10))]:
        bm = BoundedModel(net, shape)
        x = torch.rand(4, *shape, dtype=torch.float64)
        torch.testing.assert_close(bm(x), net(x))


def _numpy_ibp(net: nn.Sequential, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Naive reference: interval arithmetic neuron by neuron (Linear / ReLU only)."""
    for m in net:
        if isinstance(m, nn.Linear):
            W = m.weight.detach().numpy()
            b = m.bias.detach().numpy()
            nlo = np.zeros((lo.shape[0], W.shape[0]))
            nhi = np.zeros_like(nlo)
            for i in range(W.shape[0]):
                for j in range(W.shape[1]):
                    w = W[i, j]
                    nlo[:, i] += np.where(w >= 0, w * lo[:, j], w * hi[:, j])
                    nhi[:, i] += np.where(w >= 0, w * hi[:, j], w * lo[:, j])
                nlo[:, i] += b[i]
                nhi[:, i] += b[i]
            lo, hi = nlo, nhi
        else:
            lo, hi = np.maximum(lo, 0), np.maximum(hi, 0)
    return lo, hi


def test_ibp_matches_numpy_reference() -> None:
    net = _mlp(3, depth=3)
    bm = BoundedModel(net, (6,), use_compiled=False)
    x = torch.randn(5, 6, dtype=torch.float64)
    lo, up = bm.compute_bounds(x, 0.1, method="IBP")
    rlo, rhi = _numpy_ibp(net, (x - 0.1).numpy(), (x + 0.1).numpy())
    np.testing.assert_allclose(lo.detach().numpy(), rlo, atol=1e-10)
    np.testing.assert_allclose(up.detach().numpy(), rhi, atol=1e-10)


def test_crown_not_looser_than_ibp() -> None:
    """On these MLPs CROWN (CROWN∩IBP intermediate bounds) is never looser than IBP;
    with tighten_with_ibp it is guaranteed, and alpha-CROWN never looser than CROWN."""
    gen = torch.Generator().manual_seed(4)
    strictly = 0
    for seed in range(20):
        net = _mlp(seed, depth=2 + seed % 2, h=16)
        bm = BoundedModel(net, (6,))
        x = torch.randn(4, 6, generator=gen, dtype=torch.float64)
        y = torch.randint(0, 4, (4,), generator=gen)
        il, iu = bm.compute_bounds(x, 0.1, method="IBP", y=y)
        cl, cu = bm.compute_bounds(x, 0.1, method="CROWN", y=y)
        assert (cl >= il - 1e-9).all() and (cu <= iu + 1e-9).all()
        strictly += int((cl > il + 1e-6).sum())
        al, au = bm.compute_bounds(x, 0.1, method="alpha-CROWN", y=y, alpha_iterations=5)
        assert (al >= cl - 1e-9).all() and (au <= cu + 1e-9).all()
    assert strictly > 0
    net = _cnn(1)
    bm = BoundedModel(net, (1, 8, 8))
    x = torch.rand(4, 1, 8, 8, dtype=torch.float64)
    il, iu = bm.compute_bounds(x, 0.1, method="IBP")
    tl, tu = bm.compute_bounds(x, 0.1, method="CROWN", tighten_with_ibp=True)
    cl, cu = bm.compute_bounds(x, 0.1, method="CROWN")
    # the IBP pass inside CROWN reuses the tightened intermediate bounds: at least as tight
    assert (tl >= torch.max(il, cl) - 1e-12).all() and (tu <= torch.min(iu, cu) + 1e-12).all()


def test_zero_eps_is_exact_and_domain_box() -> None:
    net = _mlp(5)
    bm = BoundedModel(net, (6,))
    x = torch.rand(3, 6, dtype=torch.float64)
    for m in METHODS:
        lo, up = bm.compute_bounds(x, 0.0, method=m)
        torch.testing.assert_close(lo, net(x).detach())
        torch.testing.assert_close(up, net(x).detach())
    # x_L/x_U clip the ball: a box inside [0, 1] gives tighter (or equal) bounds
    lo1, up1 = bm.compute_bounds(x, 0.5, method="CROWN")
    lo2, up2 = bm.compute_bounds(x, 0.5, method="CROWN", x_L=torch.zeros_like(x), x_U=torch.ones_like(x))
    assert (lo2 >= lo1 - 1e-9).all() and (up2 <= up1 + 1e-9).all()


def test_margin_spec_naive() -> None:
    y = torch.tensor([2, 0])
    C = margin_spec(y, 3)
    expect = torch.tensor([[[-1, 0, 1], [0, -1, 1]], [[1, -1, 0], [1, 0, -1]]], dtype=torch.float32)
    torch.testing.assert_close(C, expect)


def test_gradients_flow_for_training() -> None:
    net = _mlp(0).float()
    bm = BoundedModel(net, (6,))
    x = torch.randn(4, 6)
    y = torch.tensor([0, 1, 2, 3])
    for m in ["IBP", "CROWN-IBP", "CROWN"]:
        lo, _ = bm.compute_bounds(x, 0.1, method=m, y=y)
        (-lo).sum().backward()
        assert net[0].weight.grad is not None and torch.isfinite(net[0].weight.grad).all()
        net.zero_grad()


# ---------------------------------------------------------------------- bad input
def test_bad_input() -> None:
    net = _mlp(0)
    bm = BoundedModel(net, (6,))
    x = torch.randn(2, 6, dtype=torch.float64)
    with pytest.raises(ValueError, match="eps"):
        bm.compute_bounds(x, -0.1)
    with pytest.raises(ValueError, match="eps"):
        bm.compute_bounds(x, float("nan"))
    with pytest.raises(ValueError, match="x_L"):
        bm.compute_bounds(x, 0.1, x_L=torch.zeros(3, 6, dtype=torch.float64))
    with pytest.raises(ValueError, match="x_U"):
        bm.compute_bounds(x, 0.1, x_U=torch.zeros(2, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="x:"):
        bm.compute_bounds(torch.randn(2, 5, dtype=torch.float64), 0.1)
    with pytest.raises(ValueError, match="method"):
        bm.compute_bounds(x, 0.1, method="LP")
    with pytest.raises(ValueError, match="norm"):
        bm.compute_bounds(x, 0.1, norm=1)
    with pytest.raises(ValueError, match="C"):
        bm.compute_bounds(x, 0.1, C=torch.ones(2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="y"):
        bm.compute_bounds(x, 0.1, y=torch.tensor([0, 9]))
    with torch.no_grad():
        net[2].weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        bm.compute_bounds(x, 0.1)
    with pytest.raises(ValueError, match="NaN"):
        BoundedModel(net, (6,))


def test_unsupported_layer_named() -> None:
    net = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    with pytest.raises(UnsupportedLayerError, match=r"'1'.*LayerNorm"):
        BoundedModel(net, (4,))

    class Exp(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.exp(x)

    with pytest.raises(UnsupportedLayerError, match="exp"):
        BoundedModel(Exp(), (4,))


def test_core_import_does_not_import_torch() -> None:
    code = "import sys, certkit.core; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_ibp_tightness() -> None:
    from certkit.core.bounds import ibp_tightness

    # a linear net with positive weights: IBP is exact (τ = 1)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    bm = BoundedModel(net, (3,))
    x = torch.rand(5, 3, dtype=torch.float64)
    torch.testing.assert_close(ibp_tightness(bm, x), torch.tensor(1.0, dtype=torch.float64))
    # random signs: 0 < τ <= 1, and τ equals the brute-force ratio from the Jacobian
    net = _mlp(7)
    bm = BoundedModel(net, (6,))
    x = torch.randn(4, 6, dtype=torch.float64)
    tau = ibp_tightness(bm, x, reduce=False)
    assert ((tau > 0) & (tau <= 1 + 1e-12)).all()
    for b in range(4):
        J = torch.autograd.functional.jacobian(net, x[b:b + 1]).reshape(4, 6)
        D1 = (net[0](x[b]) > 0).double()
        D2 = (net[2](torch.relu(net[0](x[b]))) > 0).double()
        M = net[4].weight.abs() @ torch.diag(D2) @ net[2].weight.abs() @ torch.diag(D1) @ net[0].weight.abs()
        ref = (J.abs().sum(1) / M.sum(1)).mean()
        torch.testing.assert_close(tau[b], ref)


@pytest.mark.parametrize("method", ["IBP", "CROWN"])
def test_bad_domain_messages(method: str) -> None:
    """Bad x_L / x_U (detected by one pass over the input box) still name the problem."""
    bm = BoundedModel(nn.Sequential(nn.Linear(4, 3)), (4,))
    x = torch.rand(2, 4)
    z, o = torch.zeros_like(x), torch.ones_like(x)
    nan = z.clone()
    nan[1, 2] = float("nan")
    cases = ((dict(x_L=nan, x_U=o), "x_L: contains NaN"), (dict(x_L=z, x_U=nan + 1), "x_U: contains NaN"),
             (dict(x_L=o, x_U=z), "x_L must be <= x_U"), (dict(x_L=2 * o, x_U=3 * o), "empty"),
             (dict(x_L=z, x_U=o, norm=2), "only supported with norm=inf"))
    for kw, msg in cases:
        with pytest.raises(ValueError, match=msg):
            bm.compute_bounds(x, 0.1, method=method, **kw)
    lo, up = bm.compute_bounds(x, 0.1, method=method, x_L=z, x_U=o)
    assert bool((lo <= up).all())
