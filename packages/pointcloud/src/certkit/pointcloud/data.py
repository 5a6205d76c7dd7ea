"""Datasets: the embedded procedural shape dataset and a ModelNet40 (OFF tree) loader.

The procedural dataset needs no download: each cloud is a surface sample of one of eight
primitive shapes, with a random rotation about z, a small random tilt and a per-axis scale,
normalised to the unit sphere. Cloud ``i`` of a split depends only on ``(seed, split, i)``.

Shapes: clouds (B, N, 3) float32, labels (B,) int64.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from certkit.core.validation import check_int, check_seed

CLASSES = ("sphere", "cube", "cylinder", "cone", "torus", "pyramid", "capsule", "disk")


def _shape(cls: int, n: int, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    u, v = rng.random(n), rng.random(n)
    name = CLASSES[cls]
    if name == "sphere":
        z = 2 * u - 1
        t = 2 * np.pi * v
        r = np.sqrt(1 - z**2)
        return np.stack([r * np.cos(t), r * np.sin(t), z], 1)
    if name == "cube":
        face = rng.integers(0, 6, n)
        p = np.stack([2 * u - 1, 2 * v - 1, np.where(face % 2 == 0, 1.0, -1.0)], 1)
        out = p.copy()
        ax = face // 2
        for a in range(3):
            m = ax == a
            out[m] = np.roll(p[m], a, axis=1)
        return out
    if name in ("cylinder", "capsule"):
        t = 2 * np.pi * v
        if name == "cylinder":
            side = rng.random(n) < 0.75
            r = np.where(side, 1.0, np.sqrt(u))
            z = np.where(side, 2 * u - 1, np.where(rng.random(n) < 0.5, 1.0, -1.0))
            return np.stack([0.6 * r * np.cos(t), 0.6 * r * np.sin(t), z], 1)
        side = rng.random(n) < 0.6
        z = np.where(side, 1.2 * u - 0.6, 0.0)
        zc = 2 * rng.random(n) - 1
        rc = np.sqrt(1 - zc**2)
        r = np.where(side, 0.4, 0.4 * rc)
        z = np.where(side, z, np.where(zc > 0, 0.6 + 0.4 * zc, -0.6 + 0.4 * zc))
        return np.stack([r * np.cos(t), r * np.sin(t), z], 1)
    if name == "cone":
        side = rng.random(n) < 0.8
        h = np.sqrt(u)
        t = 2 * np.pi * v
        r = np.where(side, h, np.sqrt(rng.random(n)))
        z = np.where(side, 1 - 2 * h, -1.0)
        return np.stack([0.8 * r * np.cos(t), 0.8 * r * np.sin(t), z], 1)
    if name == "torus":
        a, b = 2 * np.pi * u, 2 * np.pi * v
        return np.stack(
            [
                (0.7 + 0.3 * np.cos(b)) * np.cos(a),
                (0.7 + 0.3 * np.cos(b)) * np.sin(a),
                0.3 * np.sin(b),
            ],
            1,
        )
    if name == "pyramid":
        base = rng.random(n) < 0.2
        side = rng.integers(0, 4, n)
        s = np.sqrt(u)  # from apex
        w = (2 * v - 1) * s
        corners = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], float)
        nxt = np.roll(corners, -1, axis=0)
        mid = (corners[side] + nxt[side]) / 2
        tang = (nxt[side] - corners[side]) / 2
        xy = s[:, None] * mid + w[:, None] * tang
        z = 1 - 2 * s
        bxy = np.stack([2 * u - 1, 2 * v - 1], 1) @ np.array([[0.5, 0.5], [-0.5, 0.5]])
        xy = np.where(base[:, None], bxy, xy)
        z = np.where(base, -1.0, z)
        return np.column_stack([xy, z])
    # disk
    t = 2 * np.pi * v
    r = np.sqrt(u)
    return np.stack([r * np.cos(t), r * np.sin(t), 0.05 * (2 * rng.random(n) - 1)], 1)


def _rotation(rng: np.random.Generator, tilt: float) -> npt.NDArray[np.float64]:
    th = rng.uniform(0, 2 * np.pi)
    c, s = np.cos(th), np.sin(th)
    rz = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    a = rng.uniform(-tilt, tilt)
    ca, sa = np.cos(a), np.sin(a)
    rx = np.array([[1, 0, 0], [0, ca, -sa], [0, sa, ca]])
    return rz @ rx


def make_shapes(
    n_clouds: int = 2000,
    n_points: int = 1024,
    *,
    seed: int = 0,
    split: str = "train",
    num_classes: int = len(CLASSES),
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """The embedded default dataset: ``(clouds (B, N, 3) float32, labels (B,) int64)``.

    Labels cycle through the first ``num_classes`` classes of :data:`CLASSES`. Splits
    ``train``/``test`` (or any string) draw disjoint random streams.
    """
    n_clouds = check_int(n_clouds, "n_clouds", minimum=1)
    n_points = check_int(n_points, "n_points", minimum=8)
    num_classes = check_int(num_classes, "num_classes", minimum=2)
    if num_classes > len(CLASSES):
        raise ValueError(f"num_classes: at most {len(CLASSES)}, got {num_classes}")
    seed = check_seed(seed)
    split_key = sum(ord(ch) * 131**i for i, ch in enumerate(split)) % (2**31)
    X = np.empty((n_clouds, n_points, 3), np.float32)
    y = np.arange(n_clouds, dtype=np.int64) % num_classes
    for i in range(n_clouds):
        rng = np.random.default_rng([seed, split_key, i])
        p = _shape(int(y[i]), n_points, rng)
        p = p * rng.uniform(0.85, 1.15, size=3)
        p = p @ _rotation(rng, 0.25).T
        p = p + 0.01 * rng.normal(size=p.shape)
        p -= p.mean(0)
        p /= np.linalg.norm(p, axis=1).max()
        X[i] = p
    return X, y


def load_modelnet40_off(
    root: str | Path,
    split: str = "train",
    n_points: int = 1024,
    *,
    seed: int = 0,
    max_per_class: int | None = None,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], list[str]]:
    """Load ModelNet40 from its OFF tree ``root/<class>/<split>/*.off``.

    Each mesh is surface-sampled to ``n_points`` points (seeded by file order) and
    normalised to the unit sphere. Returns ``(clouds (B, N, 3), labels (B,), class names)``.
    """
    from certkit.pointcloud.io import read_off, sample_surface

    rootp = Path(root)
    if not rootp.is_dir():
        raise ValueError(f"root: {root} is not a directory")
    classes = sorted(d.name for d in rootp.iterdir() if (d / split).is_dir())
    if not classes:
        raise ValueError(f"root: no <class>/{split}/ folders under {root}")
    clouds, labels = [], []
    for ci, c in enumerate(classes):
        files = sorted((rootp / c / split).glob("*.off"))
        if max_per_class is not None:
            files = files[:max_per_class]
        for fi, f in enumerate(files):
            pts, faces = read_off(f)
            p = sample_surface(pts, faces, n_points, seed=seed * 1_000_003 + ci * 10_007 + fi)
            p = p - p.mean(0)
            r = np.linalg.norm(p, axis=1).max()
            clouds.append((p / (r if r > 0 else 1.0)).astype(np.float32))
            labels.append(ci)
    return np.stack(clouds), np.asarray(labels, np.int64), classes


__all__ = ["CLASSES", "load_modelnet40_off", "make_shapes"]
