"""Run a VNN-COMP category: every row of its ``*_instances.csv``, a results CSV out.

The VNN-COMP layout (Bak et al., "The Second International Verification of Neural Networks
Competition (VNN-COMP 2021)", arXiv:2109.00498): a category folder holds
``<category>_instances.csv`` with rows ``onnx path, vnnlib path, timeout seconds`` (paths
relative to the folder, sometimes with a leading ``./``; networks may be gzipped). The
results file has one row per instance: ``category, onnx, vnnlib, prepare time, result,
run time`` with ``result`` in sat / unsat / unknown / timeout / error.

Each instance is read (:func:`~certkit.core.bounds.vnnlib_verify.load_instance`: the ONNX
model and the property; its seconds are the ``prepare time``, as VNN-COMP's
``prepare_instance`` step, which may convert the model untimed) and then decided
(:func:`~certkit.core.bounds.vnnlib_verify.run_instance`: PGD, then IBP / CROWN /
α-CROWN, then input splitting on low-dimensional inputs or ReLU splitting with β-CROWN
bounds on the others, a ``sat`` re-checked with onnxruntime) within its own timeout times
``timeout_scale``: the ``run time`` (wall clock of the whole decision, re-check included,
as VNN-COMP times ``run_instance``) stays within that timeout + 1 s, the verdict
``timeout`` when undecided (see :mod:`~certkit.core.bounds.deadline`). A bad row (missing file, a property whose input
count does not match the network, an operator we cannot bound) is reported as ``error``
with a one-line reason and the run goes on. Rows are written to a
:class:`~certkit.core.results.ResultLog` as they finish, so an interrupted run resumes;
:func:`compare` counts contradictions with published results (a verdict that contradicts
a published sat/unsat is a soundness bug).
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from certkit.core.distributed import TaskFactory, run
from certkit.core.results import ResultLog, fingerprint, run_settings

RESULTS = ("sat", "unsat", "unknown", "timeout", "error")
HARD_LIMIT_S = 0.75  # the run is stopped this long after its timeout if the verifier has not returned


class _HardTimeout(BaseException):
    """Raised by :func:`_hard_limit`'s alarm (a BaseException: no ``except Exception`` inside
    the verifier swallows it)."""


@contextlib.contextmanager
def _hard_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`_HardTimeout` in this thread after ``seconds`` (SIGALRM): the last resort
    behind the verifier's own deadline checks, for a step whose cost was not measured yet.
    Python runs the handler between bytecodes, so a long torch operation ends first. Off the
    main thread (or without ``setitimer``) it does nothing."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def alarm(signum: int, frame: Any) -> None:
        raise _HardTimeout

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@dataclass(frozen=True)
class Instance:
    """One row of an instances file: ``onnx`` and ``vnnlib`` as written there, resolved
    paths ``onnx_path`` / ``vnnlib_path``, and ``timeout`` in seconds."""

    row: int
    onnx: str
    vnnlib: str
    timeout: float
    onnx_path: Path
    vnnlib_path: Path


def find_instances_csv(category_dir: str | os.PathLike[str]) -> Path:
    """The category's ``*instances.csv`` (exactly one must exist)."""
    d = Path(category_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"category_dir: not a folder: {d}")
    found = sorted(d.glob("*instances.csv"))
    if len(found) != 1:
        raise ValueError(f"category_dir: expected one *instances.csv in {d}, found {len(found)}")
    return found[0]


def read_instances(category_dir: str | os.PathLike[str]) -> list[Instance]:
    """Every row of the category's instances file. A row that is not ``onnx, vnnlib,
    timeout`` with a timeout > 0 raises ValueError naming the file and line; missing
    files are not checked here (they become ``error`` rows when run)."""
    path = find_instances_csv(category_dir)
    base = path.parent
    out = []
    with open(path, newline="", encoding="utf-8") as fh:
        for line_no, rec in enumerate(csv.reader(fh), 1):
            if not rec or all(not c.strip() for c in rec):
                continue
            if len(rec) != 3:
                raise ValueError(f"{path}:{line_no}: expected 'onnx,vnnlib,timeout', got {len(rec)} fields")
            onnx, prop, t = (c.strip() for c in rec)
            try:
                timeout = float(t)
            except ValueError:
                raise ValueError(f"{path}:{line_no}: timeout {t!r} is not a number") from None
            if not (timeout > 0 and math.isfinite(timeout)):
                raise ValueError(f"{path}:{line_no}: timeout must be > 0, got {t}")
            out.append(Instance(len(out), onnx, prop, timeout, base / onnx, base / prop))
    return out


class _InstanceTask:
    """Decides one instance per call (built once per worker)."""

    def __init__(self, category: str, instances: list[Instance], timeout_scale: float,
                 kw: dict[str, Any]) -> None:
        self.category, self.instances, self.scale, self.kw = category, instances, timeout_scale, kw

    def __call__(self, idx: int) -> dict[str, Any]:
        import torch

        from certkit.core.bounds.vnnlib_verify import load_instance, run_instance

        inst = self.instances[idx]
        row: dict[str, Any] = {"idx": idx, "category": self.category, "onnx": inst.onnx,
                               "vnnlib": inst.vnnlib, "timeout": inst.timeout * self.scale}
        t0 = time.perf_counter()
        prepare = 0.0
        try:
            for what, p in (("onnx", inst.onnx_path), ("vnnlib", inst.vnnlib_path)):
                if not p.is_file():
                    raise FileNotFoundError(f"{what} file not found: {p}")
            om, prop = load_instance(inst.onnx_path, inst.vnnlib_path, dtype=torch.float64)
            t1 = time.perf_counter()
            prepare = t1 - t0
            T = inst.timeout * self.scale
            try:
                with _hard_limit(T + HARD_LIMIT_S):
                    r = run_instance(inst.onnx_path, om, prop, timeout=T, **self.kw)
            except _HardTimeout:  # (counted: the verifier's own checks should have stopped it)
                row.update(result="timeout", method="hard limit", prepare_time=prepare,
                           run_time=time.perf_counter() - t1)
                return row
            run_time = time.perf_counter() - t1
        except Exception as exc:  # one bad instance must not stop the category
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            row.update(result="error", error=f"{type(exc).__name__}: {msg}",
                       prepare_time=prepare, run_time=time.perf_counter() - t0 - prepare)
            return row
        row.update(result=r.status, method=r.method, prepare_time=prepare,
                   run_time=run_time, clauses=r.clauses, proven=r.proven)
        if r.status == "sat":
            row["counterexample"] = r.to_vnncomp()
        return row


def _make_task(category: str, instances: list[Instance], timeout_scale: float,
               kw: dict[str, Any]) -> _InstanceTask:
    return _InstanceTask(category, instances, timeout_scale, kw)


def _refine_kw(refine: str, refine_workers: int | None) -> dict[str, Any]:
    """``--refine`` / ``--refine-workers`` as :func:`verify_property` keyword arguments."""
    from certkit.core.bounds.vnnlib_verify import refine_kw

    if refine_workers is not None and refine_workers < 1:
        raise ValueError(f"refine_workers: expected an integer >= 1, got {refine_workers}")
    kw = refine_kw(refine)
    if kw and refine_workers is not None:
        kw["relu_split_kw"]["refine_workers"] = refine_workers
    return kw


def run_category(category_dir: str | os.PathLike[str], *, out: str | os.PathLike[str],
                 timeout_scale: float = 1.0, log: str | os.PathLike[str] | None = None,
                 new: bool = False, rows: list[int] | None = None, backend: str | None = None,
                 workers: int | None = None, on_result: Any = None,
                 **verify_kw: Any) -> list[dict[str, Any]]:
    """Run every instance (or the ``rows`` given) of a category and write ``out`` (CSV).

    log: the per-instance ResultLog (default ``<out>.jsonl``): resumes an interrupted run,
        refuses one with other settings (``new=True`` starts afresh).
    Returns the rows (dicts with ``result``, ``prepare_time``, ``run_time``, ...).
    """
    if not (isinstance(timeout_scale, (int, float)) and timeout_scale > 0 and math.isfinite(timeout_scale)):
        raise ValueError(f"timeout_scale: expected a number > 0, got {timeout_scale!r}")
    instances = read_instances(category_dir)
    category = Path(category_dir).resolve().name
    idx = list(range(len(instances))) if rows is None else list(rows)
    for i in idx:
        if not 0 <= i < len(instances):
            raise ValueError(f"rows: {i} is outside 0..{len(instances) - 1}")
    out = Path(out)
    rk = verify_kw.get("relu_split_kw")
    if workers is not None and workers > 1 and isinstance(rk, dict) and rk.get("refine") \
            and rk.get("refine_workers") is None:  # instances in parallel already: each refines in its own process
        verify_kw = {**verify_kw, "relu_split_kw": {**rk, "refine_workers": 1}}
    settings = run_settings(category=category, instances=fingerprint(find_instances_csv(category_dir)),
                            files=_files_fingerprint(instances), timeout_scale=float(timeout_scale),
                            verify={k: repr(v) for k, v in sorted(verify_kw.items())})
    factory = TaskFactory(_make_task, (category, instances, float(timeout_scale), dict(verify_kw)))
    with ResultLog(log if log is not None else Path(str(out) + ".jsonl"), settings=settings, new=new) as rl:
        done = run(factory, idx, backend=backend, workers=workers, log=rl, on_result=on_result)
        write_results_csv(rl.rows(), out)
    return done


def _files_fingerprint(instances: list[Instance]) -> str:
    """One content hash of every network and property file the instances name (a missing
    one as missing): a log written before a file changed (VNN-COMP regenerates its
    properties from a seed under the same names) is refused, not resumed with stale
    verdicts."""
    named = {n: p for inst in instances for n, p in ((inst.onnx, inst.onnx_path), (inst.vnnlib, inst.vnnlib_path))}
    return fingerprint({n: fingerprint(p) if p.is_file() else None for n, p in sorted(named.items())})


def write_results_csv(rows: list[dict[str, Any]], out: str | os.PathLike[str]) -> None:
    """The VNN-COMP results CSV (``category,onnx,vnnlib,prepare time,result,run time``),
    written to a temporary file and renamed into place."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        for r in sorted(rows, key=lambda r: int(r["idx"])):
            w.writerow([r["category"], r["onnx"], r["vnnlib"], f"{float(r['prepare_time']):.6f}",
                        r["result"], f"{float(r['run_time']):.6f}"])
    os.replace(tmp, out)


def read_published(path: str | os.PathLike[str]) -> dict[tuple[str, str, str], str]:
    """A published results CSV -> {(category, onnx file name, vnnlib file name): result},
    results lower-cased (``sat``, ``unsat``, ``timeout``, ...); nnenum's ``holds`` reads as
    ``unsat`` and ``violated`` as ``sat``."""
    alias = {"holds": "unsat", "violated": "sat"}
    out = {}
    with open(path, newline="", encoding="utf-8") as fh:
        for rec in csv.reader(fh):
            if len(rec) < 5:
                continue
            res = rec[4].strip().lower()
            out[result_key(rec[0].strip(), rec[1].strip(), rec[2].strip())] = alias.get(res, res)
    return out


def result_key(category: str, onnx: str, prop: str) -> tuple[str, str, str]:
    """(category, network file name, property file name), a ``.gz`` suffix dropped: the
    shared nn4sys copy holds ``nets/normal_1000.onnx.gz`` where the published tables name
    ``nets/normal_1000.onnx``."""
    return category, Path(onnx).name.removesuffix(".gz"), Path(prop).name.removesuffix(".gz")


def compare(rows: list[dict[str, Any]], published: dict[tuple[str, str, str], str]) -> dict[str, Any]:
    """Solved counts and contradictions with a published results table.

    A contradiction is our sat where they say unsat or our unsat where they say sat."""
    solved = sum(r["result"] in ("sat", "unsat") for r in rows)
    theirs = 0
    contradictions = []
    for r in rows:
        p = published.get(result_key(r["category"], r["onnx"], r["vnnlib"]))
        if p in ("sat", "unsat"):
            theirs += 1
            if r["result"] in ("sat", "unsat") and r["result"] != p:
                contradictions.append(f"{r['onnx']} {r['vnnlib']}: ours {r['result']}, published {p}")
    counts = {k: sum(r["result"] == k for r in rows) for k in RESULTS}
    return {"instances": len(rows), "solved": solved, "published_solved": theirs,
            "contradictions": contradictions, **counts}


def vnncomp_command(
    category_dir: Annotated[Path, typer.Argument(help="A VNN-COMP category folder (holds *_instances.csv).")],
    out: Annotated[Path, typer.Option("--out", help="Results CSV (VNN-COMP format).")] = Path("results.csv"),
    timeout_scale: Annotated[float, typer.Option("--timeout-scale", help="Multiply every instance's timeout.")] = 1.0,
    rows: Annotated[str | None, typer.Option("--rows", help="Only these rows: '0,3,7' or '0:10'.")] = None,
    sample: Annotated[int | None, typer.Option("--sample", help="A seeded random sample of this many rows.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of --sample and of PGD.")] = 0,
    compare_with: Annotated[Path | None, typer.Option(
        "--compare", help="A published results CSV: count contradictions (exit 1 if any).")] = None,
    new: Annotated[bool, typer.Option("--new", help="Start a new log instead of resuming <out>.jsonl.")] = False,
    backend: Annotated[str | None, typer.Option("--backend", help="serial | process | ray.")] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Worker processes / Ray actors.")] = None,
    relu_split: Annotated[bool, typer.Option(
        "--relu-split/--no-relu-split",
        help="ReLU splitting (beta-CROWN bounds) on inputs > 16 dims until the timeout; off: "
             "'unknown' as soon as PGD and the bound passes leave a property open.")] = True,
    refine: Annotated[str, typer.Option(
        "--refine", help="ReLU MLPs: refine the BaB root's intermediate bounds of a disjunct left open: "
                         "none | lp (rigorous dual bounds) | milp (HiGHS's dual bound)")] = "none",
    refine_workers: Annotated[int | None, typer.Option(
        "--refine-workers", help="Processes solving a layer's refinement LPs/MILPs in parallel (default: the "
                                 "CPUs this process may use, at most 8; 1 with --workers > 1).")] = None,
) -> None:
    """Run a category's instances (PGD, bounds, input / ReLU splitting) and write a results CSV.

    Bad rows (missing files, a property that does not fit the network, an unsupported
    operator) are reported as `error`, one line each, and the run goes on; the command
    then exits 2. With --compare, a contradiction with a published sat/unsat exits 1."""
    import random

    from certkit.core import progress
    from certkit.core.cli import STATE, echo_json
    from certkit.core.validation import check_seed

    seed = check_seed(seed)  # (before the run: 2**70 made every row an error, one line each)
    instances = read_instances(category_dir)
    chosen = _parse_rows(rows, len(instances))
    if out.is_dir():  # (checked before the run: these failed only after every instance had run)
        raise ValueError(f"out: {out} is a folder")
    if compare_with is not None and not compare_with.is_file():
        raise FileNotFoundError(f"compare: no such file: {compare_with}")
    if sample is not None:
        if sample < 1:
            raise ValueError(f"sample: expected an integer >= 1, got {sample}")
        chosen = sorted(random.Random(seed).sample(chosen, min(sample, len(chosen))))

    with progress.Counter(len(chosen), "vnncomp", "instance") as bar:
        def seen(row: dict[str, Any]) -> None:
            bar.update(1)
            if row["result"] == "error":
                typer.echo(f"certkit: error: row {row['idx']} ({row['onnx']}, {row['vnnlib']}): {row['error']}",
                           err=True)

        done = run_category(category_dir, out=out, timeout_scale=timeout_scale, rows=chosen, new=new,
                            backend=backend, workers=workers, on_result=seen, seed=seed,
                            **({} if relu_split else {"relu_split": False}),  # recorded in the log's settings
                            **_refine_kw(refine, refine_workers))
    summary: dict[str, Any] = {"category": Path(category_dir).resolve().name, "out": str(out),
                               **{k: sum(r["result"] == k for r in done) for k in RESULTS},
                               "mean_run_time": round(sum(float(r["run_time"]) for r in done) / max(len(done), 1), 3)}
    code = 2 if any(r["result"] == "error" for r in done) else 0
    if compare_with is not None:
        cmp = compare(done, read_published(compare_with))
        summary["published_solved"] = cmp["published_solved"]
        summary["contradictions"] = cmp["contradictions"]
        if cmp["contradictions"]:
            code = 1
    if STATE.get("json"):
        echo_json(summary)
    else:
        for k, v in summary.items():
            typer.echo(f"{k:>18}: {v}")
    if code:
        raise typer.Exit(code)


def _parse_rows(spec: str | None, n: int) -> list[int]:
    if spec is None or spec.strip() == "":
        return list(range(n))
    out: list[int] = []
    try:
        for part in spec.split(","):
            if ":" in part:
                a, b = part.split(":")
                out.extend(range(int(a or 0), int(b) if b else n))
            else:
                out.append(int(part))
    except ValueError:
        raise ValueError(f"rows: expected '0,3,7' or '0:10', got {spec!r}") from None
    bad = [i for i in out if not 0 <= i < n]
    if bad:
        raise ValueError(f"rows: {bad[0]} is outside 0..{n - 1}")
    if not out:  # ('3:1' ran nothing and exited 0)
        raise ValueError(f"rows: {spec!r} selects no row")
    return sorted(set(out))
