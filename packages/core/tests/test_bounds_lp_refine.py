"""LP / MILP refinement of intermediate bounds (certkit.core.bounds.lp_refine) against an
exact reference.

The reference for a pre-activation's extremes enumerates the activation patterns of the
layers before it (neurons stable under interval bounds fixed): on each pattern the net is
affine and its region a polytope, so one LP per pattern gives the exact minimum; the
overall minimum is the least of them. Refined bounds must contain it (float64 and float32
nets), never be looser than the given ones, and keep their time budget; a planted sign
error in the weak-duality residual must produce a bound that excludes the exact extreme.
ReLU splitting with refinement on must still return the exact verdicts.
"""

from __future__ import annotations

import itertools
import time
from typing import ClassVar

import numpy as np
import pytest
import torch
from _bab_ref import random_mlp
from torch import nn

from certkit.core.bounds import lp_refine, lp_workers
from certkit.core.bounds.graph import Graph
from certkit.core.bounds.lp_refine import refine_bounds, relu_chain, safe_lower
from certkit.core.bounds.model import BoundedModel
from certkit.core.bounds.relu_bab import relu_split
from certkit.core.bounds.vnnlib import Clause, Property
from certkit.core.bounds.vnnlib_verify import verify_property

optimize = pytest.importorskip("scipy.optimize")
sparse = pytest.importorskip("scipy.sparse")
if lp_refine._highs() is None:
    pytest.skip("scipy without its bundled HiGHS", allow_module_level=True)


def _net(seed: int, sizes: tuple[int, ...], dtype: torch.dtype = torch.float64) -> nn.Sequential:
    return random_mlp(seed, sizes, 0.3, dtype)


def _crown_bounds(net: nn.Module, lo: torch.Tensor, hi: torch.Tensor) -> tuple[Graph, dict]:  # type: ignore[type-arg]
    """IBP then CROWN intermediate bounds (1, n) of every node, as relu_split's root."""
    from certkit.core.bounds.relu_bab import _Problem

    K = net(lo.unsqueeze(0)).shape[1]
    P = _Problem(net, (lo.numel(),), lo, hi, torch.zeros(1, 1, K, dtype=lo.dtype), torch.zeros(1, 1, dtype=lo.dtype),
                 torch.ones(1, 1, dtype=torch.bool))
    ctx = P.ctx(1)
    with torch.no_grad():
        ctx.fill_ibp()
        ctx.fill_crown_intermediate()
    return P.g, {i: b for i, b in ctx.bounds.items() if 0 < i < P.g.output}


def _exact_extremes(net: nn.Sequential, lo: np.ndarray, hi: np.ndarray, layer: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact min / max of every neuron of the ``layer``-th pre-activation (0-based) over the
    box: enumerate the activation patterns of the layers before it, one LP per pattern."""
    lin = [m for m in net if isinstance(m, nn.Linear)]
    Ws = [m.weight.detach().double().numpy() for m in lin]
    bs = [m.bias.detach().double().numpy() for m in lin]
    # stable neurons under IBP keep their state; the others are enumerated
    al, au = lo, hi
    fixed: list[np.ndarray] = []
    for W, b in zip(Ws[:layer], bs[:layer]):
        zl = np.clip(W, 0, None) @ al + np.clip(W, None, 0) @ au + b
        zu = np.clip(W, 0, None) @ au + np.clip(W, None, 0) @ al + b
        fixed.append(np.where(zl >= 0, 1, np.where(zu <= 0, 0, -1)))
        al, au = np.clip(zl, 0, None), np.clip(zu, 0, None)
    free = [np.nonzero(f < 0)[0] for f in fixed]
    nfree = sum(f.size for f in free)
    assert nfree <= 12, nfree
    n_out = bs[layer].size
    mn, mx = np.full(n_out, np.inf), np.full(n_out, -np.inf)
    for bits in itertools.product((0, 1), repeat=nfree):
        pos = 0
        # affine map x -> z_i (M, c) and the pattern's sign constraints G x <= h
        M, c = np.eye(lo.size), np.zeros(lo.size)
        G, h = [], []
        for i, (W, b) in enumerate(zip(Ws[:layer], bs[:layer])):
            Mz, cz = W @ M, W @ c + b
            s = fixed[i].astype(float).copy()
            for j in free[i]:
                s[j] = bits[pos]
                pos += 1
            for j in range(b.size):  # active: z >= 0; inactive: z <= 0
                sg = -1.0 if s[j] == 1 else 1.0
                G.append(sg * Mz[j])
                h.append(-sg * cz[j])
            M, c = Mz * s[:, None], cz * s
        Mk, ck = Ws[layer] @ M, Ws[layer] @ c + bs[layer]
        for j in range(n_out):
            for sgn in (1.0, -1.0):
                res = optimize.linprog(sgn * Mk[j], A_ub=np.array(G) if G else None, b_ub=np.array(h) if h else None,
                                       bounds=list(zip(lo, hi)), method="highs")
                if res.status == 2:
                    break  # the pattern's region is empty
                assert res.status == 0, res.message
                v = sgn * res.fun + ck[j]
                if sgn > 0:
                    mn[j] = min(mn[j], v)
                else:
                    mx[j] = max(mx[j], v)
            else:
                continue
            break
    return mn, mx


_SIZES = (3, 5, 5, 4, 2)
_REF: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}  # type: ignore[type-arg]


def _exact(key: tuple, net: nn.Sequential, lo: np.ndarray, hi: np.ndarray, layer: int  # type: ignore[type-arg]
           ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_exact_extremes`, computed once per key."""
    if key not in _REF:
        _REF[key] = _exact_extremes(net, lo, hi, layer)
    return _REF[key]


class _CountingPool(lp_workers.Pool):
    """lp_workers.Pool that records its instances (were workers used? are they gone?)."""

    made: ClassVar[list[lp_workers.Pool]] = []

    def __init__(self, *a: object) -> None:
        super().__init__(*a)  # type: ignore[arg-type]
        _CountingPool.made.append(self)


def _pool_always(monkeypatch: pytest.MonkeyPatch) -> list[lp_workers.Pool]:
    """Worker processes for every layer, however small; the pools made."""
    monkeypatch.setattr(lp_refine, "POOL_MIN_NNZ", 0)
    monkeypatch.setattr(lp_refine, "Pool", _CountingPool)
    monkeypatch.setattr(_CountingPool, "made", [])
    return _CountingPool.made


@pytest.mark.parametrize("method,mode,dtype", [
    (m, mode, dt) for m, mode in (("lp", "one"), ("milp", "one"), ("lp", "workers"), ("milp", "workers"),
                                  ("milp", "partial"))
    for dt in (torch.float64, torch.float32) if mode != "workers" or dt == torch.float64])  # (same rounding code)
def test_refined_bounds_contain_the_exact_extremes(method: str, mode: str, dtype: torch.dtype,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # mode: one process; two worker processes (every layer); a partial MILP (binaries in the last layer only)
    made: ClassVar[list[lp_workers.Pool]] = []
    if mode == "workers":
        made = _pool_always(monkeypatch)
    kw = {"workers": 2 if mode == "workers" else 1, "milp_layers": 1 if mode == "partial" else None}
    tighter = 0
    for seed in range(3 if dtype == torch.float64 else 2):
        net = _net(seed, _SIZES, dtype)
        rng = np.random.default_rng(seed)
        c0 = rng.uniform(-1, 1, _SIZES[0])
        lo_np, hi_np = c0 - 0.6, c0 + 0.6
        lo, hi = torch.tensor(lo_np, dtype=dtype), torch.tensor(hi_np, dtype=dtype)
        g, given = _crown_bounds(net, lo, hi)
        out, st = refine_bounds(g, lo, hi, given, method=method, **kw)  # type: ignore[arg-type]
        layers = relu_chain(g)
        assert layers is not None and st.lps > 0
        for k, ly in enumerate(layers):
            mn, mx = _exact((seed, str(dtype), k), net, lo_np, hi_np, k)
            l, u = (t.reshape(-1).double().numpy() for t in out[ly.node])  # noqa: E741
            gl, gu = (t.reshape(-1).double().numpy() for t in given[ly.node])
            assert out[ly.node][0].dtype == dtype
            assert np.all(l >= gl) and np.all(u <= gu)  # never looser than the given bounds
            # sound: the exact extremes lie inside (float32 nets: their own rounding, ~1e-6)
            tol = 1e-9 if dtype == torch.float64 else 1e-5
            assert np.all(l <= mn + tol * (1 + np.abs(mn))), (k, l - mn)
            assert np.all(u >= mx - tol * (1 + np.abs(mx))), (k, mx - u)
            tighter += int(np.sum(l > gl + 1e-9) + np.sum(u < gu - 1e-9))
    assert tighter >= 5  # the refinement did something (CROWN is looser than the LP here)
    assert (len(made) > 0) == (mode == "workers")
    assert all(p.procs and all(q.poll() is not None for q in p.procs) for p in made)  # the workers ended


def test_safe_lower_holds_for_any_multipliers() -> None:
    # weak duality: any λ gives a lower bound of the LP's minimum, the optimal λ a tight one
    rng = np.random.default_rng(0)
    for _ in range(20):
        m, n = 6, 5
        A = rng.normal(size=(m, n))
        x0 = rng.uniform(-1, 1, n)
        L = np.where(rng.random(m) < 0.5, -np.inf, A @ x0 - rng.uniform(0, 1, m))
        U = A @ x0 + rng.uniform(0, 1, m)
        vl, vu = x0 - 1, x0 + 1
        c = rng.normal(size=n)
        ref = optimize.linprog(c, A_ub=np.vstack([A, -A[np.isfinite(L)]]), b_ub=np.concatenate([U, -L[np.isfinite(L)]]),
                               bounds=list(zip(vl, vu)), method="highs")
        assert ref.status == 0
        As = sparse.csr_matrix(A)
        for lam in [rng.normal(size=m) for _ in range(10)] + [np.zeros(m)]:
            assert safe_lower(c, As, L, U, vl, vu, lam) <= ref.fun + 1e-12


def _violations(method: str = "lp") -> tuple[int, int]:
    """(neurons whose refined interval excludes an exact extreme, bounds tightened) over 3 nets."""
    bad = tight = 0
    for seed in range(3):
        net = _net(seed, _SIZES)
        rng = np.random.default_rng(seed)
        c0 = rng.uniform(-1, 1, _SIZES[0])
        lo, hi = torch.tensor(c0 - 0.6), torch.tensor(c0 + 0.6)
        g, given = _crown_bounds(net, lo, hi)
        out, _ = refine_bounds(g, lo, hi, given, method=method)
        for k, ly in enumerate(relu_chain(g) or []):
            mn, mx = _exact((seed, str(torch.float64), k), net, lo.numpy(), hi.numpy(), k)
            l, u = (t.reshape(-1).numpy() for t in out[ly.node])  # noqa: E741
            gl, gu = (t.reshape(-1).numpy() for t in given[ly.node])
            bad += int(np.sum(l > mn + 1e-9) + np.sum(u < mx - 1e-9))
            tight += int(np.sum(l > gl) + np.sum(u < gu))
    return bad, tight


def test_a_stopped_solve_still_gives_valid_bounds_and_its_primal_objective_does_not(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # HiGHS's primal simplex stopped after 3 iterations: its row duals are not optimal, yet
    # the weak-duality bound computed from them is valid; the solver's objective at that point
    # (a primal value: the planted bug "bound = primal objective") is not a lower bound.
    # (The dual simplex's objective would be a valid bound in most stops: primal simplex.)
    monkeypatch.setattr(lp_refine, "SOLVER_OPTIONS", {"simplex_iteration_limit": 3, "simplex_strategy": 4})
    bad, _ = _violations()
    assert bad == 0

    def primal(self: lp_refine._LP, w: np.ndarray, time_limit: float, stop_at: float | None = None) -> float:
        keep = self.a_cols >= 0
        c = np.zeros(self.ncol)
        np.add.at(c, self.a_cols[keep], w[keep])
        self.h.changeColsCost(self.ncol, self.idx, c)
        self.h.run()
        return float(self.h.getInfo().objective_function_value)

    monkeypatch.setattr(lp_refine._LP, "lower", primal)
    bad, _ = _violations()
    assert bad > 0


def test_budget_is_kept_and_unsupported_graphs_are_left_alone() -> None:
    net = _net(7, (40, 60, 60, 60, 60, 3))
    lo, hi = -torch.ones(40, dtype=torch.float64), torch.ones(40, dtype=torch.float64)
    g, given = _crown_bounds(net, lo, hi)
    t0 = time.perf_counter()
    _, st = refine_bounds(g, lo, hi, given, method="milp", budget=0.6)
    assert time.perf_counter() - t0 < 0.6 + 0.5
    assert st.stopped == "budget" and st.lps > 0
    t0 = time.perf_counter()
    _, st = refine_bounds(g, lo, hi, given, method="lp", deadline=time.perf_counter() + 0.15)  # (all of it: 0.3-0.4 s)
    assert time.perf_counter() - t0 < 0.15 + 0.5 and st.stopped == "budget"
    # a Sigmoid net is not a chain of ReLU layers: returned unchanged
    sig = nn.Sequential(nn.Linear(3, 4), nn.Sigmoid(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)).double()
    lo3, hi3 = -torch.ones(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    g3, given3 = _crown_bounds(sig, lo3, hi3)
    out3, st3 = refine_bounds(g3, lo3, hi3, given3)
    assert st3.stopped.startswith("not a chain") and all(out3[i] is given3[i] for i in given3)
    # convolutions are not densified (a conv net is left alone)
    conv = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3), nn.ReLU(), nn.Linear(3, 2)).double()
    assert relu_chain(BoundedModel(conv, (1, 4, 4)).graph) is None
    with pytest.raises(ValueError, match="method"):
        refine_bounds(g3, lo3, hi3, given3, method="mip")


def test_a_solve_that_overruns_its_time_limit_does_not_overrun_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    # HiGHS checks its clock only between cut rounds / LPs: under load a MILP solve ran 3-10x
    # its time limit (issue 18). Simulated: every solve takes 6x its limit. The per-solve limit
    # is cut by the worst overrun assumed / seen, so the budget holds (the old code gave the
    # first solve half the time left and returned ~1.5 s late).
    orig = lp_refine._LP.lower

    def slow(self: lp_refine._LP, w: np.ndarray, time_limit: float, *a: float | None) -> float:
        t = time.perf_counter()
        v = orig(self, w, time_limit, *a)
        time.sleep(max(0.0, 6.0 * min(time_limit, 10.0) - (time.perf_counter() - t)))
        return v

    monkeypatch.setattr(lp_refine._LP, "lower", slow)
    net = _net(7, (40, 60, 60, 60, 60, 3))
    lo, hi = -torch.ones(40, dtype=torch.float64), torch.ones(40, dtype=torch.float64)
    g, given = _crown_bounds(net, lo, hi)
    for method, kw in (("milp", {"budget": 1.5}), ("lp", {"deadline": time.perf_counter() + 1.5})):
        t0 = time.perf_counter()
        _, st = refine_bounds(g, lo, hi, given, method=method, **kw)  # type: ignore[arg-type]
        assert time.perf_counter() - t0 < 1.5 + 0.3, method
        assert st.stopped == "budget" and st.lps > 0


def test_worker_processes_keep_the_deadline_when_their_solves_overrun(monkeypatch: pytest.MonkeyPatch) -> None:
    # every worker's solve takes 30 s (HiGHS past its limit, simulated): the refinement
    # still returns at its deadline with the bounds it has, and the workers are killed
    made = _pool_always(monkeypatch)
    monkeypatch.setattr(lp_refine, "SOLVER_OPTIONS", {"certkit_delay_s": 30.0})
    net = _net(7, (40, 60, 60, 60, 3))
    lo, hi = -torch.ones(40, dtype=torch.float64), torch.ones(40, dtype=torch.float64)
    g, given = _crown_bounds(net, lo, hi)
    t0 = time.perf_counter()
    out, st = refine_bounds(g, lo, hi, given, method="milp", workers=2, deadline=t0 + 2.5)
    assert time.perf_counter() - t0 < 2.5 + 0.5
    assert st.stopped == "budget" and st.lps == 0 and st.resume == 1
    assert all(torch.equal(out[i][0], given[i][0]) and torch.equal(out[i][1], given[i][1]) for i in given)
    assert len(made) == 1 and all(q.poll() is not None for q in made[0].procs)


def test_crashed_workers_leave_the_solves_to_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    made = _pool_always(monkeypatch)
    monkeypatch.setattr(lp_refine, "SOLVER_OPTIONS", {"certkit_exit": True})  # every worker dies at the build
    net = _net(7, (40, 60, 60, 3))
    lo, hi = -torch.ones(40, dtype=torch.float64), torch.ones(40, dtype=torch.float64)
    g, given = _crown_bounds(net, lo, hi)
    ref, st1 = refine_bounds(g, lo, hi, given, method="lp", workers=1)
    out, st = refine_bounds(g, lo, hi, given, method="lp", workers=2)
    assert len(made) == 1 and st.lps == st1.lps > 0 and st.stopped == ""
    assert all(torch.allclose(out[i][j], ref[i][j], atol=1e-9) for i in given for j in (0, 1))


def test_a_partial_milp_has_binaries_only_in_its_last_layers() -> None:
    net = _net(2, (6, 12, 12, 12, 12, 2))
    lo, hi = -torch.ones(6, dtype=torch.float64), torch.ones(6, dtype=torch.float64)
    g, given = _crown_bounds(net, lo, hi)
    layers = relu_chain(g)
    assert layers is not None
    lb = [given[ly.node][0].reshape(-1).numpy() for ly in layers]
    ub = [given[ly.node][1].reshape(-1).numpy() for ly in layers]
    unst = [int(((a < 0) & (b > 0)).sum()) for a, b in zip(lb, ub)]
    x = lo.numpy(), hi.numpy()
    for frm in (0, 2, 3):
        lp = lp_refine._LP(layers, 4, *x, lb, ub, lp_refine._highs(), True, frm)
        n_int = sum(int(t == lp.hc.HighsVarType.kInteger) for t in lp.h.getLp().integrality_)
        assert n_int == sum(unst[frm:4]) > 0, (frm, n_int, unst)


def test_vnncomp_with_several_instance_workers_refines_in_one_process(monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path: object) -> None:
    from certkit.core.bounds import vnncomp

    seen: list[dict] = []  # type: ignore[type-arg]

    def fake_run(factory: object, idx: object, **k: object) -> list[dict]:  # type: ignore[type-arg]
        seen.append(factory.args[3])  # type: ignore[attr-defined]
        return []

    monkeypatch.setattr(vnncomp, "read_instances", lambda d: [])
    monkeypatch.setattr(vnncomp, "find_instances_csv", lambda d: __file__)
    monkeypatch.setattr(vnncomp, "run", fake_run)
    for workers, kw, want in ((2, {"refine": "milp"}, 1), (None, {"refine": "milp"}, None),
                              (2, {"refine": "milp", "refine_workers": 3}, 3)):
        vnncomp.run_category(".", out=f"{tmp_path}/r{len(seen)}.csv", rows=[], workers=workers, relu_split_kw=kw)
        assert seen[-1]["relu_split_kw"].get("refine_workers") == want
    assert vnncomp._refine_kw("milp", 2) == {"relu_split_kw": {"refine": "milp", "refine_workers": 2}}
    with pytest.raises(ValueError, match="refine_workers"):
        vnncomp._refine_kw("milp", 0)
    lo, hi = -torch.ones(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    g, given = _crown_bounds(_net(0, (3, 4, 4, 2)), lo, hi)
    for bad in ({"workers": 0}, {"milp_layers": 0}, {"workers": True}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            refine_bounds(g, lo, hi, given, **bad)  # type: ignore[arg-type]


def test_milp_solves_that_get_little_cpu_get_longer_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    # HiGHS's time limit is wall time: on a loaded machine a solve got a fraction of a CPU
    # (simulated: 0.15 s asleep after each solve) and stopped before its root cuts; the
    # limits of later solves are stretched by the CPU share seen (old code: all 0.05 s)
    limits: list[float] = []
    orig = lp_refine._LP.lower

    def starved(self: lp_refine._LP, w: np.ndarray, time_limit: float, *a: float | None) -> float:
        limits.append(time_limit)
        v = orig(self, w, time_limit, *a)
        time.sleep(0.15)
        return v

    monkeypatch.setattr(lp_refine._LP, "lower", starved)
    net = _net(7, (20, 30, 30, 3))
    lo, hi = -torch.ones(20, dtype=torch.float64), torch.ones(20, dtype=torch.float64)
    g, given = _crown_bounds(net, lo, hi)
    _, st = refine_bounds(g, lo, hi, given, method="milp", workers=1, solve_time=0.05, max_neurons=4, budget=20)
    assert st.lps >= 4 and limits[0] == pytest.approx(0.05)
    assert max(limits) > 1.5 * 0.05 and max(limits) <= 0.05 / lp_refine.MIN_CPU_SHARE + 1e-9, limits


def test_a_budget_too_short_to_start_returns_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # eran 2954 at --timeout 25: the refinement got 0.28 s and took 0.8 s, most of it the first
    # import of HiGHS (simulated: 1 s); now nothing starts unless 2 x SETUP_S fits
    def slow_import() -> object:
        time.sleep(1.0)
        return None

    monkeypatch.setattr(lp_refine, "_highs", slow_import)
    monkeypatch.setattr(lp_refine, "_highs_loaded", lambda: False)
    net = _net(7, (10, 20, 20, 3))
    lo, hi = -torch.ones(10, dtype=torch.float64), torch.ones(10, dtype=torch.float64)
    g, given = _crown_bounds(net, lo, hi)
    for kw in ({"budget": 0.4}, {"deadline": time.perf_counter() + 0.4}):
        t0 = time.perf_counter()
        out, st = refine_bounds(g, lo, hi, given, method="milp", **kw)  # type: ignore[arg-type]
        assert time.perf_counter() - t0 < 0.2 and st.stopped == "budget" and st.resume == 1 and out == given


def test_a_layer_lp_whose_building_cannot_end_in_time_is_not_built(monkeypatch: pytest.MonkeyPatch) -> None:
    # building a layer's LP (its matrix grows with the layers before it) was not deadline-checked:
    # simulated slow builds (time per matrix entry); the first layer's build is measured, the
    # second one (10x the entries) would end past the budget, so it is not started
    orig = lp_refine._LP.__init__

    def slow(self: lp_refine._LP, *a: object, **k: object) -> None:
        orig(self, *a, **k)  # type: ignore[arg-type]
        time.sleep(2e-4 * self.A.nnz)

    monkeypatch.setattr(lp_refine._LP, "__init__", slow)
    net = _net(3, (10, 100, 100, 100, 3))
    lo, hi = -torch.ones(10, dtype=torch.float64), torch.ones(10, dtype=torch.float64)
    g, given = _crown_bounds(net, lo, hi)
    t0 = time.perf_counter()
    _, st = refine_bounds(g, lo, hi, given, method="lp", budget=1.2, max_neurons=3)
    assert time.perf_counter() - t0 < 1.2 + 0.3
    assert st.stopped == "budget" and st.lps > 0 and len(st.layers) == 1


def _fold(net: nn.Sequential, c: np.ndarray) -> nn.Sequential:
    """The net with its last linear layer replaced by c·(W a + b) (one output)."""
    last = net[-1]
    fold = nn.Linear(last.in_features, 1).double()
    with torch.no_grad():
        fold.weight.copy_(torch.tensor(c).reshape(1, -1) @ last.weight)
        fold.bias.copy_(torch.tensor(c) @ last.bias)
    return nn.Sequential(*list(net)[:-1], fold).eval()


def _verdict_cases(n: int) -> list[tuple]:  # type: ignore[type-arg]
    """(net, lo, hi, c, d): "some x in the box has c·f(x) <= d" is sat for odd cases (d is
    0.03 above the exact minimum) and unsat for even ones (0.03 below)."""
    rng = np.random.default_rng(5)
    out = []
    for s in range(n):
        net = _net(50 + s, (4, 5, 5, 3))
        c0 = rng.uniform(-1, 1, 4)
        lo, hi = c0 - 0.5, c0 + 0.5
        c = rng.normal(size=3)
        mn, _ = _exact(("fold", s), _fold(net, c), lo, hi, 2)
        out.append((net, lo, hi, c, float(mn[0]) + (0.03 if s % 2 else -0.03)))
    return out


@pytest.mark.parametrize("refine", ["lp", "milp"])
def test_relu_split_with_refinement_returns_the_exact_verdicts(refine: str) -> None:
    wrong = []
    solved = 0
    for s, (net, lo, hi, c, d) in enumerate(_verdict_cases(4)):
        r = relu_split(net, (4,), torch.tensor(lo), torch.tensor(hi), torch.tensor(c).reshape(1, 1, 3),
                       torch.tensor([[d]]), deadline=time.perf_counter() + 20, refine=refine, pgd_steps=0,
                       attack_domains=1, batch=8)
        want = "sat" if s % 2 else "unsat"
        if r.status != want:
            wrong.append((s, r.status, want))
        assert "root_bounds" in r.stats
        solved += r.stats["refine"].lps if "refine" in r.stats else 0
    assert wrong == []
    assert solved > 0  # the refinement ran (on the cases the root bound did not close)


def test_a_deep_root_margin_gets_the_deep_refinement_share(monkeypatch: pytest.MonkeyPatch) -> None:
    # a root margin bound below -REFINE_DEEP refines for REFINE_SHARE_DEEP (0.8) of the time
    # left, a shallower one for refine_share (0.4); the margins are read as deep / shallow by
    # moving the threshold (old code: 0.4 whatever the margin)
    from certkit.core.bounds import relu_bab

    seen: list[float] = []

    def capture(g: object, lo: object, hi: object, bounds: dict, **k: float) -> tuple:  # type: ignore[type-arg]
        seen.append(k["budget"] / (k["deadline"] - time.perf_counter()))
        return bounds, lp_refine.RefineStats()

    monkeypatch.setattr(lp_refine, "refine_bounds", capture)
    shares = []
    for deep in (-1e9, 1e9):  # every margin deep / none deep
        monkeypatch.setattr(relu_bab, "REFINE_DEEP", deep)
        seen.clear()
        for net, lo, hi, c, d in _verdict_cases(4)[::2]:  # (the unsat ones)
            r = relu_split(net, (4,), torch.tensor(lo), torch.tensor(hi), torch.tensor(c).reshape(1, 1, 3),
                           torch.tensor([[d]]), deadline=time.perf_counter() + 20, refine="milp", pgd_steps=0,
                           attack_domains=1, batch=8, max_domains=2)
            if seen:
                assert "root_lb" in r.stats
                break
        assert seen
        shares.append(seen[0])
    assert 0.79 <= shares[0] <= 0.81 and 0.39 <= shares[1] <= 0.41, shares


def test_verify_property_refines_open_disjuncts_and_keeps_the_exact_verdicts(monkeypatch: pytest.MonkeyPatch) -> None:
    # a disjunct left open after the quick search is searched again from MILP-refined
    # bounds; the later disjuncts over the same box reuse them (refinement runs once)
    calls = []
    real = lp_refine.refine_bounds

    def counting(*a, **k):  # type: ignore[no-untyped-def]
        calls.append(k.get("method"))
        return real(*a, **k)

    monkeypatch.setattr(lp_refine, "refine_bounds", counting)
    for s, (net, lo, hi, c, d) in enumerate(_verdict_cases(4)):
        # two disjuncts over one box: the property's row and one that never holds
        prop = Property(n_inputs=4, n_outputs=3, clauses=[
            Clause(lo=lo, hi=hi, C=c.reshape(1, 3), d=np.array([d])),
            Clause(lo=lo, hi=hi, C=np.array([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]]), d=np.array([-1.0, -1.0]))])
        r = verify_property(net, (4,), prop, timeout=20, pgd_steps=0, methods=("IBP",), input_split_max_dims=0,
                            relu_split_kw={"refine": "milp", "quick_share": 1e-6, "pgd_steps": 0, "attack_domains": 1})
        assert r.status == ("sat" if s % 2 else "unsat"), (s, r)
    assert 1 <= len(calls) <= 4 and set(calls) == {"milp"}, calls


def test_a_root_too_deep_for_the_search_goes_to_the_refinement_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # relu_split(give_up_below=) returns unknown right after a root bound below it; the
    # quick search of verify_property passes -REFINE_DEEP, so a deep root is refined without
    # spending quick_share on a search (every open root read as deep here: same verdicts)
    from certkit.core.bounds import relu_bab

    net, lo, hi, c, d = _verdict_cases(4)[0]
    args = (net, (4,), torch.tensor(lo), torch.tensor(hi), torch.tensor(c).reshape(1, 1, 3), torch.tensor([[d]]))
    r = relu_split(*args, deadline=time.perf_counter() + 20, give_up_below=1e9, pgd_steps=0)
    assert r.status == "unknown" and r.boxes == 1 and "root_lb" in r.stats and "root_bounds" in r.stats
    quick: list[tuple[str, int]] = []
    real = relu_bab.relu_split

    def spy(*a, **k):  # type: ignore[no-untyped-def]
        r = real(*a, **k)
        if "refine" not in k:
            quick.append((r.status, r.boxes))
        return r

    monkeypatch.setattr(relu_bab, "relu_split", spy)
    monkeypatch.setattr(relu_bab, "REFINE_DEEP", -1e9)
    for s, (net, lo, hi, c, d) in enumerate(_verdict_cases(4)):
        prop = Property(n_inputs=4, n_outputs=3, clauses=[Clause(lo=lo, hi=hi, C=c.reshape(1, 3), d=np.array([d]))])
        r = verify_property(net, (4,), prop, timeout=20, pgd_steps=0, methods=("IBP",), input_split_max_dims=0,
                            relu_split_kw={"refine": "milp", "pgd_steps": 0, "attack_domains": 1})
        assert r.status == ("sat" if s % 2 else "unsat"), (s, r)
    assert quick and all(q == ("unknown", 1) for q in quick if q[0] != "unsat"), quick
    assert any(q == ("unknown", 1) for q in quick), quick


def test_a_later_disjunct_resumes_a_refinement_cut_short(monkeypatch: pytest.MonkeyPatch) -> None:
    # the first disjunct's refinement ran out of time in layer 2: a later disjunct over the
    # same box that the quick search leaves open too refines again from layer 2 (before, the
    # box counted as refined and the layers after it never were); once a refinement got
    # through every layer, no later disjunct refines again
    firsts = []
    real = lp_refine.refine_bounds

    def cut_short(*a, **k):  # type: ignore[no-untyped-def]
        firsts.append(k.get("first", 1))
        out, st = real(*a, **k)
        if len(firsts) == 1:
            st.stopped, st.resume = "budget", 2
        return out, st

    monkeypatch.setattr(lp_refine, "refine_bounds", cut_short)
    net, lo, hi, c, d = _verdict_cases(1)[0]  # an unsat case
    prop = Property(n_inputs=4, n_outputs=3, clauses=[Clause(lo=lo, hi=hi, C=c.reshape(1, 3), d=np.array([d]))] * 3)
    r = verify_property(net, (4,), prop, timeout=20, pgd_steps=0, methods=("IBP",), input_split_max_dims=0,
                        relu_split_kw={"refine": "milp", "quick_share": 1e-6, "pgd_steps": 0, "attack_domains": 1})
    assert r.status == "unsat"
    assert firsts == [1, 2], firsts
    with pytest.raises(ValueError, match="refine_first"):
        relu_split(net, (4,), torch.tensor(lo), torch.tensor(hi), torch.tensor(c).reshape(1, 3),
                   torch.tensor([d]), refine="milp", refine_first=0)


def test_verify_property_does_not_refine_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    # refinement is opt-in (its MILP bounds rest on HiGHS's dual bound): a default run must
    # never call it, however long the search stays open
    calls = []
    monkeypatch.setattr(lp_refine, "refine_bounds", lambda *a, **k: calls.append(k) or (_ for _ in ()).throw(
        AssertionError("refine_bounds called")))
    net, lo, hi, c, d = _verdict_cases(1)[0]
    prop = Property(n_inputs=4, n_outputs=3, clauses=[Clause(lo=lo, hi=hi, C=c.reshape(1, 3), d=np.array([d]))])
    r = verify_property(net, (4,), prop, timeout=20, pgd_steps=0, methods=("IBP",), input_split_max_dims=0,
                        relu_split_kw={"quick_share": 1e-6, "pgd_steps": 0, "attack_domains": 1})
    assert r.status == "unsat" and not calls, (r, calls)
