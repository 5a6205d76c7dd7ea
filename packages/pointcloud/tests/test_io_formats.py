"""Real-file formats never silently misread (issue #21, section 3): headerless LiDAR .bin
widths, OFF variants, PCD padding fields, PLY fast paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from certkit.pointcloud import io

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "pointcloud"
SCANS = {"kitti": ("kitti_000008.bin", (17238, 4)), "nuscenes": ("nuscenes_lidar_top.pcd.bin", (34688, 5)),
         "scannet": ("scannet_scene0000_00.bin", (40684, 6))}


# ------------------------------------------------------------------- LiDAR .bin --------
@pytest.mark.shared_data
@pytest.mark.parametrize("fmt", sorted(SCANS))
def test_real_scans_read_with_the_right_width(fmt: str) -> None:
    name, shape = SCANS[fmt]
    path = DATA / "lidar" / name
    if not path.is_file():
        pytest.skip(f"shared data absent: {path}")
    guessed = io.read_lidar_bin(path)  # the ScanNet file used to come back as (61026, 4)
    assert guessed.shape == shape
    np.testing.assert_array_equal(io.read_lidar_bin(path, format=fmt), guessed)
    np.testing.assert_array_equal(io.read_lidar_bin(path, columns=shape[1]), guessed)
    extent = np.abs(guessed[:, :3]).max()
    assert extent < (15 if fmt == "scannet" else 150)  # metres: a room, a street
    for other in sorted(set(SCANS) - {fmt}):
        width = len(io.LIDAR_FORMATS[other])
        if (guessed.size * 4) % (4 * width):
            continue  # not even the right size
        with pytest.raises(ValueError, match=f"does not look like a {other} scan"):
            io.read_lidar_bin(path, format=other)


def _synthetic(fmt: str, n: int = 3000) -> np.ndarray:
    rng = np.random.default_rng(len(fmt))
    xyz = rng.normal(size=(n, 3)) * [15, 15, 1]
    extra = {"kitti": rng.uniform(0, 1, (n, 1)),
             "nuscenes": np.c_[rng.integers(0, 256, n), np.arange(n) % 32],
             "scannet": rng.integers(0, 256, (n, 3))}[fmt]
    return np.c_[xyz, extra].astype(np.float32)


@pytest.mark.parametrize("fmt", sorted(io.LIDAR_FORMATS))
def test_guessed_width_is_checked(tmp_path: Path, fmt: str) -> None:
    # 12 * 500 rows: the file size fits 4, 5 and 6 float32 columns alike
    scan = _synthetic(fmt, 6000)
    io.write_lidar_bin(tmp_path / "s.bin", scan)
    np.testing.assert_array_equal(io.read_lidar_bin(tmp_path / "s.bin"), scan)
    # every other width is refused as a named format
    for other in sorted(set(io.LIDAR_FORMATS) - {fmt}):
        with pytest.raises(ValueError, match="does not look like"):
            io.read_lidar_bin(tmp_path / "s.bin", format=other)


def test_lidar_bin_arguments_and_ambiguity(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).normal(size=(600, 4)).astype(np.float32)
    io.write_lidar_bin(tmp_path / "n.bin", noise)
    with pytest.raises(ValueError, match="cannot tell the row width"):
        io.read_lidar_bin(tmp_path / "n.bin")  # negative 'reflectance': no format fits
    np.testing.assert_array_equal(io.read_lidar_bin(tmp_path / "n.bin", columns=4), noise)
    with pytest.raises(ValueError, match="contradicts"):
        io.read_lidar_bin(tmp_path / "n.bin", columns=5, format="kitti")
    with pytest.raises(ValueError, match="format"):
        io.read_lidar_bin(tmp_path / "n.bin", format="velodyne")
    with pytest.raises(ValueError, match="columns"):
        io.read_lidar_bin(tmp_path / "n.bin", columns=2)
    (tmp_path / "e.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        io.read_lidar_bin(tmp_path / "e.bin")
    # interleaving: a 6-column scan read as 4 columns is caught even by the generic check
    six = _synthetic("scannet", 6000)
    assert io._lidar_problem(six.reshape(-1, 4), None) is not None
    assert io._lidar_problem(six, None) is None


# ----------------------------------------------------------------------------- OFF ----
V = [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]


@pytest.mark.parametrize("text", [
    "COFF\n4 2 0\n0 0 0 255 0 0 255\n1 0 0 0 255 0 255\n0 1 0 0 0 255 255\n0 0 1 9 9 9 255\n3 0 1 2\n3 0 1 3\n",
    "NOFF\n4 2 0\n0 0 0 0 0 1\n1 0 0 0 0 1\n0 1 0 0 0 1\n0 0 1 0 0 1\n3 0 1 2\n3 0 1 3\n",
    "CNOFF\n4 2 0\n" + "".join(f"{a} {b} {c} 0 0 1 1 0 0 1\n" for a, b, c in V) + "3 0 1 2\n3 0 1 3\n",
    "STOFF\n4 2 0\n" + "".join(f"{a} {b} {c} 0.5 0.5\n" for a, b, c in V) + "3 0 1 2\n3 0 1 3\n",
    "OFF\n4 2\n" + "".join(f"{a} {b} {c}\n" for a, b, c in V) + "3 0 1 2\n3 0 1 3\n",  # no edge count
    "# written by hand\n\nOFF\n4 2 0\n" + "".join(f"{a} {b} {c}\n" for a, b, c in V) + "3 0 1 2\n3 0 1 3 1 0 0\n",
])
def test_off_variants(tmp_path: Path, text: str) -> None:
    (tmp_path / "v.off").write_text(text)
    pts, faces = io.read_off(tmp_path / "v.off")
    np.testing.assert_array_equal(pts, V)  # colours / normals are never read as coordinates
    assert faces.tolist() == [[0, 1, 2], [0, 1, 3]]


@pytest.mark.parametrize("text,msg", [
    ("4OFF\n1 0 0\n0 0 0 1\n", "unsupported OFF variant"),
    ("COFF\n2 0 0\n0 0 0\n1 1 1\n", "fewer than 4 values"),
    ("OFF\n2 0 0 7\n0 0 0\n1 1 1\n", "bad vertex/face counts"),
    ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n4 0 1 2\n", "truncated face line"),
])
def test_off_errors(tmp_path: Path, text: str, msg: str) -> None:
    (tmp_path / "b.off").write_text(text)
    with pytest.raises(ValueError, match=msg):
        io.read_off(tmp_path / "b.off")


# ----------------------------------------------------------------------------- PCD ----
PCD_HEAD = ("VERSION 0.7\nFIELDS x y z _ intensity _\nSIZE 4 4 4 1 4 1\nTYPE F F F U F U\n"
            "COUNT 1 1 1 4 1 12\nWIDTH 2\nHEIGHT 1\nPOINTS 2\nDATA {}\n")


def test_pcd_padding_fields(tmp_path: Path) -> None:
    rec = np.zeros(2, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("p", "V4"), ("i", "<f4"), ("q", "V12")])
    rec["x"], rec["y"], rec["z"], rec["i"] = [1, 4], [2, 5], [3, 6], [7, 8]
    (tmp_path / "b.pcd").write_bytes(PCD_HEAD.format("binary").encode() + rec.tobytes())
    (tmp_path / "a.pcd").write_text(PCD_HEAD.format("ascii") + "1 2 3 7\n4 5 6 8\n")  # PCL: no padding values
    (tmp_path / "c.pcd").write_text(PCD_HEAD.format("ascii") + "1 2 3 0 0 0 0 7" + " 0" * 12 + "\n"
                                    + "4 5 6 0 0 0 0 8" + " 0" * 12 + "\n")
    for name in ("a.pcd", "b.pcd", "c.pcd"):
        pts, extra = io.read_pcd(tmp_path / name)
        np.testing.assert_array_equal(pts, [[1, 2, 3], [4, 5, 6]])
        assert list(extra) == ["intensity"] and extra["intensity"].tolist() == [7, 8]
    (tmp_path / "d.pcd").write_text(PCD_HEAD.replace("intensity", "x").format("ascii") + "1 2 3 7\n")
    with pytest.raises(ValueError, match="duplicate"):
        io.read_pcd(tmp_path / "d.pcd")


# ----------------------------------------------------------------------------- PLY ----
def _ply(tmp_path: Path, fmt: str, faces: list[list[int]], face_extra: bool = False) -> Path:
    pts = np.random.default_rng(1).normal(size=(6, 3))
    head = (f"ply\nformat {fmt} 1.0\nelement vertex 6\nproperty double x\nproperty double y\n"
            f"property double z\nelement face {len(faces)}\nproperty list uchar int vertex_indices\n"
            + ("property uchar red\n" if face_extra else "") + "end_header\n")
    f = tmp_path / f"{fmt}.ply"
    if fmt == "ascii":
        body = "".join("{} {} {}\n".format(*p) for p in pts.tolist())
        body += "".join(f"{len(fc)} {' '.join(map(str, fc))}" + (" 200" if face_extra else "") + "\n"
                        for fc in faces)
        f.write_text(head + body)
    else:
        e = "<" if fmt == "binary_little_endian" else ">"
        raw = pts.astype(e + "f8").tobytes()
        for fc in faces:
            raw += np.uint8(len(fc)).tobytes() + np.asarray(fc, e + "i4").tobytes()
            raw += np.uint8(200).tobytes() if face_extra else b""
        f.write_bytes(head.encode() + raw)
    return f


@pytest.mark.parametrize("fmt", ["ascii", "binary_little_endian", "binary_big_endian"])
@pytest.mark.parametrize("face_extra", [False, True])
def test_ply_uniform_and_mixed_faces(tmp_path: Path, fmt: str, face_extra: bool) -> None:
    tri = [[0, 1, 2], [2, 3, 4], [1, 4, 5]]
    mixed = [[0, 1, 2, 3], [2, 3, 4], [0, 1, 2, 3, 4, 5]]  # quads, triangles, a hexagon: fanned
    _, f1, _ = io.read_ply(_ply(tmp_path, fmt, tri, face_extra))
    assert f1.tolist() == tri
    pts, f2, _ = io.read_ply(_ply(tmp_path, fmt, mixed, face_extra))
    assert f2.tolist() == [[0, 1, 2], [0, 2, 3], [2, 3, 4], [0, 1, 2], [0, 2, 3], [0, 3, 4], [0, 4, 5]]
    np.testing.assert_allclose(pts, np.random.default_rng(1).normal(size=(6, 3)))


@pytest.mark.parametrize("tail", [b"\x03\x00\x00\x00", b"\x07" + b"\x00" * 20])
def test_ply_binary_faces_truncated(tmp_path: Path, tail: bytes) -> None:
    head = (b"ply\nformat binary_little_endian 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
            b"property float z\nelement face 2\nproperty list uchar int vertex_indices\nend_header\n")
    body = np.zeros(9, "<f4").tobytes() + b"\x03" + np.arange(3, dtype="<i4").tobytes() + tail
    (tmp_path / "t.ply").write_bytes(head + body)
    with pytest.raises(ValueError, match="truncated"):
        io.read_ply(tmp_path / "t.ply")


@pytest.mark.shared_data
def test_real_meshes_match_open3d() -> None:
    o3d = pytest.importorskip("open3d")
    for name in ("bunny.ply", "fuze.ply", "featuretype.ply"):
        path = DATA / "meshes" / name
        if not path.is_file():
            pytest.skip(f"shared data absent: {path}")
        pts, faces, _ = io.read_ply(path)
        mesh = o3d.io.read_triangle_mesh(str(path))
        np.testing.assert_allclose(pts, np.asarray(mesh.vertices), rtol=1e-6)
        np.testing.assert_array_equal(faces, np.asarray(mesh.triangles))


def test_ply_ascii_rows_not_one_per_line(tmp_path: Path) -> None:
    # PLY does not require one row per line: split rows and blank lines fall back to the
    # number stream, and the result is the same
    head = ("ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
            "element face 1\nproperty list uchar int vertex_indices\nend_header\n")
    (tmp_path / "a.ply").write_text(head + "0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n")
    (tmp_path / "b.ply").write_text(head + "\n0 0\n0 1 0\n0 0 1\n0\n3 0 1\n2\n")
    pa, fa, _ = io.read_ply(tmp_path / "a.ply")
    pb, fb, _ = io.read_ply(tmp_path / "b.ply")
    np.testing.assert_array_equal(pa, pb)
    np.testing.assert_array_equal(fa, fb)
    assert fa.tolist() == [[0, 1, 2]]
    (tmp_path / "c.ply").write_text(head + "0 0 0\n1 0 x\n0 1 0\n3 0 1 2\n")
    with pytest.raises(ValueError, match="non-numeric"):
        io.read_ply(tmp_path / "c.ply")
