"""The compiled CROWN ReLU rule (certkit.core.bounds.fused, cpp/src/bounds/relu_rule.cpp)
against the torch rules it replaces: the same coefficients (bit for bit: one product each)
and the same bias up to summation order, on patches with windows over the padding, per-row
examples, a batch of rows, dense rows in both memory layouts, and whole nets."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from certkit.core.bounds import BoundedModel, fused, margin_spec, ops, patches
from certkit.core.bounds.patches import Patches

from test_bounds_operators import ResNet, _randomise_bn  # isort: skip
from test_bounds_patches import CnnBN  # isort: skip


@pytest.fixture
def torch_rules():
    """Run the block with the torch rules (the compiled rule switched off)."""
    class _Off:
        def __enter__(self) -> None:
            fused.ENABLED = False

        def __exit__(self, *exc: object) -> None:
            fused.ENABLED = True
    return _Off()


def _bounds(C: int, H: int, B: int, dtype: torch.dtype, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    l = torch.randn(B, C, H, H, generator=g, dtype=dtype) - 0.3  # noqa: E741
    u = l + torch.rand(B, C, H, H, generator=g, dtype=dtype) * 2
    return l, u


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("geom", [(3, 1, 1), (5, 2, 2), (8, 2, 3), (2, 1, 0)])
@pytest.mark.parametrize("per_row", [True, False])
def test_patches_rule_equals_torch(dtype: torch.dtype, geom: tuple[int, int, int], per_row: bool, torch_rules) -> None:
    K, s, pad = geom
    g = torch.Generator().manual_seed(K * 10 + s)
    B, C, H, k = 3, 5, 7, 11
    l, u = _bounds(C, H, B, dtype, g)  # noqa: E741
    l[:, 0] = u[:, 0].abs()  # a channel of stable-active neurons, one of dead ones
    u[:, 1] = -l[:, 1].abs()
    n = (H + 2 * pad - K) // s + 1
    hr = torch.randint(0, n, (k,), generator=g)
    wr = torch.randint(0, n, (k,), generator=g)
    if per_row:
        P = torch.randn(1, k, K, K, C, generator=g, dtype=dtype)
        p = Patches(P, (s, s), (pad, pad), hr, wr, br=torch.randint(0, B, (k,), generator=g))
    else:
        P = torch.randn(B, k, K, K, C, generator=g, dtype=dtype)
        p = Patches(P, (s, s), (pad, pad), hr, wr)
    P[P.abs() < 0.2] = 0.0  # exact zeros take neither slope
    with torch.no_grad():
        q, b = patches._relu(p, (l, u), C)
        with torch_rules:
            q_t, b_t = patches._relu(p, (l, u), C)
    assert q.P is not None and q_t.P is not None
    assert q.P.shape == q_t.P.shape
    assert torch.equal(q.P, q_t.P)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(b, b_t, rtol=tol, atol=tol)
    assert bool((b != 0).any())


@pytest.mark.parametrize("layout", ["nchw", "channels_last", "flat"])
def test_dense_rule_equals_torch(layout: str, torch_rules) -> None:
    g = torch.Generator().manual_seed(3)
    B, S, C, H = 2, 4, 3, 5
    l, u = _bounds(C, H, B, torch.float64, g)  # noqa: E741
    A = torch.randn(B, S, C, H, H, generator=g, dtype=torch.float64)
    if layout == "channels_last":
        A = A.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
    elif layout == "flat":
        A, l, u = A.reshape(B, S, -1), l.reshape(B, -1), u.reshape(B, -1)  # noqa: E741
    relu = ops.ReLU("relu")
    with torch.no_grad():
        (a,), b = relu.backward(A, [(l, u)])
        with torch_rules:
            (a_t,), b_t = relu.backward(A, [(l, u)])
    assert torch.equal(a, a_t)
    torch.testing.assert_close(b, b_t, rtol=1e-12, atol=1e-12)


def test_rule_is_not_used_with_gradients() -> None:
    l, u = _bounds(2, 3, 1, torch.float64, torch.Generator().manual_seed(0))  # noqa: E741
    A = torch.randn(1, 2, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    assert not fused.usable(A)  # (grad mode on: autograd needs the torch rule)
    (a,), _ = ops.ReLU("relu").backward(A, [(l, u)])
    assert a.requires_grad


@pytest.mark.parametrize("net", ["cnn_bn", "resnet"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_whole_net_bounds_equal(net: str, dtype: torch.dtype, torch_rules) -> None:
    torch.manual_seed(0)
    model = (CnnBN() if net == "cnn_bn" else ResNet(4, 5))
    _randomise_bn(model)
    model = model.to(dtype).eval()
    bm = BoundedModel(model, (3, 12, 12))
    x = torch.rand(2, 3, 12, 12, dtype=dtype)
    C = margin_spec(torch.tensor([0, 3]), 5, dtype)
    with torch.no_grad():
        lo, up = bm.compute_bounds(x, 0.03, method="CROWN", C=C)
        with torch_rules:
            lo_t, up_t = bm.compute_bounds(x, 0.03, method="CROWN", C=C)
    tol = 1e-9 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(lo, lo_t, rtol=tol, atol=tol)
    torch.testing.assert_close(up, up_t, rtol=tol, atol=tol)


def test_kernel_rejects_bad_arrays() -> None:
    P = torch.zeros(4, 2, 2, 3)
    rel = torch.zeros(1, 3, 5, 5, 3)
    ex = torch.zeros(4, dtype=torch.long)
    hr = torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match="ex: example index out of range"):
        fused.relu_patches(P, rel, ex + 1, hr, hr, (1, 1), (0, 0))
    with pytest.raises(ValueError, match="rel"):
        fused.relu_patches(P, rel.double(), ex, hr, hr, (1, 1), (0, 0))


@pytest.mark.parametrize("per_row", [True, False])
def test_box_concretisation_equals_torch(per_row: bool, torch_rules) -> None:
    g = torch.Generator().manual_seed(5)
    B, C, H, k, K, s, pad = 3, 3, 9, 13, 6, 2, 2
    lo = torch.rand(B, C, H, H, generator=g, dtype=torch.float64)
    hi = lo + torch.rand(B, C, H, H, generator=g, dtype=torch.float64) * 0.1
    n = (H + 2 * pad - K) // s + 1
    hr, wr = torch.randint(0, n, (k,), generator=g), torch.randint(0, n, (k,), generator=g)
    P = torch.randn(1 if per_row else B, k, K, K, C, generator=g, dtype=torch.float64)
    p = Patches(P, (s, s), (pad, pad), hr, wr, br=torch.randint(0, B, (k,), generator=g) if per_row else None)

    class Ctx:
        norm = float("inf")
    ctx = Ctx()
    ctx.lo, ctx.hi = lo, hi  # type: ignore[attr-defined]
    with torch.no_grad():
        b = patches._concretize(ctx, p)
        with torch_rules:
            b_t = patches._concretize(ctx, p)
    torch.testing.assert_close(b, b_t, rtol=1e-12, atol=1e-12)


C10 = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "vnncomp2021" / "cifar10_resnet"


@pytest.mark.shared_data
def test_resnet_2b_bounds_equal_and_hold() -> None:
    """VNN-COMP's resnet_2b (B = 2, ε = 2/255 in [0, 1]): the compiled rules give the torch
    rules' CROWN bounds (1e-5 float32, 1e-9 float64), and sampled points lie inside."""
    f = C10 / "onnx" / "resnet_2b.onnx"
    if not f.is_file():
        pytest.skip("../shared/data/vnncomp2021/cifar10_resnet absent")
    from certkit.core.bounds.onnx_import import load_onnx

    for dtype, tol in ((torch.float32, 1e-5), (torch.float64, 1e-9)):
        net = load_onnx(f).module.to(dtype).eval()
        bm = BoundedModel(net, (3, 32, 32))
        g = torch.Generator().manual_seed(0)
        x = torch.rand(2, 3, 32, 32, generator=g, dtype=dtype)
        C = margin_spec(torch.tensor([1, 7]), 10, dtype)
        eps = 2 / 255
        with torch.no_grad():
            lo, up = bm.compute_bounds(x, eps, C=C, x_L=torch.zeros_like(x), x_U=torch.ones_like(x))
            fused.ENABLED = False
            try:
                lo_t, up_t = bm.compute_bounds(x, eps, C=C, x_L=torch.zeros_like(x), x_U=torch.ones_like(x))
            finally:
                fused.ENABLED = True
            torch.testing.assert_close(lo, lo_t, rtol=tol, atol=tol)
            torch.testing.assert_close(up, up_t, rtol=tol, atol=tol)
            xs = (x.unsqueeze(1) + (torch.rand(2, 64, 3, 32, 32, generator=g, dtype=dtype) * 2 - 1) * eps).clamp(0, 1)
            ys = torch.einsum("bsk,bnk->bns", C, net(xs.reshape(-1, 3, 32, 32)).reshape(2, 64, 10))
        assert bool((ys >= lo.unsqueeze(1) - tol).all()) and bool((ys <= up.unsqueeze(1) + tol).all())
