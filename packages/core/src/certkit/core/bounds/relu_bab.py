"""Complete verification by ReLU splitting: branch and bound with split constraints in the
bound (β-CROWN).

A VNN-LIB property on one input box ``[lo, hi]`` asks whether some ``x`` there satisfies,
for some disjunct ``k``, every row of ``C_k @ f(x) <= d_k``. When one α-CROWN pass leaves
it open and the input has too many dimensions to split (an image), the unstable ReLU
neurons are split instead: a sub-domain fixes some neurons to *active* (``z >= 0``) or
*inactive* (``z <= 0``), which makes their relaxation exact, and the two children of a
domain cover it. This is the branch and bound of BaBSR (Bunel et al., "Branch and bound
for piecewise linear neural network verification", JMLR 2020) with the bounds of β-CROWN
(Wang et al., "Beta-CROWN: Efficient Bound Propagation with Per-neuron Split Constraints
for Complete and Incomplete Neural Network Verification", NeurIPS 2021, arXiv:2103.06624):

1. **Bound of a sub-domain.** The split neurons' pre-activation bounds are clamped
   (``l >= 0`` active, ``u <= 0`` inactive); the later layers' bounds are recomputed from
   the clamped ones (IBP ∩ the root's, or CROWN on the neurons still unstable,
   ``interm="crown"``); a domain whose bounds cross (``l > u``) is empty and closed. The
   output bound is α-CROWN's with one β ≥ 0 per (row, split neuron): the backward pass adds
   ``-β·s·z`` at the split neuron (``s = ±1`` its decision), a valid lower bound on the
   sub-domain for every β ≥ 0 because ``s·z >= 0`` there (β-CROWN's Theorem 3.1; β = 0 is
   plain CROWN with the clamped bounds). α and β are optimised together by the projected
   Adam loop of :meth:`certkit.core.bounds.model._Ctx.alpha_crown`. Many sub-domains form
   one batch (B = domains).
2. **Pruning.** A domain is closed when every disjunct has a row whose certified lower
   bound exceeds its threshold (no point of the domain satisfies any disjunct).
3. **Branching.** BaBSR's score for every unstable neuron, from the coefficients λ that
   the bound's backward pass puts on the ReLU's output (the best row of every open
   disjunct, averaged) and the pre-activation layer's bias b:
   ``|min(b·λ·(u/(u-l) - 1), b·λ·u/(u-l)) + min(λ, 0)·(-l·u/(u-l))|`` (the estimated
   change of the bound; its second term is the upper relaxation's intercept, BaBSR's
   backup score), or FSB's filter (De Palma et al., "Improved branch and bound for neural
   network verification via Lagrangian decomposition", 2021): the ``fsb_candidates`` best
   neurons by that score are each bounded for real (both children, CROWN with the
   domain's intermediate bounds) and the one whose worse child is best is split.
4. **Order and search.** The domains with the lowest bound are bounded first (as
   α,β-CROWN). Every bounded domain proposes the input that minimises its worst row's
   linear bound; a few signed-gradient steps from there look for a counterexample, which
   is returned only after a re-check with a forward pass (``sat``).

Guarantee: ``unsat`` means every leaf of a partition of the input box (by the signs of
split pre-activations) was closed by a sound bound; the bounds that close a domain are
computed in the model's own float arithmetic, without directed rounding (as auto_LiRPA and
α,β-CROWN; run in float64 for VNN-COMP). The search itself may bound in float32
(``bound_dtype``, the default for float64 models): its bounds only order and branch, and a
domain it would close is closed only if a re-bound in the model's arithmetic, from the
root's intermediate bounds with the α / β found, closes it too (:func:`_confirm`). ``sat`` carries a witness inside the box that satisfies every row
of some disjunct in the model's arithmetic. Otherwise ``timeout`` (the deadline passed,
checked in every loop) or ``unknown`` (``max_domains`` reached, or a domain with no
unstable neuron left that neither its bound nor an exact LP decided). Such a leaf is
affine on its region, so one LP per disjunct (scipy's HiGHS, when installed) decides it:
a solution is re-checked by a forward pass (``sat``), a clearly infeasible LP closes it.

Shapes: ``lo``, ``hi`` (n,) with ``n = prod(input_shape)``; ``C`` (N, S, K) (N disjuncts of
S rows; (S, K) is one disjunct); ``d`` (N, S); ``valid`` (N, S) marks real rows.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any

import torch
from torch import Tensor, nn

from certkit.core.bounds import ops
from certkit.core.bounds.bab import SplitResult, as_problem
from certkit.core.bounds.deadline import fits
from certkit.core.bounds.graph import Graph
from certkit.core.bounds.half import half_dtype, split_in_float64
from certkit.core.bounds.model import BoundedModel, _Ctx

_BRANCHING = ("babsr", "fsb")
_INTERM = ("ibp", "crown")
# a root margin bound below -REFINE_DEEP after alpha-CROWN is beyond what the search closes
# (eran 9x200: BaB moved refined roots by 2-5 in 150 s): the refinement then gets at least
# REFINE_SHARE_DEEP of the time left instead of refine_share
REFINE_DEEP = 5.0
REFINE_SHARE_DEEP = 0.8


def _beta_signs(s: Tensor) -> Tensor:
    """The signs the β terms use: the decisions themselves (a test plants a sign error here)."""
    return s


def _clamp(l: Tensor, u: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:  # noqa: E741
    """A split's pre-activation bounds: ``l >= 0`` where s = +1, ``u <= 0`` where s = -1."""
    return torch.where(s > 0, l.clamp(min=0), l), torch.where(s < 0, u.clamp(max=0), u)


class _Problem:
    """The network, the spec and the root's intermediate bounds, shared by all domains."""

    def __init__(self, model: nn.Module, input_shape: tuple[int, ...], lo: Tensor, hi: Tensor, C: Tensor,
                 d: Tensor, valid: Tensor) -> None:
        self.bm = BoundedModel(model, input_shape)
        self.bm._check_params()
        self.g = g = self.bm.graph
        if C.shape[-1] != math.prod(g.shapes[g.output]):
            raise ValueError(f"C: rows of {C.shape[-1]} entries, the model has {math.prod(g.shapes[g.output])} outputs")
        self.input_shape = input_shape
        self.lo, self.hi = lo, hi
        N, S, K = C.shape
        self.N, self.S = N, S
        self.C = C.reshape(N * S, K)
        self.d = d.reshape(N * S)
        self.valid = valid.reshape(N * S)
        pre: list[int] = []
        for r, op in enumerate(g.nodes):
            if isinstance(op, ops.ReLU) and g.inputs[r][0] not in pre and g.inputs[r][0] != 0:
                pre.append(g.inputs[r][0])
        pre.sort()  # (ReLUs may be traced out of their inputs' order: _bounds_with_splits starts at pre[used[0]])
        self.pre = pre  # pre-activation nodes of ReLUs (not the input itself), topological order
        self.relu_of = {g.inputs[r][0]: r for r, op in enumerate(g.nodes) if isinstance(op, ops.ReLU)}
        self.sizes = [math.prod(g.shapes[p]) for p in pre]
        self.offsets = [sum(self.sizes[:k]) for k in range(len(pre))]
        self.total = sum(self.sizes)
        self.root: dict[int, tuple[Tensor, Tensor]] = {}
        # a search problem without the root's dead neurons (:func:`_without_dead`): its neurons'
        # positions (total,) among the full problem's full_total ones; None: the full problem
        self.index: Tensor | None = None
        self.full_total = self.total

    def expand(self, t: Tensor) -> Tensor:
        """(D, total) per-neuron values (splits, scores) in the full problem's neuron order
        (D, full_total), zero on the neurons this problem dropped."""
        if self.index is None:
            return t
        out = torch.zeros(t.shape[0], self.full_total, dtype=t.dtype)
        out[:, self.index] = t
        return out

    def ctx(self, D: int) -> _Ctx:
        shp = (D, *self.input_shape)
        lo = self.lo.reshape(1, *self.input_shape).expand(shp)
        hi = self.hi.reshape(1, *self.input_shape).expand(shp)
        eps = ((self.hi - self.lo) / 2).amax().reshape(1, *([1] * len(self.input_shape))).expand(D, *([1] * len(shp[1:])))
        return _Ctx(self.g, (lo + hi) / 2, lo, hi, eps, math.inf)

    def split_view(self, splits: Tensor, k: int) -> Tensor:
        p = self.pre[k]
        return splits[:, self.offsets[k]:self.offsets[k] + self.sizes[k]].reshape(splits.shape[0], *self.g.shapes[p])

    def split_used(self, splits: Tensor, k: int) -> bool:
        """Whether some domain splits a neuron of ``pre[k]`` (a hook: act_bab's domains are boxes)."""
        return bool((self.split_view(splits, k) != 0).any())

    def clamp(self, l: Tensor, u: Tensor, splits: Tensor, k: int) -> tuple[Tensor, Tensor]:  # noqa: E741
        """``pre[k]``'s bounds (D, *shape) restricted to the domains' splits (a hook, as split_used)."""
        return _clamp(l, u, self.split_view(splits, k))

    def margins(self, lb: Tensor) -> Tensor:
        """(D, N, S) margins lb - d, -inf on padding rows."""
        m = lb - self.d
        m = torch.where(self.valid, m, torch.full_like(m, -math.inf))
        return m.reshape(lb.shape[0], self.N, self.S)

    def key(self, lb: Tensor) -> Tensor:
        """(D,) the worst disjunct's best margin: > 0 closes the domain."""
        return self.margins(lb).amax(2).amin(1)

    def violation(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(M,) min over disjuncts of max over rows of c·f(x) - d (<= 0: counterexample); f(x)."""
        y = self.g.forward(x.reshape(-1, *self.input_shape))[self.g.output].reshape(x.shape[0], -1)
        v = y @ self.C.T - self.d
        v = torch.where(self.valid, v, torch.full_like(v, -math.inf))
        return v.reshape(-1, self.N, self.S).amax(2).amin(1), y


class _Pool:
    """The open domains, one row per domain in named columns (splits, branching decision,
    bound, depth, warm α / β), in buffers that grow by doubling: adding m domains and taking
    k cost O(m) and O(k) row copies, not a copy of the whole pool per batch (profiled: with
    ~10k open domains the old concatenate-and-mask bookkeeping was 6-9 % of the search)."""

    def __init__(self) -> None:
        self.n = 0
        self.cols: dict[str, Tensor] = {}

    def add(self, **cols: Tensor) -> None:
        m = next(iter(cols.values())).shape[0]
        for name, t in cols.items():
            b = self.cols.get(name)
            if b is None or b.shape[0] < self.n + m:
                nb = torch.empty(max(2 * (self.n + m), 64), *t.shape[1:], dtype=t.dtype)
                if b is not None:
                    nb[:self.n] = b[:self.n]
                self.cols[name] = b = nb
            b[self.n:self.n + m] = t
        self.n += m

    def drop(self, name: str) -> None:
        self.cols.pop(name, None)

    def view(self, name: str) -> Tensor:
        return self.cols[name][:self.n]

    def take(self, idx: Tensor) -> dict[str, Tensor]:
        """Remove the rows ``idx`` (distinct) and return them; the tail rows fill the holes."""
        k = idx.numel()
        out = {name: b[idx] for name, b in self.cols.items()}
        tail = torch.arange(self.n - k, self.n)
        taken = torch.zeros(self.n, dtype=torch.bool)
        taken[idx] = True
        holes = idx[idx < self.n - k]
        movers = tail[~taken[tail]]  # as many as holes
        for b in self.cols.values():
            b[holes] = b[movers]
        self.n -= k
        return out


def _sliced_linear(op: ops.Linear, rows: Tensor | None, cols: Tensor | None) -> ops.Linear:
    """A copy of the Linear op keeping the output ``rows`` and input ``cols`` (None: all)."""
    W, b = op.m.weight.detach(), None if op.m.bias is None else op.m.bias.detach()
    if rows is not None:
        W, b = W[rows], None if b is None else b[rows]
    if cols is not None:
        W = W[:, cols]
    m = nn.Linear(W.shape[1], W.shape[0], bias=b is not None, dtype=W.dtype)
    with torch.no_grad():
        m.weight.copy_(W)
        if b is not None:
            m.bias.copy_(b)
    m.requires_grad_(False)
    new = copy.copy(op)
    new.m = m
    return new


def _without_dead(P: _Problem, live_from: _Problem | None = None) -> _Problem:
    """``P`` without the neurons that are dead on the whole box (root upper bound ``u <= 0``)
    in the layers ``Linear -> ReLU -> Linear`` of a flat shape: their ReLU output is 0 on
    every point of the box, so dropping the Linear's row and the next Linears' columns
    leaves the function on the box unchanged, and every bound too (the ReLU relaxation of
    a neuron with ``u <= 0`` is the zero line; IBP gives [0, 0]): the same arithmetic on
    fewer neurons. Deep MLPs have most of them (mnistfc 256x4 prop_0_0.03: 833 of 1024;
    eran 9x200 idx 6998: 934 of 1610), and the first layer's 784-wide product is half of
    each pass. Returns ``P`` itself when nothing can be dropped; otherwise a problem whose
    neurons are the kept ones (``index``: their full positions, :meth:`_Problem.expand`).
    ``live_from``: the problem whose root bounds say which neurons are dead (default ``P``;
    the search's float32 copy takes the float64 model's, so both keep the same neurons: a
    float64 upper bound in (0, 1e-45] is 0 in float32)."""
    g = P.g
    cons = g.consumers()
    keep: dict[int, Tensor] = {}  # pre node -> kept neuron indices
    for p in P.pre:
        r = P.relu_of[p]
        if not (isinstance(g.nodes[p], ops.Linear) and cons[p] == [r] and len(g.shapes[p]) == 1 and r != g.output
                and cons[r] and all(isinstance(g.nodes[c], ops.Linear) for c in cons[r])):
            continue
        live = torch.nonzero((live_from or P).root[p][1].reshape(-1) > 0).flatten()
        if live.numel() == g.shapes[p][0]:
            continue
        keep[p] = live if live.numel() else torch.zeros(1, dtype=torch.long)  # (no empty layer)
    if not keep:
        return P
    cut = {P.relu_of[p]: k for p, k in keep.items()}  # ReLU node -> the kept neurons of its input
    R = copy.copy(P)
    R.g = h = Graph()
    for i, op in enumerate(g.nodes):
        rows = keep.get(i)
        cols = cut.get(g.inputs[i][0]) if i > 0 else None
        if isinstance(op, ops.Linear) and (rows is not None or cols is not None):
            op = _sliced_linear(op, rows, cols)
        h.add(op, list(g.inputs[i]))
        n = keep.get(i, keep.get(g.inputs[i][0])) if i in keep or i in cut else None
        h.shapes.append((n.numel(),) if n is not None else g.shapes[i])
    h.output = g.output
    R.root = {i: (lu[0][:, keep[i]], lu[1][:, keep[i]]) if i in keep else
              (lu[0][:, cut[i]], lu[1][:, cut[i]]) if i in cut else lu for i, lu in P.root.items()}
    R.sizes = [math.prod(h.shapes[p]) for p in P.pre]
    R.offsets = [sum(R.sizes[:k]) for k in range(len(P.pre))]
    R.total = sum(R.sizes)
    R.full_total = P.total
    R.index = torch.cat([P.offsets[k] + (keep[p] if p in keep else torch.arange(P.sizes[k]))
                         for k, p in enumerate(P.pre)])
    R.kept = {**keep, **cut}
    return R


def _widen(R: _Problem, full: dict[int, tuple[Tensor, Tensor]], bounds: dict[int, tuple[Tensor, Tensor]]
           ) -> dict[int, tuple[Tensor, Tensor]]:
    """Bounds of :func:`_without_dead`'s problem ``R`` on the whole net: ``full``'s, with the
    kept neurons' replaced by ``bounds`` (the dropped ones keep theirs, all ``u <= 0``)."""
    out = dict(full)
    for i, (bl, bu) in bounds.items():
        k = R.kept.get(i)
        if k is None or i not in full:
            out[i] = (bl, bu)
            continue
        fl, fu = full[i][0].clone(), full[i][1].clone()
        fl[:, k], fu[:, k] = bl, bu
        out[i] = (fl, fu)
    return out


def _bounds_with_splits(P: _Problem, ctx: _Ctx, splits: Tensor, interm: str, chunk: int = 1024) -> Tensor:
    """Fill ``ctx.bounds`` for the domains' split decisions (D, total); returns (D,) True
    where the domain is empty (some node's bounds cross)."""
    g = P.g
    D = splits.shape[0]
    used = [k for k in range(len(P.pre)) if P.split_used(splits, k)]
    first = P.pre[used[0]] if used else g.output
    ctx.bounds = {0: (ctx.lo, ctx.hi)}
    empty = torch.zeros(D, dtype=torch.bool)
    pos = {p: k for k, p in enumerate(P.pre)}
    for i in range(1, g.output):
        root = tuple(t.expand(D, *t.shape[1:]) for t in P.root[i])
        if i < first:
            ctx.bounds[i] = root  # type: ignore[assignment]  # no split before: the root's bounds
            continue
        l, u = root if i == first else ctx._intersect(ctx._node_ibp(i), P.root[i])  # noqa: E741
        if i in pos:
            l, u = P.clamp(l, u, splits, pos[i])  # noqa: E741
            if interm == "crown" and i > first and ctx._needs_crown(i):
                ctx.bounds[i] = (l, u)
                unst = ctx._unstable(i, l, u)
                rows = torch.nonzero(unst.any(0)).flatten()
                lf, uf = l.reshape(D, -1).clone(), u.reshape(D, -1).clone()
                n = lf.shape[1]
                for s0 in range(0, rows.numel(), chunk):
                    if ctx._late():
                        break  # the rest keep their (sound) clamped IBP bounds
                    r = rows[s0:s0 + chunk]
                    Ci = torch.zeros(D, r.numel(), n, dtype=lf.dtype)
                    Ci[:, torch.arange(r.numel()), r] = 1.0
                    cl, cu = ctx.crown(i, Ci)
                    assert cl is not None and cu is not None
                    ur = unst[:, r]
                    lf[:, r] = torch.where(ur, torch.max(lf[:, r], cl), lf[:, r])
                    uf[:, r] = torch.where(ur, torch.min(uf[:, r], cu), uf[:, r])
                l, u = lf.reshape(l.shape), uf.reshape(u.shape)  # noqa: E741
        # crossing beyond rounding: empty (a constant neuron's CROWN and IBP bounds may cross by an ulp)
        # (1e-9 is below float32's ulp: a float32 net's constant neuron crossing by a few ulps
        # closed domains that hold counterexamples; 1024 ulps there)
        tol = max(1e-9, 1024 * torch.finfo(l.dtype).eps)
        empty |= (l - u > tol * (1 + l.abs() + u.abs())).reshape(D, -1).any(1)
        ctx.bounds[i] = (l, u)
    return empty


def _domain_ctx(P: _Problem, splits: Tensor, interm: str, deadline: float | None) -> tuple[_Ctx, Tensor]:
    """A bound context for D domains (``splits`` (D, ...), the split representation of
    ``P``) with their intermediate bounds filled (:func:`_bounds_with_splits`); returns it
    and (D,) True where the domain is empty."""
    ctx = P.ctx(splits.shape[0])
    ctx.deadline = deadline
    with torch.no_grad():
        empty = _bounds_with_splits(P, ctx, splits, interm)
    return ctx, empty


def _bound_domains(P: _Problem, splits: Tensor, *, iters: int, lr: float, beta_lr: float, interm: str,
                   deadline: float | None, warm: tuple[Tensor, Tensor] | None = None) -> dict[str, Any]:
    """Bound D domains (splits (D, total) in {-1, 0, 1}). Returns ``lb`` (D, R) certified lower
    bounds of the spec rows, ``empty`` (D,), ``lam`` {pre node: (D, *shape)} the coefficients
    on each ReLU's output (best row of every open disjunct, averaged), ``xstar`` (D, n) the
    input minimising the worst row's linear bound, ``ctx`` (the bounds, for FSB) and
    ``warm``: the last α and β, each (D, R, total) in float16, to start the children from
    (``warm`` in: the same, e.g. the parents')."""
    D = splits.shape[0]
    ctx, empty = _domain_ctx(P, splits, interm, deadline)
    R = P.C.shape[0]
    Cb = P.C.unsqueeze(0).expand(D, R, -1)
    betas: dict[int, Tensor] = {}
    for k, p in enumerate(P.pre):
        s = P.split_view(splits, k)
        if bool((s != 0).any()):
            betas[p] = _beta_signs(s.to(P.C.dtype))
    lb = None
    ctx.opt_out = {}
    R_ = Cb.shape[1]
    w_in: dict[str, dict[int, Tensor]] | None = None
    if warm is not None:
        w_in = {"alphas": {P.relu_of[p]: warm[0][:, :, P.offsets[k]:P.offsets[k] + P.sizes[k]].reshape(
                    D, R_, *P.g.shapes[p]) for k, p in enumerate(P.pre)},
                "betas": {p: warm[1][:, :, P.offsets[k]:P.offsets[k] + P.sizes[k]].reshape(D, R_, *P.g.shapes[p])
                          for k, p in enumerate(P.pre) if p in betas}}
    w_out = None
    if iters > 0:
        with torch.enable_grad():
            lb, _ = ctx.alpha_crown(Cb, True, False, iters, lr, intermediate=False, splits=betas or None,
                                    beta_lr=beta_lr, warm=w_in, keep_best=True)
        al, be = ctx.opt_out.get("alphas", {}), ctx.opt_out.get("beta", {})
        w_out = (torch.cat([al[P.relu_of[p]].detach().reshape(D, R_, -1) if P.relu_of[p] in al else
                            torch.zeros(D, R_, P.sizes[k], dtype=P.C.dtype) for k, p in enumerate(P.pre)], 2).half(),
                 torch.cat([be[p].detach().reshape(D, R_, -1) if p in be else
                            torch.zeros(D, R_, P.sizes[k], dtype=P.C.dtype) for k, p in enumerate(P.pre)], 2).half())
    keep: dict[int, Tensor] = {}
    with torch.no_grad():
        r = ctx.backward(P.g.output, Cb.reshape(D, R, *P.g.shapes[P.g.output]), ctx.opt_out.get("alphas"),
                         {i: t.detach() for i, t in (ctx.opt_out.get("betas") or {}).items()}, keep)
        lb = r if lb is None else torch.max(lb.detach(), r)
        m = P.margins(lb)  # (D, N, S)
        best_row = m.argmax(2)  # (D, N)
        open_n = m.amax(2) <= 0
        w = torch.zeros(D, P.N, P.S, dtype=lb.dtype)
        w.scatter_(2, best_row.unsqueeze(2), 1.0)
        w = (w * open_n.unsqueeze(2).to(lb.dtype)).reshape(D, R)
        w = w / w.sum(1, keepdim=True).clamp(min=1.0)
        lam = {p: torch.einsum("dr,dr...->d...", w, keep[P.relu_of[p]]) for p in P.pre if P.relu_of[p] in keep}
        worst_n = torch.where(open_n, m.amax(2), torch.full_like(m[:, :, 0], math.inf)).argmin(1)
        row = worst_n * P.S + best_row.gather(1, worst_n.unsqueeze(1)).squeeze(1)
        a_in = keep[0][torch.arange(D), row].reshape(D, -1) if 0 in keep else torch.zeros(D, P.lo.numel())
        xstar = torch.where(a_in > 0, P.lo, P.hi)
    return {"lb": lb, "empty": empty, "lam": lam, "xstar": xstar, "ctx": ctx, "warm": w_out}


def _confirm(P: _Problem, splits: Tensor, alphas: dict[int, Tensor] | None, betas: dict[int, Tensor] | None,
             interm: str) -> tuple[Tensor, Tensor]:
    """Re-bound D domains in ``P``'s arithmetic (the model's) with slopes and β found
    elsewhere (e.g. by a float32 search): ``alphas`` {ReLU node: (D, R, *shape)}, ``betas``
    {pre-activation node: (D, R, *shape)} (the raw β, any dtype). The bound is valid for
    every α projected onto [0, 1] and every β projected onto β ≥ 0 (β-CROWN's Theorem 3.1),
    so only the split signs and the intermediate bounds (recomputed here from the root's)
    matter for soundness. Returns ((D,) True where the domain is closed: empty, or every
    disjunct has a row whose bound exceeds its threshold; (D, R) the lower bounds)."""
    D = splits.shape[0]
    dt = P.C.dtype
    ctx = P.ctx(D)
    with torch.no_grad():
        empty = _bounds_with_splits(P, ctx, splits, interm)
        terms: dict[int, Tensor] = {}
        for k, p in enumerate(P.pre):
            if betas is not None and p in betas:
                s = _beta_signs(P.split_view(splits, k).to(dt)).unsqueeze(1)
                terms[p] = -(betas[p].detach().to(dt).clamp(min=0.0) * s)
        al = None if alphas is None else {r: a.detach().to(dt).clamp(0.0, 1.0) for r, a in alphas.items()}
        R = P.C.shape[0]
        Cb = P.C.unsqueeze(0).expand(D, R, -1).reshape(D, R, *P.g.shapes[P.g.output])
        lb = ctx.backward(P.g.output, Cb, al, terms or None)
    return empty | (P.key(lb) > 0), lb


def _babsr_scores(P: _Problem, ctx: _Ctx, lam: dict[int, Tensor]) -> Tensor:
    """(D, total) BaBSR scores of every neuron (0 where stable or split)."""
    out = []
    for p in P.pre:
        l, u = ctx.bounds[p]  # noqa: E741
        D = l.shape[0]
        lm = lam.get(p)
        if lm is None:
            out.append(torch.zeros(D, math.prod(l.shape[1:]), dtype=l.dtype))
            continue
        lr_, ur_ = l.clamp(max=0), u.clamp(min=0)
        slope = ur_ / (ur_ - lr_).clamp(min=1e-12)
        icpt = -lr_ * slope
        op = P.g.nodes[p]
        bias = getattr(getattr(op, "m", None), "bias", None) if isinstance(op, (ops.Linear, ops.Conv)) else None
        if bias is not None:
            b = bias.detach().to(l.dtype).reshape(-1, *([1] * (l.dim() - 2)))
            bl = b * lm
            bias_c = torch.min(bl * (slope - 1), bl * slope)
        else:
            bias_c = torch.zeros_like(lm)
        score = (bias_c + lm.clamp(max=0) * icpt).abs() + 1e-9 * (-lm.clamp(max=0) * icpt)
        unstable = (l < 0) & (u > 0)
        out.append(torch.where(unstable, score + 1e-12, torch.zeros_like(score)).reshape(D, -1))
    return torch.cat(out, 1)


def _fsb_choose(P: _Problem, res: dict[str, Tensor], scores: Tensor, k: int) -> Tensor:
    """FSB: among the k best-scored neurons of every domain, the one whose worse child has
    the best CROWN bound (each child: the neuron clamped, the domain's other bounds and
    its α / β kept). Returns (D,) global neuron indices (-1: no unstable neuron)."""
    ctx: _Ctx = res["ctx"]  # type: ignore[assignment]
    D = scores.shape[0]
    k = min(k, scores.shape[1])
    top_s, top_i = scores.topk(k, 1)
    best = top_i[:, 0].clone()
    best = torch.where(top_s[:, 0] > 0, best, torch.full_like(best, -1))
    if k <= 1:
        return best
    R = P.C.shape[0]
    Cb = P.C.unsqueeze(0).expand(D, R, -1).reshape(D, R, *P.g.shapes[P.g.output])
    base = dict(ctx.bounds)
    alphas = ctx.opt_out.get("alphas")
    betas = {i: t.detach() for i, t in (ctx.opt_out.get("betas") or {}).items()}
    worst = torch.full((D, k), -math.inf, dtype=P.C.dtype)
    with torch.no_grad():
        for j in range(k):
            child = []
            for sign in (1.0, -1.0):
                ctx.bounds = dict(base)
                for q, p in enumerate(P.pre):
                    sel = (top_i[:, j] >= P.offsets[q]) & (top_i[:, j] < P.offsets[q] + P.sizes[q])
                    if not bool(sel.any()):
                        continue
                    l, u = base[p]  # noqa: E741
                    s = torch.zeros(D, P.sizes[q], dtype=l.dtype)
                    idx = (top_i[:, j] - P.offsets[q]).clamp(0, P.sizes[q] - 1)
                    s[torch.arange(D), idx] = sign * sel.to(l.dtype)
                    ctx.bounds[p] = _clamp(l, u, s.reshape(l.shape))
                r = ctx.backward(P.g.output, Cb, alphas, betas)
                child.append(P.key(r))
            worst[:, j] = torch.min(child[0], child[1])
    ctx.bounds = base
    worst = torch.where(top_s > 0, worst, torch.full_like(worst, -math.inf))
    pick = worst.argmax(1)
    chosen = top_i.gather(1, pick.unsqueeze(1)).squeeze(1)
    return torch.where(best >= 0, chosen, best)


def _attack(P: _Problem, x0: Tensor, steps: int, PA: _Problem | None = None) -> tuple[Tensor, Tensor] | None:
    """Signed-gradient descent on the violation from x0 (M, n) inside the box; the first
    point with violation <= 0 in ``P`` (the model's arithmetic) and its output, else None.
    ``PA``: the problem whose violation gives the steps' gradient signs (the same function
    on the box, e.g. the search's float32 net without dead neurons; default ``P``)."""
    PA = P if PA is None else PA
    lo, hi = P.lo, P.hi
    x = torch.min(torch.max(x0.detach().to(lo.dtype), lo), hi)  # (a vertex rounded in another dtype)
    width = hi - lo
    for step in range(steps + 1):
        last = step == steps
        xg = x.detach().to(PA.lo.dtype).requires_grad_(not last)
        with torch.enable_grad() if not last else torch.no_grad():
            vv, ya = PA.violation(xg)
        # one pass per step: the model's own arithmetic re-checks only the points that PA puts
        # at or near a violation (PA is P: its values decide at once)
        va = vv.detach()
        near = va <= 0 if PA is P else va <= 1e-3 * (1 + float(va.abs().amax()))
        idx = torch.nonzero(near).flatten()
        if idx.numel():
            if PA is P:
                v, y = va[idx], ya.detach()[idx]
            else:
                with torch.no_grad():
                    v, y = P.violation(x[idx])
            hit = torch.nonzero(v <= 0).flatten()
            if hit.numel():
                j = int(hit[0])
                return x[idx[j]].clone(), y[j].clone()
        if last:
            return None
        with torch.enable_grad():
            (gr,) = torch.autograd.grad(vv.sum(), xg)
        x = torch.min(torch.max(x.detach() - 0.1 * 0.7 ** step * width * gr.sign().to(x.dtype), lo), hi)
    return None


def _relu_exact(l: Tensor, u: Tensor) -> Tensor:  # noqa: E741
    """Neurons whose CROWN relaxation (:func:`~certkit.core.bounds.ops.relu_relaxation`) is the
    ReLU itself on [l, u]: active (l >= 0), or inactive with l <= -1e-8. An inactive neuron
    with l in (-1e-8, 0) gets a relaxation with a positive upper slope (the 1e-8 guard against
    a zero width), so the net is not exactly affine there: an "active" split constraint
    written with its lower line could cut off feasible inputs, and the leaf LP must not run."""
    return (l >= 0) | ((u <= 0) & (l + 1e-8 <= 0))


def _solve_leaf(P: _Problem, splits: Tensor) -> tuple[str, Tensor | None]:
    """A domain without unstable ReLU left (splits (1, total)): the net is affine on it, so
    "some x of the domain satisfies a disjunct" is one LP per disjunct (scipy's HiGHS, when
    installed): maximise t with ``c_s·f(x) + t <= d_s`` and the split signs as constraints.
    Returns ("sat", x) for a solution that passes the forward check, ("closed", None) when
    every LP's best t is below -1e-6 with every row relaxed by its rounding scale (1024 ulps
    of its magnitude: clearly infeasible), else ("unknown", None)."""
    try:
        from scipy.optimize import linprog
    except ImportError:
        return "unknown", None
    if any(op.nonlinear and not isinstance(op, ops.ReLU) for op in P.g.nodes):
        return "unknown", None  # another relaxation (max pool, sigmoid) is not exact
    ctx = P.ctx(1)
    with torch.no_grad():
        if bool(_bounds_with_splits(P, ctx, splits, "ibp")[0]):
            return "closed", None
        for r, op in enumerate(P.g.nodes):  # affine only if every ReLU's relaxation is exact
            if isinstance(op, ops.ReLU):
                lr_, ur_ = ctx.bounds[P.g.inputs[r][0]]
                if not bool(_relu_exact(lr_, ur_).all()):
                    return "unknown", None

        def affine(node: int, A0: Tensor) -> tuple[Tensor, Tensor]:
            """rows of A0 @ node as (coefficients on x (S, n), offsets (S,)), exact here"""
            keep: dict[int, Tensor] = {}
            r = ctx.backward(node, A0.unsqueeze(0), keep=keep)[0]
            a = keep[0][0].reshape(A0.shape[0], -1) if 0 in keep else torch.zeros(A0.shape[0], P.lo.numel())
            mid, rad = (P.hi + P.lo) / 2, (P.hi - P.lo) / 2
            return a, r - (a @ mid - a.abs() @ rad)

        a_ub, b_ub = [], []
        for k, p in enumerate(P.pre):
            sv = splits[0, P.offsets[k]:P.offsets[k] + P.sizes[k]]
            idx = torch.nonzero(sv).flatten()
            if idx.numel():
                E = torch.zeros(idx.numel(), P.sizes[k], dtype=P.C.dtype)
                E[torch.arange(idx.numel()), idx] = 1.0
                a, c = affine(p, E.reshape(idx.numel(), *P.g.shapes[p]))
                sg = sv[idx].to(P.C.dtype).unsqueeze(1)
                a_ub.append(torch.cat([-sg * a, torch.zeros(idx.numel(), 1, dtype=a.dtype)], 1))  # s·z >= 0
                b_ub.append(sg[:, 0] * c)
        A, c = affine(P.g.output, P.C)
    lo_b, hi_b = P.lo.double().numpy(), P.hi.double().numpy()  # (bfloat16 has no numpy view)
    bounds = [*zip(lo_b.tolist(), hi_b.tolist()), (None, 1.0)]
    obj = torch.zeros(P.lo.numel() + 1, dtype=torch.float64)
    obj[-1] = -1.0
    verdict = "closed"
    for k in range(P.N):
        # (a row with d = +inf holds everywhere: no LP row, which linprog would refuse)
        rows = [r for r in range(k * P.S, (k + 1) * P.S) if bool(P.valid[r]) and bool(P.d[r] < math.inf)]
        au = torch.cat([*a_ub, torch.cat([A[rows], torch.ones(len(rows), 1, dtype=A.dtype)], 1)]).double()
        bu = torch.cat([*b_ub, P.d[rows] - c[rows]]).double()
        # every row relaxed by its rounding scale (a, c are in the model's arithmetic; 1e-6 alone
        # closed the leaf of a witness at thresholds d ~ 3e10: LP optimum -4.7e-6)
        mag = torch.cat([*(b.abs() for b in b_ub), P.d[rows].abs() + c[rows].abs()]).double()
        mag = mag + au[:, :-1].abs() @ torch.max(P.lo.abs(), P.hi.abs()).double()
        bu = bu + 1e-6 + 1024 * torch.finfo(P.C.dtype).eps * mag
        res = linprog(obj.numpy(), A_ub=au.numpy(), b_ub=bu.numpy(), bounds=bounds, method="highs")
        if res.status == 2:
            continue  # infeasible: the split constraints alone are contradictory
        if res.status != 0:
            verdict = "unknown"
            continue
        if -res.fun >= 0:
            x = torch.min(torch.max(torch.as_tensor(res.x[:-1], dtype=P.C.dtype), P.lo), P.hi).unsqueeze(0)
            with torch.no_grad():
                v, _ = P.violation(x)
            if bool(v[0] <= 0):
                return "sat", x[0]
        if -res.fun > -1e-6:
            verdict = "unknown"
    return verdict, None


def _check_args(batch: int, max_domains: int, alpha_iterations: int, bab_iterations: int, pgd_steps: int,
                fsb_candidates: int, branching: str, interm: str, attack_domains: int) -> None:
    for name, v, least in (("batch", batch, 1), ("max_domains", max_domains, 1),
                           ("alpha_iterations", alpha_iterations, 0), ("bab_iterations", bab_iterations, 0),
                           ("pgd_steps", pgd_steps, 0), ("fsb_candidates", fsb_candidates, 1),
                           ("attack_domains", attack_domains, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < least:
            raise ValueError(f"{name}: expected an integer >= {least}, got {v!r}")
    if branching not in _BRANCHING:
        raise ValueError(f"branching: expected one of {', '.join(_BRANCHING)}, got {branching!r}")
    if interm not in _INTERM:
        raise ValueError(f"interm: expected one of {', '.join(_INTERM)}, got {interm!r}")


def _spec_args(model: nn.Module, input_shape: tuple[int, ...], lo: Tensor, hi: Tensor, C: Tensor, d: Tensor,
               valid: Tensor | None) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The problem in the model's dtype: lo, hi (n,), C (N, S, K), d (N, S), valid (N, S) bool
    (shared with act_bab); one-line ValueErrors on bad shapes or an empty box."""
    lo, hi, C, d = as_problem(model, input_shape, lo, hi, C, d)
    if C.dim() == 2:
        C, d = C.unsqueeze(0), d.reshape(1, -1)
    if C.dim() != 3 or d.shape != C.shape[:2]:
        raise ValueError(f"C, d: expected (N, S, K) and (N, S), got {tuple(C.shape)} and {tuple(d.shape)}")
    valid = torch.ones(d.shape, dtype=torch.bool) if valid is None else torch.as_tensor(valid, dtype=torch.bool)
    if valid.shape != d.shape:
        raise ValueError(f"valid: expected shape {tuple(d.shape)}, got {tuple(valid.shape)}")
    if not bool((lo <= hi).all()):
        raise ValueError("lo, hi: the input box is empty (lo > hi somewhere)")
    return lo, hi, C, d, valid


def relu_split(model: nn.Module, input_shape: tuple[int, ...], lo: Tensor, hi: Tensor, C: Tensor, d: Tensor,
               valid: Tensor | None = None, *, deadline: float | None = None, batch: int = 64,
               max_domains: int = 1_000_000, alpha_iterations: int = 20, bab_iterations: int = 5,
               lr: float = 0.5, bab_lr: float = 0.1, beta_lr: float = 0.05, branching: str = "fsb",
               fsb_candidates: int | None = None,
               interm: str = "ibp", pgd_steps: int = 5, attack_domains: int = 8,
               warm_bytes: int = 256 << 20, bound_dtype: torch.dtype | None = torch.float32,
               refine: str | None = None, refine_share: float = 0.4, refine_first: int = 1,
               refine_workers: int | None = None, refine_milp_layers: int | None = None,
               give_up_below: float | None = None,
               root_bounds: dict[int, tuple[Tensor, Tensor]] | None = None, prune_dead: bool = True) -> SplitResult:
    """Decide ``∃ x ∈ [lo, hi], ∃ k: C_k @ model(x) <= d_k`` by ReLU splitting (β-CROWN).

    Args:
        model: (B, *input_shape) -> (B, K), in eval mode; its dtype is the arithmetic of
            the root, of every bound that closes a domain, of the attack and the witnesses.
        lo, hi: (n,) input box.
        C, d, valid: (N, S, K), (N, S), (N, S) bool (default all True): N disjuncts of S rows;
            (S, K) and (S,) are one disjunct.
        deadline: a ``time.perf_counter()`` value; checked in every loop (``timeout``).
        batch: domains split per step (2·batch children bounded as one batch).
        max_domains: stop with ``unknown`` after bounding this many domains.
        alpha_iterations: α-CROWN steps on the root; bab_iterations: α,β steps per batch of
            children (0: CROWN with the split neurons clamped, β = 0).
        lr, bab_lr, beta_lr: Adam step sizes of α on the root and in the search, and of β
            (0.1 and 0.05 in the search as α,β-CROWN; with 0.5 the bounds of deep domains
            stalled on mnistfc). Children start from their parent's α / β, so 5 steps per
            batch suffice (mnistfc 256x2 prop_1, one disjunct: 20 steps 14.4 s, 10 steps 9.8 s,
            5 steps 8.8 s, 3 steps 12.3 s; without the warm start 20 steps took 24 s).
        branching: ``"babsr"`` or ``"fsb"`` (BaBSR's top ``fsb_candidates`` neurons, each
            bounded for real). ``fsb_candidates=None``: 2 on fully connected nets with 4 or
            more ReLU layers, 4 on others (conv nets not measured; FSB's child bounds clamp one neuron and keep every
            later layer's bounds, an estimate that misleads more the deeper the net: with
            2 instead of 4, mnistfc 256x4 / eran 9x200 needed 8-34 % fewer domains on 3 of
            4 decided instances (+9 % on one), each domain costs ~15 % less, and after 20k
            domains the hardest disjuncts of 256x4 prop_3_0.03 / prop_10_0.05 / prop_9_0.03
            reached -0.579 / -0.444 / -1.174 against -0.662 / -0.406 / -1.183 (8
            candidates: -0.832 on the first); on 256x2 2 took +26-51 % domains).
        interm: the later layers' bounds after a split: ``"ibp"`` (IBP from the clamped
            bounds ∩ the root's; cheap) or ``"crown"`` (CROWN on their unstable neurons).
        warm_bytes: memory for the open domains' α and β (float16; children start from their
            parent's, as α,β-CROWN); past it the search goes on with fresh α / β.
        pgd_steps, attack_domains: signed-gradient steps from the candidate inputs of the
            ``attack_domains`` open children with the lowest bounds in every batch.
        bound_dtype: the arithmetic of the search's bounding passes (α,β optimisation, FSB);
            ``None``: the model's. When it differs from the model's (float32 for a float64
            model, the default: 1.5-1.8x the domains per second on mnistfc), a domain is
            closed only by :func:`_confirm`: every domain the search would close (bound above
            the threshold, or empty) is re-bounded in the model's arithmetic, from the root's
            intermediate bounds and with the α / β found (valid for any α in [0, 1], β >= 0),
            and stays open unless that bound closes it too. The root, the attack, the leaf LP
            and every witness use the model's arithmetic.

        refine: ``"milp"`` or ``"lp"``: before the search, refine the root's intermediate
            bounds of a chain of affine layers and ReLUs by MILP / LP
            (:func:`~certkit.core.bounds.lp_refine.refine_bounds`) for at most
            ``refine_share`` of the time left, then recompute the root's CROWN / α-CROWN
            bounds from them (as α,β-CROWN's ``bab-refine``); ``None``: off. A root whose
            margin bound is below ``-REFINE_DEEP`` (5) refines for at least
            ``REFINE_SHARE_DEEP`` (0.8) of the time left: the search cannot close it.
            ``refine_first``: the first ReLU layer refined (1, the second one: the first is
            exact already; a later call on the same box resumes at the layer an earlier
            one's time ran out in, ``stats["refine"].resume``). ``refine_workers``: processes
            solving a layer's neurons in parallel (``None``: the CPUs this process may use);
            ``refine_milp_layers``: binaries only for the unstable ReLUs of this many layers
            before the refined one (a partial MILP; ``None``: all). ``give_up_below``: return
            ``unknown`` right after the root bound when its margin bound is below this
            (a search that cannot close it: the caller refines instead; ``None``: never).
        root_bounds: valid intermediate bounds {node: (lower, upper) (1, *shape)} for this
            input box (e.g. ``stats["root_bounds"]`` of an earlier call on the same box):
            the root intersects its own with them (and ``refine`` refines them further).
        prune_dead: search (and confirm) on the net without the neurons the root's bounds
            prove dead on the whole box (:func:`_without_dead`; the same bounds on fewer
            neurons); ``False``: on the whole net.

    Returns a :class:`~certkit.core.bounds.bab.SplitResult` (``boxes``: domains bounded;
    ``stats["root_bounds"]``: the root's intermediate bounds, ``stats["refine"]`` the
    refinement's :class:`~certkit.core.bounds.lp_refine.RefineStats`, ``stats["root_lb"]`` /
    ``stats["refined_lb"]`` the root's margin bound before / after it).
    """
    if half_dtype(model) is not None:  # searched on a float64 copy, a witness re-checked in half (bounds/half.py)
        return split_in_float64(relu_split, dict(locals()))
    if refine not in (None, "lp", "milp"):
        raise ValueError(f"refine: expected None, 'lp' or 'milp', got {refine!r}")
    if not (isinstance(refine_share, (int, float)) and 0 < refine_share <= 1):
        raise ValueError(f"refine_share: expected a fraction in (0, 1], got {refine_share!r}")
    if isinstance(refine_first, bool) or not isinstance(refine_first, int) or refine_first < 1:
        raise ValueError(f"refine_first: expected an integer >= 1, got {refine_first!r}")
    _check_args(batch, max_domains, alpha_iterations, bab_iterations, pgd_steps,
                4 if fsb_candidates is None else fsb_candidates, branching, interm, attack_domains)
    t0 = time.perf_counter()
    lo, hi, C, d, valid = _spec_args(model, input_shape, lo, hi, C, d, valid)
    if bound_dtype is not None and bound_dtype not in (torch.float32, torch.float64):
        raise ValueError(f"bound_dtype: expected torch.float32, torch.float64 or None, got {bound_dtype!r}")
    model = model.eval()
    P = _Problem(model, tuple(input_shape), lo, hi, C, d, valid)
    deep_mlp = len(P.pre) >= 4 and all(isinstance(P.g.nodes[p], ops.Linear) for p in P.pre)
    fsb_k = fsb_candidates if fsb_candidates is not None else 2 if deep_mlp else 4
    stats: dict[str, Any] = {"bound_s": 0.0, "confirm_s": 0.0, "confirmed": 0, "not_confirmed": 0,
                             "fsb_candidates": fsb_k}

    def result(status: str, x: Tensor | None = None, y: Tensor | None = None) -> SplitResult:
        return SplitResult(status, domains, max_depth, time.perf_counter() - t0, x, y, stats=stats)

    def late() -> bool:
        return deadline is not None and time.perf_counter() > deadline

    domains, max_depth = 1, 0
    if not bool(valid.any(1).all()):  # a disjunct without rows: any point is a counterexample
        x = ((lo + hi) / 2).unsqueeze(0)
        with torch.no_grad():
            _, y = P.violation(x)
        return result("sat", x[0], y[0])
    # root: CROWN ∩ IBP intermediate bounds (∩ the given ones), then full α-CROWN
    ctx = P.ctx(1)
    ctx.deadline = deadline

    def root_pass(given: dict[int, tuple[Tensor, Tensor]] | None) -> None:
        with torch.no_grad():
            ctx.fill_ibp()
            if given:  # valid bounds from elsewhere (LP/MILP refinement): taken as given, only tightened
                ctx.bounds = {i: ctx._intersect(b, given[i]) if i in given else b for i, b in ctx.bounds.items()}
            ctx.fill_crown_intermediate()
        if alpha_iterations > 0:  # full α-CROWN: the tightest intermediate bounds of its iterates
            # (on the net without the neurons CROWN proved dead: the same bounds, fewer neurons)
            P.root = {i: b for i, b in ctx.bounds.items() if 0 < i < P.g.output}
            Q = _without_dead(P) if prune_dead else P
            cq = ctx if Q is P else Q.ctx(1)
            if cq is not ctx:
                cq.deadline, cq.bounds = deadline, {0: ctx.bounds[0], **Q.root}
            cq.best_interm = {}
            with torch.enable_grad():
                lb0, _ = cq.alpha_crown(P.C.unsqueeze(0), True, False, alpha_iterations, lr, intermediate=True)
            new = {**cq.bounds, **cq.best_interm}
            ctx.bounds = new if cq is ctx else _widen(Q, ctx.bounds, new)
            if lb0 is not None:  # the property's margin bound after each root pass
                stats.setdefault("root_margins", []).append(float(P.key(lb0.detach())[0]))
        P.root = {i: b for i, b in ctx.bounds.items() if 0 < i < P.g.output}

    root_pass(root_bounds)
    stats["root_bounds"] = P.root
    # the search's problems: PB bounds in the search's arithmetic, PR closes domains (the
    # model's); both without the root's dead neurons (prune_dead), P keeps the full net
    # for the attack, the leaf LP and the statistics
    PB0 = P
    if bound_dtype is not None and bound_dtype != lo.dtype:
        bt = bound_dtype
        PB0 = _Problem(copy.deepcopy(model).to(bt), tuple(input_shape), lo.to(bt), hi.to(bt), C.to(bt), d.to(bt),
                       valid)

    def search_problems() -> tuple[_Problem, _Problem]:
        if PB0 is not P:
            PB0.root = {i: (b[0].to(PB0.C.dtype), b[1].to(PB0.C.dtype)) for i, b in P.root.items()}
        if not prune_dead:
            return P, PB0
        PR = _without_dead(P)
        return PR, PR if PB0 is P else _without_dead(PB0, live_from=P)

    PR, PB = search_problems()
    stats["search_neurons"] = PR.total
    if late():
        return result("timeout")
    if not P.pre:
        return result("unknown")  # nothing to split

    def bound(splits: Tensor, iters: int, parent_lb: Tensor | None, warm: tuple[Tensor, Tensor] | None = None
              ) -> tuple[dict[str, Any], Tensor, Tensor]:
        t1 = time.perf_counter()
        res = _bound_domains(PB, splits, iters=iters, lr=lr if parent_lb is None else bab_lr, beta_lr=beta_lr,
                             interm=interm, deadline=deadline, warm=warm)
        if parent_lb is not None:  # a child lies inside its parent: the parent's bounds hold on it too
            res["lb"] = torch.max(res["lb"], parent_lb)
        res["closed"] = res["empty"] | (PB.key(res["lb"]) > 0)
        if PB is not PR and bool(res["closed"].any()):  # closed only by a bound in the model's arithmetic
            t2 = time.perf_counter()
            idx = torch.nonzero(res["closed"]).flatten()
            out = res["ctx"].opt_out
            # (each row's best iterate: the last one's bound can be well below the search's)
            al_b, be_b = out.get("best_alphas", out.get("alphas")), out.get("best_beta", out.get("beta"))
            ok, lb_p = _confirm(PR, splits[idx], {r: a[idx] for r, a in (al_b or {}).items()},
                                {q: b[idx] for q, b in (be_b or {}).items()}, interm)
            bad = idx[~ok]
            res["closed"][bad] = False
            res["lb"][bad] = lb_p[~ok].to(res["lb"].dtype)  # its own bound in the model's arithmetic
            stats["confirmed"] += int(ok.sum())
            stats["not_confirmed"] += bad.numel()
            stats["confirm_s"] += time.perf_counter() - t2
        scores = _babsr_scores(PB, res["ctx"], res["lam"])
        if branching == "fsb":
            dec = _fsb_choose(PB, res, scores, fsb_k)
        else:
            top, dec = scores.max(1)
            dec = torch.where(top > 0, dec, torch.full_like(dec, -1))
        stats["bound_s"] += time.perf_counter() - t1
        return res, dec, res["lb"]

    new_s = torch.zeros(1, PR.total, dtype=torch.int8)
    res, new_dec, new_lb = bound(new_s, alpha_iterations, None)
    if give_up_below is not None and not bool(res["closed"][0]) and float(new_lb.min()) < give_up_below:
        stats["root_lb"] = float(new_lb.min())
        return result("unknown")  # (the search cannot close this root: the caller refines it)
    if refine is not None and not bool(res["closed"][0]) and not late():
        # refine the root's intermediate bounds (LP / MILP, as alpha,beta-CROWN's bab-refine),
        # the neurons that matter most to the output first (BaBSR's score), then bound again
        from certkit.core.bounds.lp_refine import refine_bounds

        sc = PB.expand(_babsr_scores(PB, res["ctx"], res["lam"]))[0].double()
        scores = {p: sc[P.offsets[k]:P.offsets[k] + P.sizes[k]].numpy() for k, p in enumerate(P.pre)}
        share = refine_share if float(new_lb.min()) >= -REFINE_DEEP else max(refine_share, REFINE_SHARE_DEEP)
        left = None if deadline is None else share * (deadline - time.perf_counter())
        refined, rs = refine_bounds(P.g, lo, hi, P.root, method=refine, deadline=deadline, budget=left, scores=scores,
                                    first=refine_first, workers=refine_workers, milp_layers=refine_milp_layers)
        stats["refine"] = rs
        stats["root_lb"] = float(new_lb.min())  # the root's margin bound before / after the refinement
        if rs.improved and not late():
            root_pass(refined)  # later layers' CROWN / α-CROWN bounds from the refined ones
            stats["root_bounds"] = P.root
            PR, PB = search_problems()
            stats["search_neurons"] = PR.total
            new_s = torch.zeros(1, PR.total, dtype=torch.int8)
            res, new_dec, new_lb = bound(new_s, alpha_iterations, None)
            stats["refined_lb"] = float(new_lb.min())
    new_depth = torch.zeros(1, dtype=torch.long)
    pool = _Pool()
    # α / β of every open domain (float16, children start from their parent's) while they fit
    keep_w = res["warm"] is not None
    undecided = 0
    t_batch, last_k = time.perf_counter(), 0  # when the last batch of last_k parents started
    while True:
        if late():
            return result("timeout")
        # the domains just bounded: search for a counterexample from the open ones, keep them
        new_key = PB.key(new_lb)
        open_ = ~res["closed"]
        if bool(open_.any()):
            cand = torch.nonzero(open_).flatten()
            cand = cand[torch.argsort(new_key[cand])[:attack_domains]]  # the most promising ones
            hit = _attack(P, res["xstar"][cand].to(P.C.dtype), pgd_steps, PB)
            if late():
                return result("timeout")
            if hit is not None:
                return result("sat", *hit)
        stuck = open_ & (new_dec < 0)  # nothing left to split, yet not closed by the bound
        for j in torch.nonzero(stuck).flatten().tolist():
            verdict, xs = _solve_leaf(P, PR.expand(new_s[j:j + 1]))
            if verdict == "sat" and xs is not None:
                with torch.no_grad():
                    _, y = P.violation(xs.unsqueeze(0))
                return result("sat", xs, y[0])
            undecided += verdict != "closed"
            if late():
                return result("timeout")
        open_ &= ~stuck
        keep_w = keep_w and res["warm"] is not None
        w_cols = {"w0": res["warm"][0][open_], "w1": res["warm"][1][open_]} if keep_w else {}
        pool.add(s=new_s[open_], dec=new_dec[open_], lb=new_lb[open_], depth=new_depth[open_], **w_cols)
        if keep_w and 4 * pool.n * math.prod(pool.view("w0").shape[1:]) > warm_bytes:
            keep_w = False  # too large to keep: the rest of the search starts α / β afresh
        if not keep_w:
            pool.drop("w0")
            pool.drop("w1")
        if pool.n == 0:
            return result("unknown" if undecided else "unsat")
        pool_key = PB.key(pool.view("lb"))
        stats["global_lb"] = float(pool_key.min())  # the property's margin bound so far
        stats["open"] = pool.n
        if domains >= max_domains:
            return result("unknown")
        # split the `batch` domains with the lowest bound on their chosen neuron
        k = min(batch, pool.n)
        got = pool.take(torch.topk(-pool_key, k).indices)
        s, dec, plb, dep = got["s"], got["dec"], got["lb"], got["depth"]
        warm = (torch.cat([got["w0"]] * 2), torch.cat([got["w1"]] * 2)) if "w0" in got else None
        new_s = torch.cat([s, s])
        ar = torch.arange(k)
        new_s[ar, dec] = 1
        new_s[k + ar, dec] = -1
        new_depth = torch.cat([dep + 1, dep + 1])
        if last_k and not fits(deadline, (time.perf_counter() - t_batch) * k / last_k):
            return result("timeout")  # a batch (bound, branch, attack, leaves) that cannot end in time
        t_batch, last_k = time.perf_counter(), k
        res, new_dec, new_lb = bound(new_s, bab_iterations, torch.cat([plb, plb]), warm)
        domains += 2 * k
        max_depth = max(max_depth, int(new_depth.max()))
