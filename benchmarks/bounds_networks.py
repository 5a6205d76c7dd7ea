"""Bound propagation on real networks (issue 17): two reports.

``--vnncomp [CATS]``: for every network under ``../shared/data/vnncomp2021`` (or the listed
categories) whether it loads, its largest output difference from onnxruntime on random
inputs, and whether sampled points stay inside IBP / CROWN bounds (ε = 0.01 around a
random input); then the categories' instances (a seeded sample of ``--sample`` per
category, each with ``--timeout`` seconds instead of the instance's own) verified with
``verify_onnx_vnnlib`` and compared with ``results_2021`` (α-β-CROWN and nnenum): a
``sat`` where either tool proved UNSAT, or an ``unsat`` where either found SAT, is a
contradiction (a soundness bug).

``--operators``: ours vs auto_LiRPA on one model per operator family (the models of
packages/core/tests/test_bounds_operators.py), IBP and CROWN bounds, max |Δ| (float64).
auto_LiRPA from ``AUTO_LIRPA_PATH`` (a checkout of Verified-Intelligence/auto_LiRPA, with
appdirs and graphviz importable); without it the section is skipped.

Usage: python benchmarks/bounds_networks.py --vnncomp [test,mnistfc,eran] [--sample 15] [--timeout 10]
       python benchmarks/bounds_networks.py --operators
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from certkit.core.bounds import BoundedModel

ROOT = Path(__file__).resolve().parents[1]
VNN = ROOT.parent / "shared" / "data" / "vnncomp2021"


def _load_row(f: Path) -> dict[str, Any]:
    import onnxruntime as ort

    from certkit.core.bounds.onnx_import import load_onnx

    row: dict[str, Any] = {"net": str(f.relative_to(VNN))}
    t0 = time.perf_counter()
    try:
        om = load_onnx(f)
    except Exception as exc:  # reported in the table
        row.update(loads=False, error=f"{type(exc).__name__}: {exc}"[:160])
        return row
    row["load_s"] = time.perf_counter() - t0
    dt = next(om.module.parameters()).dtype
    data = gzip.decompress(f.read_bytes()) if f.suffix == ".gz" else f.read_bytes()
    s = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    i = s.get_inputs()[0]
    rng = np.random.default_rng(0)
    diff = 0.0
    for _ in range(3):
        x = rng.uniform(0, 1, (1, *om.input_shape))
        ref = s.run(None, {i.name: x.reshape([d if isinstance(d, int) else 1 for d in i.shape])
                           .astype(np.float64 if dt == torch.float64 else np.float32)})[0].reshape(-1)
        ours = om.module(torch.as_tensor(x, dtype=dt)).detach().numpy().reshape(-1)
        diff = max(diff, float(np.abs(ours - ref).max() / max(1.0, np.abs(ref).max())))
    row.update(loads=True, ort_rel_diff=diff)
    bm = BoundedModel(om.module, om.input_shape)
    x = torch.as_tensor(rng.uniform(0, 1, (1, *om.input_shape)), dtype=dt)
    for m in ("IBP", "CROWN"):
        t0 = time.perf_counter()
        with torch.no_grad():
            lo, up = bm.compute_bounds(x, 0.01, method=m)
            u = torch.rand(256, *om.input_shape, dtype=dt) * 2 - 1
            u[:64] = u[:64].sign()
            y = om.module(x + 0.01 * u)
        tol = 1e-4 * max(1.0, float(up.abs().max()))
        row[f"{m}_sound"] = bool((y >= lo - tol).all() and (y <= up + tol).all())
        row[f"{m}_s"] = time.perf_counter() - t0
    return row


def _published() -> dict[tuple[str, str, str], set[str]]:
    """(category, onnx basename, vnnlib basename) → the verdicts of α-β-CROWN and nnenum."""
    out: dict[tuple[str, str, str], set[str]] = {}
    for tool in ("a-b-CROWN.csv", "nnenum.csv"):
        with open(VNN / "results_2021" / tool, newline="") as fh:
            for r in csv.reader(fh):
                if len(r) >= 5 and r[4].strip().upper() in ("SAT", "UNSAT"):
                    key = (r[0], Path(r[1]).name.removesuffix(".gz"), Path(r[2]).name.removesuffix(".gz"))
                    out.setdefault(key, set()).add(r[4].strip().lower())
    return out


def _instances(cat: str) -> list[tuple[Path, Path]]:
    d = VNN / cat
    rows = []
    for csv_path in sorted(d.glob("*instances.csv")):
        with open(csv_path, newline="") as fh:
            for r in csv.reader(fh):
                if len(r) >= 2 and r[0].strip():
                    rows.append((d / r[0].strip().removeprefix("./"), d / r[1].strip().removeprefix("./")))
    return rows


def _verdicts(cats: list[str], sample: int, timeout: float, seed: int) -> list[dict[str, Any]]:
    from certkit.core.bounds.vnnlib_verify import verify_onnx_vnnlib

    pub = _published()
    rows = []
    for cat in cats:
        inst = _instances(cat)
        rnd = random.Random(seed)
        pick = inst if len(inst) <= sample else rnd.sample(inst, sample)
        for onnx_p, prop in pick:
            t0 = time.perf_counter()
            try:
                r = verify_onnx_vnnlib(onnx_p, prop, timeout=timeout)
                status = r.status
            except Exception as exc:
                status = f"error: {type(exc).__name__}: {exc}"[:120]
            theirs = pub.get((cat, onnx_p.name.removesuffix(".gz"), prop.name.removesuffix(".gz")), set())
            contra = (status == "sat" and "unsat" in theirs) or (status == "unsat" and "sat" in theirs)
            rows.append({"cat": cat, "net": onnx_p.name, "prop": prop.name, "ours": status,
                         "published": ",".join(sorted(theirs)) or "-", "contradiction": contra,
                         "s": time.perf_counter() - t0})
            print(f"  {cat:14} {onnx_p.name[:34]:34} {prop.name[:44]:44} {status:8} {rows[-1]['published']:10} "
                  f"{'CONTRADICTION' if contra else ''} {rows[-1]['s']:.1f}s", flush=True)
    return rows


def vnncomp(cats: list[str] | None, sample: int, timeout: float, seed: int) -> None:
    if not VNN.is_dir():
        print(f"# {VNN} is absent: skipped")
        return
    cats = cats or sorted(p.name for p in VNN.iterdir() if p.is_dir() and p.name != "results_2021")
    print(f"# loadavg={os.getloadavg()[0]:.1f} threads={torch.get_num_threads()}")
    print("## load table (ε = 0.01 around a random input; sound = 256 samples inside)")
    loads: dict[str, list[dict[str, Any]]] = {}
    for cat in cats:
        files = sorted(p for p in (VNN / cat).rglob("*.onnx*") if p.suffix in (".onnx", ".gz"))
        for f in files:
            if cat == "acasxu" and f.name not in ("ACASXU_run2a_1_1_batch_2000.onnx", "ACASXU_run2a_5_9_batch_2000.onnx"):
                from certkit.core.bounds.onnx_import import load_onnx

                try:
                    load_onnx(f)
                    loads.setdefault(cat, []).append({"net": f.name, "loads": True})
                except Exception as exc:
                    loads.setdefault(cat, []).append({"net": f.name, "loads": False, "error": str(exc)[:160]})
                continue
            row = _load_row(f)
            loads.setdefault(cat, []).append(row)
            print("  " + json.dumps(row, default=lambda v: round(v, 4) if isinstance(v, float) else v), flush=True)
    for cat, rs in loads.items():
        full = [r for r in rs if "IBP_sound" in r]
        print(f"  {cat:14} loads {sum(r['loads'] for r in rs)}/{len(rs)}; checked {len(full)}: "
              f"max ort rel diff {max((r['ort_rel_diff'] for r in full), default=0):.1e}, "
              f"IBP sound {sum(r['IBP_sound'] for r in full)}/{len(full)}, "
              f"CROWN sound {sum(r['CROWN_sound'] for r in full)}/{len(full)}")
    print(f"## verdicts (sample {sample} per category, timeout {timeout} s each, seed {seed})")
    rows = _verdicts(cats, sample, timeout, seed)
    summary = {}
    for cat in cats:
        rs = [r for r in rows if r["cat"] == cat]
        summary[cat] = {s: sum(r["ours"] == s for r in rs) for s in ("sat", "unsat", "unknown", "timeout")}
        summary[cat]["contradictions"] = sum(r["contradiction"] for r in rs)
        summary[cat]["n"] = len(rs)
    print(json.dumps({"name": "bounds_vnncomp", "timeout_s": timeout, "sample": sample, "per_category": summary}))


def operators(dtype: torch.dtype) -> None:
    path = os.environ.get("AUTO_LIRPA_PATH")
    if not path:
        print("# AUTO_LIRPA_PATH not set: the auto_LiRPA comparison is skipped")
        return
    sys.path.insert(0, path)
    sys.path.insert(0, str(ROOT / "packages" / "core" / "tests"))
    from auto_LiRPA import BoundedModule, BoundedTensor, PerturbationLpNorm
    from test_bounds_operators import ACTS, LeNetish, ResNet, Shapes, _act_mlp, _randomise_bn

    cases: list[tuple[str, torch.nn.Module, tuple[int, ...]]] = []
    for name in ACTS:
        cases.append((f"act:{name}", _act_mlp(ACTS[name], 0).to(dtype), (5,)))
    torch.manual_seed(0)
    cases += [("norm+lenet", _randomise_bn(LeNetish()).to(dtype), (3, 8, 8)),
              ("shapes", _randomise_bn(Shapes()).to(dtype), (2, 6, 6)),
              ("resnet 3x32x32", _randomise_bn(ResNet(4)).to(dtype), (3, 32, 32))]
    print(f"# loadavg={os.getloadavg()[0]:.1f} {dtype}, eps 0.02 (resnet 0.002), B=2; width = mean(upper - lower)")
    print(f"{'family':18} {'method':6} {'accepted':>8} {'max|d|':>10} {'ours_w':>9} {'alirpa_w':>9} {'ours_s':>8} "
          f"{'alirpa_s':>9}")
    out = []
    for name, net, shape in cases:
        x = torch.rand(2, *shape, dtype=dtype)
        eps = 0.002 if "resnet" in name else 0.02
        try:
            ours = BoundedModel(net, shape)
        except Exception as exc:
            print(f"{name:18} refused by ours: {exc}")
            continue
        try:
            am = BoundedModule(net, torch.zeros(1, *shape, dtype=dtype), verbose=0)
        except Exception as exc:
            print(f"{name:18} refused by auto_LiRPA: {type(exc).__name__}: {str(exc)[:80]}")
            am = None
        for method in ("IBP", "CROWN"):
            t0 = time.perf_counter()
            with torch.no_grad():
                lo, up = ours.compute_bounds(x, eps, method=method)
            to = time.perf_counter() - t0
            if am is None:
                print(f"{name:18} {method:6} {'ours':>8} {'-':>10} {to:8.3f}")
                continue
            t0 = time.perf_counter()
            try:
                xb = BoundedTensor(x, PerturbationLpNorm(norm=math.inf, eps=eps))
                with torch.no_grad():
                    alo, aup = am.compute_bounds(x=(xb,), method=method)
                ta = time.perf_counter() - t0
                d = max(float((lo - alo).abs().max()), float((up - aup).abs().max()))
            except Exception as exc:
                print(f"{name:18} {method:6} auto_LiRPA failed: {type(exc).__name__}: {str(exc)[:80]}")
                continue
            wo, wa = float((up - lo).mean()), float((aup - alo).mean())
            out.append({"family": name, "method": method, "max_diff": d, "ours_width": wo, "alirpa_width": wa,
                        "ours_s": to, "alirpa_s": ta})
            print(f"{name:18} {method:6} {'both':>8} {d:10.2e} {wo:9.4g} {wa:9.4g} {to:8.3f} {ta:9.3f}", flush=True)
    print(json.dumps({"name": "bounds_operators", "rows": out}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vnncomp", nargs="?", const="", default=None, help="comma-separated categories (default all)")
    ap.add_argument("--sample", type=int, default=15)
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--operators", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.vnncomp is not None:
        vnncomp([c for c in args.vnncomp.split(",") if c] or None, args.sample, args.timeout, args.seed)
    if args.operators:
        operators(getattr(torch, args.dtype))


if __name__ == "__main__":
    main()
