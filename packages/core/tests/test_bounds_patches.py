"""Structured (patches) CROWN intermediate bounds (certkit.core.bounds.patches): equal to the
dense ("matrix") pass, sound on sampled points, and a planted wrong padding mask fails."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from certkit.core.bounds import BoundedModel, margin_spec, patches

from test_bounds_operators import BasicBlock, ResNet, _randomise_bn  # isort: skip


class CnnBN(nn.Module):
    """conv-BN-ReLU with padding 1, a stride-2 conv with padding 0 and bias, BN, then a
    grouped conv with padding 1 right after that BN (no ReLU between: the entries of its
    windows over the padding would carry the BN shift)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 6, 3, 1, 1)
        self.b1 = nn.BatchNorm2d(6)
        self.c2 = nn.Conv2d(6, 8, 3, 2, 0)
        self.b2 = nn.BatchNorm2d(8)
        self.c3 = nn.Conv2d(8, 8, 3, 1, 1, groups=2)
        self.fc = nn.Linear(8 * 5 * 5, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.b1(self.c1(x)))
        x = F.relu(self.c3(self.b2(self.c2(x))))
        return self.fc(x.flatten(1))


class Block(nn.Module):
    """A ResNet block with a stride-2 conv and a 1×1 stride-2 downsample shortcut, after a
    per-pixel input normalisation and before an average pool."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.rand(3, 12, 12) * 0.2)
        self.c0 = nn.Conv2d(3, 4, 3, 1, 1)
        self.block = BasicBlock(4, 8, 2)
        self.block2 = BasicBlock(8, 8, 1)
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(8 * 3 * 3, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.c0((x - self.mean) * 2.0))
        x = self.pool(self.block2(self.block(x)))
        return self.fc(x.flatten(1))


NETS = {"cnn_bn": (CnnBN, (3, 12, 12)), "resnet_block": (Block, (3, 12, 12)),
        "resnet": (lambda: ResNet(4, 5), (3, 12, 12))}


def _net(arch: str, dtype: torch.dtype = torch.float64) -> tuple[nn.Module, tuple[int, ...]]:
    cls, shape = NETS[arch]
    torch.manual_seed(0)
    net = _randomise_bn(cls()).to(dtype)
    for p in net.parameters():
        p.requires_grad_(False)
    return net, shape


def _both(net: nn.Module, shape: tuple[int, ...], x: torch.Tensor, **kw: object) -> tuple[tuple, tuple]:
    out = []
    for mode in ("matrix", "patches"):
        bm = BoundedModel(net, shape, use_compiled=False, conv_mode=mode)
        with torch.no_grad():
            out.append(bm.compute_bounds(x, method="CROWN", **kw))  # type: ignore[arg-type]
    return out[0], out[1]


def _maxdiff(a: tuple, b: tuple) -> float:
    return max(float((p - q).abs().max()) for p, q in zip(a, b))


@pytest.mark.parametrize("arch", list(NETS))
@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("norm,domain", [(math.inf, False), (math.inf, True), (2.0, False)])
def test_patches_equal_dense(arch: str, B: int, norm: float, domain: bool) -> None:
    net, shape = _net(arch)
    gen = torch.Generator().manual_seed(B)
    x = torch.rand(B, *shape, generator=gen, dtype=torch.float64)
    eps = 0.03 if norm == math.inf else 0.3
    kw: dict[str, object] = dict(eps=eps, norm=norm, C=margin_spec(torch.arange(B) % 5, 5, torch.float64))
    if domain:
        kw.update(x_L=(x - 0.01).clamp(0, 1), x_U=(x + 0.02).clamp(0, 1))
    dense, pat = _both(net, shape, x, **kw)
    assert _maxdiff(dense, pat) < 1e-9
    # the intermediate bounds are CROWN's, not IBP's: the pass was not vacuous
    bm = BoundedModel(net, shape, use_compiled=False)
    ib = bm.intermediate_bounds(x, eps, norm, "IBP")
    cb = bm.intermediate_bounds(x, eps, norm, "CROWN")
    assert any(bool((cb[k][0] > ib[k][0] + 1e-6).any()) for k in ib)


def test_patches_equal_dense_float32() -> None:
    net, shape = _net("resnet_block", torch.float32)
    x = torch.rand(2, *shape)
    dense, pat = _both(net, shape, x, eps=0.02)
    assert _maxdiff(dense, pat) < 1e-5


@pytest.mark.parametrize("arch", list(NETS))
def test_patches_sound_on_samples(arch: str) -> None:
    """Every intermediate pre-activation and output of sampled points of the ℓ∞ box lies
    inside the patches CROWN bounds."""
    net, shape = _net(arch)
    bm = BoundedModel(net, shape, use_compiled=False)
    gen = torch.Generator().manual_seed(5)
    x = torch.rand(2, *shape, generator=gen, dtype=torch.float64)
    eps = 0.05
    inter = bm.intermediate_bounds(x, eps, method="CROWN")
    with torch.no_grad():
        lo, up = bm.compute_bounds(x, eps, method="CROWN")
    g = bm.graph
    pre = {g.nodes[i].name: g.inputs[i][0] for i, op in enumerate(g.nodes) if op.nonlinear}
    for _ in range(20):
        d = (torch.rand(x.shape, generator=gen, dtype=x.dtype) * 2 - 1).sign() * eps  # vertices
        d[0] = (torch.rand(x[0].shape, generator=gen, dtype=x.dtype) * 2 - 1) * eps
        vals = g.forward(x + d)
        for name, j in pre.items():
            lj, uj = inter[name]
            assert bool((vals[j] >= lj - 1e-9).all()) and bool((vals[j] <= uj + 1e-9).all()), name
        out = vals[g.output]
        assert bool((out >= lo - 1e-9).all()) and bool((out <= up + 1e-9).all())


def test_planted_padding_mask_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """Entries over a convolution's zero padding must not contribute (BN shift, conv bias,
    ReLU relaxation): keeping them changes the bounds."""
    net, shape = _net("cnn_bn")
    x = torch.rand(2, *shape, dtype=torch.float64)
    dense, pat = _both(net, shape, x, eps=0.03)
    assert _maxdiff(dense, pat) < 1e-9
    monkeypatch.setattr(patches, "mask_padding", lambda p, hw: p)
    _, wrong = _both(net, shape, x, eps=0.03)
    assert _maxdiff(dense, wrong) > 1e-3


def test_to_dense_and_windows_roundtrip() -> None:
    """A patch placed densely, then read back through the windows of the dense tensor."""
    gen = torch.Generator().manual_seed(0)
    hr, wr = torch.tensor([0, 2, 3]), torch.tensor([1, 0, 3])
    p = patches.Patches(torch.randn(2, 3, 5, 5, 4, generator=gen, dtype=torch.float64), (2, 2), (2, 2), hr, wr)
    p = patches.mask_padding(p, (7, 7))
    D = patches.to_dense(p, (4, 7, 7))  # (2, 3, 4, 7, 7)
    for r in range(3):
        back = patches.windows(D[:, r], p, (5, 5))[:, r]
        assert torch.equal(back, p.P[:, r])  # type: ignore[index]
    # the dense row sums equal the patch sums: nothing outside the node was kept
    assert torch.allclose(D.sum((2, 3, 4)), p.P.sum((2, 3, 4)))  # type: ignore[union-attr]


def test_conv_mode_argument() -> None:
    net, shape = _net("cnn_bn")
    with pytest.raises(ValueError, match="conv_mode"):
        BoundedModel(net, shape, conv_mode="dense")


def test_large_conv_chain_crown_runs_in_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    """CROWN on a conv chain above compiled.CROWN_CONV_MACS goes to the torch patches pass
    (faster there); IBP and small nets stay compiled."""
    from certkit.core.bounds import compiled

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                        nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).eval()
    bm = BoundedModel(net, (1, 6, 6))
    x = torch.rand(2, 1, 6, 6)
    lo, hi = x - 0.1, x + 0.1
    C = torch.eye(3).expand(2, 3, 3)
    with torch.no_grad():
        assert compiled.supported(bm) and compiled.conv_macs(bm) == 4 * 36 * 9 + 4 * 36 * 4 * 9
        assert compiled.compute(bm, lo, hi, C, "CROWN") is not None
        monkeypatch.setattr(compiled, "CROWN_CONV_MACS", 1000)
        assert compiled.compute(bm, lo, hi, C, "CROWN") is None
        assert compiled.compute(bm, lo, hi, C, "IBP") is not None
        ref = BoundedModel(net, (1, 6, 6), use_compiled=False).compute_bounds(x, 0.1)
        got = bm.compute_bounds(x, 0.1)
    assert _maxdiff(ref, got) == 0.0  # the same torch pass


def test_patches_chunks_equal_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start rows split into chunks of 3 (example, neuron) pairs give the same bounds."""
    net, shape = _net("resnet_block")
    x = torch.rand(2, *shape, dtype=torch.float64)
    dense, pat = _both(net, shape, x, eps=0.03)
    monkeypatch.setattr(patches, "CHUNK_ELEMENTS", 1)
    monkeypatch.setattr(patches, "CHUNK_MIN_PAIRS", 3)
    _, chunked = _both(net, shape, x, eps=0.03)
    assert _maxdiff(pat, chunked) < 1e-12 and _maxdiff(dense, chunked) < 1e-9
