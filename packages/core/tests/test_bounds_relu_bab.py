"""ReLU-split branch and bound with β-CROWN bounds (certkit.core.bounds.relu_bab) against an
exact reference.

The reference is a mixed-integer program (scipy's HiGHS ``milp``): every unstable ReLU of a
two-hidden-layer net gets a binary, with big-M constants from interval bounds (valid, so
the program is exact); "is some x in the box with C_k f(x) <= d_k for some k" is the sign
of max_k max_x min_s (d_ks - c_ks·f(x)). Instances have 5-20 inputs and are built with a
±0.05 margin, so the exact answer is never a rounding call. Planted bugs (β terms with the
wrong sign; one child's bound raised, the unsound direction) must turn a sat into unsat.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
from _bab_ref import random_mlp
from torch import nn

from certkit.core.bounds import relu_bab
from certkit.core.bounds.relu_bab import relu_split
from certkit.core.bounds.vnnlib import Clause, Property
from certkit.core.bounds.vnnlib_verify import verify_property

optimize = pytest.importorskip("scipy.optimize")

_FAST = {"pgd_steps": 0, "attack_domains": 1, "batch": 16}  # a weak search: the bounds must decide


def _net(seed: int, n_in: int, hidden: tuple[int, ...] = (8, 8), k: int = 3) -> nn.Sequential:
    return random_mlp(seed, (n_in, *hidden, k), 0.5)


def _best_slack(net: nn.Sequential, lo: np.ndarray, hi: np.ndarray, C: np.ndarray, d: np.ndarray) -> float:
    """max over disjuncts k and x in the box of min_s (d_ks - c_ks·f(x)), exactly (MILP);
    > 0: a counterexample exists. C (N, S, K), d (N, S)."""
    lin = [m for m in net if isinstance(m, nn.Linear)]
    Ws = [m.weight.detach().numpy() for m in lin]
    bs = [m.bias.detach().numpy() for m in lin]
    # variable layout: x, then per hidden layer z, a, delta; then t
    n = lo.size
    idx, pos = [], n
    bounds_l, bounds_u = [*lo], [*hi]
    al, au = lo.copy(), hi.copy()
    for W, b in zip(Ws[:-1], bs[:-1]):
        zl = np.clip(W, 0, None) @ al + np.clip(W, None, 0) @ au + b
        zu = np.clip(W, 0, None) @ au + np.clip(W, None, 0) @ al + b
        h = b.size
        idx.append((pos, pos + h, pos + 2 * h, zl, zu))
        pos += 3 * h
        bounds_l += [*zl, *np.zeros(h), *np.zeros(h)]
        bounds_u += [*zu, *np.clip(zu, 0, None), *np.ones(h)]
        al, au = np.clip(zl, 0, None), np.clip(zu, 0, None)
    t = pos
    nv = pos + 1
    bounds_l.append(-1e3)
    bounds_u.append(1e3)
    rows, lb_, ub_ = [], [], []

    def row(coef: dict[int, float], lo_: float, hi_: float) -> None:
        r = np.zeros(nv)
        for j, v in coef.items():
            r[j] += v
        rows.append(r)
        lb_.append(lo_)
        ub_.append(hi_)

    prev = list(range(n))
    for (z0, a0, d0, zl, zu), W, b in zip(idx, Ws[:-1], bs[:-1]):
        for j in range(b.size):
            row({z0 + j: 1.0, **{p: -W[j, q] for q, p in enumerate(prev)}}, b[j], b[j])  # z = W a + b
            if zl[j] >= 0:
                row({a0 + j: 1.0, z0 + j: -1.0}, 0.0, 0.0)
            elif zu[j] <= 0:
                row({a0 + j: 1.0}, 0.0, 0.0)
            else:
                row({a0 + j: 1.0, z0 + j: -1.0}, 0.0, np.inf)  # a >= z
                row({a0 + j: 1.0, z0 + j: -1.0, d0 + j: -zl[j]}, -np.inf, -zl[j])  # a <= z - l (1 - delta)
                row({a0 + j: 1.0, d0 + j: -zu[j]}, -np.inf, 0.0)  # a <= u delta
        prev = list(range(a0, a0 + b.size))
    integrality = np.zeros(nv)
    for z0, a0, d0, _, _ in idx:
        integrality[d0:d0 + (a0 - z0)] = 1
    best = -np.inf
    Wl, bl = Ws[-1], bs[-1]
    for Ck, dk in zip(C, d):
        extra_r, extra_l, extra_u = [], [], []
        for c, dd in zip(Ck, dk):  # c·(W a + b) + t <= d
            r = np.zeros(nv)
            r[prev] = c @ Wl
            r[t] = 1.0
            extra_r.append(r)
            extra_l.append(-np.inf)
            extra_u.append(dd - c @ bl)
        A = np.array(rows + extra_r)
        cons = optimize.LinearConstraint(A, np.array(lb_ + extra_l), np.array(ub_ + extra_u))
        obj = np.zeros(nv)
        obj[t] = -1.0
        res = optimize.milp(obj, constraints=cons, integrality=integrality,
                            bounds=optimize.Bounds(np.array(bounds_l), np.array(bounds_u)),
                            options={"mip_rel_gap": 1e-9})
        assert res.status == 0, res.message
        best = max(best, -res.fun)
    return float(best)


def _instances(count: int, seed: int = 3) -> list[tuple]:  # type: ignore[type-arg]
    rng = np.random.default_rng(seed)
    out = []
    s = 0
    while len(out) < count:
        s += 1
        n_in = int(rng.integers(5, 21))
        net = _net(100 + s, n_in)
        c0 = rng.uniform(-1, 1, n_in)
        r = rng.uniform(0.1, 0.4, n_in)
        lo, hi = c0 - r, c0 + r
        N, S = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        C = rng.normal(size=(N, S, 3))
        d = np.zeros((N, S))
        base = _best_slack(net, lo, hi, C, d)
        want_sat = bool(s % 2)
        d = d - base + (0.05 if want_sat else -0.05)
        slack = _best_slack(net, lo, hi, C, d)
        if abs(slack) < 0.02:
            continue
        out.append((net, lo, hi, C, d, slack > 0))
    return out


_CASES: list[tuple] = []  # type: ignore[type-arg]


def _cases() -> list[tuple]:  # type: ignore[type-arg]
    if not _CASES:
        _CASES.extend(_instances(14))
    return _CASES


def _run(case, **kw):  # type: ignore[no-untyped-def]
    net, lo, hi, C, d, _ = case
    return relu_split(net, (lo.size,), torch.tensor(lo), torch.tensor(hi), torch.tensor(C), torch.tensor(d),
                      deadline=time.perf_counter() + 30, **{**_FAST, **kw})


def _wrong(**kw) -> list[str]:  # type: ignore[no-untyped-def]
    """Verdicts that contradict the exact reference (undecided ones fail too)."""
    bad = []
    for i, case in enumerate(_cases()):
        r = _run(case, **kw)
        want = "sat" if case[5] else "unsat"
        if r.status != want:
            bad.append(f"case {i}: {r.status}, exact {want}")
        if r.status == "sat":  # the witness satisfies some disjunct in the model's arithmetic
            net, lo, hi, C, d, _ = case
            x = r.x.numpy()
            assert np.all(x >= lo) and np.all(x <= hi)
            y = net(r.x.unsqueeze(0)).detach().numpy()[0]
            assert any(np.all(Ck @ y <= dk) for Ck, dk in zip(C, d))
    return bad


@pytest.mark.parametrize("kw", [{}, {"branching": "babsr", "interm": "crown"}, {"bab_iterations": 0}],
                         ids=["fsb-ibp", "babsr-crown", "crown-no-beta"])
def test_verdicts_equal_the_exact_reference(kw: dict) -> None:  # type: ignore[type-arg]
    assert _wrong(**kw) == []


def test_branching_is_exercised() -> None:
    # the reference test is only worth something if the search has to split
    splits = [_run(c).boxes for c in _cases()]
    unsat_split = [b for b, c in zip(splits, _cases()) if not c[5] and b > 1]
    assert len(unsat_split) >= 3, splits


def test_planted_wrong_sign_beta_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    # β·s·z with the wrong sign adds a positive term the optimiser inflates: domains that
    # hold counterexamples get pruned, and sat comes back unsat
    monkeypatch.setattr(relu_bab, "_beta_signs", lambda s: -s)
    bad = _wrong(bab_iterations=10)
    assert any("unsat, exact sat" in b for b in bad), bad


def _plant_raised_child_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    real = relu_bab._bound_domains

    def planted(P, splits, **kw):  # type: ignore[no-untyped-def]
        res = real(P, splits, **kw)
        D = splits.shape[0]
        if D > 1:  # the first half of every batch are the 'active' children: raise their bound
            res["lb"] = res["lb"].clone()
            res["lb"][: D // 2] += 10.0
        return res

    monkeypatch.setattr(relu_bab, "_bound_domains", planted)


def test_planted_loosened_child_bound_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    # bounding in the model's own arithmetic: the search's bound closes domains directly
    _plant_raised_child_bound(monkeypatch)
    bad = _wrong(bound_dtype=None)
    assert any("unsat, exact sat" in b for b in bad), bad


def test_float32_search_closes_domains_only_by_the_model_arithmetic(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a float32 search on float64 nets (the default) a raised float32 bound (what a
    rounding error in the search could do) closes nothing: the float64 re-bound refuses it,
    and the verdicts still equal the exact reference."""
    r = _run(_cases()[0])
    assert r.stats["confirmed"] + r.stats["not_confirmed"] >= 1  # the confirmation ran
    assert _run(_cases()[0], bound_dtype=None).stats["confirmed"] == 0  # one arithmetic: no re-bound
    _plant_raised_child_bound(monkeypatch)
    assert _wrong() == []


def test_planted_confirmation_that_trusts_the_search_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    # the float64 re-bound is what keeps a float32 search sound: one that accepts every
    # domain the search would close lets a raised child bound through
    _plant_raised_child_bound(monkeypatch)

    def trusting(P, splits, alphas, betas, interm):  # type: ignore[no-untyped-def]
        return torch.ones(splits.shape[0], dtype=torch.bool), torch.zeros(splits.shape[0], P.C.shape[0],
                                                                          dtype=P.C.dtype)

    monkeypatch.setattr(relu_bab, "_confirm", trusting)
    bad = _wrong()
    assert any("unsat, exact sat" in b for b in bad), bad


def test_bound_dtype_is_checked() -> None:
    with pytest.raises(ValueError, match="bound_dtype"):
        _run(_cases()[0], bound_dtype=torch.float16)


@pytest.mark.parametrize("plant", [False, True], ids=["sound", "planted-sign"])
def test_split_bounds_hold_on_sampled_points(plant: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """α,β bounds of random sub-domains are below the rows at every sampled point of the
    sub-domain (points whose split pre-activations have the decided signs); β stays >= 0.
    With the sign planted wrong the check must fail."""
    if plant:
        monkeypatch.setattr(relu_bab, "_beta_signs", lambda s: -s)
    net = _net(7, 12, (10, 10))
    g = torch.Generator().manual_seed(0)
    lo = -0.6 * torch.ones(12, dtype=torch.float64)
    hi = -lo
    C = torch.randn(1, 2, 3, generator=g, dtype=torch.float64)
    P = relu_bab._Problem(net, (12,), lo, hi, C, torch.zeros(1, 2, dtype=torch.float64),
                          torch.ones(1, 2, dtype=torch.bool))
    ctx = P.ctx(1)
    with torch.no_grad():
        ctx.fill_ibp()
        ctx.fill_crown_intermediate()
    P.root = {i: b for i, b in ctx.bounds.items() if 0 < i < P.g.output}
    D = 24
    splits = torch.zeros(D, P.total, dtype=torch.int8)
    for j in range(D):  # 1-4 random decisions per domain
        pick = torch.randperm(P.total, generator=g)[: 1 + j % 4]
        splits[j, pick] = (torch.randint(0, 2, (pick.numel(),), generator=g) * 2 - 1).to(torch.int8)
    res = relu_bab._bound_domains(P, splits, iters=30, lr=0.5, beta_lr=0.5, interm="crown", deadline=None)
    terms = res["ctx"].opt_out["betas"]
    signs_ok = True  # every term is -β·s with β >= 0
    for k, p in enumerate(P.pre):
        if p in terms:
            s = P.split_view(splits, k).to(torch.float64).unsqueeze(1)
            signs_ok &= bool((terms[p].detach() * s <= 0).all())
    x = lo + (hi - lo) * torch.rand(200_000, 12, generator=g, dtype=torch.float64)
    with torch.no_grad():
        acts = P.g.forward(x)
        rowv = acts[P.g.output] @ P.C.T  # (M, R)
        worst = 0.0
        for j in range(D):
            inside = torch.ones(x.shape[0], dtype=torch.bool)
            for k, p in enumerate(P.pre):
                s = splits[j, P.offsets[k]:P.offsets[k] + P.sizes[k]]
                z = acts[p].reshape(x.shape[0], -1)
                inside &= (((s > 0) & (z < 0)) | ((s < 0) & (z > 0))).sum(1) == 0
            if bool(inside.any()):
                worst = max(worst, float((res["lb"][j].detach() - rowv[inside]).max()))
    if plant:
        assert worst > 1e-3
        assert not signs_ok
    else:
        assert worst <= 1e-9
        assert signs_ok


def test_deadline_returns_timeout() -> None:
    net = _net(11, 20, (64, 64, 64))
    lo = -torch.ones(20, dtype=torch.float64)
    hi = torch.ones(20, dtype=torch.float64)
    C = torch.tensor([[1.0, -1.0, 0.0]], dtype=torch.float64)
    x = lo + (hi - lo) * torch.rand(500, 20, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for _ in range(100):  # PGD from 500 starts: d just below the best value found is a hard call
        x.requires_grad_(True)
        (gr,) = torch.autograd.grad((net(x) @ C.T).sum(), x)
        x = torch.min(torch.max(x.detach() - 0.02 * gr.sign(), lo), hi)
    with torch.no_grad():
        d = (net(x) @ C.T).min().reshape(1) - 0.01
    t0 = time.perf_counter()
    r = relu_split(net, (20,), lo, hi, C, d, deadline=t0 + 1.0)
    took = time.perf_counter() - t0
    assert r.status == "timeout"
    assert took < 2.0, took


def test_verify_property_dispatches_to_relu_split() -> None:
    # an instance the single bound passes leave open on a 5-20 dim input: decided by ReLU splitting
    for net, lo, hi, C, d, sat in _cases():
        if sat or lo.size <= 16:
            continue
        prop = Property(n_inputs=lo.size, n_outputs=3, clauses=[
            Clause(lo=lo, hi=hi, C=C[k], d=d[k]) for k in range(C.shape[0])])
        r = verify_property(net, (lo.size,), prop, timeout=30, pgd_restarts=1, pgd_steps=5)
        if r.method == "relu-split":
            assert r.status == "unsat"
            return
    pytest.fail("no instance reached ReLU splitting")


def test_bad_arguments() -> None:
    net = _net(1, 5)
    lo, hi = -torch.ones(5, dtype=torch.float64), torch.ones(5, dtype=torch.float64)
    C, d = torch.ones(1, 3, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
    for kw, msg in (({"batch": 0}, "batch"), ({"max_domains": 0}, "max_domains"), ({"branching": "x"}, "branching"),
                    ({"interm": "x"}, "interm"), ({"bab_iterations": -1}, "bab_iterations"),
                    ({"valid": torch.ones(2, 2, dtype=torch.bool)}, "valid")):
        with pytest.raises(ValueError, match=msg):
            relu_split(net, (5,), lo, hi, C, d, **kw)
    with pytest.raises(ValueError, match="C, d"):
        relu_split(net, (5,), lo, hi, C, torch.zeros(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="lo, hi"):
        relu_split(net, (5,), hi, lo, C, d)


def test_relu_on_the_input_is_not_split() -> None:
    # the input node is not a split candidate (its bounds are the box), and a leaf with that
    # ReLU unstable is not affine: the LP must not close it (it did: sat came back unsat)
    g = torch.Generator().manual_seed(5)
    net = nn.Sequential(nn.ReLU(), nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2)).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    lo, hi = -torch.ones(6, dtype=torch.float64), torch.ones(6, dtype=torch.float64)
    C = torch.tensor([[1.0, -1.0]], dtype=torch.float64)
    x = lo + (hi - lo) * torch.rand(20000, 6, generator=g, dtype=torch.float64)
    with torch.no_grad():
        v = (net(x) @ C.T).flatten()
    P = relu_bab._Problem(net, (6,), lo, hi, C.unsqueeze(0), torch.zeros(1, 1, dtype=torch.float64),
                          torch.ones(1, 1, dtype=torch.bool))
    assert 0 not in P.pre and len(P.pre) == 1
    sat = relu_split(net, (6,), lo, hi, C, v.min().reshape(1) + 0.05, deadline=time.perf_counter() + 30)
    assert sat.status in ("sat", "unknown")
    uns = relu_split(net, (6,), lo, hi, C, v.min().reshape(1) - 1.0, deadline=time.perf_counter() + 30)
    assert uns.status in ("unsat", "sat")  # sat only if sampling missed a lower point by > 1
    if uns.status == "sat":
        assert float(uns.y @ C[0]) <= float(v.min()) - 1.0


def test_bounds_crossing_by_rounding_do_not_close_a_domain() -> None:
    # a constant neuron's bounds may cross by an ulp (CROWN ∩ IBP); that is not an empty domain
    net = _net(3, 5, (4, 4))
    lo, hi = -torch.ones(5, dtype=torch.float64), torch.ones(5, dtype=torch.float64)
    P = relu_bab._Problem(net, (5,), lo, hi, torch.ones(1, 1, 3, dtype=torch.float64),
                          torch.zeros(1, 1, dtype=torch.float64), torch.ones(1, 1, dtype=torch.bool))
    ctx = P.ctx(1)
    with torch.no_grad():
        ctx.fill_ibp()
        ctx.fill_crown_intermediate()
    P.root = {i: b for i, b in ctx.bounds.items() if 0 < i < P.g.output}
    p2 = P.pre[1]
    l2, u2 = P.root[p2]
    l2 = l2.clone()
    l2[0, 0] = torch.nextafter(u2[0, 0], torch.tensor(math.inf, dtype=torch.float64))  # one ulp above u
    P.root[p2] = (l2, u2)
    splits = torch.zeros(2, P.total, dtype=torch.int8)
    splits[1, 0] = 1  # a split in the first layer: the second layer's bounds are checked
    splits[1, P.offsets[1] + 1] = -1 if bool(P.root[p2][0][0, 1] < 0) else 1
    empty = relu_bab._bounds_with_splits(P, P.ctx(2), splits, "ibp")
    assert not bool(empty.any())
    l2[0, 0] = u2[0, 0] + 0.5  # a real crossing is an empty domain
    assert bool(relu_bab._bounds_with_splits(P, P.ctx(2), splits, "ibp")[1])


def test_leaf_lp_runs_only_where_the_relaxation_is_exact() -> None:
    """The leaf LP treats the net as affine; that holds only where ``relu_relaxation`` gives
    the ReLU itself (slopes 0 or 1, zero intercept, lower = upper). An inactive neuron with
    l in (-1e-8, 0) does not (the zero-width guard gives it a positive upper slope): the old
    check ("no l < 0 < u") passed it."""
    from certkit.core.bounds.ops import relu_relaxation

    g = torch.Generator().manual_seed(0)
    scale = 10.0 ** torch.randint(-12, 1, (4000,), generator=g).double()
    l = torch.randn(4000, generator=g, dtype=torch.float64) * scale  # noqa: E741
    u = l + torch.rand(4000, generator=g, dtype=torch.float64) * scale * torch.randint(0, 2, (4000,), generator=g)
    l = torch.cat([l, torch.tensor([-5e-9, -1e-8, 0.0, 0.0, -1e-9], dtype=torch.float64)])  # noqa: E741
    u = torch.cat([u, torch.tensor([-1e-9, -1e-8, 0.0, 1e-9, 0.0], dtype=torch.float64)])
    ud, ub, ld = relu_relaxation(l, u)
    exact = ((ud == 0) | (ud == 1)) & (ub == 0) & (ld == ud)
    flagged = relu_bab._relu_exact(l, u)
    assert bool((exact | ~flagged).all()), "a neuron called exact has an inexact relaxation"
    assert not bool(flagged[-5]) and bool(flagged[-4]) and bool(flagged[-3])


def test_domain_pool_keeps_every_open_domain_once() -> None:
    """_Pool's O(k) take (tail rows fill the holes) against a plain set of ids, over random
    adds and takes: the taken rows are the requested ones, the rest stay, each exactly once,
    with their other columns."""
    g = torch.Generator().manual_seed(0)
    pool, ref, nxt = relu_bab._Pool(), [], 0
    for step in range(200):
        m = int(torch.randint(0, 40, (1,), generator=g))
        if m:
            ids = torch.arange(nxt, nxt + m)
            nxt += m
            pool.add(id=ids, sq=(ids ** 2).reshape(m, 1).expand(m, 3).to(torch.float16))
            ref += ids.tolist()
        if pool.n and step % 3:
            k = int(torch.randint(1, pool.n + 1, (1,), generator=g))
            idx = torch.randperm(pool.n, generator=g)[:k]
            want = pool.view("id")[idx].tolist()  # the rows at those positions
            got = pool.take(idx)
            assert got["id"].tolist() == want
            assert torch.equal(got["sq"][:, 2], (got["id"] ** 2).to(torch.float16))
            ref = [r for r in ref if r not in set(want)]
        assert sorted(pool.view("id").tolist()) == sorted(ref)
        assert torch.equal(pool.view("sq")[:, 0], (pool.view("id") ** 2).to(torch.float16))
