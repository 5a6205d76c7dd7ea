"""Red-team tests (#18, session 4) of the bound and branch-and-bound code: bounds against
sampled points on small random nets (float64 and float32), verdicts against exact references,
and the cases that broke a verifier (each such test fails on the code before its fix)."""

from __future__ import annotations

import itertools
import math
import random
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from _bab_ref import crown_root
from torch import Tensor, nn

from certkit.core.bounds import BoundedModel
from certkit.core.bounds.bab import input_split
from certkit.core.bounds.deadline import how_many
from certkit.core.bounds.relu_bab import relu_split
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


# ---- ReLU splitting: the leaf LP and empty domains (relu_bab.py)

def _leaf_case(seed: int) -> tuple[nn.Module, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """A random float64 ReLU MLP (weights up to 1000x, output constants up to 1e6, C up to
    100x), a box (some inputs points) and a witness x: d = C f(x) + rel·(|C| |f(x)|) with rel
    in {0, 1e-12, 1e-9}, so x satisfies the property in the model's arithmetic. Returns the net,
    lo, hi, C (1, S, 3), d (1, S) and x's activation pattern (1, neurons) (root-stable
    neurons take their stable sign)."""
    from certkit.core.bounds.relu_bab import _Problem

    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    n = rng.randint(1, 6)
    sizes = [n, *(rng.choice([2, 4, 8, 16]) for _ in range(rng.choice([1, 2, 3]))), 3]
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), nn.ReLU()]
    net = nn.Sequential(*layers[:-1]).double()
    wsc = rng.choice([1.0, 10.0, 1000.0])
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * wsc / m.in_features ** 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * rng.choice([0.0, 0.5, 1.0]) * wsc)
                if rng.random() < 0.2:
                    m.weight.copy_(m.weight.round())
                    m.bias.copy_(m.bias.round())
        net[-1].bias.add_(torch.randn(3, generator=g).double() * rng.choice([0.0, 1e3, 1e6]))
    net.eval().requires_grad_(False)
    c0 = torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1
    r = torch.tensor([rng.choice([0.0, 0.01, 0.3, 1.0, 100.0]) for _ in range(n)], dtype=torch.float64)
    lo, hi = c0 - r, c0 + r
    S = rng.randint(1, 4)
    C = torch.randn(1, S, 3, generator=g, dtype=torch.float64) * rng.choice([1, 100])
    x = lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64)
    if rng.random() < 0.3:
        x = torch.where(torch.rand(n, generator=g) < 0.5, lo, hi)
    pre, h = [], x.unsqueeze(0)
    with torch.no_grad():
        for m in net:
            h = m(h)
            if isinstance(m, nn.Linear):
                pre.append(h[0])
    y = h[0]
    d = (C[0] @ y + rng.choice([0.0, 1e-12, 1e-9]) * (C[0].abs() @ y.abs())).reshape(1, S)
    P = _Problem(net, (n,), lo, hi, C, d, torch.ones(1, S, dtype=torch.bool))
    rl, ru = crown_root(P)
    s = torch.where(torch.cat(pre[:-1]) >= 0, 1, -1)
    s = torch.where(rl >= 0, 1, torch.where(ru <= 0, -1, s)).to(torch.int8).unsqueeze(0)
    return P, s  # type: ignore[return-value]


def test_leaf_lp_never_closes_the_leaf_of_a_witness() -> None:
    """The leaf LP closed a leaf when its best t was below -1e-6, an absolute tolerance: with
    thresholds d ~ 3e10 (float64) the LP's constants carry more rounding than that, and the
    leaf of a point that meets every row came back closed (seed 57: best t -4.7e-6). Now
    every row is relaxed by its own rounding scale."""
    from certkit.core.bounds.relu_bab import _solve_leaf

    pytest.importorskip("scipy.optimize")
    verdicts = {}
    for seed in range(80):
        P, s = _leaf_case(seed)
        verdicts[seed] = _solve_leaf(P, s)[0]  # type: ignore[arg-type]
    assert "closed" not in verdicts.values(), [k for k, v in verdicts.items() if v == "closed"]
    assert list(verdicts.values()).count("sat") > 40  # (most leaves decided by the LP's own witness)
    P, s = _leaf_case(4)  # a row with d = +inf (always true) made linprog raise (b_ub must be finite)
    P.d = P.d.clone()
    P.d[-1] = math.inf
    assert _solve_leaf(P, s)[0] != "closed"  # type: ignore[arg-type]


def _float32_constant_neurons(seed: int) -> tuple[nn.Module, Tensor, Tensor, Tensor, Tensor]:
    """A float32 3-hidden-layer ReLU MLP whose first half of neurons in each layer is constant
    on the box (x0 the only wide input, x1, x2 points; weights scaled up to 100x), and a
    property y0 - y1 <= d that a grid point meets with a margin of 1e-4 relative."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    h = rng.choice([4, 8])
    net = nn.Sequential(nn.Linear(3, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(),
                        nn.Linear(h, 2)).eval().requires_grad_(False)
    with torch.no_grad():
        net[0].weight[: h // 2, 0] = 0
        net[2].weight[: h // 2, h // 2:] = 0
        net[4].weight[: h // 2, h // 2:] = 0
        for m in net:
            if isinstance(m, nn.Linear):
                m.weight.mul_(rng.choice([1, 10, 100]))
                m.bias.mul_(rng.choice([1, 10, 100]))
    lo = torch.tensor([-1.0, rng.uniform(-1, 1), rng.uniform(-1, 1)])
    hi = lo.clone()
    hi[0] = 1.0
    C = torch.tensor([[[1.0, -1.0]]])
    x = lo.repeat(20001, 1)
    x[:, 0] = torch.linspace(-1, 1, 20001)
    with torch.no_grad():
        v = net(x) @ C[0, 0]
    d = torch.tensor([[float(v.min()) + 1e-4 * (1 + float(v.abs().max()))]])
    return net, lo, hi, C, d


@pytest.mark.parametrize("seed", [11, 24, 25])
def test_relu_split_float32_net_with_constant_neurons_is_never_unsat(seed: int) -> None:
    """A domain is empty when some bounds cross "beyond rounding", which was 1e-9 relative:
    below float32's ulp. A constant neuron's IBP-from-the-split and root CROWN bounds cross by
    a few ulps, so both children of a split came back empty: unsat on a float32 net whose
    property a grid point meets by 1e-4 relative (PGD off: the bounds decide)."""
    net, lo, hi, C, d = _float32_constant_neurons(seed)
    for interm in ("ibp", "crown"):
        r = relu_split(net, (3,), lo, hi, C, d, deadline=time.perf_counter() + 5, pgd_steps=0, attack_domains=1,
                       max_domains=2000, interm=interm, batch=4, bound_dtype=None)
        assert r.status != "unsat", (seed, interm, r.status, r.boxes)


# ---- verify_property: disjuncts over one box bounded as one example (vnnlib_verify.py)

@pytest.mark.parametrize("seed", range(6))
def test_merged_disjuncts_prove_what_each_disjunct_proves_alone(seed: int) -> None:
    """Disjuncts over one box are bounded as one example with their rows stacked (different
    row counts, padded): each must be proven exactly when its own CROWN bound proves it (rows
    mapped back to the wrong disjunct or row change the count), and boxes that differ are
    not merged. d puts every row's threshold at its own CROWN bound ± 1e-6 at random."""
    g = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Linear(4, 12), nn.ReLU(), nn.Linear(12, 12), nn.Tanh(), nn.Linear(12, 5)).double().eval()
    boxes = [(torch.rand(4, generator=g, dtype=torch.float64) - 0.5) for _ in range(3)]
    bm = BoundedModel(net, (4,))
    clauses, want = [], 0
    for _ in range(7):
        c0 = boxes[int(torch.randint(0, 3, (1,), generator=g))]
        lo, hi = c0 - 0.2, c0 + 0.2
        S = int(torch.randint(1, 4, (1,), generator=g))
        C = torch.randn(S, 5, generator=g, dtype=torch.float64)
        lb, _ = bm.compute_bounds(((lo + hi) / 2).unsqueeze(0), 0.2, method="CROWN", C=C.unsqueeze(0),
                                  x_L=lo.unsqueeze(0), x_U=hi.unsqueeze(0), bound_upper=False)
        below = torch.rand(S, generator=g) < 0.7  # d above the bound: that row proves nothing
        d = lb[0].detach() + torch.where(below, 1e-6, -1e-6).double()
        want += bool((~below).any())
        clauses.append(Clause(lo.numpy(), hi.numpy(), C.numpy(), d.numpy()))
    prop = Property(n_inputs=4, n_outputs=5, clauses=clauses)
    r = verify_property(net, (4,), prop, timeout=30, methods=("CROWN",), pgd_steps=0, pgd_restarts=0,
                        relu_split=False, input_split_max_dims=0)
    assert r.proven == want, (r, want)


# ---- the compiled ReLU rule (fused.py) against the torch rule

@pytest.mark.parametrize("seed", [24, 25, 43])
def test_fused_relu_rule_equals_the_torch_rule_on_random_conv_nets(seed: int) -> None:
    """CROWN bounds (every intermediate and the output) with the compiled ReLU
    rule equal the torch rule's (float64 1e-9, float32 1e-5 relative) on random conv nets
    (conv / BN / residual / pooling / padding), batches of 1-3 with per-example boxes, dense
    and patches passes, 1 and 2 threads."""
    from certkit.core.bounds import fused

    from test_bounds_patches_fuzz import _random_net, _settings  # isort: skip

    net, shape, rng = _random_net(seed)
    dt = torch.float32 if seed % 2 else torch.float64
    net = net.to(dt)
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(rng.choice([1, 3]), *shape, generator=gen, dtype=dt)
    kw = {k: (v.to(dt) if torch.is_tensor(v) else v) for k, v in _settings(rng, x, gen).items()}
    rest = {k: v for k, v in kw.items() if k != "eps"}
    threads = torch.get_num_threads()
    out = {}
    try:
        for on, nt in ((True, 1), (True, 2), (False, 1)):
            fused.ENABLED = on
            torch.set_num_threads(nt)
            for mode in ("matrix", "patches"):
                bm = BoundedModel(net, shape, use_compiled=False, conv_mode=mode)
                with torch.no_grad():
                    inter = bm.intermediate_bounds(x, kw["eps"], method="CROWN", **rest)
                    lo, up = bm.compute_bounds(x, method="CROWN", **kw)
                out[on, nt, mode] = [lo, up, *(t for b in inter.values() for t in b)]
    finally:
        fused.ENABLED = True
        torch.set_num_threads(threads)
    tol = 1e-9 if dt == torch.float64 else 1e-5
    for (on, nt, mode), ts in out.items():
        ref = out[False, 1, mode]
        scale = max(1.0, *(float(torch.where(torch.isfinite(t), t, 0).abs().max()) for t in ref))
        for a, b in zip(ts, ref):
            fin = torch.isfinite(a)
            assert torch.equal(fin, torch.isfinite(b))
            assert float(torch.where(fin, a - b, 0).abs().max()) <= tol * scale, (on, nt, mode)


# ---- α-CROWN's best intermediate bounds carry no autograd graph (model.py)

MNIST = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "vnncomp2021" / "mnistfc"


@pytest.mark.shared_data
def test_root_intermediate_bounds_carry_no_autograd_graph() -> None:
    """The best intermediate bounds of full α-CROWN (relu_split's root bounds) took a node's
    first bounds without ``detach``: on mnistfc 256x6 nodes 4-13 kept the α iterations'
    autograd graph, so relu_split's MILP refinement crashed (``.numpy()`` on a tensor that
    requires grad: a traceback from ``certkit bounds vnnlib``) and every BaB batch held the
    root's graph."""
    net, spec = MNIST / "mnist-net_256x6.onnx", MNIST / "prop_3_0.03.vnnlib"
    if not (net.is_file() and spec.is_file()):
        pytest.skip("../shared/data/vnncomp2021/mnistfc absent")
    from certkit.core.bounds.relu_bab import _Problem
    from certkit.core.bounds.vnnlib_verify import load_instance

    om, p = load_instance(net, spec)
    c = p.clauses[0]
    P = _Problem(om.module, om.input_shape, torch.tensor(c.lo), torch.tensor(c.hi), torch.tensor(c.C).unsqueeze(0),
                 torch.tensor(c.d).unsqueeze(0), torch.ones(1, len(c.d), dtype=torch.bool))
    for left in (1.5, 3.0):  # (with a deadline, CROWN rows go in timed chunks, as in relu_split)
        ctx = P.ctx(1)
        ctx.deadline = time.perf_counter() + left
        with torch.no_grad():
            ctx.fill_ibp()
            ctx.fill_crown_intermediate()
        ctx.best_interm = {}
        with torch.enable_grad():
            ctx.alpha_crown(P.C.unsqueeze(0), True, False, 20, 0.5, intermediate=True)
        assert not any(t.requires_grad for b in ctx.best_interm.values() for t in b), left


# ---- float32 relaxation lines of the smooth activations (activations.py)

def test_float32_activation_lines_hold_after_the_cast() -> None:
    """Sigmoid / Tanh / GELU / ELU / Softplus lines on float32 intervals (centres and widths
    from 1e-3 to 1e6), CROWN's slopes (``relax``) and arbitrary ones (``relax_slopes``, as
    act_bab's optimised slopes): k·x + b_lo <= f(x) <= k·x + b_up at 401 points of every
    interval, evaluated in float64, and GELU's IBP extremes. The intercepts were cast to
    float32 to nearest (and CROWN's slopes after their intercepts were computed): lines off by
    half an ulp of |b|, 5e-4 at |b| ~ 1e4 (the "~1e-3 on huge intervals")."""
    from certkit.core.bounds.activations import ELU, GELU, Sigmoid, Softplus, Tanh

    g = torch.Generator().manual_seed(0)
    for op in (Sigmoid("s"), Tanh("t"), GELU("g"), ELU("e"), Softplus("p")):
        for scale in (1e-3, 1.0, 100.0, 1e4, 1e6):
            c = torch.randn(300, generator=g, dtype=torch.float64) * scale
            w = torch.rand(300, generator=g, dtype=torch.float64) ** 3 * scale
            lo = (c - w).float()
            hi = torch.max((c + w).float(), lo)
            x = lo.double()[:, None] + (hi.double() - lo.double())[:, None] * torch.linspace(0, 1, 401, dtype=torch.float64)
            x = torch.min(x, hi.double()[:, None])
            fx = op.f(x)
            k = (torch.rand(1, 1, 300, generator=g, dtype=torch.float64) * 1.2 - 0.1).float()
            for kl, bl, ku, bu in (op.relax(lo, hi), op.relax_slopes(lo.unsqueeze(0), hi.unsqueeze(0), k, k)):
                kl, bl, ku, bu = (t.detach().reshape(-1, 1).double() for t in (kl, bl, ku, bu))
                assert bool((kl * x + bl <= fx).all()), (type(op).__name__, scale)
                assert bool((fx <= ku * x + bu).all()), (type(op).__name__, scale)
            il, iu = (t.double().reshape(-1, 1) for t in op.ibp((lo, hi)))  # (GELU's: the extremes, cast)
            if not op.monotone:
                assert bool((il <= fx).all() and (fx <= iu).all()), (type(op).__name__, scale)


# ---- α sets only for the neurons unstable at the start (alpha_sets.py, model.py)

@pytest.mark.parametrize("seed", [0, 11])
def test_sparse_alpha_equals_dense_alpha_on_batches(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Full α-CROWN (intermediate α sets) on random conv nets with batches of 2-3 whose
    examples have different unstable neurons (the sparse sets hold the union): bounds with
    α stored only for the neurons unstable at the start equal the dense α maps' (float64
    1e-9, float32 1e-5 relative; a planted dropped neuron changes them on these seeds)."""
    from certkit.core.bounds.model import _Ctx

    from test_bounds_patches_fuzz import _random_net, _settings  # isort: skip

    net, shape, rng = _random_net(seed)
    dt = rng.choice([torch.float64, torch.float32])
    net = net.to(dt)
    B = rng.choice([1, 2, 3])
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(B, *shape, generator=gen, dtype=dt)
    kw = {k: (v.to(dt) if torch.is_tensor(v) else v)
          for k, v in _settings(rng, x, gen, "inf" if rng.random() < 0.5 else "inf_per_example").items()}
    mode = rng.choice(["matrix", "patches"])
    C = torch.randn(B, 3, 4, generator=gen, dtype=dt)
    out = {}
    for sparse in (True, False):
        monkeypatch.setattr(_Ctx, "sparse_alpha", sparse)
        bm = BoundedModel(net, shape, use_compiled=False, conv_mode=mode)
        with torch.enable_grad():
            lo, up = bm.compute_bounds(x, method="alpha-CROWN", C=C, alpha_iterations=5, alpha_intermediate=True, **kw)
        out[sparse] = (lo.detach(), up.detach())
    scale = max(1.0, float(out[False][0].abs().max()), float(out[False][1].abs().max()))
    tol = (1e-9 if dt == torch.float64 else 1e-5) * scale
    assert float((out[True][0] - out[False][0]).abs().max()) <= tol
    assert float((out[True][1] - out[False][1]).abs().max()) <= tol


# ---- a float32 model's input box (vnnlib_verify.py)

def test_float32_witness_lies_inside_the_property_box() -> None:
    """verify_property rounded a float32 model's box to nearest: 0.7 became 0.69999999, and
    y = x <= 0.7 on x in [0.7, 0.9] came back sat with that point, outside the file's box
    (no float32 x >= 0.7 has y <= float32(0.7)). The box is now rounded inward (where it
    stays non-empty), so a witness lies in the box and unsat covers every float32 input in it."""
    net = nn.Sequential(nn.Linear(1, 1)).eval()
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[0].bias.fill_(0.0)
    prop = Property(n_inputs=1, n_outputs=1, clauses=[Clause(np.array([0.7]), np.array([0.9]), np.array([[1.0]]),
                                                             np.array([0.7]))])
    r = verify_property(net, (1,), prop, timeout=10, relu_split=False, input_split_max_dims=0)
    if r.status == "sat":
        assert r.x is not None and float(r.x[0]) >= 0.7, r
    assert r.status == "unsat", r


# ---- bad input through the API: one ValueError naming the argument, no torch traceback

def test_bad_api_input_names_the_argument() -> None:
    """verify_property with an input_shape the model does not take, and relu_split /
    act_split / input_split with a box of the wrong size, C rows of the wrong output count or
    a NaN threshold, raised torch's RuntimeError (or scipy's linprog message, or ran on to
    'unknown') instead of a ValueError naming the argument."""
    from certkit.core.bounds.act_bab import act_split

    net = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 2)).double().eval()
    prop = Property(n_inputs=5, n_outputs=2, clauses=[Clause(-np.ones(5), np.ones(5), np.array([[1.0, -1.0]]),
                                                             np.array([0.0]))])
    with pytest.raises(ValueError, match="input_shape"):
        verify_property(net, (5,), prop, timeout=5)
    lo, hi = -torch.ones(6, dtype=torch.float64), torch.ones(6, dtype=torch.float64)
    C, d = torch.tensor([[1.0, -1.0]], dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
    for split in (relu_split, act_split, input_split):
        with pytest.raises(ValueError, match=r"^lo: "):
            split(net, (6,), lo[:5], hi, C, d, deadline=time.perf_counter() + 5)
        with pytest.raises(ValueError, match=r"^C: "):
            split(net, (6,), lo, hi, torch.ones(1, 3, dtype=torch.float64), d, deadline=time.perf_counter() + 5)
        with pytest.raises(ValueError, match=r"^d: "):
            split(net, (6,), lo, hi, C, torch.full((1,), math.nan, dtype=torch.float64),
                  deadline=time.perf_counter() + 5)


def test_relu_split_leaf_lp_on_a_bfloat16_model() -> None:
    """The leaf LP took the box's numpy view, which bfloat16 has not: a TypeError out of
    relu_split on a bfloat16 net once a leaf was reached (float16 was fine)."""
    from test_bounds_redteam_s3 import _sampled_min  # isort: skip

    rng = random.Random(11)
    torch.manual_seed(11)
    n, h = rng.randint(2, 5), rng.choice([4, 8])
    net = nn.Sequential(nn.Linear(n, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, 3)).eval()
    net = net.requires_grad_(False).to(torch.bfloat16)
    lo, hi = -torch.ones(n, dtype=torch.bfloat16), torch.ones(n, dtype=torch.bfloat16)
    C = torch.tensor([[1.0, -1.0, 0.0], [1.0, 0.0, -1.0]], dtype=torch.bfloat16)

    class AsFloat(nn.Module):
        def forward(self, z: Tensor) -> Tensor:
            return net(z.to(torch.bfloat16)).float()

    m = _sampled_min(AsFloat(), lo.float(), hi.float(), C.float(), n=4000, steps=20, seed=11)
    r = relu_split(net, (n,), lo, hi, C, torch.full((2,), m + 5e-2 * (1 + abs(m)), dtype=torch.bfloat16),
                   deadline=time.perf_counter() + 3, pgd_steps=0, attack_domains=1, bound_dtype=None)
    assert r.status != "unsat", r


def test_verify_property_on_a_bfloat16_model() -> None:
    """verify_property keyed input boxes and returned witnesses through numpy views, which
    bfloat16 tensors have not: a TypeError on any bfloat16 model."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 6), nn.ReLU(), nn.Linear(6, 2)).to(torch.bfloat16).eval().requires_grad_(False)
    for d, want in ((-1e3, "unsat"), (1e3, "sat")):
        prop = Property(3, 2, [Clause(-np.ones(3), np.ones(3), np.array([[1.0, -1.0]]), np.array([d]))])
        r = verify_property(net, (3,), prop, timeout=5)
        assert r.status == want, r


def test_vnncomp_rows_that_select_nothing_are_an_error() -> None:
    """``certkit bounds vnncomp DIR --rows 3:1`` ran no instance and exited 0."""
    from certkit.core.bounds.vnncomp import _parse_rows

    assert _parse_rows("1:3", 5) == [1, 2]
    with pytest.raises(ValueError, match="selects no row"):
        _parse_rows("3:1", 5)
