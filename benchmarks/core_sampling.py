"""Gaussian fill throughput: certkit's Philox sampler vs torch.randn (the anchor) and
numpy's standard_normal, on the same 2×10⁷ float32 values, same thread count.

Target (issue 2): ≥ 2× the throughput of torch.randn on a 2-core machine.
Usage: python benchmarks/core_sampling.py [--n 20000000] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import numpy as np
import torch
from _common import best_time, emit, print_table

import certkit.core as ck


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20_000_000)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    n, t = args.n, args.threads
    torch.set_num_threads(t)
    ck.set_num_threads(t)
    out = np.empty(n, np.float32)
    tout = torch.empty(n)
    gen = np.random.default_rng(0)
    nout = np.empty(n, np.float32)
    seed = iter(range(10**6))

    ours = best_time(lambda: ck.fill_gaussian(out, 1.0, next(seed)), args.repeat)
    anchor = best_time(lambda: torch.randn(n, out=tout), args.repeat)
    npy = best_time(lambda: gen.standard_normal(n, dtype=np.float32, out=nout), max(2, args.repeat // 2))
    ours64 = best_time(lambda: ck.gaussian_noise(n // 2, 1.0, next(seed), dtype=np.float64), args.repeat) * 2
    lap = best_time(lambda: ck.fill_laplace(out, 1.0, next(seed)), args.repeat)
    uni = best_time(lambda: ck.fill_uniform(out, 0.0, 1.0, next(seed)), args.repeat)
    torch_u = best_time(lambda: tout.uniform_(), args.repeat)
    rows = [
        ["certkit fill_gaussian f32", n / ours / 1e6, ours, anchor / ours],
        ["torch.randn f32 (anchor)", n / anchor / 1e6, anchor, 1.0],
        ["numpy standard_normal f32", n / npy / 1e6, npy, anchor / npy],
        ["certkit gaussian f64", n / ours64 / 1e6, ours64, anchor / ours64],
        ["certkit fill_laplace f32", n / lap / 1e6, lap, anchor / lap],
        ["certkit fill_uniform f32", n / uni / 1e6, uni, torch_u / uni],
        ["torch uniform_ f32", n / torch_u / 1e6, torch_u, 1.0],
    ]
    print_table(f"Gaussian fill, n={n:,}, threads={t} ({ck.build_info()['simd']})",
                ["sampler", "M values/s", "seconds", "vs anchor"], rows)
    emit("core_sampling.gaussian_fill_f32", ours, anchor, n=n, threads=t, target_ratio=2.0)


if __name__ == "__main__":
    main()
