"""Complete verification by splitting general activations: branch and bound on Sigmoid / Tanh
(and ReLU) pre-activations with split constraints in the bound (GenBaB).

The ReLU branch and bound of :mod:`certkit.core.bounds.relu_bab` splits a neuron's
pre-activation ``z`` at 0, which makes its relaxation exact. A Sigmoid or Tanh net has no
such point, so a sub-domain here is a *box* on the split pre-activations: a neuron split
at a point ``s`` gives the children ``z ∈ [l, s]`` and ``z ∈ [s, u]``, on which the
activation's linear relaxation (:mod:`certkit.core.bounds.activations`, CROWN's tangent /
secant rules) is rebuilt from the child interval and is tighter. This is the branch and
bound for general nonlinearities of Shi et al., "Neural network verification with
branch-and-bound for general nonlinearities" (GenBaB, arXiv:2405.21063), with the split
constraints of β-CROWN (Wang et al., arXiv:2103.06624):

1. **Bound of a sub-domain.** The split neurons' bounds are intersected with the domain's
   box; the later layers' bounds are recomputed from them (IBP ∩ the root's, or CROWN on
   every neuron of those layers, ``interm="crown"``), by relu_bab's ``_bounds_with_splits``
   through its ``clamp`` hook; a domain whose bounds cross is empty and closed. The output
   bound is CROWN's with β ≥ 0 split terms: for a constraint ``z - s >= 0`` the backward
   pass bounds ``c·f - β·(z - s)`` instead of ``c·f`` (and ``c·f - β·(s - z)`` for
   ``s - z >= 0``), a valid lower bound on the sub-domain for every β ≥ 0 (β-CROWN's
   Theorem 3.1 with a constant term); β = 0 is CROWN on the child intervals. β (one per row,
   split neuron and side) is optimised by projected Adam, started from the parent's β.
   ReLUs of a mixed net keep CROWN's relaxation (α-CROWN only at the root).
2. **Pruning, order, search.** As relu_bab: a domain is closed when every disjunct has a
   row whose certified lower bound exceeds its threshold; the domains with the lowest
   bound are split first; PGD runs from the open children's most promising inputs and a
   counterexample is returned only after a forward re-check (``sat``).
3. **Branching.** A BaBSR-like score adapted to the relaxation gap (GenBaB's): for each
   splittable neuron, ``|λ| · (upper(m) - lower(m))`` with λ the coefficient the worst row's
   backward pass puts on the activation's output and ``upper - lower`` the relaxation's
   mean gap over [l, u] (its value at the midpoint m: both lines are affine), or FSB over
   the ``fsb_candidates`` best by that score (each candidate's two children bounded by
   CROWN with the domain's other bounds and β kept; the one whose worse child is best wins).
   The split point is 0 where ``l < 0 < u`` (a ReLU's kink, the Sigmoid's inflection: the
   children are then convex / concave and get tangent lines), unless 0 is within 10 % of an
   end for a smooth activation; otherwise the midpoint. Neurons narrower than ``min_width``
   are not split.

Guarantee: ``unsat`` means every leaf of a partition of the input box (by the split
pre-activation intervals) was closed by a sound bound, in the model's own float arithmetic
without directed rounding (run in float64 for VNN-COMP). ``sat`` carries a witness inside
the box that satisfies every row of some disjunct. Otherwise ``timeout`` (the deadline,
checked in every loop) or ``unknown`` (``max_domains`` reached, or an open domain with
nothing left to split).

Shapes: ``lo``, ``hi`` (n,); ``C`` (N, S, K) or (S, K); ``d`` (N, S); ``valid`` (N, S). A
domain is a (2, total) box: row 0 the lower, row 1 the upper split bounds of every
splittable neuron (±inf where not split), ``total`` the number of such neurons.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from torch import Tensor, nn

from certkit.core.bounds import ops
from certkit.core.bounds.activations import Sigmoid
from certkit.core.bounds.bab import SplitResult
from certkit.core.bounds.deadline import fits
from certkit.core.bounds.half import half_dtype, split_in_float64
from certkit.core.bounds.model import BoundedModel, _Ctx, projected_adam_step
from certkit.core.bounds.relu_bab import (
    _attack,
    _check_args,
    _domain_ctx,
    _Pool,
    _Problem,
    _spec_args,
)

_SPLITTABLE = (ops.ReLU, Sigmoid)  # Tanh is a Sigmoid subclass


def has_smooth_activation(model: nn.Module, input_shape: tuple[int, ...]) -> bool:
    """Whether the traced model has a Sigmoid or Tanh (then :func:`act_split` applies)."""
    return any(isinstance(op, Sigmoid) for op in BoundedModel(model, input_shape).graph.nodes)


def _split_sign() -> float:
    """The sign of the β terms (+1; a test plants -1 here)."""
    return 1.0


def _children(box: Tensor, dec: Tensor, point: Tensor) -> Tensor:
    """Children of k domains (box (k, 2, total)) split at neuron ``dec`` (k,) at ``point`` (k,):
    the first k get ``z <= point``, the last k ``z >= point`` (a test plants a wrong half)."""
    k = box.shape[0]
    ar = torch.arange(k)
    left, right = box.clone(), box.clone()
    left[ar, 1, dec] = torch.min(left[ar, 1, dec], point)
    right[ar, 0, dec] = torch.max(right[ar, 0, dec], point)
    return torch.cat([left, right])


class _ActProblem(_Problem):
    """relu_bab's problem with every ReLU / Sigmoid / Tanh pre-activation splittable and
    domains as boxes (D, 2, total) on them."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        g = self.g
        pre: list[int] = []
        self.act_of: dict[int, int] = {}
        for r, op in enumerate(g.nodes):
            p = g.inputs[r][0] if g.inputs[r] else 0
            if isinstance(op, _SPLITTABLE) and p != 0 and p not in self.act_of:
                pre.append(p)
                self.act_of[p] = r
        self.pre = sorted(pre)  # topological (node) order: _bounds_with_splits starts at the first split one
        self.sizes = [math.prod(g.shapes[p]) for p in self.pre]  # (sizes / offsets in self.pre's order)
        self.offsets = [sum(self.sizes[:k]) for k in range(len(pre))]
        self.total = sum(self.sizes)

    def split_view(self, splits: Tensor, k: int) -> Tensor:
        sl = splits[:, :, self.offsets[k]:self.offsets[k] + self.sizes[k]]
        return sl.reshape(splits.shape[0], 2, *self.g.shapes[self.pre[k]])

    def split_used(self, splits: Tensor, k: int) -> bool:
        v = splits[:, :, self.offsets[k]:self.offsets[k] + self.sizes[k]]
        return bool(torch.isfinite(v).any())

    def clamp(self, l: Tensor, u: Tensor, splits: Tensor, k: int) -> tuple[Tensor, Tensor]:  # noqa: E741
        v = self.split_view(splits, k).to(l.dtype)
        return torch.max(l, v[:, 0]), torch.min(u, v[:, 1])

    def lines(self, p: int, l: Tensor, u: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # noqa: E741
        """(lower slope, lower intercept, upper slope, upper intercept) of the activation on
        pre-activation node p's bounds [l, u]."""
        op = self.g.nodes[self.act_of[p]]
        if isinstance(op, ops.ReLU):
            ud, ub, ld = ops.relu_relaxation(l, u)
            return ld, torch.zeros_like(ld), ud, ub
        return op.relax(l, u)  # type: ignore[attr-defined, no-any-return]

    def smooth(self, k: int) -> bool:
        return not isinstance(self.g.nodes[self.act_of[self.pre[k]]], ops.ReLU)


def _beta_terms(P: _ActProblem, box: Tensor, cols: Tensor, b_lo: Tensor, b_up: Tensor
                ) -> tuple[dict[int, Tensor], Tensor]:
    """The split terms at every pre-activation node ({node: (D, R, *shape)}) and the constant
    (D, R): ``-β_lo·(z - s_lo) - β_up·(s_up - z)`` summed over the split neurons ``cols``
    (β (D, R, len(cols)), zero where that side is not split)."""
    D, R = b_lo.shape[:2]
    sl, su = box[:, 0, cols].to(b_lo.dtype), box[:, 1, cols].to(b_lo.dtype)
    m_lo, m_up = torch.isfinite(sl).unsqueeze(1), torch.isfinite(su).unsqueeze(1)
    bl = torch.where(m_lo, b_lo, torch.zeros_like(b_lo))
    bu = torch.where(m_up, b_up, torch.zeros_like(b_up))
    sg = _split_sign()
    coef = torch.zeros(D, R, P.total, dtype=b_lo.dtype)
    coef = coef.index_add(2, cols, sg * (bu - bl))
    const = sg * ((bl * torch.nan_to_num(sl, posinf=0.0, neginf=0.0).unsqueeze(1)).sum(2)
                  - (bu * torch.nan_to_num(su, posinf=0.0, neginf=0.0).unsqueeze(1)).sum(2))
    terms = {p: coef[:, :, P.offsets[k]:P.offsets[k] + P.sizes[k]].reshape(D, R, *P.g.shapes[p])
             for k, p in enumerate(P.pre) if P.split_used(box, k)}
    return terms, const


def _bound_domains(P: _ActProblem, box: Tensor, *, iters: int, lr: float, beta_lr: float, interm: str,
                   deadline: float | None, warm: Tensor | None = None) -> dict[str, Any]:
    """Bound D domains (box (D, 2, total)). Returns ``lb`` (D, R) certified lower bounds,
    ``empty`` (D,), ``ctx`` (its bounds: the domains' intermediate bounds), ``lam``
    {pre node: (D, *shape)} the worst row's coefficients on each activation's output,
    ``xstar`` (D, n) the input minimising the worst row's linear bound, ``terms`` / ``const``
    (the β split terms used) and ``warm`` (D, 2, R, total) float32: β (lower, upper side)
    to start children from (``warm`` in: the same). β (≥ 0, at ``beta_lr``) and, when
    ``lr > 0``, the smooth activations' slopes θ (lower, upper line, as a fraction of f'(0),
    in [0, 1], from CROWN's slopes on the domain's own intervals, at ``lr``) are optimised by
    projected Adam for ``iters`` steps; every iterate is a sound bound (any slope is: its
    intercept is the exact extreme on the interval), the best per row is kept."""
    D = box.shape[0]
    ctx, empty = _domain_ctx(P, box, interm, deadline)
    R = P.C.shape[0]
    dt = P.C.dtype
    Cb = P.C.unsqueeze(0).expand(D, R, -1).reshape(D, R, *P.g.shapes[P.g.output])
    cols = torch.nonzero(torch.isfinite(box).any(1).any(0)).flatten()
    if warm is not None:
        b_lo, b_up = warm[:, 0][:, :, cols].to(dt), warm[:, 1][:, :, cols].to(dt)
    else:
        b_lo = torch.zeros(D, R, cols.numel(), dtype=dt)
        b_up = torch.zeros_like(b_lo)
    params = [b_lo.clamp(min=0).requires_grad_(True), b_up.clamp(min=0).requires_grad_(True)]
    theta: dict[int, Tensor] = {}  # activation node → (D, R, 2, *shape) slopes / f'(0)
    smax: dict[int, float] = {}
    for k, p in enumerate(P.pre):
        if not P.smooth(k) or iters <= 0 or lr <= 0:
            continue
        r = P.act_of[p]
        op = P.g.nodes[r]
        smax[r] = float(op.df(torch.zeros(1, dtype=torch.float64)))  # type: ignore[attr-defined]
        shp = P.g.shapes[p]
        k_lo, _, k_up, _ = P.lines(p, *ctx.bounds[p])  # CROWN's slopes on the domain's intervals
        th = (torch.stack([k_lo, k_up], 1).reshape(D, 1, 2, -1) / smax[r]).expand(D, R, 2, P.sizes[k])
        theta[r] = th.reshape(D, R, 2, *shp).clamp(0.0, 1.0).clone().requires_grad_(True)
    n_beta = len(params)
    params += list(theta.values())

    def slopes() -> dict[int, Tensor] | None:
        return {r: t * smax[r] for r, t in theta.items()} or None

    best = None
    if (cols.numel() or theta) and iters > 0:
        m1 = [torch.zeros_like(a) for a in params]
        m2 = [torch.zeros_like(a) for a in params]
        with torch.enable_grad():
            for it in range(iters):
                if deadline is not None and time.perf_counter() > deadline:
                    break
                terms, const = _beta_terms(P, box, cols, params[0], params[1])
                lb = ctx.backward(P.g.output, Cb, slopes(), terms) + const
                best = lb.detach() if best is None else torch.max(best, lb.detach())
                grads = torch.autograd.grad(-lb.sum(), params, allow_unused=True)
                # Adam, projected onto β >= 0 and θ in [0, 1]
                projected_adam_step(params, grads, m1, m2, it,
                                    [(beta_lr if q < n_beta else lr) * 0.98 ** it for q in range(len(params))],
                                    [None if q < n_beta else 1.0 for q in range(len(params))])
    keep: dict[int, Tensor] = {}
    with torch.no_grad():
        terms, const = _beta_terms(P, box, cols, params[0].detach(), params[1].detach())
        lb = ctx.backward(P.g.output, Cb, slopes(), terms, keep) + const
        lb = lb if best is None else torch.max(best, lb)
        m = P.margins(lb)  # (D, N, S)
        best_row = m.argmax(2)
        open_n = m.amax(2) <= 0
        worst_n = torch.where(open_n, m.amax(2), torch.full_like(m[:, :, 0], math.inf)).argmin(1)
        row = worst_n * P.S + best_row.gather(1, worst_n.unsqueeze(1)).squeeze(1)
        ar = torch.arange(D)
        lam = {p: keep[r][ar, row] for p, r in P.act_of.items() if r in keep}
        a_in = keep[0][ar, row].reshape(D, -1) if 0 in keep else torch.zeros(D, P.lo.numel())
        xstar = torch.where(a_in > 0, P.lo, P.hi)
        w = torch.zeros(D, 2, R, P.total, dtype=torch.float32)
        w[:, 0][:, :, cols] = params[0].detach().float()
        w[:, 1][:, :, cols] = params[1].detach().float()
    return {"lb": lb, "empty": empty, "ctx": ctx, "lam": lam, "xstar": xstar, "terms": terms, "const": const,
            "warm": w}


def _scores(P: _ActProblem, ctx: _Ctx, lam: dict[int, Tensor], min_width: float) -> tuple[Tensor, Tensor]:
    """(D, total) branching scores ``|λ|·(upper(m) - lower(m))`` (0 where not splittable) and
    (D, total) split points."""
    sc, pts = [], []
    for k, p in enumerate(P.pre):
        l, u = ctx.bounds[p]  # noqa: E741
        D = l.shape[0]
        lm = lam.get(p)
        mid = (l + u) / 2
        if P.smooth(k):
            off = 0.1 * (u - l)
            pt = torch.where((l + off < 0) & (u - off > 0), torch.zeros_like(mid), mid)
            ok = (u - l) > min_width * (1 + mid.abs())
        else:
            pt = torch.zeros_like(mid)
            ok = (l < 0) & (u > 0)
        if lm is None:
            sc.append(torch.zeros(D, P.sizes[k], dtype=l.dtype))
        else:
            k_lo, b_lo, k_up, b_up = P.lines(p, l, u)
            gap = ((k_up - k_lo) * mid + b_up - b_lo).clamp(min=0)
            s = lm.abs() * gap + 1e-12
            sc.append(torch.where(ok, s, torch.zeros_like(s)).reshape(D, -1))
        pts.append(pt.reshape(D, -1))
    return torch.cat(sc, 1), torch.cat(pts, 1)


def _fsb_choose(P: _ActProblem, res: dict[str, Any], scores: Tensor, points: Tensor, k: int) -> Tensor:
    """FSB: among the k best-scored neurons, the one whose worse child has the best CROWN
    bound (the child's interval on that neuron, the domain's other bounds and β kept).
    Returns (D,) neuron indices (-1: none splittable)."""
    ctx: _Ctx = res["ctx"]
    D = scores.shape[0]
    k = min(k, scores.shape[1])
    top_s, top_i = scores.topk(k, 1)
    best = torch.where(top_s[:, 0] > 0, top_i[:, 0], torch.full_like(top_i[:, 0], -1))
    if k <= 1:
        return best
    R = P.C.shape[0]
    Cb = P.C.unsqueeze(0).expand(D, R, -1).reshape(D, R, *P.g.shapes[P.g.output])
    base = dict(ctx.bounds)
    worst = torch.full((D, k), -math.inf, dtype=P.C.dtype)
    ar = torch.arange(D)
    with torch.no_grad():
        for j in range(k):
            idx = top_i[:, j]
            pt = points[ar, idx]
            child = []
            for side in (1, 0):  # z <= pt, then z >= pt
                ctx.bounds = dict(base)
                for q, p in enumerate(P.pre):
                    sel = (idx >= P.offsets[q]) & (idx < P.offsets[q] + P.sizes[q])
                    if not bool(sel.any()):
                        continue
                    l, u = base[p]  # noqa: E741
                    lf, uf = l.reshape(D, -1).clone(), u.reshape(D, -1).clone()
                    i_q = (idx - P.offsets[q]).clamp(0, P.sizes[q] - 1)
                    t = (uf if side else lf)
                    cur = t[ar, i_q]
                    new = torch.min(cur, pt) if side else torch.max(cur, pt)
                    t[ar, i_q] = torch.where(sel, new, cur)
                    ctx.bounds[p] = (torch.min(lf, uf).reshape(l.shape), uf.reshape(u.shape))
                r = ctx.backward(P.g.output, Cb, None, res["terms"]) + res["const"]
                child.append(P.key(r))
            worst[:, j] = torch.min(child[0], child[1])
    ctx.bounds = base
    worst = torch.where(top_s > 0, worst, torch.full_like(worst, -math.inf))
    chosen = top_i.gather(1, worst.argmax(1).unsqueeze(1)).squeeze(1)
    return torch.where(best >= 0, chosen, best)


def act_split(model: nn.Module, input_shape: tuple[int, ...], lo: Tensor, hi: Tensor, C: Tensor, d: Tensor,
              valid: Tensor | None = None, *, deadline: float | None = None, batch: int = 64,
              max_domains: int = 1_000_000, alpha_iterations: int = 20, bab_iterations: int = 5,
              lr: float = 0.5, bab_lr: float = 0.0, beta_lr: float = 0.05, branching: str = "babsr",
              fsb_candidates: int = 4,
              interm: str = "ibp", pgd_steps: int = 5, attack_domains: int = 8, min_width: float = 1e-4,
              warm_bytes: int = 256 << 20, **_relu_only: Any) -> SplitResult:
    """Decide ``∃ x ∈ [lo, hi], ∃ k: C_k @ model(x) <= d_k`` by splitting Sigmoid / Tanh / ReLU
    pre-activations (GenBaB, arXiv:2405.21063, with β-CROWN split terms).

    Args as :func:`~certkit.core.bounds.relu_bab.relu_split` (its other keyword arguments,
    e.g. ``bound_dtype``, are accepted and ignored): ``alpha_iterations`` Adam steps on the
    root (α-CROWN on its ReLUs, if any, then the smooth activations' slopes at ``lr``);
    ``bab_iterations`` steps per batch of children (β at ``beta_lr``, started from the
    parent's; slopes at ``bab_lr``, from CROWN's on the child's intervals; 0 by default: on
    eran's Sigmoid 6x200 the children's own CROWN slopes with β alone closed mnist_spec_4857's
    hardest disjuncts in 25 and 325 domains, optimising slopes in the children (from the
    parent's or from CROWN's) took 119-653 domains or did not finish in 15 s);
    ``min_width``: smooth neurons narrower than this (relative) are not split;
    ``warm_bytes``: memory for the open domains' β (float32), past it β starts afresh.
    ``batch`` is capped so that the children's slopes and β (2·batch × rows × 2 × neurons,
    float64, twice for Adam) stay near 1 GiB on nets with many smooth neurons (conv).
    ``branching`` defaults to ``"babsr"``: FSB's trial children each rebuild a smooth
    relaxation (bisection for the exact intercepts), and on small random Tanh nets BaBSR
    closed more properties in the same time (3-15 s budgets).

    Returns a :class:`~certkit.core.bounds.bab.SplitResult` (``boxes``: domains bounded).
    """
    if half_dtype(model) is not None:  # searched on a float64 copy, a witness re-checked in half (bounds/half.py)
        return split_in_float64(act_split, dict(locals()))
    _check_args(batch, max_domains, alpha_iterations, bab_iterations, pgd_steps, fsb_candidates, branching, interm,
                attack_domains)
    if not (isinstance(min_width, (int, float)) and min_width > 0):
        raise ValueError(f"min_width: expected a number > 0, got {min_width!r}")
    t0 = time.perf_counter()
    lo, hi, C, d, valid = _spec_args(model, input_shape, lo, hi, C, d, valid)
    model = model.eval()
    P = _ActProblem(model, tuple(input_shape), lo, hi, C, d, valid)
    stats: dict[str, Any] = {"bound_s": 0.0}
    domains, max_depth = 1, 0

    def result(status: str, x: Tensor | None = None, y: Tensor | None = None) -> SplitResult:
        return SplitResult(status, domains, max_depth, time.perf_counter() - t0, x, y, stats=stats)

    def late() -> bool:
        return deadline is not None and time.perf_counter() > deadline

    if not bool(valid.any(1).all()):  # a disjunct without rows: any point (the centre) is a counterexample
        hit = _attack(P, ((lo + hi) / 2).unsqueeze(0), 0)
        assert hit is not None
        return result("sat", *hit)
    ctx = P.ctx(1)
    ctx.deadline = deadline
    with torch.no_grad():
        ctx.fill_ibp()
        ctx.fill_crown_intermediate()
    if alpha_iterations > 0 and any(isinstance(op, ops.ReLU) for op in P.g.nodes):
        ctx.best_interm = {}
        with torch.enable_grad():
            ctx.alpha_crown(P.C.unsqueeze(0), True, False, alpha_iterations, lr, intermediate=True)
        ctx.bounds = {**ctx.bounds, **ctx.best_interm}
    P.root = {i: b for i, b in ctx.bounds.items() if 0 < i < P.g.output}
    if late():
        return result("timeout")
    if not P.pre:
        return result("unknown")  # nothing to split

    def bound(box: Tensor, parent_lb: Tensor | None, warm: Tensor | None
              ) -> tuple[dict[str, Any], Tensor, Tensor, Tensor]:
        t1 = time.perf_counter()
        root = parent_lb is None
        res = _bound_domains(P, box, iters=alpha_iterations if root else bab_iterations, lr=lr if root else bab_lr,
                             beta_lr=beta_lr, interm=interm, deadline=deadline, warm=warm)
        if parent_lb is not None:  # a child lies inside its parent: the parent's bounds hold on it too
            res["lb"] = torch.max(res["lb"], parent_lb)
        scores, points = _scores(P, res["ctx"], res["lam"], min_width)
        if branching == "fsb":
            dec = _fsb_choose(P, res, scores, points, fsb_candidates)
        else:
            top, dec = scores.max(1)
            dec = torch.where(top > 0, dec, torch.full_like(dec, -1))
        pt = points[torch.arange(box.shape[0]), dec.clamp(min=0)]
        stats["bound_s"] += time.perf_counter() - t1
        return res, dec, pt, res["lb"]

    new_box = torch.stack([torch.full((P.total,), -math.inf), torch.full((P.total,), math.inf)]).to(P.C.dtype)[None]
    res, new_dec, new_pt, new_lb = bound(new_box, None, None)
    new_depth = torch.zeros(1, dtype=torch.long)
    pool = _Pool()
    keep_w = True  # β of the open domains (float32) while it fits in warm_bytes
    undecided = 0
    t_batch, last_k = time.perf_counter(), 0  # when the last batch of last_k parents started
    while True:
        if late():
            return result("timeout")
        new_key = P.key(new_lb)
        open_ = ~res["empty"] & (new_key <= 0)
        if bool(open_.any()):
            cand = torch.nonzero(open_).flatten()
            cand = cand[torch.argsort(new_key[cand])[:attack_domains]]
            hit = _attack(P, res["xstar"][cand], pgd_steps)
            if late():
                return result("timeout")
            if hit is not None:
                return result("sat", *hit)
        stuck = open_ & (new_dec < 0)  # nothing left to split, yet not closed by the bound
        undecided += int(stuck.sum())
        open_ &= ~stuck
        w_col = {"w": res["warm"][open_]} if keep_w else {}
        pool.add(box=new_box[open_], dec=new_dec[open_], pt=new_pt[open_], lb=new_lb[open_],
                 depth=new_depth[open_], **w_col)
        if keep_w and 4 * pool.n * math.prod(pool.view("w").shape[1:]) > warm_bytes:
            keep_w = False  # too large to keep: the rest of the search starts β afresh
            pool.drop("w")
        if pool.n == 0:
            return result("unknown" if undecided else "unsat")
        pool_key = P.key(pool.view("lb"))
        stats["global_lb"] = float(pool_key.min())
        stats["open"] = pool.n
        if domains >= max_domains:
            return result("unknown")
        k = min(batch, pool.n, max(1, (1 << 30) // (32 * P.C.shape[0] * P.total)))  # slopes + β: ≤ ~1 GiB
        got = pool.take(torch.topk(-pool_key, k).indices)
        warm = torch.cat([got["w"]] * 2) if "w" in got else None
        new_box = _children(got["box"], got["dec"], got["pt"])
        new_depth = torch.cat([got["depth"] + 1] * 2)
        if last_k and not fits(deadline, (time.perf_counter() - t_batch) * k / last_k):
            return result("timeout")  # a batch (bound, branch, attack) that cannot end in time
        t_batch, last_k = time.perf_counter(), k
        res, new_dec, new_pt, new_lb = bound(new_box, torch.cat([got["lb"]] * 2), warm)
        domains += 2 * k
        max_depth = max(max_depth, int(new_depth.max()))
