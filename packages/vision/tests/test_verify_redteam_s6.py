"""Red-team tests (#18, session 6) of ``certified.verify`` (``certkit bounds verify``): the
per-input ``timeout`` also bounds PGD and α-CROWN."""

from __future__ import annotations

import time

import torch
from torch import nn

from certkit.vision.training import certified as V


def test_verify_timeout_bounds_pgd() -> None:
    """PGD ran all its steps whatever the timeout (``certkit bounds verify --pgd-steps 20000
    --timeout 2``: 13.9 s for one input); now every step is deadline-checked and the input
    returns within its timeout (plus the bound pass after it)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).eval()
    x = torch.rand(1, 1, 8, 8)
    y = model(x).argmax(1)  # (correct on the clean input: PGD runs)
    t = time.perf_counter()
    (r,) = V.verify(model, x, y, 0.3, methods=("IBP",), timeout=0.5, pgd_steps=10**7)
    assert time.perf_counter() - t < 1.5 and r.seconds < 1.5, (r, time.perf_counter() - t)
