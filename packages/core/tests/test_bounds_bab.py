"""Input-splitting branch and bound (certkit.core.bounds.bab) against an exact reference.

The reference enumerates every activation pattern of a one-hidden-layer ReLU net on a
2-D box: inside a pattern's region the net is affine, so "is some x in the box with
C f(x) <= d" is one LP per pattern (scipy's linprog). Instances are built with a margin
(the best slack is >= 0.02 away from 0), so the exact answer is never a rounding call.
A planted bug (one sub-box's bound raised by 10, the unsound direction) must be caught.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from certkit.core.bounds import BoundedModel
from certkit.core.bounds.bab import input_split

linprog = pytest.importorskip("scipy.optimize").linprog


def _net(seed: int, hidden: int = 7, k: int = 3) -> nn.Sequential:
    g = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, k)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    return net.eval()


def _best_slack(net: nn.Sequential, lo: np.ndarray, hi: np.ndarray, C: np.ndarray, d: np.ndarray) -> float:
    """max over x in the box of min_s (d_s - c_s f(x)) (> 0: a counterexample exists), exactly."""
    W1 = net[0].weight.detach().numpy()
    b1 = net[0].bias.detach().numpy()
    W2 = net[2].weight.detach().numpy()
    b2 = net[2].bias.detach().numpy()
    best = -np.inf
    for pattern in itertools.product((0.0, 1.0), repeat=W1.shape[0]):
        s = np.array(pattern)
        A = C @ W2 @ (s[:, None] * W1)  # rows: c_s f(x) = A_s x + a_s in this region
        a = C @ (W2 @ (s * b1) + b2)
        # variables (x0, x1, t): maximise t s.t. A x + a + t <= d, region signs, box
        A_ub = [np.r_[A[i], 1.0] for i in range(len(d))]
        b_ub = list(d - a)
        for j in range(W1.shape[0]):  # active: w x + b >= 0 ; inactive: w x + b <= 0
            sign = -1.0 if s[j] else 1.0
            A_ub.append(np.r_[sign * W1[j], 0.0])
            b_ub.append(-sign * b1[j])
        res = linprog(np.array([0.0, 0.0, -1.0]), A_ub=np.array(A_ub), b_ub=np.array(b_ub),
                      bounds=[(lo[0], hi[0]), (lo[1], hi[1]), (None, None)], method="highs")
        if res.status == 0:
            best = max(best, -res.fun)
    return float(best)


def _instances(count: int) -> list[tuple[nn.Sequential, np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]]:
    rng = np.random.default_rng(7)
    out = []
    seed = 0
    while len(out) < count:
        seed += 1
        net = _net(seed)
        c0 = rng.uniform(-1, 1, 2)
        lo, hi = c0 - rng.uniform(0.2, 1.0, 2), c0 + rng.uniform(0.2, 1.0, 2)
        rows = int(rng.integers(1, 3))
        C = rng.normal(size=(rows, 3))
        d = np.zeros(rows)
        base = _best_slack(net, lo, hi, C, d)  # shift d so the answer has a clear margin
        want_sat = bool(seed % 2)
        shift = -base + (0.05 if want_sat else -0.05)
        d = d + shift
        slack = _best_slack(net, lo, hi, C, d)
        if abs(slack) < 0.02:
            continue
        out.append((net, lo, hi, C, d, slack > 0))
    return out


CASES = _instances(16)


def _run(case, **kw):  # type: ignore[no-untyped-def]
    net, lo, hi, C, d, _ = case
    return input_split(net, (2,), torch.tensor(lo), torch.tensor(hi), torch.tensor(C), torch.tensor(d),
                       deadline=time.perf_counter() + 60, **kw)


@pytest.mark.parametrize(("method", "split"), [("CROWN", "bound"), ("CROWN", "smear"), ("IBP", "bound")])
def test_verdicts_equal_the_exact_reference(method: str, split: str) -> None:
    assert {c[-1] for c in CASES} == {True, False}
    for net, lo, hi, C, d, sat in CASES:
        r = _run((net, lo, hi, C, d, sat), method=method, split=split)
        assert r.status == ("sat" if sat else "unsat")
        if sat:  # the witness is in the box and satisfies every row in the model's arithmetic
            assert r.x is not None
            assert np.all(r.x.numpy() >= lo) and np.all(r.x.numpy() <= hi)
            with torch.no_grad():
                y = net(r.x.reshape(1, 2)).reshape(-1)
            assert torch.all(torch.as_tensor(C) @ y <= torch.as_tensor(d))
        else:
            assert r.boxes >= 1


def test_a_planted_unsound_bound_is_caught() -> None:
    """One sub-box per batch with its lower bound raised by 10 (the unsound direction) must
    turn some sat instance into a wrong unsat: the reference comparison above would then
    fail. (With the real bounds, ``test_verdicts_equal_the_exact_reference`` passes.)"""
    wrong = 0
    for case in CASES:
        net, sat = case[0], case[-1]

        bm = BoundedModel(net, (2,))
        calls = {"n": 0}

        def planted(blo: torch.Tensor, bhi: torch.Tensor, bC: torch.Tensor, bm=bm, calls=calls) -> torch.Tensor:
            mid = (blo + bhi) / 2
            with torch.no_grad():
                lb, _ = bm.compute_bounds(mid, ((bhi - blo) / 2).amax(1), C=bC, x_L=blo, x_U=bhi,
                                          bound_upper=False)
            calls["n"] += 1
            lb = lb.clone()
            if calls["n"] > 1:  # after the root: the first sub-box of each batch, wrongly proven
                lb[0] += 10.0
            return lb

        r = _run(case, bound_fn=planted, pgd_steps=0)
        if sat and r.status == "unsat":
            wrong += 1
    assert wrong >= 3, wrong


def test_timeout_and_box_budget() -> None:
    net, lo, hi, C, d, _ = next(c for c in CASES if not c[-1])
    t = time.perf_counter()
    r = input_split(net, (2,), torch.tensor(lo), torch.tensor(hi), torch.tensor(C), torch.tensor(d),
                    deadline=time.perf_counter() - 1)
    assert r.status == "timeout" and time.perf_counter() - t < 1
    r = input_split(net, (2,), torch.tensor(lo), torch.tensor(hi), torch.tensor(C), torch.tensor(d) + 1e3,
                    max_boxes=1, batch=1, pgd_steps=0)
    assert r.status == "sat"  # d raised far above the outputs: the centre is a counterexample
    r = input_split(net, (2,), torch.tensor(lo), torch.tensor(hi), torch.tensor(C), torch.tensor(d) - 1e3,
                    max_boxes=1, batch=1)
    assert r.status == "unsat" and r.boxes == 1


def test_bad_arguments() -> None:
    net = _net(1)
    lo, hi = torch.zeros(2), torch.ones(2)
    C, d = torch.ones(1, 3), torch.zeros(1)
    with pytest.raises(ValueError, match="split"):
        input_split(net, (2,), lo, hi, C, d, split="widest")
    with pytest.raises(ValueError, match="batch"):
        input_split(net, (2,), lo, hi, C, d, batch=0)
    with pytest.raises(ValueError, match="lo, hi"):
        input_split(net, (2,), hi, lo - 1, C, d)
    with pytest.raises(ValueError, match="C, d"):
        input_split(net, (2,), lo, hi, torch.ones(2, 3), d)


ACAS = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "vnncomp2021" / "acasxu"


@pytest.mark.skipif(not ACAS.is_dir(), reason="../shared/data/vnncomp2021 absent")
def test_acasxu_deadline_is_kept() -> None:
    """A hard ACAS Xu disjunct (1_1, prop_6's 7th: ~3,000 boxes, 10-20 s) stopped after 1 s
    returns 'timeout' within the deadline + 1 s, and an easy one (1_1, prop_1) is proven."""
    pytest.importorskip("onnx")
    from certkit.core.bounds.onnx_import import load_onnx
    from certkit.core.bounds.vnnlib import parse_vnnlib

    om = load_onnx(ACAS / "ACASXU_run2a_1_1_batch_2000.onnx", dtype=torch.float64)
    for prop, k, budget, want in (("prop_6.vnnlib", 6, 1.0, "timeout"), ("prop_1.vnnlib", 0, 60.0, "unsat")):
        c = parse_vnnlib(ACAS / prop, n_inputs=5, n_outputs=5).clauses[k]
        t = time.perf_counter()
        r = input_split(om.module, om.input_shape, torch.tensor(c.lo), torch.tensor(c.hi), torch.tensor(c.C),
                        torch.tensor(c.d), deadline=t + budget)
        assert r.status == want
        assert time.perf_counter() - t < budget + 1.0
