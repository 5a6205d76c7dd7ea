"""Backends for embarrassingly parallel certification: ``serial``, ``process``, ``ray``.

Work is a list of *units* (one input, one episode, one query, or a Monte-Carlo block),
each identified by an integer index and carrying its own seed (the core's counter-based
sampler keys noise by (seed, unit index, sample index)). Because no unit reads a shared
random state, **every backend and every shard count gives bit-identical results**.

A :class:`Task` is built once per worker (the model stays resident: once per process in the
pool, once per actor on Ray) from a picklable *factory* — a module-level callable and its
arguments — and then called on units. :func:`run` writes each result to a
:class:`~certkit.core.results.ResultLog` as soon as it arrives, so a crashed run resumes
with nothing lost or duplicated.

Choose the backend with the ``backend`` argument, or the ``CERTKIT_BACKEND`` environment
variable (``serial`` by default). Ray is imported lazily (``pip install certkit[ray]``);
``ray_address`` (or ``CERTKIT_RAY_ADDRESS``) connects to an existing cluster, and
``gpus_per_worker`` may be fractional.
"""

from __future__ import annotations

import numbers
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Protocol

from certkit.core.results import ResultLog

BACKENDS = ("serial", "process", "ray")


class Task(Protocol):
    """Called on one unit index; returns a JSON-serialisable result row."""

    def __call__(self, idx: int) -> dict[str, Any]: ...


@dataclass(frozen=True)
class TaskFactory:
    """A picklable recipe for a :class:`Task`: ``fn(*args, **kwargs)`` builds it."""

    fn: Callable[..., Task]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    def build(self) -> Task:
        return self.fn(*self.args, **self.kwargs)


def parse_shard(spec: str | None) -> tuple[int, int] | None:
    """``"k/n"`` with 0 ≤ k < n (SLURM_ARRAY_TASK_ID style, 0-based) → (k, n); None → None."""
    if spec is None or spec == "":
        return None
    try:
        k_s, n_s = spec.split("/")
        k, n = int(k_s), int(n_s)
    except ValueError as exc:
        raise ValueError(f"shard: expected 'k/n' with integers, got {spec!r}") from exc
    if n < 1 or not 0 <= k < n:
        raise ValueError(f"shard: expected 0 <= k < n in 'k/n', got {spec!r}")
    return k, n


def shard_indices(indices: Iterable[int], shard: str | tuple[int, int] | None) -> list[int]:
    """The indices that shard ``k/n`` owns: those with ``idx % n == k``."""
    s = parse_shard(shard) if isinstance(shard, str) or shard is None else shard
    idx = [int(i) for i in indices]
    if s is None:
        return idx
    k, n = s
    return [i for i in idx if i % n == k]


def resolve_backend(backend: str | None) -> str:
    name = (backend or os.environ.get("CERTKIT_BACKEND") or "serial").strip().lower()
    if name not in BACKENDS:
        raise ValueError(f"backend: expected one of {', '.join(BACKENDS)}, got {name!r}")
    if name == "ray":
        try:
            import ray  # noqa: F401
        except ImportError as exc:
            raise ImportError("backend 'ray' needs Ray: pip install 'certkit[ray]'") from exc
    return name


# ---- workers -----------------------------------------------------------------------
_WORKER_TASK: Task | None = None


def _init_worker(factory: TaskFactory, threads: int | None) -> None:
    global _WORKER_TASK
    if threads:
        try:
            import torch

            torch.set_num_threads(threads)
        except ImportError:
            pass
        from certkit.core import set_num_threads

        set_num_threads(threads)
    _WORKER_TASK = factory.build()


def _run_unit(idx: int) -> dict[str, Any]:
    assert _WORKER_TASK is not None
    return _timed(_WORKER_TASK, idx)


def _timed(task: Task, idx: int) -> dict[str, Any]:
    t = time.perf_counter()
    row = dict(task(idx))
    row.setdefault("idx", idx)
    row.setdefault("seconds", time.perf_counter() - t)
    return row


def _serial(factory: TaskFactory, units: Sequence[int]) -> Iterator[dict[str, Any]]:
    task = factory.build()
    for i in units:
        yield _timed(task, i)


def _process(factory: TaskFactory, units: Sequence[int], workers: int,
             threads: int | None) -> Iterator[dict[str, Any]]:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # fork is unsafe with torch/OpenMP threads
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(factory, threads)) as pool:
        pending: set[Future[dict[str, Any]]] = set()
        it = iter(units)
        for _ in range(2 * workers):  # bounded in-flight work: results stream back
            try:
                pending.add(pool.submit(_run_unit, next(it)))
            except StopIteration:
                break
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                yield fut.result()
                try:
                    pending.add(pool.submit(_run_unit, next(it)))
                except StopIteration:
                    pass


def _ray(factory: TaskFactory, units: Sequence[int], workers: int, threads: int | None,
         address: str | None, gpus_per_worker: float) -> Iterator[dict[str, Any]]:
    import ray
    from ray.util import ActorPool

    if not ray.is_initialized():
        addr = address or os.environ.get("CERTKIT_RAY_ADDRESS")
        if addr:
            ray.init(address=addr, ignore_reinit_error=True, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, ignore_reinit_error=True, log_to_driver=False,
                     include_dashboard=False)

    @ray.remote(num_cpus=1, num_gpus=gpus_per_worker)
    class _Actor:  # the model stays resident in the actor
        def __init__(self, f: TaskFactory, th: int | None) -> None:
            _init_worker(f, th)

        def run(self, idx: int) -> dict[str, Any]:
            return _run_unit(idx)

    actors = [_Actor.remote(factory, threads) for _ in range(workers)]  # type: ignore[attr-defined]
    pool = ActorPool(actors)
    yield from pool.map_unordered(lambda a, i: a.run.remote(i), list(units))


def run(factory: TaskFactory, indices: Iterable[int], *, backend: str | None = None,
        workers: int | None = None, threads_per_worker: int | None = None,
        log: ResultLog | None = None, shard: str | None = None,
        ray_address: str | None = None, gpus_per_worker: float = 0.0,
        on_result: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Run ``factory``'s task over ``indices`` on a backend; return all rows sorted by idx.

    indices: unit indices (the seeds are derived from them inside the task).
    log: a ResultLog; units already in it are skipped (resume), new rows are appended.
    shard: ``"k/n"``: run only the units with ``idx % n == k``.
    workers: pool size for ``process``/``ray`` (default: CPU count).
    """
    name = resolve_backend(backend)
    todo = shard_indices(indices, shard)
    if log is not None:
        todo = log.todo(todo)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, numbers.Integral) or workers < 1):
        raise ValueError(f"workers: expected an integer >= 1, got {workers!r}")  # (0 read as 'default' before)
    n_workers = workers or os.cpu_count() or 1
    if name == "serial" or not todo:
        stream: Iterator[dict[str, Any]] = _serial(factory, todo)
    elif name == "process":
        stream = _process(factory, todo, n_workers, threads_per_worker or 1)
    else:
        stream = _ray(factory, todo, n_workers, threads_per_worker or 1, ray_address, gpus_per_worker)
    rows: dict[int, dict[str, Any]] = {}
    for row in stream:
        if log is not None:
            log.write(row)
        if on_result is not None:
            on_result(row)
        rows[int(row["idx"])] = row
    if log is not None:
        return [r for r in log.rows() if r["idx"] in set(shard_indices(indices, shard))]
    return [rows[i] for i in sorted(rows)]
