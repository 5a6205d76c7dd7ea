"""The triangle (Planet) relaxation / big-M MILP of a chain of affine layers and ReLUs as
one HiGHS model, and the weak-duality bound that makes its LP answers rigorous: the
solver side of :mod:`~certkit.core.bounds.lp_refine` (see its docstring for the maths and
the references).

This module imports only numpy, scipy and HiGHS (no torch, nothing of certkit): the
refinement's worker processes (:mod:`~certkit.core.bounds.lp_workers`) load it by its file
path, so each starts in a fraction of a second.

Shapes: a layer's ``W`` is (n_k, n_{k-1}) float64 on the flattened ``a_{k-1}``, ``b`` (n_k,);
bounds are lists of (n_i,) float64 arrays; the input box ``x_lo``, ``x_hi`` (n,).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

_U = 2.0 ** -53  # unit roundoff of float64
MIP_TOL = 1e-6  # 10x HiGHS's dual feasibility tolerance (1e-7): the MILP bound's margin per unit width


@dataclass
class _Layer:
    node: int  # pre-activation node z_k
    W: np.ndarray  # (n_k, n_{k-1}) float64, on a_{k-1} (flattened)
    b: np.ndarray  # (n_k,)


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
    the unstable neurons; rows ``z_i - W_i a_{i-1} = b_i`` and the triangles. With ``milp``
    the unstable ReLUs of layers ``milp_from``..k-1 also get a binary (big-M, exact on them);
    those of earlier layers keep the triangle: a *partial* MILP, a valid relaxation of the
    full one (weaker, far cheaper per solve; as ERAN's refinement). ``options``: extra HiGHS
    options."""

    def __init__(self, layers: list[Any], k: int, x_lo: np.ndarray, x_hi: np.ndarray,
                 lb: list[np.ndarray], ub: list[np.ndarray], hc: Any, milp: bool = False,
                 milp_from: int = 0, options: dict[str, Any] | None = None) -> None:
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
                if milp and i >= milp_from:  # big-M: a <= z - l (1 - d) and a <= u d, with d binary (its LP relaxation is the triangle)
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
        for opt, val in (options or {}).items():
            if opt.startswith("certkit_"):  # (test hooks of lp_workers)
                continue
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


def neuron_lower(lp: _LP, W: np.ndarray, b: np.ndarray, j: int, low: bool, time_limit: float) -> float:
    """A lower bound of ``W[j]·a`` (``low``) or of ``-W[j]·a`` over ``lp``; a MILP solve
    stops once it proves neuron ``j`` stable (``l_j >= 0`` / ``u_j <= 0`` after adding
    ``b[j]``, past the margins): its objective cutoff (:meth:`_LP.lower`)."""
    thr = -b[j] if low else b[j]
    cut = None
    if lp.milp:
        cut = thr + 2.0 * lp.margin(thr) + 8 * _U * (abs(thr) + abs(b[j])) + 1e-12
    return lp.lower(W[j] if low else -W[j], time_limit, cut)
