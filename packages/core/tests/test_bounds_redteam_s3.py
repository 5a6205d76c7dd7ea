"""Red-team tests (#18, session 3) of the bound code changed this session: ReLU / Sigmoid /
Tanh branch and bound verdicts against sampling + PGD or exact references on small random
nets (float64 and float32), patches α-CROWN against the dense α path at equal α, and the
cases that broke a verifier (each test fails on the code before its fix)."""

from __future__ import annotations

import math
import random
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from certkit.core.bounds import BoundedModel, act_bab, ops, patches
from certkit.core.bounds.act_bab import act_split
from certkit.core.bounds.model import _Ctx
from certkit.core.bounds.relu_bab import relu_split

from test_bounds_patches_fuzz import _random_net  # isort: skip


def _sampled_min(net: nn.Module, lo: Tensor, hi: Tensor, C: Tensor, n: int = 20_000, steps: int = 40,
                 seed: int = 0) -> float:
    """An upper estimate of min over [lo, hi] of max_s C_s @ net(x) (C (S, K)): the best of
    ``n`` uniform points (a quarter of them box vertices), then signed-gradient descent from
    the best 64."""
    gen = torch.Generator().manual_seed(seed)
    x = lo + (hi - lo) * torch.rand(n, lo.numel(), generator=gen, dtype=lo.dtype)
    x[: n // 4] = torch.where(torch.rand(n // 4, lo.numel(), generator=gen) < 0.5, lo, hi)

    def f(x: Tensor) -> Tensor:
        return (net(x) @ C.T).amax(1)

    with torch.no_grad():
        v = f(x)
    best = v.min()
    x = x[v.argsort()[:64]].clone()
    for s in range(steps):
        x.requires_grad_(True)
        with torch.enable_grad():
            (gr,) = torch.autograd.grad(f(x).sum(), x)
        with torch.no_grad():
            x = torch.min(torch.max(x - 0.1 * 0.85 ** s * (hi - lo) * gr.sign(), lo), hi)
            best = torch.minimum(best, f(x).min())
    return float(best)


class _CrossOrder(nn.Module):
    """Two pre-activation nodes of different sizes whose activations run in the other order
    (the Sigmoid of the second linear layer is traced before the Tanh of the first)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.o = nn.Linear(3, 5), nn.Linear(3, 4), nn.Linear(9, 2)

    def forward(self, x: Tensor) -> Tensor:
        a, b = self.a(x), self.b(x)
        return self.o(torch.cat([torch.sigmoid(b), torch.tanh(a)], 1))


def test_act_split_activations_traced_out_of_pre_activation_order() -> None:
    """act_bab sized its split columns in activation order but indexed them in node order:
    a crash (expand / reshape size mismatch) on any net where the two orders differ."""
    torch.manual_seed(0)
    net = _CrossOrder().double().eval()
    lo, hi = -torch.ones(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    C = torch.tensor([[1.0, -1.0]], dtype=torch.float64)
    m = _sampled_min(net, lo, hi, C)
    for d, ok in ((m - 0.05, ("unsat", "unknown", "timeout")), (m + 0.01, ("sat",))):
        r = act_split(net, (3,), lo, hi, C, torch.tensor([d], dtype=torch.float64),
                      deadline=time.perf_counter() + 10)
        assert r.status in ok, (d, m, r.status)


@pytest.mark.parametrize("mode", ["matrix", "patches"])
@pytest.mark.parametrize("k", [3, 5, (3, 7)])
def test_avgpool_crown_exact_on_a_point_in_float64(mode: str, k: int | tuple[int, int]) -> None:
    """AvgPool's backward weights were filled with 1/k² in float32 and then cast: in a float64
    net 1/9 was off by 5e-8 relative, and CROWN's bounds on a zero-width box excluded the
    net's own output by ~1e-9 (a wrong certificate, in both conv modes)."""
    torch.manual_seed(1)
    net = nn.Sequential(nn.ReLU(), nn.AvgPool2d(k, 1, 1), nn.Flatten(), nn.LazyLinear(3)).double()
    x = torch.rand(2, 2, 9, 8, dtype=torch.float64) * 4 - 1
    net(x)
    net.eval()
    bm = BoundedModel(net, (2, 9, 8), use_compiled=False, conv_mode=mode)
    with torch.no_grad():
        y = net(x)
        lo, up = bm.compute_bounds(x, 0.0, method="CROWN")
    assert float((lo - y).max()) <= 1e-12 and float((y - up).max()) <= 1e-12, (lo - y, y - up)


def test_avgpool_impl_cache_follows_the_dtype() -> None:
    """The lazily built depthwise conv is rebuilt (not cast) when the dtype changes."""
    op = ops.AvgPool2d.from_module("p", nn.AvgPool2d(3))
    assert op._get(torch.zeros(1, 2, 6, 6)).m.weight.dtype == torch.float32
    w = op._get(torch.zeros(1, 2, 6, 6, dtype=torch.float64)).m.weight
    assert w.dtype == torch.float64 and bool((w == 1 / 9).all())
    assert op._get(torch.zeros(1, 3, 6, 6, dtype=torch.float64)).m.weight.shape[0] == 3


def _smooth_net(rng: random.Random, n: int, dt: torch.dtype) -> nn.Sequential:
    """1-3 layers of 2-8 neurons, Sigmoid / Tanh / ReLU at random, weights scaled 0.5-10x,
    sometimes a duplicated neuron (ties)."""
    mods: list[nn.Module] = []
    w = n
    for _ in range(rng.randint(1, 3)):
        h = rng.choice([2, 3, 5, 8])
        mods += [nn.Linear(w, h), rng.choice([nn.Sigmoid, nn.Tanh, nn.Sigmoid, nn.Tanh, nn.ReLU])()]
        w = h
    mods.append(nn.Linear(w, 3))
    net = nn.Sequential(*mods).to(dt).eval()
    sc = rng.choice([0.5, 1, 3, 10])
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Linear):
                m.weight.mul_(sc)
                m.bias.mul_(sc)
                if rng.random() < 0.3:
                    m.weight[-1] = m.weight[0]
                    m.bias[-1] = m.bias[0]
    return net.requires_grad_(False)


C2 = torch.tensor([[1.0, -1.0, 0.0], [1.0, 0.0, -1.0]])  # every row <= d: y0 - y1 <= d and y0 - y2 <= d


def _act_case(seed: int) -> tuple[nn.Module, int, Tensor, Tensor, Tensor, float, dict]:  # type: ignore[type-arg]
    """A random smooth net, an input box (centres N(0, s), widths from 0 to 200, one input
    sometimes of zero width), the sampled + PGD minimum m of max(C2 @ f) and search settings."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    dt = rng.choice([torch.float64, torch.float32])
    n = rng.randint(1, 4)
    net = _smooth_net(rng, n, dt)
    c = torch.randn(n, dtype=dt) * rng.choice([0.01, 1, 10])
    w = torch.rand(n, dtype=dt) * rng.choice([1e-6, 0.1, 1, 20, 200])
    if rng.random() < 0.3:
        w[0] = 0
    C = C2.to(dt)
    m = _sampled_min(net, c - w, c + w, C, seed=seed)
    kw = dict(branching=rng.choice(["babsr", "fsb"]), interm=rng.choice(["ibp", "crown"]),
              bab_iterations=rng.choice([0, 5]), alpha_iterations=rng.choice([0, 20]), max_domains=400,
              batch=rng.choice([1, 16, 64]))
    return net, n, c - w, c + w, C, m, kw


_ACT_SEEDS = [88, 95, 101, 114, 122, 165, 188, 310, 349]  # each splits (> 1 domain) on one side


@pytest.mark.parametrize("seed", _ACT_SEEDS)
def test_act_split_never_contradicts_sampling(seed: int) -> None:
    """With d just above the sampled minimum (a point satisfies the property: 1e-9 relative in
    float64, 1e-4 in float32) the answer is never unsat; just below it, any sat carries a
    true witness inside the box."""
    net, n, lo, hi, C, m, kw = _act_case(seed)
    tol = 1e-9 if lo.dtype == torch.float64 else 1e-4
    for off in (tol * (1 + abs(m)), -0.01 * (1 + abs(m))):
        d = torch.full((2,), m + off, dtype=lo.dtype)
        r = act_split(net, (n,), lo, hi, C, d, deadline=time.perf_counter() + 3, **kw)
        if off > 0:
            assert r.status != "unsat", (seed, m, r)
        if r.status == "sat":
            assert r.x is not None and bool(((r.x >= lo) & (r.x <= hi)).all())
            with torch.no_grad():
                assert float((net(r.x.unsqueeze(0)) @ C.T).amax()) <= float(d[0])


def test_act_split_fuzz_catches_a_planted_beta_sign(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above is not vacuous: with the β split terms' sign flipped (and PGD off, so
    the search must decide by its bounds) some of its properties come back unsat."""
    monkeypatch.setattr(act_bab, "_split_sign", lambda: -1.0)
    wrong = 0
    for seed in (95, 188, 310):
        net, n, lo, hi, C, m, kw = _act_case(seed)
        tol = 1e-9 if lo.dtype == torch.float64 else 1e-4
        d = torch.full((2,), m + tol * (1 + abs(m)), dtype=lo.dtype)
        r = act_split(net, (n,), lo, hi, C, d, deadline=time.perf_counter() + 2,
                      **{**kw, "pgd_steps": 0, "attack_domains": 1})
        wrong += r.status == "unsat"
    assert wrong > 0


def _alpha_pass(net: nn.Module, shape: tuple[int, ...], x: Tensor, lo: Tensor, hi: Tensor, C: Tensor, mode: str,
                vals: dict | None, gen: torch.Generator) -> tuple[dict, Tensor, dict]:  # type: ignore[type-arg]
    """One full-α-CROWN iterate at fixed α (random from ``gen`` when ``vals`` is None): every
    start node's bounds (``_alpha_intermediate``), the output's lower bounds of C (B, S, K)
    with the output's α set, and the α values."""
    bm = BoundedModel(net, shape, use_compiled=False, conv_mode=mode)
    e = ((hi - lo) / 2).flatten(1).amax(1).reshape(-1, 1, 1, 1)
    ctx = _Ctx(bm.graph, x, lo, hi, e, math.inf)
    ctx.conv_mode = mode
    with torch.no_grad():
        ctx.fill_ibp()
        ctx.fill_crown_intermediate()
    g = ctx.g
    relus = [i for i, op in enumerate(g.nodes) if isinstance(op, ops.ReLU)]
    ref = dict(ctx.bounds)
    starts = ctx._alpha_starts(ref, relus)
    anc = ctx._ancestors()
    B, out = x.shape[0], g.output
    if vals is None:
        rows_of = {s: 2 * r.numel() for s, (r, _, _) in starts.items()} | {out: C.shape[1]}
        vals = {(s, r): torch.rand((B, p, *g.shapes[r]), generator=gen, dtype=x.dtype)
                for s, p in rows_of.items() for r in relus if r in anc[s]}
    alphas: dict[int, dict[int, Tensor]] = {s: {} for s in [*starts, out]}
    for (s, r), v in vals.items():
        alphas[s][r] = v.clone()
    with torch.no_grad():
        assert ctx._alpha_intermediate(ref, starts, alphas)
        lo_out, _ = ctx.crown(out, C, True, False, alphas[out])
    return {s: ctx.bounds[s] for s in starts}, lo_out, vals


def _patches_alpha_case(seed: int) -> tuple[float, float]:
    """(max |matrix - patches| over the start nodes' and output bounds at equal random α,
    relative to the output's scale; the largest amount a sampled box vertex falls below the
    patches output bound)."""
    net, shape, rng = _random_net(seed)
    gen = torch.Generator().manual_seed(seed)
    B = rng.randint(1, 3)
    x = torch.rand(B, *shape, generator=gen, dtype=torch.float64)
    eps = rng.choice([0.0, 1e-4, 0.02, 0.1])
    lo, hi = x - eps, x + eps
    if rng.random() < 0.3:  # some coordinates of zero width
        m = torch.rand(x.shape, generator=gen) < 0.5
        lo, hi = torch.where(m, x, lo), torch.where(m, x, hi)
    C = torch.randn(B, 3, 4, generator=gen, dtype=torch.float64)
    bd, od, vals = _alpha_pass(net, shape, x, lo, hi, C, "matrix", None, gen)
    bp, op_, _ = _alpha_pass(net, shape, x, lo, hi, C, "patches", vals, gen)
    assert bd and bd.keys() == bp.keys()
    diff = float((od - op_).abs().max())
    for s in bd:
        for a, b in zip(bd[s], bp[s]):
            fin = torch.isfinite(a)
            assert torch.equal(fin, torch.isfinite(b))
            diff = max(diff, float((a[fin] - b[fin]).abs().max()) if bool(fin.any()) else 0.0)
    viol = -math.inf
    with torch.no_grad():
        for _ in range(20):
            xs = lo + (hi - lo) * torch.rand(x.shape, generator=gen, dtype=x.dtype).round()
            viol = max(viol, float((op_ - torch.einsum("bsk,bk->bs", C, net(xs))).max()))
    return diff / max(1.0, float(od.abs().max())), viol


@pytest.mark.parametrize("keep_patches", [False, True])
@pytest.mark.parametrize("seed", [24, 43, 52, 84, 107])
def test_patches_alpha_equals_dense_alpha_on_random_conv_nets(seed: int, keep_patches: bool,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Random conv nets (odd kernels, strides, padding, dilation, groups, BN, pools, residual
    adds with conv shortcuts; boxes of zero or mixed width, B 1-3): at equal random α the
    patches pass (also with every rule kept in patch form) gives the dense pass's start-node
    and output bounds within 1e-9, and the output bounds hold on sampled vertices."""
    if keep_patches:
        monkeypatch.setattr(patches, "_cheaper_dense", lambda p, shape: len(shape) != 3)
    rel, viol = _patches_alpha_case(seed)
    assert rel < 1e-9 and viol < 1e-9, (rel, viol)



@pytest.mark.parametrize("seed", [52, 84])
def test_patches_alpha_equals_dense_alpha_in_chunks_of_rows(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same with the start rows bounded a few at a time (each chunk's α rows sliced)."""
    monkeypatch.setattr(patches, "CHUNK_ELEMENTS", 1)
    monkeypatch.setattr(patches, "CHUNK_MIN_PAIRS", 3)
    rel, viol = _patches_alpha_case(seed)
    assert rel < 1e-9 and viol < 1e-9, (rel, viol)

def test_patches_alpha_fuzz_catches_a_wrong_window(monkeypatch: pytest.MonkeyPatch) -> None:
    def wrong(p, kernel, a, unst, wl):  # type: ignore[no-untyped-def]
        return torch.where(unst > 0, patches.windows(a.alpha, p, kernel, rows=a.rows.roll(1), tag="w"), wl)

    monkeypatch.setattr(patches, "alpha_slopes", wrong)
    assert min(_patches_alpha_case(s)[0] for s in (24, 107)) > 1e-6


class _CrossReLU(nn.Module):
    """Two parallel ReLU layers whose ReLUs are traced out of their pre-activations' order."""

    def __init__(self, n: int, h: int) -> None:
        super().__init__()
        self.a, self.b, self.o = nn.Linear(n, h), nn.Linear(n, h), nn.Linear(2 * h, 3)

    def forward(self, x: Tensor) -> Tensor:
        a, b = self.a(x), self.b(x)
        return self.o(torch.cat([torch.relu(b), torch.relu(a)], 1))


@pytest.mark.parametrize("seed", [0, 1])
def test_relu_split_uses_every_split_when_relus_are_traced_out_of_order(seed: int) -> None:
    """relu_bab kept its pre-activation nodes in ReLU order, and a batch's bounds recomputation
    started at the first *listed* split node: the splits of an earlier node were not applied
    once a later one was split, and the search never closed (timeout / unknown after
    thousands of domains; in node order: unsat within 15-40 domains)."""
    torch.manual_seed(seed)
    net = _CrossReLU(4, 8).double().eval().requires_grad_(False)
    lo, hi = -torch.ones(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64)
    C = C2.double()
    m = _sampled_min(net, lo, hi, C)
    r = relu_split(net, (4,), lo, hi, C, torch.full((2,), m - 0.02, dtype=torch.float64),
                   deadline=time.perf_counter() + 10, pgd_steps=0, attack_domains=1, max_domains=2000)
    assert r.status == "unsat", r


def _relu_case(seed: int) -> tuple[nn.Module, Tensor, Tensor, Tensor, Tensor, dict]:  # type: ignore[type-arg]
    """A random 2-input ReLU MLP (duplicate neurons, integer weights, zero biases at random,
    sometimes an output bias of 1e4-1e6 and C scaled 100x) and a one-disjunct property that a
    grid point satisfies with a margin of 1e-6 relative (a witness, checked in float64)."""
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    h = rng.choice([3, 5, 8])
    net = nn.Sequential(nn.Linear(2, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, 3)).double()
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g, dtype=torch.float64) * rng.choice([1, 10]))
                m.bias.copy_(torch.randn(m.bias.shape, generator=g, dtype=torch.float64) * rng.choice([0, 1, 10]))
                if rng.random() < 0.3 and m.out_features > 1:
                    m.weight[1], m.bias[1] = m.weight[0], m.bias[0]
                if rng.random() < 0.2:
                    m.weight.copy_(m.weight.round())
        net[-1].bias.add_(torch.randn(3, generator=g, dtype=torch.float64) * rng.choice([0.0, 1e4, 1e6]))
    net.eval().requires_grad_(False)
    C = torch.randn(1, 2, 3, generator=g, dtype=torch.float64) * rng.choice([1, 100])
    lo = torch.tensor([-1.0, rng.choice([-1.0, 0.3])], dtype=torch.float64)
    hi = torch.tensor([1.0, rng.choice([1.0, 0.3])], dtype=torch.float64)  # the second input may be a point
    t = torch.linspace(0, 1, 401, dtype=torch.float64)
    x = torch.cartesian_prod(t, t) * (hi - lo) + lo
    with torch.no_grad():
        v = net(x) @ C[0].T
    off = torch.randn(2, generator=g, dtype=torch.float64) * v.std(0)
    w = (v - off).amax(1)
    j = int(w.argmin())
    d = (off + w[j] + 1e-6 * (1 + v[j].abs().max())).reshape(1, 2)
    kw = dict(branching=rng.choice(["babsr", "fsb"]), interm=rng.choice(["ibp", "crown"]),
              bab_iterations=rng.choice([0, 5]), batch=rng.choice([1, 16]), bound_dtype=rng.choice([None, torch.float32]))
    return net, lo, hi, C, d, kw


@pytest.mark.parametrize("seed", [46, 76, 86, 97])  # (split 3-370 domains; 300 fuzzed: none wrong)
def test_relu_split_never_unsat_with_a_known_witness(seed: int) -> None:
    """Ties, integer weights, a point-valued input, output constants up to 1e6, float32
    search or not: a property with a witness is never unsat (PGD off: the bounds decide)."""
    net, lo, hi, C, d, kw = _relu_case(seed)
    r = relu_split(net, (2,), lo, hi, C, d, deadline=time.perf_counter() + 5, pgd_steps=0, attack_domains=1,
                   max_domains=3000, **kw)
    assert r.status != "unsat", (seed, r)
    if r.status == "sat":
        assert r.x is not None and bool(((r.x >= lo) & (r.x <= hi)).all())
        with torch.no_grad():
            assert bool(((net(r.x.unsqueeze(0)) @ C[0].T)[0] <= d[0]).all())


def test_relu_split_fuzz_catches_a_planted_beta_sign(monkeypatch: pytest.MonkeyPatch) -> None:
    from certkit.core.bounds import relu_bab

    monkeypatch.setattr(relu_bab, "_beta_signs", lambda sg: -sg)
    wrong = 0
    for seed in (46, 86, 97):
        net, lo, hi, C, d, kw = _relu_case(seed)
        r = relu_split(net, (2,), lo, hi, C, d, deadline=time.perf_counter() + 5, pgd_steps=0, attack_domains=1,
                       max_domains=3000, **kw)
        wrong += r.status == "unsat"
    assert wrong > 0


def test_onnx_float64_initializers_are_not_rounded_to_float32(tmp_path: Path) -> None:
    """The ONNX importer built Linear / Conv / BatchNorm modules in float32, copied float64
    initializers into them (rounded) and only then cast to float64: the net we bounded
    differed from the file's by ~3e-8 (a certificate about another network)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from certkit.core.bounds.onnx_import import load_onnx

    rng = np.random.default_rng(0)
    Wc, bc = rng.standard_normal((2, 1, 3, 3)) / 3, rng.standard_normal(2) / 3
    sc, sh, mu, var = (rng.standard_normal(2) / 3 for _ in range(4))
    var = np.abs(var) + 0.1
    Wg, bg = rng.standard_normal((3, 2 * 4 * 4)) / 3, rng.standard_normal(3) / 3
    inits = {"Wc": Wc, "bc": bc, "sc": sc, "sh": sh, "mu": mu, "var": var, "Wg": Wg, "bg": bg}
    nodes = [helper.make_node("Conv", ["x", "Wc", "bc"], ["c"]),
             helper.make_node("BatchNormalization", ["c", "sc", "sh", "mu", "var"], ["n"]),
             helper.make_node("Flatten", ["n"], ["f"]),
             helper.make_node("Gemm", ["f", "Wg", "bg"], ["y"], transB=1, alpha=0.3)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [1, 1, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.DOUBLE, [1, 3])],
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    om = load_onnx(path, dtype=torch.float64)
    x = torch.as_tensor(rng.standard_normal((2, 1, 6, 6)))
    t = {k: torch.as_tensor(v) for k, v in inits.items()}
    c = torch.nn.functional.conv2d(x, t["Wc"], t["bc"])
    nrm = (c - t["mu"].view(1, 2, 1, 1)) / torch.sqrt(t["var"].view(1, 2, 1, 1) + 1e-5) * t["sc"].view(1, 2, 1, 1)
    alpha = float(np.float32(0.3))  # (an ONNX float attribute is a float32)
    ref = alpha * (nrm + t["sh"].view(1, 2, 1, 1)).flatten(1) @ t["Wg"].T + t["bg"]
    with torch.no_grad():
        y = om.module(x.reshape(2, *om.input_shape)).reshape(2, 3)
    assert float((y - ref).abs().max()) < 1e-12
