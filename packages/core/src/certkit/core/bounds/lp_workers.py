"""Worker processes that solve the LPs / MILPs of one layer's neurons in parallel for
:func:`~certkit.core.bounds.lp_refine.refine_bounds`.

The neurons of one layer are independent given the bounds of the layers before it
(α,β-CROWN's 2021 ``bab-refine`` ran 8–32 Gurobi processes for the same reason). Each worker
is a fresh ``python -I`` process running this file as a script: it imports numpy, scipy and
HiGHS and loads :mod:`~certkit.core.bounds.lp_model` by its file path (no torch, no certkit
package: it starts in a fraction of a second, and nothing is forked from a torch process).
It receives the layers' weights once, a layer's bounds once per layer (it builds its own
copy of the layer's model), then ``(job, row, sign, time limit, cutoff)`` messages, and
answers ``(job, bound, seconds, CPU seconds)``; the bound is computed in the worker exactly as in the
parent (weak duality for the LP, the dual bound less its margin for the MILP).

:class:`Pool` never waits past the deadline it is given: if a solve has not answered by
then (HiGHS overran its time limit), every worker is killed and the refinement stops with
the bounds it has. A worker ends on end of input, on ``KeyboardInterrupt`` (quietly), and is
killed by :meth:`Pool.close` (also on errors and interrupts in the parent).

Test hooks (keys of the ``options`` sent with a layer, never HiGHS options):
``certkit_delay_s`` sleeps that long before every solve (a solver overrunning its limit),
``certkit_exit`` ends the worker at the build (a crashed worker).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from multiprocessing.connection import Connection, wait
from typing import Any

import numpy as np

POOL_START_S = 1.0  # seconds assumed for starting the workers (0.7 s measured at load 4; checked against the deadline)


def default_workers() -> int:
    """The CPUs this process may use (``os.sched_getaffinity``), at most 8."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # (not on every platform)
        n = os.cpu_count() or 1
    return max(1, min(8, n))


class Pool:
    """``n`` worker processes holding the same layers (list of (W, b)) and input box.

    :meth:`build` sends a layer's model data to every worker; :meth:`submit` gives an idle
    worker one solve; :meth:`collect` returns the answers of the solves that finished
    (waiting until one does, but not past ``end``: ``None`` then, and the pool is closed).
    Answers are ``(tag, bound, seconds, CPU seconds)``, ``bound = -inf`` for a failed solve."""

    def __init__(self, n: int, layers: list[tuple[np.ndarray, np.ndarray]], x_lo: np.ndarray,
                 x_hi: np.ndarray) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.send: list[Connection] = []
        self.recv: list[Connection] = []
        self.busy: dict[int, Any] = {}  # worker -> tag of its solve
        self.dead: set[int] = set()
        script = os.path.abspath(__file__)
        try:
            for _ in range(n):
                r_job, w_job = os.pipe()
                r_res, w_res = os.pipe()
                p = subprocess.Popen([sys.executable, "-I", script, str(r_job), str(w_res)],
                                     pass_fds=(r_job, w_res), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, close_fds=True)
                os.close(r_job)
                os.close(w_res)
                self.procs.append(p)
                self.send.append(Connection(w_job, readable=False))
                self.recv.append(Connection(r_res, writable=False))
            for c in self.send:
                c.send(("layers", layers, x_lo, x_hi))
        except BaseException:
            self.close()
            raise

    @property
    def alive(self) -> list[int]:
        return [i for i in range(len(self.procs)) if i not in self.dead]

    def idle(self) -> list[int]:
        return [i for i in self.alive if i not in self.busy]

    def _post(self, i: int, msg: tuple[Any, ...]) -> bool:
        try:
            self.send[i].send(msg)
            return True
        except (OSError, ValueError):
            self.dead.add(i)
            return False

    def build(self, k: int, lb: list[np.ndarray], ub: list[np.ndarray], milp: bool, milp_from: int,
              options: dict[str, Any], end: float | None) -> bool:
        """Every live worker builds the model of layer ``k`` (bounds of layers 0..k-1);
        False if none could: ``end`` passed (the pool is closed then) or every worker failed."""
        for i in self.alive:
            if self._post(i, ("build", k, lb, ub, milp, milp_from, options)):
                self.busy[i] = "build"
        while any(t == "build" for t in self.busy.values()):
            if self.collect(end) is None:
                return False
        return bool(self.alive)

    def submit(self, i: int, tag: Any, row: int, low: bool, time_limit: float) -> None:
        """Worker ``i`` bounds neuron ``row`` of the layer built (:func:`~certkit.core.bounds.lp_model.neuron_lower`)."""
        if self._post(i, ("solve", row, low, time_limit)):
            self.busy[i] = tag

    def collect(self, end: float | None) -> list[tuple[Any, float, float, float]] | None:
        """The answers of finished solves (``[]`` if a worker died with its solve); waits
        for at least one, until ``end`` (``time.perf_counter()``; ``None``: no limit)."""
        conns = {self.recv[i]: i for i in self.busy}
        if not conns:
            return []
        timeout = None if end is None else max(0.0, end - time.perf_counter())
        ready = wait(list(conns), timeout)
        if not ready:
            self.close()
            return None
        out: list[tuple[Any, float, float, float]] = []
        for c in ready:
            i = conns[c]  # type: ignore[index]
            tag = self.busy.pop(i)
            try:
                msg = self.recv[i].recv()
            except (EOFError, OSError):
                self.dead.add(i)
                msg = ("error", float("-inf"), 0.0, 0.0)
            if tag != "build":
                out.append((tag, float(msg[1]), float(msg[2]), float(msg[3])))
        return out

    def close(self) -> None:
        """Ends every worker now (its pipes closed, then killed: a worker holds nothing
        worth a clean exit, and its interpreter's exit takes ~0.2 s under load)."""
        for c in self.send + self.recv:
            try:
                c.close()
            except OSError:
                pass
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        self.dead.update(range(len(self.procs)))
        self.busy.clear()

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _serve(r_fd: int, w_fd: int) -> None:
    """The worker's loop (see the module docstring)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "_certkit_lp_model", os.path.join(os.path.dirname(os.path.abspath(__file__)), "lp_model.py"))
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # (dataclasses look their module up)
    spec.loader.exec_module(mod)
    hc = mod._highs()
    inp, out = Connection(r_fd, writable=False), Connection(w_fd, readable=False)
    layers: list[Any] = []
    x_lo = x_hi = np.zeros(0)
    lp: Any = None
    W = b = np.zeros(0)
    delay = 0.0
    while True:
        try:
            msg = inp.recv()
        except (EOFError, OSError):
            return
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            if msg[0] == "layers":
                layers = [mod._Layer(i, W_, b_) for i, (W_, b_) in enumerate(msg[1])]
                x_lo, x_hi = msg[2], msg[3]
                continue
            if msg[0] == "build":
                _, k, lb, ub, milp, milp_from, options = msg
                delay = float(options.get("certkit_delay_s", 0.0))
                if options.get("certkit_exit"):
                    os._exit(3)
                lp = None
                lp = mod._LP(layers, k, x_lo, x_hi, lb, ub, hc, milp, milp_from, options)
                W, b = layers[k].W, layers[k].b
                out.send(("built", 0.0, time.perf_counter() - t0, 0.0))
                continue
            _, row, low, limit = msg
            time.sleep(delay)
            v = mod.neuron_lower(lp, W, b, row, low, limit)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception:  # a failed build / solve: no bound (the parent keeps the one it has)
            v = float("-inf")
        out.send(("done", v, time.perf_counter() - t0, time.process_time() - c0))


if __name__ == "__main__":
    try:
        _serve(int(sys.argv[1]), int(sys.argv[2]))
    except (KeyboardInterrupt, BrokenPipeError):
        pass
