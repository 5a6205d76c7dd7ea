"""Global optimum of a two-layer ReLU network via its convex reformulation, against gradient
training of the non-convex net (Pilanci & Ergen 2020, "Neural Networks are Convex Regularizers",
arXiv:2002.10553; the formulation that Bai, Gautam & Sojoudi 2022, "Efficient Global
Optimization of Two-layer ReLU Networks: Quadratic-time Algorithms and Adversarial Training",
arXiv:2201.01965, solve at scale).

Provenance: recalled, not read in this session (only the abstracts were reachable). Non-convex
problem, X (n, d) with a bias column, y (n,):

    min_{u_j, a_j}  1/2 || sum_j (X u_j)_+ a_j - y ||^2 + beta/2 sum_j (||u_j||^2 + a_j^2).

Convex program over the activation patterns D_i = diag(1[X g_i >= 0]) of the data:

    min_{v_i, w_i}  1/2 || sum_i D_i X (v_i - w_i) - y ||^2 + beta sum_i (||v_i|| + ||w_i||)
    s.t. (2 D_i - I) X v_i >= 0,  (2 D_i - I) X w_i >= 0.

Its optimum equals the non-convex global optimum once all patterns are present and the width
is large enough (the paper's theorem, recalled). Any feasible (v, w) maps to a network with the
same objective (derived: u = v/sqrt||v||, a = sqrt||v||, and -sqrt||w|| for w), so the convex
value is attained by a real network.

What we run: the patterns of a small 2-D dataset are enumerated by sampling many directions
(for n points in R^3 there are O(n^2) patterns, so dense sampling finds them all;
:func:`patterns` reports the count). The convex program is solved by accelerated proximal
gradient (FISTA with group soft-thresholding) on a quadratic penalty of the cone constraints
with an increasing penalty weight (our simple solver, not the paper's). :func:`closed_form`
returns the convex objective of that solution and :func:`simulate` builds the network and
evaluates its non-convex objective with real ReLUs (equal when the constraints hold), then
trains the non-convex net with full-batch Adam from random initialisations at several widths.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from certkit.core.validation import check_int, check_positive, check_seed
from certkit.theory._common import (
    TheoryCheckError,
    TheoryRun,
    assert_close,
    check_mode,
    new_figure,
    to_png,
)

NAME = "convex-relu"
TITLE = "Two-layer ReLU nets: convex program global optimum vs gradient training (Pilanci & Ergen 2020)"
CITATION = "arXiv:2002.10553"


def make_data(n: int = 16, seed: int = 0) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """n points uniform in [-1, 1]^2 with a bias column: X (n, 3); XOR-like targets y = sign(x1 x2)."""
    n = check_int(n, "n", minimum=2)
    rng = np.random.default_rng(check_seed(seed))
    z = rng.uniform(-1, 1, (n, 2))
    return np.c_[z, np.ones(n)], np.sign(z[:, 0] * z[:, 1])


def patterns(x: npt.NDArray[np.float64], n_dirs: int = 20000, seed: int = 0) -> npt.NDArray[np.float64]:
    """Distinct activation patterns 1[X g >= 0] over n_dirs Gaussian directions g: (P, n)."""
    g = np.random.default_rng(seed).standard_normal((x.shape[1], check_int(n_dirs, "n_dirs", minimum=1)))
    d = (x @ g >= 0).T.astype(np.float64)
    d = np.unique(d, axis=0)
    return d[d.sum(1) > 0]


def solve_convex(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], beta: float,
                 pats: npt.NDArray[np.float64], *, iters: int = 1500,
                 rhos: tuple[float, ...] = (1.0, 10.0, 100.0, 1e3, 1e4)) -> dict[str, Any]:
    """FISTA on the penalised convex program. Returns v, w (P, d), the convex objective and the
    largest cone-constraint violation."""
    beta = check_positive(beta, "beta")
    d_mat = pats.T                                        # (n, P)
    g_mat = 2 * d_mat - 1
    p, dim = pats.shape[0], x.shape[1]
    z = np.zeros((2, p, dim))                             # [v; w]
    prev, t = z.copy(), 1.0
    lip_a = np.linalg.norm(x, 2) ** 2 * p
    for rho in rhos:
        step = 1.0 / (2 * lip_a + rho * np.linalg.norm(x, 2) ** 2)
        t = 1.0
        prev = z.copy()
        for _ in range(iters):
            yk = z + (t - 1) / (t + 2) * (z - prev) if t > 1 else z
            m = x @ (yk[0] - yk[1]).T                     # (n, P)
            r = (d_mat * m).sum(1) - y
            gv = (d_mat * r[:, None]).T @ x
            grad = np.stack([gv, -gv])
            for k in range(2):
                s = g_mat * (x @ yk[k].T)
                grad[k] += rho * (g_mat * np.minimum(s, 0.0)).T @ x
            znew = yk - step * grad
            nrm = np.linalg.norm(znew, axis=2, keepdims=True)
            znew *= np.maximum(0.0, 1 - step * beta / np.maximum(nrm, 1e-300))
            prev, z = z, znew
            t += 1
    m = x @ (z[0] - z[1]).T
    obj = 0.5 * float((((d_mat * m).sum(1) - y) ** 2).sum()) + beta * float(np.linalg.norm(z, axis=2).sum())
    viol = max(float(-np.minimum(g_mat * (x @ z[k].T), 0).min(initial=0.0)) for k in range(2))
    return {"v": z[0], "w": z[1], "objective": obj, "violation": viol}


def network_from_convex(v: npt.NDArray[np.float64], w: npt.NDArray[np.float64],
                        tol: float = 1e-8) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Neurons U (m, d) and output weights a (m,) with u = v / sqrt||v||, a = +-sqrt||v||."""
    us, a_s = [], []
    for mat, sign in ((v, 1.0), (w, -1.0)):
        nrm = np.linalg.norm(mat, axis=1)
        for row, n_ in zip(mat, nrm, strict=True):
            if n_ > tol:
                us.append(row / np.sqrt(n_))
                a_s.append(sign * np.sqrt(n_))
    return np.asarray(us).reshape(-1, v.shape[1]), np.asarray(a_s)


def nonconvex_objective(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], u: npt.NDArray[np.float64],
                        a: npt.NDArray[np.float64], beta: float) -> float:
    """1/2 ||(X U^T)_+ a - y||^2 + beta/2 (||U||_F^2 + ||a||^2)."""
    f = np.maximum(x @ u.T, 0.0) @ a
    return 0.5 * float(((f - y) ** 2).sum()) + beta / 2 * float((u**2).sum() + (a**2).sum())


@lru_cache(maxsize=4)
def _solution(n: int, beta: float, seed: int) -> dict[str, Any]:
    x, y = make_data(n, seed)
    pats = patterns(x, seed=seed)
    sol = solve_convex(x, y, beta, pats)
    return {"x": x, "y": y, "n_patterns": int(pats.shape[0]), **sol}


def closed_form(n: int = 16, beta: float = 0.01, seed: int = 0) -> float:
    """The convex program's optimal value (our FISTA solution) for the dataset make_data(n, seed)."""
    return float(_solution(check_int(n, "n", minimum=2), check_positive(beta, "beta"), check_seed(seed))["objective"])


def train_nonconvex(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], beta: float, width: int, *,
                    steps: int = 3000, lr: float = 0.01, seed: int = 0) -> float:
    """Full-batch Adam on the non-convex objective from a Gaussian init; returns the final value."""
    torch.manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        xt, yt = torch.as_tensor(x), torch.as_tensor(y)
        u = torch.nn.Parameter(torch.randn(width, x.shape[1], dtype=torch.float64) * 0.5)
        a = torch.nn.Parameter(torch.randn(width, dtype=torch.float64) * 0.5)
        opt = torch.optim.Adam([u, a], lr=lr)
        for _ in range(check_int(steps, "steps", minimum=1)):
            opt.zero_grad()
            f = torch.relu(xt @ u.T) @ a
            obj = 0.5 * ((f - yt) ** 2).sum() + beta / 2 * ((u**2).sum() + (a**2).sum())
            obj.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    return nonconvex_objective(x, y, u.detach().numpy(), a.detach().numpy(), beta)


def simulate(n: int = 16, beta: float = 0.01, *, widths: Any = (2, 4, 8, 32), restarts: int = 4,
             seed: int = 0) -> dict[str, Any]:
    """The network built from the convex solution (its non-convex objective, width, constraint
    violation) and the final objectives of Adam runs (widths x restarts, seeded). Cached."""
    return _simulate(check_int(n, "n", minimum=2), check_positive(beta, "beta"),
                     tuple(check_int(m, "widths", minimum=1) for m in widths),
                     check_int(restarts, "restarts", minimum=1), check_seed(seed))


@lru_cache(maxsize=64)
def _adam_objective(n: int, beta: float, width: int, data_seed: int, init_seed: int) -> float:
    """One Adam run on make_data(n, data_seed) (cached apart from the convex solve)."""
    x, y = make_data(n, data_seed)
    return train_nonconvex(x, y, beta, width, seed=init_seed)


@lru_cache(maxsize=4)
def _simulate(n: int, beta: float, widths: tuple[int, ...], restarts: int, seed: int) -> dict[str, Any]:
    sol = _solution(n, beta, seed)
    u, a = network_from_convex(sol["v"], sol["w"])
    runs = [{"width": m, "restart": r, "objective": _adam_objective(n, beta, m, seed, seed * 1000 + r)}
            for m in widths for r in range(restarts)]
    big = int((a**2 > 1e-2 * float(np.max(a**2, initial=0.0))).sum())
    return {"network_objective": nonconvex_objective(sol["x"], sol["y"], u, a, beta), "width": len(a),
            "width_1pct": big,
            "violation": sol["violation"], "n_patterns": sol["n_patterns"], "runs": runs}


def check(mode: str = "quick") -> dict[str, Any]:
    """(1) The network built from the convex solution has the convex objective (relative 1e-3,
    constraint violation <= 1e-3); (2) no Adam run ends below the convex optimum by more than
    that tolerance (global optimality); quick: widths (2, 8, 32) x 2 restarts."""
    mode = check_mode(mode)
    sim = simulate(widths=(2, 8, 32) if mode == "quick" else (2, 4, 8, 16, 32, 64),
                   restarts=2 if mode == "quick" else 8)
    cf = closed_form()
    if sim["violation"] > 1e-3:
        raise TheoryCheckError(f"convex solution violates the cone constraints by {sim['violation']:.3g}")
    out = {"network": assert_close("convex value vs its network", cf, sim["network_objective"], 1e-3 * cf)}
    best = min(r["objective"] for r in sim["runs"])
    if best < cf * (1 - 1e-3):
        raise TheoryCheckError(f"an Adam run reached {best:.6g} below the convex optimum {cf:.6g}")
    out.update({"best_adam": best, "worst_adam": max(r["objective"] for r in sim["runs"]),
                "convex_width": sim["width"], "n_patterns": sim["n_patterns"]})
    return out


def plot(sim: dict[str, Any], cf: float) -> list[Any]:
    fig, axes = new_figure(1, 4.6, 3.2)
    ax = axes[0]
    widths = sorted({r["width"] for r in sim["runs"]})
    for r in sim["runs"]:
        ax.scatter(widths.index(r["width"]), r["objective"], color="C0", s=16, alpha=0.7)
    ax.axhline(cf, color="C3", lw=1.5, label=f"convex optimum {cf:.4f}")
    ax.set_xticks(range(len(widths)), [str(w) for w in widths])
    ax.set_xlabel("width of the non-convex net (Adam, random inits)")
    ax.set_ylabel("regularised training objective")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return [to_png(fig, "theory_convex_relu", "Adam on the non-convex two-layer ReLU net vs the convex optimum.")]


def run(paper_mode: bool = False, seed: int = 0) -> TheoryRun:
    mode = "paper" if paper_mode else "quick"
    res = check(mode)
    sim = simulate(widths=(2, 8, 32) if not paper_mode else (2, 4, 8, 16, 32, 64),
                   restarts=2 if not paper_mode else 8)
    cf = closed_form()
    rows = [{"width": r["width"], "restart": r["restart"], "adam_objective": r["objective"], "convex_optimum": cf}
            for r in sim["runs"]]
    return TheoryRun(NAME, TITLE, CITATION, rows, plot(sim, cf),
                     summary={"convex optimum": cf, "best Adam": res["best_adam"], "worst Adam": res["worst_adam"],
                              "patterns": res["n_patterns"], "convex groups > 1e-8": res["convex_width"],
                              "convex groups > 1% of max norm": sim["width_1pct"]},
                     paper_values={"note": "the papers report solver speed on other data; no comparable number"},
                     mode=mode)
