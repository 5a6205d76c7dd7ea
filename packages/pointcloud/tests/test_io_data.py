"""Readers/writers, the embedded dataset and the ModelNet40 loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certkit.pointcloud import io
from certkit.pointcloud.data import CLASSES, load_modelnet40_h5, load_modelnet40_off, make_shapes

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "pointcloud"


def _cube() -> tuple[np.ndarray, np.ndarray]:
    p = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], float)
    f = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                  [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])  # fmt: skip
    return p, f


@pytest.mark.parametrize("binary", [True, False])
def test_ply_roundtrip(tmp_path: Path, binary: bool) -> None:
    p, f = _cube()
    io.write_ply(tmp_path / "c.ply", p, f, binary=binary)
    q, g, extra = io.read_ply(tmp_path / "c.ply")
    np.testing.assert_array_equal(q, p)
    np.testing.assert_array_equal(g, f)
    assert extra == {}


def test_off_roundtrip_and_malformed_header(tmp_path: Path) -> None:
    p, f = _cube()
    io.write_off(tmp_path / "c.off", p, f)
    q, g = io.read_off(tmp_path / "c.off")
    np.testing.assert_array_equal(q, p)
    np.testing.assert_array_equal(g, f)
    (tmp_path / "m.off").write_text(
        "OFF8 2 0\n"
        + "\n".join("{:g} {:g} {:g}".format(*tuple(r)) for r in p)
        + "\n4 0 1 3 2\n3 4 5 6\n"
    )
    q, g = io.read_off(tmp_path / "m.off")
    assert q.shape == (8, 3) and g.tolist() == [[0, 1, 3], [0, 3, 2], [4, 5, 6]]


@pytest.mark.parametrize("binary", [True, False])
def test_pcd_roundtrip(tmp_path: Path, binary: bool) -> None:
    p = np.random.default_rng(0).normal(size=(30, 3)).astype(np.float32)
    io.write_pcd(tmp_path / "a.pcd", p, binary=binary)
    q, _ = io.read_pcd(tmp_path / "a.pcd")
    np.testing.assert_allclose(q, p, rtol=1e-6)


def test_lidar_bin_roundtrip_and_truncation(tmp_path: Path) -> None:
    s = np.random.default_rng(0).normal(size=(10, 5)).astype(np.float32)
    io.write_lidar_bin(tmp_path / "a.pcd.bin", s)
    np.testing.assert_array_equal(io.read_lidar_bin(tmp_path / "a.pcd.bin", columns=5), s)
    (tmp_path / "b.bin").write_bytes(s.tobytes()[:-3])
    with pytest.raises(ValueError, match="truncated"):
        io.read_lidar_bin(tmp_path / "b.bin")


@pytest.mark.parametrize(
    "text",
    [
        "OFF\n3 1 0\n0 0 0\n1 0 0\n",  # truncated vertices
        "OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n",  # face index out of range
        "OFF\n1 0 0\nnan 0 0\n",  # NaN
        "ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\nend_header\n0 0 0\n",
    ],
)
def test_bad_files_raise_value_error(tmp_path: Path, text: str) -> None:
    f = tmp_path / ("x.off" if text.startswith("OFF") else "x.ply")
    f.write_text(text)
    with pytest.raises(ValueError):
        io.read_mesh(f)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=300), st.sampled_from(["ply", "off", "pcd", "bin"]))
def test_fuzz_readers_never_crash(tmp_path: Path, blob: bytes, kind: str) -> None:
    prefix = {
        "ply": b"ply\nformat binary_little_endian 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\nend_header\n",
        "off": b"OFF\n",
        "pcd": b"FIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nPOINTS 2\nDATA binary\n",
        "bin": b"",
    }[kind]
    f = tmp_path / f"fuzz.{kind}"
    for data in (blob, prefix + blob):
        f.write_bytes(data)
        reader = {
            "ply": io.read_ply,
            "off": io.read_off,
            "pcd": io.read_pcd,
            "bin": io.read_lidar_bin,
        }[kind]
        try:
            reader(f)
        except ValueError:
            pass


def test_sample_surface_is_on_the_mesh() -> None:
    p, f = _cube()
    s = io.sample_surface(p, f, 500, seed=1)
    on_face = np.isclose(s, 0) | np.isclose(s, 1)
    assert on_face.any(axis=1).all() and ((s >= -1e-12) & (s <= 1 + 1e-12)).all()
    np.testing.assert_array_equal(s, io.sample_surface(p, f, 500, seed=1))


@pytest.mark.shared_data
def test_real_files() -> None:
    if not DATA.is_dir():
        pytest.skip(f"shared data not found at {DATA}")
    pts, _, _ = io.read_ply(DATA / "meshes" / "points_ascii.ply")
    pts2, _, _ = io.read_ply(DATA / "meshes" / "points_bin.ply")
    assert pts.shape == (5, 3) and pts2.shape == (5, 3)
    for name in ("comments.off", "whitespace.off"):
        q, g = io.read_off(DATA / "meshes" / name)
        assert q.shape == (8, 3) and len(g) == 12
    k = io.read_lidar_bin(DATA / "lidar" / "kitti_000008.bin")
    n = io.read_lidar_bin(DATA / "lidar" / "nuscenes_lidar_top.pcd.bin")
    assert k.shape == (17238, 4) and n.shape == (34688, 5)
    assert set(np.unique(n[:, 4]).astype(int)) <= set(range(32))
    bunny, faces, _ = io.read_ply(DATA / "meshes" / "bunny.ply")
    assert io.sample_surface(bunny, faces, 256).shape == (256, 3)


def test_make_shapes_deterministic_and_normalised() -> None:
    X, y = make_shapes(16, 128, seed=3)
    X2, _ = make_shapes(16, 128, seed=3)
    Xt, _ = make_shapes(16, 128, seed=3, split="test")
    np.testing.assert_array_equal(X, X2)
    assert not np.allclose(X, Xt)
    assert X.shape == (16, 128, 3) and X.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(X, axis=2).max(1), 1.0, rtol=1e-5)
    assert sorted(set(y.tolist())) == list(range(len(CLASSES)))
    with pytest.raises(ValueError):
        make_shapes(4, 64, num_classes=99)


def test_modelnet40_off_loader(tmp_path: Path) -> None:
    p, f = _cube()
    for c in ("airplane", "chair"):
        for i in range(2):
            d = tmp_path / c / "train"
            d.mkdir(parents=True, exist_ok=True)
            io.write_off(d / f"{c}_{i}.off", p * (i + 1), f)
    X, y, names = load_modelnet40_off(tmp_path, "train", 64)
    assert X.shape == (4, 64, 3) and names == ["airplane", "chair"] and y.tolist() == [0, 0, 1, 1]
    with pytest.raises(ValueError):
        load_modelnet40_off(tmp_path, "test")


def test_modelnet40_h5_loader(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(0)
    parts = []
    for i in (1, 0, 10):  # read in numeric order: 0, 1, 10
        data = rng.normal(size=(3 + i, 16, 3)).astype(np.float32)
        lab = (np.arange(3 + i) % 3).astype(np.uint8)[:, None]
        with h5py.File(tmp_path / f"ply_data_train{i}.h5", "w") as h:
            h["data"], h["label"] = data, lab
        parts.append((i, data, lab))
    (tmp_path / "shape_names.txt").write_text("airplane\nbathtub\nbed\n")
    X, y, names = load_modelnet40_h5(tmp_path, "train", n_points=8)
    order = sorted(parts, key=lambda t: t[0])
    np.testing.assert_array_equal(X, np.concatenate([d[:, :8] for _, d, _ in order]))
    np.testing.assert_array_equal(y, np.concatenate([lb[:, 0] for _, _, lb in order]))
    assert X.dtype == np.float32 and y.dtype == np.int64 and names == ["airplane", "bathtub", "bed"]
    with pytest.raises(ValueError, match="n_points"):
        load_modelnet40_h5(tmp_path, "train", n_points=17)
    with pytest.raises(ValueError, match="no ply_data_test"):
        load_modelnet40_h5(tmp_path, "test")
    # truncated file, wrong shapes, NaN, labels beyond the names
    good = (tmp_path / "ply_data_train0.h5").read_bytes()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "ply_data_train0.h5").write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="ply_data_train0"):
        load_modelnet40_h5(bad)
    for data, lab, msg in (
        (np.zeros((2, 4, 2), np.float32), np.zeros((2, 1), np.int64), "shape"),
        (np.full((2, 4, 3), np.nan, np.float32), np.zeros((2, 1), np.int64), "NaN"),
        (np.zeros((2, 4, 3), np.float32), np.zeros((3, 1), np.int64), "label"),
        (np.zeros((2, 4, 3), np.float32), np.full((2, 1), 7, np.int64), "labels outside"),
    ):
        with h5py.File(bad / "ply_data_train0.h5", "w") as h:
            h["data"], h["label"] = data, lab
        (bad / "shape_names.txt").write_text("a\nb\n")
        with pytest.raises(ValueError, match=msg):
            load_modelnet40_h5(bad)
