"""Robo3D's 8 LiDAR corruptions x 3 severities, re-implemented, and the robustness metrics.

Kong, Liu, Li, Chen, Zhang, Cottereau, Ooi, Liu, "Robo3D: Towards Robust and Reliable 3D
Perception against Corruptions", ICCV 2023, arXiv:2303.17597. Robo3D's generators
(``create/kitti_c`` and ``create/semantickitti_c`` of ldkong1205/Robo3D, CC BY-NC-SA: read
for issue #21, never copied) give the procedure and parameters of all eight, re-implemented
here (:data:`ROBO3D_PARAMS`): beam_missing, cross_sensor, crosstalk, motion_blur, with
Robo3D's ring estimation (:func:`ring_from_azimuth`); incomplete_echo (points of the vehicle
classes dropped, which needs per-point labels or 3-D boxes); and the weather physics of
:mod:`certkit.pointcloud.lidar_weather` (Hahner et al.'s fog and snow simulations,
Bijelic's wet ground).

A scan is (N, C) float32 with C >= 4: x, y, z (metres, sensor at the origin), intensity in
[0, 1] (KITTI's reflectance), and optionally a 5th column with the ring index (nuScenes).
Where no ring column exists, the ring is estimated as Robo3D does, from the azimuth wrap
of a scan in sensor order (:func:`ring_from_azimuth`), or from the elevation angle
(:func:`estimate_ring` with ``method="elevation"``, for clouds not in sensor order). Every
corruption returns a new (N', C) scan.

Metrics (Robo3D, Eq. 1-2): for corruption i with accuracies A_{i,l} over severities l,
``CE_i = sum_l (1 - A_{i,l}) / sum_l (1 - A^base_{i,l})``, ``mCE = mean_i CE_i``,
``RR_i = sum_l A_{i,l} / (L * A_clean)``, ``mRR = mean_i RR_i``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from certkit.pointcloud import lidar_weather as lw

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


_check_scan = lw._as_scan  # (N, >= 4) finite float64 scan, one-line ValueError otherwise


#: Published parameters of the faithful corruptions (light, moderate, heavy), KITTI (64 beams).
ROBO3D_PARAMS: dict[str, tuple[Any, ...]] = {
    "beam_missing": (16, 32, 48),  # beams drawn (with replacement) from rings 4..58 and removed
    "cross_sensor": (16, 32, 48),  # rings removed: arange(1, 64, 4 | 2 | 1.33), then every 2nd point
    "crosstalk": (0.006, 0.008, 0.01),  # fraction of points (distinct) + N(0, 3^2) on x y z intensity
    "motion_blur": (0.04, 0.08, 0.10),  # std: global offset N(0, std) per axis + clipped jitter
    "fog": lw.FOG_BETA,  # back-scattering beta (1/sr); alpha ~ U{0, .005, .01, .02, .03, .06} /m
    "wet_ground": lw.WET_WATER_HEIGHT,  # water film height (m); noise floor 0.2
    "snow": lw.SNOW_RATES,  # (snowfall rate mm/h, terminal velocity m/s)
    "incomplete_echo": (0.75, 0.85, 0.95),  # fraction of each vehicle class's points dropped
}
#: Vehicle classes whose points incomplete echo drops, in the label spaces Robo3D uses
#: (SemanticKITTI learning map: car, bicycle, motorcycle, truck, other-vehicle; nuScenes
#: lidarseg 16: bicycle, bus, car, construction_vehicle, motorcycle, trailer, truck).
ECHO_CLASSES: dict[str, tuple[int, ...]] = {"semantickitti": (1, 2, 3, 4, 5),
                                            "nuscenes": (2, 3, 4, 5, 6, 9, 10)}
#: SemanticKITTI raw semantic ids (``.label & 0xFFFF``) of those classes -> learning-map id.
SEMANTICKITTI_VEHICLES = {10: 1, 252: 1, 11: 2, 15: 3, 18: 4, 258: 4, 13: 5, 16: 5, 20: 5,
                          256: 5, 257: 5, 259: 5}
_CROSS_SENSOR_STEP = (4.0, 2.0, 1.33)


def ring_from_azimuth(scan: Any, n_beams: int = 64) -> npt.NDArray[np.int64]:
    """Robo3D's ring index for a scan in sensor order (KITTI): a new ring starts where the
    azimuth wraps around, i.e. where ``0.5 (yaw / pi + 1)`` (yaw = -atan2(y, -x)) drops from
    above 0.8 to below 0.2 between consecutive points; indices are clipped to n_beams - 1."""
    s = _check_scan(scan)
    proj = 0.5 * (-np.arctan2(s[:, 1], -s[:, 0]) / np.pi + 1.0)
    start = np.zeros(len(s), np.int64)
    start[1:] = (proj[1:] < 0.2) & (proj[:-1] > 0.8)
    return np.clip(np.cumsum(start), 0, n_beams - 1)  # type: ignore[no-any-return]


def estimate_ring(scan: Any, n_beams: int = 64, fov: tuple[float, float] | None = None,
                  method: str = "azimuth") -> npt.NDArray[np.int64]:
    """Ring index per point: the 5th column when present, else :func:`ring_from_azimuth`
    (``method="azimuth"``, Robo3D's, for scans in sensor order) or the binned elevation angle
    (``method="elevation"``: ``fov`` (degrees, low, high) is the sensor's vertical field of
    view, KITTI's HDL-64E about (-24.9, 2.0); None uses the scan's own range; beams evenly
    spaced). On the shared KITTI scan the two find 46 and 64 rings."""
    s = _check_scan(scan)
    if method not in ("azimuth", "elevation"):
        raise ValueError(f"method: expected 'azimuth' or 'elevation', got {method!r}")
    if s.shape[1] >= 5:
        return s[:, 4].round().astype(np.int64)
    if method == "azimuth":
        return ring_from_azimuth(s, n_beams)
    elev = np.degrees(np.arctan2(s[:, 2], np.linalg.norm(s[:, :2], axis=1)))
    lo, hi = fov if fov is not None else (float(elev.min()), float(elev.max()))
    r = np.floor((elev - lo) / max(hi - lo, 1e-9) * n_beams)
    return np.clip(r, 0, n_beams - 1).astype(np.int64)


def fog(s: F64, sev: int, rng: np.random.Generator) -> F64:
    """Robo3D's fog: Hahner et al.'s simulation (:func:`lidar_weather.fog`) with
    beta = 0.008, 0.05, 0.2 and alpha drawn per scan. No point is removed."""
    return lw.fog(s, lw.FOG_BETA[sev - 1], rng)


def wet_ground(s: F64, sev: int, rng: np.random.Generator) -> F64:
    """Robo3D's wet ground: Bijelic's water-film model (:func:`lidar_weather.wet_ground`),
    water height 0.2, 1.0, 1.2 mm."""
    return lw.wet_ground(s, lw.WET_WATER_HEIGHT[sev - 1], rng)


def snow(s: F64, sev: int, rng: np.random.Generator) -> F64:
    """Robo3D's snow: Hahner et al.'s snowfall simulation (:func:`lidar_weather.snow`),
    snowfall 0.5, 1.0, 2.5 mm/h at terminal velocity 2.0, 1.6, 1.6 m/s."""
    return lw.snow(s, *lw.SNOW_RATES[sev - 1], rng)


def motion_blur(s: F64, sev: int, rng: np.random.Generator) -> F64:
    """Robo3D's motion blur: one global offset N(0, std^2) per axis for the whole scan, plus
    per-point jitter N(0, (0.1 std)^2) on x and y and N(0, (0.05 std)^2) on z, each clipped
    to +-3 std; std = 0.04, 0.08, 0.10 m."""
    std = ROBO3D_PARAMS["motion_blur"][sev - 1]
    out = s.copy()
    out[:, :3] += rng.normal(0.0, std, size=3)
    for axis, rel in ((0, 0.1), (1, 0.1), (2, 0.05)):
        out[:, axis] += np.clip(rng.normal(0.0, rel * std, size=len(s)), -3 * std, 3 * std)
    return out


def _beams(ring: Any) -> int:
    """Number of beams of the sensor: 64 (KITTI) unless the ring indices say 32 or fewer."""
    return 32 if int(np.max(ring, initial=0)) < 32 else 64


def beam_missing(s: F64, sev: int, rng: np.random.Generator, ring: Any = None) -> F64:
    """Robo3D's beam missing: 16, 32 or 48 rings drawn *with replacement* (as published, so
    fewer distinct rings go) from rings 4..58 of 64 are removed. A 32-beam sensor: half the
    counts from rings 2..29."""
    ring = estimate_ring(s) if ring is None else np.asarray(ring)
    b = _beams(ring)
    lo, hi = round(4 * b / 64), round(59 * b / 64)
    gone = rng.choice(np.arange(lo, hi), ROBO3D_PARAMS["beam_missing"][sev - 1] * b // 64)
    return s[~np.isin(ring, gone)]


def crosstalk(s: F64, sev: int, rng: np.random.Generator) -> F64:
    """Robo3D's crosstalk: int(p N) distinct points, p = 0.006, 0.008, 0.01, get N(0, 3^2)
    added to x, y, z and intensity (a ring column, when present, is left as is)."""
    out = s.copy()
    idx = rng.choice(len(s), int(ROBO3D_PARAMS["crosstalk"][sev - 1] * len(s)), replace=False)
    out[idx, :4] += rng.normal(size=(len(idx), 4)) * 3.0
    return out


def _in_boxes(xyz: F64, boxes: Any) -> npt.NDArray[np.int64]:
    """Index of the first box (K, 7: centre x y z, size dx dy dz, heading about z; OpenPCDet's
    LiDAR-frame boxes) containing each point, -1 outside all."""
    bx = np.asarray(boxes, dtype=np.float64)
    if bx.ndim != 2 or bx.shape[1] != 7 or not np.isfinite(bx).all():
        raise ValueError(f"boxes: expected finite (K, 7) x, y, z, dx, dy, dz, heading, got shape {bx.shape}")
    which = np.full(len(xyz), -1, np.int64)
    for k, (cx, cy, cz, dx, dy, dz, yaw) in enumerate(bx):
        px, py = xyz[:, 0] - cx, xyz[:, 1] - cy
        lx = px * np.cos(yaw) + py * np.sin(yaw)
        ly = -px * np.sin(yaw) + py * np.cos(yaw)
        inside = (np.abs(lx) <= dx / 2) & (np.abs(ly) <= dy / 2) & (np.abs(xyz[:, 2] - cz) <= dz / 2)
        which[inside & (which < 0)] = k
    return which


def incomplete_echo_mask(scan: Any, severity: int, rng: np.random.Generator, *, labels: Any = None,
                         boxes: Any = None, classes: str | tuple[int, ...] = "semantickitti"
                         ) -> npt.NDArray[np.bool_]:
    """Points kept by Robo3D's incomplete echo (``gen_incomplete_echo.py``): for each vehicle
    class with more than 10 points, ``int(n * ratio)`` of its n points, drawn without
    replacement, are dropped; ratio = 0.75, 0.85, 0.95.

    ``labels`` (N,) are per-point class ids in the space of ``classes`` ("semantickitti": the
    learning map, see :data:`SEMANTICKITTI_VEHICLES` for raw ids; "nuscenes": lidarseg-16;
    or a tuple of ids). Or ``boxes`` (K, 7) of the vehicles (our reading for 3-D detection,
    where Robo3D's KITTI generator is not published): each box's points form one group."""
    s = _check_scan(scan)
    if severity not in LIDAR_SEVERITIES:
        raise ValueError(f"severity: expected 1, 2 or 3, got {severity!r}")
    ratio = ROBO3D_PARAMS["incomplete_echo"][severity - 1]
    if labels is not None:
        lab = np.asarray(labels)
        if lab.shape != (len(s),) or not np.issubdtype(lab.dtype, np.integer):
            raise ValueError(f"labels: expected ({len(s)},) integer class ids, got {lab.dtype} {lab.shape}")
        if isinstance(classes, str):
            if classes not in ECHO_CLASSES:
                raise ValueError(f"classes: expected one of {sorted(ECHO_CLASSES)} or a tuple of ids, "
                                 f"got {classes!r}")
            classes = ECHO_CLASSES[classes]
        groups = [np.flatnonzero(lab == c) for c in classes]
    elif boxes is not None:
        which = _in_boxes(s[:, :3], boxes)
        groups = [np.flatnonzero(which == k) for k in range(int(which.max(initial=-1)) + 1)]
    else:
        raise ValueError("labels: incomplete_echo drops the points of the vehicle classes; pass labels= "
                         "(per-point class ids) or boxes= ((K, 7) vehicle boxes)")
    keep = np.ones(len(s), bool)
    for idx in groups:
        if len(idx) > 10:
            keep[rng.choice(idx, int(len(idx) * ratio), replace=False)] = False
    return keep


def read_semantickitti_labels(path: Any, n: int | None = None) -> npt.NDArray[np.int64]:
    """Per-point learning-map ids for :func:`incomplete_echo_mask`: a SemanticKITTI ``.label``
    file (uint32, semantic id in the low 16 bits; the vehicle ids are mapped with
    :data:`SEMANTICKITTI_VEHICLES`, everything else becomes 0) or a ``.npy`` of ids as is."""
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"labels: no such file {p}")
    if p.suffix == ".npy":
        lab = np.load(p, allow_pickle=False)
        if lab.ndim != 1 or not np.issubdtype(lab.dtype, np.integer):
            raise ValueError(f"labels: expected a 1-D integer array in {p}, got {lab.dtype} {lab.shape}")
        lab = lab.astype(np.int64)
    else:
        if p.stat().st_size % 4:
            raise ValueError(f"labels: {p} is not a SemanticKITTI .label file (size not a multiple of 4)")
        raw = np.fromfile(p, dtype="<u4") & 0xFFFF
        lab = np.zeros(len(raw), np.int64)
        for k, v in SEMANTICKITTI_VEHICLES.items():
            lab[raw == k] = v
    if n is not None and len(lab) != n:
        raise ValueError(f"labels: expected {n} labels (one per point), got {len(lab)} in {p}")
    return lab


def incomplete_echo(s: F64, sev: int, rng: np.random.Generator, labels: Any = None, boxes: Any = None,
                    classes: str | tuple[int, ...] = "semantickitti") -> F64:
    """Robo3D's incomplete echo: the scan rows kept by :func:`incomplete_echo_mask`."""
    return s[incomplete_echo_mask(s, sev, rng, labels=labels, boxes=boxes, classes=classes)]


def cross_sensor_rings(sev: int, n_beams: int = 64) -> npt.NDArray[np.int64]:
    """The rings Robo3D's cross-sensor corruption removes: ``arange(1, n_beams, step)`` with
    step 4, 2, 1.33 (truncated to integers): 16, 32, 48 of 64 rings (8, 16, 24 of 32)."""
    return np.arange(1, n_beams, _CROSS_SENSOR_STEP[sev - 1]).astype(np.int64)


def cross_sensor(s: F64, sev: int, rng: np.random.Generator, ring: Any = None) -> F64:
    """Robo3D's cross-sensor: the rings of :func:`cross_sensor_rings` are removed, then every
    second remaining point (in scan order) is dropped. Deterministic."""
    ring = estimate_ring(s) if ring is None else np.asarray(ring)
    kept = s[~np.isin(ring, cross_sensor_rings(sev, _beams(ring)))]
    return kept[::2]


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
    scan: Any, name: str, severity: int, *, seed: int = 0, index: int = 0, n_beams: int = 64,
    ring_method: str = "azimuth", labels: Any = None, boxes: Any = None,
    classes: str | tuple[int, ...] = "semantickitti",
) -> F32:
    """Apply Robo3D corruption ``name`` at severity 1 (light), 2 (moderate) or 3 (heavy).

    Rings (beam_missing, cross_sensor) come from a 5th column, else from
    :func:`estimate_ring` with ``ring_method`` ("azimuth": Robo3D's, needs the scan in sensor
    order; "elevation": for reordered clouds). incomplete_echo needs ``labels`` (N,) or
    ``boxes`` (K, 7) (:func:`incomplete_echo_mask`); the other corruptions ignore them."""
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
        ring = estimate_ring(s, n_beams, method=ring_method)
        return fn(s, severity, rng, ring=ring).astype(np.float32)  # type: ignore[no-any-return]
    if name == "incomplete_echo":
        return incomplete_echo(s, severity, rng, labels, boxes, classes).astype(np.float32)
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
    (the 8 nearest points are kept if fewer remain). For incomplete echo the object is the
    vehicle (every point labelled car)."""
    sc = object_scan(cloud)
    out = scan_to_object(corrupt_scan(sc, name, severity, seed=seed, index=index, ring_method="elevation",
                                      labels=np.ones(len(sc), np.int64)))
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
    "ECHO_CLASSES",
    "LIDAR_CORRUPTIONS",
    "LIDAR_SEVERITIES",
    "ROBO3D_PARAMS",
    "SEMANTICKITTI_VEHICLES",
    "corrupt_object",
    "corrupt_scan",
    "corruption_error",
    "cross_sensor_rings",
    "estimate_ring",
    "incomplete_echo_mask",
    "mce",
    "mrr",
    "object_scan",
    "read_semantickitti_labels",
    "resilience_rate",
    "ring_from_azimuth",
    "scan_to_object",
]
