"""Datasets: the embedded procedural shape dataset and ModelNet40 loaders (OFF tree, HDF5).

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


def load_modelnet40_h5(
    root: str | Path,
    split: str = "train",
    n_points: int | None = None,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], list[str]]:
    """Load ModelNet40 in the common HDF5 layout (``modelnet40_ply_hdf5_2048``).

    Reads every ``root/ply_data_<split>*.h5`` (sorted by their trailing number), each with
    datasets ``data`` (B, N, 3) and ``label`` (B,) or (B, 1); class names come from
    ``root/shape_names.txt`` when present (else ``"0"``, ``"1"``, …). ``n_points`` keeps the
    first points of every cloud (the files store them in random order). Returns
    ``(clouds (B, N, 3) float32, labels (B,) int64, class names)``. Needs ``h5py`` (extra
    ``io``); truncated or malformed files raise ValueError naming the file.
    """
    import re

    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("load_modelnet40_h5 needs h5py: pip install certkit-pointcloud[io]") from exc

    rootp = Path(root)
    if not rootp.is_dir():
        raise ValueError(f"root: {root} is not a directory")

    def key(f: Path) -> tuple[int, str]:
        m = re.search(r"(\d+)\.h5$", f.name)
        return (int(m.group(1)) if m else -1, f.name)

    files = sorted(rootp.glob(f"ply_data_{split}*.h5"), key=key)
    if not files:
        raise ValueError(f"root: no ply_data_{split}*.h5 files under {root}")
    if n_points is not None:
        n_points = check_int(n_points, "n_points", minimum=1)
    clouds, labels = [], []
    for f in files:
        try:
            with h5py.File(f, "r") as h:
                data = np.asarray(h["data"], dtype=np.float32)
                lab = np.asarray(h["label"])
        except (OSError, KeyError) as exc:
            raise ValueError(f"{f}: not a ModelNet40 HDF5 file ({exc})") from exc
        if data.ndim != 3 or data.shape[-1] != 3:
            raise ValueError(f"{f}: data has shape {data.shape}, expected (B, N, 3)")
        lab = lab.reshape(-1)
        if lab.shape[0] != data.shape[0] or not np.issubdtype(lab.dtype, np.integer):
            raise ValueError(f"{f}: label must hold one integer per cloud, got {lab.shape} {lab.dtype}")
        if not np.isfinite(data).all():
            raise ValueError(f"{f}: data contains NaN or inf")
        if n_points is not None:
            if n_points > data.shape[1]:
                raise ValueError(f"n_points: files hold {data.shape[1]} points, asked {n_points}")
            data = data[:, :n_points]
        clouds.append(data)
        labels.append(lab.astype(np.int64))
    if len({c.shape[1] for c in clouds}) > 1:
        raise ValueError(f"root: files under {root} hold clouds of different sizes")
    X, y = np.concatenate(clouds), np.concatenate(labels)
    names_file = rootp / "shape_names.txt"
    if names_file.is_file():
        names = [ln.strip() for ln in names_file.read_text().splitlines() if ln.strip()]
    else:
        names = [str(i) for i in range(int(y.max()) + 1 if y.size else 0)]
    if y.size and (y.min() < 0 or y.max() >= len(names)):
        raise ValueError(f"root: labels outside [0, {len(names)}) (shape_names.txt has {len(names)})")
    return X, y, names


__all__ = ["CLASSES", "load_modelnet40_h5", "load_modelnet40_off", "make_shapes"]
