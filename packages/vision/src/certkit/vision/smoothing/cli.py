"""``certkit vision certify | evaluate | plot``: randomized-smoothing certificates of a
model on a data set, one JSON line per input (resumable), their certified accuracy / ACR,
and certified-accuracy curves.

Model and data: ``--model`` (TorchScript, ``.pt2`` or ``module:factory`` + ``--weights``),
``--data`` (a named data set or ``.npy`` / ``.npz`` / ``.pt`` arrays, CIFAR binaries, an
image folder; see :mod:`certkit.vision.data.inputs`); without ``--model`` the cached
reference DigitsCNN trained at ``--sigma`` runs on the embedded digits data. Before any
sampling one dry forward pass checks the model against the data (one line, exit 2).

Results files record the run's settings on their first line (model and data fingerprints,
σ, n0, n, α, seed, mode, bound, radius grid, certkit version): resuming with other settings
is refused, naming them (``--new`` starts a new file); a second run writing the same file
at once is refused (lock); every row records its seed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from certkit.core.cli import STATE, BackendOpt, RayAddressOpt, UsageError, WorkersOpt, echo_json
from certkit.vision.data.inputs import (
    DataDirOpt,
    DataOpt,
    ImageSizeOpt,
    LabelsOpt,
    LayoutOpt,
    NewOpt,
    NumClassesOpt,
)

app = typer.Typer(name="vision", no_args_is_help=True)

RADII = [0.0, 0.25, 0.5, 0.75, 1.0]


def load_model(spec: str | None, weights: str | None, sigma: float) -> Any:
    """``--model`` / ``--weights`` (see :func:`certkit.core.modelio.load_model`), or the
    reference DigitsCNN trained under N(0, σ²) without ``--model``."""
    from certkit.vision.data.inputs import load_user_model
    from certkit.vision.data.reference import digits_cnn

    return load_user_model(spec, weights, lambda: digits_cnn(sigma))


def certify_settings(model: Any, split: Any, **params: Any) -> dict[str, Any]:
    """The settings line of a certify results file: model and data content hashes plus
    every parameter that changes a certificate (not the batch size, backend or shards:
    certificates do not depend on them)."""
    from certkit.core.results import fingerprint, run_settings

    return run_settings(model=fingerprint(model), data=fingerprint(split.x), labels=fingerprint(split.y),
                        **params)


class _CertifyTask:
    """One input per work unit for the process/ray backends (see certkit.core.distributed).
    Noise is keyed by (seed, input index, sample index), so a unit certified alone gives the
    same certificate as inside a packed serial batch."""

    def __init__(self, model: str | None, weights: str | None, sigma: float, data: dict[str, Any],
                 num_classes: int, n0: int, n: int, alpha: float, batch_size: int, seed: int, mode: str,
                 radius_target: list[float] | None, bound: str = "looks") -> None:
        from certkit.vision.data.inputs import load_user_data
        from certkit.vision.smoothing.smooth import Smooth

        self.split = load_user_data(**data)
        self.smooth = Smooth(load_model(model, weights, sigma), num_classes, sigma)
        self.kw: dict[str, Any] = {"n0": n0, "n": n, "alpha": alpha, "batch_size": batch_size,
                                   "seed": seed, "mode": mode, "radius_target": radius_target,
                                   "bound": bound}

    def __call__(self, idx: int) -> dict[str, Any]:
        cert = self.smooth.certify_batch(self.split.x[[idx]], indices=[idx],
                                         labels=self.split.y[[idx]], **self.kw)[0]
        return cert.as_row()


def _make_certify_task(**kwargs: Any) -> _CertifyTask:
    return _CertifyTask(**kwargs)


def _load_results(paths: list[Path]) -> dict[str, list[dict[str, Any]]]:
    from certkit.core.results import ResultLog

    out: dict[str, list[dict[str, Any]]] = {}
    for p in paths:
        if not p.exists():
            raise FileNotFoundError(f"results: {p} not found")
        rows = ResultLog.read(p)
        if not rows:
            raise UsageError(f"results: {p} has no rows")
        sig = {r.get("sigma") for r in rows}
        name = f"{p.stem} (σ = {sig.pop():g})" if len(sig) == 1 and None not in sig else p.stem
        out[name] = rows
    return out


def select_indices(n_total: int, start: int, count: int, skip: int, shard: str | None) -> list[int]:
    """Input indices of ``--start/--count/--skip`` (and ``--shard i/k``)."""
    if skip < 1 or count < 1 or start < 0:
        raise UsageError("--start must be >= 0, --count and --skip >= 1")
    idx = list(range(start, min(n_total, start + count * skip), skip))
    if shard is not None:
        try:
            i, k = (int(v) for v in shard.split("/"))
        except ValueError as exc:
            raise UsageError(f"--shard: expected i/k, got {shard!r}") from exc
        if not 0 <= i < k:
            raise UsageError(f"--shard: expected 0 <= i < k, got {shard!r}")
        idx = idx[i::k]
    if not idx:
        raise UsageError(f"no inputs selected (the data has {n_total}; check --start/--count/--skip)")
    return idx


def summarize(certs: list[Any], out: Path, sigma: float, mode: str, seconds: float,
              grid: list[float] | None = None) -> dict[str, Any]:
    """The summary a certify command prints: certified accuracy at the standard radii, ACR
    and forward passes. Sequential runs certify only up to their radius grid (a radius is
    stopped once it is decided between two grid radii), so their ACR is reported as
    ``acr_on_grid``: each radius rounded down to the grid, which equals Cohen's ACR
    rounded the same way when both curves agree at the grid points."""
    from certkit.vision.smoothing.metrics import (
        average_certified_radius,
        certified_accuracy,
        grid_acr,
    )

    acc = certified_accuracy(certs, RADII)
    summary: dict[str, Any] = {
        "results": str(out), "inputs": len(certs), "sigma": sigma, "mode": mode,
        "certified_accuracy": {f"{r:g}": float(a) for r, a in zip(RADII, acc, strict=True)},
        "forward_passes_mean": sum(c.forward_passes for c in certs) / len(certs), "seconds": seconds}
    if mode == "sequential" and grid:
        summary["acr_on_grid"] = grid_acr(certs, grid)
        summary["radius_grid"] = list(grid)
    else:
        summary["acr"] = average_certified_radius(certs)
    return summary


def print_summary(summary: dict[str, Any]) -> None:
    if STATE["json"]:
        echo_json(summary)
        return
    if "acr" in summary:
        acr = f"ACR {summary['acr']:.4f}"
    else:
        g = summary["radius_grid"]
        acr = (f"ACR on the radius grid {summary['acr_on_grid']:.4f} (radii rounded down to the grid "
               f"{', '.join(f'{r:g}' for r in g[:6])}{', ...' if len(g) > 6 else ''}; compare with "
               "`certkit vision evaluate --grid`, not with a fixed-n ACR)")
    typer.echo(f"{summary['inputs']} inputs → {summary['results']}; {acr}; mean forward passes "
               f"{summary['forward_passes_mean']:,.0f}")
    typer.echo("certified accuracy: " + ", ".join(f"r={r}: {a:.3f}" for r, a in summary["certified_accuracy"].items()))


def certify_dual(split: Any, idx: list[int], *, out: Path, model: str | None, weights: str | None,
                 model_right: str | None, weights_right: str | None, sigma: float, num_classes: int, n0: int,
                 n: int, alpha: float, batch_size: int, seed: int, new: bool,
                 backend: str | None) -> tuple[list[Any], float]:
    """``certify --dual``: Dual RS certificates of the selected inputs into ``out``."""
    from certkit.core.distributed import resolve_backend
    from certkit.core.results import ResultLog, fingerprint
    from certkit.vision.data.checks import check_model_input
    from certkit.vision.data.inputs import load_user_model
    from certkit.vision.smoothing.dual import DualSmooth, split_checkerboard

    if model is None:
        raise UsageError("--dual: needs --model (the left half's classifier, (B, C, H, W/2) → logits)")
    if resolve_backend(backend) != "serial":
        raise UsageError("--dual: runs on the serial backend only")
    left = load_user_model(model, weights)
    right = load_user_model(model_right or model, weights_right if model_right else (weights_right or weights))
    if split.x.shape[-1] % 2:
        raise UsageError(f"--dual: needs an even image width, got images {tuple(split.x.shape[1:])}")
    xl, xr = split_checkerboard(split.x[:1])
    for opt, side, net, half in (("--model", "left", left, xl), ("--model-right", "right", right, xr)):
        try:
            check_model_input(net, half, num_classes, name=f"--data (its {side} half)")
        except ValueError as exc:
            raise ValueError(f"{opt}: {exc}") from exc
    settings = certify_settings(left, split, model_right=fingerprint(right), sigma=sigma, n0=n0, n=n, alpha=alpha,
                                seed=seed, mode="dual", num_classes=num_classes)
    t0 = time.perf_counter()
    with ResultLog(out, settings=settings, new=new) as log:
        certs = DualSmooth(left, right, num_classes, sigma).certify_batch(
            split.x[idx], n0, n, alpha, batch_size, seed=seed, indices=idx, labels=split.y[idx], log=log)
    return certs, t0


@app.command("certify")
def certify(
    out: Annotated[Path, typer.Option("--out", "-o", help="JSON-lines results (resumed if present).")] = Path(
        "certify.jsonl"),
    model: Annotated[str | None, typer.Option(
        help="TorchScript file, torch.export .pt2, or module:factory (./module.py works).")] = None,
    weights: Annotated[str | None, typer.Option(help="state_dict for module:factory.")] = None,
    data: DataOpt = "digits",
    labels: LabelsOpt = None,
    data_dir: DataDirOpt = None,
    image_size: ImageSizeOpt = None,
    layout: LayoutOpt = "auto",
    num_classes: NumClassesOpt = 10,
    sigma: Annotated[float, typer.Option(help="Noise level σ (pixels in [0, 1]).")] = 0.25,
    n0: Annotated[int, typer.Option(help="Selection samples.")] = 100,
    n: Annotated[int, typer.Option(help="Estimation samples (max_n in sequential mode).")] = 100_000,
    alpha: Annotated[float, typer.Option(help="Failure probability.")] = 0.001,
    batch_size: Annotated[int, typer.Option(help="Forward batch size.")] = 1000,
    seed: Annotated[int, typer.Option(help="Noise seed.")] = 0,
    mode: Annotated[str, typer.Option(help="cohen | sequential.")] = "cohen",
    radius_target: Annotated[list[float] | None, typer.Option(
        help="Sequential: the radius grid to certify (repeat; default 0, 0.25, ..., 1.0).")] = None,
    bound: Annotated[str, typer.Option(
        help="Sequential: anytime-valid bound, looks (Clopper-Pearson at fixed looks) | mixture.")] = "looks",
    dual: Annotated[bool, typer.Option(
        "--dual", help="Dual randomized smoothing (Xia et al. 2024): --model classifies the left half "
                       "(checkerboard, W/2 wide), --model-right the right half (default: --model).")] = False,
    model_right: Annotated[str | None, typer.Option(help="--dual: the right half's model.")] = None,
    weights_right: Annotated[str | None, typer.Option(help="--dual: state_dict for --model-right.")] = None,
    start: Annotated[int, typer.Option(help="First input index.")] = 0,
    count: Annotated[int, typer.Option(help="Number of inputs.")] = 100,
    skip: Annotated[int, typer.Option(help="Take every skip-th input.")] = 1,
    shard: Annotated[str | None, typer.Option(help="i/k: certify only shard i of k.")] = None,
    new: NewOpt = False,
    backend: BackendOpt = None,
    workers: WorkersOpt = None,
    ray_address: RayAddressOpt = None,
) -> None:
    """Certify inputs with randomized smoothing; one JSON line per input, resumable.

    The serial backend packs several inputs into each forward batch; process and ray run
    one input per work unit on a pool with the model resident in each worker. All give
    bit-identical certificates (noise keyed by seed, input index and sample index)."""
    from certkit.core import progress as prog
    from certkit.core.distributed import TaskFactory, resolve_backend, run
    from certkit.core.results import ResultLog
    from certkit.vision.data.inputs import check_user_model, load_user_data
    from certkit.vision.smoothing.smooth import Certificate, Smooth

    if mode not in ("cohen", "sequential"):
        raise UsageError(f"--mode: expected cohen or sequential, got {mode!r}")
    if bound not in ("looks", "mixture"):
        raise UsageError(f"--bound: expected looks or mixture, got {bound!r}")
    data_kw = {"data": data, "labels": labels, "data_dir": data_dir, "image_size": image_size, "layout": layout}
    split = load_user_data(**data_kw)
    idx = select_indices(len(split), start, count, skip, shard)
    grid = (radius_target or None) if mode == "sequential" else None
    if dual:
        certs, t0 = certify_dual(split, idx, out=out, model=model, weights=weights, model_right=model_right,
                                 weights_right=weights_right, sigma=sigma, num_classes=num_classes, n0=n0, n=n,
                                 alpha=alpha, batch_size=batch_size, seed=seed, new=new, backend=backend)
        print_summary(summarize(certs, out, sigma, "dual", time.perf_counter() - t0))
        return
    if model_right is not None or weights_right is not None:
        raise UsageError("--model-right: only with --dual")
    net = load_model(model, weights, sigma)
    if model is not None:
        check_user_model(net, split, num_classes, data)
    settings = certify_settings(net, split, sigma=sigma, n0=n0, n=n, alpha=alpha, seed=seed, mode=mode,
                                bound=bound if mode == "sequential" else None, radius_grid=grid,
                                num_classes=num_classes)
    backend_name = resolve_backend(backend)
    t0 = time.perf_counter()
    with ResultLog(out, settings=settings, new=new) as log:
        if backend_name == "serial":
            smooth = Smooth(net, num_classes, sigma)
            certs = smooth.certify_batch(split.x[idx], n0=n0, n=n, alpha=alpha, batch_size=batch_size, seed=seed,
                                         indices=idx, labels=split.y[idx], log=log, mode=mode,
                                         radius_target=grid, bound=bound, progress=not prog.is_quiet())
        else:
            factory = TaskFactory(_make_certify_task, kwargs={
                "model": model, "weights": weights, "sigma": sigma, "data": data_kw,
                "num_classes": num_classes, "n0": n0, "n": n, "alpha": alpha, "batch_size": batch_size,
                "seed": seed, "mode": mode, "radius_target": grid, "bound": bound})
            with prog.Counter(len(idx), "certify", "input") as bar:
                rows = run(factory, idx, backend=backend_name, workers=workers, log=log,
                           ray_address=ray_address, on_result=lambda _r: bar.update(1))
            certs = [Certificate.from_row(r) for r in rows]
    print_summary(summarize(certs, out, sigma, mode, time.perf_counter() - t0, grid))


@app.command("evaluate")
def evaluate(
    results: Annotated[list[Path], typer.Argument(help="Results files from `certify`.")],
    radii: Annotated[list[float] | None, typer.Option("--radius", help="Radii (repeatable).")] = None,
    on_grid: Annotated[bool, typer.Option(
        "--grid", help="ACR over the --radius grid (radii rounded down to it): compares sequential runs "
                       "with fixed-n runs.")] = False,
) -> None:
    """Certified accuracy at radii, ACR and forward passes of results files."""
    from certkit.vision.smoothing.metrics import (
        average_certified_radius,
        certified_accuracy,
        grid_acr,
    )

    grid = radii or list(RADII)
    table = {}
    for name, rows in _load_results(results).items():
        acc = certified_accuracy(rows, grid)
        table[name] = {"inputs": len(rows),
                       "acr": grid_acr(rows, grid) if on_grid else average_certified_radius(rows),
                       "certified_accuracy": {f"{r:g}": float(a) for r, a in zip(grid, acc, strict=True)},
                       "forward_passes_mean": sum(r["n"] + r["n0"] for r in rows) / len(rows)}
    if STATE["json"]:
        echo_json(table)
        return
    typer.echo(f"{'results':32}{'inputs':>8}{'ACR*' if on_grid else 'ACR':>8}" + "".join(f"{'r=' + format(r, 'g'):>8}" for r in grid)
               + f"{'passes':>10}")
    for name, row in table.items():
        typer.echo(f"{name[:32]:32}{row['inputs']:8d}{row['acr']:8.3f}"
                   + "".join(f"{v:8.3f}" for v in row["certified_accuracy"].values())
                   + f"{row['forward_passes_mean']:10.0f}")
    if on_grid:
        typer.echo("ACR*: radii rounded down to the grid " + ", ".join(f"{r:g}" for r in grid))


@app.command("plot")
def plot(
    results: Annotated[list[Path], typer.Argument(help="Results files (one curve each).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG file.")] = Path("certified_accuracy.png"),
    title: Annotated[str, typer.Option(help="Plot title.")] = "",
) -> None:
    """Certified accuracy vs radius, one curve per results file (e.g. per σ)."""
    from certkit.core.report import use_agg

    use_agg()
    from certkit.vision.smoothing.metrics import plot_certified_accuracy

    fig = plot_certified_accuracy(_load_results(results), title=title)
    fig.savefig(out, dpi=150, bbox_inches="tight")
    if STATE["json"]:
        echo_json({"plot": str(out)})
    else:
        typer.echo(f"wrote {out}")
