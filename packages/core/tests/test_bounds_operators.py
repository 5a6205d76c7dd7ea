"""Operators of issue 17 section 2, each with a naive reference (the captured graph computes
the model; a relaxation's lines hold on a dense grid) and a sampling + PGD soundness check
for IBP, CROWN, CROWN-IBP and α-CROWN: activations, affine arithmetic with constants and
buffers (input normalisation), cat / view(-1, N) / permute / transpose / pooling / mean /
pad / matmul with a constant, and a torchvision-style residual network."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from test_bounds import _check_inside  # noqa: E402
from torch import nn  # noqa: E402

from certkit.core.bounds import BoundedModel, activations, margin_spec  # noqa: E402

METHODS = ["IBP", "CROWN", "CROWN-IBP", "alpha-CROWN"]

ACTS: dict[str, nn.Module] = {
    "Sigmoid": nn.Sigmoid(), "Tanh": nn.Tanh(), "LeakyReLU": nn.LeakyReLU(0.1), "LeakyReLU2": nn.LeakyReLU(2.0),
    "GELU": nn.GELU(), "ELU": nn.ELU(), "ELU2": nn.ELU(2.0), "Softplus": nn.Softplus(beta=2.0),
    "Hardtanh": nn.Hardtanh(-0.5, 0.7), "ReLU6": nn.ReLU6(),
}


@pytest.mark.parametrize("name", list(ACTS))
def test_activation_relaxation_holds_on_a_grid(name: str) -> None:
    """Naive reference: on random intervals (crossing kinks, inflection points, far tails),
    the lower / upper lines and the IBP interval enclose f on a dense grid, and the lines
    touch f (they are not looser than needed by more than the grid step allows)."""
    op = BoundedModel(nn.Sequential(ACTS[name]), (1,)).graph.nodes[1]
    assert isinstance(op, activations.Elementwise)
    gen = torch.Generator().manual_seed(0)
    c = torch.randn(400, generator=gen, dtype=torch.float64) * 3
    w = torch.rand(400, generator=gen, dtype=torch.float64) ** 2 * 6
    l, u = c - w, c + w  # noqa: E741
    l[:20], u[:20] = c[:20], c[:20]  # points
    k_lo, b_lo, k_up, b_up = op.relax(l, u)
    il, iu = op.ibp((l, u))
    t = torch.linspace(0, 1, 2001, dtype=torch.float64).unsqueeze(1)
    xs = l + t * (u - l)  # (2001, 400)
    fx = ACTS[name].double()(xs)
    assert bool((fx >= k_lo * xs + b_lo - 1e-9).all()) and bool((fx <= k_up * xs + b_up + 1e-9).all())
    assert bool((fx >= il - 1e-9).all()) and bool((fx <= iu + 1e-9).all())
    gap_lo = (fx - (k_lo * xs + b_lo)).amin(0)
    gap_up = ((k_up * xs + b_up) - fx).amin(0)
    tol = 1e-6 + 4 * (u - l) / 2000  # a touching point between grid points: slope gap x step
    assert bool((gap_lo <= tol).all()) and bool((gap_up <= tol).all())  # each line touches f
    assert bool((fx.amin(0) - il <= tol).all()) and bool((iu - fx.amax(0) <= tol).all())


def _act_mlp(act: nn.Module, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 8), act, nn.Linear(8, 8), act, nn.Linear(8, 3)).double().eval()


@pytest.mark.parametrize("name", list(ACTS))
def test_activation_networks_sound(name: str) -> None:
    gen = torch.Generator().manual_seed(1)
    for seed in range(2):
        net = _act_mlp(ACTS[name], seed)
        bm = BoundedModel(net, (5,))
        x = torch.randn(3, 5, generator=gen, dtype=torch.float64)
        with torch.no_grad():
            assert torch.allclose(bm(x), net(x), atol=1e-12)
        C = margin_spec(torch.tensor([0, 1, 2]), 3, torch.float64)
        for method in METHODS:
            for eps in (0.1, 1.0):
                _check_inside(net, bm, x, eps, math.inf, method, C, 100, gen, alpha_iterations=5)


class Normalize(nn.Module):
    """torchvision-style Normalize as a module with buffers, read in forward."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.4, 0.5, 0.6]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.2, 0.25, 0.3]).view(3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class LeNetish(nn.Module):
    """Normalisation inside forward, F.max_pool2d, x.view(-1, N) (LeNet), inline constants."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = Normalize()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 3 * 3, 6)
        self.fc2 = nn.Linear(6, 3)
        self.register_buffer("scale", torch.tensor(0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        x = F.max_pool2d(F.relu(self.bn(self.conv(x))), 2)
        x = x.view(-1, 4 * 3 * 3)
        x = torch.sub(self.fc(x), 0.25, alpha=2) * self.scale
        return self.fc2(1 - torch.tanh(-x))


class Shapes(nn.Module):
    """cat, permute, transpose, pad (non-zero value), avg / adaptive pooling, mean, and
    matmul with a constant on either side."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.register_buffer("W", torch.randn(22, 5))
        self.register_buffer("L", torch.randn(4, 3))
        self.out = nn.Linear(4 * 5 + 3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.conv(x))  # (B, 3, 6, 6)
        b = F.avg_pool2d(F.pad(a, (1, 1, 0, 2), value=0.5), 2)  # (B, 3, 4, 4)
        c = F.adaptive_avg_pool2d(a, (3, 2))  # (B, 3, 3, 2)
        d = torch.cat([b.flatten(2), c.flatten(2)], 2)  # (B, 3, 22)
        e = F.leaky_relu(d.permute(0, 2, 1).transpose(1, 2), 0.2)  # (B, 3, 22)
        g = torch.matmul(self.L, e)  # (B, 4, 22): constant on the left
        h = torch.matmul(g, self.W)  # (B, 4, 5): constant on the right
        m = e.mean(2)  # (B, 3)
        return self.out(torch.cat([h.reshape(h.shape[0], -1), m], 1))


class BasicBlock(nn.Module):
    """torchvision's BasicBlock: conv-BN-ReLU(inplace)-conv-BN, ``out += identity``, ReLU."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                           if stride != 1 or cin != cout else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)  # type: ignore[no-any-return]


class ResNet(nn.Module):
    """torchvision-style ResNet (stem conv-BN-ReLU, max pool, two BasicBlock stages,
    adaptive average pool, fc) for (3, S, S) images."""

    def __init__(self, width: int = 4, classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(2)
        self.layer1 = nn.Sequential(BasicBlock(width, width, 1))
        self.layer2 = nn.Sequential(BasicBlock(width, 2 * width, 2))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(2 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)  # type: ignore[no-any-return]


def _randomise_bn(net: nn.Module) -> nn.Module:
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
    return net.eval()


ZOO = {"lenet_norm": (LeNetish, (3, 8, 8)), "shapes": (Shapes, (2, 6, 6)), "resnet": (ResNet, (3, 12, 12))}


@pytest.mark.parametrize("arch", list(ZOO))
def test_structural_networks_sound(arch: str) -> None:
    cls, shape = ZOO[arch]
    torch.manual_seed(0)
    net = _randomise_bn(cls()).double()
    bm = BoundedModel(net, shape)
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(2, *shape, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(bm(x), net(x), atol=1e-10)  # naive reference: the graph is the model
    K = bm.graph.shapes[bm.graph.output][0]
    C = margin_spec(torch.tensor([0, 1]), K, torch.float64)
    for method in METHODS:
        _check_inside(net, bm, x, 0.02, math.inf, method, C, 60, gen, alpha_iterations=3)


def test_buffers_read_live_and_bad_constants() -> None:
    """A normalisation buffer changed after wrapping is seen (no copy at capture); constants
    that change the shape, or divide by zero, are refused naming the node."""
    torch.manual_seed(0)
    net = nn.Sequential(Normalize(), nn.Flatten(), nn.Linear(12, 2)).eval()
    bm = BoundedModel(net, (3, 2, 2))
    x = torch.rand(2, 3, 2, 2)
    net[0].mean.data.add_(1.0)
    with torch.no_grad():
        assert torch.allclose(bm(x), net(x))
        lo, up = bm.compute_bounds(x, 0.0, method="IBP")
    assert torch.allclose(lo, net(x), atol=1e-5) and torch.allclose(up, net(x), atol=1e-5)

    class Grow(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + torch.ones(4, 3)  # (B, 3) + (4, 3): changes the shape

    class DivZero(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x / torch.tensor([1.0, 0.0, 2.0])

    from certkit.core.bounds import UnsupportedLayerError

    with pytest.raises(UnsupportedLayerError, match=r"'add'.*broadcast"):
        BoundedModel(Grow(), (3,))
    with pytest.raises(UnsupportedLayerError, match=r"'truediv'.*0"):
        BoundedModel(DivZero(), (3,))


class _Linear(nn.Module):
    """Only affine structural ops (no activation): CROWN must be exact."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.register_buffer("W", torch.randn(22, 4))
        self.register_buffer("L", torch.randn(2, 3))
        self.register_buffer("mean", torch.tensor([0.1, -0.2]).view(2, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.conv((x - self.mean) * 2.0)
        b = F.avg_pool2d(F.pad(a, (1, 1, 0, 2), value=0.5), 2)
        c = F.adaptive_avg_pool2d(a, (3, 2))
        d = torch.cat([b.flatten(2), c.flatten(2)], 2).permute(0, 2, 1).transpose(1, 2)
        e = torch.matmul(torch.matmul(self.L, d), self.W)  # (B, 2, 4)
        return torch.cat([e.reshape(e.shape[0], -1), d.mean(2), -d.mean((1, 2)).unsqueeze(1)], 1)


def test_affine_structural_ops_exact_against_the_jacobian() -> None:
    """Naive reference for the linear ops: the network is affine, so its exact range over
    the box is J·mid ± |J|·rad with J its Jacobian (autograd); IBP may be looser, CROWN
    must equal it."""
    torch.manual_seed(0)
    net = _Linear().double().eval()
    shape = (2, 6, 6)
    bm = BoundedModel(net, shape)
    x = torch.rand(2, *shape, dtype=torch.float64)
    eps = 0.1
    J = torch.func.vmap(torch.func.jacrev(lambda z: net(z.unsqueeze(0)).squeeze(0)))(x)  # (B, K, *shape)
    J = J.reshape(2, J.shape[1], -1)
    with torch.no_grad():
        y = net(x)
    rad = eps * J.abs().sum(-1)
    for method in ("CROWN", "CROWN-IBP", "alpha-CROWN"):
        lo, up = bm.compute_bounds(x, eps, method=method, alpha_iterations=2)
        torch.testing.assert_close(lo.detach(), y - rad, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(up.detach(), y + rad, rtol=1e-9, atol=1e-9)
    with torch.no_grad():
        il, iu = bm.compute_bounds(x, eps, method="IBP")
    assert bool((il <= y - rad + 1e-9).all()) and bool((iu >= y + rad - 1e-9).all())
