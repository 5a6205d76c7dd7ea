"""ModelNet40-C's 15 object-level corruptions x 5 severities, re-implemented.

Sun, Chen, Chakraborty, Mao et al., "Benchmarking Robustness of 3D Point Cloud Recognition
Against Common Corruptions", arXiv:2201.12296. The corruption *list* is the paper's; the
severity parameters below are recalled from the paper and its appendix, not read, so they
are approximate (numbers marked ``# recalled``), and the occlusion/LiDAR corruptions use
hidden-point removal (Katz, Tal, Basri 2007) on the cloud instead of ray casting the mesh.
No code of the original benchmark was used.

Groups: density (occlusion, lidar, density_inc, density, cutout), noise (uniform, gaussian,
impulse, upsampling, background), transformation (rotation, shear, ffd, rbf, inv_rbf).

Every corruption takes a unit-sphere cloud (N, 3), a severity in 1..5 and a
``numpy.random.Generator`` and returns a float32 cloud (N', 3); density and noise
corruptions change N'. Corruption ``c`` of cloud ``i`` at severity ``s`` is seeded by
``(seed, c, s, i)`` in :func:`corrupt_dataset`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
Corruption = Callable[[F64, int, np.random.Generator], F64]


def _knn_idx(x: F64, anchor: F64, k: int) -> npt.NDArray[np.int64]:
    return np.argsort(((x - anchor) ** 2).sum(1), kind="stable")[: min(k, len(x))]


def _visible(x: F64, view: F64, radius_factor: float = 100.0) -> npt.NDArray[np.int64]:
    """Hidden-point removal (Katz et al. 2007): indices of points visible from ``view``."""
    from scipy.spatial import ConvexHull, QhullError

    p = x - view
    nrm = np.linalg.norm(p, axis=1, keepdims=True).clip(1e-12)
    R = nrm.max() * radius_factor
    flipped = p + 2 * (R - nrm) * p / nrm
    pts = np.vstack([flipped, np.zeros((1, 3))])
    try:
        hull = ConvexHull(pts)
    except QhullError:
        return np.arange(len(x))
    v = hull.vertices
    return np.sort(v[v < len(x)])


def _random_dir(rng: np.random.Generator) -> F64:
    d = rng.normal(size=3)
    return d / np.linalg.norm(d)


def occlusion(x: F64, s: int, rng: np.random.Generator) -> F64:
    """Self-occlusion from a random viewpoint; a closer camera sees less (severity)."""
    dist = (6.0, 4.0, 3.0, 2.5, 2.0)[s - 1]  # ours: camera distance in cloud radii
    return x[_visible(x, dist * _random_dir(rng), radius_factor=(100, 50, 20, 10, 5)[s - 1])]


def lidar(x: F64, s: int, rng: np.random.Generator) -> F64:
    """Occlusion plus LiDAR-like scan lines: only points near ``beams`` elevation rings remain."""
    view = 3.0 * _random_dir(rng)
    view[2] = abs(view[2]) * 0.3
    v = x[_visible(x, view, 50.0)]
    p = v - view
    elev = np.arctan2(p[:, 2], np.linalg.norm(p[:, :2], axis=1))
    beams = (64, 48, 32, 24, 16)[s - 1]  # recalled: fewer beams at higher severity
    lo, hi = elev.min(), elev.max()
    pos = (elev - lo) / max(hi - lo, 1e-9) * beams
    keep = np.abs(pos - np.round(pos)) < 0.25
    return v[keep] if keep.sum() >= 8 else v


def _patch(n: int) -> int:
    """Patch size: 100 points of a 1024-point cloud (recalled), scaled with N."""
    return max(1, round(100 * n / 1024))


def density_inc(x: F64, s: int, rng: np.random.Generator) -> F64:
    """``s`` local patches (100-NN of random anchors at N = 1024) get duplicated points."""
    extra = []
    for _ in range(s):  # recalled: 1..5 patches
        idx = _knn_idx(x, x[rng.integers(len(x))], _patch(len(x)))
        extra.append(x[idx] + rng.normal(scale=0.01, size=(len(idx), 3)))
    return np.vstack([x, *extra])


def density(x: F64, s: int, rng: np.random.Generator) -> F64:
    """``s`` local patches (100-NN of random anchors at N = 1024) lose 75% of their points."""
    drop = np.zeros(len(x), bool)
    for _ in range(s):  # recalled
        idx = _knn_idx(x, x[rng.integers(len(x))], _patch(len(x)))
        drop[idx[rng.random(len(idx)) < 0.75]] = True
    return x[~drop]


def cutout(x: F64, s: int, rng: np.random.Generator) -> F64:
    """``s`` clusters (each N/30 nearest neighbours of a random anchor) are removed."""
    drop = np.zeros(len(x), bool)
    k = max(1, len(x) // 30)
    for _ in range(s):
        drop[_knn_idx(x, x[rng.integers(len(x))], k)] = True
    return x[~drop]


def uniform(x: F64, s: int, rng: np.random.Generator) -> F64:
    """Uniform coordinate noise in [-c, c], c = 0.01 s."""
    c = 0.01 * s  # recalled
    return x + rng.uniform(-c, c, size=x.shape)


def gaussian(x: F64, s: int, rng: np.random.Generator) -> F64:
    """Gaussian coordinate noise, sigma = 0.01 + 0.005 (s - 1)."""
    return x + rng.normal(scale=0.01 + 0.005 * (s - 1), size=x.shape)  # recalled


def impulse(x: F64, s: int, rng: np.random.Generator) -> F64:
    """A fraction s/50 of the points moves by +-0.1 on each axis."""
    y = x.copy()
    idx = rng.choice(len(x), max(1, int(len(x) * s / 50)), replace=False)  # recalled
    y[idx] += 0.1 * rng.choice([-1.0, 1.0], size=(len(idx), 3))
    return y


def upsampling(x: F64, s: int, rng: np.random.Generator) -> F64:
    """Adds N s/10 points, each a copy of a random point moved by U(-0.05, 0.05)."""
    idx = rng.choice(len(x), max(1, int(len(x) * s / 10)))  # recalled
    return np.vstack([x, x[idx] + rng.uniform(-0.05, 0.05, size=(len(idx), 3))])


def background(x: F64, s: int, rng: np.random.Generator) -> F64:
    """Adds N s/45 uniform points in the bounding box."""
    m = max(1, int(len(x) * s / 45))  # recalled
    lo, hi = x.min(0), x.max(0)
    return np.vstack([x, rng.uniform(lo, hi, size=(m, 3))])


def _rot(ax: float, ay: float, az: float) -> F64:
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def rotation(x: F64, s: int, rng: np.random.Generator) -> F64:
    """Euler angles uniform in [-t, t] about each axis, t = 3 s degrees."""
    t = np.deg2rad(3.0 * s)  # recalled (approximate)
    return x @ _rot(*rng.uniform(-t, t, size=3)).T


def shear(x: F64, s: int, rng: np.random.Generator) -> F64:
    """Random shear: off-diagonal factors uniform in [-0.05 s, 0.05 s]."""
    a = np.eye(3)
    off = ~np.eye(3, dtype=bool)
    a[off] = rng.uniform(-0.05 * s, 0.05 * s, size=6)  # recalled
    return x @ a.T


def _bernstein(t: F64, deg: int) -> F64:
    from math import comb

    i = np.arange(deg + 1)
    return np.array([comb(deg, j) for j in i]) * t[:, None] ** i * (1 - t[:, None]) ** (deg - i)


def ffd(x: F64, s: int, rng: np.random.Generator) -> F64:
    """Free-form deformation: a 5x5x5 Bernstein lattice with control points moved U(-c, c),
    c = 0.1 s / 4 (in the lattice's unit box)."""
    lo, hi = x.min(0), x.max(0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    u = (x - lo) / span
    deg = 4
    b = [_bernstein(u[:, a], deg) for a in range(3)]
    d = rng.uniform(-0.025 * s, 0.025 * s, size=(deg + 1, deg + 1, deg + 1, 3))  # ours
    disp = np.einsum("ni,nj,nk,ijkc->nc", b[0], b[1], b[2], d)
    return x + disp * span


def _rbf_warp(x: F64, s: int, rng: np.random.Generator, inverse: bool) -> F64:
    m = 12
    ctrl = x[rng.choice(len(x), m, replace=False)]
    disp = rng.uniform(-0.025 * s, 0.025 * s, size=(m, 3))  # recalled order of magnitude
    eps = 0.5

    def phi(r: F64) -> F64:
        q = np.sqrt(r**2 + eps**2)
        return 1.0 / q if inverse else q

    K = phi(np.linalg.norm(ctrl[:, None] - ctrl[None], axis=-1))
    W = np.linalg.lstsq(K, disp, rcond=None)[0]
    return x + phi(np.linalg.norm(x[:, None] - ctrl[None], axis=-1)) @ W


def rbf(x: F64, s: int, rng: np.random.Generator) -> F64:
    """Radial-basis (multiquadric) warp interpolating random displacements of 12 control points."""
    return _rbf_warp(x, s, rng, inverse=False)


def inv_rbf(x: F64, s: int, rng: np.random.Generator) -> F64:
    """Same with the inverse multiquadric kernel."""
    return _rbf_warp(x, s, rng, inverse=True)


CORRUPTIONS: dict[str, Corruption] = {
    "occlusion": occlusion,
    "lidar": lidar,
    "density_inc": density_inc,
    "density": density,
    "cutout": cutout,
    "uniform": uniform,
    "gaussian": gaussian,
    "impulse": impulse,
    "upsampling": upsampling,
    "background": background,
    "rotation": rotation,
    "shear": shear,
    "ffd": ffd,
    "rbf": rbf,
    "inv_rbf": inv_rbf,
}
SEVERITIES = (1, 2, 3, 4, 5)


def corrupt(x: Any, name: str, severity: int, *, seed: int = 0, index: int = 0) -> npt.NDArray[np.float32]:
    """Apply corruption ``name`` at ``severity`` (1..5) to one cloud x (N, 3)."""
    if name not in CORRUPTIONS:
        raise ValueError(f"name: unknown corruption {name!r}; expected one of {sorted(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity: expected 1..5, got {severity!r}")
    xa = np.asarray(x, dtype=np.float64)
    if xa.ndim != 2 or xa.shape[1] != 3 or len(xa) < 16:
        raise ValueError(f"x: expected a (N >= 16, 3) cloud, got shape {xa.shape}")
    if not np.isfinite(xa).all():
        raise ValueError("x: contains NaN or inf")
    key = list(CORRUPTIONS).index(name)
    rng = np.random.default_rng([seed, key, severity, index])
    out = CORRUPTIONS[name](xa, severity, rng)
    if len(out) < 8:  # documented: a corruption never leaves fewer than 8 points
        out = xa[rng.choice(len(xa), 8, replace=False)]
    return out.astype(np.float32)


def corrupt_dataset(
    X: Any, name: str, severity: int, *, seed: int = 0
) -> list[npt.NDArray[np.float32]]:
    """Corrupt every cloud of X (B, N, 3); returns a list (sizes may differ)."""
    return [corrupt(x, name, severity, seed=seed, index=i) for i, x in enumerate(np.asarray(X))]


__all__ = ["CORRUPTIONS", "SEVERITIES", "corrupt", "corrupt_dataset"]
