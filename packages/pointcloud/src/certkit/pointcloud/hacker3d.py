"""3DHacker: hard-label point-cloud attack by spectral fusion and a boundary walk.

Tao, Liu, Zhou, Zhao, Wu, Xu, Zhang, "3DHacker: Spectrum-based Decision Boundary Generation
for Hard-label 3D Point Cloud Attack", ICCV 2023, arXiv:2308.07546. No public code exists;
this is written from the paper's description (the abstract and our reading of the method;
the step-size schedule of the walk is ours, HopSkipJump-style, Chen et al. arXiv:1904.02144):

1. **Spectral fusion.** With ``U`` the sign-fixed, ascending graph Fourier basis of the
   target cloud ``x`` (kNN graph, :func:`certkit.core.spectral.graph_basis`) and ``U'`` that
   of a cloud ``s`` of another class, the fused cloud keeps the high frequencies of ``x`` and
   mixes the ``L`` lowest: ``x_f(lam) = U [(1-lam) U_L^T x + lam U'_L^T s ; U_H^T x]``, which is
   the line ``x + lam d`` with ``d = U_L (U'_L^T s - U_L^T x)``.
2. **Boundary projection.** If ``f(x_f(lam0))`` differs from the label, a binary search on
   ``lam`` in ``[0, lam0]`` finds a point on the adversarial side of the decision boundary.
   The best of ``n_fusions`` random (partner, ``lam0``) pairs is kept.
3. **Boundary walk.** At the boundary point the normal is estimated from hard labels of
   random low-frequency probes (``sum (phi_i - mean phi) u_i``), the point steps along it into
   the adversarial region (geometric step search) and is projected back onto the boundary by
   a binary search on the segment to ``x``, which shrinks the perturbation each iteration.

Only hard labels are ever queried (``predict`` returns class ids); every cloud queried is
counted. The output stays in point correspondence with ``x`` (same N, same order).
Shapes: x (N, 3), partners (M, N, 3).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from certkit.core.spectral import graph_basis
from certkit.core.validation import check_int, check_seed
from certkit.pointcloud.distances import chamfer, hausdorff

F64 = npt.NDArray[np.float64]
Predict = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.int64]]


@dataclass
class HackerResult:
    """One attacked cloud: ``adv`` (N, 3) (the clean cloud when no boundary point was found)."""

    adv: npt.NDArray[np.float32]
    success: bool
    queries: int
    l2: float
    chamfer: float
    hausdorff: float
    history: list[tuple[int, float]] = field(default_factory=list)  # (queries, l2) per step


class _Oracle:
    """Hard-label oracle that counts queries and stops at a budget."""

    def __init__(self, predict: Predict, label: int, budget: int) -> None:
        self.predict, self.label, self.budget, self.used = predict, label, budget, 0

    def left(self) -> int:
        return self.budget - self.used

    def adversarial(self, clouds: F64) -> npt.NDArray[np.bool_]:
        """clouds (B, N, 3) -> (B,) True where the label changed."""
        self.used += len(clouds)
        out = np.asarray(self.predict(clouds.astype(np.float32)))
        return out != self.label  # type: ignore[no-any-return]


def _line_search(
    oracle: _Oracle, x: F64, d: F64, hi: float, steps: int
) -> float:
    """Smallest s in (0, hi] (to 2^-steps) with x + s d adversarial, given that hi is."""
    lo = 0.0
    for _ in range(steps):
        if oracle.left() <= 0:
            break
        mid = 0.5 * (lo + hi)
        if oracle.adversarial((x + mid * d)[None])[0]:
            hi = mid
        else:
            lo = mid
    return hi


def hacker3d(
    predict: Predict,
    x: Any,
    label: int,
    partners: Any,
    *,
    k: int = 10,
    low: int = 32,
    walk_bands: int = 64,
    n_fusions: int = 10,
    n_probes: int = 20,
    max_queries: int = 2000,
    search_steps: int = 12,
    seed: int = 0,
) -> HackerResult:
    """Attack one cloud ``x`` (N, 3) whose true label is ``label`` with hard-label queries.

    partners: clouds (M, N, 3) of other classes (the paper fuses with such samples).
    ``low``: fused low-frequency bands; ``walk_bands``: bands of the probe directions.
    """
    xa = np.asarray(x, dtype=np.float64)
    if xa.ndim != 2 or xa.shape[1] != 3 or not np.isfinite(xa).all():
        raise ValueError(f"x: expected a finite (N, 3) cloud, got shape {xa.shape}")
    pa = np.asarray(partners, dtype=np.float64)
    if pa.ndim != 3 or pa.shape[1:] != xa.shape or len(pa) == 0:
        raise ValueError(f"partners: expected (M, {len(xa)}, 3), got {pa.shape}")
    n = len(xa)
    low = check_int(low, "low", minimum=1)
    walk_bands = check_int(walk_bands, "walk_bands", minimum=1)
    max_queries = check_int(max_queries, "max_queries", minimum=1)
    rng = np.random.default_rng(check_seed(seed))
    low, walk_bands = min(low, n), min(walk_bands, n)
    oracle = _Oracle(predict, int(label), max_queries)

    if oracle.adversarial(xa[None])[0]:  # already misclassified: nothing to do
        c = xa.astype(np.float32)
        return HackerResult(c, True, oracle.used, 0.0, 0.0, 0.0, [(oracle.used, 0.0)])
    _, U = graph_basis(xa, k)  # (N, N) ascending, sign-fixed
    xl = U[:, :low].T @ xa  # (L, 3)
    best: F64 | None = None
    best_d = np.inf
    order = rng.permutation(len(pa))
    for t in range(n_fusions):
        if oracle.left() <= search_steps:
            break
        s = pa[order[t % len(pa)]]
        _, Us = graph_basis(s, k)
        d = U[:, :low] @ (Us[:, :low].T @ s - xl)  # x_f(lam) = x + lam d
        lam0 = float(rng.uniform(0.5, 1.0))
        if not oracle.adversarial((xa + lam0 * d)[None])[0]:
            continue
        lam = _line_search(oracle, xa, d, lam0, search_steps)
        cand = xa + lam * d
        dist = float(np.linalg.norm(cand - xa))
        if dist < best_d:
            best, best_d = cand, dist
    if best is None:
        c = xa.astype(np.float32)
        return HackerResult(c, False, oracle.used, 0.0, 0.0, 0.0, [])

    history = [(oracle.used, best_d)]
    B = U[:, :walk_bands]  # probe directions live in the low-frequency subspace
    it = 0
    while oracle.left() > n_probes + search_steps + 2:
        it += 1
        delta = 0.1 * best_d
        z = rng.normal(size=(n_probes, walk_bands, 3))
        u = np.einsum("nb,pbc->pnc", B, z)
        u /= np.linalg.norm(u.reshape(n_probes, -1), axis=1)[:, None, None]
        phi = np.where(oracle.adversarial(best[None] + delta * u), 1.0, -1.0)
        if np.all(phi == phi[0]):
            g = phi[0] * u.mean(0)
        else:
            g = np.einsum("p,pnc->nc", phi - phi.mean(), u)
        g /= max(float(np.linalg.norm(g)), 1e-12)
        xi = best_d / np.sqrt(it + 1)
        moved = None
        while oracle.left() > search_steps + 1 and xi > 1e-4 * best_d:
            cand = best + xi * g
            if oracle.adversarial(cand[None])[0]:
                moved = cand
                break
            xi *= 0.5
        if moved is None:
            break
        s_hi = _line_search(oracle, xa, moved - xa, 1.0, search_steps)
        cand = xa + s_hi * (moved - xa)
        dist = float(np.linalg.norm(cand - xa))
        if dist < best_d:
            best, best_d = cand, dist
        history.append((oracle.used, best_d))
    adv = best.astype(np.float32)
    return HackerResult(
        adv,
        True,
        oracle.used,
        best_d,
        float(chamfer(adv, xa)),
        float(hausdorff(adv, xa)),
        history,
    )


__all__ = ["HackerResult", "hacker3d"]
