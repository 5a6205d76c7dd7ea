"""The ReLU-split search on the net without the root's dead neurons
(certkit.core.bounds.relu_bab._without_dead): the same function on the box, the same
bounds of every domain, the same verdicts, on fewer neurons."""

from __future__ import annotations

import time

import pytest
import torch
from _bab_ref import crown_root, random_mlp

from certkit.core.bounds import relu_bab

_SIZES = (8, 24, 24, 24, 3)


def _problem(seed: int, width: float = 0.3, sizes: tuple[int, ...] = _SIZES) -> relu_bab._Problem:
    net = random_mlp(seed, sizes, 0.5)
    g = torch.Generator().manual_seed(seed)
    c = torch.rand(8, generator=g, dtype=torch.float64) - 0.5
    C = torch.tensor([[[1.0, -1.0, 0.0]], [[0.0, 1.0, -1.0]]], dtype=torch.float64)
    P = relu_bab._Problem(net, (8,), c - width, c + width, C, torch.zeros(2, 1, dtype=torch.float64),
                          torch.ones(2, 1, dtype=torch.bool))
    crown_root(P)
    return P


def _splits(P: relu_bab._Problem, D: int, seed: int) -> torch.Tensor:
    """D random split vectors (in P's neuron order) over 4 of P's unstable neurons each."""
    g = torch.Generator().manual_seed(seed)
    rl = torch.cat([P.root[p][0].reshape(-1) for p in P.pre])
    ru = torch.cat([P.root[p][1].reshape(-1) for p in P.pre])
    unstable = torch.nonzero((rl < 0) & (ru > 0)).flatten()
    s = torch.zeros(D, P.total, dtype=torch.int8)
    for j in range(D):
        pick = unstable[torch.randperm(unstable.numel(), generator=g)[:4]]
        s[j, pick] = (torch.randint(0, 2, (pick.numel(),), generator=g) * 2 - 1).to(torch.int8)
    return s


def _same_bounds(P: relu_bab._Problem, R: relu_bab._Problem, s: torch.Tensor, iters: int) -> bool:
    full = relu_bab._bound_domains(P, R.expand(s), iters=iters, lr=0.5, beta_lr=0.5, interm="ibp", deadline=None)
    red = relu_bab._bound_domains(R, s, iters=iters, lr=0.5, beta_lr=0.5, interm="ibp", deadline=None)
    ok = torch.equal(full["empty"], red["empty"]) and torch.allclose(full["lb"], red["lb"], rtol=0, atol=1e-9)
    sf = relu_bab._babsr_scores(P, full["ctx"], full["lam"])
    sr = relu_bab._babsr_scores(R, red["ctx"], red["lam"])
    return ok and torch.allclose(sf, R.expand(sr), rtol=0, atol=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dropping_dead_neurons_keeps_the_function_and_every_bound(seed: int) -> None:
    P = _problem(seed)
    R = relu_bab._without_dead(P)
    assert R is not P and R.total < P.total and R.full_total == P.total
    ru = torch.cat([P.root[p][1].reshape(-1) for p in P.pre])
    dropped = torch.ones(P.total, dtype=torch.bool)
    dropped[R.index] = False
    assert bool((ru[dropped] <= 0).all())  # only neurons dead on the box are dropped
    x = P.lo + torch.rand(64, P.lo.numel(), dtype=torch.float64) * (P.hi - P.lo)
    assert torch.allclose(P.violation(x)[1], R.violation(x)[1], rtol=0, atol=1e-12)
    s = R.expand(_splits(R, 10, seed))[:, R.index]  # (splits over the kept neurons)
    for iters in (0, 3):  # CROWN, and α,β steps (the same path: the dropped neurons' α get no gradient)
        assert _same_bounds(P, R, s, iters)


def test_dropping_a_live_neuron_is_caught() -> None:
    """The comparison above can fail: a neuron live on the box, dropped as if dead (its
    root upper bound planted below 0), changes the net and the bounds."""
    P = _problem(0)
    R = relu_bab._without_dead(P)
    s = _splits(R, 10, 0)
    p = P.pre[1]
    live = torch.nonzero(P.root[p][1].reshape(-1) > 0).flatten()
    u = P.root[p][1].clone()
    u.view(-1)[live[0]] = -1.0
    Q = relu_bab._Problem.__new__(relu_bab._Problem)
    Q.__dict__.update(P.__dict__)
    Q.root = {**P.root, p: (torch.min(P.root[p][0], u), u)}
    RQ = relu_bab._without_dead(Q)
    assert RQ.total == R.total - 1
    keep = torch.isin(R.index, RQ.index)
    assert not _same_bounds(P, RQ, s[:, keep], 0)


def test_a_net_without_dead_neurons_is_searched_whole() -> None:
    P = _problem(0, width=50.0)  # a wide box: every hidden neuron can be active
    assert relu_bab._without_dead(P) is P


def _cases() -> list[tuple]:  # type: ignore[type-arg]
    out = []
    for seed in range(3):
        P = _problem(seed, sizes=(8, 12, 12, 3))
        net = random_mlp(seed, (8, 12, 12, 3), 0.5)
        out.append((net, P.lo, P.hi, P.C.reshape(2, 1, 3)))
    return out


def test_relu_split_searches_the_pruned_net_with_the_same_verdicts(monkeypatch: pytest.MonkeyPatch) -> None:
    """relu_split bounds on the pruned net (fewer search neurons) and decides as on the whole
    one; the leaf LP gets split vectors over the whole net's neurons (the attack is off, so
    the leaf LP finds every counterexample)."""
    monkeypatch.setattr(relu_bab, "_attack", lambda *a: None)
    real_leaf = relu_bab._solve_leaf
    widths: list[int] = []

    def leaf(P, splits):  # type: ignore[no-untyped-def]
        widths.append(splits.shape[1] - P.total)
        return real_leaf(P, splits)

    monkeypatch.setattr(relu_bab, "_solve_leaf", leaf)
    statuses = set()
    for net, lo, hi, C in _cases():
        full = sum(m.out_features for m in net if isinstance(m, torch.nn.Linear)) - 3
        x = lo + torch.rand(4000, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * (hi - lo)
        with torch.no_grad():
            m = float((net(x) @ C[:, 0].T).min())  # the least c·f(x) sampled: thresholds below / above it
        for d0 in (m - 0.3, m - 0.15, m + 0.01):
            d = torch.full((2, 1), d0, dtype=torch.float64)
            kw = {"deadline": time.perf_counter() + 30, "pgd_steps": 0, "attack_domains": 1, "batch": 8}
            a = relu_bab.relu_split(net, (8,), lo, hi, C, d, **kw)
            b = relu_bab.relu_split(net, (8,), lo, hi, C, d, prune_dead=False, **kw)
            assert a.status == b.status and a.status in ("sat", "unsat")
            assert a.stats["search_neurons"] < full and b.stats["search_neurons"] == full
            statuses.add(a.status)
    assert statuses == {"sat", "unsat"} and widths and all(w == 0 for w in widths)


def test_the_float32_search_keeps_the_neurons_the_float64_root_keeps(monkeypatch: pytest.MonkeyPatch) -> None:
    """A neuron whose float64 root upper bound is in (0, 1e-45] (here constant 1e-50) is 0 in
    float32: the float32 search net must still keep it, as the float64 one that confirms its
    domains does (the old code dropped it there only: split vectors of two lengths)."""
    monkeypatch.setattr(relu_bab, "_attack", lambda *a: None)
    net, lo, hi, C = _cases()[0]
    with torch.no_grad():
        net[0].weight[0].zero_()
        net[0].bias[0] = 1e-50
    x = lo + torch.rand(4000, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * (hi - lo)
    with torch.no_grad():
        m = float((net(x) @ C[:, 0].T).min())
    kw = {"deadline": time.perf_counter() + 30, "pgd_steps": 0, "attack_domains": 1, "batch": 8}
    for d0 in (m - 0.15, m + 0.01):
        d = torch.full((2, 1), d0, dtype=torch.float64)
        a = relu_bab.relu_split(net, (8,), lo, hi, C, d, **kw)
        b = relu_bab.relu_split(net, (8,), lo, hi, C, d, prune_dead=False, **kw)
        assert a.status == b.status and a.status in ("sat", "unsat"), (a.status, b.status)


def test_one_box_for_every_domain_is_concretised_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The domains of a batch share one input box (an expanded view): its centre / radius
    are computed once per pass, not per domain, with the same bounds as per-domain boxes."""
    from certkit.core.bounds import fused

    P = _problem(0)
    R = relu_bab._without_dead(P)
    s = _splits(R, 16, 0)
    sizes: list[int] = []
    real = fused.centre_radius

    def counted(lo, hi):  # type: ignore[no-untyped-def]
        sizes.append(lo.numel())
        return real(lo, hi)

    monkeypatch.setattr(fused, "centre_radius", counted)
    ctx, _ = relu_bab._domain_ctx(R, s, "ibp", None)
    sizes.clear()  # (IBP's intervals: one per domain)
    Cb = R.C.unsqueeze(0).expand(16, -1, -1).reshape(16, 2, 3)
    with torch.no_grad():
        shared = ctx.backward(R.g.output, Cb)
        assert sizes and all(n == 8 for n in sizes)  # (the box, once; not 16 x 8)
        ctx.lo, ctx.hi = ctx.lo.clone(), ctx.hi.clone()  # the same box, one copy per domain
        own = ctx.backward(R.g.output, Cb)
    assert torch.allclose(shared, own, rtol=0, atol=1e-12)


def test_the_root_alpha_crown_runs_on_the_pruned_net(monkeypatch: pytest.MonkeyPatch) -> None:
    """The root's full α-CROWN runs on the net without the neurons CROWN proved dead, and
    gives the whole net's margins and bounds (the dropped neurons keep CROWN's, all <= 0)."""
    from certkit.core.bounds.model import _Ctx

    net = random_mlp(1, _SIZES, 0.5)
    P = _problem(1)
    d = torch.full((2, 1), -2.0, dtype=torch.float64)  # (open at the root: the search runs)
    widths: list[int] = []
    real = _Ctx.alpha_crown

    def recorded(self, *a, **k):  # type: ignore[no-untyped-def]
        if k.get("intermediate"):
            widths.append(sum(self.g.shapes[p][0] for p in P.pre))
        return real(self, *a, **k)

    monkeypatch.setattr(_Ctx, "alpha_crown", recorded)
    runs = [relu_bab.relu_split(net, (8,), P.lo, P.hi, P.C.reshape(2, 1, 3), d, max_domains=1, prune_dead=pr)
            for pr in (True, False)]
    assert widths[0] < widths[1] == P.total
    a, b = runs[0].stats, runs[1].stats
    assert abs(a["root_margins"][0] - b["root_margins"][0]) < 1e-9
    for i, (bl, bu) in b["root_bounds"].items():
        al, au = a["root_bounds"][i]
        assert torch.equal(au <= 0, bu <= 0)
        live = bu > 0
        assert torch.allclose(al[live], bl[live], rtol=0, atol=1e-9) and torch.allclose(au[live], bu[live], rtol=0,
                                                                                      atol=1e-9)


def test_the_attack_returns_only_points_the_model_confirms() -> None:
    """The attack's steps follow the search net's gradient (PA), but a point is returned only
    if the model's own arithmetic (P) puts it inside a disjunct."""
    P = _problem(0)
    R = relu_bab._without_dead(P)
    liar = relu_bab._Problem.__new__(relu_bab._Problem)
    liar.__dict__.update(R.__dict__)
    liar.violation = lambda x: (-(x.sum(1) ** 2) - 1.0, x)  # type: ignore[method-assign]  # "violated" everywhere
    gen = torch.Generator().manual_seed(0)
    x0 = P.lo + torch.rand(8, P.lo.numel(), generator=gen, dtype=torch.float64) * (P.hi - P.lo)
    lb = relu_bab._bound_domains(P, torch.zeros(1, P.total, dtype=torch.int8), iters=0, lr=0.5, beta_lr=0.5,
                                 interm="ibp", deadline=None)["lb"][0]
    P.d = lb - 0.1  # below CROWN's lower bound on the box: no point meets a disjunct
    assert relu_bab._attack(P, x0, 3, liar) is None
    P.d = P.d + 10.0  # every point meets one
    hit = relu_bab._attack(P, x0, 3, liar)
    assert hit is not None and bool(P.violation(hit[0].unsqueeze(0))[0][0] <= 0)
    R.d = P.d  # the honest pruned net: its near-violations are re-checked, and hold
    hit = relu_bab._attack(P, x0, 3, R)
    assert hit is not None and bool(P.violation(hit[0].unsqueeze(0))[0][0] <= 0)
