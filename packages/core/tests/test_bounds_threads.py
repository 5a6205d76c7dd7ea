"""The compiled IBP / CROWN kernels give bit-identical bounds at 1, 2 and 3 OpenMP threads
(each output element is summed in a fixed order; cpp/src/bounds/bounds_cpu.cpp), and the
fast validation path of ``compute_bounds`` keeps the error messages of bad input."""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import certkit.core as core  # noqa: E402
from certkit.core.bounds import BoundedModel, margin_spec  # noqa: E402


def _default_threads() -> int:
    for var in ("CERTKIT_NUM_THREADS", "OMP_NUM_THREADS"):
        v = os.environ.get(var, "").split(",")[0].strip()
        if v.isdigit() and int(v) > 0:
            return int(v)
    return os.cpu_count() or 1


def _nets() -> list[tuple[nn.Module, tuple[int, ...]]]:
    torch.manual_seed(3)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 48), nn.ReLU(), nn.Linear(48, 7))
    cnn = nn.Sequential(nn.Conv2d(1, 6, 3, stride=1, padding=1), nn.ReLU(), nn.Conv2d(6, 8, 4, stride=2, padding=1),
                        nn.ReLU(), nn.Flatten(), nn.Linear(128, 24), nn.ReLU(), nn.Linear(24, 7))
    return [(mlp.eval(), (1, 8, 8)), (cnn.eval(), (1, 8, 8))]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_bounds_bit_identical_across_thread_counts(dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    cases = []
    for net, shape in _nets():
        net = net.to(dtype)
        bm = BoundedModel(net, shape)
        x = torch.rand(24, *shape, dtype=dtype)
        C = margin_spec(torch.randint(0, 7, (24,)), 7, dtype)
        cases.append((bm, x, C))
    results: dict[int, list[torch.Tensor]] = {}
    try:
        for n in (1, 2, 3):
            core.set_num_threads(n)
            out = []
            with torch.no_grad():
                for bm, x, C in cases:
                    for method in ("IBP", "CROWN", "CROWN-IBP"):
                        lo, up = bm.compute_bounds(x, 0.08, method=method, C=C, x_L=torch.zeros_like(x),
                                                   x_U=torch.ones_like(x))
                        out += [lo, up]
            results[n] = out
    finally:
        core.set_num_threads(_default_threads())
    # the case is not trivial: CROWN is tighter than IBP somewhere (unstable ReLUs exist)
    assert bool((results[1][2] > results[1][0]).any())
    for n in (2, 3):
        for a, b in zip(results[1], results[n]):
            assert torch.equal(a, b), f"{n} threads differ from 1 thread"


def test_fast_checks_keep_messages() -> None:
    net, shape = _nets()[0]
    bm = BoundedModel(net, shape)
    x = torch.rand(3, *shape)
    big = torch.full_like(x, 3e38)  # finite, but its float32 sum overflows: must pass
    with torch.no_grad():
        bm.compute_bounds(big, 0.0, method="IBP")
        for bad in (float("nan"), float("inf"), -float("inf")):
            xb = x.clone()
            xb[1, 0, 2, 3] = bad
            with pytest.raises(ValueError, match="x: contains NaN or inf"):
                bm.compute_bounds(xb, 0.1, method="IBP")
        C = torch.ones(2, 7)
        bm.compute_bounds(x, 0.1, method="IBP", C=C * 3e38)  # sum overflows, entries finite
        C[1, 4] = float("nan")
        with pytest.raises(ValueError, match="C: contains NaN or inf"):
            bm.compute_bounds(x, 0.1, method="IBP", C=C)
        with pytest.raises(ValueError, match="eps: expected a finite value"):
            bm.compute_bounds(x, 1e300, method="IBP")  # finite in Python, inf in float32
        with pytest.raises(ValueError, match="eps: expected a value >= 0"):
            bm.compute_bounds(x, -0.1, method="IBP")
        # a tiny negative eps rounds to -0.0 in float32: accepted, as before
        lo, up = bm.compute_bounds(x, -1e-60, method="IBP")
        lo0, up0 = bm.compute_bounds(x, 0.0, method="IBP")
        assert torch.equal(lo, lo0) and torch.equal(up, up0)
        with pytest.raises(ValueError, match="empty"):
            bm.compute_bounds(x, 0.1, method="IBP", x_L=torch.full_like(x, 2.0))
        # an empty batch is fine
        lo, up = bm.compute_bounds(x[:0], 0.1, method="IBP", x_L=x[:0], x_U=x[:0] + 1)
        assert lo.shape == (0, 7)
