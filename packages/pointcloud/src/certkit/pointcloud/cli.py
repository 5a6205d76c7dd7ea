"""``certkit pointcloud ...``: certify, attack, evaluate, corrupt, train, plot.

Inputs are point-cloud files (PLY, PCD, OFF meshes are surface-sampled, KITTI/nuScenes
``.bin``), each resampled to ``--points`` points (farthest-point sampling) and normalised to
the unit sphere; with no files, the embedded test split (``data.make_shapes``) is used.
Models: ``--model`` is ``pointnet:state.pt`` / ``dgcnn:state.pt``, a TorchScript file, or
``module:factory`` (with ``--weights`` read with ``weights_only=True``); by default the cached
reference PointNet (trained on first use).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from certkit.core.cli import STATE, ModelOpt, UsageError, WeightsOpt, echo_json

app = typer.Typer(help="Point clouds and LiDAR: certificates, attacks, corruption suites.",
                  no_args_is_help=True)

FilesArg = Annotated[list[Path] | None, typer.Argument(
    help="Point-cloud files (.ply .pcd .off .bin); none: the embedded test split.")]
LabelsOpt = Annotated[str | None, typer.Option(
    "--labels", help="Comma-separated true labels for the files (default: the model's prediction).")]
PointsOpt = Annotated[int, typer.Option("--points", help="Points per cloud.")]
LimitOpt = Annotated[int, typer.Option("--limit", help="Clouds from the embedded test split.")]


def _load_file(path: Path, n: int, seed: int) -> np.ndarray:
    from certkit.core.spectral import farthest_point_sample, normalize_unit_sphere
    from certkit.pointcloud import io

    suf = path.suffix.lower()
    if not path.is_file():
        raise UsageError(f"files: {path} does not exist")
    if suf == ".bin":
        pts = io.read_lidar_bin(path)[:, :3].astype(np.float64)
    elif suf == ".pcd":
        pts = io.read_pcd(path)[0]
    elif suf in (".off", ".ply"):
        pts, faces = io.read_off(path) if suf == ".off" else io.read_ply(path)[:2]
        if len(faces):
            pts = io.sample_surface(pts, faces, n, seed=seed)
    else:
        raise UsageError(f"files: unsupported format {suf!r} (use .ply .pcd .off .bin)")
    if len(pts) < n:
        idx = np.random.default_rng(seed).choice(len(pts), n)  # documented: pad by repetition
        pts = pts[idx]
    elif len(pts) > n:
        pts = pts[farthest_point_sample(pts, n)]
    return normalize_unit_sphere(pts)[0].astype(np.float32)


def _data(files: list[Path] | None, labels: str | None, n_points: int, limit: int, seed: int,
          model: Any) -> tuple[np.ndarray, np.ndarray]:
    from certkit.pointcloud.data import make_shapes
    from certkit.pointcloud.models import predict

    if not files:
        return make_shapes(limit, n_points, seed=seed, split="test")
    X = np.stack([_load_file(f, n_points, seed) for f in files])
    if labels:
        try:
            y = np.array([int(v) for v in labels.split(",")], np.int64)
        except ValueError as exc:
            raise UsageError(f"labels: expected comma-separated integers, got {labels!r}") from exc
        if len(y) != len(X):
            raise UsageError(f"labels: {len(y)} labels for {len(X)} files")
        return X, y
    return X, predict(model, X)


def _model(spec: str | None, weights: str | None, n_points: int) -> Any:
    from certkit.pointcloud.models import load_model, reference_model

    if spec is None:
        return reference_model("pointnet", n_points=n_points)
    if weights is not None:
        import importlib

        from certkit.core.cache import load_state

        if ":" not in spec:
            raise UsageError("weights: needs --model module:factory")
        mod, fac = spec.split(":", 1)
        m = getattr(importlib.import_module(mod), fac)()
        m.load_state_dict(load_state(weights))
        return m.eval()
    try:
        return load_model(spec)
    except (ImportError, AttributeError, OSError, RuntimeError, KeyError) as exc:
        raise UsageError(f"model: cannot load {spec!r}: {exc}") from exc


def _out(obj: Any, text: str) -> None:
    if STATE["json"]:
        echo_json(obj)
    else:
        typer.echo(text)


@app.command()
def certify(
    files: FilesArg = None,
    method: Annotated[str, typer.Option(help="smoothing | pointguard | rotation")] = "smoothing",
    model: ModelOpt = None,
    weights: WeightsOpt = None,
    labels: LabelsOpt = None,
    points: PointsOpt = 256,
    limit: LimitOpt = 20,
    sigma: Annotated[float, typer.Option(help="ℓ2 noise (smoothing) or angle scale (rotation)")] = 0.05,
    noise: Annotated[str, typer.Option(help="rotation noise: gaussian | uniform")] = "uniform",
    k: Annotated[int, typer.Option(help="PointGuard subset size")] = 32,
    threat: Annotated[str, typer.Option(help="PointGuard threat: modify | add | delete")] = "modify",
    n: Annotated[int, typer.Option(help="Monte-Carlo samples")] = 1000,
    alpha: float = 0.001,
    seed: int = 0,
    out: Annotated[Path | None, typer.Option(help="JSON-lines results (resumable with the same settings)")] = None,
    new: Annotated[bool, typer.Option("--new", help="move an old --out aside and start afresh")] = False,
) -> None:
    """Certify clouds: ℓ2 coordinate smoothing, PointGuard (t points) or z-rotation smoothing.

    With --out, each cloud's result is written as it is done and a rerun resumes; the file
    records the settings (model and data fingerprints, method and its parameters, n, alpha,
    seed) and refuses to resume with others, and a second concurrent writer fails."""
    from certkit.core.results import ResultLog, fingerprint, run_settings
    from certkit.pointcloud import pointguard, rotation_smoothing, smoothing

    if method not in ("smoothing", "pointguard", "rotation"):
        raise UsageError(f"method: expected smoothing, pointguard or rotation, got {method!r}")
    m = _model(model, weights, points)
    X, y = _data(files, labels, points, limit, seed, m)
    C = int(m(__import__("torch").from_numpy(X[:1])).shape[1])
    params: dict[str, Any] = {"smoothing": {"sigma": sigma}, "pointguard": {"k": k, "threat": threat},
                              "rotation": {"scale": sigma, "noise": noise}}[method]
    log = None
    if out is not None:
        settings = run_settings(model=fingerprint(m), data=fingerprint(X), labels=fingerprint(y), method=method,
                                num_classes=C, n=n, alpha=alpha, seed=seed, **params)
        log = ResultLog(out, settings=settings, new=new)
    rows = []
    todo = log.todo(range(len(X))) if log is not None else list(range(len(X)))
    for i in todo:
        if method == "smoothing":
            c = smoothing.certify(m, X[i], sigma, C, n=n, alpha=alpha, seed=seed, index=i)
            row = {"idx": i, "label": c.label, "radius": c.radius, "p_lower": c.p_lower}
        elif method == "pointguard":
            lab, t = pointguard.certify(m, X[i], k, C, n=n, alpha=alpha, threat=threat,  # type: ignore[arg-type]
                                        seed=seed, index=i)
            row = {"idx": i, "label": lab, "radius": t}
        else:
            r = rotation_smoothing.certify_rotation(m, X[i], C, noise=noise, scale=sigma, n=n,  # type: ignore[arg-type]
                                                    alpha=alpha, seed=seed, index=i)
            row = {"idx": i, "label": r.label, "radius": r.angle if np.isfinite(r.angle) else 1e9,
                   "p_lower": r.p_lower}
        row.update(true=int(y[i]), correct=bool(row["label"] == y[i]), method=method, seed=seed)
        if log is not None:
            log.write(row)
        rows.append(row)
    if log is not None:
        rows = log.rows()
        log.close()
    acc = float(np.mean([r["correct"] for r in rows])) if rows else 0.0
    _out({"method": method, "n_clouds": len(rows), "certified_correct": acc, "rows": rows},
         f"{method}: {len(rows)} clouds, certified (label correct, radius > 0): {acc:.3f}")


@app.command()
def attack(
    files: FilesArg = None,
    method: Annotated[str, typer.Option(help="hacker3d | gsda | pgd")] = "hacker3d",
    model: ModelOpt = None,
    weights: WeightsOpt = None,
    labels: LabelsOpt = None,
    points: PointsOpt = 256,
    limit: LimitOpt = 8,
    max_queries: Annotated[int, typer.Option(help="3DHacker hard-label query budget")] = 1000,
    steps: Annotated[int, typer.Option(help="GSDA/PGD steps")] = 100,
    eps: Annotated[float, typer.Option(help="PGD ℓ∞ radius")] = 0.02,
    seed: int = 0,
) -> None:
    """Attack the correctly classified clouds; print how many there are, the success rate over
    them, and Chamfer / Hausdorff distances (float64, over the successful attacks) and queries
    (over the attacked clouds). Misclassified clouds are not attacked and not counted."""
    from certkit.pointcloud.models import predict

    if method not in ("hacker3d", "gsda", "pgd"):
        raise UsageError(f"method: expected hacker3d, gsda or pgd, got {method!r}")
    m = _model(model, weights, points)
    X, y = _data(files, labels, points, limit, seed, m)
    correct = predict(m, X) == y
    idx = np.flatnonzero(correct)
    s, cd, hd, q = _run_attack(method, m, X[idx], y[idx], idx, points=points, max_queries=max_queries,
                               steps=steps, eps=eps, seed=seed)
    summ = attack_summary(method, len(X), s, cd, hd, q)
    _out(summ, "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in summ.items()))


def _run_attack(method: str, m: Any, X: np.ndarray, y: np.ndarray, idx: np.ndarray, *, points: int,
                max_queries: int, steps: int, eps: float,
                seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Attack the clouds X (B, N, 3) with labels y (B,) (idx: their positions in the input, which
    seed 3DHacker per cloud as before); returns success, Chamfer, Hausdorff and queries (B,)."""
    from certkit.pointcloud.data import make_shapes
    from certkit.pointcloud.distances import chamfer, hausdorff
    from certkit.pointcloud.gsda import gsda_attack
    from certkit.pointcloud.hacker3d import hacker3d
    from certkit.pointcloud.models import predict
    from certkit.pointcloud.pgd import pgd_attack

    if len(X) == 0:
        return (np.zeros(0, bool), *(np.zeros(0) for _ in range(3)))  # type: ignore[return-value]
    if method == "hacker3d":
        Xp, yp = make_shapes(64, points, seed=seed + 1, split="partners")
        hs = [hacker3d(lambda c: predict(m, c), X[j], int(y[j]), Xp[yp != y[j]], max_queries=max_queries,
                       seed=seed + int(i)) for j, i in enumerate(idx)]
        s, adv, q = np.array([h.success for h in hs]), np.stack([h.adv for h in hs]), np.array([h.queries for h in hs])
    else:
        r = (gsda_attack(m, X, y, steps=steps) if method == "gsda"
             else pgd_attack(m, X, y, eps=eps, steps=steps, seed=seed))
        s, adv, q = r.success, r.adv, np.full(len(X), r.queries / len(X))
    return (s.astype(bool), np.atleast_1d(chamfer(adv, X)), np.atleast_1d(hausdorff(adv, X)),
            np.asarray(q, dtype=np.float64))


def attack_summary(method: str, n: int, success: np.ndarray, chamfer: np.ndarray, hausdorff: np.ndarray,
                   queries: np.ndarray) -> dict[str, Any]:
    """The attack figures with their counts: n inputs, n_attacked correctly classified ones (the
    only ones attacked), success over n_attacked, distances over the n_success successes,
    queries over n_attacked. None where the count behind a figure is 0."""
    ok = np.asarray(success, bool)
    k = len(ok)
    return {"method": method, "n": int(n), "n_attacked": int(k), "n_success": int(ok.sum()),
            "success": float(ok.mean()) if k else None,
            "chamfer": float(np.mean(chamfer[ok])) if ok.any() else None,
            "hausdorff": float(np.mean(hausdorff[ok])) if ok.any() else None,
            "queries": float(np.mean(queries)) if k else None}


@app.command()
def evaluate(
    files: FilesArg = None,
    suite: Annotated[str, typer.Option(help="modelnet40c | robo3d")] = "modelnet40c",
    model: ModelOpt = None,
    weights: WeightsOpt = None,
    baseline: Annotated[str | None, typer.Option(help="CE baseline model spec (default: the model itself)")] = None,
    labels: LabelsOpt = None,
    points: PointsOpt = 256,
    limit: LimitOpt = 40,
    seed: int = 0,
    out: Annotated[Path | None, typer.Option(help="JSON-lines results, one per corruption and severity "
                                                  "(resumable with the same settings)")] = None,
    new: Annotated[bool, typer.Option("--new", help="move an old --out aside and start afresh")] = False,
) -> None:
    """Accuracy under a corruption suite, with CE, mCE and mRR (Robo3D's formulas).

    With --out, each (corruption, severity) result is written when done and a rerun resumes;
    the file records the settings (model, baseline and data fingerprints, suite, seed) and
    refuses to resume with others."""
    from certkit.core.results import ResultLog, fingerprint, run_settings
    from certkit.pointcloud import lidar_corruptions as lc
    from certkit.pointcloud.corruptions import CORRUPTIONS, SEVERITIES, corrupt
    from certkit.pointcloud.intact import corruption_accuracy
    from certkit.pointcloud.models import accuracy

    m = _model(model, weights, points)
    X, y = _data(files, labels, points, limit, seed, m)
    if suite == "modelnet40c":
        names, sev, fn = list(CORRUPTIONS), SEVERITIES, corrupt
    elif suite == "robo3d":
        names, sev, fn = list(lc.LIDAR_CORRUPTIONS), lc.LIDAR_SEVERITIES, lc.corrupt_object
    else:
        raise UsageError(f"suite: expected modelnet40c or robo3d, got {suite!r}")
    models = [m] if baseline is None else [m, _model(baseline, None, points)]
    if out is None:
        acc = corruption_accuracy(models, X, y, fn, names, sev, seed=seed)
    else:
        settings = run_settings(suite=suite, models=[fingerprint(mm) for mm in models], data=fingerprint(X),
                                labels=fingerprint(y), seed=seed)
        units = [(i, j) for i in range(len(names)) for j in range(len(sev))]
        with ResultLog(out, settings=settings, new=new) as log:
            for u in log.todo(range(len(units))):
                i, j = units[u]
                a = corruption_accuracy(models, X, y, fn, [names[i]], [sev[j]], seed=seed)[:, 0, 0]
                log.write({"idx": u, "corruption": names[i], "severity": sev[j], "accuracy": a.tolist(),
                           "seed": seed})
            done = {r["idx"]: r["accuracy"] for r in log.rows()}
        acc = np.array([[done[i * len(sev) + j] for j in range(len(sev))] for i in range(len(names))])
        acc = np.moveaxis(acc, 2, 0)
    clean = accuracy(m, X, y)
    ce = lc.corruption_error(acc[0], acc[-1])
    summ = {"suite": suite, "clean": clean, "mCE": float(ce.mean()),
            "mRR": lc.mrr(acc[0], max(clean, 1e-9)),
            "accuracy": {nm: acc[0, i].tolist() for i, nm in enumerate(names)}}
    lines = [f"{nm:16s} " + " ".join(f"{a:.3f}" for a in acc[0, i]) + f"  CE={ce[i]:.3f}"
             for i, nm in enumerate(names)]
    _out(summ, "\n".join([f"clean {clean:.3f}", *lines, f"mCE {summ['mCE']:.3f}  mRR {summ['mRR']:.3f}"]))


@app.command()
def corrupt(
    scan: Annotated[Path, typer.Argument(help="LiDAR scan (.bin: KITTI x4, nuScenes x5)")],
    name: Annotated[str, typer.Option(help="Robo3D corruption name")] = "fog",
    severity: Annotated[int, typer.Option(help="1 light, 2 moderate, 3 heavy")] = 2,
    out: Annotated[Path | None, typer.Option(help="write the corrupted scan (.bin)")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="kitti | nuscenes | scannet (default: "
                                                              "guessed from the file, and checked)")] = None,
    columns: Annotated[int | None, typer.Option(help="float32 values per row, read as is")] = None,
    labels: Annotated[Path | None, typer.Option(help="per-point labels for incomplete_echo: a SemanticKITTI "
                                                     ".label file (uint32) or a .npy of learning-map ids")] = None,
    seed: int = 0,
) -> None:
    """Apply one Robo3D LiDAR corruption to a real scan."""
    from certkit.pointcloud import io
    from certkit.pointcloud.lidar_corruptions import corrupt_scan, read_semantickitti_labels

    s = io.read_lidar_bin(scan, columns, format=fmt)
    lab = None if labels is None else read_semantickitti_labels(labels, len(s))
    c = corrupt_scan(s, name, severity, seed=seed, labels=lab)
    if out is not None:
        io.write_lidar_bin(out, c)
    _out({"points_in": len(s), "points_out": len(c), "out": str(out) if out else None},
         f"{name} severity {severity}: {len(s)} -> {len(c)} points" + (f", wrote {out}" if out else ""))


@app.command()
def train(
    out: Annotated[Path, typer.Option(help="state_dict path (load with --model ARCH:PATH)")],
    arch: Annotated[str, typer.Option(help="pointnet | dgcnn")] = "pointnet",
    clouds: int = 400,
    points: PointsOpt = 256,
    epochs: int = 10,
    noise_sigma: float = 0.0,
    seed: int = 0,
) -> None:
    """Train a model on the embedded dataset."""
    import torch

    from certkit.core.cache import save_state
    from certkit.pointcloud.data import CLASSES, make_shapes
    from certkit.pointcloud.models import accuracy, build_model
    from certkit.pointcloud.models import train as fit

    X, y = make_shapes(clouds, points, seed=seed)
    torch.manual_seed(seed)
    m = fit(build_model(arch, len(CLASSES)), X, y, epochs=epochs, seed=seed, noise_sigma=noise_sigma)
    Xt, yt = make_shapes(200, points, seed=seed, split="test")
    save_state(m.state_dict(), out)
    acc = accuracy(m, Xt, yt)
    _out({"out": str(out), "test_accuracy": acc}, f"saved {out}: test accuracy {acc:.3f}")


@app.command()
def plot(
    results: Annotated[list[Path], typer.Argument(help="JSON-lines files from `certify --out`")],
    out: Annotated[Path, typer.Option(help="PNG path")] = Path("pointcloud_certified.png"),
) -> None:
    """Certified accuracy vs radius from certify results."""
    from certkit.core.report import use_agg
    from certkit.core.results import ResultLog

    use_agg()
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for p in results:
        if not p.is_file():
            raise UsageError(f"results: {p} does not exist")
        rows = ResultLog(p).rows()
        if not rows:
            raise UsageError(f"results: {p} has no rows")
        r = np.array([row["radius"] if row["correct"] else -1.0 for row in rows], float)
        grid = np.linspace(0, max(float(r.max()), 1e-6) if np.isfinite(r.max()) else 1, 50)
        ax.plot(grid, [(r >= g).mean() for g in grid], label=f"{p.stem} ({rows[0].get('method')})")
    ax.set_xlabel("radius")
    ax.set_ylabel("certified accuracy")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(out, dpi=120, bbox_inches="tight")
    typer.echo(str(out))


__all__ = ["app"]
