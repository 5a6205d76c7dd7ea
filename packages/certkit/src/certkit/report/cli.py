"""``certkit report`` (``certkit merge`` is in certkit-core: certkit.core.merge)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from certkit.core.cache import cache_dir
from certkit.core.cli import STATE, UsageError, echo_json
from certkit.core.report import ReportContext, use_agg


def report_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")] = Path("report"),
    full: Annotated[bool, typer.Option("--full", help="Paper-scale runs instead of the quick defaults.")] = False,
    only: Annotated[list[str] | None, typer.Option("--only", help="Run only these domains (repeatable).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for every sampler.")] = 0,
    model: Annotated[str | None, typer.Option(
        "--model", help="Your image classifier (TorchScript, .pt2 or module:factory): the vision sections "
                        "run on it and --data instead of the embedded defaults (implies --only vision "
                        "attacks bounds unless --only is given).")] = None,
    weights: Annotated[str | None, typer.Option(help="state_dict for --model module:factory.")] = None,
    data: Annotated[str | None, typer.Option(
        help="Your data for --model: .npy/.npz/.pt arrays, a CIFAR binary or image folder, or a name.")] = None,
    labels: Annotated[str | None, typer.Option(help="Labels for array --data without them.")] = None,
    data_dir: Annotated[str | None, typer.Option(help="Directory of a named --data set.")] = None,
    image_size: Annotated[str | None, typer.Option(help="H or HxW for image folders.")] = None,
    layout: Annotated[str, typer.Option(help="Array layout: auto | nchw | nhwc.")] = "auto",
    num_classes: Annotated[int, typer.Option(help="Number of classes of --model.")] = 10,
    sigma: Annotated[float, typer.Option(help="Smoothing σ for --model (train it under this noise).")] = 0.25,
) -> None:
    """Run every installed domain's headline certificate and attack on embedded defaults
    (or the vision sections on your --model and --data), and write OUT/index.html
    (self-contained) and OUT/summary.json."""
    use_agg()
    from certkit.report.build import build_report

    inputs: dict[str, object] = {}
    if model is not None:
        inputs = {"model": model, "weights": weights, "data": data or "digits", "labels": labels,
                  "data_dir": data_dir, "image_size": image_size, "layout": layout, "num_classes": num_classes,
                  "sigma": sigma}
        only = only or ["vision", "attacks", "bounds"]
    elif any(v is not None for v in (weights, data, labels, data_dir, image_size)):
        raise UsageError("--data/--labels/--weights: need --model (the report runs your model on your data)")
    ctx = ReportContext(out_dir=out, cache_dir=cache_dir("models"), full=full, seed=seed,
                        quiet=bool(STATE["quiet"]), inputs=inputs)
    page, sections = build_report(ctx, only=only, log=(lambda s: None) if STATE["json"] else typer.echo)
    from certkit.report.headline import headline_of

    failed = [s.key for s in sections if s.error]
    bad_checks = [f"{s.key}: {c.name}" for s in sections if (h := headline_of(s)[0]) is not None
                  for c in h.checks if not c.passed]
    if STATE["json"]:
        echo_json({"index": str(page), "sections": [s.key for s in sections], "failed": failed,
                   "failed_checks": bad_checks})
    else:
        typer.echo(f"wrote {page} and {out / 'summary.json'} ({len(sections)} sections)")
    # the page is written either way; the exit code tells a script that something is wrong
    # (1, not the usage-error 2: the command was used correctly)
    if failed:
        typer.echo(f"certkit: error: {len(failed)} report section(s) failed: {', '.join(failed)}", err=True)
    if bad_checks:
        typer.echo(f"certkit: error: soundness check(s) failed: {'; '.join(bad_checks)}", err=True)
    if failed or bad_checks:
        raise typer.Exit(1)

