"""Robo3D's 8 LiDAR corruptions x 3 severities, re-implemented, and the robustness metrics.

Kong, Liu, Li, Chen, Zhang, Cottereau, Ooi, Liu, "Robo3D: Towards Robust and Reliable 3D
Perception against Corruptions", ICCV 2023, arXiv:2303.17597. The corruption list and the
metric formulas are the paper's; the physical models are simplified re-implementations of
the ideas it builds on (fog: the Beer-Lambert attenuation and back-scatter of Hahner et al.
2021; wet ground: reduced ground reflectivity; snow: scatter returns from flakes), and the
severity parameters are recalled, not read (marked ``# recalled``), so they are approximate.
Robo3D's code is CC BY-NC-SA; none of it was used.

A scan is (N, C) float32 with C >= 4: x, y, z (metres, sensor at the origin), intensity in
[0, 1] (KITTI's reflectance), and optionally a 5th column with the ring index (nuScenes).
Where no ring column exists, the ring is estimated from the elevation angle
(:func:`estimate_ring`). Every corruption returns a new (N', C) scan.

Metrics (Robo3D, Eq. 1-2): for corruption i with accuracies A_{i,l} over severities l,
``CE_i = sum_l (1 - A_{i,l}) / sum_l (1 - A^base_{i,l})``, ``mCE = mean_i CE_i``,
``RR_i = sum_l A_{i,l} / (L * A_clean)``, ``mRR = mean_i RR_i``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


def _check_scan(scan: Any) -> F64:
    s = np.asarray(scan, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] < 4:
        raise ValueError(f"scan: expected shape (N, >=4) (x, y, z, intensity[, ring]), got {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("scan: contains NaN or inf")
    return s


def estimate_ring(scan: Any, n_beams: int = 64, fov: tuple[float, float] | None = None) -> npt.NDArray[np.int64]:
    """Ring index per point: the 5th column when present, else binned elevation angle.

    ``fov`` (degrees, low, high): the sensor's vertical field of view (KITTI's HDL-64E is
    about (-24.9, 2.0)); None uses the scan's own range. Beams are assumed evenly spaced.
    """
    s = _check_scan(scan)
    if s.shape[1] >= 5:
        return s[:, 4].round().astype(np.int64)
    elev = np.degrees(np.arctan2(s[:, 2], np.linalg.norm(s[:, :2], axis=1)))
    lo, hi = fov if fov is not None else (float(elev.min()), float(elev.max()))
    r = np.floor((elev - lo) / max(hi - lo, 1e-9) * n_beams)
    return np.clip(r, 0, n_beams - 1).astype(np.int64)


def _ground(s: F64) -> npt.NDArray[np.bool_]:
    """Rough ground mask: within 0.3 m of the 5th height percentile of points within 20 m."""
    rng_xy = np.linalg.norm(s[:, :2], axis=1)
    near = s[rng_xy < 20, 2]
    h = np.percentile(near if near.size > 10 else s[:, 2], 5)
    return s[:, 2] < h + 0.3  # type: ignore[no-any-return]


def fog(s: F64, sev: int, rng: np.random.Generator) -> F64:
    """Beer-Lambert loss exp(-2 beta r) of each return; lost returns become back-scatter
    points at a random shorter range with low intensity. beta in {0.008, 0.02, 0.05} /m."""
    beta = (0.008, 0.02, 0.05)[sev - 1]  # recalled order of magnitude
    out = s.copy()
    r = np.linalg.norm(s[:, :3], axis=1)
    lost = rng.random(len(s)) > np.exp(-2 * beta * r)
    scatter = lost & (rng.random(len(s)) < 0.5)
    f = rng.uniform(0.05, 0.6, size=scatter.sum())
    out[scatter, :3] *= f[:, None]
    out[scatter, 3] *= 0.1
    out[:, 3] *= np.exp(-2 * beta * r)
    return out[~lost | scatter]


def wet_ground(s: F64, sev: int, rng: np.random.Generator) -> F64:
    """Ground reflectivity drops (water film): ground intensities scale by rho and ground
    returns below a detection threshold vanish. rho in {0.5, 0.3, 0.15}."""
    rho = (0.5, 0.3, 0.15)[sev - 1]  # ours
    g = _ground(s)
    out = s.copy()
    out[g, 3] *= rho
    thr = 0.05
    drop = g & (out[:, 3] < thr) & (rng.random(len(s)) < 0.9)
    return out[~drop]


def snow(s: F64, sev: int, rng: np.random.Generator) -> F64:
    """Snowflakes: a fraction of beams return early (random range 1-15 m along the same ray,
    low intensity), the others get range jitter. rate in {0.02, 0.05, 0.1}."""
    rate = (0.02, 0.05, 0.1)[sev - 1]  # ours
    out = s.copy()
    r = np.linalg.norm(s[:, :3], axis=1).clip(1e-6)
    hit = rng.random(len(s)) < rate
    new_r = np.minimum(rng.uniform(1.0, 15.0, size=hit.sum()), r[hit])
    out[hit, :3] *= (new_r / r[hit])[:, None]
    out[hit, 3] = rng.uniform(0, 0.1, size=hit.sum())
    jit = 1 + rng.normal(scale=0.005 * sev, size=(~hit).sum())
    out[~hit, :3] *= jit[:, None]
    return out


def motion_blur(s: F64, sev: int, rng: np.random.Generator) -> F64:
    """Ego-motion during a sweep: x, y jitter with sigma in {0.2, 0.25, 0.3} m."""
    sigma = (0.20, 0.25, 0.30)[sev - 1]  # recalled
    out = s.copy()
    out[:, :2] += rng.normal(scale=sigma, size=(len(s), 2))
    return out


def beam_missing(s: F64, sev: int, rng: np.random.Generator, ring: Any = None) -> F64:
    """A random subset of rings vanishes: {1/4, 1/2, 3/4} of the beams."""
    ring = estimate_ring(s) if ring is None else np.asarray(ring)
    beams = np.unique(ring)
    frac = (0.25, 0.5, 0.75)[sev - 1]  # recalled: 48/32/16 of 64 beams kept
    gone = rng.choice(beams, round(frac * len(beams)), replace=False)
    return s[~np.isin(ring, gone)]


def crosstalk(s: F64, sev: int, rng: np.random.Generator) -> F64:
    """Another sensor's pulses: a fraction {0.006, 0.008, 0.01} of points are replaced by
    returns at a random range along their ray, plus 3 m Gaussian clutter."""
    frac = (0.006, 0.008, 0.01)[sev - 1]  # recalled
    out = s.copy()
    idx = rng.choice(len(s), max(1, int(frac * len(s))), replace=False)
    r = np.linalg.norm(s[idx, :3], axis=1, keepdims=True).clip(1e-6)
    out[idx, :3] = s[idx, :3] / r * rng.uniform(1.0, 60.0, size=(len(idx), 1))
    out[idx, :3] += rng.normal(scale=3.0, size=(len(idx), 3))
    return out


def incomplete_echo(s: F64, sev: int, rng: np.random.Generator) -> F64:
    """Dark, specular surfaces return no echo: non-ground points with intensity below the
    median (a stand-in for Robo3D's vehicle points, which need labels) are dropped with
    probability {0.75, 0.85, 0.95}."""
    p = (0.75, 0.85, 0.95)[sev - 1]  # recalled
    cand = ~_ground(s) & (s[:, 3] <= np.median(s[:, 3]))
    drop = cand & (rng.random(len(s)) < p)
    return s[~drop]


def cross_sensor(s: F64, sev: int, rng: np.random.Generator, ring: Any = None) -> F64:
    """A sensor with fewer beams: keep every 2nd ring (light, moderate: plus 30% point
    drop) or every 4th ring (heavy)."""
    ring = estimate_ring(s) if ring is None else np.asarray(ring)
    step, drop = ((2, 0.0), (2, 0.3), (4, 0.0))[sev - 1]  # ours
    keep = (ring % step == 0) & (rng.random(len(s)) >= drop)
    return s[keep]


LIDAR_CORRUPTIONS: dict[str, Callable[..., F64]] = {
    "fog": fog,
    "wet_ground": wet_ground,
    "snow": snow,
    "motion_blur": motion_blur,
    "beam_missing": beam_missing,
    "crosstalk": crosstalk,
    "incomplete_echo": incomplete_echo,
    "cross_sensor": cross_sensor,
}
LIDAR_SEVERITIES = (1, 2, 3)


def corrupt_scan(
    scan: Any, name: str, severity: int, *, seed: int = 0, index: int = 0, n_beams: int = 64
) -> F32:
    """Apply Robo3D corruption ``name`` at severity 1 (light), 2 (moderate) or 3 (heavy)."""
    if name not in LIDAR_CORRUPTIONS:
        raise ValueError(f"name: unknown corruption {name!r}; expected one of {sorted(LIDAR_CORRUPTIONS)}")
    if severity not in LIDAR_SEVERITIES:
        raise ValueError(f"severity: expected 1, 2 or 3, got {severity!r}")
    s = _check_scan(scan)
    if len(s) < 8:
        raise ValueError(f"scan: expected at least 8 points, got {len(s)}")
    rng = np.random.default_rng([seed, list(LIDAR_CORRUPTIONS).index(name), severity, index])
    fn = LIDAR_CORRUPTIONS[name]
    if name in ("beam_missing", "cross_sensor"):
        return fn(s, severity, rng, ring=estimate_ring(s, n_beams)).astype(np.float32)  # type: ignore[no-any-return]
    return fn(s, severity, rng).astype(np.float32)  # type: ignore[no-any-return]


def object_scan(cloud: Any, distance: float = 10.0, size: float = 2.0, intensity: float = 0.5) -> F64:
    """Place a unit-sphere object cloud (N, 3) ``distance`` metres ahead of a sensor as a scan."""
    c = np.asarray(cloud, dtype=np.float64)
    xyz = c * (size / 2) + np.array([distance, 0.0, 0.0])
    xyz[:, 2] -= 1.0  # sensor roughly 1 m above the object's centre
    return np.column_stack([xyz, np.full(len(c), intensity)])


def scan_to_object(scan: Any, distance: float = 10.0, size: float = 2.0) -> F32:
    """Inverse of :func:`object_scan` on the xyz columns: back to the object's frame."""
    s = np.asarray(scan, dtype=np.float64)[:, :3].copy()
    s[:, 2] += 1.0
    return ((s - np.array([distance, 0.0, 0.0])) / (size / 2)).astype(np.float32)


def corrupt_object(
    cloud: Any, name: str, severity: int, *, seed: int = 0, index: int = 0, crop: float = 1.5
) -> F32:
    """A LiDAR corruption applied to an object cloud seen from 10 m (rings from elevation),
    then cropped, as an object detector's box would, to radius ``crop`` in the object frame
    (the 8 nearest points are kept if fewer remain)."""
    out = scan_to_object(corrupt_scan(object_scan(cloud), name, severity, seed=seed, index=index))
    r = np.linalg.norm(out, axis=1)
    keep = r <= crop
    if keep.sum() < 8:
        keep = np.zeros(len(out), bool)
        keep[np.argsort(r, kind="stable")[: min(8, len(out))]] = True
    return out[keep]


def corruption_error(acc: Any, acc_base: Any) -> F64:
    """CE per corruption: ``sum_l (1 - A) / sum_l (1 - A_base)``; acc, acc_base (C, L).

    Where the baseline makes no error, CE is 1 if the model makes none either, else inf."""
    a, b = np.asarray(acc, float), np.asarray(acc_base, float)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"acc: expected (corruptions, severities) like acc_base, got {a.shape}, {b.shape}")
    num, den = (1 - a).sum(1), (1 - b).sum(1)
    # a baseline without errors: CE = 1 when the model has none either, else inf
    safe = np.where(den > 0, den, 1.0)
    return np.where(den > 0, num / safe, np.where(num > 0, np.inf, 1.0))  # type: ignore[no-any-return]


def mce(acc: Any, acc_base: Any) -> float:
    """Mean corruption error (Robo3D Eq. 1), in [0, inf); the baseline scores 1."""
    return float(corruption_error(acc, acc_base).mean())


def resilience_rate(acc: Any, acc_clean: float) -> F64:
    """RR per corruption: ``sum_l A / (L * A_clean)``; acc (C, L)."""
    a = np.asarray(acc, float)
    if a.ndim != 2:
        raise ValueError(f"acc: expected (corruptions, severities), got {a.shape}")
    if not 0 < acc_clean <= 1:
        raise ValueError(f"acc_clean: expected in (0, 1], got {acc_clean}")
    return a.mean(1) / acc_clean  # type: ignore[no-any-return]


def mrr(acc: Any, acc_clean: float) -> float:
    """Mean resilience rate (Robo3D Eq. 2)."""
    return float(resilience_rate(acc, acc_clean).mean())


__all__ = [
    "LIDAR_CORRUPTIONS",
    "LIDAR_SEVERITIES",
    "corrupt_object",
    "corrupt_scan",
    "corruption_error",
    "estimate_ring",
    "mce",
    "mrr",
    "object_scan",
    "resilience_rate",
    "scan_to_object",
]
