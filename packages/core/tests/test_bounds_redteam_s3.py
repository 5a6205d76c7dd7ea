"""Red-team tests (#18, session 3) of the bound code changed this session: ReLU / Sigmoid /
Tanh branch and bound verdicts against sampling + PGD or exact references on small random
nets (float64 and float32), patches α-CROWN against the dense α path at equal α, and the
cases that broke a verifier (each test fails on the code before its fix)."""

from __future__ import annotations

import time

import pytest
import torch
from torch import Tensor, nn

from certkit.core.bounds import BoundedModel, ops
from certkit.core.bounds.act_bab import act_split


def _sampled_min(net: nn.Module, lo: Tensor, hi: Tensor, C: Tensor, n: int = 20_000, steps: int = 30,
                 seed: int = 0) -> float:
    """An upper estimate of min over [lo, hi] of C @ net(x) (one row C (K,)): the best of
    ``n`` uniform points and box vertices, then signed-gradient descent from the best 64."""
    gen = torch.Generator().manual_seed(seed)
    x = lo + (hi - lo) * torch.rand(n, lo.numel(), generator=gen, dtype=lo.dtype)
    x[: n // 4] = torch.where(torch.rand(n // 4, lo.numel(), generator=gen) < 0.5, lo, hi)
    with torch.no_grad():
        v = net(x) @ C
    x = x[v.argsort()[:64]].clone()
    for s in range(steps):
        x.requires_grad_(True)
        (gr,) = torch.autograd.grad((net(x) @ C).sum(), x)
        with torch.no_grad():
            x = torch.min(torch.max(x - 0.1 * 0.85 ** s * (hi - lo) * gr.sign(), lo), hi)
            v = torch.minimum(v.min(), (net(x) @ C).min()).reshape(1)
    return float(v.min())


class _CrossOrder(nn.Module):
    """Two pre-activation nodes of different sizes whose activations run in the other order
    (the Sigmoid of the second linear layer is traced before the Tanh of the first)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.o = nn.Linear(3, 5), nn.Linear(3, 4), nn.Linear(9, 2)

    def forward(self, x: Tensor) -> Tensor:
        a, b = self.a(x), self.b(x)
        return self.o(torch.cat([torch.sigmoid(b), torch.tanh(a)], 1))


def test_act_split_activations_traced_out_of_pre_activation_order() -> None:
    """act_bab sized its split columns in activation order but indexed them in node order:
    a crash (expand / reshape size mismatch) on any net where the two orders differ."""
    torch.manual_seed(0)
    net = _CrossOrder().double().eval()
    lo, hi = -torch.ones(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    C = torch.tensor([1.0, -1.0], dtype=torch.float64)
    m = _sampled_min(net, lo, hi, C)
    for d, ok in ((m - 0.05, ("unsat", "unknown", "timeout")), (m + 0.01, ("sat",))):
        r = act_split(net, (3,), lo, hi, C.reshape(1, 2), torch.tensor([d], dtype=torch.float64),
                      deadline=time.perf_counter() + 10)
        assert r.status in ok, (d, m, r.status)


@pytest.mark.parametrize("mode", ["matrix", "patches"])
@pytest.mark.parametrize("k", [3, 5, (3, 7)])
def test_avgpool_crown_exact_on_a_point_in_float64(mode: str, k: int | tuple[int, int]) -> None:
    """AvgPool's backward weights were filled with 1/k² in float32 and then cast: in a float64
    net 1/9 was off by 5e-8 relative, and CROWN's bounds on a zero-width box excluded the
    net's own output by ~1e-9 (a wrong certificate, in both conv modes)."""
    torch.manual_seed(1)
    net = nn.Sequential(nn.ReLU(), nn.AvgPool2d(k, 1, 1), nn.Flatten(), nn.LazyLinear(3)).double()
    x = torch.rand(2, 2, 9, 8, dtype=torch.float64) * 4 - 1
    net(x)
    net.eval()
    bm = BoundedModel(net, (2, 9, 8), use_compiled=False, conv_mode=mode)
    with torch.no_grad():
        y = net(x)
        lo, up = bm.compute_bounds(x, 0.0, method="CROWN")
    assert float((lo - y).max()) <= 1e-12 and float((y - up).max()) <= 1e-12, (lo - y, y - up)


def test_avgpool_impl_cache_follows_the_dtype() -> None:
    """The lazily built depthwise conv is rebuilt (not cast) when the dtype changes."""
    op = ops.AvgPool2d.from_module("p", nn.AvgPool2d(3))
    assert op._get(torch.zeros(1, 2, 6, 6)).m.weight.dtype == torch.float32
    w = op._get(torch.zeros(1, 2, 6, 6, dtype=torch.float64)).m.weight
    assert w.dtype == torch.float64 and bool((w == 1 / 9).all())
    assert op._get(torch.zeros(1, 3, 6, 6, dtype=torch.float64)).m.weight.shape[0] == 3
