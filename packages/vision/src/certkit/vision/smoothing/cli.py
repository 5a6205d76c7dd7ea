"""``certkit vision certify | evaluate | plot``: randomized-smoothing certificates of a
model on a data set, one JSON line per input (resumable), their certified accuracy / ACR,
and certified-accuracy curves.

Models: ``--model path.pt`` (TorchScript) or ``--model package.module:factory --weights
state.pt`` (a state_dict, read with ``weights_only=True``); without ``--model`` the cached
reference DigitsCNN trained at ``--sigma`` is used on the embedded digits data.
"""

from __future__ import annotations

import importlib
import time
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

from certkit.core.cli import STATE, BackendOpt, RayAddressOpt, UsageError, WorkersOpt, echo_json

app = typer.Typer(name="vision", no_args_is_help=True)


def load_model(spec: str | None, weights: str | None, sigma: float) -> Any:
    """A TorchScript file, ``module:factory`` (+ ``weights``), or the reference model."""
    import torch

    from certkit.core.cache import load_state
    from certkit.vision.data.reference import digits_cnn

    if spec is None:
        return digits_cnn(sigma)
    path = Path(spec)
    if path.suffix in (".pt", ".pth", ".ts") and ":" not in spec:
        if not path.exists():
            raise FileNotFoundError(f"--model: {path} not found")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit in torch >= 2.9
                return torch.jit.load(str(path), map_location="cpu").eval()
        except RuntimeError as exc:
            raise UsageError(f"--model: {path} is not a TorchScript file ({exc}); "
                             "for a state_dict use --model module:factory --weights file") from exc
    if ":" not in spec:
        raise UsageError(f"--model: expected a TorchScript file or module:factory, got {spec!r}")
    mod_name, factory = spec.split(":", 1)
    try:
        model = getattr(importlib.import_module(mod_name), factory)()
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"--model: cannot build {spec!r}: {exc}") from exc
    if weights is not None:
        try:
            model.load_state_dict(load_state(weights))
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise UsageError(f"--weights: {weights} does not fit {spec}: {first}") from exc
    return model.eval()


class _CertifyTask:
    """One input per work unit for the process/ray backends (see certkit.core.distributed).
    Noise is keyed by (seed, input index, sample index), so a unit certified alone gives the
    same certificate as inside a packed serial batch."""

    def __init__(self, model: str | None, weights: str | None, sigma: float, data: str,
                 data_dir: str | None, num_classes: int, n0: int, n: int, alpha: float,
                 batch_size: int, seed: int, mode: str, radius_target: list[float] | None,
                 bound: str = "looks") -> None:
        from certkit.vision.data.datasets import load_dataset
        from certkit.vision.smoothing.smooth import Smooth

        self.split = load_dataset(data, data_dir, "test")
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
        rows = ResultLog(p).rows()
        if not rows:
            raise UsageError(f"results: {p} has no rows")
        sig = {r.get("sigma") for r in rows}
        name = f"{p.stem} (σ = {sig.pop():g})" if len(sig) == 1 and None not in sig else p.stem
        out[name] = rows
    return out


@app.command("certify")
def certify(
    out: Annotated[Path, typer.Option("--out", "-o", help="JSON-lines results (resumed if present).")] = Path(
        "certify.jsonl"),
    model: Annotated[str | None, typer.Option(help="TorchScript file or module:factory.")] = None,
    weights: Annotated[str | None, typer.Option(help="state_dict for module:factory.")] = None,
    data: Annotated[str, typer.Option(help="digits | cifar10 | imagenet | folder.")] = "digits",
    data_dir: Annotated[str | None, typer.Option(help="Directory of the data set.")] = None,
    num_classes: Annotated[int, typer.Option(help="Number of classes.")] = 10,
    sigma: Annotated[float, typer.Option(help="Noise level σ (pixels in [0, 1]).")] = 0.25,
    n0: Annotated[int, typer.Option(help="Selection samples.")] = 100,
    n: Annotated[int, typer.Option(help="Estimation samples (max_n in sequential mode).")] = 100_000,
    alpha: Annotated[float, typer.Option(help="Failure probability.")] = 0.001,
    batch_size: Annotated[int, typer.Option(help="Forward batch size.")] = 1000,
    seed: Annotated[int, typer.Option(help="Noise seed.")] = 0,
    mode: Annotated[str, typer.Option(help="cohen | sequential.")] = "cohen",
    radius_target: Annotated[list[float] | None, typer.Option(
        help="Sequential: target radius (repeat for a grid).")] = None,
    bound: Annotated[str, typer.Option(
        help="Sequential: anytime-valid bound, looks (Clopper-Pearson at fixed looks) | mixture.")] = "looks",
    start: Annotated[int, typer.Option(help="First input index.")] = 0,
    count: Annotated[int, typer.Option(help="Number of inputs.")] = 100,
    skip: Annotated[int, typer.Option(help="Take every skip-th input.")] = 1,
    shard: Annotated[str | None, typer.Option(help="i/k: certify only shard i of k.")] = None,
    backend: BackendOpt = None,
    workers: WorkersOpt = None,
    ray_address: RayAddressOpt = None,
) -> None:
    """Certify inputs with randomized smoothing; one JSON line per input, resumable.

    The serial backend packs several inputs into each forward batch; process and ray run
    one input per work unit on a pool with the model resident in each worker. All give
    bit-identical certificates (noise keyed by seed, input index and sample index)."""
    from certkit.core import progress as prog
    from certkit.vision.data.datasets import load_dataset
    from certkit.vision.smoothing.metrics import average_certified_radius, certified_accuracy
    from certkit.vision.smoothing.smooth import Smooth

    if skip < 1 or count < 1 or start < 0:
        raise UsageError("--start must be >= 0, --count and --skip >= 1")
    split = load_dataset(data, data_dir, "test")
    idx = list(range(start, min(len(split), start + count * skip), skip))
    if shard is not None:
        try:
            i, k = (int(v) for v in shard.split("/"))
        except ValueError as exc:
            raise UsageError(f"--shard: expected i/k, got {shard!r}") from exc
        if not 0 <= i < k:
            raise UsageError(f"--shard: expected 0 <= i < k, got {shard!r}")
        idx = idx[i::k]
    if not idx:
        raise UsageError("no inputs selected (check --start/--count/--skip)")
    from certkit.core.distributed import TaskFactory, resolve_backend, run
    from certkit.vision.smoothing.smooth import Certificate

    if bound not in ("looks", "mixture"):
        raise UsageError(f"--bound: expected looks or mixture, got {bound!r}")
    backend_name = resolve_backend(backend)
    t0 = time.perf_counter()
    if backend_name == "serial":
        net = load_model(model, weights, sigma)
        smooth = Smooth(net, num_classes, sigma)
        certs = smooth.certify_batch(split.x[idx], n0=n0, n=n, alpha=alpha, batch_size=batch_size, seed=seed,
                                     indices=idx, labels=split.y[idx], log=out, mode=mode,
                                     radius_target=radius_target or None, bound=bound,
                                     progress=not prog.is_quiet())
    else:
        from certkit.core.results import ResultLog

        load_model(model, weights, sigma)  # fail fast, in the driver, on a bad model
        factory = TaskFactory(_make_certify_task, kwargs={
            "model": model, "weights": weights, "sigma": sigma, "data": data, "data_dir": data_dir,
            "num_classes": num_classes, "n0": n0, "n": n, "alpha": alpha, "batch_size": batch_size,
            "seed": seed, "mode": mode, "radius_target": radius_target or None, "bound": bound})
        with ResultLog(out) as log, prog.Counter(len(idx), "certify", "input") as bar:
            rows = run(factory, idx, backend=backend_name, workers=workers, log=log,
                       ray_address=ray_address, on_result=lambda _r: bar.update(1))
        certs = [Certificate.from_row(r) for r in rows]
    radii = [0.0, 0.25, 0.5, 0.75, 1.0]
    acc = certified_accuracy(certs, radii)
    summary = {"results": str(out), "inputs": len(certs), "sigma": sigma, "mode": mode,
               "acr": average_certified_radius(certs),
               "certified_accuracy": {f"{r:g}": float(a) for r, a in zip(radii, acc, strict=True)},
               "forward_passes_mean": sum(c.forward_passes for c in certs) / len(certs),
               "seconds": time.perf_counter() - t0}
    if STATE["json"]:
        echo_json(summary)
        return
    typer.echo(f"{len(certs)} inputs → {out}; ACR {summary['acr']:.4f}; mean forward passes "
               f"{summary['forward_passes_mean']:,.0f}")
    typer.echo("certified accuracy: " + ", ".join(f"r={r:g}: {a:.3f}" for r, a in zip(radii, acc, strict=True)))


@app.command("evaluate")
def evaluate(
    results: Annotated[list[Path], typer.Argument(help="Results files from `certify`.")],
    radii: Annotated[list[float] | None, typer.Option("--radius", help="Radii (repeatable).")] = None,
) -> None:
    """Certified accuracy at radii, ACR and forward passes of results files."""
    from certkit.vision.smoothing.metrics import average_certified_radius, certified_accuracy

    grid = radii or [0.0, 0.25, 0.5, 0.75, 1.0]
    table = {}
    for name, rows in _load_results(results).items():
        acc = certified_accuracy(rows, grid)
        table[name] = {"inputs": len(rows), "acr": average_certified_radius(rows),
                       "certified_accuracy": {f"{r:g}": float(a) for r, a in zip(grid, acc, strict=True)},
                       "forward_passes_mean": sum(r["n"] + r["n0"] for r in rows) / len(rows)}
    if STATE["json"]:
        echo_json(table)
        return
    typer.echo(f"{'results':32}{'inputs':>8}{'ACR':>8}" + "".join(f"{'r=' + format(r, 'g'):>8}" for r in grid)
               + f"{'passes':>10}")
    for name, row in table.items():
        typer.echo(f"{name[:32]:32}{row['inputs']:8d}{row['acr']:8.3f}"
                   + "".join(f"{v:8.3f}" for v in row["certified_accuracy"].values())
                   + f"{row['forward_passes_mean']:10.0f}")


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
