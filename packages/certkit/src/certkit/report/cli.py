"""``certkit report`` and ``certkit merge``."""

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
) -> None:
    """Run every installed domain's headline certificate and attack on embedded defaults,
    and write OUT/index.html (self-contained) and OUT/summary.json."""
    use_agg()
    from certkit.report.build import build_report

    ctx = ReportContext(out_dir=out, cache_dir=cache_dir("models"), full=full, seed=seed,
                        quiet=bool(STATE["quiet"]))
    page, sections = build_report(ctx, only=only, log=(lambda s: None) if STATE["json"] else typer.echo)
    failed = [s.key for s in sections if s.error]
    if STATE["json"]:
        echo_json({"index": str(page), "sections": [s.key for s in sections], "failed": failed})
    else:
        typer.echo(f"wrote {page} and {out / 'summary.json'} ({len(sections)} sections)")
    if failed:
        raise UsageError(f"{len(failed)} report section(s) failed: {', '.join(failed)}")


def merge_command(
    shards: Annotated[list[Path], typer.Argument(help="Shard result files (.jsonl).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Merged .jsonl file.")],
) -> None:
    """Join the JSON-lines outputs of a sharded run (--shard k/n) into one file."""
    from certkit.core.results import merge_logs

    for p in shards:
        if not p.exists():
            raise FileNotFoundError(f"shards: no such file {p}")
    n = merge_logs(shards, out)
    if STATE["json"]:
        echo_json({"out": str(out), "rows": n})
    else:
        typer.echo(f"merged {n} rows into {out}")
