"""``certkit bounds ...``: certified training, verification (VNN-COMP statuses, PGD
first), attacks, evaluation and plots for bound propagation on digits.

``--model`` takes a file saved by ``certkit bounds train``, a torch.export ``.pt2``
program, a TorchScript file (attack / evaluate-clean only: TorchScript graphs cannot be
bounded), or ``module:factory`` with ``--weights`` (a state_dict, read with
``weights_only=True``). ``verify`` runs one work unit per test input (each carries its
own PGD seed, ``seed + idx``) on the ``serial`` / ``process`` / ``ray`` backend of
:mod:`certkit.core.distributed`, resumable through ``--log`` and shardable with
``--shard k/n``. ``vnnlib --onnx M --vnnlib P`` decides a VNN-LIB property on an ONNX
model (sat / unsat / unknown / timeout, :mod:`certkit.core.bounds.vnnlib_verify`)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from certkit.core.cli import BackendOpt, ShardOpt, WorkersOpt

app = typer.Typer(help="Bound propagation (IBP/CROWN/α-CROWN) and certified training on digits.",
                  no_args_is_help=True)

ModelOpt = Annotated[str | None, typer.Option(
    "--model", help="A model saved by `certkit bounds train`, a torch.export .pt2, a TorchScript file, or "
                    "module:factory (with --weights); default: the cached reference model.")]
EpsOpt = Annotated[float, typer.Option("--eps", help="ℓ∞ radius in [0,1] pixel units.")]
WeightsOpt = Annotated[str | None, typer.Option(
    "--weights", help="state_dict for --model module:factory (read with weights_only=True).")]


def _emit(obj: Any) -> None:
    from certkit.core.cli import STATE, echo_json

    if STATE.get("json"):
        echo_json(obj)
    else:
        typer.echo(json.dumps(obj, indent=1, default=str))


def _load(model_spec: str | None, weights: str | None = None, full: bool = False) -> Any:
    """The model for a command (eval mode), checked to map (B, 1, 8, 8) to 10 logits."""
    import torch

    from certkit.core.cache import cache_dir, load_state
    from certkit.core.cli import UsageError
    from certkit.core.modelio import ModelLoadError, check_num_classes, load_model
    from certkit.vision import verified as V

    if model_spec is None:
        if weights is not None:
            raise UsageError("--weights: needs --model module:factory")
        return V.cached_model(cache_dir("vision"), full=full)[0]
    path = Path(model_spec)
    model: Any = None
    if path.suffix != ".pt2" and path.is_file() and weights is None:
        try:  # our own training checkpoint: {"model": state_dict, "meta": {...}}
            state = load_state(path)
        except Exception:
            state = None  # not a weights-only checkpoint: TorchScript, tried below
        if isinstance(state, dict) and "model" in state and "meta" in state:
            try:
                meta = state["meta"]
                kw = meta.get("arch_kwargs", {})
                model = V.CertifiedCNN(**kw) if meta["arch"] == "CertifiedCNN" else V.CertifiedMLP(**kw)
                model.load_state_dict(state["model"])
            except Exception as exc:
                raise UsageError(f"--model: cannot load {model_spec}: {exc}") from exc
    if model is None:
        try:
            model = load_model(model_spec, weights)
        except ModelLoadError as exc:
            raise UsageError(f"--{exc!s}") from exc
        from certkit.core.bounds.exported import from_exported, is_aten_graph

        if is_aten_graph(model):  # torch.export program: rebuilt on nn layers (supports .eval(), bounds)
            try:
                model = from_exported(model)
            except ValueError as exc:
                raise UsageError(f"--model: {exc}") from exc
    model.eval()
    try:
        check_num_classes(model, torch.zeros(2, 1, 8, 8), 10)
    except ModelLoadError as exc:
        raise UsageError(f"--{exc!s}") from exc
    except Exception as exc:
        raise UsageError(f"--model: fails on a (2, 1, 8, 8) digits batch: {str(exc).splitlines()[0]}") from exc
    return model


class _VerifyTask:
    """One work unit = one digits test input: PGD (seed ``seed + idx``) then IBP → CROWN →
    α-CROWN. Deterministic: torch runs single-threaded inside a unit, so every backend and
    shard split gives bit-identical rows (apart from ``seconds``)."""

    def __init__(self, model_spec: str | None, weights: str | None, eps: float, timeout: float,
                 pgd_steps: int, seed: int, methods: tuple[str, ...]) -> None:
        from certkit.vision.data import load_digits

        self.model = _load(model_spec, weights)
        self.te = load_digits()[1]
        self.eps, self.timeout, self.pgd_steps, self.seed, self.methods = eps, timeout, pgd_steps, seed, methods

    def __call__(self, i: int) -> dict[str, Any]:
        import torch

        from certkit.vision.verified import verify as vf

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            r = vf(self.model, self.te.x[i:i + 1], self.te.y[i:i + 1], self.eps, methods=self.methods,
                   timeout=self.timeout, pgd_steps=self.pgd_steps, seed=self.seed, indices=[i])[0]
        finally:
            torch.set_num_threads(threads)
        row = dataclasses.asdict(r)
        row["has_counterexample"] = row.pop("counterexample") is not None
        return row


def make_verify_task(model_spec: str | None, weights: str | None, eps: float, timeout: float, pgd_steps: int,
                     seed: int, methods: tuple[str, ...]) -> _VerifyTask:
    """Module-level factory (picklable for the process / ray backends)."""
    return _VerifyTask(model_spec, weights, eps, timeout, pgd_steps, seed, methods)


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
          loss_fusion: Annotated[bool, typer.Option("--loss-fusion", help="robust CE by loss fusion")] = False,
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
    cfg.eps, cfg.seed, cfg.loss_fusion = eps, seed, loss_fusion
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
def evaluate(model: ModelOpt = None, weights: WeightsOpt = None, eps: EpsOpt = 0.1,
             methods: Annotated[str, typer.Option(help="comma-separated: IBP,CROWN,CROWN-IBP,alpha-CROWN")] = "IBP,CROWN"
             ) -> None:
    """Clean and verified accuracy on the digits test split."""
    from certkit.vision.data import load_digits
    from certkit.vision.verified import evaluate as ev

    _check_eps(eps)
    m = _load(model, weights)
    _, te = load_digits()
    _emit(ev(m, te.x, te.y, eps, methods=tuple(s.strip() for s in methods.split(",") if s.strip())))


@app.command()
def verify(model: ModelOpt = None, weights: WeightsOpt = None, eps: EpsOpt = 0.1, n: int = 50,
           timeout: float = 10.0, pgd_steps: int = 20, seed: int = 0,
           methods: Annotated[str, typer.Option(help="comma-separated, tried in order")] = "IBP,CROWN,alpha-CROWN",
           log: Annotated[Path | None, typer.Option(help="ResultLog (JSON lines); resumes")] = None,
           backend: BackendOpt = None, shard: ShardOpt = None, workers: WorkersOpt = None) -> None:
    """Per-input verification results (verified / falsified / unknown / timeout), PGD first."""
    from certkit.core.cli import UsageError
    from certkit.core.distributed import TaskFactory, run
    from certkit.core.results import ResultLog
    from certkit.vision.data import load_digits

    _check_eps(eps)
    if n < 1:
        raise UsageError(f"--n: expected >= 1, got {n}")
    meths = tuple(s.strip() for s in methods.split(",") if s.strip())
    if not meths:
        raise UsageError("--methods: give at least one of IBP, CROWN, CROWN-IBP, alpha-CROWN")
    _load(model, weights)  # fail fast (one line, exit 2) before starting workers
    _, te = load_digits()
    idx = list(range(min(n, len(te))))
    rl = ResultLog(log) if log is not None else None
    try:
        rows = run(TaskFactory(make_verify_task, (model, weights, eps, timeout, pgd_steps, seed, meths)), idx,
                   backend=backend, shard=shard, workers=workers, log=rl)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    finally:
        if rl is not None:
            rl.close()
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    _emit({"eps": eps, "n": len(rows), "counts": counts})


@app.command("vnnlib")
def vnnlib(onnx: Annotated[Path, typer.Option("--onnx", help="ONNX model (a chain of Gemm/MatMul/Conv/Relu/...).")],
           prop: Annotated[Path, typer.Option("--vnnlib", help="VNN-LIB property file.")],
           timeout: Annotated[float, typer.Option(help="seconds; past it the result is 'timeout'")] = 60.0,
           methods: Annotated[str, typer.Option(help="bounds tried in order after PGD")] = "IBP,CROWN,alpha-CROWN",
           pgd_steps: int = 50, pgd_restarts: int = 5, seed: int = 0,
           out: Annotated[Path | None, typer.Option("--out", help="write the VNN-COMP result file here")] = None
           ) -> None:
    """VNN-COMP style: sat (with counterexample) / unsat / unknown / timeout for an ONNX model
    and a VNN-LIB property (PGD first, then sound bounds). Needs certkit-core[onnx]."""
    from certkit.core.bounds.vnnlib_verify import verify_onnx_vnnlib
    from certkit.core.cli import UsageError

    meths = tuple(s.strip() for s in methods.split(",") if s.strip())
    if not meths:
        raise UsageError("--methods: give at least one of IBP, CROWN, CROWN-IBP, alpha-CROWN")
    r = verify_onnx_vnnlib(onnx, prop, timeout=timeout, methods=meths, pgd_steps=pgd_steps,
                           pgd_restarts=pgd_restarts, seed=seed)
    if out is not None:
        out.write_text(r.to_vnncomp())
    res: dict[str, Any] = {"status": r.status, "method": r.method, "time_s": round(r.time_s, 4),
                           "clauses": r.clauses, "proven": r.proven}
    if r.x is not None and r.y is not None:
        res["counterexample"] = {"x": [float(v) for v in r.x], "y": [float(v) for v in r.y]}
    _emit(res)


@app.command()
def attack(model: ModelOpt = None, weights: WeightsOpt = None, eps: EpsOpt = 0.1, steps: int = 20,
           n: int = 200) -> None:
    """PGD (ℓ∞) robust accuracy: an upper bound that verified accuracy must not exceed."""
    import torch

    from certkit.vision.data import load_digits
    from certkit.vision.verified import pgd_attack

    _check_eps(eps)
    m = _load(model, weights)
    _, te = load_digits()
    x, y = te.x[:n], te.y[:n]
    adv = pgd_attack(m, x, y, eps, steps=steps)
    with torch.no_grad():
        acc = float((m(adv).argmax(1) == y).float().mean())
    _emit({"eps": eps, "n": int(x.shape[0]), "pgd_accuracy": acc})


@app.command()
def plot(out: Annotated[Path, typer.Option("--out")] = Path("bounds_verified.png"), model: ModelOpt = None,
         weights: WeightsOpt = None) -> None:
    """Plot verified (IBP, CROWN) and clean accuracy against ε."""
    from certkit.core.report import use_agg
    from certkit.vision.data import load_digits
    from certkit.vision.verified import evaluate as ev

    use_agg()
    import matplotlib.pyplot as plt

    m = _load(model, weights)
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
