"""``certkit theory ...``: run a paper's closed-form-vs-simulation study, check it, list papers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from certkit.core.cli import STATE, echo_json
from certkit.theory import registry

app = typer.Typer(help="Closed-form robustness theory next to simulations, with plots.",
                  no_args_is_help=True)


@app.command("list")
def list_papers() -> None:
    """List the papers (name, title, citation)."""
    rows = []
    for name in registry.PAPERS:
        m = registry.module(name)
        rows.append({"paper": name, "title": m.TITLE, "citation": m.CITATION})
    if STATE["json"]:
        echo_json(rows)
        return
    for r in rows:
        typer.echo(f"{r['paper']:<20} {r['citation']:<18} {r['title']}")


@app.command("run")
def run(
    paper: Annotated[str, typer.Argument(help="Paper name (see `certkit theory list`).")],
    paper_mode: Annotated[bool, typer.Option("--paper-mode", help="Paper-scale run (slow).")] = False,
    out: Annotated[Path, typer.Option("--out", help="Output directory.")] = Path("theory_out"),
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Run the check, the simulations and the plots; write <paper>.csv/.json and PNGs to --out."""
    mod = registry.module(paper)
    result = mod.run(paper_mode=paper_mode, seed=seed)
    paths = registry.write_run(result, out)
    if STATE["json"]:
        echo_json({"paper": result.paper, "summary": result.summary, "files": [str(p) for p in paths]})
        return
    typer.echo(f"{result.title} [{result.citation}] ({result.mode} mode): check passed")
    for k, v in result.summary.items():
        typer.echo(f"  {k}: {v}")
    for p in paths:
        typer.echo(f"  wrote {p}")


@app.command("check")
def check(
    paper: Annotated[str, typer.Argument(help="Paper name, or 'all'.")] = "all",
    paper_mode: Annotated[bool, typer.Option("--paper-mode")] = False,
) -> None:
    """Assert closed form vs simulation; exit code 1 when any check fails or crashes."""
    names = list(registry.PAPERS) if paper == "all" else [registry.resolve(paper)]
    failed = []
    results = {}
    for name in names:
        try:
            registry.module(name).check("paper" if paper_mode else "quick")
            results[name] = "pass"
        except AssertionError as e:
            failed.append(name)
            results[name] = f"FAIL: {e}"
        except Exception as e:  # a check that crashes has not passed either
            failed.append(name)
            results[name] = f"ERROR: {type(e).__name__}: {e}"
    if STATE["json"]:
        echo_json(results)
    else:
        for k, v in results.items():
            typer.echo(f"{k:<20} {v}")
    if failed:
        raise typer.Exit(1)


@app.command("plot")
def plot(
    paper: Annotated[str, typer.Argument(help="Paper name.")],
    out: Annotated[Path, typer.Option("--out")] = Path("theory_out"),
) -> None:
    """Same as `run` in quick mode (plots need the simulations)."""
    run(paper, False, out, 0)
