"""Red-team tests (#18, session 4) of the bound and branch-and-bound code: bounds against
sampled points on small random nets (float64 and float32), verdicts against exact references,
and the cases that broke a verifier (each such test fails on the code before its fix)."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from certkit.core.bounds import BoundedModel
from certkit.core.bounds.bab import input_split
from certkit.core.bounds.deadline import how_many
from certkit.core.bounds.vnnlib import Clause, Property
from certkit.core.bounds.vnnlib_verify import verify_property


def _sampled_outputs(net: nn.Module, lo: Tensor, hi: Tensor, n: int = 4000, seed: int = 0) -> Tensor:
    """net at n points of [lo, hi] (B = 1 box; a quarter of the points vertices)."""
    g = torch.Generator().manual_seed(seed)
    x = lo + (hi - lo) * torch.rand(n, *lo.shape[1:], generator=g, dtype=torch.float64).to(lo.dtype)
    v = torch.rand(n // 4, *lo.shape[1:], generator=g) < 0.5
    x[: n // 4] = torch.where(v, lo, hi)
    with torch.no_grad():
        return net(x)


# ---- Softplus on large pre-activations (activations.py)

@pytest.mark.parametrize("dt", [torch.float32, torch.float64])
@pytest.mark.parametrize("method", ["IBP", "CROWN", "alpha-CROWN"])
def test_softplus_bounds_hold_on_large_pre_activations(dt: torch.dtype, method: str) -> None:
    """Softplus's smooth function was ``log1p(exp(x))``: past x ≈ 88 (float32) or 710 (float64)
    overflowed: IBP's bound on the Softplus node was [inf, inf] and CROWN's lines NaN, so every
    bound after it was NaN (no wrong verdict, as NaN proves nothing, but no bound either). The
    bounds must be finite and hold at sampled points."""
    net = nn.Sequential(nn.Linear(2, 3), nn.Softplus(), nn.Linear(3, 2)).to(dt).eval()
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0.5], [-1.0, 2.0], [3.0, 1.0]]))
        net[0].bias.copy_(torch.tensor([100.0, 900.0, -5.0]))
    x = torch.zeros(1, 2, dtype=dt)
    bm = BoundedModel(net, (2,))
    with torch.enable_grad():
        lb, ub = bm.compute_bounds(x, 20.0, method=method)
    assert bool(torch.isfinite(lb).all() and torch.isfinite(ub).all()), (lb, ub)
    y = _sampled_outputs(net, x - 20, x + 20)
    tol = 1e-5 * (1 + y.abs().amax(0)) if dt == torch.float32 else 1e-9 * (1 + y.abs().amax(0))
    assert bool((y >= lb - tol).all() and (y <= ub + tol).all()), (lb, ub, y.amin(0), y.amax(0))


# ---- deadlines (deadline.py)

def test_an_infinite_timeout_is_no_deadline() -> None:
    """``--timeout inf`` passed the timeout check and then crashed (OverflowError in
    ``how_many``: int(inf)) with exit 1 instead of running without a limit."""
    assert how_many(math.inf, 1e-3, 7) == 7
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2)).double().eval()
    prop = Property(n_inputs=3, n_outputs=2, clauses=[Clause(-np.ones(3), np.ones(3), np.array([[1.0, -1.0]]),
                                                             np.array([-1e3]))])
    r = verify_property(net, (3,), prop, timeout=math.inf, pgd_steps=2)
    assert r.status == "unsat", r
    t0 = time.perf_counter()
    assert r.time_s < 30 and time.perf_counter() - t0 < 30


def test_input_split_runs_with_an_infinite_deadline() -> None:
    """input_split sized its batches by int(time left / cost): OverflowError with deadline=inf
    (``certkit bounds vnnlib --timeout inf`` on ACAS Xu)."""
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 1)).double().eval()
    lo, hi = -torch.ones(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64)
    y = _sampled_outputs(net, lo.unsqueeze(0), hi.unsqueeze(0))
    C = torch.ones(1, 1, dtype=torch.float64)
    r = input_split(net, (2,), lo, hi, C, (y.min() - 0.02).reshape(1), deadline=math.inf, batch=2)
    assert r.status == "unsat" and r.boxes > 4, r
