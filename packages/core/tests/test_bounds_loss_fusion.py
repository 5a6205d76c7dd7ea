"""Loss fusion (certkit.core.bounds.loss_fusion): the fused bound is a valid upper bound
on the worst-case cross-entropy over the ball — checked against Monte-Carlo samples and a
PGD attack that maximises the CE — and it is differentiable for training.

(No confidence-bound coverage test: the bound is deterministic, not statistical.)
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from certkit.core.bounds import BoundedModel, robust_ce_upper  # noqa: E402


def _net(seed: int, bn: bool = False) -> nn.Module:
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Flatten(), nn.Linear(6, 10)]
    if bn:
        layers.append(nn.BatchNorm1d(10))
    layers += [nn.ReLU(), nn.Linear(10, 10), nn.ReLU(), nn.Linear(10, 4)]
    net = nn.Sequential(*layers).double().eval()
    if bn:
        with torch.no_grad():
            net[2].running_mean.uniform_(-0.3, 0.3)
            net[2].running_var.uniform_(0.5, 2.0)
    return net


def _worst_ce_pgd(net: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int = 30) -> torch.Tensor:
    """Per-example CE after ℓ∞ PGD maximising it (step 2.5 eps / steps, inside the ball)."""
    delta = torch.zeros_like(x, requires_grad=True)
    best = torch.full((x.shape[0],), -math.inf, dtype=x.dtype)
    for _ in range(steps):
        with torch.enable_grad():
            loss = F.cross_entropy(net(x + delta), y, reduction="none")
            (g,) = torch.autograd.grad(loss.sum(), delta)
        best = torch.maximum(best, loss.detach())
        delta = (delta.detach() + 2.5 * eps / steps * g.sign()).clamp(-eps, eps).requires_grad_(True)
    with torch.no_grad():
        return torch.maximum(best, F.cross_entropy(net(x + delta), y, reduction="none"))


@pytest.mark.parametrize("method", ["IBP", "CROWN-IBP", "CROWN"])
def test_fused_bound_is_sound(method: str) -> None:
    gen = torch.Generator().manual_seed(1)
    cases = 0
    for seed in range(8):
        net = _net(seed, bn=seed % 2 == 1)
        bm = BoundedModel(net, (6,), use_compiled=seed % 3 != 0)
        x = torch.randn(6, 6, dtype=torch.float64, generator=gen)
        y = torch.randint(0, 4, (6,), generator=gen)
        for eps in (0.02, 0.3):
            with torch.no_grad():
                fused = robust_ce_upper(bm, x, y, eps, method=method, intersect_ibp=False)
                both = robust_ce_upper(bm, x, y, eps, method=method)
                # Monte-Carlo: 256 points per input (a quarter of them vertices of the box)
                u = torch.rand(6, 256, 6, dtype=torch.float64, generator=gen) * 2 - 1
                u[:, :64] = u[:, :64].sign()
                xs = (x.unsqueeze(1) + eps * u).reshape(-1, 6)
                ce = F.cross_entropy(net(xs), y.repeat_interleave(256), reduction="none").reshape(6, 256)
            assert bool((ce.max(1).values <= fused + 1e-9).all()), (seed, eps)
            assert bool((both <= fused + 1e-12).all())
            adv = _worst_ce_pgd(net, x, y, eps, steps=15)
            assert bool((adv <= fused + 1e-9).all()), (seed, eps)
            cases += 6 * 257
    assert cases > 24000


def test_fused_tighter_than_ibp_margins_somewhere() -> None:
    """The fused CROWN-IBP row is not a no-op: on small ε it beats log(1 + Σ exp(u_j))."""
    net = _net(3)
    bm = BoundedModel(net, (6,))
    x = torch.randn(16, 6, dtype=torch.float64)
    y = torch.randint(0, 4, (16,))
    with torch.no_grad():
        fused = robust_ce_upper(bm, x, y, 0.05, method="CROWN", intersect_ibp=False)
        both = robust_ce_upper(bm, x, y, 0.05, method="CROWN")
        clean = F.cross_entropy(net(x), y, reduction="none")
    assert bool((fused < both + 1e-12).all()) and bool((fused >= clean - 1e-9).all())
    # as ε → 0 the bound tends to the clean loss
    with torch.no_grad():
        tiny = robust_ce_upper(bm, x, y, 1e-7, method="CROWN-IBP")
    torch.testing.assert_close(tiny, clean, atol=1e-5, rtol=0)


def test_fused_bound_has_gradients_and_checks_input() -> None:
    net = _net(0).float().train()
    bm = BoundedModel(net, (6,))
    x = torch.rand(8, 6)
    y = torch.randint(0, 4, (8,))
    loss = robust_ce_upper(bm, x, y, 0.1).mean()
    loss.backward()
    assert all(p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in net.parameters())
    with pytest.raises(ValueError, match="method"):
        robust_ce_upper(bm, x, y, 0.1, method="alpha")
    with pytest.raises(ValueError, match="y"):
        robust_ce_upper(bm, x, y[:3], 0.1)
    with pytest.raises(ValueError, match="eps"):
        robust_ce_upper(bm, x, y, -0.1)
