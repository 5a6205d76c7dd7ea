"""``certkit vision conformal``: conformal prediction sets (split conformal, RSCP, RSCP+,
PTT) with their coverage and average size."""

from __future__ import annotations

from typing import Annotated

import typer

from certkit.core.cli import STATE, echo_json

app = typer.Typer(name="vision", no_args_is_help=True)


@app.command("conformal")
def conformal(
    method: Annotated[str, typer.Option(help="split | rscp | rscp+ | ptt.")] = "rscp+",
    score: Annotated[str, typer.Option(help="thr | aps | raps.")] = "thr",
    alpha: Annotated[float, typer.Option(help="Miscoverage level.")] = 0.1,
    sigma: Annotated[float, typer.Option(help="Smoothing σ (robust methods).")] = 0.25,
    eps: Annotated[float, typer.Option(help="ℓ2 attack budget ε (robust methods).")] = 0.125,
    n_mc: Annotated[int, typer.Option(help="Monte-Carlo samples per input.")] = 256,
    seed: Annotated[int, typer.Option(help="Split / noise seed.")] = 0,
) -> None:
    """Conformal prediction sets on the digits data: coverage and average size."""
    from certkit.vision.conformal.experiments import run_digits_conformal

    res = run_digits_conformal(method=method, score=score, alpha=alpha, sigma=sigma, eps=eps, n_mc=n_mc,
                               seed=seed)
    if STATE["json"]:
        echo_json(res)
        return
    for k, v in res.items():
        typer.echo(f"{k:>18}: {v:.4f}" if isinstance(v, float) else f"{k:>18}: {v}")
