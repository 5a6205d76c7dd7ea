"""Point-cloud and mesh file I/O: PLY (ASCII and binary), PCD, OFF, KITTI/nuScenes ``.bin``.

The parsers are written in numpy so that every malformed file becomes a ``ValueError``
naming the file (open3d silently returns an empty cloud on most errors). open3d is used,
lazily, only for what it does better: reading arbitrary mesh formats in
:func:`read_mesh_open3d`. Surface sampling (:func:`sample_surface`) is area-weighted
uniform sampling in numpy, so it needs no open3d.

Shapes: points (N, 3) float64 unless stated; faces (F, 3) int64 (polygons are fanned
into triangles).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
    "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip


def _fail(path: Any, msg: str) -> ValueError:
    return ValueError(f"path: {path}: {msg}")


def _check_points(points: F64, path: Any) -> F64:
    if not np.isfinite(points).all():
        raise _fail(path, "contains NaN or inf coordinates")
    return points


# ---------------------------------------------------------------------------- PLY ------
def read_ply(path: str | Path) -> tuple[F64, I64, dict[str, npt.NDArray[Any]]]:
    """Read a PLY file: ``(points (N, 3), faces (F, 3), extra vertex properties {name: (N,)})``."""
    data = Path(path).read_bytes()
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise _fail(path, "not a PLY file (missing 'ply' magic or 'end_header')")
    nl = data.find(b"\n", end)
    body = data[nl + 1 :] if nl >= 0 else b""
    try:
        header = data[:end].decode("ascii").splitlines()
    except UnicodeDecodeError as exc:
        raise _fail(path, "PLY header is not ASCII") from exc
    fmt = None
    elements: list[tuple[str, int, list[tuple[str, str, str | None]]]] = []
    for line in header[1:]:
        tok = line.split()
        if not tok or tok[0] in ("comment", "obj_info"):
            continue
        if tok[0] == "format" and len(tok) >= 2:
            fmt = tok[1]
        elif tok[0] == "element" and len(tok) == 3:
            try:
                count = int(tok[2])
            except ValueError as exc:
                raise _fail(path, f"bad element count {tok[2]!r}") from exc
            if count < 0:
                raise _fail(path, "negative element count")
            elements.append((tok[1], count, []))
        elif tok[0] == "property" and elements:
            if len(tok) == 5 and tok[1] == "list":
                if tok[2] not in _PLY_TYPES or tok[3] not in _PLY_TYPES:
                    raise _fail(path, f"unknown PLY type in {line!r}")
                elements[-1][2].append((tok[4], _PLY_TYPES[tok[3]], _PLY_TYPES[tok[2]]))
            elif len(tok) == 3 and tok[1] in _PLY_TYPES:
                elements[-1][2].append((tok[2], _PLY_TYPES[tok[1]], None))
            else:
                raise _fail(path, f"bad property line {line!r}")
        else:
            raise _fail(path, f"unexpected header line {line!r}")
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise _fail(path, f"unsupported PLY format {fmt!r}")
    vertex: dict[str, npt.NDArray[Any]] = {}
    faces: list[list[int]] = []
    if fmt == "ascii":
        tokens = body.split()
        pos = 0
        for name, count, props in elements:
            has_list = any(p[2] is not None for p in props)
            if not has_list and count:
                width = len(props)
                need = count * width
                if pos + need > len(tokens):
                    raise _fail(path, f"truncated: element {name!r} needs {count} rows")
                try:
                    arr = np.array(tokens[pos : pos + need], dtype=np.float64).reshape(count, width)
                except ValueError as exc:
                    raise _fail(path, f"non-numeric value in element {name!r}") from exc
                pos += need
                if name == "vertex":
                    vertex = {p[0]: arr[:, j] for j, p in enumerate(props)}
                continue
            for _ in range(count):
                row: list[int] = []
                for pname, _dt, ltype in props:
                    if pos >= len(tokens):
                        raise _fail(path, f"truncated in element {name!r}")
                    if ltype is None:
                        pos += 1
                        continue
                    try:
                        ln = int(tokens[pos])
                        vals = [int(float(t)) for t in tokens[pos + 1 : pos + 1 + ln]]
                    except ValueError as exc:
                        raise _fail(path, "non-numeric list entry") from exc
                    if ln < 0 or len(vals) != ln:
                        raise _fail(path, f"truncated list in element {name!r}")
                    pos += 1 + ln
                    if name == "face" and pname in ("vertex_indices", "vertex_index"):
                        row = vals
                if name == "face":
                    faces.append(row)
    else:
        endian = "<" if fmt == "binary_little_endian" else ">"
        pos = 0
        for name, count, props in elements:
            has_list = any(p[2] is not None for p in props)
            if not has_list:
                dt = np.dtype([(p[0] or f"f{j}", endian + p[1]) for j, p in enumerate(props)])
                need = dt.itemsize * count
                if pos + need > len(body):
                    raise _fail(path, f"truncated: element {name!r} needs {need} bytes")
                arr = np.frombuffer(body, dtype=dt, count=count, offset=pos)
                pos += need
                if name == "vertex":
                    vertex = {p[0]: arr[p[0]].astype(np.float64) for p in props}
                continue
            for _ in range(count):
                for pname, dtp, ltype in props:
                    if ltype is None:
                        size = np.dtype(dtp).itemsize
                        if pos + size > len(body):
                            raise _fail(path, "truncated binary element")
                        pos += size
                        continue
                    lsize = np.dtype(ltype).itemsize
                    if pos + lsize > len(body):
                        raise _fail(path, "truncated binary list")
                    ln = int(np.frombuffer(body, endian + ltype, 1, pos)[0])
                    pos += lsize
                    isize = np.dtype(dtp).itemsize
                    if ln < 0 or pos + ln * isize > len(body):
                        raise _fail(path, "truncated binary list")
                    vals = np.frombuffer(body, endian + dtp, ln, pos).astype(np.int64).tolist()
                    pos += ln * isize
                    if name == "face" and pname in ("vertex_indices", "vertex_index"):
                        faces.append(vals)
    if not all(c in vertex for c in "xyz"):
        raise _fail(path, "no vertex element with x, y, z")
    pts = np.stack([vertex["x"], vertex["y"], vertex["z"]], axis=1).astype(np.float64)
    extra = {k: v for k, v in vertex.items() if k not in ("x", "y", "z")}
    return _check_points(pts, path), _triangulate(faces, len(pts), path), extra


def write_ply(path: str | Path, points: Any, faces: Any = None, *, binary: bool = True) -> None:
    """Write points (N, 3) and optional triangles (F, 3) as PLY (binary little-endian or ASCII)."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"points: expected shape (N, 3), got {pts.shape}")
    fc = (
        np.zeros((0, 3), np.int64)
        if faces is None
        else np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    )
    fmt = "binary_little_endian" if binary else "ascii"
    head = (
        f"ply\nformat {fmt} 1.0\nelement vertex {len(pts)}\nproperty double x\nproperty double y\n"
        f"property double z\nelement face {len(fc)}\nproperty list uchar int vertex_indices\nend_header\n"
    )
    with open(path, "wb") as f:
        f.write(head.encode())
        if binary:
            f.write(pts.astype("<f8").tobytes())
            rec = np.zeros(len(fc), dtype=[("n", "u1"), ("v", "<i4", (3,))])
            rec["n"] = 3
            rec["v"] = fc
            f.write(rec.tobytes())
        else:
            for p in pts:
                f.write(("{:.17g} {:.17g} {:.17g}\n".format(*tuple(p))).encode())
            for t in fc:
                f.write(f"3 {t[0]} {t[1]} {t[2]}\n".encode())


def _triangulate(faces: list[list[int]], n: int, path: Any) -> I64:
    tris = [[f[0], f[i], f[i + 1]] for f in faces for i in range(1, len(f) - 1)]
    arr = np.asarray(tris, dtype=np.int64).reshape(-1, 3)
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        raise _fail(path, "face index out of range")
    return arr


# ---------------------------------------------------------------------------- OFF ------
_OFF_HEAD = re.compile(rb"^\s*(C?N?OFF)\s*")


def read_off(path: str | Path) -> tuple[F64, I64]:
    """Read an OFF mesh: ``(points (N, 3), faces (F, 3))``.

    Accepts comments (``#``), arbitrary whitespace and ModelNet's malformed first line
    where the counts follow ``OFF`` without a newline (``OFF490 406 0``).
    """
    raw = Path(path).read_bytes()
    m = _OFF_HEAD.match(raw)
    if not m:
        raise _fail(path, "not an OFF file (missing 'OFF' header)")
    text = raw[m.end() :]
    try:
        lines = text.decode("ascii").splitlines()
    except UnicodeDecodeError as exc:
        raise _fail(path, "OFF file is not ASCII") from exc
    tokens: list[str] = []
    for ln in lines:
        tokens.extend(ln.split("#", 1)[0].split())
    try:
        nv, nf = int(tokens[0]), int(tokens[1])
    except (IndexError, ValueError) as exc:
        raise _fail(path, "missing or bad vertex/face counts") from exc
    if nv < 0 or nf < 0:
        raise _fail(path, "negative counts")
    pos = 3
    if len(tokens) < pos + 3 * nv:
        raise _fail(path, f"truncated: expected {nv} vertices")
    try:
        pts = np.array(tokens[pos : pos + 3 * nv], dtype=np.float64).reshape(nv, 3)
    except ValueError as exc:
        raise _fail(path, "non-numeric vertex coordinate") from exc
    pos += 3 * nv
    faces: list[list[int]] = []
    for _ in range(nf):
        try:
            k = int(tokens[pos])
            face = [int(t) for t in tokens[pos + 1 : pos + 1 + k]]
        except (IndexError, ValueError) as exc:
            raise _fail(path, "truncated or bad face list") from exc
        if k < 0 or len(face) != k:
            raise _fail(path, "truncated face list")
        # colour values may follow the indices on the same line: skip to the next face by count
        pos += 1 + k
        while (
            pos < len(tokens)
            and len(faces) + 1 < nf
            and not _looks_like_face_start(tokens, pos, nv)
        ):
            pos += 1
        faces.append(face)
    return _check_points(pts, path), _triangulate(faces, nv, path)


def _looks_like_face_start(tokens: list[str], pos: int, nv: int) -> bool:
    try:
        k = int(tokens[pos])
    except ValueError:
        return False
    if k < 3 or pos + k >= len(tokens):
        return False
    try:
        return all(0 <= int(t) < nv for t in tokens[pos + 1 : pos + 1 + k])
    except ValueError:
        return False


def write_off(path: str | Path, points: Any, faces: Any) -> None:
    """Write points (N, 3) and triangles (F, 3) as an OFF file."""
    pts = np.asarray(points, dtype=np.float64)
    fc = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    with open(path, "w") as f:
        f.write(f"OFF\n{len(pts)} {len(fc)} 0\n")
        for p in pts:
            f.write("{:.17g} {:.17g} {:.17g}\n".format(*tuple(p)))
        for t in fc:
            f.write(f"3 {t[0]} {t[1]} {t[2]}\n")


# ---------------------------------------------------------------------------- PCD ------
def read_pcd(path: str | Path) -> tuple[F64, dict[str, npt.NDArray[Any]]]:
    """Read a PCD file (ASCII or binary, not binary_compressed): ``(points (N, 3), extra fields)``."""
    raw = Path(path).read_bytes()
    fields: list[str] = []
    sizes: list[int] = []
    types: list[str] = []
    counts: list[int] = []
    npts = None
    pos = 0
    mode = None
    while pos < len(raw):
        nl = raw.find(b"\n", pos)
        if nl < 0:
            raise _fail(path, "truncated PCD header")
        try:
            line = raw[pos:nl].decode("ascii").strip()
        except UnicodeDecodeError as exc:
            raise _fail(path, "PCD header is not ASCII") from exc
        pos = nl + 1
        if not line or line.startswith("#"):
            continue
        key, *vals = line.split()
        try:
            if key == "FIELDS":
                fields = vals
            elif key == "SIZE":
                sizes = [int(v) for v in vals]
            elif key == "TYPE":
                types = vals
            elif key == "COUNT":
                counts = [int(v) for v in vals]
            elif key == "POINTS":
                npts = int(vals[0])
            elif key == "DATA":
                mode = vals[0] if vals else None
                break
        except (ValueError, IndexError) as exc:
            raise _fail(path, f"bad PCD header line {line!r}") from exc
    if mode is None or npts is None or not fields:
        raise _fail(path, "not a PCD file (missing FIELDS/POINTS/DATA)")
    counts = counts or [1] * len(fields)
    if not (len(sizes) == len(types) == len(counts) == len(fields)) or npts < 0:
        raise _fail(path, "inconsistent PCD header")
    names = []
    dts = []
    for f, s, t, c in zip(fields, sizes, types, counts, strict=True):
        kind = {"F": "f", "I": "i", "U": "u"}.get(t)
        if kind is None or s not in (1, 2, 4, 8) or c < 1:
            raise _fail(path, f"unsupported PCD field {f}")
        for j in range(c):
            names.append(f if c == 1 else f"{f}_{j}")
            dts.append("<" + kind + str(s))
    dt = np.dtype(list(zip(names, dts, strict=True)))
    if mode == "ascii":
        try:
            arr = np.array(raw[pos:].split(), dtype=np.float64)
        except ValueError as exc:
            raise _fail(path, "non-numeric PCD data") from exc
        if arr.size < npts * len(names):
            raise _fail(path, "truncated PCD data")
        tab = arr[: npts * len(names)].reshape(npts, len(names))
        cols = {n: tab[:, j] for j, n in enumerate(names)}
    elif mode == "binary":
        if len(raw) - pos < dt.itemsize * npts:
            raise _fail(path, "truncated PCD data")
        rec = np.frombuffer(raw, dtype=dt, count=npts, offset=pos)
        cols = {n: rec[n].astype(np.float64) for n in names}
    else:
        raise _fail(path, f"unsupported PCD DATA mode {mode!r}")
    if not all(c in cols for c in "xyz"):
        raise _fail(path, "PCD has no x, y, z fields")
    pts = np.stack([cols["x"], cols["y"], cols["z"]], axis=1)
    return _check_points(pts, path), {k: v for k, v in cols.items() if k not in "xyz"}


def write_pcd(path: str | Path, points: Any, *, binary: bool = True) -> None:
    """Write points (N, 3) as a PCD v0.7 file (float32 x y z)."""
    pts = np.asarray(points, dtype=np.float32)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"points: expected shape (N, 3), got {pts.shape}")
    head = (
        "# .PCD v0.7\nVERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\n"
        f"WIDTH {len(pts)}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {len(pts)}\n"
        f"DATA {'binary' if binary else 'ascii'}\n"
    )
    with open(path, "wb") as f:
        f.write(head.encode())
        if binary:
            f.write(pts.astype("<f4").tobytes())
        else:
            for p in pts:
                f.write(("{:.9g} {:.9g} {:.9g}\n".format(*tuple(p))).encode())


# ------------------------------------------------------------------- LiDAR .bin --------
def read_lidar_bin(path: str | Path, columns: int | None = None) -> npt.NDArray[np.float32]:
    """Read a KITTI (float32 x 4: x, y, z, reflectance) or nuScenes (x 5: + ring index) scan.

    ``columns=None`` infers 5 for files named ``*.pcd.bin`` (nuScenes), else 4. Returns
    (N, columns) float32. A size that is not a multiple of the row size is a truncated file.
    """
    p = Path(path)
    if columns is None:
        columns = 5 if p.name.endswith(".pcd.bin") else 4
    if columns < 3:
        raise ValueError(f"columns: expected >= 3, got {columns}")
    raw = p.read_bytes()
    if len(raw) % (4 * columns):
        raise _fail(path, f"size {len(raw)} is not a multiple of {4 * columns} bytes (truncated?)")
    arr = np.frombuffer(raw, dtype="<f4").reshape(-1, columns).copy()
    if not np.isfinite(arr[:, :3]).all():
        raise _fail(path, "contains NaN or inf coordinates")
    return arr


def write_lidar_bin(path: str | Path, scan: Any) -> None:
    """Write a scan (N, C) as little-endian float32 rows."""
    arr = np.asarray(scan, dtype="<f4")
    if arr.ndim != 2 or arr.shape[1] < 3:
        raise ValueError(f"scan: expected shape (N, C>=3), got {arr.shape}")
    Path(path).write_bytes(arr.tobytes())


# ---------------------------------------------------------------------- meshes ---------
def read_mesh(path: str | Path) -> tuple[F64, I64]:
    """Read a mesh by extension (.ply, .off; anything else through open3d)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".ply":
        pts, faces, _ = read_ply(path)
        return pts, faces
    if suffix == ".off":
        return read_off(path)
    return read_mesh_open3d(path)


def read_mesh_open3d(path: str | Path) -> tuple[F64, I64]:
    """Read any mesh format open3d knows (.obj, .stl, .gltf, ...). Imports open3d lazily."""
    try:
        import open3d as o3d
    except ImportError as exc:  # pragma: no cover - environment dependent
        raise ImportError(
            "open3d is needed for this format: pip install 'certkit-pointcloud[io]'"
        ) from exc
    mesh = o3d.io.read_triangle_mesh(str(path))
    pts = np.asarray(mesh.vertices, dtype=np.float64)
    if len(pts) == 0:
        raise _fail(path, "open3d read no vertices")
    return _check_points(pts, path), np.asarray(mesh.triangles, dtype=np.int64).reshape(-1, 3)


def sample_surface(points: Any, faces: Any, n: int, seed: int = 0) -> F64:
    """Uniform samples on a triangle mesh surface, area-weighted: (n, 3).

    Deterministic from ``seed``. A mesh without faces (a point cloud) is sub-sampled instead.
    """
    pts = np.asarray(points, dtype=np.float64)
    fc = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    rng = np.random.default_rng(seed)
    if n < 1:
        raise ValueError(f"n: expected >= 1, got {n}")
    if len(fc) == 0:
        if len(pts) == 0:
            raise ValueError("points: empty mesh")
        return pts[rng.choice(len(pts), n, replace=len(pts) < n)]
    a, b, c = pts[fc[:, 0]], pts[fc[:, 1]], pts[fc[:, 2]]
    area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
    if not area.sum() > 0:
        raise ValueError("faces: mesh has zero surface area")
    tri = rng.choice(len(fc), size=n, p=area / area.sum())
    u, v = rng.random(n), rng.random(n)
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    return a[tri] + u[:, None] * (b[tri] - a[tri]) + v[:, None] * (c[tri] - a[tri])  # type: ignore[no-any-return]


__all__ = [
    "read_lidar_bin", "read_mesh", "read_mesh_open3d", "read_off", "read_pcd", "read_ply",
    "sample_surface", "write_lidar_bin", "write_off", "write_pcd", "write_ply",
]  # fmt: skip
