"""ModelNet40-C and Robo3D corruptions, ring estimation, CE / mCE / mRR."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from certkit.pointcloud import lidar_corruptions as lc
from certkit.pointcloud.corruptions import CORRUPTIONS, SEVERITIES, corrupt
from certkit.pointcloud.data import make_shapes

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "pointcloud" / "lidar"


@pytest.fixture(scope="module")
def cloud() -> np.ndarray:
    return make_shapes(1, 128, seed=3)[0][0]


def test_all_object_corruptions_run_and_are_deterministic(cloud: np.ndarray) -> None:
    assert len(CORRUPTIONS) == 15
    for name in CORRUPTIONS:
        for s in SEVERITIES:
            a = corrupt(cloud, name, s, seed=1, index=2)
            assert a.dtype == np.float32 and a.ndim == 2 and a.shape[1] == 3 and len(a) >= 8
            assert np.isfinite(a).all()
            np.testing.assert_array_equal(a, corrupt(cloud, name, s, seed=1, index=2))
        assert not np.array_equal(corrupt(cloud, name, 3, index=0), corrupt(cloud, name, 3, index=1))


def test_object_corruption_parameters(cloud: np.ndarray) -> None:
    # published counts scale with N (table and N = 1024 checks: test_corruptions_published.py)
    n = len(cloud)
    for s in SEVERITIES:
        assert len(corrupt(cloud, "background", s)) == n + n // (45, 40, 35, 30, 20)[s - 1]
        assert len(corrupt(cloud, "upsampling", s)) == n + n // (5, 4, 3, 2, 1)[s - 1]
        r = corrupt(cloud, "rotation", s)  # rotation, then the bounding box re-normalised
        side = r.max(0) - r.min(0)
        assert side.max() == pytest.approx(2.0, rel=1e-5) and np.abs(r.max(0) + r.min(0)).max() < 1e-5
        assert len(corrupt(cloud, "cutout", s)) < n and len(corrupt(cloud, "density", s)) < n
        assert len(corrupt(cloud, "density_inc", s)) == n // 2
    g = [float(np.std(corrupt(cloud, "gaussian", s) - cloud)) for s in SEVERITIES]
    assert g == sorted(g)
    np.testing.assert_allclose(g, [0.01, 0.015, 0.02, 0.025, 0.03], rtol=0.2)
    for s in SEVERITIES:  # a view hides part of the cloud; resampled to N (occlusion), 3/4 N (lidar)
        o = corrupt(cloud, "occlusion", s)
        assert len(o) == n and len(np.unique(o, axis=0)) < 0.8 * n
        assert len(corrupt(cloud, "lidar", s)) == (3 * n) // 4


def test_object_corruption_bad_input(cloud: np.ndarray) -> None:
    with pytest.raises(ValueError, match="name"):
        corrupt(cloud, "teleport", 1)
    with pytest.raises(ValueError, match="severity"):
        corrupt(cloud, "gaussian", 6)
    with pytest.raises(ValueError, match="x:"):
        corrupt(np.full((32, 3), np.inf), "gaussian", 1)
    with pytest.raises(ValueError, match="x:"):
        corrupt(cloud[:4], "gaussian", 1)


def _scan(n_beams: int = 16, per: int = 200, ring_col: bool = False) -> np.ndarray:
    """Synthetic scan: beams at evenly spaced elevations, ranges 5..40 m, a ground plane."""
    rng = np.random.default_rng(0)
    elev = np.radians(np.linspace(-20, 2, n_beams, endpoint=False) + 22 / n_beams / 2)
    rows = []
    for b, e in enumerate(elev):
        az = rng.uniform(-np.pi, np.pi, per)
        r = rng.uniform(5, 40, per)
        rows.append(np.column_stack([r * np.cos(e) * np.cos(az), r * np.cos(e) * np.sin(az),
                                     r * np.sin(e), rng.uniform(0, 1, per), np.full(per, b)]))
    s = np.vstack(rows)
    return s if ring_col else s[:, :4]


def test_ring_estimation() -> None:
    s5 = _scan(ring_col=True)
    np.testing.assert_array_equal(lc.estimate_ring(s5), s5[:, 4])  # nuScenes column wins
    est = lc.estimate_ring(s5[:, :4], n_beams=16, fov=(-20.0, 2.0), method="elevation")
    np.testing.assert_array_equal(est, s5[:, 4])
    assert (lc.estimate_ring(s5[:, :4], n_beams=16, method="elevation") == s5[:, 4]).mean() > 0.95
    with pytest.raises(ValueError, match="method"):
        lc.estimate_ring(s5[:, :4], method="guess")


def test_lidar_corruptions_run_and_match_their_definitions() -> None:
    s5 = _scan(ring_col=True)
    s = s5[:, :4]
    assert len(lc.LIDAR_CORRUPTIONS) == 8
    labels = np.arange(len(s), dtype=np.int64) % 3  # incomplete echo needs labels (car = 1)
    for name in lc.LIDAR_CORRUPTIONS:
        for sev in lc.LIDAR_SEVERITIES:
            out = lc.corrupt_scan(s, name, sev, seed=1, labels=labels)
            assert out.shape[1] == 4 and np.isfinite(out).all() and len(out) > 0
            np.testing.assert_array_equal(out, lc.corrupt_scan(s, name, sev, seed=1, labels=labels))
    # beam missing drops whole rings (a 32-beam sensor: 8, 16, 24 draws from rings 2..29)
    for sev in lc.LIDAR_SEVERITIES:
        out = lc.corrupt_scan(s5, "beam_missing", sev)
        gone = set(range(16)) - set(np.unique(out[:, 4]).astype(int))
        assert 1 <= len(gone) <= 8 * sev and gone <= set(range(2, 30))
    out = lc.corrupt_scan(s5, "cross_sensor", 3)  # rings arange(1, 32, 1.33) removed
    assert not set(np.unique(out[:, 4]).astype(int)) & set(lc.cross_sensor_rings(3, 32).tolist())
    # fog loses no point; heavy fog (beta = 0.2) turns every return beyond 30 m into a fog
    # return within 10 m, whatever alpha is drawn (test_lidar_weather.py checks the rule)
    for v in (1, 2, 3):
        assert len(lc.corrupt_scan(s, "fog", v, seed=2)) == len(s)
    far = np.linalg.norm(s[:, :3], axis=1) > 30
    assert far.sum() > 100 and np.linalg.norm(lc.corrupt_scan(s, "fog", 3)[far, :3], axis=1).max() < 10
    mb = lc.corrupt_scan(s, "motion_blur", 3) - s  # one global offset, jitter <= 3 std
    assert np.abs(mb[:, :3] - np.median(mb[:, :3], axis=0)).max() < 2 * 0.3 + 1e-5
    ct = lc.corrupt_scan(s, "crosstalk", 3)
    assert np.any(ct != s.astype(np.float32), axis=1).sum() == int(0.01 * len(s))
    with pytest.raises(ValueError, match="severity"):
        lc.corrupt_scan(s, "fog", 4)
    with pytest.raises(ValueError, match="scan"):
        lc.corrupt_scan(s[:, :3], "fog", 1)


def test_object_round_trip_and_object_corruption() -> None:
    X, _ = make_shapes(1, 64, seed=0)
    np.testing.assert_allclose(lc.scan_to_object(lc.object_scan(X[0])), X[0], atol=1e-5)
    for name in lc.LIDAR_CORRUPTIONS:
        out = lc.corrupt_object(X[0], name, 2)
        assert out.shape[1] == 3 and np.isfinite(out).all()


@pytest.mark.shared_data
def test_lidar_corruptions_on_real_kitti_scan() -> None:
    path = DATA / "kitti_000008.bin"
    if not path.exists():
        pytest.skip(f"shared data absent: {path}")
    from certkit.pointcloud.io import read_lidar_bin

    scan = read_lidar_bin(path, format="kitti")
    ring = lc.estimate_ring(scan, 64, fov=(-24.9, 2.0), method="elevation")
    assert 40 <= len(np.unique(ring)) <= 64
    sizes = {}
    cars = (np.arange(len(scan)) % 10 == 0).astype(np.int64)  # a tenth of the points labelled car
    for name in lc.LIDAR_CORRUPTIONS:
        for sev in lc.LIDAR_SEVERITIES:
            out = lc.corrupt_scan(scan, name, sev, labels=cars)
            assert np.isfinite(out).all() and out.shape[1] == 4
            sizes[name, sev] = len(out)
    for name in ("beam_missing", "cross_sensor", "incomplete_echo", "wet_ground"):
        assert sizes[name, 3] < len(scan)
    assert sizes["beam_missing", 1] > sizes["beam_missing", 3]


def test_ce_mce_mrr_against_hand_computation() -> None:
    acc = np.array([[0.9, 0.8, 0.7], [0.6, 0.5, 0.4]])
    base = np.array([[0.8, 0.7, 0.6], [0.6, 0.5, 0.4]])
    ce = lc.corruption_error(acc, base)
    np.testing.assert_allclose(ce, [(0.1 + 0.2 + 0.3) / (0.2 + 0.3 + 0.4), 1.0])
    assert lc.mce(acc, base) == pytest.approx(ce.mean())
    assert lc.mce(base, base) == pytest.approx(1.0)
    perfect = np.ones((1, 3))
    assert lc.corruption_error(perfect, perfect)[0] == 1.0
    assert lc.corruption_error(acc[:1], perfect)[0] == np.inf
    np.testing.assert_allclose(lc.resilience_rate(acc, 0.95), [0.8 / 0.95, 0.5 / 0.95])
    assert lc.mrr(acc, 0.95) == pytest.approx((0.8 + 0.5) / 2 / 0.95)
    with pytest.raises(ValueError, match="acc"):
        lc.mce(acc, base[:1])
    with pytest.raises(ValueError, match="acc_clean"):
        lc.mrr(acc, 0.0)
