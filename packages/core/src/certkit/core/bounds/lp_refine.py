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

The neurons of a layer are independent given the earlier layers' bounds: worker processes
(:mod:`~certkit.core.bounds.lp_workers`, one HiGHS model each) solve them in parallel, as
α,β-CROWN's 8–32 Gurobi processes. A *partial* MILP (``milp_layers``) keeps binaries only
for the last layers before the refined one.

Time: a solve or the building of a layer's LP starts only when twice its measured cost
fits before the deadline, and each solve's time limit is the time left divided by twice
the worst ratio of a solve's duration to its limit assumed (:data:`OVERRUN`) or seen:
HiGHS looks at its clock only between cut rounds and LPs.

Shapes: ``bounds`` maps graph node → (lower, upper), each (1, *node_shape) (one example);
``lo``, ``hi``: (n,) the input box.
"""

from __future__ import annotations

import math
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from certkit.core.bounds import ops
from certkit.core.bounds.deadline import fits
from certkit.core.bounds.graph import Graph
from certkit.core.bounds.lp_model import (  # noqa: F401
    _LP,
    _U,
    _highs,
    _Layer,
    _residual,
    neuron_lower,
    safe_lower,
)
from certkit.core.bounds.lp_workers import POOL_START_S, Pool, default_workers

MAX_WIDTH = 4096  # widest ReLU layer refined (neurons)
SOLVER_OPTIONS: dict[str, Any] = {}  # extra HiGHS options for every solve (tests stop the simplex early)
OVERRUN = 4.0  # assumed ratio of a HiGHS solve's duration to its time limit until a worse one is seen
# (HiGHS checks its clock between cut rounds and LPs: 3-10x overruns under load, issue 18)
SETUP_S = 0.5  # seconds assumed for the first import of HiGHS: a first refinement starts only if twice this fits
MIN_CPU_SHARE = 0.25  # a MILP solve's limit is solve_time / (its share of a CPU), at most 4x solve_time
POOL_MIN_NNZ = 20_000  # worker processes only for layers whose model has this many matrix entries (eran: 36k+)
BUILD_S_PER_NNZ = 2e-6  # seconds per matrix entry of building an LP, until measured (eran's 157k: 0.09-0.25 s)


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


def _highs_loaded() -> bool:
    """Whether HiGHS and scipy.sparse are imported already (refining costs no import)."""
    return "scipy.sparse" in sys.modules and ("highspy" in sys.modules or "scipy.optimize._highspy" in sys.modules)


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
                  crown: bool = True, workers: int | None = None,
                  milp_layers: int | None = None) -> tuple[dict[int, tuple[Tensor, Tensor]], RefineStats]:
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
            the LP); a stopped solve still gives a valid bound. On a loaded machine a MILP
            solve's limit is stretched to about ``solve_time`` seconds of CPU (divided by the
            CPU share the solves got so far, at least :data:`MIN_CPU_SHARE`): HiGHS's limit
            is wall time, and a solve cut short before its root cuts improves nothing.
        workers: processes that solve a layer's neurons in parallel
            (:mod:`~certkit.core.bounds.lp_workers`; ``None``: the CPUs this process may use,
            at most 8; 1: in this process). Used for layers whose model has at least
            :data:`POOL_MIN_NNZ` matrix entries and twice as many neurons as workers, once
            starting them fits before the deadline; workers that fail leave their layer to
            this process. The deadline holds: past it, solves still running are abandoned
            and their workers killed.
        milp_layers: ``"milp"`` only: binaries for the unstable ReLUs of the last
            ``milp_layers`` layers before the refined one, the earlier ones triangle-relaxed
            (a partial MILP: a valid relaxation, weaker, cheaper per solve); ``None``: all.
        crown: after each refined layer, CROWN again from all the bounds so far (cheap:
            one backward pass per later layer's unstable neurons; intersected, so never
            looser): the next layer's LP starts from those, with fewer unstable neurons.

    Returns the bounds with every refined neuron's interval intersected with its given one
    (never looser) and a :class:`RefineStats`. An unsupported graph or a missing scipy
    returns ``bounds`` unchanged (``stats.stopped`` says why)."""
    if method not in ("lp", "milp"):
        raise ValueError(f"method: expected 'lp' or 'milp', got {method!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers: expected an integer >= 1 or None, got {workers!r}")
    if milp_layers is not None and (isinstance(milp_layers, bool) or not isinstance(milp_layers, int)
                                    or milp_layers < 1):
        raise ValueError(f"milp_layers: expected an integer >= 1 or None, got {milp_layers!r}")
    t0 = time.perf_counter()
    stats = RefineStats()
    out = dict(bounds)
    end0 = deadline if budget is None else (t0 + budget if deadline is None else min(deadline, t0 + budget))
    if not fits(end0, 0.01 if _highs_loaded() else SETUP_S):  # (HiGHS's first import took 0.5 s at load 6)
        stats.stopped, stats.resume = "budget", max(first, 1)
        return out, stats
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
    cpu_share = 1.0  # the CPU time / wall time of the MILP solves so far (running average)
    over = OVERRUN  # the worst ratio of a solve's duration to its time limit so far (at least OVERRUN)
    build_nnz_s = BUILD_S_PER_NNZ  # seconds per matrix entry of building and passing an LP (measured after the first)
    last = len(layers) if n_layers is None else min(len(layers), max(first, 1) + n_layers)
    pool: Pool | None = None
    n_work = default_workers() if workers is None else workers
    try:
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
            rec = {"unstable": float(unst.size), "improved": 0.0, "stabilised": 0.0}
            # the from-layer of the binaries (partial MILP: the last milp_layers layers before k)
            mf = 0 if milp_layers is None else max(0, k - milp_layers)
            if pool is None and n_work > 1 and unst.size >= 2 * n_work and nnz >= POOL_MIN_NNZ and fits(end, POOL_START_S):
                try:
                    pool = Pool(n_work, [(ly.W, ly.b) for ly in layers[:last]], x_lo, x_hi)
                except OSError:  # no processes to be had: solved here
                    n_work = 1
            lp: _LP | None = None
            if pool is not None and unst.size >= 2 and pool.alive:
                if not pool.build(k, lb[:k], ub[:k], milp, mf, dict(SOLVER_OPTIONS), end) and \
                        not fits(end, build_nnz_s * nnz):
                    stats.stopped, stats.resume = "budget", k
                    break
            if pool is None or not pool.alive or unst.size < 2:  # (workers that failed: solved here)
                lp = _LP(layers, k, x_lo, x_hi, lb, ub, hc, milp, mf, SOLVER_OPTIONS)
            build_nnz_s = max(build_nnz_s, (time.perf_counter() - t1) / max(nnz, 1))
            W, b = layers[k].W, layers[k].b
            # the side nearer 0 first; the other side next, unless the first made the neuron stable
            jobs = deque((j, bool(-l[j] <= u[j]), True) for j in unst.tolist())
            waiting: list[tuple[int, bool, bool, float]] = []  # solves handed out, not answered: (j, low, first, limit)
            while jobs or waiting:
                # idle workers; in this process one solve at a time
                for i in (pool.idle() if lp is None and pool is not None else [] if waiting else [0]):
                    if not jobs:
                        break
                    if not fits(end, solve_s):
                        jobs.clear()  # no new solve (those running finish)
                        stats.stopped = "budget"
                        break
                    j, low, first_side = jobs.popleft()
                    # (a MILP solve's limit in seconds of CPU: stretched by the share of a CPU solves got)
                    lim = per_solve / cpu_share
                    left = lim if end is None else min(lim, (end - time.perf_counter()) / (2.0 * over))
                    waiting.append((j, low, first_side, left))
                    if lp is None and pool is not None:
                        pool.submit(i, waiting[-1], j, low, left)
                if not waiting:
                    stats.stopped = stats.stopped or "workers failed"
                    break
                if lp is not None:  # in this process
                    tag = waiting.pop()
                    t2, c2 = time.perf_counter(), time.process_time()
                    v = neuron_lower(lp, W, b, tag[0], tag[1], tag[3])
                    done = [(tag, v, time.perf_counter() - t2, time.process_time() - c2)]
                else:
                    got = pool.collect(end) if pool is not None else None
                    if got is None:  # the deadline passed with solves running: the workers were killed
                        stats.stopped = "budget"
                        break
                    done = got
                    for tag, *_ in done:
                        waiting.remove(tag)
                for (j, low, first_side, left), v, dt, cpu in done:
                    stats.lps += 1
                    if milp and dt > 0.05:
                        cpu_share = 0.7 * cpu_share + 0.3 * min(1.0, max(MIN_CPU_SHARE, cpu / dt))
                    over = max(over, dt / max(left, 1e-3))
                    solve_s = dt if solve_s is None else max(0.8 * solve_s + 0.2 * dt, dt if method == "lp" else 0.0)
                    if math.isfinite(v):
                        err = 4 * _U * (abs(v) + abs(b[j]))  # the rounding of adding the bias
                        if low and v + b[j] - err > l[j]:
                            l[j] = v + b[j] - err
                            rec["improved"] += 1
                        elif not low and -v + b[j] + err < u[j]:
                            u[j] = -v + b[j] + err
                            rec["improved"] += 1
                    if l[j] >= 0 or u[j] <= 0:
                        rec["stabilised"] += 1  # stable now: the other side does not change its relaxation
                    elif first_side:
                        jobs.appendleft((j, not low, False))
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
    finally:
        if pool is not None:
            pool.close()
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
