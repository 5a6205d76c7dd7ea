"""Regression tests for issue 17's stale-parameter bug: every cached state (the parameter
finiteness check, the compiled kernels' arrays, BatchNorm folded into the layer before it,
the transposed IBP panels) follows parameter *content*. Writes through ``.data`` bypass the
version counter that the cache key used to rely on; they are seen now, and a NaN written
that way is refused like a NaN at wrap time."""

from __future__ import annotations

from collections.abc import Callable

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from certkit.core.bounds import BoundedModel, margin_spec  # noqa: E402


def _bn_cnn() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                        nn.Linear(64, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.3, 2.0)
    return net.eval()


MUTATIONS: dict[str, Callable[[nn.Module], None]] = {
    "linear weight neg_": lambda n: n[4].weight.data.neg_(),
    "last linear weight mul_": lambda n: n[7].weight.data.mul_(3),
    "linear bias add_": lambda n: n[4].bias.data.add_(1.0),
    "conv weight mul_": lambda n: n[0].weight.data.mul_(2),
    "conv bias sub_": lambda n: n[0].bias.data.sub_(0.5),
    "bn running_mean add_": lambda n: n[1].running_mean.data.add_(1),
    "bn running_var mul_": lambda n: n[5].running_var.data.mul_(4),
    "bn weight neg_": lambda n: n[5].weight.data.neg_(),
    "bn bias add_": lambda n: n[1].bias.data.add_(0.7),
    "permuted weight (same sum)": lambda n: n[4].weight.data.copy_(n[4].weight.data.flip(1).clone()),
}


@pytest.mark.parametrize("use_compiled", [True, False])
@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_writes_through_data_are_seen(mutation: str, use_compiled: bool) -> None:
    """Mutation test of every cache keyed on the parameters (NaN check, compiled arrays,
    folded BN, transposed IBP panels): after a first call, a write through ``.data`` must
    give the bounds of a freshly wrapped model, which contain the model's own output."""
    net = _bn_cnn()
    bm = BoundedModel(net, (1, 4, 4), use_compiled=use_compiled)
    x = torch.rand(3, 1, 4, 4)
    y = torch.tensor([0, 1, 2])
    for method in ("IBP", "CROWN"):
        with torch.no_grad():
            bm.compute_bounds(x, 0.05, method=method, y=y)  # fills the caches
    MUTATIONS[mutation](net)
    fresh = BoundedModel(net, (1, 4, 4), use_compiled=use_compiled)
    for method in ("IBP", "CROWN", "CROWN-IBP"):
        with torch.no_grad():
            l1, u1 = bm.compute_bounds(x, 0.05, method=method, y=y)
            l2, u2 = fresh.compute_bounds(x, 0.05, method=method, y=y)
            out = torch.einsum("bsk,bk->bs", margin_spec(y, 3), net(x))
        assert torch.allclose(l1, l2, atol=1e-5) and torch.allclose(u1, u2, atol=1e-5), method
        assert bool((l1 <= out + 1e-5).all()) and bool((out <= u1 + 1e-5).all()), method


@pytest.mark.parametrize("use_compiled", [True, False])
def test_nan_written_through_data_is_refused(use_compiled: bool) -> None:
    net = _bn_cnn()
    bm = BoundedModel(net, (1, 4, 4), use_compiled=use_compiled)
    x = torch.rand(2, 1, 4, 4)
    with torch.no_grad():
        bm.compute_bounds(x, 0.05, method="CROWN")
    net[4].weight.data[0, 0] = float("nan")
    with torch.no_grad(), pytest.raises(ValueError, match=r"NaN.*'4\.weight'|'4\.weight'.*NaN"):
        bm.compute_bounds(x, 0.05, method="CROWN")
    net[4].weight.data[0, 0] = 0.0
    net[1].running_var.data[1] = float("inf")
    with torch.no_grad(), pytest.raises(ValueError, match=r"1\.running_var"):
        bm.compute_bounds(x, 0.05, method="IBP")


