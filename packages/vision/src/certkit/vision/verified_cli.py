"""``certkit bounds ...``: certified training, verification (VNN-COMP statuses, PGD
first), attacks, evaluation and plots for bound propagation on digits."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(help="Bound propagation (IBP/CROWN/α-CROWN) and certified training on digits.",
                  no_args_is_help=True)

ModelOpt = Annotated[Path | None, typer.Option("--model", help="A model saved by `certkit bounds train` "
                                                              "(default: the cached reference model).")]
EpsOpt = Annotated[float, typer.Option("--eps", help="ℓ∞ radius in [0,1] pixel units.")]


def _emit(obj: Any) -> None:
    from certkit.core.cli import STATE, echo_json

    if STATE.get("json"):
        echo_json(obj)
    else:
        typer.echo(json.dumps(obj, indent=1, default=str))


def _load(model_path: Path | None, full: bool = False) -> Any:
    from certkit.core.cache import cache_dir, load_state
    from certkit.core.cli import UsageError
    from certkit.vision import verified as V

    if model_path is None:
        return V.cached_model(cache_dir("vision"), full=full)[0]
    if not model_path.exists():
        raise UsageError(f"--model: no such file {model_path}")
    try:
        state = load_state(model_path)
        meta = state["meta"]
        arch = meta["arch"]
        model = V.CertifiedCNN(**meta.get("arch_kwargs", {})) if arch == "CertifiedCNN" else \
            V.CertifiedMLP(**meta.get("arch_kwargs", {}))
        model.load_state_dict(state["model"])
    except Exception as exc:
        raise UsageError(f"--model: cannot load {model_path}: {exc}") from exc
    return model.eval()


def _check_eps(eps: float) -> float:
    from certkit.core.cli import UsageError

    if not eps >= 0 or eps != eps:
        raise UsageError(f"--eps: expected a value >= 0, got {eps}")
    return eps


@app.command()
def train(out: Annotated[Path, typer.Option("--out", help="Where to save the model (.pt).")] = Path("verified.pt"),
          eps: EpsOpt = 0.1,
          method: Annotated[str, typer.Option(help="IBP or CROWN-IBP")] = "IBP",
          arch: Annotated[str, typer.Option(help="mlp or cnn")] = "mlp",
          epochs: int = 12, ramp_epochs: int = 5, seed: int = 0,
          full: Annotated[bool, typer.Option("--full", help="CNN, CROWN-IBP, 40 epochs")] = False) -> None:
    """Certified training on digits (Shi et al. 2021 recipe)."""
    import time

    from certkit.core.cache import save_state
    from certkit.core.cli import UsageError
    from certkit.vision import verified as V
    from certkit.vision.data import load_digits

    _check_eps(eps)
    if full:
        model, cfg = V.quick_config(full=True)
        kw: dict[str, Any] = {}
    else:
        if arch not in ("mlp", "cnn"):
            raise UsageError(f"--arch: expected mlp or cnn, got {arch!r}")
        model = V.CertifiedMLP() if arch == "mlp" else V.CertifiedCNN()
        kw = {}
        cfg = V.TrainConfig(method=method, epochs=epochs, ramp_epochs=ramp_epochs)
    cfg.eps, cfg.seed = eps, seed
    tr, te = load_digits()
    t0 = time.perf_counter()
    try:
        model, hist = V.train_certified(model, tr.x, tr.y, cfg, x_val=te.x, y_val=te.y)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    meta = {"arch": type(model).__name__, "arch_kwargs": kw, "config": dataclasses.asdict(cfg),
            "train_seconds": time.perf_counter() - t0}
    save_state({"model": model.state_dict(), "meta": meta}, out)
    _emit({"saved": str(out), "history": hist.epochs[-1], **meta})


@app.command()
def evaluate(model: ModelOpt = None, eps: EpsOpt = 0.1,
             methods: Annotated[str, typer.Option(help="comma-separated: IBP,CROWN,CROWN-IBP,alpha-CROWN")] = "IBP,CROWN"
             ) -> None:
    """Clean and verified accuracy on the digits test split."""
    from certkit.vision.data import load_digits
    from certkit.vision.verified import evaluate as ev

    _check_eps(eps)
    m = _load(model)
    _, te = load_digits()
    _emit(ev(m, te.x, te.y, eps, methods=tuple(s.strip() for s in methods.split(",") if s.strip())))


@app.command()
def verify(model: ModelOpt = None, eps: EpsOpt = 0.1, n: int = 50, timeout: float = 10.0,
           log: Annotated[Path | None, typer.Option(help="ResultLog (JSON lines); resumes")] = None) -> None:
    """Per-input verification results (verified / falsified / unknown / timeout), PGD first."""
    from certkit.core.results import ResultLog
    from certkit.vision.data import load_digits
    from certkit.vision.verified import verify as vf

    _check_eps(eps)
    m = _load(model)
    _, te = load_digits()
    idx = list(range(min(n, len(te))))
    rl = ResultLog(log) if log is not None else None
    if rl is not None:
        idx = rl.todo(idx)
    rows = []
    for i in idx:
        r = vf(m, te.x[i:i + 1], te.y[i:i + 1], eps, timeout=timeout, indices=[i])[0]
        row = dataclasses.asdict(r)
        row["counterexample"] = row["counterexample"] is not None
        rows.append(row)
        if rl is not None:
            rl.write(row)
    allrows = rl.rows() if rl is not None else rows
    counts: dict[str, int] = {}
    for r in allrows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    _emit({"eps": eps, "n": len(allrows), "counts": counts})


@app.command()
def attack(model: ModelOpt = None, eps: EpsOpt = 0.1, steps: int = 20, n: int = 200) -> None:
    """PGD (ℓ∞) robust accuracy: an upper bound that verified accuracy must not exceed."""
    import torch

    from certkit.vision.data import load_digits
    from certkit.vision.verified import pgd_attack

    _check_eps(eps)
    m = _load(model)
    _, te = load_digits()
    x, y = te.x[:n], te.y[:n]
    adv = pgd_attack(m, x, y, eps, steps=steps)
    with torch.no_grad():
        acc = float((m(adv).argmax(1) == y).float().mean())
    _emit({"eps": eps, "n": int(x.shape[0]), "pgd_accuracy": acc})


@app.command()
def plot(out: Annotated[Path, typer.Option("--out")] = Path("bounds_verified.png"), model: ModelOpt = None) -> None:
    """Plot verified (IBP, CROWN) and clean accuracy against ε."""
    from certkit.core.report import use_agg
    from certkit.vision.data import load_digits
    from certkit.vision.verified import evaluate as ev

    use_agg()
    import matplotlib.pyplot as plt

    m = _load(model)
    _, te = load_digits()
    epss = [0.02, 0.05, 0.1, 0.15]
    rs = [ev(m, te.x, te.y, e) for e in epss]
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    for meth in ("IBP", "CROWN"):
        ax.plot(epss, [r["verified_acc"][meth] for r in rs], "o-", label=f"{meth} verified")
    ax.axhline(rs[0]["clean_acc"], color="k", ls="--", lw=1, label="clean")
    ax.set_xlabel("ε")
    ax.set_ylabel("accuracy")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    _emit({"saved": str(out)})
