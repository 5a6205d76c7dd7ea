"""Tighter intermediate bounds of ReLU networks by linear programming over the triangle
relaxation, with a bound that the solver's answer cannot make unsound.

For a chain of affine maps and ReLUs (``z_k = W_k a_{k-1} + b_k``, ``a_k = ReLU(z_k)``,
``a_0 = x`` in the input box), the pre-activation bounds of layer ``k`` are refined by
minimising and maximising every unstable neuron of ``z_k`` over the Planet relaxation
(Ehlers, "Formal verification of piece-wise linear feed-forward neural networks",
ATVA 2017) of the layers before it, built with the bounds refined so far:
``l_i <= z_i <= u_i``, ``a = z`` where ``l >= 0``, ``a = 0`` where ``u <= 0``, and the
triangle ``a >= 0, a >= z, a <= u (z - l) / (u - l)`` where ``l < 0 < u``. Layers are
refined in order, so a neuron made stable by layer ``k``'s LP drops its triangle from
every later LP. This is the "LP-refined intermediate bounds" of the convex-relaxation
literature (Salman et al., "A convex relaxation barrier to tight robustness verification
of neural networks", NeurIPS 2019) and the first stage of α,β-CROWN's ``bab-refine``
(VNN-COMP 2021; it solved a MIP per neuron with Gurobi, 15 s each, 230 s in all, before
branch and bound).

Soundness does not rest on the solver. An LP solver's reported optimum is not a bound
(tolerances, early stops). Here every bound comes from weak duality, evaluated in float64
by this module (Neumaier and Shcherbina, "Safe bounds in linear and mixed-integer
programming", Math. Program. 2004): for the LP ``min c·v`` subject to ``L <= A v <= U``
and ``v`` in a box ``[vl, vu]`` with finite sides, *any* row multipliers ``λ`` give

    c·v >= Σ_i min(r_i vl_i, r_i vu_i) + Σ_r (λ_r L_r if λ_r > 0 else λ_r U_r),
    r = c - Aᵀλ,

for every feasible ``v`` (multipliers on infinite sides are set to 0 first). The solver
only proposes ``λ`` (its row duals); a poor ``λ`` gives a poor bound, never a wrong one.
The float64 rounding of ``r`` and of the sums is bounded a priori (``γ_n = n·2⁻⁵³``
per dot product) and subtracted, and the triangle's upper line is loosened by its
rounding, so the bound holds for the LP's real-number data. As everywhere in this
package the network itself is taken in its own arithmetic (no directed rounding of
``W a + b``); float32 results are rounded outward. Refined bounds are intersected with
the given ones, so they are never looser.

Between layers CROWN runs again from every bound refined so far (intersected), so the next
layer's LP starts from tighter bounds and fewer unstable neurons. The first layer's rows
of never-active neurons are left out of every LP (its bounds hold for every input of the
box, so those rows cut nothing). The MILP solve of a neuron stops as soon as it proves the
neuron stable: HiGHS gets the value that makes it stable (past the margin below) as its
objective cutoff and, once every node is pruned, the bound is that value.

Time: a solve or the building of a layer's LP starts only when twice its measured cost
fits before the deadline, and each solve's time limit is the time left divided by twice
the worst ratio of a solve's duration to its limit assumed (:data:`OVERRUN`) or seen:
HiGHS looks at its clock only between cut rounds and LPs.

Shapes: ``bounds`` maps graph node → (lower, upper), each (1, *node_shape) (one example);
``lo``, ``hi``: (n,) the input box.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from certkit.core.bounds import ops
from certkit.core.bounds.deadline import fits
from certkit.core.bounds.graph import Graph

_U = 2.0 ** -53  # unit roundoff of float64
MAX_WIDTH = 4096  # widest ReLU layer refined (neurons)
SOLVER_OPTIONS: dict[str, Any] = {}  # extra HiGHS options for every solve (tests stop the simplex early)
OVERRUN = 4.0  # assumed ratio of a HiGHS solve's duration to its time limit until a worse one is seen
# (HiGHS checks its clock between cut rounds and LPs: 3-10x overruns under load, issue 18)
BUILD_S_PER_NNZ = 2e-6  # seconds per matrix entry of building an LP, until measured (eran's 157k: 0.09-0.25 s)
MIP_TOL = 1e-6  # 10x HiGHS's dual feasibility tolerance (1e-7): the MILP bound's margin per unit width


@dataclass
class RefineStats:
    """What :func:`refine_bounds` did: LPs solved, neurons tightened / made stable, seconds,
    per layer (pre-activation node → counts), why it stopped or skipped, and ``resume``: the
    layer (``first`` of a later call) it stopped in for lack of time, ``None`` when it got
    through every layer it was asked for."""

    lps: int = 0
    improved: int = 0
    stabilised: int = 0
    seconds: float = 0.0
    layers: dict[int, dict[str, float]] = field(default_factory=dict)
    stopped: str = ""
    resume: int | None = None


@dataclass
class _Layer:
    node: int  # pre-activation node z_k
    W: np.ndarray  # (n_k, n_{k-1}) float64, on a_{k-1} (flattened)
    b: np.ndarray  # (n_k,)


def relu_chain(g: Graph) -> list[_Layer] | None:
    """The affine layers ``z_k = W_k a_{k-1} + b_k`` of a chain of affine ops and ReLUs
    (``a_0`` the flattened input), one per ReLU pre-activation node in order; ``None`` when
    the graph is something else (another activation, a branch). The affine maps are the
    ops' own backward passes applied to the identity (for ``Linear`` exactly ``W``)."""
    relu_in = {g.inputs[r][0]: r for r, op in enumerate(g.nodes) if isinstance(op, ops.ReLU)}
    if any(op.nonlinear and not isinstance(op, ops.ReLU) for op in g.nodes):
        return None
    # fully connected layers only (convolutions would be densified: a 16x32x32 map is a 16384-row identity)
    if any(math.prod(g.shapes[p]) > MAX_WIDTH for p in relu_in):
        return None
    pre = sorted(relu_in)
    layers: list[_Layer] = []
    src_expected = 0
    dt = next((t.dtype for op in g.nodes for t in getattr(getattr(op, "m", None), "parameters", lambda: [])()),
              torch.float64)
    for p in pre:
        path = []
        i = p
        while i != 0 and not isinstance(g.nodes[i], ops.ReLU):
            op = g.nodes[i]
            if not isinstance(op, (ops.Linear, ops.Affine, ops.Identity)) or len(g.inputs[i]) != 1:
                return None  # (Identity covers Flatten / Reshape)
            path.append(i)
            i = g.inputs[i][0]
        if i != src_expected or not path:
            return None
        n = math.prod(g.shapes[p])
        A = torch.eye(n, dtype=dt).reshape(1, n, *g.shapes[p])
        bias = torch.zeros(1, n, dtype=dt)
        with torch.no_grad():
            for j in path:
                (A,), bj = g.nodes[j].backward(A, [(None, None)])  # type: ignore[list-item]
                if bj is not None:
                    bias = bias + bj
        layers.append(_Layer(p, A.reshape(n, -1).double().numpy().copy(), bias.reshape(n).double().numpy().copy()))
        src_expected = relu_in[p]
    return layers


def _highs() -> Any:
    """The HiGHS bindings: the public ``highspy`` package (the ``refine`` extra) when it is
    installed, else the copy bundled in scipy >= 1.15 (a private module, same API), else
    None (also without scipy, whose sparse matrices build the LP). Both keep one model whose
    objective is changed between solves (warm starts)."""
    try:
        import scipy.sparse  # noqa: F401
    except ImportError:
        return None
    try:
        import highspy
        return highspy._core
    except ImportError:
        pass
    try:
        from scipy.optimize._highspy import _core  # scipy >= 1.15
        return _core
    except ImportError:
        return None


def _residual(c: np.ndarray, AT: Any, lam: np.ndarray) -> np.ndarray:
    """``c - Aᵀλ`` (a test plants a sign error here)."""
    return c - AT @ lam


def safe_lower(c: np.ndarray, A: Any, L: np.ndarray, U: np.ndarray, vl: np.ndarray, vu: np.ndarray,
               lam: np.ndarray) -> float:
    """A valid lower bound of ``min c·v`` over ``{v in [vl, vu] : L <= A v <= U}`` from any
    row multipliers ``lam`` (weak duality, evaluated with a priori rounding-error bounds):
    see the module docstring. ``A`` is a scipy sparse (m, n) matrix; ``vl``, ``vu`` finite.
    Returns -inf if the inputs are not finite."""
    lam = np.where(np.isfinite(lam), lam, 0.0)
    lam = np.where((lam > 0) & ~np.isfinite(L), 0.0, lam)
    lam = np.where((lam < 0) & ~np.isfinite(U), 0.0, lam)
    AT = A.T.tocsr()
    r = _residual(c, AT, lam)
    absA = abs(AT)
    k = int(np.diff(AT.indptr).max(initial=0)) + 2
    err = 2.0 * k * _U * (np.abs(c) + absA @ np.abs(lam))  # |fl(r) - r|, with the error of this estimate
    rl, ru = r - err, r + err
    terms = np.minimum(np.minimum(rl * vl, rl * vu), np.minimum(ru * vl, ru * vu))
    row = np.where(lam > 0, lam * np.where(np.isfinite(L), L, 0.0), lam * np.where(np.isfinite(U), U, 0.0))
    allt = np.concatenate([terms, row])
    if not np.isfinite(allt).all():
        return -math.inf
    s = float(np.sum(allt))
    return s - 2.0 * (allt.size + 4) * _U * float(np.sum(np.abs(allt))) - 1e-300


class _LP:
    """The Planet relaxation of layers 0..k-1 as one HiGHS LP: columns x, z_i, and a_i of
    the unstable neurons; rows ``z_i - W_i a_{i-1} = b_i`` and the triangles."""

    def __init__(self, layers: list[_Layer], k: int, x_lo: np.ndarray, x_hi: np.ndarray,
                 lb: list[np.ndarray], ub: list[np.ndarray], hc: Any, milp: bool = False) -> None:
        from scipy import sparse
        cols_l: list[np.ndarray] = [x_lo]
        cols_u: list[np.ndarray] = [x_hi]
        ncol = x_lo.size
        a_cols = np.arange(ncol)  # columns of a_{i-1} (-1: the constant 0)
        ri: list[np.ndarray] = []
        ci: list[np.ndarray] = []
        vals: list[np.ndarray] = []
        rL: list[np.ndarray] = []
        rU: list[np.ndarray] = []
        nrow = 0
        ints: list[np.ndarray] = []
        for i in range(k):
            W, b = layers[i].W, layers[i].b
            n = b.size
            # the first layer is affine in the input box, where its bounds hold for every x: the
            # rows of its neurons that are never active (u <= 0) feed nothing and cut nothing
            # (dropped; eran's 784-input first layer: 157k -> 36k matrix entries)
            rows = np.nonzero(ub[i] > 0)[0] if i == 0 else np.arange(n)
            nr = rows.size
            z = np.full(n, -1)
            z[rows] = ncol + np.arange(nr)
            ncol += nr
            cols_l.append(lb[i][rows])
            cols_u.append(ub[i][rows])
            keep = a_cols >= 0
            Wk = W[rows][:, keep]
            rr, cc = np.nonzero(Wk)
            ri += [nrow + np.arange(nr), nrow + rr]
            ci += [z[rows], a_cols[keep][cc]]
            vals += [np.ones(nr), -Wk[rr, cc]]
            rL.append(b[rows])
            rU.append(b[rows])
            nrow += nr
            l, u = lb[i], ub[i]  # noqa: E741
            act, unst = l >= 0, (l < 0) & (u > 0)
            nxt = np.full(n, -1)
            nxt[act] = z[act]
            m = int(unst.sum())
            if m:
                a = ncol + np.arange(m)
                ncol += m
                cols_l.append(np.zeros(m))
                cols_u.append(u[unst])
                nxt[unst] = a
                lu, uu = l[unst], u[unst]
                s = uu / (uu - lu)
                zr = z[unst]
                # z - a <= 0
                ri += [nrow + np.arange(m)] * 2
                ci += [zr, a]
                vals += [np.ones(m), -np.ones(m)]
                rL.append(np.full(m, -np.inf))
                rU.append(np.zeros(m))
                nrow += m
                # a - s z <= -s l, loosened by its rounding (s and s*l are rounded)
                ri += [nrow + np.arange(m)] * 2
                ci += [a, zr]
                vals += [np.ones(m), -s]
                rL.append(np.full(m, -np.inf))
                rU.append(-s * lu + 2.0 ** -48 * (np.abs(uu) + np.abs(lu)))
                nrow += m
                if milp:  # big-M: a <= z - l (1 - d) and a <= u d, with d binary (its LP relaxation is the triangle)
                    dcol = ncol + np.arange(m)
                    ncol += m
                    cols_l.append(np.zeros(m))
                    cols_u.append(np.ones(m))
                    ints.append(dcol)
                    ri += [nrow + np.arange(m)] * 3
                    ci += [a, zr, dcol]
                    vals += [np.ones(m), -np.ones(m), -lu]
                    rL.append(np.full(m, -np.inf))
                    rU.append(-lu)
                    nrow += m
                    ri += [nrow + np.arange(m)] * 2
                    ci += [a, dcol]
                    vals += [np.ones(m), -uu]
                    rL.append(np.full(m, -np.inf))
                    rU.append(np.zeros(m))
                    nrow += m
            a_cols = nxt
        self.A = sparse.csc_matrix((np.concatenate(vals), (np.concatenate(ri), np.concatenate(ci))),
                                   shape=(nrow, ncol))
        self.A.sum_duplicates()
        self.L, self.U = np.concatenate(rL), np.concatenate(rU)
        self.vl, self.vu = np.concatenate(cols_l), np.concatenate(cols_u)
        self.a_cols = a_cols  # the columns of a_{k-1} (-1: the constant 0)
        self.ncol = ncol
        self.milp = milp and bool(ints)
        if self.milp:  # the widths HiGHS's tolerances act on: columns, and row activities
            w = self.vu - self.vl
            act = abs(self.A) @ w
            rw = np.where(np.isfinite(self.U - self.L), np.minimum(self.U - self.L, act), act)
            self.width_sum = float(w.sum() + rw.sum())
        h = hc._Highs()
        for opt, val in (("output_flag", False), ("presolve", "off"), ("threads", 1)):
            h.setOptionValue(opt, val)
        lp = hc.HighsLp()
        lp.num_col_, lp.num_row_ = ncol, nrow
        lp.col_cost_ = np.zeros(ncol)
        lp.col_lower_, lp.col_upper_ = self.vl, self.vu
        inf = hc.kHighsInf
        lp.row_lower_ = np.where(np.isfinite(self.L), self.L, -inf)
        lp.row_upper_ = np.where(np.isfinite(self.U), self.U, inf)
        lp.a_matrix_.format_ = hc.MatrixFormat.kColwise
        lp.a_matrix_.start_ = self.A.indptr
        lp.a_matrix_.index_ = self.A.indices
        lp.a_matrix_.value_ = self.A.data
        lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = ncol, nrow
        if self.milp:
            is_int = np.zeros(ncol, dtype=bool)
            is_int[np.concatenate(ints)] = True
            lp.integrality_ = [hc.HighsVarType.kInteger if v else hc.HighsVarType.kContinuous for v in is_int]
            for opt, fval in (("mip_heuristic_effort", 0.0), ("mip_rel_gap", 1e-2), ("mip_abs_gap", 1e-2)):
                h.setOptionValue(opt, fval)  # only the dual bound is used; 1 % gaps as alpha,beta-CROWN's
            for opt in ("mip_heuristic_run_rins", "mip_heuristic_run_rens", "mip_heuristic_run_root_reduced_cost",
                        "mip_heuristic_run_feasibility_jump"):  # (these run even at effort 0; unknown to older HiGHS)
                h.setOptionValue(opt, False)
        for opt, val in SOLVER_OPTIONS.items():
            h.setOptionValue(opt, val)
        h.passModel(lp)
        self.h, self.hc = h, hc
        self.idx = np.arange(ncol, dtype=np.int32)

    def margin(self, v: float) -> float:
        """What a MILP bound ``v`` loses to HiGHS's tolerances: :data:`MIP_TOL` times (the
        column widths + the row activity widths + |v| + 1)."""
        return MIP_TOL * (self.width_sum + abs(v) + 1.0)

    def lower(self, w: np.ndarray, time_limit: float, stop_at: float | None = None) -> float:
        """A lower bound of ``w · a_{k-1}`` over the relaxation (-inf if none): for the LP
        the weak-duality bound :func:`safe_lower` of HiGHS's row duals; for the MILP
        HiGHS's proven dual bound less :meth:`margin` (the error its tolerances allow, see
        the module docstring). ``stop_at`` (MILP only): a value past which the bound is
        not needed (the neuron is stable once its bound clears it); given to HiGHS as
        its objective cutoff, so it prunes every node whose bound reaches it and stops,
        reporting the problem infeasible, once all are: then the bound is ``stop_at``."""
        keep = self.a_cols >= 0
        c = np.zeros(self.ncol)
        np.add.at(c, self.a_cols[keep], w[keep])
        self.h.changeColsCost(self.ncol, self.idx, c)
        self.h.setOptionValue("time_limit", max(float(time_limit), 1e-3))
        cut = math.inf if stop_at is None or not math.isfinite(stop_at) else float(stop_at)
        if self.milp:
            self.h.setOptionValue("objective_bound", cut)
        self.h.run()
        if self.milp:
            st = self.h.getModelStatus()
            S = self.hc.HighsModelStatus
            if st == S.kInfeasible and math.isfinite(cut):
                v = cut  # every node pruned by the cutoff: no point of the relaxation is below it
            elif st in (S.kOptimal, S.kTimeLimit, S.kObjectiveBound):
                v = min(float(self.h.getInfo().mip_dual_bound), cut)  # (nodes pruned by the cutoff lie above it)
            else:
                return -math.inf
            if not math.isfinite(v):
                return -math.inf
            return v - self.margin(v)
        sol = self.h.getSolution()
        if not sol.dual_valid:
            return -math.inf
        return safe_lower(c, self.A, self.L, self.U, self.vl, self.vu, np.asarray(sol.row_dual))


def _round_out(v: np.ndarray, dtype: torch.dtype, up: bool) -> Tensor:
    """float64 values as ``dtype`` numbers no tighter than them (lower bounds rounded down,
    upper bounds up)."""
    v64 = torch.from_numpy(v)
    t = v64.to(dtype)
    bad = t.double() < v64 if up else t.double() > v64
    if bool(bad.any()):
        t = torch.where(bad, torch.nextafter(t, torch.full_like(t, math.inf if up else -math.inf)), t)
    return t


def refine_bounds(g: Graph, lo: Tensor, hi: Tensor, bounds: dict[int, tuple[Tensor, Tensor]], *,
                  method: str = "lp", deadline: float | None = None, budget: float | None = None,
                  first: int = 1, n_layers: int | None = None, max_neurons: int | None = None,
                  solve_time: float | None = None, scores: dict[int, np.ndarray] | None = None,
                  crown: bool = True) -> tuple[dict[int, tuple[Tensor, Tensor]], RefineStats]:
    """Refine the pre-activation bounds of a chain of affine ops and ReLUs over the triangle
    relaxation (module docstring), layer by layer from layer ``first`` (layer 0 is affine
    in the input box, where CROWN is exact already).

    Args:
        g: the bound graph; ``bounds``: node → (lower, upper), each (1, *shape), valid for
            every input in ``[lo, hi]`` (e.g. α-CROWN's); ``lo``, ``hi``: (n,).
        method: ``"lp"`` (the triangle LP; its bound is the weak-duality bound computed
            here) or ``"milp"`` (one binary per unstable ReLU of the earlier layers, big-M
            with the bounds so far; HiGHS's proven dual bound after at most ``solve_time``
            seconds, less the tolerance margin of :meth:`_LP.lower`; a solve stops as soon
            as it proves the neuron stable, as α,β-CROWN's Gurobi ``BestBdStop``).
        deadline: ``time.perf_counter()`` value; a solve (or building a layer's LP) starts
            only if twice its measured cost fits before it
            (:func:`~certkit.core.bounds.deadline.fits`), and a solve's time limit is cut
            to what fits even when HiGHS overruns its limits as much as it did so far.
        budget: seconds this call may spend (``None``: until the deadline).
        n_layers: refine at most this many layers; max_neurons: at most this many unstable
            neurons per layer, by ``scores`` (pre node → (n,), larger first, neurons with a
            score <= 0 skipped; default the triangle's intercept ``-l u / (u - l)``, the
            loosest first).
        solve_time: HiGHS time limit of one solve (default 1.5 s for the MILP, none for
            the LP); a stopped solve still gives a valid bound.
        crown: after each refined layer, CROWN again from all the bounds so far (cheap:
            one backward pass per later layer's unstable neurons; intersected, so never
            looser): the next layer's LP starts from those, with fewer unstable neurons.

    Returns the bounds with every refined neuron's interval intersected with its given one
    (never looser) and a :class:`RefineStats`. An unsupported graph or a missing scipy
    returns ``bounds`` unchanged (``stats.stopped`` says why)."""
    if method not in ("lp", "milp"):
        raise ValueError(f"method: expected 'lp' or 'milp', got {method!r}")
    t0 = time.perf_counter()
    stats = RefineStats()
    out = dict(bounds)
    hc = _highs()
    layers = relu_chain(g)
    if hc is None or layers is None:
        stats.stopped = "no scipy / HiGHS" if hc is None else "not a chain of affine layers and ReLUs"
        return out, stats
    stop = t0 + budget if budget is not None else None
    end = stop if deadline is None else (deadline if stop is None else min(stop, deadline))
    milp = method == "milp"
    per_solve = solve_time if solve_time is not None else (1.5 if milp else 1e9)
    dtype = bounds[layers[0].node][0].dtype
    lb = [bounds[ly.node][0].reshape(-1).double().numpy().copy() for ly in layers]
    ub = [bounds[ly.node][1].reshape(-1).double().numpy().copy() for ly in layers]
    x_lo, x_hi = lo.reshape(-1).double().numpy(), hi.reshape(-1).double().numpy()
    solve_s: float | None = None
    over = OVERRUN  # the worst ratio of a solve's duration to its time limit so far (at least OVERRUN)
    build_nnz_s = BUILD_S_PER_NNZ  # seconds per matrix entry of building and passing an LP (measured after the first)
    last = len(layers) if n_layers is None else min(len(layers), max(first, 1) + n_layers)
    for k in range(max(first, 1), last):
        l, u = lb[k], ub[k]  # noqa: E741
        unst = np.nonzero((l < 0) & (u > 0))[0]
        if unst.size == 0:
            continue
        nnz = sum(int(np.count_nonzero(layers[i].W)) for i in range(k)) + 10 * sum(b.size for b in lb[:k])
        if not fits(end, solve_s) or not fits(end, build_nnz_s * nnz):
            stats.stopped, stats.resume = "budget", k
            break
        sc = scores.get(layers[k].node) if scores is not None else None
        score = np.asarray(sc, dtype=np.float64).reshape(-1)[unst] if sc is not None else \
            -l[unst] * u[unst] / (u[unst] - l[unst])
        unst = unst[np.argsort(-score, kind="stable")][:max_neurons]
        if sc is not None:
            unst = unst[np.sort(-score)[:unst.size] < 0]  # no influence on the output: left alone
        t1 = time.perf_counter()
        lp = _LP(layers, k, x_lo, x_hi, lb, ub, hc, milp)
        build_nnz_s = max(build_nnz_s, (time.perf_counter() - t1) / max(nnz, 1))
        W, b = layers[k].W, layers[k].b
        rec = {"unstable": float(unst.size), "improved": 0.0, "stabilised": 0.0}
        for j in unst.tolist():
            for low in ([True, False] if -l[j] <= u[j] else [False, True]):  # the side nearer 0 first
                if not fits(end, solve_s):
                    stats.stopped = "budget"
                    break
                t2 = time.perf_counter()
                left = per_solve if end is None else min(per_solve, (end - t2) / (2.0 * over))
                # the objective value that makes neuron j stable (l_j >= 0 / u_j <= 0), past the margins
                thr = -b[j] if low else b[j]
                cut = None
                if lp.milp:
                    cut = thr + 2.0 * lp.margin(thr) + 8 * _U * (abs(thr) + abs(b[j])) + 1e-12
                v = lp.lower(W[j] if low else -W[j], left, cut)
                stats.lps += 1
                dt = time.perf_counter() - t2
                over = max(over, dt / max(left, 1e-3))
                solve_s = dt if solve_s is None else max(0.8 * solve_s + 0.2 * dt, dt if method == "lp" else 0.0)
                if not math.isfinite(v):
                    continue
                err = 4 * _U * (abs(v) + abs(b[j]))  # the rounding of adding the bias
                if low and v + b[j] - err > l[j]:
                    l[j] = v + b[j] - err
                    rec["improved"] += 1
                elif not low and -v + b[j] + err < u[j]:
                    u[j] = -v + b[j] + err
                    rec["improved"] += 1
                if l[j] >= 0 or u[j] <= 0:
                    rec["stabilised"] += 1
                    break  # stable now: the other side does not change its relaxation
            if stats.stopped:
                break
        rec["seconds"] = time.perf_counter() - t1
        stats.layers[layers[k].node] = rec
        stats.improved += int(rec["improved"])
        stats.stabilised += int(rec["stabilised"])
        if stats.stopped:
            stats.resume = k
            break
        if crown and rec["improved"] and k + 1 < last:
            t3 = time.perf_counter()
            _crown_again(g, lo, hi, bounds, layers, lb, ub, end)
            rec["crown_s"] = time.perf_counter() - t3
    for k, ly in enumerate(layers):
        ol, ou = bounds[ly.node]
        nl = _round_out(lb[k], dtype, False).reshape(ol.shape)
        nu = _round_out(ub[k], dtype, True).reshape(ou.shape)
        out[ly.node] = (torch.max(ol, nl), torch.min(ou, nu))
    stats.seconds = time.perf_counter() - t0
    return out, stats


def _crown_again(g: Graph, lo: Tensor, hi: Tensor, bounds: dict[int, tuple[Tensor, Tensor]], layers: list[_Layer],
                 lb: list[np.ndarray], ub: list[np.ndarray], deadline: float | None) -> None:
    """CROWN intermediate bounds of every layer from the refined ones so far (IBP ∩ the given
    ∩ the refined, then CROWN on the unstable neurons, in the graph's dtype), intersected
    into ``lb`` / ``ub`` in place. Past ``deadline`` the remaining layers keep theirs."""
    from certkit.core.bounds.model import _Ctx

    dt = bounds[layers[0].node][0].dtype
    shp = (1, *g.shapes[0])
    lo_, hi_ = lo.reshape(shp).to(dt), hi.reshape(shp).to(dt)
    ctx = _Ctx(g, (lo_ + hi_) / 2, lo_, hi_, ((hi_ - lo_) / 2).amax().reshape([1] * len(shp)), math.inf)
    ctx.deadline = deadline
    given = dict(bounds)
    for k, ly in enumerate(layers):
        ol, ou = bounds[ly.node]
        given[ly.node] = (torch.max(ol, _round_out(lb[k], dt, False).reshape(ol.shape)),
                          torch.min(ou, _round_out(ub[k], dt, True).reshape(ou.shape)))
    with torch.no_grad():
        ctx.fill_ibp()
        ctx.bounds = {i: ctx._intersect(b, given[i]) if i in given else b for i, b in ctx.bounds.items()}
        ctx.fill_crown_intermediate()
    for k, ly in enumerate(layers):
        nl, nu = ctx.bounds[ly.node]
        np.maximum(lb[k], nl.reshape(-1).double().numpy(), out=lb[k])
        np.minimum(ub[k], nu.reshape(-1).double().numpy(), out=ub[k])
