"""Deadlines (issue 18 section 2): α-CROWN iterations and CROWN's intermediate bounds stop at
``compute_bounds(..., deadline=)`` with sound (only looser) bounds, and
``verify_property(timeout=T)`` returns within T + 1 s with ``timeout`` when undecided."""

from __future__ import annotations

import math
import time

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from certkit.core.bounds import BoundedModel  # noqa: E402


def _wide(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Linear(64, 200)]
    for _ in range(3):
        layers += [nn.ReLU(), nn.Linear(200, 200)]
    layers += [nn.ReLU(), nn.Linear(200, 10)]
    return nn.Sequential(*layers).double().eval()


def test_alpha_crown_stops_at_the_deadline_with_sound_bounds() -> None:
    net = _wide()
    bm = BoundedModel(net, (64,))
    x = torch.rand(2, 64, dtype=torch.float64)
    with torch.no_grad():
        cl, cu = bm.compute_bounds(x, 0.05, method="CROWN")
    # one α step first, untimed: the first autograd use in a fresh process pays one-off set-up
    # (lazy imports, allocator growth), which is not the deadline's business (once took
    # 4.2 s against the 4 s allowance in CI's min_deps session on a loaded machine)
    bm.compute_bounds(x, 0.05, method="alpha-CROWN", alpha_iterations=1)
    # 3 s: enough for the intermediate CROWN pass even on a loaded 2-core machine (at 0.5 s
    # under load the deadline could pass inside it, leaving IBP's looser intermediate bounds)
    t0 = time.perf_counter()
    lo, up = bm.compute_bounds(x, 0.05, method="alpha-CROWN", alpha_iterations=100_000, deadline=t0 + 3.0)
    dt = time.perf_counter() - t0
    assert dt < 3.0 + 1.0, dt  # 100 000 iterations would take hours
    assert bool((lo >= cl - 1e-9).all()) and bool((up <= cu + 1e-9).all())  # never looser than CROWN
    with torch.no_grad():
        pts = x.unsqueeze(1) + 0.05 * (2 * torch.rand(2, 500, 64, dtype=torch.float64) - 1)
        y = net(pts)
    assert bool((y >= lo.unsqueeze(1) - 1e-9).all()) and bool((y <= up.unsqueeze(1) + 1e-9).all())
    # a deadline already past: CROWN stops tightening intermediate bounds (IBP kept): sound, looser
    torch_path = BoundedModel(net, (64,), use_compiled=False)  # the kernels are fast; the torch layer is timed
    with torch.no_grad():
        pl, pu = torch_path.compute_bounds(x, 0.05, method="CROWN", deadline=time.perf_counter() - 1)
    assert bool((pl < cl - 1e-6).any())  # looser: the intermediate bounds stayed IBP's
    assert bool((y >= pl.unsqueeze(1) - 1e-9).all()) and bool((y <= pu.unsqueeze(1) + 1e-9).all())


def test_verify_property_returns_within_the_timeout() -> None:
    from certkit.core.bounds.vnnlib import parse_vnnlib
    from certkit.core.bounds.vnnlib_verify import verify_property

    net = _wide(1)
    x0 = torch.rand(64, dtype=torch.float64)
    with torch.no_grad():
        y0 = net(x0.unsqueeze(0))[0]
    top = int(y0.argmax())
    lines = [f"(declare-const X_{i} Real)" for i in range(64)] + [f"(declare-const Y_{j} Real)" for j in range(10)]
    for i in range(64):
        lines += [f"(assert (>= X_{i} {float(x0[i]) - 0.2}))", f"(assert (<= X_{i} {float(x0[i]) + 0.2}))"]
    other = [j for j in range(10) if j != top]
    lines.append("(assert (or " + " ".join(f"(and (>= Y_{j} Y_{top}))" for j in other) + "))")
    prop = parse_vnnlib("\n".join(lines) + "\n", n_inputs=64, n_outputs=10)
    for T in (0.5, 1.5):
        t0 = time.perf_counter()
        r = verify_property(net, (64,), prop, timeout=T, pgd_steps=10_000, alpha_iterations=100_000)
        dt = time.perf_counter() - t0
        assert dt < T + 1.0, (T, dt, r.status, r.method)
        assert r.status in ("timeout", "sat", "unsat", "unknown") and math.isfinite(r.time_s)
