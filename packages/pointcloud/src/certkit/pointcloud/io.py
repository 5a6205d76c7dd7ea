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
import warnings
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
Prop = tuple[str, str, "str | None"]  # (name, item dtype, list count dtype or None)


class _PlyAscii:
    """Element reader over an ASCII PLY body.

    Rows are first read line by line with ``np.loadtxt`` (one element row per line, as PLY
    writers do; an element whose lists all have the first row's length is one table). When
    that does not fit (rows split over lines, lists of different lengths), the rest of the
    body is read as a stream of numbers (parsed at once by numpy), row by row where needed."""

    def __init__(self, body: bytes, path: Any) -> None:
        try:
            text = body.decode("ascii")
        except UnicodeDecodeError as exc:
            raise _fail(path, "non-ASCII bytes in the PLY body") from exc
        self.lines: list[str] | None = text.split("\n")
        self.line = 0
        self.tokens = np.zeros(0)
        self.pos, self.path = 0, path

    def _to_tokens(self) -> None:
        """Switch to the number stream for the rest of the body."""
        assert self.lines is not None
        rest = "\n".join(self.lines[self.line :])
        self.lines = None
        try:
            self.tokens = np.fromstring(rest, sep=" ")  # text mode: not deprecated
        except ValueError as exc:
            raise _fail(self.path, "non-numeric value in the PLY body") from exc

    def _widths(self, first: npt.NDArray[np.float64], props: list[Prop]) -> list[int] | None:
        """Column widths of each property given the first row (None: not a fixed layout)."""
        widths, at = [], 0
        for _p, _dt, ltype in props:
            if ltype is None:
                widths.append(1)
                at += 1
                continue
            if at >= len(first) or not float(first[at]).is_integer() or first[at] < 0:
                return None
            widths.append(1 + int(first[at]))
            at += 1 + int(first[at])
        return widths

    def element(self, name: str, count: int, props: list[Prop]) -> tuple[dict[str, Any], dict[str, Any]]:
        if not count:
            return ({p[0]: np.zeros(0) for p in props if p[2] is None},
                    {p[0]: np.zeros((0, 0), np.int64) for p in props if p[2] is not None})
        if self.lines is not None:
            rows = self.lines[self.line : self.line + count]
            tab = None
            if len(rows) == count:
                try:
                    with warnings.catch_warnings():  # blank lines: "no data", handled below
                        warnings.simplefilter("ignore")
                        tab = np.loadtxt(rows, dtype=np.float64, ndmin=2, comments=None)
                except ValueError:
                    tab = None
            widths = self._widths(tab[0], props) if tab is not None and len(tab) == count else None
            if tab is not None and widths is not None and sum(widths) == tab.shape[1]:
                got = self._split(name, tab, props, widths)
                if got is not None:
                    self.line += count
                    return got
            self._to_tokens()
        toks = self.tokens
        widths = self._widths(toks[self.pos :], props)
        if widths is None:
            return self._rows(name, count, props)  # raises the precise error
        need = count * sum(widths)
        if self.pos + need > len(toks):
            if not any(p[2] for p in props):
                raise _fail(self.path, f"truncated: element {name!r} needs {count} rows")
            return self._rows(name, count, props)
        got = self._split(name, toks[self.pos : self.pos + need].reshape(count, -1), props, widths)
        if got is None:
            return self._rows(name, count, props)  # lists of different lengths
        self.pos += need
        return got

    def _split(self, name: str, tab: npt.NDArray[np.float64], props: list[Prop],
               widths: list[int]) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """Columns of a (count, width) table per property; None if a list length differs."""
        scalars: dict[str, Any] = {}
        lists: dict[str, Any] = {}
        col = 0
        for (pname, _dt, ltype), w in zip(props, widths, strict=True):
            if ltype is None:
                scalars[pname] = tab[:, col]
            else:
                if not (tab[:, col] == w - 1).all():
                    return None
                vals = tab[:, col + 1 : col + w]
                if vals.size and not (vals == np.round(vals)).all():
                    raise _fail(self.path, f"non-integer list entry in element {name!r}")
                lists[pname] = vals.astype(np.int64)
            col += w
        return scalars, lists

    def _rows(self, name: str, count: int, props: list[Prop]) -> tuple[dict[str, Any], dict[str, Any]]:
        toks, path = self.tokens, self.path
        scal: dict[str, list[float]] = {p[0]: [] for p in props if p[2] is None}
        lists: dict[str, list[list[int]]] = {p[0]: [] for p in props if p[2] is not None}
        pos = self.pos
        for _ in range(count):
            for pname, _dt, ltype in props:
                if pos >= len(toks):
                    raise _fail(path, f"truncated in element {name!r}")
                if ltype is None:
                    scal[pname].append(float(toks[pos]))
                    pos += 1
                    continue
                v = float(toks[pos])
                if not v.is_integer() or v < 0:
                    raise _fail(path, f"bad list length {v!r} in element {name!r}")
                ln = int(v)
                entries = toks[pos + 1 : pos + 1 + ln]
                if not all(float(t).is_integer() for t in entries):
                    raise _fail(path, f"non-integer list entry in element {name!r}")
                vals = [int(t) for t in entries]
                if len(vals) != ln:
                    raise _fail(path, f"truncated list in element {name!r}")
                pos += 1 + ln
                lists[pname].append(vals)
        self.pos = pos
        return {k: np.asarray(v, np.float64) for k, v in scal.items()}, dict(lists)


class _PlyBinary:
    """Element reader over a binary PLY body (endian '<' or '>').

    Rows of fixed size (no lists, or every list as long as in the first row) are read with
    one ``np.frombuffer`` of a structured dtype; other elements row by row."""

    def __init__(self, body: bytes, endian: str, path: Any) -> None:
        self.body, self.endian, self.pos, self.path = body, endian, 0, path

    def element(self, name: str, count: int, props: list[Prop]) -> tuple[dict[str, Any], dict[str, Any]]:
        body, e, path = self.body, self.endian, self.path
        fields: list[tuple[str, str] | tuple[str, str, tuple[int]]] = []
        at = self.pos
        for j, (_pname, dtp, ltype) in enumerate(props):
            key = f"p{j}"
            if ltype is None:
                fields.append((key, e + dtp))
                at += np.dtype(dtp).itemsize
                continue
            if not count:
                ln = 0
            elif at + np.dtype(ltype).itemsize > len(body):
                raise _fail(path, "truncated binary list")
            else:
                ln = int(np.frombuffer(body, e + ltype, 1, at)[0])
            if ln < 0:
                raise _fail(path, "truncated binary list")
            fields.append((key + "_n", e + ltype))
            fields.append((key, e + dtp, (ln,)))
            at += np.dtype(ltype).itemsize + ln * np.dtype(dtp).itemsize
        dt = np.dtype(fields)  # type: ignore[call-overload]
        need = dt.itemsize * count
        has_list = any(p[2] for p in props)
        if self.pos + need > len(body):
            if not has_list:
                raise _fail(path, f"truncated: element {name!r} needs {need} bytes")
            return self._rows(name, count, props)
        rec = np.frombuffer(body, dtype=dt, count=count, offset=self.pos)
        scalars: dict[str, Any] = {}
        lists: dict[str, Any] = {}
        for j, (pname, _dtp, ltype) in enumerate(props):
            if ltype is None:
                scalars[pname] = rec[f"p{j}"]
                continue
            vals = rec[f"p{j}"]
            if count and not (rec[f"p{j}_n"] == vals.shape[1]).all():
                return self._rows(name, count, props)  # lists of different lengths
            lists[pname] = vals.astype(np.int64) if vals.dtype.kind in "iu" else vals
        self.pos += need
        return scalars, lists

    def _rows(self, name: str, count: int, props: list[Prop]) -> tuple[dict[str, Any], dict[str, Any]]:
        body, e, path = self.body, self.endian, self.path
        scal: dict[str, list[float]] = {p[0]: [] for p in props if p[2] is None}
        lists: dict[str, list[list[int]]] = {p[0]: [] for p in props if p[2] is not None}
        pos = self.pos
        for _ in range(count):
            for pname, dtp, ltype in props:
                if ltype is None:
                    size = np.dtype(dtp).itemsize
                    if pos + size > len(body):
                        raise _fail(path, "truncated binary element")
                    scal[pname].append(float(np.frombuffer(body, e + dtp, 1, pos)[0]))
                    pos += size
                    continue
                lsize = np.dtype(ltype).itemsize
                if pos + lsize > len(body):
                    raise _fail(path, "truncated binary list")
                ln = int(np.frombuffer(body, e + ltype, 1, pos)[0])
                pos += lsize
                isize = np.dtype(dtp).itemsize
                if ln < 0 or pos + ln * isize > len(body):
                    raise _fail(path, "truncated binary list")
                lists[pname].append(np.frombuffer(body, e + dtp, ln, pos).astype(np.int64).tolist())
                pos += ln * isize
        self.pos = pos
        return {k: np.asarray(v, np.float64) for k, v in scal.items()}, dict(lists)


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
    faces: I64 | list[list[int]] = np.zeros((0, 3), np.int64)
    if fmt == "ascii":
        reader = _PlyAscii(body, path)
    else:
        reader = _PlyBinary(body, "<" if fmt == "binary_little_endian" else ">", path)  # type: ignore[assignment]
    for name, count, props in elements:
        scalars, lists = reader.element(name, count, props)
        if name == "vertex":
            vertex = {k: v.astype(np.float64) for k, v in scalars.items()}
        elif name == "face":
            for key in ("vertex_indices", "vertex_index"):
                if key in lists:
                    faces = lists[key]
                    break
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


def _triangulate(faces: I64 | list[list[int]], n: int, path: Any) -> I64:
    """Fan polygons into triangles, face by face: faces (F, L) array or a list of index lists."""
    if isinstance(faces, np.ndarray):
        L = faces.shape[1]
        if L < 3:
            arr = np.zeros((0, 3), np.int64)
        else:
            arr = np.stack([np.broadcast_to(faces[:, :1], (len(faces), L - 2)), faces[:, 1:-1], faces[:, 2:]],
                           axis=2).reshape(-1, 3).astype(np.int64)
    else:
        tris = [[f[0], f[i], f[i + 1]] for f in faces for i in range(1, len(f) - 1)]
        arr = np.asarray(tris, dtype=np.int64).reshape(-1, 3)
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        raise _fail(path, "face index out of range")
    return arr


# ---------------------------------------------------------------------------- OFF ------
_OFF_HEAD = re.compile(r"^(ST)?(C)?(N)?(4)?(n)?OFF(?=\s|\d|-|\+|\.|$)")


def read_off(path: str | Path) -> tuple[F64, I64]:
    """Read an OFF mesh: ``(points (N, 3), faces (F, 3))``.

    Line-based, as geomview's format and open3d read it: the header keyword ``OFF`` with
    the optional prefixes ``ST`` (texture coordinates), ``C`` (colour) and ``N`` (normal)
    whose extra values follow x y z on each vertex line and are skipped; the counts line
    ``nv nf [ne]`` (the edge count may be left out); one vertex per line; one face per line
    (``k i_1 .. i_k`` and optional colour values after the indices). Comments (``#`` to
    the end of a line, also before the keyword), blank lines, arbitrary whitespace and
    ModelNet's malformed first line where the counts follow ``OFF`` without a newline
    (``OFF490 406 0``) are accepted. ``4OFF`` (homogeneous) and ``nOFF`` (n-dimensional)
    raise ValueError.
    """
    try:
        text = Path(path).read_bytes().decode("ascii")
    except UnicodeDecodeError as exc:
        raise _fail(path, "OFF file is not ASCII") from exc
    lines = [t for t in (ln.split("#", 1)[0].split() for ln in text.splitlines()) if t]
    m = _OFF_HEAD.match(lines[0][0]) if lines else None
    if not m:
        raise _fail(path, "not an OFF file (missing 'OFF' header)")
    if m.group(4) or m.group(5):
        raise _fail(path, f"unsupported OFF variant {m.group(0)!r} (4OFF / nOFF)")
    # values each vertex line must hold: x y z, then [normal (3)] [colour (>= 1)] [texture (2)]
    need = 3 + (3 if m.group(3) else 0) + (1 if m.group(2) else 0) + (2 if m.group(1) else 0)
    rest = lines[0][0][m.end():]
    head = ([rest] if rest else []) + lines[0][1:]
    body = lines[1:]
    if not head:
        if not body:
            raise _fail(path, "missing vertex/face counts")
        head, body = body[0], body[1:]
    try:
        if len(head) not in (2, 3):
            raise ValueError
        nv, nf = int(head[0]), int(head[1])
    except ValueError as exc:
        raise _fail(path, f"bad vertex/face counts {' '.join(head)!r}") from exc
    if nv < 0 or nf < 0:
        raise _fail(path, "negative counts")
    if len(body) < nv + nf:
        raise _fail(path, f"truncated: expected {nv} vertex and {nf} face lines, found {len(body)}")
    vrows = body[:nv]
    if any(len(r) < need for r in vrows):
        raise _fail(path, f"a vertex line has fewer than {need} values")
    try:
        pts = np.array([r[:3] for r in vrows], dtype=np.float64).reshape(nv, 3)
    except ValueError as exc:
        raise _fail(path, "non-numeric vertex coordinate") from exc
    faces: list[list[int]] = []
    for r in body[nv : nv + nf]:
        try:
            k = int(r[0])
            face = [int(t) for t in r[1 : 1 + k]]
        except ValueError as exc:
            raise _fail(path, f"bad face line {' '.join(r)!r}") from exc
        if k < 0 or len(face) != k:
            raise _fail(path, f"truncated face line {' '.join(r)!r}")
        faces.append(face)
    return _check_points(pts, path), _triangulate(faces, nv, path)


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
    for i, (f, s, t, c) in enumerate(zip(fields, sizes, types, counts, strict=True)):
        kind = {"F": "f", "I": "i", "U": "u"}.get(t)
        if kind is None or s not in (1, 2, 4, 8) or c < 1:
            raise _fail(path, f"unsupported PCD field {f}")
        if f == "_":  # PCL's padding (alignment) field, possibly several: read and dropped
            names.append(f"_pad{i}")
            dts.append(f"V{s * c}")
            continue
        for j in range(c):
            names.append(f if c == 1 else f"{f}_{j}")
            dts.append("<" + kind + str(s))
    if len(set(names)) != len(names):
        raise _fail(path, f"duplicate PCD field names in {' '.join(fields)!r}")
    dt = np.dtype(list(zip(names, dts, strict=True)))
    if mode == "ascii":
        try:
            arr = np.array(raw[pos:].split(), dtype=np.float64)
        except ValueError as exc:
            raise _fail(path, "non-numeric PCD data") from exc
        # padding fields in ASCII: PCL writes no value for them, other writers one per count
        pad = [n.startswith("_pad") for n in names]
        widths = [0 if p else 1 for p in pad]
        if arr.size != npts * sum(widths):
            widths = [counts[int(n[4:])] if p else 1 for n, p in zip(names, pad, strict=True)]
        width = sum(widths)
        if arr.size < npts * width:
            raise _fail(path, "truncated PCD data")
        tab = arr[: npts * width].reshape(npts, width)
        starts = np.cumsum([0, *widths[:-1]])
        cols = {n: tab[:, j] for j, n, p in zip(starts, names, pad, strict=True) if not p}
    elif mode == "binary":
        if len(raw) - pos < dt.itemsize * npts:
            raise _fail(path, "truncated PCD data")
        rec = np.frombuffer(raw, dtype=dt, count=npts, offset=pos)
        cols = {n: rec[n].astype(np.float64) for n in names if not n.startswith("_pad")}
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
#: Headerless ``.bin`` layouts (float32 rows): column names per named format.
LIDAR_FORMATS: dict[str, tuple[str, ...]] = {
    "kitti": ("x", "y", "z", "reflectance"),  # KITTI velodyne, reflectance in [0, 1]
    "nuscenes": ("x", "y", "z", "intensity", "ring"),  # nuScenes LIDAR_TOP: 0..255, ring 0..31
    "scannet": ("x", "y", "z", "r", "g", "b"),  # ScanNet point export: colours 0..255
}
_COORD_LIMIT = 1e4  # metres: beyond any LiDAR's range or indoor scene


def _lidar_problem(arr: npt.NDArray[np.float32], fmt: str | None) -> str | None:
    """Why the rows ``arr`` (N, C) are not a plausible scan of format ``fmt`` (None: they are).

    Checks: finite coordinates within 10 km; the format's value ranges (reflectance in
    [0, 1]; intensity and colours in [0, 255]; ring an integer in [0, 127]); and, for every
    column, that rows of each residue class mod 2..6 have the same median up to half the
    column's interquartile range. A wrong row width interleaves columns with a short period
    (e.g. 6 columns read as 4 repeat every 3 rows), which moves these medians by about
    the difference between the columns (measured on the three real scans: 1.0-1.8 IQR for
    a wrong width, below 0.2 for the right one).
    """
    xyz = arr[:, :3]
    if not np.isfinite(arr).all():
        return "non-finite values"
    if len(arr) and np.abs(xyz).max() > _COORD_LIMIT:
        return f"coordinates up to {np.abs(xyz).max():.3g} (more than {_COORD_LIMIT:g})"
    cols = LIDAR_FORMATS.get(fmt or "", ())
    for j, name in enumerate(cols[3:], start=3):
        v = arr[:, j]
        hi = 1.0 if name == "reflectance" else 127.0 if name == "ring" else 255.0
        if len(v) and (v.min() < 0 or v.max() > hi):
            return f"column {j} ({name}) outside [0, {hi:g}]: {v.min():.3g} .. {v.max():.3g}"
        if name == "ring" and not (v == np.round(v)).all():
            return f"column {j} (ring) is not integer"
    n = len(arr)
    for j in range(arr.shape[1]):
        v = arr[:, j].astype(np.float64)
        q25, q75 = np.percentile(v, [25, 75]) if n else (0.0, 0.0)
        iqr = q75 - q25
        if iqr <= 0:
            continue
        for period in range(2, 7):
            m = n // period * period
            if m < 20 * period:
                continue
            med = np.median(v[:m].reshape(-1, period), axis=0)
            if med.max() - med.min() > 0.5 * iqr:
                return (f"column {j} changes with the row index mod {period} (columns look "
                        "interleaved: wrong row width?)")
    return None


def read_lidar_bin(path: str | Path, columns: int | None = None, *,
                   format: str | None = None) -> npt.NDArray[np.float32]:
    """Read a headerless float32 scan ``.bin`` as (N, columns) float32.

    A ``.bin`` file does not record its row width, so name it: ``columns=`` (any width >= 3,
    read as is) or ``format=`` one of :data:`LIDAR_FORMATS` (``"kitti"`` x y z reflectance,
    ``"nuscenes"`` x y z intensity ring, ``"scannet"`` x y z r g b), whose value ranges are
    then checked. With neither, the width is guessed among the named formats whose row size
    divides the file (``*.pcd.bin`` tries nuScenes first), and the guess must pass the
    plausibility check of :func:`_lidar_problem` (value ranges and no interleaved columns):
    exactly one plausible format is used, otherwise ValueError asks for ``columns=`` or
    ``format=``. A size that is not a multiple of the row size is a truncated file.
    """
    p = Path(path)
    if format is not None and format not in LIDAR_FORMATS:
        raise ValueError(f"format: expected one of {sorted(LIDAR_FORMATS)}, got {format!r}")
    if columns is not None:
        if isinstance(columns, bool) or not isinstance(columns, int | np.integer) or columns < 3:
            raise ValueError(f"columns: expected an integer >= 3, got {columns!r}")
        if format is not None and columns != len(LIDAR_FORMATS[format]):
            raise ValueError(f"columns: {columns} contradicts format={format!r} "
                             f"({len(LIDAR_FORMATS[format])} columns)")
    raw = p.read_bytes()
    if len(raw) % 4:
        raise _fail(path, f"size {len(raw)} is not a multiple of 4 bytes (truncated?)")
    flat = np.frombuffer(raw, dtype="<f4")

    def rows(width: int) -> npt.NDArray[np.float32]:
        if flat.size % width:
            raise _fail(path, f"size {len(raw)} is not a multiple of {4 * width} bytes (truncated?)")
        return flat.reshape(-1, width).copy()

    if format is not None or columns is not None:
        arr = rows(columns if columns is not None else len(LIDAR_FORMATS[format or ""]))
        if not np.isfinite(arr[:, :3]).all():
            raise _fail(path, "contains NaN or inf coordinates")
        if format is not None and (why := _lidar_problem(arr, format)):
            raise _fail(path, f"does not look like a {format} scan: {why}; pass columns= to read it as is")
        return arr
    if flat.size == 0:
        raise _fail(path, "empty file: its row width cannot be guessed; pass columns= or format=")
    order = sorted(LIDAR_FORMATS, key=lambda f: (f != "nuscenes") if p.name.endswith(".pcd.bin") else 0)
    fits = [f for f in order if flat.size % len(LIDAR_FORMATS[f]) == 0]
    if not fits:
        raise _fail(path, f"size {len(raw)} fits no known row width (4, 5 or 6 float32; truncated?); "
                          "pass columns=")
    tried = {f: _lidar_problem(flat.reshape(-1, len(LIDAR_FORMATS[f])), f) for f in fits}
    good = [f for f in fits if tried[f] is None]
    if len(good) == 1:
        return rows(len(LIDAR_FORMATS[good[0]]))
    why = "; ".join(f"{f}: {w}" for f, w in tried.items() if w) if not good else f"{' and '.join(good)} both fit"
    raise _fail(path, f"cannot tell the row width ({why}); pass columns= or format=")


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
    "LIDAR_FORMATS", "read_lidar_bin", "read_mesh", "read_mesh_open3d", "read_off", "read_pcd", "read_ply",
    "sample_surface", "write_lidar_bin", "write_off", "write_pcd", "write_ply",
]  # fmt: skip
