"""Full α-CROWN (optimised intermediate-layer slopes; Xu et al. 2021, arXiv:2011.13824)
through the patches pass (certkit.core.bounds.patches.crown_rows with per-row α): equal to
the dense α path in value and gradient, sound on sampled and PGD points after optimisation,
never looser than CROWN, and a planted wrong α gather or a missing mask fails."""

from __future__ import annotations

import math

import pytest
import torch

from certkit.core.bounds import BoundedModel, margin_spec, ops, patches
from certkit.core.bounds.model import _Ctx

from test_bounds_patches import NETS, _net  # isort: skip

Tensor = torch.Tensor


def _ctx(arch: str, x: Tensor, eps: float, mode: str) -> _Ctx:
    net, shape = _net(arch)
    bm = BoundedModel(net, shape, use_compiled=False, conv_mode=mode)
    e = torch.full((x.shape[0], 1, 1, 1), eps, dtype=x.dtype)
    ctx = _Ctx(bm.graph, x, x - e, x + e, e, math.inf)
    ctx.conv_mode = mode
    with torch.no_grad():
        ctx.fill_ibp()
        ctx.fill_crown_intermediate()
    return ctx


def _interm(arch: str, x: Tensor, eps: float, mode: str, init: dict | None, gen: torch.Generator
            ) -> tuple[dict, dict, dict]:
    """Run ``_alpha_intermediate`` once with α sets (random from ``gen`` when ``init`` is
    None, else the CROWN initialisation; a non-empty ``init`` gives the values): (bounds of
    every start node, gradient of a random weighting of each start's bounds w.r.t. its α
    sets, the α values used)."""
    ctx = _ctx(arch, x, eps, mode)
    g = ctx.g
    relus = [i for i, op in enumerate(g.nodes) if isinstance(op, ops.ReLU)]
    ref = dict(ctx.bounds)
    starts = ctx._alpha_starts(ref, relus)
    anc = ctx._ancestors()
    B = x.shape[0]
    vals = {}
    for s, (rows, _, _) in starts.items():
        for r in relus:
            if r in anc[s]:
                shp = (B, 2 * rows.numel(), *g.shapes[r])
                if init is not None:
                    l, u = ref[g.inputs[r][0]]  # noqa: E741
                    v = ops.relu_relaxation(l, u)[2].unsqueeze(1).expand(shp).clone()
                else:
                    v = torch.rand(shp, generator=gen, dtype=x.dtype)
                vals[(s, r)] = v
    if init is not None and init:  # reuse the other mode's values (same rows)
        vals = init
    alphas: dict[int, dict[int, Tensor]] = {s: {} for s in starts}
    leaves = {}
    for (s, r), v in vals.items():
        leaves[(s, r)] = alphas[s][r] = v.clone().requires_grad_(True)
    grads: dict = {}
    with torch.enable_grad():
        assert ctx._alpha_intermediate(ref, starts, alphas)
        w = torch.Generator().manual_seed(99)
        # each start's own bounds against its own α set (through earlier starts' bounds the
        # gradient also crosses the max / min of ties between IBP and the reference bounds,
        # whose split is decided by the last ulp)
        for s in starts:
            lb, ub = ctx.bounds[s]
            loss = ((torch.rand(lb.shape, generator=w, dtype=x.dtype) * lb).sum()
                    - (torch.rand(ub.shape, generator=w, dtype=x.dtype) * ub).sum())
            ks = [k for k in leaves if k[0] == s]
            gs = torch.autograd.grad(loss, [leaves[k] for k in ks], allow_unused=True, retain_graph=True)
            grads.update(zip(ks, gs))
    bounds = {s: (ctx.bounds[s][0].detach(), ctx.bounds[s][1].detach()) for s in starts}
    return bounds, grads, vals


def _compare(arch: str, B: int, random_alpha: bool) -> float:
    gen = torch.Generator().manual_seed(B + 7)
    _, shape = NETS[arch]
    x = torch.rand(B, *shape, generator=gen, dtype=torch.float64)
    bd, gd, vals = _interm(arch, x, 0.03, "matrix", None if random_alpha else {}, gen)
    assert bd, "no intermediate start node"
    bp, gp, _ = _interm(arch, x, 0.03, "patches", vals, gen)
    assert bd.keys() == bp.keys() and gd.keys() == gp.keys()
    diff = max(float((a - b).abs().max()) for s in bd for a, b in zip(bd[s], bp[s]))
    for k in gd:
        if gd[k] is None or gp[k] is None:
            assert gd[k] is None or not bool(gd[k].any())
            assert gp[k] is None or not bool(gp[k].any())
            continue
        diff = max(diff, float((gd[k] - gp[k]).abs().max()))
    nz = sum(int(gr.ne(0).sum()) for gr in gp.values() if gr is not None)
    assert nz > 0, "the α gradient is zero everywhere: the test would be vacuous"
    return diff


@pytest.mark.parametrize("arch", list(NETS))
@pytest.mark.parametrize("B", [1, 3])
def test_alpha_patches_equal_dense_random_alpha(arch: str, B: int) -> None:
    """Per-row random α (so each row's window reads different slopes): bounds and their
    gradients equal the dense α path within 1e-9 (float64)."""
    assert _compare(arch, B, True) < 1e-9


@pytest.mark.parametrize("arch", ["cnn_bn", "resnet_block"])
def test_alpha_patches_equal_dense_at_crown_init(arch: str) -> None:
    assert _compare(arch, 2, False) < 1e-9


def _wrong_window(p, kernel, a, unst, wl):
    """α gathered one row off (each row reads its neighbour's slope map)."""
    return torch.where(unst > 0, patches.windows(a.alpha, p, kernel, rows=a.rows.roll(1), tag="wrong"), wl)


def _unmasked(p, kernel, a, unst, wl):
    """α read everywhere in the window: at stable neurons too, and as 1 over the node's padding."""
    return patches.windows(a.alpha - 1, p, kernel, rows=a.rows, tag="unmasked") + 1


@pytest.mark.parametrize("plant", [_wrong_window, _unmasked])
def test_planted_alpha_gather_fails(monkeypatch: pytest.MonkeyPatch, plant) -> None:
    assert _compare("cnn_bn", 2, True) < 1e-9
    monkeypatch.setattr(patches, "alpha_slopes", plant)
    assert _compare("cnn_bn", 2, True) > 1e-6


@pytest.mark.parametrize("arch", list(NETS))
def test_alpha_patches_sound_and_tighter(arch: str) -> None:
    """After optimisation (full α-CROWN, patches): sampled points (vertices included) and PGD
    points lie inside every intermediate bound of the iterates and the output bounds; the
    output bounds are no looser than CROWN's and strictly tighter somewhere."""
    net, shape = _net(arch)
    gen = torch.Generator().manual_seed(3)
    B, eps = 2, 0.05
    x = torch.rand(B, *shape, generator=gen, dtype=torch.float64)
    C = margin_spec(torch.arange(B) % 5, 5, torch.float64)
    bm = BoundedModel(net, shape, use_compiled=False)
    with torch.no_grad():
        cl, cu = bm.compute_bounds(x, eps, method="CROWN", C=C)
    lo, up = bm.compute_bounds(x, eps, method="alpha-CROWN", C=C, alpha_iterations=6)
    assert bool((lo >= cl - 1e-9).all()) and bool((up <= cu + 1e-9).all())
    assert float((lo - cl).sum() + (cu - up).sum()) > 1e-6
    ctx = _ctx(arch, x, eps, "patches")
    ctx.best_interm = {}
    with torch.enable_grad():
        ctx.alpha_crown(C, True, False, 6, 0.5, intermediate=True)
    inter = ctx.best_interm
    g = bm.graph

    def check(xs: Tensor) -> None:
        vals = g.forward(xs)
        for j, (lj, uj) in inter.items():
            if 0 < j < g.output:
                assert bool((vals[j] >= lj - 1e-9).all()) and bool((vals[j] <= uj + 1e-9).all()), j
        out = torch.einsum("bsk,bk->bs", C, vals[g.output])
        assert bool((out >= lo - 1e-9).all()) and bool((out <= up + 1e-9).all())

    for _ in range(10):
        d = (torch.rand(x.shape, generator=gen, dtype=x.dtype) * 2 - 1).sign() * eps
        d[0] = (torch.rand(x[0].shape, generator=gen, dtype=x.dtype) * 2 - 1) * eps
        check(x + d)
    # PGD on the lower margin bounds
    d = torch.zeros_like(x, requires_grad=True)
    for _ in range(15):
        with torch.enable_grad():
            m = torch.einsum("bsk,bk->bs", C, net(x + d)).sum()
            (gr,) = torch.autograd.grad(m, d)
        d = (d.detach() - eps / 4 * gr.sign()).clamp(-eps, eps).requires_grad_(True)
        check((x + d).detach())


def test_windows_per_row_index_is_cached_apart() -> None:
    """``windows(..., rows=)`` (each row's own slope map) after a per-example gather of the
    same geometry: the cached index of one must not serve the other (mutation test of the
    cache key), and both equal an explicit crop of the zero-padded maps."""
    from dataclasses import replace

    gen = torch.Generator().manual_seed(0)
    B, C, H, W, K = 2, 3, 9, 9, (3, 3)
    hr, wr = torch.tensor([0, 1, 2, 8]), torch.tensor([3, 2, 8, 0])
    br, rows = torch.tensor([0, 1, 1, 0]), torch.tensor([5, 2, 7, 0])
    p = patches.Patches(torch.zeros(1, 4, *K, C), (1, 1), (1, 1), hr, wr, br=br)
    t = torch.randn(B, C, H, W, generator=gen)
    a = torch.randn(8, C, H, W, generator=gen)

    def crop(m: Tensor, i: int, r: int) -> Tensor:  # the window of row r read from map m[i]
        mp = torch.nn.functional.pad(m[i], (1, 3, 1, 3))
        return mp[:, hr[r]:hr[r] + K[0], wr[r]:wr[r] + K[1]].permute(1, 2, 0)

    w_t = patches.windows(t, p, K)  # (the index branch: more positions than rows; cached)
    w_a = patches.windows(a, p, K, rows=rows, tag="alpha")
    for r in range(4):
        assert torch.equal(w_t[0, r], crop(t, int(br[r]), r))
        assert torch.equal(w_a[0, r], crop(a, int(rows[r]), r))
    assert len(p.cache) == 2
    assert torch.equal(w_a, patches.windows(a, replace(p, cache={}), K, rows=rows, tag="alpha"))
