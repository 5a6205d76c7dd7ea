"""α-CROWN's intermediate α sets stored only for the neurons unstable at the start
(certkit.core.bounds.alpha_sets.SparseAlpha; Xu et al. 2021, arXiv:2011.13824, as
auto_LiRPA's ``sparse_features_alpha``): at equal α the bounds and α-gradients equal the
dense α maps' within 1e-9 (float64, dense and patches passes), the dense maps' gradient is
zero off the stored neurons (they are never read), the optimisation follows the same path,
a planted dropped or misplaced neuron fails, and a changed model or batch is never served
stale state."""

from __future__ import annotations

import math

import pytest
import torch

from certkit.core.bounds import BoundedModel, alpha_sets, margin_spec, ops

from test_bounds_patches import NETS, _net  # isort: skip
from test_bounds_patches_alpha import _ctx  # isort: skip

Tensor = torch.Tensor


def _run(arch: str, x: Tensor, mode: str, sparse: bool, seed: int = 5) -> tuple[dict, dict]:
    """``_alpha_intermediate`` once with random α (the same values whether stored dense or
    sparse): (bounds of every start node, gradient of a random weighting of all of them
    w.r.t. each (start, ReLU) α set, as dense maps)."""
    ctx = _ctx(arch, x, 0.03, mode)
    g = ctx.g
    relus = [i for i, op in enumerate(g.nodes) if isinstance(op, ops.ReLU)]
    ref = dict(ctx.bounds)
    starts = ctx._alpha_starts(ref, relus)
    assert starts, "no intermediate start node"
    anc = ctx._ancestors()
    gen = torch.Generator().manual_seed(seed)
    B = x.shape[0]
    alphas: dict[int, dict] = {s: {} for s in starts}
    leaves: dict = {}
    for s, (rows, _, _) in starts.items():
        for r in relus:
            if r not in anc[s]:
                continue
            dense = torch.rand((B, 2 * rows.numel(), *g.shapes[r]), generator=gen, dtype=x.dtype)
            if sparse:
                sp = ctx._sparse_init(ref[g.inputs[r][0]])
                if sp.index.numel() == 0:
                    continue
                v = dense.reshape(*dense.shape[:2], -1).index_select(2, sp.index).requires_grad_(True)
                alphas[s][r] = sp.with_values(v)
                leaves[(s, r)] = (v, sp)
            else:
                alphas[s][r] = leaves[(s, r)] = dense.requires_grad_(True)
    with torch.enable_grad():
        assert ctx._alpha_intermediate(ref, starts, alphas)
        w = torch.Generator().manual_seed(99)
        loss = sum((torch.rand(ctx.bounds[s][0].shape, generator=w, dtype=x.dtype) * ctx.bounds[s][0]).sum()
                   - (torch.rand(ctx.bounds[s][1].shape, generator=w, dtype=x.dtype) * ctx.bounds[s][1]).sum()
                   for s in starts)
        ks = list(leaves)
        ts = [leaves[k][0] if sparse else leaves[k] for k in ks]
        gs = torch.autograd.grad(loss, ts, allow_unused=True)
    grads = {}
    for k, gr in zip(ks, gs):
        if sparse:
            v, sp = leaves[k]
            grads[k] = alpha_sets.dense_alpha(sp.with_values(torch.zeros_like(v) if gr is None else gr))
        else:
            grads[k] = torch.zeros_like(leaves[k]) if gr is None else gr
    return {s: (ctx.bounds[s][0].detach(), ctx.bounds[s][1].detach()) for s in starts}, grads


def _diff(arch: str, B: int, mode: str) -> float:
    x = torch.rand(B, *NETS[arch][1], generator=torch.Generator().manual_seed(B + 7), dtype=torch.float64)
    bd, gd = _run(arch, x, mode, sparse=False)
    bs, gs = _run(arch, x, mode, sparse=True)
    assert bd.keys() == bs.keys()
    diff = max(float((a - b).abs().max()) for s in bd for a, b in zip(bd[s], bs[s]))
    assert sum(int(gr.ne(0).sum()) for gr in gs.values()) > 0, "zero α gradient: the test would be vacuous"
    for k, gr in gd.items():
        # the dense maps' gradient is zero off the stored neurons; on them it equals the sparse one
        diff = max(diff, float((gr - gs[k]).abs().max()) if k in gs else float(gr.abs().max()))
    return diff


@pytest.mark.parametrize("arch", list(NETS))
@pytest.mark.parametrize("mode", ["matrix", "patches"])
@pytest.mark.parametrize("B", [1, 3])
def test_sparse_alpha_equals_dense(arch: str, mode: str, B: int) -> None:
    assert _diff(arch, B, mode) < 1e-9


def _drop_first(l: Tensor, u: Tensor) -> Tensor:  # noqa: E741
    """A planted bug: the first unstable neuron of every ReLU gets no α."""
    return torch.nonzero(((l < 0) & (u > 0)).reshape(l.shape[0], -1).any(0)).flatten()[1:]


def _rolled_lookup(self: alpha_sets.SparseAlpha) -> Tensor:
    """A planted bug: each stored neuron reads its neighbour's column (patches pass)."""
    n = math.prod(self.shape)
    lut = torch.full((n,), self.index.numel(), dtype=torch.long)
    lut[self.index] = torch.arange(self.index.numel()).roll(1)
    return lut


def _rolled_dense(a):
    """A planted bug: the dense scatter puts each slope at its neighbour's neuron."""
    if isinstance(a, Tensor):
        return a
    v = a.values
    d = torch.zeros(*v.shape[:-1], math.prod(a.shape), dtype=v.dtype).index_copy(2, a.index.roll(1), v)
    return d.reshape(*v.shape[:-1], *a.shape)


@pytest.mark.parametrize("target,plant,mode", [
    (alpha_sets, ("unstable_index", _drop_first), "patches"),
    (alpha_sets, ("unstable_index", _drop_first), "matrix"),
    (alpha_sets.SparseAlpha, ("lookup", _rolled_lookup), "patches"),
    (alpha_sets, ("dense_alpha", _rolled_dense), "matrix"),
])
def test_planted_dropped_or_misplaced_alpha_fails(monkeypatch: pytest.MonkeyPatch, target, plant, mode: str) -> None:
    assert _diff("cnn_bn", 2, mode) < 1e-9
    monkeypatch.setattr(target, *plant)
    assert _diff("cnn_bn", 2, mode) > 1e-6


@pytest.mark.parametrize("arch", ["cnn_bn", "resnet"])
def test_full_alpha_crown_same_path_as_dense(arch: str) -> None:
    """Full α-CROWN (4 Adam steps) with sparse and dense α sets: the same output bounds and
    the same tightest intermediate bounds over the iterates (≤ 1e-9, float64)."""
    _, shape = NETS[arch]
    B = 2
    x = torch.rand(B, *shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    C = margin_spec(torch.arange(B) % 5, 5, torch.float64)
    res = []
    for sparse in (False, True):
        ctx = _ctx(arch, x, 0.03, "patches")
        ctx.sparse_alpha = sparse
        ctx.best_interm = {}
        with torch.enable_grad():
            lo, _ = ctx.alpha_crown(C, True, False, 4, 0.5, intermediate=True)
        res.append((lo, ctx.best_interm))
    (l0, i0), (l1, i1) = res
    assert float((l0 - l1).abs().max()) < 1e-9
    assert i0.keys() == i1.keys()
    assert max(float((a - b).abs().max()) for k in i0 for a, b in zip(i0[k], i1[k])) < 1e-9
    with torch.no_grad():
        cl, _ = BoundedModel(_net(arch)[0], shape, use_compiled=False).compute_bounds(x, 0.03, method="CROWN", C=C)
    assert float((l1 - cl).min()) > -1e-9 and float((l1 - cl).max()) > 1e-6  # (not vacuous: α moved)


def test_changed_model_and_batch_not_served_stale_state() -> None:
    """One BoundedModel bounds a batch, a batch of another size and other unstable neurons,
    then the same after a weight changed in place: each α-CROWN result equals a fresh
    model's (no α, index or window state survives a call)."""
    net, shape = _net("cnn_bn")
    bm = BoundedModel(net, shape, use_compiled=False)
    gen = torch.Generator().manual_seed(2)
    kw = dict(method="alpha-CROWN", alpha_iterations=1, bound_upper=False)

    def both(x: Tensor, eps: float) -> None:
        C = margin_spec(torch.arange(x.shape[0]) % 5, 5, torch.float64)
        lo, _ = bm.compute_bounds(x, eps, C=C, **kw)
        ref, _ = BoundedModel(net, shape, use_compiled=False).compute_bounds(x, eps, C=C, **kw)
        assert float((lo - ref).abs().max()) < 1e-12

    both(torch.rand(2, *shape, generator=gen, dtype=torch.float64), 0.03)
    both(torch.rand(3, *shape, generator=gen, dtype=torch.float64), 0.05)
    conv = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    with torch.no_grad():
        conv.weight.mul_(1.5)
    both(torch.rand(3, *shape, generator=gen, dtype=torch.float64), 0.05)
