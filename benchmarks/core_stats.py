"""Benchmark: certkit.core.stats (compiled) against scipy on the same work, in one process.

Comparisons (each prints a table row and a JSON line; the Clopper-Pearson target is last):

* ``norm_ppf``: 10^6 probabilities (log-uniform tails + uniform) vs ``scipy.stats.norm.ppf``.
* ``binom_test``: two-sided exact binomial tests on (k, n = 10^5, p = 0.5) pairs vs a loop over
  ``scipy.stats.binomtest(k, n, p).pvalue``.
* ``clopper_pearson_distinct``: the worst case for us, 10^6 all-distinct (k, n) pairs
  (n = 10^5 + i), lower bound at alpha = 0.001, vs ``scipy.stats.beta.ppf``.
* ``clopper_pearson``: the target workload, 10^6 pairs with one n = 10^5 and k uniform on
  [0, n] (nearly all of the 10^5 + 1 possible k occur; each distinct pair is solved once),
  lower bound at alpha = 0.001, vs ``scipy.stats.beta.ppf`` on the same 10^6 pairs.

Every comparison also reports the largest relative difference to scipy. ``ratio`` =
anchor_s / ours_s (> 1: we are faster). Our kernels use OpenMP with ``--threads`` threads
(default: all cores); scipy is single-threaded, so a 1-thread row is printed as well.

Usage: ``python benchmarks/core_stats.py [--quick] [--threads T]``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from certkit.core import set_num_threads, stats

try:
    import scipy.stats as ss
except ImportError:  # pragma: no cover - depends on the environment
    ss = None


def _best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _max_rel(ours: np.ndarray, ref: np.ndarray) -> float:
    ours, ref = np.asarray(ours, float), np.asarray(ref, float)
    err = np.abs(ours - ref)
    nz = ref != 0
    err[nz] /= np.abs(ref[nz])
    return float(err.max()) if err.size else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10x smaller problems")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeat", type=int, default=3, help="best of R runs for ours (scipy: 1)")
    args = ap.parse_args()
    scale = 10 if args.quick else 1
    threads = max(args.threads, 1)
    rng = np.random.default_rng(0)
    rows: list[tuple[str, str, float, float | None, float | None]] = []
    results: list[dict[str, Any]] = []

    def compare(
        name: str,
        work: str,
        ours_fn: Callable[[], Any],
        anchor_fn: Callable[[], Any] | None,
    ) -> None:
        set_num_threads(1)
        ours_fn()  # warm-up (page-in, thread pool)
        t1, _ = _best(ours_fn, args.repeat)
        set_num_threads(threads)
        ours_fn()
        tt, ours = _best(ours_fn, args.repeat)
        if anchor_fn is None:
            print(f"[{name}] scipy is not installed: skipping the anchor")
            rows.append((name, work, tt, None, None))
            results.append({"name": name, "ours_s": tt, "anchor_s": None, "ratio": None})
            return
        ta, ref = _best(anchor_fn, 1)
        rows.append((name + " (1 thread)", work, t1, ta, _max_rel(ours, ref)))
        rows.append((name + f" ({threads} threads)", work, tt, ta, _max_rel(ours, ref)))
        results.append({"name": name, "ours_s": tt, "anchor_s": ta, "ratio": ta / tt})

    # norm_ppf
    m = 10**6 // scale
    p = np.concatenate([10 ** rng.uniform(-300, 0, m // 2), rng.uniform(0, 1, m - m // 2)])
    compare(
        "norm_ppf",
        f"{m} p",
        lambda: stats.norm_ppf(p),
        (lambda: ss.norm.ppf(p)) if ss else None,
    )

    # binomial test
    nb, mb = 10**5, 2000 // scale
    kb = rng.binomial(nb, 0.5, size=mb) + rng.integers(-600, 601, size=mb)
    compare(
        "binom_test",
        f"{mb} tests, n={nb}",
        lambda: stats.binom_test_two_sided(kb, nb, 0.5),
        (lambda: np.array([ss.binomtest(int(k), nb, 0.5).pvalue for k in kb])) if ss else None,
    )

    alpha, n = 0.001, 10**5
    mc = 10**6 // scale

    def scipy_lower(k: np.ndarray, nn: np.ndarray | int) -> np.ndarray:
        kk = np.maximum(k, 1)
        return np.where(k == 0, 0.0, ss.beta.ppf(alpha, kk, nn - kk + 1))

    # worst case: all pairs distinct
    nd = n + np.arange(mc)
    kd = (rng.uniform(0, 1, mc) * (nd + 1)).astype(np.int64)
    compare(
        "clopper_pearson_distinct",
        f"{mc} distinct (k, n), n~1e5",
        lambda: stats.clopper_pearson(kd, nd, alpha),
        (lambda: scipy_lower(kd, nd)) if ss else None,
    )

    # target: one n, repeated k
    kc = rng.integers(0, n + 1, mc)
    distinct = np.unique(kc).size
    compare(
        "clopper_pearson",
        f"{mc} pairs, n={n} ({distinct} distinct k)",
        lambda: stats.clopper_pearson(kc, n, alpha),
        (lambda: scipy_lower(kc, n)) if ss else None,
    )

    head = f"{'comparison':42s} {'work':36s} {'ours_s':>9s} {'scipy_s':>9s} {'ratio':>8s} {'max_rel_diff':>12s}"
    print(head)
    print("-" * len(head))
    for name, work, t, ta, err in rows:
        ratio = f"{ta / t:8.1f}" if ta else "     n/a"
        tas = f"{ta:9.4f}" if ta else "      n/a"
        errs = f"{err:12.2e}" if err is not None else "         n/a"
        print(f"{name:42s} {work:36s} {t:9.4f} {tas} {ratio} {errs}")
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
