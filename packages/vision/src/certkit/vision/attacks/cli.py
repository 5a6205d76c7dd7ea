"""``certkit vision attack ...``: attack a model, evaluate it on clean and corrupted data,
plot robust accuracy against ε.

Models: ``--model file.pt`` (TorchScript / ``.pt2``) or ``--model module:factory
--weights state.pt`` (state_dict, ``weights_only=True``); without ``--model`` one of the
cached reference digits CNNs (``--reference standard|pgd_at|trades|distilled|shift_aug``).
Data: the embedded digits test split, or ``--data`` (and ``--labels``) read by
:func:`certkit.vision.data.datasets.load_data` like every vision command: ``.npy`` / ``.npz``
/ ``.pt`` arrays, CIFAR binaries, image folders. ``run --out`` records the run's settings
(model and data fingerprints, attack, ε, norm, steps, restarts, seed, batch) and refuses to
resume other settings (``--new`` starts a new file); rows record their seed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from certkit.core.cli import STATE, UsageError, echo_json

app = typer.Typer(name="attack", no_args_is_help=True,
                  help="Adversarial attacks, corruption robustness and robust-accuracy plots.")

ATTACKS = ("fgsm", "pgd", "apgd", "cw", "lbfgs")

ModelOpt = Annotated[str | None, typer.Option("--model", help="TorchScript file or module:factory.")]
WeightsOpt = Annotated[str | None, typer.Option("--weights", help="state_dict for module:factory.")]
RefOpt = Annotated[str, typer.Option("--reference", help="Reference digits model without --model.")]
DataOpt = Annotated[str | None, typer.Option(
    "--data", help="The embedded digits test split (default) or your data: .npy/.npz/.pt arrays (N,C,H,W) or "
                   "(N,H,W,C), a CIFAR binary folder, an image folder <class>/<image> (see certkit vision "
                   "certify --help).")]
LabelsOpt = Annotated[str | None, typer.Option("--labels", help="Labels (N,) for array --data without them.")]
NOpt = Annotated[int, typer.Option("--n", min=1, help="Number of inputs (first n).")]


def _model(spec: str | None, weights: str | None, reference: str) -> Any:
    if spec is not None:
        from certkit.core.modelio import load_model

        return load_model(spec, weights)
    if weights is not None:
        raise UsageError("--weights: needs --model module:factory")
    from certkit.core.cache import cache_dir
    from certkit.vision.attacks.report import reference_models

    return reference_models(cache_dir("attacks"), which=(reference,))[reference]


def _data(data: str | None, labels: str | None, n: int, model: Any = None,
          fingerprints: dict[str, str] | None = None) -> tuple[Any, Any]:
    """The first n inputs of ``--data`` (default: the digits test split), x (n, C, H, W)
    float32 in [0, 1] and y (n,); with a model, one dry forward pass checks they fit.
    ``fingerprints``: filled with the content hashes of the whole data set."""
    from certkit.vision.data.inputs import load_user_data

    if data is None and labels is not None:
        raise UsageError("--labels: needs --data")
    split = load_user_data(data or "digits", labels)
    if fingerprints is not None:
        from certkit.core.results import fingerprint

        fingerprints.update(data=fingerprint(split.x), labels=fingerprint(split.y))
    x, y = split.x[:n].float(), split.y[:n]
    if model is not None:
        from certkit.vision.data.checks import check_model_input

        check_model_input(model, x, None, name="--data")
    return x, y


def _attack(name: str, model: Any, x: Any, y: Any, eps: float, norm: str, steps: int,
            restarts: int, seed: int) -> Any:
    from certkit.vision import attacks as A

    if name == "fgsm":
        return A.fgsm(model, x, y, eps, norm=norm)
    if name == "pgd":
        return A.pgd(model, x, y, eps, norm=norm, steps=steps, restarts=restarts, seed=seed)
    if name == "apgd":
        return A.apgd_ensemble(model, x, y, eps, norm=norm, steps=steps, restarts=restarts,
                               seed=seed)
    if name == "cw":
        return A.cw_l2(model, x, y, steps=steps)
    if name == "lbfgs":
        return A.lbfgs_attack(model, x, y)
    raise UsageError(f"--attack: expected one of {ATTACKS}, got {name!r}")


@app.command("run")
def run(
    attack: Annotated[str, typer.Option("--attack", help=f"One of {', '.join(ATTACKS)}.")] = "apgd",
    eps: Annotated[float, typer.Option("--eps", help="Radius (ignored by the minimum-norm cw/lbfgs).")] = 0.2,
    norm: Annotated[str, typer.Option("--norm", help="linf or l2.")] = "linf",
    steps: Annotated[int, typer.Option("--steps", min=1)] = 50,
    restarts: Annotated[int, typer.Option("--restarts", min=1)] = 1,
    n: NOpt = 200,
    batch: Annotated[int, typer.Option("--batch", min=1)] = 256,
    seed: Annotated[int, typer.Option("--seed", min=0)] = 0,
    model: ModelOpt = None, weights: WeightsOpt = None, reference: RefOpt = "standard",
    data: DataOpt = None, labels: LabelsOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="JSON-lines results (resumable).")] = None,
    new: Annotated[bool, typer.Option("--new", help="Start a new --out file instead of resuming it.")] = False,
) -> None:
    """Attack a model; print clean and robust accuracy (per-input rows go to --out)."""
    import torch

    from certkit.core.progress import progress
    from certkit.core.results import ResultLog
    from certkit.vision import attacks as A

    if attack not in ATTACKS:
        raise UsageError(f"--attack: expected one of {ATTACKS}, got {attack!r}")
    m = _model(model, weights, reference)
    fps: dict[str, str] = {}
    x, y = _data(data, labels, n, m, fps)
    log = None
    if out is not None:  # the run's settings head the file: resuming other settings is refused
        from certkit.core.results import fingerprint, run_settings

        log = ResultLog(out, new=new, settings=run_settings(
            model=fingerprint(m), **fps, attack=attack, eps=eps, norm=norm, steps=steps, restarts=restarts,
            seed=seed, batch=batch))
    elif new:
        raise UsageError("--new: needs --out")
    todo = log.todo(range(x.shape[0])) if log is not None else list(range(x.shape[0]))
    t0 = time.perf_counter()
    collected: list[dict[str, Any]] = []
    for i in progress(range(0, len(todo), batch), desc=f"{attack} attack", unit="batch"):
        idx = torch.tensor(todo[i:i + batch])
        xb, yb = x[idx], y[idx]
        adv = _attack(attack, m, xb, yb, eps, norm, steps, restarts, seed + i)
        pc, pa = A.predict(m, xb), A.predict(m, adv)
        d2, dinf = A.distance(adv, xb, "l2"), A.distance(adv, xb, "linf")
        rows = [{"idx": int(j), "label": int(yb[k]), "pred_clean": int(pc[k]),
                 "pred_adv": int(pa[k]), "l2": float(d2[k]), "linf": float(dinf[k]),
                 "attack": attack, "eps": eps, "norm": norm, "seed": seed + i}
                for k, j in enumerate(idx.tolist())]
        collected.extend(rows)
        if log is not None:
            for r in rows:
                log.write(r)
    all_rows = collected
    if log is not None:
        all_rows = log.rows()
        log.close()
    nn_ = max(1, len(all_rows))
    res = {"attack": attack, "eps": eps, "norm": norm, "n": len(all_rows),
           "clean_accuracy": sum(r["pred_clean"] == r["label"] for r in all_rows) / nn_,
           "robust_accuracy": sum(r["pred_adv"] == r["label"] for r in all_rows) / nn_,
           "seconds": time.perf_counter() - t0}
    if STATE["json"]:
        echo_json(res)
    else:
        typer.echo(f"{attack} ({norm}, eps={eps:g}) on {res['n']} inputs: clean "
                   f"{res['clean_accuracy']:.3f}, robust {res['robust_accuracy']:.3f}")


@app.command("evaluate")
def evaluate(
    n: NOpt = 300,
    seed: Annotated[int, typer.Option("--seed", min=0)] = 0,
    model: ModelOpt = None, weights: WeightsOpt = None, reference: RefOpt = "standard",
    baseline: Annotated[str, typer.Option("--baseline", help="Reference model normalising mCE ('none': errors only).")] = "standard",
    data: DataOpt = None, labels: LabelsOpt = None,
) -> None:
    """Clean error and corruption errors (13 corruptions × 5 severities), CE and mCE."""
    from certkit.vision.corruptions.suite import corruption_errors, mce

    m = _model(model, weights, reference)
    x, y = _data(data, labels, n, m)
    errs = corruption_errors(m, x, y, seed=seed)
    if baseline == "none":
        m_ce, rel, ces = float("nan"), float("nan"), {k: float("nan") for k in errs}
    else:
        base = corruption_errors(_model(None, None, baseline), x, y, seed=seed)
        m_ce, ces = mce(errs, base)
        rel, _ = mce(errs, base, relative=True)
    res = {"clean_error": errs["clean"][0], "errors": errs, "ce": ces, "mce": m_ce,
           "relative_mce": rel, "baseline": baseline}
    if STATE["json"]:
        echo_json(res)
        return
    typer.echo(f"clean error {errs['clean'][0]:.3f}; mCE {m_ce:.3f} (relative {rel:.3f}) vs "
               f"{baseline}")
    for name, e in errs.items():
        if name != "clean":
            typer.echo(f"  {name:<15} " + " ".join(f"{v:.3f}" for v in e) + f"  CE {ces[name]:.3f}")


@app.command("plot")
def plot(
    out: Annotated[Path, typer.Option("--out", help="PNG file to write.")] = Path("robust_accuracy.png"),
    attack: Annotated[str, typer.Option("--attack", help="pgd, apgd or fgsm.")] = "pgd",
    norm: Annotated[str, typer.Option("--norm")] = "linf",
    eps_max: Annotated[float, typer.Option("--eps-max")] = 0.3,
    points: Annotated[int, typer.Option("--points", min=2)] = 7,
    steps: Annotated[int, typer.Option("--steps", min=1)] = 20,
    n: NOpt = 200,
    references: Annotated[str, typer.Option("--references", help="Comma-separated reference models (without --model).")] = "standard,pgd_at,trades",
    model: ModelOpt = None, weights: WeightsOpt = None, data: DataOpt = None, labels: LabelsOpt = None,
) -> None:
    """Robust accuracy vs ε for one model or several reference models, as a PNG."""
    from certkit.core.report import use_agg

    use_agg()
    import matplotlib.pyplot as plt

    from certkit.vision import attacks as A

    if attack not in ("pgd", "apgd", "fgsm"):
        raise UsageError(f"--attack: expected pgd, apgd or fgsm, got {attack!r}")
    x, y = _data(data, labels, n, _model(model, weights, "standard") if model is not None else None)
    names = ["model"] if model is not None else [r.strip() for r in references.split(",") if r.strip()]
    grid = [eps_max * i / (points - 1) for i in range(points)]
    fig, ax = plt.subplots(figsize=(5, 3.4))
    curves = {}
    for name in names:
        m = _model(model, weights, name) if model is not None else _model(None, None, name)
        accs = [A.robust_accuracy(m, x, y) if e == 0 else
                A.robust_accuracy(m, _attack(attack, m, x, y, e, norm, steps, 1, 0), y)
                for e in grid]
        curves[name] = accs
        ax.plot(grid, accs, marker="o", label=name)
    ax.set_xlabel(f"{norm} radius ε")
    ax.set_ylabel(f"{attack} robust accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(out, dpi=120, bbox_inches="tight")
    plt.close(fig)
    if STATE["json"]:
        echo_json({"out": str(out), "eps": grid, "accuracy": curves})
    else:
        typer.echo(f"wrote {out}")
