"""``certkit vision verified ...``: certified training on digits (``train``, Shi et al. 2021
recipe; IBP or CROWN-IBP, :mod:`certkit.vision.training.certified`) and clean / verified accuracy of a
model on the digits test split (``evaluate``).

Verification, VNN-LIB properties, attacks and plots of bound propagation are
``certkit bounds ...`` (certkit-core, :mod:`certkit.core.bounds.cli`), which also loads the
models saved here."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer

from certkit.core.bounds.cli import (
    EpsOpt,
    ModelOpt,
    WeightsOpt,
    check_eps,
    emit,
    load_bounds_model,
    vision_module,
)

app = typer.Typer(help="Certified training (IBP / CROWN-IBP) and verified accuracy on digits.",
                  no_args_is_help=True)


@app.command()
def train(out: Annotated[Path, typer.Option("--out", help="Where to save the model (.pt).")] = Path("verified.pt"),
          eps: EpsOpt = 0.1,
          method: Annotated[str, typer.Option(help="IBP or CROWN-IBP")] = "IBP",
          arch: Annotated[str, typer.Option(help="mlp or cnn")] = "mlp",
          epochs: int = 12, ramp_epochs: int = 5, seed: int = 0,
          loss_fusion: Annotated[bool, typer.Option("--loss-fusion", help="robust CE by loss fusion")] = False,
          full: Annotated[bool, typer.Option("--full", help="CNN, CROWN-IBP, 40 epochs")] = False) -> None:
    """Certified training on digits (Shi et al. 2021 recipe)."""
    import time

    from certkit.core.cache import save_state
    from certkit.core.cli import UsageError

    V = vision_module("verified")
    check_eps(eps)
    if full:
        model, cfg = V.quick_config(full=True)
        kw: dict[str, Any] = {}
    else:
        if arch not in ("mlp", "cnn"):
            raise UsageError(f"--arch: expected mlp or cnn, got {arch!r}")
        model = V.CertifiedMLP() if arch == "mlp" else V.CertifiedCNN()
        kw = {}
        cfg = V.TrainConfig(method=method, epochs=epochs, ramp_epochs=ramp_epochs)
    cfg.eps, cfg.seed, cfg.loss_fusion = eps, seed, loss_fusion
    tr, te = vision_module("digits").load_digits()
    t0 = time.perf_counter()
    try:
        model, hist = V.train_certified(model, tr.x, tr.y, cfg, x_val=te.x, y_val=te.y)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    meta = {"arch": type(model).__name__, "arch_kwargs": kw, "config": dataclasses.asdict(cfg),
            "train_seconds": time.perf_counter() - t0}
    save_state({"model": model.state_dict(), "meta": meta}, out)
    emit({"saved": str(out), "history": hist.epochs[-1], **meta})


@app.command()
def evaluate(model: ModelOpt = None, weights: WeightsOpt = None, eps: EpsOpt = 0.1,
             methods: Annotated[str, typer.Option(help="comma-separated: IBP,CROWN,CROWN-IBP,alpha-CROWN")] = "IBP,CROWN"
             ) -> None:
    """Clean and verified accuracy on the digits test split."""
    check_eps(eps)
    m = load_bounds_model(model, weights)
    _, te = vision_module("digits").load_digits()
    emit(vision_module("verified").evaluate(m, te.x, te.y, eps,
                                             methods=tuple(s.strip() for s in methods.split(",") if s.strip())))
