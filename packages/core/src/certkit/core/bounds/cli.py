"""``certkit bounds ...``: verification (VNN-COMP statuses, PGD first), attacks and plots for
bound propagation (:mod:`certkit.core.bounds`). Mounted by the ``certkit`` dispatcher when
torch is installed (``pip install 'certkit-core[torch]'``; ``vnnlib`` needs the ``onnx``
extra). Certified *training* of image classifiers lives in certkit-vision
(``certkit vision verified train|evaluate``).

``vnnlib --onnx M --vnnlib P`` decides a VNN-LIB property on an ONNX model (sat / unsat /
unknown / timeout, :mod:`certkit.core.bounds.vnnlib_verify`). ``verify``, ``attack`` and
``plot`` run on the digits test split and need certkit-vision for the data and the
reference model: ``--model`` takes a file saved by ``certkit vision verified train``, a
torch.export ``.pt2`` program, a TorchScript file (attack only: TorchScript graphs cannot
be bounded), or ``module:factory`` with ``--weights`` (a state_dict, read with
``weights_only=True``). ``verify`` runs one work unit per test input (each carries its own
PGD seed, ``seed + idx``) on the ``serial`` / ``process`` / ``ray`` backend of
:mod:`certkit.core.distributed`, resumable through ``--log`` and shardable with
``--shard k/n``."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from certkit.core.cli import BackendOpt, ShardOpt, UsageError, WorkersOpt

_app = typer.Typer(help="Bound propagation (IBP/CROWN/α-CROWN): verification, VNN-LIB properties, attacks.",
                   no_args_is_help=True)

ModelOpt = Annotated[str | None, typer.Option(
    "--model", help="A model saved by `certkit vision verified train`, a torch.export .pt2, a TorchScript file, "
                    "or module:factory (with --weights); default: the cached reference model.")]
EpsOpt = Annotated[float, typer.Option("--eps", help="ℓ∞ radius in [0,1] pixel units.")]
WeightsOpt = Annotated[str | None, typer.Option(
    "--weights", help="state_dict for --model module:factory (read with weights_only=True).")]

# where certkit-vision keeps certified training and the digits data (its layout moves; the
# first importable name wins)
_VISION_MODULES = {
    "verified": ("certkit.vision.training.certified", "certkit.vision.verified"),
    "digits": ("certkit.vision.data.digits", "certkit.vision.data"),
}


def vision_module(what: str) -> Any:
    """certkit-vision's certified-training (``"verified"``) or digits-data (``"digits"``)
    module, imported lazily; a one-line :class:`UsageError` when certkit-vision is absent."""
    for name in _VISION_MODULES[what]:
        if importlib.util.find_spec("certkit.vision") is None:
            break
        try:
            if importlib.util.find_spec(name) is None:
                continue
        except ModuleNotFoundError:
            continue
        return importlib.import_module(name)
    raise UsageError("the digits data and reference model come from certkit-vision: pip install certkit-vision "
                     "(certkit bounds vnnlib needs only certkit-core[onnx])")


def emit(obj: Any) -> None:
    """Print ``obj`` as JSON (``--json``: the dispatcher's sorted, indented form)."""
    from certkit.core.cli import STATE, echo_json

    if STATE.get("json"):
        echo_json(obj)
    else:
        typer.echo(json.dumps(obj, indent=1, default=str))


def load_bounds_model(model_spec: str | None, weights: str | None = None, full: bool = False) -> Any:
    """The model for a digits command (eval mode), checked to map (B, 1, 8, 8) to 10 logits."""
    import torch

    from certkit.core.cache import cache_dir, load_state
    from certkit.core.modelio import ModelLoadError, check_num_classes, load_model

    if model_spec is None:
        if weights is not None:
            raise UsageError("--weights: needs --model module:factory")
        return vision_module("verified").cached_model(cache_dir("vision"), full=full)[0]
    path = Path(model_spec)
    model: Any = None
    if path.suffix != ".pt2" and path.is_file() and weights is None:
        try:  # a certified-training checkpoint: {"model": state_dict, "meta": {...}}
            state = load_state(path)
        except Exception:
            state = None  # not a weights-only checkpoint: TorchScript, tried below
        if isinstance(state, dict) and "model" in state and "meta" in state:
            V = vision_module("verified")
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
        self.model = load_bounds_model(model_spec, weights)
        self.te = vision_module("digits").load_digits()[1]
        self.eps, self.timeout, self.pgd_steps, self.seed, self.methods = eps, timeout, pgd_steps, seed, methods

    def __call__(self, i: int) -> dict[str, Any]:
        import torch

        vf = vision_module("verified").verify
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            r = vf(self.model, self.te.x[i:i + 1], self.te.y[i:i + 1], self.eps, methods=self.methods,
                   timeout=self.timeout, pgd_steps=self.pgd_steps, seed=self.seed, indices=[i])[0]
        finally:
            torch.set_num_threads(threads)
        row = dataclasses.asdict(r)
        row["has_counterexample"] = row.pop("counterexample") is not None
        row["seed"] = self.seed  # the run's seed (PGD on input idx uses seed + idx)
        return row


def make_verify_task(model_spec: str | None, weights: str | None, eps: float, timeout: float, pgd_steps: int,
                     seed: int, methods: tuple[str, ...]) -> _VerifyTask:
    """Module-level factory (picklable for the process / ray backends)."""
    return _VerifyTask(model_spec, weights, eps, timeout, pgd_steps, seed, methods)


def check_eps(eps: float) -> float:
    """``--eps`` must be a finite value >= 0 (one-line error otherwise)."""
    if not (eps >= 0 and eps < float("inf")):  # (NaN and inf, e.g. 1e400, fail too)
        raise UsageError(f"--eps: expected a finite value >= 0, got {eps}")
    return eps


def parse_methods(methods: str) -> tuple[str, ...]:
    """``--methods IBP,CROWN`` → ("IBP", "CROWN"); at least one."""
    meths = tuple(s.strip() for s in methods.split(",") if s.strip())
    if not meths:
        raise UsageError("--methods: give at least one of IBP, CROWN, CROWN-IBP, alpha-CROWN")
    return meths


@_app.command()
def verify(model: ModelOpt = None, weights: WeightsOpt = None, eps: EpsOpt = 0.1, n: int = 50,
           timeout: float = 10.0, pgd_steps: int = 20, seed: int = 0,
           methods: Annotated[str, typer.Option(help="comma-separated, tried in order")] = "IBP,CROWN,alpha-CROWN",
           log: Annotated[Path | None, typer.Option(help="ResultLog (JSON lines); resumes")] = None,
           new: Annotated[bool, typer.Option("--new", help="move an existing --log aside and start afresh")] = False,
           backend: BackendOpt = None, shard: ShardOpt = None, workers: WorkersOpt = None) -> None:
    """Per-input verification results on digits (verified / falsified / unknown / timeout), PGD first.

    With --log, rows are written as they finish and a rerun resumes; the file records the
    settings (model and data fingerprints, eps, timeout, PGD steps, methods, seed) and
    refuses to resume with others (--new starts afresh); a second concurrent writer fails."""
    from certkit.core.distributed import TaskFactory, run
    from certkit.core.results import LogLockedError, ResultLog, fingerprint, run_settings

    check_eps(eps)
    if n < 1:
        raise UsageError(f"--n: expected >= 1, got {n}")
    if not timeout > 0:
        raise UsageError(f"--timeout: expected seconds > 0, got {timeout}")
    if pgd_steps < 0:  # (-1 silently skipped the attack)
        raise UsageError(f"--pgd-steps: expected an integer >= 0, got {pgd_steps}")
    from certkit.core.validation import check_seed

    seed = check_seed(seed)  # (99999999999999999999: torch's "Overflow when unpacking long long", naming nothing)
    meths = parse_methods(methods)
    m = load_bounds_model(model, weights)  # fail fast (one line, exit 2) before starting workers
    _, te = vision_module("digits").load_digits()
    idx = list(range(min(n, len(te))))
    rl = None
    if log is not None:
        settings = run_settings(command="bounds verify", model=fingerprint(m), data=fingerprint(te.x),
                                labels=fingerprint(te.y), eps=eps, timeout=timeout, pgd_steps=pgd_steps,
                                methods=list(meths), seed=seed)
        try:
            rl = ResultLog(log, settings=settings, new=new)
        except LogLockedError as exc:
            raise UsageError(f"--log: {exc}") from exc
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
    emit({"eps": eps, "n": len(rows), "counts": counts})


@_app.command("vnnlib")
def vnnlib(onnx: Annotated[Path, typer.Option("--onnx", help="ONNX model (.onnx or .onnx.gz; any DAG of the supported ops, see docs/bounds.md).")],
           prop: Annotated[Path, typer.Option("--vnnlib", help="VNN-LIB property file.")],
           timeout: Annotated[float, typer.Option(help="seconds; past it the result is 'timeout'")] = 60.0,
           methods: Annotated[str, typer.Option(help="bounds tried in order after PGD")] = "IBP,CROWN,alpha-CROWN",
           pgd_steps: int = 50, pgd_restarts: int = 5, seed: int = 0,
           out: Annotated[Path | None, typer.Option("--out", help="write the VNN-COMP result file here")] = None,
           relu_split: Annotated[bool, typer.Option(
               "--relu-split/--no-relu-split",
               help="ReLU splitting (beta-CROWN bounds) on inputs > 16 dims until the timeout")] = True,
           refine: Annotated[str, typer.Option(
               "--refine", help="ReLU MLPs: refine the BaB root's intermediate bounds of a disjunct left "
                                "open: none | lp (rigorous dual bounds) | milp (HiGHS's dual bound)")] = "none",
           refine_workers: Annotated[int | None, typer.Option(
               "--refine-workers", help="processes solving a layer's refinement LPs/MILPs in parallel "
                                        "(default: the CPUs this process may use, at most 8)")] = None,
           ) -> None:
    """VNN-COMP style: sat (with counterexample) / unsat / unknown / timeout for an ONNX model
    and a VNN-LIB property (PGD first, then sound bounds). Needs the onnx extra of certkit-core."""
    from certkit.core.bounds.vnncomp import _refine_kw
    from certkit.core.bounds.vnnlib_verify import verify_onnx_vnnlib

    meths = parse_methods(methods)
    if out is not None and (out.is_dir() or not out.parent.is_dir()):  # (before the run, not after it)
        raise ValueError(f"out: {out} is a folder" if out.is_dir() else f"out: no folder {out.parent}")
    r = verify_onnx_vnnlib(onnx, prop, timeout=timeout, methods=meths, pgd_steps=pgd_steps,
                           pgd_restarts=pgd_restarts, seed=seed, relu_split=relu_split,
                           **_refine_kw(refine, refine_workers))
    if out is not None:
        out.write_text(r.to_vnncomp())
    res: dict[str, Any] = {"status": r.status, "method": r.method, "time_s": round(r.time_s, 4),
                           "clauses": r.clauses, "proven": r.proven}
    if r.x is not None and r.y is not None:
        res["counterexample"] = {"x": [float(v) for v in r.x], "y": [float(v) for v in r.y]}
    emit(res)


@_app.command()
def attack(model: ModelOpt = None, weights: WeightsOpt = None, eps: EpsOpt = 0.1, steps: int = 20,
           n: int = 200) -> None:
    """PGD (ℓ∞) robust accuracy on digits: an upper bound that verified accuracy must not exceed."""
    import torch

    check_eps(eps)
    if n < 1:  # (a negative n sliced the data: --n -5 attacked all but the last 5 inputs)
        raise UsageError(f"--n: expected >= 1, got {n}")
    if steps < 0:
        raise UsageError(f"--steps: expected >= 0, got {steps}")
    m = load_bounds_model(model, weights)
    _, te = vision_module("digits").load_digits()
    x, y = te.x[:n], te.y[:n]
    adv = vision_module("verified").pgd_attack(m, x, y, eps, steps=steps)
    with torch.no_grad():
        acc = float((m(adv).argmax(1) == y).float().mean())
    emit({"eps": eps, "n": int(x.shape[0]), "pgd_accuracy": acc})


@_app.command()
def plot(out: Annotated[Path, typer.Option("--out")] = Path("bounds_verified.png"), model: ModelOpt = None,
         weights: WeightsOpt = None) -> None:
    """Plot verified (IBP, CROWN) and clean accuracy against ε on digits."""
    from certkit.core.report import use_agg

    use_agg()
    import matplotlib.pyplot as plt

    m = load_bounds_model(model, weights)
    _, te = vision_module("digits").load_digits()
    ev = vision_module("verified").evaluate
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
    emit({"saved": str(out)})


def _mount_vnncomp() -> None:
    from certkit.core.bounds.vnncomp import vnncomp_command

    _app.command("vnncomp")(vnncomp_command)


_mount_vnncomp()

# the dispatcher (certkit.core.cli) mounts a typer app and skips None: the command exists
# only where torch is installed
app: typer.Typer | None = _app if importlib.util.find_spec("torch") is not None else None
