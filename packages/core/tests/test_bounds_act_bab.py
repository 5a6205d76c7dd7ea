"""Branch and bound on Sigmoid / Tanh pre-activations (bounds/act_bab.py, GenBaB): verdicts
against dense sampling + PGD, child bounds against sampled points of each child's region,
planted bugs (wrong β sign, child relaxation on the wrong half) caught, deadline, dispatch."""

from __future__ import annotations

import math
import time

import pytest
import torch
from _bab_ref import crown_root
from torch import nn

from certkit.core.bounds import act_bab, activations
from certkit.core.bounds.act_bab import _ActProblem, act_split

F64 = torch.float64


def _net(seed: int, n: int, hidden: int, layers: int, act: type[nn.Module], relu_at: int | None = None) -> nn.Module:
    torch.manual_seed(seed)
    mods: list[nn.Module] = []
    w = n
    for k in range(layers):
        mods += [nn.Linear(w, hidden), nn.ReLU() if k == relu_at else act()]
        w = hidden
    mods.append(nn.Linear(w, 3))
    net = nn.Sequential(*mods).to(F64).eval()
    with torch.no_grad():  # Sigmoid is flatter: larger weights, so that splitting matters
        for m in net:
            if isinstance(m, nn.Linear):
                m.weight.mul_(3.0 if act is nn.Sigmoid else 1.0)
    return net


C2 = torch.tensor([[1.0, -1.0, 0.0], [1.0, 0.0, -1.0]], dtype=F64)  # rows: y0 - y1, y0 - y2


def _worst(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """max over the rows of C2 @ f(x): the property "all rows <= d" holds at x iff this <= d."""
    return (net(x) @ C2.T).amax(1)


def _true_min(net: nn.Module, lo: torch.Tensor, hi: torch.Tensor, samples: int = 100_000, seed: int = 0
              ) -> tuple[float, torch.Tensor]:
    """Dense uniform sampling, then PGD from the 64 best samples: the smallest worst-row value
    found and its input."""
    g = torch.Generator().manual_seed(seed)
    x = lo + (hi - lo) * torch.rand(samples, lo.numel(), generator=g, dtype=F64)
    with torch.no_grad():
        v = _worst(net, x)
    x = x[v.argsort()[:64]].clone()
    for s in range(100):
        x.requires_grad_(True)
        (gr,) = torch.autograd.grad(_worst(net, x).sum(), x)
        x = torch.min(torch.max(x.detach() - 0.05 * (1 - s / 100) * (hi - lo) * gr.sign(), lo), hi)
    with torch.no_grad():
        v = _worst(net, x)
    return float(v.min()), x[v.argmin()]


CASES = [(0, 5, 1, nn.Sigmoid), (1, 8, 2, nn.Tanh), (2, 12, 2, nn.Sigmoid), (3, 20, 3, nn.Tanh),
         (4, 6, 3, nn.Sigmoid), (5, 10, 1, nn.Tanh)]


@pytest.mark.parametrize(("seed", "n", "layers", "act"), CASES)
def test_verdicts_never_contradict_sampling(seed: int, n: int, layers: int, act: type[nn.Module]) -> None:
    net = _net(seed, n, 12, layers, act)
    lo, hi = -torch.ones(n, dtype=F64), torch.ones(n, dtype=F64)
    m, _ = _true_min(net, lo, hi)
    decided = 0
    for off in (-0.3, -0.05, -0.01, 0.01):
        d = torch.full((2,), m + off, dtype=F64)
        r = act_split(net, (n,), lo, hi, C2, d, deadline=time.perf_counter() + 1.5, branching="babsr")
        if off > 0:  # sampling found a point with every row <= d: never unsat
            assert r.status != "unsat", (off, r)
        if r.status == "sat":
            assert r.x is not None
            assert bool(((r.x >= lo) & (r.x <= hi)).all())
            with torch.no_grad():
                assert float(_worst(net, r.x.unsqueeze(0))[0]) <= float(d[0])
        decided += r.status in ("sat", "unsat")
    assert decided >= 2  # the search decides most of them (not a test that passes by saying nothing)


def test_search_proves_what_the_root_bound_cannot() -> None:
    net = _net(0, 5, 12, 1, nn.Sigmoid)
    lo, hi = -torch.ones(5, dtype=F64), torch.ones(5, dtype=F64)
    m, _ = _true_min(net, lo, hi)
    d = torch.full((2,), m - 0.3, dtype=F64)
    r = act_split(net, (5,), lo, hi, C2, d, deadline=time.perf_counter() + 20.0, branching="babsr")
    assert r.status == "unsat"
    assert r.boxes > 1  # it took splitting


def _sample_children(seed: int, net: nn.Module, n: int, depth: int
                     ) -> tuple[_ActProblem, torch.Tensor, list[list[tuple[int, float, int]]]]:
    """Random split sequences from the root: the problem, the boxes made by act_bab._children,
    and for every domain its intended constraints (neuron, point, side: 0 z <= point, 1 z >= point)."""
    lo, hi = -torch.ones(n, dtype=F64), torch.ones(n, dtype=F64)
    P = _ActProblem(net, (n,), lo, hi, C2.unsqueeze(0), torch.zeros(1, 2, dtype=F64), torch.ones(1, 2, dtype=torch.bool))
    rl, ru = crown_root(P)
    g = torch.Generator().manual_seed(seed)
    box = torch.stack([torch.full((P.total,), -math.inf, dtype=F64), torch.full((P.total,), math.inf, dtype=F64)])[None]
    cons: list[list[tuple[int, float, int]]] = [[]]
    for _ in range(depth):
        k = box.shape[0]
        dec = torch.randint(0, P.total, (k,), generator=g)
        a, b = torch.max(box[torch.arange(k), 0, dec], rl[dec]), torch.min(box[torch.arange(k), 1, dec], ru[dec])
        pt = a + (b - a) * (0.2 + 0.6 * torch.rand(k, generator=g, dtype=F64))
        box = act_bab._children(box, dec, pt)
        cons = [[*c, (int(dec[j]), float(pt[j]), side)] for side in (0, 1) for j, c in enumerate(cons)]
    return P, box, cons


def _pre_values(P: _ActProblem, x: torch.Tensor) -> torch.Tensor:
    vals = P.g.forward(x)
    return torch.cat([vals[p].reshape(x.shape[0], -1) for p in P.pre], 1)


def _violations(P: _ActProblem, box: torch.Tensor, cons: list[list[tuple[int, float, int]]], net: nn.Module,
                n: int, iters: int) -> tuple[int, int]:
    """Children with sampled points (100k) of their intended region below the certified
    bound or outside the intermediate bounds; and the number of children checked."""
    res = act_bab._bound_domains(P, box, iters=iters, lr=0.5, beta_lr=0.5, interm="ibp", deadline=None)
    x = -1 + 2 * torch.rand(100_000, n, generator=torch.Generator().manual_seed(7), dtype=F64)
    with torch.no_grad():
        z = _pre_values(P, x)
        y = net(x) @ C2.T
    bad = checked = 0
    for j, c in enumerate(cons):
        inside = torch.ones(x.shape[0], dtype=torch.bool)
        for idx, pt, side in c:
            inside &= (z[:, idx] >= pt) if side else (z[:, idx] <= pt)
        if not bool(inside.any()) or bool(res["empty"][j]):
            continue
        checked += 1
        bad += int((y[inside] < res["lb"][j] - 1e-9).any())
        for k, p in enumerate(P.pre):
            lj, uj = (t[j].reshape(-1) for t in res["ctx"].bounds[p])
            zk = z[inside][:, P.offsets[k]:P.offsets[k] + P.sizes[k]]
            bad += int(((zk < lj - 1e-9) | (zk > uj + 1e-9)).any())
    return bad, checked


def _wrong_half(box: torch.Tensor, dec: torch.Tensor, point: torch.Tensor) -> torch.Tensor:
    """Planted bug: the 'z <= point' child is built on [point, u], the parent interval's other half."""
    k = box.shape[0]
    ar = torch.arange(k)
    right = box.clone()
    right[ar, 0, dec] = torch.max(right[ar, 0, dec], point)
    return torch.cat([right, right.clone()])


@pytest.mark.parametrize("plant", [None, "sign", "half"])
def test_child_bounds_hold_on_sampled_points(plant: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    if plant == "sign":
        monkeypatch.setattr(act_bab, "_split_sign", lambda: -1.0)
    if plant == "half":
        monkeypatch.setattr(act_bab, "_children", _wrong_half)
    bad = checked = 0
    for seed, n, layers, act in [(0, 5, 2, nn.Sigmoid), (1, 6, 2, nn.Tanh), (2, 5, 1, nn.Tanh)]:
        net = _net(seed, n, 10, layers, act)
        P, box, cons = _sample_children(seed, net, n, 3)
        b, c = _violations(P, box, cons, net, n, iters=20)
        bad, checked = bad + b, checked + c
    assert checked >= 12  # of 24 children, most hold sampled points
    if plant is None:
        assert bad == 0
    else:
        assert bad > 0  # the check catches the planted bug


def test_planted_wrong_half_gives_a_wrong_unsat(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the children built on the wrong half, the search closes a property that has a
    counterexample (found by sampling): the end-to-end check fails on the bug."""
    monkeypatch.setattr(act_bab, "_children", _wrong_half)
    wrong = 0
    for seed, n, layers, act in CASES[:4]:
        net = _net(seed, n, 12, layers, act)
        lo, hi = -torch.ones(n, dtype=F64), torch.ones(n, dtype=F64)
        m, _ = _true_min(net, lo, hi, samples=20_000)
        for off in (0.002, 0.01, 0.05):
            d = torch.full((2,), m + off, dtype=F64)
            r = act_split(net, (n,), lo, hi, C2, d, deadline=time.perf_counter() + 2.0, branching="babsr",
                          pgd_steps=0, attack_domains=1)
            wrong += r.status == "unsat"
    assert wrong > 0


def test_mixed_relu_sigmoid_net_is_sound() -> None:
    for seed in range(2):
        net = _net(seed, 6, 10, 3, nn.Sigmoid, relu_at=1)
        lo, hi = -torch.ones(6, dtype=F64), torch.ones(6, dtype=F64)
        m, _ = _true_min(net, lo, hi, samples=20_000)
        for off in (-0.05, 0.01):
            d = torch.full((2,), m + off, dtype=F64)
            r = act_split(net, (6,), lo, hi, C2, d, deadline=time.perf_counter() + 1.0)
            if off > 0:
                assert r.status != "unsat"


def test_deadline_is_kept() -> None:
    net = _net(3, 20, 30, 3, nn.Tanh)
    lo, hi = -torch.ones(20, dtype=F64), torch.ones(20, dtype=F64)
    m, _ = _true_min(net, lo, hi, samples=5_000)
    t0 = time.perf_counter()
    r = act_split(net, (20,), lo, hi, C2, torch.full((2,), m - 0.02, dtype=F64), deadline=t0 + 1.0)
    assert r.status in ("timeout", "unsat")
    assert time.perf_counter() - t0 < 1.0 + 1.0


def test_bad_arguments() -> None:
    net = _net(0, 5, 4, 1, nn.Sigmoid)
    lo, hi = -torch.ones(5, dtype=F64), torch.ones(5, dtype=F64)
    with pytest.raises(ValueError, match="min_width"):
        act_split(net, (5,), lo, hi, C2, torch.zeros(2, dtype=F64), min_width=0.0)
    with pytest.raises(ValueError, match="branching"):
        act_split(net, (5,), lo, hi, C2, torch.zeros(2, dtype=F64), branching="x")


def test_relax_cache_follows_in_place_changes() -> None:
    """activations.Elementwise.relax caches by identity and version: a bound changed in place
    is relaxed afresh (mutation test of the cache), alternating tensors hit the cache."""
    op = activations.Sigmoid("s")
    l, u = torch.tensor([[-1.0, 0.5]], dtype=F64), torch.tensor([[2.0, 1.0]], dtype=F64)  # noqa: E741
    first = op.relax(l, u)
    assert op.relax(l, u) is first
    l2, u2 = l.clone(), u.clone()
    other = op.relax(l2, u2)
    assert op.relax(l, u) is first and op.relax(l2, u2) is other
    u.sub_(0.9)  # in place: [l, u] is now another interval
    fresh = op.relax(l, u)
    assert fresh is not first
    ref = activations.Sigmoid("t").relax(l.clone(), u.clone())
    for a, b in zip(fresh, ref):
        assert torch.equal(a, b)


@pytest.mark.parametrize("cls", [activations.Sigmoid, activations.Tanh])
def test_closed_form_extremes_equal_bisection_and_hold(cls: type[activations.Sigmoid],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The closed-form stationary points (Sigmoid / Tanh) give the bisection's intercepts, and
    lines with any slope and those intercepts bound f on 200 points of every interval."""
    g = torch.Generator().manual_seed(0)
    l = torch.randn(4000, generator=g, dtype=F64) * 5  # noqa: E741
    u = l + torch.rand(4000, generator=g, dtype=F64) * 10
    k = torch.rand(4000, generator=g, dtype=F64) * 1.2 - 0.02  # includes k <= 0 and k > max f'
    op = cls("a")
    mn, mx = op._extremes(l, u, k)
    monkeypatch.setattr(op, "stationary", lambda k: None)
    bmn, bmx = op._extremes(l, u, k)
    assert float((mn - bmn).abs().max()) < 1e-12 and float((mx - bmx).abs().max()) < 1e-12
    x = l.unsqueeze(1) + (u - l).unsqueeze(1) * torch.rand(4000, 200, generator=g, dtype=F64)
    gx = op.f(x) - k.unsqueeze(1) * x
    assert bool((gx >= mn.unsqueeze(1)).all()) and bool((gx <= mx.unsqueeze(1)).all())


def test_verify_property_dispatches_sigmoid_nets_to_act_split() -> None:
    """A Sigmoid net's property that one bound pass leaves open is decided by act_split
    (before, such nets came back 'unknown' at once); a sat one is found, never unsat."""
    import numpy as np

    from certkit.core.bounds.vnnlib import Clause, Property
    from certkit.core.bounds.vnnlib_verify import verify_property

    net = _net(0, 5, 12, 1, nn.Sigmoid)
    lo, hi = -torch.ones(5, dtype=F64), torch.ones(5, dtype=F64)
    m, _ = _true_min(net, lo, hi, samples=20_000)
    for off, want in ((-0.3, "unsat"), (0.01, "sat")):
        prop = Property(5, 3, [Clause(lo.numpy(), hi.numpy(), C2.numpy(), np.full(2, m + off))])
        r = verify_property(net, (5,), prop, timeout=20.0, input_split_max_dims=0, pgd_steps=0, pgd_restarts=0)
        assert r.status == want, (off, r)
        if want == "unsat":
            assert r.method == "act-split"


@pytest.mark.parametrize("act", [nn.Sigmoid, nn.Tanh])
def test_verdicts_against_a_fine_grid_on_two_inputs(act: type[nn.Module]) -> None:
    """Two inputs: a 1001 x 1001 grid is a near-exact reference. No unsat where a grid point
    satisfies the property; no sat without a witness; the thresholds below the grid's minimum
    are proven (it splits)."""
    net = _net(7, 2, 16, 2, act)
    lo, hi = -torch.ones(2, dtype=F64), torch.ones(2, dtype=F64)
    t = torch.linspace(-1, 1, 1001, dtype=F64)
    grid = torch.cartesian_prod(t, t)
    with torch.no_grad():
        gmin = float(_worst(net, grid).min())
    proven = 0
    for off in (-0.1, -0.03, 0.0005, 0.01):
        d = torch.full((2,), gmin + off, dtype=F64)
        r = act_split(net, (2,), lo, hi, C2, d, deadline=time.perf_counter() + (4.0 if off == -0.1 else 1.0))
        if r.status == "unsat":
            assert gmin > float(d[0]), off
            proven += 1
        if off > 0:
            assert r.status != "unsat"
    assert proven >= 1
