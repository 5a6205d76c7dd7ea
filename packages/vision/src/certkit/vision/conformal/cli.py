"""``certkit vision conformal``: conformal prediction sets of a model on a data set
(split conformal with THR / LAC, APS, RAPS; RSCP, RSCP+ and PTT under attack), with their
coverage and average size over random calibration/test splits.

Model and data as for ``certkit vision certify`` (:mod:`certkit.vision.data.inputs`);
without ``--model`` the cached reference DigitsCNN trained at ``--sigma`` on the embedded
digits. RCT (robust conformal training) is an API recipe: see docs/vision.md.
"""

from __future__ import annotations

import warnings
from typing import Annotated

import typer

from certkit.core.cli import STATE, echo_json
from certkit.vision.data.inputs import (
    DataDirOpt,
    DataOpt,
    ImageSizeOpt,
    LabelsOpt,
    LayoutOpt,
    ModelOpt,
    NumClassesOpt,
    WeightsOpt,
)

app = typer.Typer(name="vision", no_args_is_help=True)


@app.command("conformal")
def conformal(
    model: ModelOpt = None,
    weights: WeightsOpt = None,
    data: DataOpt = "digits",
    labels: LabelsOpt = None,
    data_dir: DataDirOpt = None,
    image_size: ImageSizeOpt = None,
    layout: LayoutOpt = "auto",
    num_classes: NumClassesOpt = 10,
    method: Annotated[str, typer.Option(
        help="thr (TorchCP: lac) | aps | raps: split conformal; rscp | rscp+ | ptt: robust to ℓ2 attacks "
             "of size --eps; split: split conformal with --score.")] = "rscp+",
    score: Annotated[str, typer.Option(help="Score of split / rscp / rscp+ / ptt: thr (lac) | aps | raps.")] = "thr",
    alpha: Annotated[float, typer.Option(help="Miscoverage level.")] = 0.1,
    sigma: Annotated[float, typer.Option(help="Smoothing σ (robust methods).")] = 0.25,
    eps: Annotated[float, typer.Option(help="ℓ2 attack budget ε (robust methods).")] = 0.125,
    n_mc: Annotated[int, typer.Option(help="Monte-Carlo samples per input (robust methods).")] = 256,
    splits: Annotated[int, typer.Option(help="Random calibration/test splits to average over.")] = 10,
    count: Annotated[int | None, typer.Option(help="Use the first COUNT inputs (default: all).")] = None,
    seed: Annotated[int, typer.Option(help="Split / noise seed.")] = 0,
) -> None:
    """Conformal prediction sets of a model on a data set: coverage and average size."""
    from certkit.vision.conformal.experiments import run_conformal
    from certkit.vision.conformal.robust import DegenerateSetsWarning
    from certkit.vision.data.inputs import check_user_model, load_user_data, load_user_model
    from certkit.vision.data.reference import digits_cnn

    split = load_user_data(data, labels, data_dir, image_size, layout)
    if count is not None:
        if count < 2:
            raise ValueError("--count: expected >= 2 (calibration and test inputs)")
        split = type(split)(split.x[:count], split.y[:count])
    net = load_user_model(model, weights, lambda: digits_cnn(sigma))
    check_user_model(net, split, num_classes, data)
    if int(split.y.max()) >= num_classes:
        raise ValueError(f"--labels: classes up to {int(split.y.max())}, but --num-classes {num_classes}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DegenerateSetsWarning)
        res = run_conformal(net, split.x, split.y, method=method, score=score, alpha=alpha, sigma=sigma, eps=eps,
                            n_mc=n_mc, seed=seed, n_splits=splits)
    degenerate = [str(w.message) for w in caught if issubclass(w.category, DegenerateSetsWarning)]
    for w in caught:
        if not issubclass(w.category, DegenerateSetsWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if degenerate:
        res["warning"] = degenerate[0]
    if STATE["json"]:
        echo_json(res)
    else:
        for k, v in res.items():
            if k != "warning":
                typer.echo(f"{k:>20}: {v:.4f}" if isinstance(v, float) else f"{k:>20}: {v}")
    for msg in degenerate:
        typer.echo(f"certkit: warning: {msg}", err=True)
