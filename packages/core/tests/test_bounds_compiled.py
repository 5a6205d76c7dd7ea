"""The compiled IBP/CROWN kernels (cpp/src/bounds) equal the torch layer, and the torch
layer dispatches to them only for inference-only CPU calls on supported chains."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from certkit.core.bounds import BoundedModel, compiled, margin_spec  # noqa: E402


def _nets(seed: int) -> list[tuple[nn.Module, tuple[int, ...]]]:
    torch.manual_seed(seed)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(16, 24), nn.ReLU(), nn.Linear(24, 24), nn.ReLU(),
                        nn.Linear(24, 24), nn.ReLU(), nn.Linear(24, 5))
    cnn = nn.Sequential(nn.Conv2d(1, 4, 3, stride=1, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 4, stride=2, padding=1),
                        nn.ReLU(), nn.Flatten(), nn.Linear(24, 12), nn.ReLU(), nn.Linear(12, 5))
    return [(mlp, (1, 4, 4)), (cnn, (1, 4, 4))]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("method", ["IBP", "CROWN", "CROWN-IBP"])
def test_compiled_equals_torch(method: str, dtype: torch.dtype) -> None:
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    for seed in range(4):
        for net, shape in _nets(seed):
            net = net.to(dtype)
            fast = BoundedModel(net, shape)
            ref = BoundedModel(net, shape, use_compiled=False)
            assert compiled.supported(fast)
            x = torch.rand(6, *shape, dtype=dtype)
            y = torch.randint(0, 5, (6,))
            for eps in (0.02, 0.2):
                with torch.no_grad():
                    l1, u1 = fast.compute_bounds(x, eps, method=method, y=y,
                                                 x_L=torch.zeros_like(x), x_U=torch.ones_like(x))
                    l2, u2 = ref.compute_bounds(x, eps, method=method, y=y,
                                                x_L=torch.zeros_like(x), x_U=torch.ones_like(x))
                np.testing.assert_allclose(l1.numpy(), l2.numpy(), atol=tol, rtol=tol)
                np.testing.assert_allclose(u1.numpy(), u2.numpy(), atol=tol, rtol=tol)


def test_dispatch_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = compiled.compute

    def spy(*a: object, **k: object) -> object:
        calls.append(1)
        return real(*a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(compiled, "compute", spy)
    net, shape = _nets(0)[0]
    bm = BoundedModel(net, shape)
    x = torch.rand(2, *shape)
    with torch.no_grad():
        bm.compute_bounds(x, 0.1, method="CROWN")
    assert len(calls) == 1
    bm.compute_bounds(x, 0.1, method="CROWN")  # gradients wanted: torch path
    with torch.no_grad():
        bm.compute_bounds(x, 0.1, method="CROWN", norm=2)  # ℓ2: torch path
        bm.compute_bounds(x, 0.1, method="alpha-CROWN")
    assert len(calls) == 1
    tanh = BoundedModel(nn.Sequential(nn.Linear(4, 4), nn.Tanh()), (4,))  # not in the kernels: torch path
    assert not compiled.supported(tanh)
    with torch.no_grad():
        tanh.compute_bounds(torch.rand(2, 4), 0.1, method="CROWN")
    assert len(calls) == 1


def test_compiled_nan_weights_rejected() -> None:
    net, shape = _nets(1)[0]
    bm = BoundedModel(net, shape)
    with torch.no_grad():
        net[3].bias[0] = float("nan")
        with pytest.raises(ValueError, match="NaN"):
            bm.compute_bounds(torch.rand(1, *shape), 0.1)


def test_kernel_rejects_bad_buffers() -> None:
    from certkit.core._ext import core_ext

    meta = np.array([4, 3] + [0] * 12, dtype=np.int64)
    W = np.ones((3, 4), np.float32)
    lo = np.zeros((2, 4), np.float32)
    with pytest.raises(ValueError, match="C"):
        core_ext.bounds.compute([(0, W, None, meta)], lo, lo, np.zeros((2, 1, 5), np.float32), 0)
    with pytest.raises(ValueError, match="W"):
        core_ext.bounds.compute([(0, np.ones((2, 4), np.float32), None, meta)], lo, lo,
                                np.zeros((2, 1, 3), np.float32), 0)
    with pytest.raises(TypeError):
        core_ext.bounds.compute([(0, W, None, meta)], lo.astype(np.int32), lo, np.zeros((2, 1, 3), np.float32), 0)


def _bn_nets(seed: int) -> list[tuple[nn.Module, tuple[int, ...]]]:
    """Certified-training style nets: BN after every Linear/Conv, with non-trivial running
    statistics and affine parameters."""
    torch.manual_seed(seed)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(16, 20), nn.BatchNorm1d(20), nn.ReLU(), nn.Linear(20, 20),
                        nn.BatchNorm1d(20), nn.ReLU(), nn.Linear(20, 5))
    cnn = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.Conv2d(4, 6, 4, stride=2, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.Flatten(),
                        nn.Linear(24, 12), nn.BatchNorm1d(12), nn.ReLU(), nn.Linear(12, 5))
    out = []
    for net in (mlp, cnn):
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                with torch.no_grad():
                    m.running_mean.uniform_(-0.5, 0.5)
                    m.running_var.uniform_(0.3, 2.0)
                    m.weight.uniform_(-1.5, 1.5)  # negative scales flip interval ends
                    m.bias.uniform_(-0.3, 0.3)
        out.append((net.eval(), (1, 4, 4)))
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("method", ["IBP", "CROWN", "CROWN-IBP"])
def test_bn_folded_equals_unfolded(method: str, dtype: torch.dtype) -> None:
    """Eval-mode BN folded into the Linear/Conv before it (compiled kernels) gives the same
    bounds as the torch layer's separate BN op."""
    tol = 2e-4 if dtype == torch.float32 else 1e-9
    for seed in range(3):
        for net, shape in _bn_nets(seed):
            net = net.to(dtype)
            fast = BoundedModel(net, shape)
            ref = BoundedModel(net, shape, use_compiled=False)
            assert compiled.supported(fast)
            assert sum(len(layer[5]) for layer in fast._compiled_plan) == (2 if len(net) == 8 else 3)
            x = torch.rand(5, *shape, dtype=dtype)
            y = torch.randint(0, 5, (5,))
            for eps in (0.01, 0.1):
                kw = dict(method=method, y=y, x_L=torch.zeros_like(x), x_U=torch.ones_like(x))
                with torch.no_grad():
                    l1, u1 = fast.compute_bounds(x, eps, **kw)
                    l2, u2 = ref.compute_bounds(x, eps, **kw)
                np.testing.assert_allclose(l1.numpy(), l2.numpy(), atol=tol, rtol=tol)
                np.testing.assert_allclose(u1.numpy(), u2.numpy(), atol=tol, rtol=tol)
                # soundness of the folded bounds against sampled inputs
                xs = (x.unsqueeze(1) + eps * (2 * torch.rand(5, 64, *shape, dtype=dtype) - 1)).clamp(0, 1)
                with torch.no_grad():
                    out = net(xs.reshape(-1, *shape)).reshape(5, 64, 5)
                    Cm = margin_spec(y, 5, dtype)
                    vals = torch.einsum("bsk,bnk->bns", Cm, out)
                assert bool((vals >= l1.unsqueeze(1) - 1e-5).all()) and bool((vals <= u1.unsqueeze(1) + 1e-5).all())


def test_bn_train_mode_or_unfoldable_uses_torch() -> None:
    net, shape = _bn_nets(0)[0]
    bm = BoundedModel(net, shape)
    assert compiled.supported(bm)
    net.train()
    assert not compiled.supported(bm)  # batch statistics: the torch layer handles it
    net.eval()
    assert compiled.supported(bm)
    # BN first (no Linear/Conv before it): not folded, torch path
    pre = nn.Sequential(nn.Flatten(), nn.BatchNorm1d(16), nn.Linear(16, 3)).eval()
    assert not compiled.supported(BoundedModel(pre, (1, 4, 4)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_windowed_conv_path_equals_torch(dtype: torch.dtype) -> None:
    """Larger maps, so the kernels' windowed (patch-local) transposed conv runs for the
    CROWN intermediate bounds of conv neurons (windows well below a quarter of the map)."""
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    for seed in range(3):
        torch.manual_seed(seed)
        net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Conv2d(3, 4, 4, stride=2, padding=1),
                            nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 3, stride=1),
                            nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 5)).to(dtype).eval()
        shape = (1, 12, 12)
        fast, ref = BoundedModel(net, shape), BoundedModel(net, shape, use_compiled=False)
        assert compiled.supported(fast)
        x = torch.rand(3, *shape, dtype=dtype)
        for eps in (0.01, 0.05):
            with torch.no_grad():
                l1, u1 = fast.compute_bounds(x, eps, method="CROWN")
                l2, u2 = ref.compute_bounds(x, eps, method="CROWN")
                i1 = fast.compute_bounds(x, eps, method="IBP")
            np.testing.assert_allclose(l1.numpy(), l2.numpy(), atol=tol, rtol=tol)
            np.testing.assert_allclose(u1.numpy(), u2.numpy(), atol=tol, rtol=tol)
            assert bool((l1 >= i1[0] - tol).all()) and bool((u1 <= i1[1] + tol).all())  # CROWN ⊆ IBP here


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_blas_and_microkernel_paths_equal_torch(dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch) -> None:
    """Wide enough layers (>= 32 inputs, >= 16 coefficient rows) for the BLAS GEMM path
    (dense and column-packed); CERTKIT_BOUNDS_BLAS=0 forces the micro-kernel. Both equal
    the torch layer (the BLAS path silently falls back when no OpenBLAS is installed)."""
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    torch.manual_seed(7)
    net = nn.Sequential(nn.Linear(40, 64), nn.ReLU(), nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 6)).to(dtype)
    ref = BoundedModel(net, (40,), use_compiled=False)
    x = torch.rand(3, 40, dtype=dtype)
    for eps in (0.005, 0.05, 0.5):  # from mostly stable (packed columns) to mostly unstable (dense)
        with torch.no_grad():
            l0, u0 = ref.compute_bounds(x, eps, method="CROWN")
            for flag in ("1", "0"):
                monkeypatch.setenv("CERTKIT_BOUNDS_BLAS", flag)
                l1, u1 = BoundedModel(net, (40,)).compute_bounds(x, eps, method="CROWN")
                np.testing.assert_allclose(l1.numpy(), l0.numpy(), atol=tol, rtol=tol)
                np.testing.assert_allclose(u1.numpy(), u0.numpy(), atol=tol, rtol=tol)


def _wide_nets(seed: int, dtype: torch.dtype) -> list[tuple[nn.Module, tuple[int, ...]]]:
    """Widths that are not multiples of the IBP kernel's 16-column panels, a padded strided
    conv whose output-position count is not a multiple of its 6-row tiles."""
    torch.manual_seed(seed)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(37, 33), nn.ReLU(), nn.Linear(33, 70), nn.ReLU(), nn.Linear(70, 7))
    cnn = nn.Sequential(nn.Conv2d(2, 5, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(5, 17, 2, stride=1, padding=0),
                        nn.ReLU(), nn.Flatten(), nn.Linear(17 * 3 * 3, 19), nn.ReLU(), nn.Linear(19, 7))
    return [(mlp.to(dtype).eval(), (37,)), (cnn.to(dtype).eval(), (2, 7, 7))]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ibp_row_independent_of_batch(dtype: torch.dtype) -> None:
    """Example i's IBP bounds are bit-identical alone (B=1), as row i of B=64 and in any
    split of the batch (the batched kernel sums every output in the same order)."""
    for net, shape in _wide_nets(0, dtype):
        bm = BoundedModel(net, shape)
        assert compiled.supported(bm)
        x = torch.rand(64, *shape, dtype=dtype)
        y = torch.randint(0, 7, (64,))
        kw = dict(method="IBP", x_L=torch.zeros_like(x), x_U=torch.ones_like(x))
        with torch.no_grad():
            lo, up = bm.compute_bounds(x, 0.05, y=y, **kw)
            for i in (0, 1, 5, 6, 35, 36, 63):
                l1, u1 = bm.compute_bounds(x[i:i + 1], 0.05, y=y[i:i + 1], method="IBP",
                                           x_L=torch.zeros_like(x[i:i + 1]), x_U=torch.ones_like(x[i:i + 1]))
                assert torch.equal(l1[0], lo[i]) and torch.equal(u1[0], up[i])
            parts = [(0, 7), (7, 43), (43, 64)]
            for a, b in parts:
                lp, upp = bm.compute_bounds(x[a:b], 0.05, y=y[a:b], method="IBP",
                                            x_L=torch.zeros_like(x[a:b]), x_U=torch.ones_like(x[a:b]))
                assert torch.equal(lp, lo[a:b]) and torch.equal(upp, up[a:b])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ibp_batched_equals_reference_and_encloses(dtype: torch.dtype) -> None:
    """Batched IBP kernel vs a naive float64 interval reference (layer by layer, lower /
    upper ends with W+ / W-), and sampled inputs stay inside the bounds."""
    tol = 2e-5 if dtype == torch.float32 else 1e-11
    for net, shape in _wide_nets(1, dtype):
        bm = BoundedModel(net, shape)
        B = 40
        x = torch.rand(B, *shape, dtype=dtype)
        y = torch.randint(0, 7, (B,))
        eps = 0.1
        xl, xu = (x - eps).clamp(0, 1), (x + eps).clamp(0, 1)
        with torch.no_grad():
            lo, up = bm.compute_bounds(x, eps, y=y, method="IBP", x_L=torch.zeros_like(x), x_U=torch.ones_like(x))
            # naive reference in float64: intervals through each module
            lr, ur = xl.double(), xu.double()
            mods = list(net)
            for j, m in enumerate(mods):
                if isinstance(m, nn.Flatten):
                    lr, ur = lr.flatten(1), ur.flatten(1)
                elif isinstance(m, nn.ReLU):
                    lr, ur = lr.clamp_min(0), ur.clamp_min(0)
                elif j == len(mods) - 1:  # last Linear merged with the margin spec
                    Cm = margin_spec(y, 7, torch.float64)
                    Wc = torch.einsum("bsk,kn->bsn", Cm, m.weight.double())
                    bc = torch.einsum("bsk,k->bs", Cm, m.bias.double())
                    lr, ur = (bc + torch.einsum("bsn,bn->bs", Wc.clamp_min(0), lr)
                              + torch.einsum("bsn,bn->bs", Wc.clamp_max(0), ur),
                              bc + torch.einsum("bsn,bn->bs", Wc.clamp_min(0), ur)
                              + torch.einsum("bsn,bn->bs", Wc.clamp_max(0), lr))
                else:
                    m64 = __import__("copy").deepcopy(m).double()
                    W = m64.weight
                    f = (lambda v, w: nn.functional.linear(v, w)) if isinstance(m, nn.Linear) else (
                        lambda v, w, m64=m64: nn.functional.conv2d(v, w, stride=m64.stride, padding=m64.padding))
                    lr, ur = (f(lr, W.clamp_min(0)) + f(ur, W.clamp_max(0)),
                              f(ur, W.clamp_min(0)) + f(lr, W.clamp_max(0)))
                    b = m64.bias.reshape(1, -1, *([1] * (lr.dim() - 2)))
                    lr, ur = lr + b, ur + b
        np.testing.assert_allclose(lo.double().numpy(), lr.numpy(), atol=tol, rtol=0)
        np.testing.assert_allclose(up.double().numpy(), ur.numpy(), atol=tol, rtol=0)
        xs = xl.unsqueeze(1) + (xu - xl).unsqueeze(1) * torch.rand(B, 50, *shape, dtype=dtype)
        with torch.no_grad():
            out = net(xs.reshape(-1, *shape)).reshape(B, 50, 7)
            vals = torch.einsum("bsk,bnk->bns", margin_spec(y, 7, dtype), out)
        slack = 1e-5 if dtype == torch.float32 else 1e-12
        assert bool((vals >= lo.unsqueeze(1) - slack).all()) and bool((vals <= up.unsqueeze(1) + slack).all())


def test_ibp_cached_operands_equal_built_and_checked() -> None:
    """The IBP operands cached in Python give the same bounds as the kernel building them
    itself (4-tuple layers), and a wrongly shaped cache is a ValueError."""
    from certkit.core._ext import core_ext

    for net, shape in _wide_nets(2, torch.float32):
        bm = BoundedModel(net, shape)
        assert compiled.supported(bm)
        layers = compiled._arrays(bm, np.dtype(np.float32))
        assert all(len(t) == 5 for t in layers if t[0] != 2)
        x = np.random.default_rng(0).random((9, int(np.prod(shape))), dtype=np.float32)
        lo, hi = np.clip(x - 0.1, 0, 1), np.clip(x + 0.1, 0, 1)
        C = margin_spec(torch.randint(0, 7, (9,)), 7).numpy()
        a = core_ext.bounds.compute(layers, lo, hi, C, 0)
        b = core_ext.bounds.compute([t[:4] for t in layers], lo, hi, C, 0)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
        bad = [t if t[0] == 2 else (*t[:4], t[4][:, :-1]) for t in layers]
        with pytest.raises(ValueError, match="ibp"):
            core_ext.bounds.compute(bad, lo, hi, C, 0)


class _Norm(nn.Module):
    """Input normalisation with buffers (per channel) and a plain tensor attribute."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.linspace(0.2, 0.6, channels).view(channels, 1, 1))
        self.std = torch.linspace(0.3, 0.5, channels).view(channels, 1, 1)  # not a buffer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class _Scaled(nn.Module):
    """``layer(x) * c + d`` after a Linear / Conv (per feature / channel constants)."""

    def __init__(self, layer: nn.Module, n: int, conv: bool) -> None:
        super().__init__()
        self.layer = layer
        shape = (n, 1, 1) if conv else (n,)
        self.register_buffer("c", torch.linspace(-1.5, 2.0, n).view(shape))
        self.register_buffer("d", torch.linspace(-0.3, 0.4, n).view(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x) * self.c + self.d


def _affine_nets(seed: int) -> list[tuple[nn.Module, bool]]:
    """(net, the kernels take it): normalisation folded into the first layer, per-channel
    scaling folded into the layer before it; a shift into a zero-padded conv is not."""
    torch.manual_seed(seed)
    mlp = nn.Sequential(_Norm(1), nn.Flatten(), _Scaled(nn.Linear(16, 12), 12, False), nn.ReLU(), nn.Linear(12, 5))
    cnn = nn.Sequential(_Norm(1), _Scaled(nn.Conv2d(1, 4, 3), 4, True), nn.ReLU(), nn.Flatten(), nn.Linear(16, 5))
    padded = nn.Sequential(_Norm(1), nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(64, 5))
    return [(mlp.eval(), True), (cnn.eval(), True), (padded.eval(), False)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_affine_folded_equals_torch_and_follows_constants(dtype: torch.dtype) -> None:
    """Normalisation / scaling constants folded into the kernels' layers give the torch
    layer's bounds; a later change of a buffer or of a plain attribute is seen (the
    constants' values are part of the cache key)."""
    tol = 2e-4 if dtype == torch.float32 else 1e-9
    for seed in range(2):
        for net, fused in _affine_nets(seed):
            net = net.to(dtype)
            net[0].std = net[0].std.to(dtype)
            fast = BoundedModel(net, (1, 4, 4))
            assert compiled.supported(fast) == fused
            x = torch.rand(4, 1, 4, 4, dtype=dtype)
            for method in ("IBP", "CROWN"):
                for change in (None, "mean", "std"):
                    if change == "mean":
                        net[0].mean.add_(0.1)
                    elif change == "std":
                        net[0].std.mul_(1.5)
                    ref = BoundedModel(net, (1, 4, 4), use_compiled=False)
                    with torch.no_grad():
                        l1, u1 = fast.compute_bounds(x, 0.05, method=method)
                        l2, u2 = ref.compute_bounds(x, 0.05, method=method)
                    np.testing.assert_allclose(l1.numpy(), l2.numpy(), atol=tol, rtol=tol)
                    np.testing.assert_allclose(u1.numpy(), u2.numpy(), atol=tol, rtol=tol)
