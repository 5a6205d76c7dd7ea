"""The point-cloud section of ``certkit report``.

On the embedded procedural dataset (``data.make_shapes``, 8 classes, 256 points):
a cached reference PointNet and a Gaussian-noise-trained PointNet; the ModelNet40-C and
Robo3D corruption suites (accuracy, CE, mCE, mRR, with the plain model as the CE baseline);
3DHacker (hard-label) against GSDA-style and PGD white-box baselines; certified accuracy
from ℓ2 coordinate smoothing, PointGuard sub-sampling and z-rotation smoothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from certkit.core.report import (
    ReportContext,
    Section,
    Table,
    figure_from_matplotlib,
    figure_panels,
    use_agg,
)


@dataclass(frozen=True)
class Config:
    """Sizes of one report run (quick, full, or tiny for tests)."""

    n_train: int = 400
    n_points: int = 256
    epochs: int = 10
    n_test: int = 200
    n_corrupt: int = 32
    severities: tuple[int, ...] = (1, 3, 5)
    lidar_severities: tuple[int, ...] = (1, 2, 3)
    n_attack: int = 6
    max_queries: int = 300
    gsda_steps: int = 40
    n_certify: int = 16
    n_samples: int = 200
    sigma: float = 0.05
    pg_k: int = 32
    intact: bool = False  # also train adversarial and INTACT students (full mode)


QUICK = Config()
FULL = Config(n_train=1600, epochs=20, n_test=800, n_corrupt=400, severities=(1, 2, 3, 4, 5),
              n_attack=100, max_queries=2000, gsda_steps=300, n_certify=200, n_samples=2000,
              intact=True)
TINY = replace(QUICK, n_train=120, n_points=64, epochs=4, n_test=24, n_corrupt=8, severities=(1, 5),
               lidar_severities=(3,), n_attack=2, max_queries=60, gsda_steps=5, n_certify=3,
               n_samples=40, pg_k=16)


def _kitti_path() -> Path | None:
    """The shared KITTI scan (``$CERTKIT_SHARED_DATA`` or the repo root's ``../shared/data``)."""
    import os

    env = os.environ.get("CERTKIT_SHARED_DATA")
    root = Path(env) if env else Path(__file__).resolve().parents[5].parent / "shared" / "data"
    p = root / "pointcloud" / "lidar" / "kitti_000008.bin"
    return p if p.is_file() else None


def kitti_table(path: Path | None = None, seed: int = 0) -> Table | None:
    """Points kept by each Robo3D corruption on the real KITTI scan (None when absent)."""
    from certkit.pointcloud import lidar_corruptions as lc
    from certkit.pointcloud.io import read_lidar_bin

    path = path if path is not None else _kitti_path()
    if path is None:
        return None
    scan = read_lidar_bin(path, format="kitti")
    rows = []
    for name in lc.LIDAR_CORRUPTIONS:
        row: list[Any] = [name]
        if name == "incomplete_echo":  # needs the vehicle points' labels, which the scan lacks
            rows.append([name, *["needs labels"] * len(lc.LIDAR_SEVERITIES)])
            continue
        for sev in lc.LIDAR_SEVERITIES:
            out = lc.corrupt_scan(scan, name, sev, seed=seed)
            moved = float(np.mean(np.linalg.norm(out[:, :3], axis=1))) if len(out) else 0.0
            row.append(f"{len(out) / len(scan):.3f} / {moved:.1f} m")
        rows.append(row)
    return Table("kitti_lidar", ["corruption", "light", "moderate", "heavy"], rows,
                 caption=f"Robo3D corruptions on KITTI scan {path.name} ({len(scan)} points, "
                         "rings from Robo3D's azimuth wrap): fraction of points kept / mean range.")


def _models(cache: Path, cfg: Config) -> tuple[Any, Any]:
    from certkit.pointcloud.models import reference_model

    kw = dict(n_train=cfg.n_train, n_points=cfg.n_points, epochs=cfg.epochs)
    plain = reference_model("pointnet", cache, **kw)  # type: ignore[arg-type]
    noisy = reference_model("pointnet", cache, noise_sigma=cfg.sigma, **kw)  # type: ignore[arg-type]
    return plain, noisy


def run(ctx: ReportContext, cfg: Config) -> Section:
    """Build the section with the sizes of ``cfg``."""
    use_agg()
    import matplotlib.pyplot as plt

    from certkit.pointcloud import lidar_corruptions as lc
    from certkit.pointcloud.corruptions import CORRUPTIONS, corrupt
    from certkit.pointcloud.data import CLASSES, make_shapes
    from certkit.pointcloud.gsda import gsda_attack
    from certkit.pointcloud.hacker3d import hacker3d
    from certkit.pointcloud.intact import corruption_accuracy
    from certkit.pointcloud.models import _Threads, accuracy, predict
    from certkit.pointcloud.pgd import pgd_attack
    from certkit.pointcloud.pointguard import certify as pg_certify
    from certkit.pointcloud.rotation_smoothing import certify_rotation
    from certkit.pointcloud.smoothing import certify as sm_certify

    t0 = time.perf_counter()
    cpu0 = time.process_time()
    C = len(CLASSES)
    cache = Path(ctx.cache_dir) / "pointcloud"
    with _Threads(1):
        plain, noisy = _models(cache, cfg)
        X, y = make_shapes(cfg.n_test, cfg.n_points, seed=ctx.seed, split="test")
        acc_plain, acc_noisy = accuracy(plain, X, y), accuracy(noisy, X, y)
        t_models = time.perf_counter() - t0

        # --- corruption suites ---------------------------------------------------------
        Xc, yc = X[: cfg.n_corrupt], y[: cfg.n_corrupt]
        names = list(CORRUPTIONS)
        lnames = list(lc.LIDAR_CORRUPTIONS)
        lidar_fn = lc.corrupt_object
        a40 = corruption_accuracy([plain, noisy], Xc, yc, corrupt, names, cfg.severities, seed=ctx.seed)
        alid = corruption_accuracy([plain, noisy], Xc, yc, lidar_fn, lnames, cfg.lidar_severities,
                                   seed=ctx.seed)
        res: dict[str, dict[str, Any]] = {}
        for j, (tag, m) in enumerate((("plain", plain), ("noise-trained", noisy))):
            res[tag] = {"clean": accuracy(m, Xc, yc), "m40c": a40[j], "lidar": alid[j]}
        base = res["plain"]
        rows = []
        for i, nm in enumerate(names):
            rows.append([nm] + [round(float(res[t]["m40c"][i].mean()), 3) for t in res]
                        + [round(float(lc.corruption_error(res["noise-trained"]["m40c"], base["m40c"])[i]), 3)])
        for i, nm in enumerate(lnames):
            rows.append([f"lidar:{nm}"] + [round(float(res[t]["lidar"][i].mean()), 3) for t in res]
                        + [round(float(lc.corruption_error(res["noise-trained"]["lidar"], base["lidar"])[i]), 3)])
        summ = {}
        for t in res:
            summ[t] = {
                "clean": res[t]["clean"],
                "mCE_modelnet40c": lc.mce(res[t]["m40c"], base["m40c"]),
                "mRR_modelnet40c": lc.mrr(res[t]["m40c"], max(res[t]["clean"], 1e-9)),
                "mCE_robo3d": lc.mce(res[t]["lidar"], base["lidar"]),
                "mRR_robo3d": lc.mrr(res[t]["lidar"], max(res[t]["clean"], 1e-9)),
            }
        corr_table = Table(
            "corruptions", ["corruption", "acc plain", "acc noise-trained", "CE noise-trained"], rows,
            caption=f"Mean accuracy over severities {cfg.severities} (ModelNet40-C) and "
                    f"{cfg.lidar_severities} (Robo3D, object seen from 10 m, box-cropped) on {len(Xc)} test "
                    "clouds; CE relative to the plain PointNet (Robo3D's formula).",
            n=len(Xc), of="test clouds")
        t_corr = time.perf_counter() - t0 - t_models

        # --- attacks -------------------------------------------------------------------
        pred = predict(plain, X)
        ok = np.flatnonzero(pred == y)[: cfg.n_attack]
        hk = []
        for j, i in enumerate(ok):
            pool = X[y != y[i]][:10]
            hk.append(hacker3d(lambda c: predict(plain, c), X[i], int(y[i]), pool,
                               max_queries=cfg.max_queries, seed=ctx.seed + j))
        gs = gsda_attack(plain, X[ok], y[ok], steps=cfg.gsda_steps)
        pg = pgd_attack(plain, X[ok], y[ok], eps=0.05, steps=10)

        def _m(v: Any, s: Any) -> float:
            v, s = np.asarray(v, float), np.asarray(s, bool)
            return float(v[s].mean()) if s.any() else float("nan")

        hs = np.array([h.success for h in hk])
        atk_rows = [
            ["3DHacker (hard-label)", float(hs.mean()), _m([h.chamfer for h in hk], hs),
             _m([h.hausdorff for h in hk], hs), float(np.mean([h.queries for h in hk]))],
            ["GSDA-style (white-box)", float(gs.success.mean()), _m(gs.chamfer, gs.success),
             _m(gs.hausdorff, gs.success), float(cfg.gsda_steps)],
            ["PGD ℓ∞ 0.05 (white-box)", float(pg.success.mean()), _m(pg.chamfer, pg.success),
             _m(pg.hausdorff, pg.success), 11.0],
        ]
        atk_rows = [[r[0]] + [round(v, 5) for v in r[1:]] for r in atk_rows]
        atk_table = Table("attacks", ["attack", "success", "Chamfer", "Hausdorff", "queries/steps"],
                          atk_rows, caption=f"{len(ok)} correctly classified test clouds, plain "
                          f"PointNet; 3DHacker budget {cfg.max_queries} hard-label queries.",
                          n=len(ok), of="attacked clouds")
        t_atk = time.perf_counter() - t0 - t_models - t_corr

        # --- certificates --------------------------------------------------------------
        idx = np.arange(cfg.n_certify)
        sm = [sm_certify(noisy, X[i], cfg.sigma, C, n0=32, n=cfg.n_samples, alpha=0.001,
                         seed=ctx.seed, index=int(i)) for i in idx]
        pgc = [pg_certify(plain, X[i], cfg.pg_k, C, n=cfg.n_samples, alpha=0.001, seed=ctx.seed,
                          index=int(i)) for i in idx]
        rot = [certify_rotation(plain, X[i], C, noise="uniform", scale=np.pi, n0=32,
                                n=cfg.n_samples, alpha=0.001, seed=ctx.seed, index=int(i)) for i in idx]
    radii = [0.0, 0.025, 0.05, 0.075, 0.1]
    ts = [0, 1, 2, 4, 8]
    sm_acc = [float(np.mean([(c.label == y[i]) and c.radius >= r for c, i in zip(sm, idx, strict=True)]))
              for r in radii]
    pg_acc = [float(np.mean([(lab == y[i]) and t >= tt for (lab, t), i in zip(pgc, idx, strict=True)]))
              for tt in ts]
    rot_acc = float(np.mean([(c.label == y[i]) and c.angle == float("inf") for c, i in zip(rot, idx, strict=True)]))
    cert_table = Table(
        "certified", ["certificate", *[f"@{r}" for r in radii]],
        [[f"ℓ2 smoothing σ={cfg.sigma:g} (radius)", *[round(a, 3) for a in sm_acc]],
         [f"PointGuard k={cfg.pg_k} (modified points t)", *[f"t≥{t}: {a:.3f}" for t, a in zip(ts, pg_acc, strict=True)]],
         ["z-rotation, θ~U[-π,π] (every angle)", round(rot_acc, 3), "", "", "", ""]],
        caption=f"Certified accuracy on {cfg.n_certify} test clouds, n = {cfg.n_samples} samples, "
                "α = 0.001 (Clopper-Pearson).", n=cfg.n_certify, of="test clouds")

    tables = [corr_table, atk_table, cert_table]
    kt = kitti_table(seed=ctx.seed)
    if kt is not None:
        tables.append(kt)
    intact_summary: dict[str, Any] = {}
    if cfg.intact:
        from certkit.pointcloud.intact import compare_training

        with _Threads(1):
            intact_summary = compare_training(n_train=cfg.n_train, n_points=cfg.n_points,
                                              epochs=cfg.epochs, n_eval=cfg.n_corrupt,
                                              severities=cfg.severities, seed=ctx.seed)
        cols = ["clean", "mCE_modelnet40c", "mRR_modelnet40c", "mCE_robo3d", "mRR_robo3d",
                "pgd_accuracy"]
        tables.append(Table("robust_training", ["training", *cols],
                            [[k, *[round(v[c], 3) for c in cols]] for k, v in intact_summary.items()],
                            caption="Plain vs PGD adversarial (ℓ∞ 0.02, 3 steps) vs INTACT "
                                    "curriculum training (Reptile meta-learned teacher); CE "
                                    "baseline: plain."))

    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    ax[0].plot(radii, sm_acc, "o-")
    ax[0].set_xlabel("ℓ2 radius (all N×3 coordinates)")
    ax[0].set_ylabel("certified accuracy")
    ax[0].set_title(f"coordinate smoothing σ={cfg.sigma}")
    ax[1].plot(ts, pg_acc, "s-", color="C1")
    ax[1].set_xlabel("modified points t")
    ax[1].set_title(f"PointGuard k={cfg.pg_k}")
    for a in ax:
        a.set_ylim(0, 1.02)
        a.grid(alpha=0.3)
    fig2, ax2 = plt.subplots(figsize=(9, 3))
    lab = [r[0] for r in rows]
    ax2.bar(np.arange(len(rows)) - 0.2, [r[1] for r in rows], 0.4, label="plain")
    ax2.bar(np.arange(len(rows)) + 0.2, [r[2] for r in rows], 0.4, label="noise-trained")
    ax2.set_xticks(np.arange(len(rows)), lab, rotation=75, fontsize=7)
    ax2.set_ylabel("accuracy")
    ax2.legend(fontsize=8)
    secs = time.perf_counter() - t0
    return Section(
        domain="pointcloud",
        title="Point clouds: corruptions, hard-label attacks, certificates",
        summary={
            "clean_accuracy": {"pointnet": acc_plain, "pointnet_noise": acc_noisy},
            "corruptions": summ,
            "hacker3d_success": float(hs.mean()),
            "hacker3d_mean_queries": float(np.mean([h.queries for h in hk])),
            "certified_accuracy_l2": dict(zip(map(str, radii), sm_acc, strict=True)),
            "certified_accuracy_pointguard_t": dict(zip(map(str, ts), pg_acc, strict=True)),
            "certified_accuracy_zrotation_all_angles": rot_acc,
            "robust_training": intact_summary,
            "headline": {  # the summary card of `certkit report` (certkit.report.headline)
                "label": f"test clouds certified correct within ℓ2 radius {radii[2]:g} "
                         f"(coordinate smoothing, σ = {cfg.sigma:g})",
                "value": sm_acc[2], "format": "percent", "n": int(cfg.n_certify), "of": "test clouds",
                "successes": round(sm_acc[2] * cfg.n_certify),
                "note": f"Under corruptions the noise-trained PointNet's mCE is "
                        f"{summ['noise-trained']['mCE_modelnet40c']:.2f} on ModelNet40-C "
                        "(1.00 = the plain PointNet)."},
            "seconds": {"models": t_models, "corruptions": t_corr, "attacks": t_atk, "total": secs,
                        "cpu_total": time.process_time() - cpu0},
        },
        tables=tables,
        figures=[*figure_panels(fig, "pointcloud_certified", cert_table.caption),
                 figure_from_matplotlib(fig2, "pointcloud_corruptions", corr_table.caption)],
        text=(f"Embedded dataset, {C} procedural classes, {cfg.n_points} points. Reference PointNet "
              f"({cfg.n_train} clouds, {cfg.epochs} epochs): clean accuracy {acc_plain:.3f}; trained "
              f"with σ={cfg.sigma} noise: {acc_noisy:.3f}. ModelNet40-C (arXiv:2201.12296) with the "
              "published parameters (occlusion and LiDAR: hidden-point removal instead of mesh rendering); "
              "Robo3D (arXiv:2303.17597): beam missing, cross-sensor, crosstalk and motion blur as "
              "published, fog with the published β, wet ground, snow and incomplete echo simplified."),
        reproduce="certkit report --only pointcloud",
        full=(f"{FULL.n_train}-cloud, {FULL.epochs}-epoch models, {FULL.n_corrupt} clouds × all 5 "
              f"severities, 3DHacker on {FULL.n_attack} clouds with {FULL.max_queries} queries, "
              f"{FULL.n_certify} certified clouds with n = {FULL.n_samples}; plus plain vs adversarial "
              "vs INTACT training compared on both corruption suites and PGD"),
    )


def sections(ctx: ReportContext) -> Section:
    """Entry point for ``certkit report``."""
    return run(ctx, FULL if ctx.full else QUICK)


__all__ = ["FULL", "QUICK", "TINY", "Config", "run", "sections"]
