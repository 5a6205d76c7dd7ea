"""Red-team tests (#18, session 4) of the bound and branch-and-bound code: bounds against
sampled points on small random nets (float64 and float32), verdicts against exact references,
and the cases that broke a verifier (each such test fails on the code before its fix)."""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import Tensor, nn

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
