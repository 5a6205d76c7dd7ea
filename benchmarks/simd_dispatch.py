"""Run-time SIMD dispatch vs a ``-march=native`` build, on the hot kernels, in one run.

Workloads (the work of ``core_sampling``, ``core_stats`` and ``bounds``, scaled down): Philox
Gaussian / Laplace fills (float32, float64), Clopper-Pearson on 10^5 distinct pairs,
``norm_ppf`` on 10^6 probabilities, the binomial test, IBP / CROWN on an MLP (the compiled
bound kernels), and the truncated spectral solver. Each runs under every SIMD variant of the
installed (dispatched) core (``_core._set_simd``), then, with ``--native DIR``, in a child
process that imports a native build from ``DIR`` (an unpacked wheel built with
``-Ccmake.define.CERTKIT_ARCH=native``, or its install prefix). Target (issue 25): the
dispatched build within 5 % of native. One thread by default, so that the machine's load
matters less; ``--threads`` to change.

Usage: ``python benchmarks/simd_dispatch.py [--native DIR] [--repeat 7] [--rounds 3] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

import numpy as np
from _common import best_time, emit, print_table

import certkit.core as ck
from certkit.core import spectral, stats
from certkit.core._ext import core_ext


def _mlp(dtype: Any) -> tuple[list[tuple[Any, ...]], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    sizes = [784, 256, 256, 10]
    layers: list[tuple[Any, ...]] = []
    for i in range(len(sizes) - 1):
        a, b = sizes[i], sizes[i + 1]
        meta = np.zeros(14, np.int64)
        meta[:2] = a, b
        meta[10:12] = 1
        W = (rng.standard_normal((b, a)) / np.sqrt(a)).astype(dtype)
        layers.append((0, W, rng.standard_normal(b).astype(dtype), meta))
        if i < len(sizes) - 2:
            relu = np.zeros(14, np.int64)
            relu[:2] = b, b
            layers.append((2, None, None, relu))
    x = rng.random((32, sizes[0])).astype(dtype)
    C = np.broadcast_to(np.eye(10, dtype=dtype), (32, 10, 10)).copy()
    return layers, x, C


def workloads() -> dict[str, Callable[[], Any]]:
    out32 = np.empty(4_000_000, np.float32)
    rng = np.random.default_rng(1)
    n_d = 100_000 + np.arange(100_000)
    k_d = (rng.random(100_000) * n_d).astype(np.int64)
    p = np.concatenate([rng.random(500_000), 10.0 ** -rng.uniform(1, 300, 500_000)])
    k_b = rng.integers(0, 10_001, 2_000)
    layers, x, C = _mlp(np.float32)
    pts = rng.standard_normal((2048, 3))
    indptr, indices, data = spectral.laplacian(pts, 10)
    return {
        "gaussian f32 4M": lambda: ck.fill_gaussian(out32, 1.0, 3),
        "laplace f32 4M": lambda: ck.fill_laplace(out32, 1.0, 3),
        "gaussian f64 1M": lambda: ck.gaussian_noise(1_000_000, 1.0, 3, dtype=np.float64),
        "clopper_pearson 1e5 distinct": lambda: stats.clopper_pearson(k_d, n_d, 0.001),
        "norm_ppf 1e6": lambda: stats.norm_ppf(p),
        "binom_test 2000 (n=1e4)": lambda: stats.binom_test_two_sided(k_b, 10_000, 0.5),
        "bounds IBP mlp 32x784": lambda: core_ext.bounds.compute(layers, x - 0.01, x + 0.01, C, 0),
        "bounds CROWN mlp 32x784": lambda: core_ext.bounds.compute(layers, x - 0.01, x + 0.01, C, 1),
        "spectral eigsh 2048 pts m=32": lambda: spectral.eigsh_csr(indptr, indices, data, 32),
    }


def measure(repeat: int) -> dict[str, dict[str, float]]:
    """{variant: {workload: best seconds}} for every variant this CPU runs."""
    info = ck.build_info()
    variants = ["native"] if info["simd"] == "native" else [
        v for v in info["simd_variants"] if v in info["simd_cpu"]]
    work = workloads()
    res: dict[str, dict[str, float]] = {}
    before = info["simd"]
    for v in variants:
        if v != "native":
            assert core_ext._set_simd(v)
        res[v] = {name: best_time(fn, repeat) for name, fn in work.items()}
    if before != "native":
        core_ext._set_simd(before)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--native", help="directory holding a -march=native build of certkit.core")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3, help="alternations of the two builds (min kept)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    ck.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(measure(args.repeat)))
        return
    # rounds alternate the two builds, so that a change in the machine's load hits both
    res: dict[str, dict[str, float]] = {}
    for _ in range(args.rounds):
        runs = [measure(args.repeat)]
        if args.native:
            # -S: no .pth files, so an editable install's import hook cannot shadow the native
            # build; site-packages still on the path for numpy
            import site

            path = [args.native, *site.getsitepackages(), os.environ.get("PYTHONPATH", "")]
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
            r = subprocess.run([sys.executable, "-S", __file__, "--child", "--repeat", str(args.repeat),
                                "--threads", str(args.threads)], env=env, capture_output=True,
                               text=True, check=True)
            child = json.loads(r.stdout.strip().splitlines()[-1])
            if "native" not in child:
                raise SystemExit(f"--native {args.native}: that build is not -march=native ({list(child)})")
            runs.append(child)
        for run in runs:
            for variant, times in run.items():
                cur = res.setdefault(variant, dict(times))
                for name, t in times.items():
                    cur[name] = min(cur[name], t)
    info = ck.build_info()
    best = info["simd"]
    cols = list(res)
    rows = []
    for name in next(iter(res.values())):
        row: list[Any] = [name] + [res[c][name] * 1e3 for c in cols]
        if "native" in res:
            row.append(res["native"][name] / res[best][name])
        rows.append(row)
    head = ["workload"] + [f"{c} ms" for c in cols] + (["native/dispatched"] if "native" in res else [])
    print_table(f"SIMD dispatch (running: {best}; threads={args.threads}; load {os.getloadavg()[0]:.1f})",
                head, rows)
    if "native" in res:
        for name in res[best]:
            emit(f"simd_dispatch.{name}", res[best][name], res["native"][name], variant=best,
                 target_ratio=0.95)


if __name__ == "__main__":
    main()
