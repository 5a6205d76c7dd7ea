"""VNN-COMP 2021 categories through ``certkit bounds vnncomp``'s runner: solved counts next to
α,β-CROWN's and nnenum's published results, contradictions, and the time per instance.

Each category's instances (a seeded sample with ``--sample``) run with their own timeouts
times ``--timeout-scale`` (PGD, IBP / CROWN / α-CROWN, then input splitting on ≤ 16 inputs
or ReLU splitting with β-CROWN bounds); every sat is re-checked with onnxruntime. The
published tables are ``results_2021/a-b-CROWN.csv`` and ``nnenum.csv`` under
``../shared/data/vnncomp2021`` (outside the project); a category folder that is absent is
skipped. Report ``uptime``'s load average with the numbers: the development machine is shared.

With ``--refine milp`` (or ``lp``) the root's intermediate bounds of ReLU MLPs are refined
before ReLU splitting (``certkit bounds vnncomp --refine``; the MILP's bounds trust HiGHS, as
α,β-CROWN's 2021 ``bab-refine`` trusted Gurobi; the LP's are rigorous); the JSON line records it.

Usage: python benchmarks/vnncomp.py [--categories mnistfc,eran,verivital] [--sample 10]
       [--seed 0] [--timeout-scale 0.5] [--out-dir /tmp/vnncomp] [--workers 1]
       [--refine none|lp|milp]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
from pathlib import Path
from typing import Any

from _common import print_table

from certkit.core.bounds.vnncomp import (
    compare,
    read_instances,
    read_published,
    result_key,
    run_category,
)
from certkit.core.bounds.vnnlib_verify import refine_kw

ROOT = Path(__file__).resolve().parents[1]
VNN = ROOT.parent / "shared" / "data" / "vnncomp2021"
TOOLS = {"a-b-CROWN": "a-b-CROWN.csv", "nnenum": "nnenum.csv"}


def _load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def run(categories: list[str], sample: int | None, seed: int, scale: float, out_dir: Path,
        workers: int, refine: str = "none") -> list[dict[str, Any]]:
    published = {k: read_published(VNN / "results_2021" / f) for k, f in TOOLS.items()
                 if (VNN / "results_2021" / f).is_file()}
    rows = []
    for cat in categories:
        d = VNN / cat
        if not d.is_dir():
            print(f"skip {cat}: {d} not found")
            continue
        insts = read_instances(d)
        # the shared copy of a category may hold only some of its properties: sample among the
        # rows whose files are present (a missing file would only count as an `error`)
        chosen = [i.row for i in insts if i.onnx_path.is_file() and i.vnnlib_path.is_file()]
        if len(chosen) < len(insts):
            print(f"# {cat}: {len(insts) - len(chosen)} of {len(insts)} rows lack their files here; sampling among {len(chosen)}")
        if sample is not None:
            chosen = sorted(random.Random(seed).sample(chosen, min(sample, len(chosen))))
        load0 = _load()
        done = run_category(d, out=out_dir / f"{cat}.csv", timeout_scale=scale, rows=chosen, new=True,
                            backend="process" if workers > 1 else None, workers=workers, seed=seed,
                            **refine_kw(refine))
        rec: dict[str, Any] = {"category": cat, "instances": len(done), "refine": refine, "load_start": load0,
                               "load_end": _load()}
        for tool, pub in published.items():
            c = compare(done, pub)
            rec["ours_solved"] = c["solved"]
            rec[f"{tool}_solved"] = sum(pub.get(result_key(cat, r["onnx"], r["vnnlib"])) in ("sat", "unsat")
                                        for r in done)
            rec[f"contradictions_{tool}"] = c["contradictions"]
        rec.update({k: sum(r["result"] == k for r in done) for k in ("sat", "unsat", "unknown", "timeout", "error")})
        times = [float(r["run_time"]) for r in done]
        solved_t = [float(r["run_time"]) for r in done if r["result"] in ("sat", "unsat")]
        rec["mean_s"] = round(statistics.fmean(times), 2) if times else None
        rec["median_solved_s"] = round(statistics.median(solved_t), 2) if solved_t else None
        rows.append(rec)
        print(json.dumps(rec))
    print_table(f"VNN-COMP 2021, timeout x {scale}, sample {sample} (seed {seed})",
                ["category", "n", "ours", *[f"{t}" for t in published], "sat", "unsat", "timeout", "unknown",
                 "contradictions", "mean s", "median solved s"],
                [[r["category"], r["instances"], r["ours_solved"], *[r[f"{t}_solved"] for t in published],
                  r["sat"], r["unsat"], r["timeout"], r["unknown"],
                  sum(len(r[f"contradictions_{t}"]) for t in published), r["mean_s"], r["median_solved_s"]]
                 for r in rows])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--categories", default="mnistfc,eran,verivital")
    ap.add_argument("--sample", type=int, default=10, help="seeded sample per category (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout-scale", type=float, default=0.5)
    ap.add_argument("--out-dir", type=Path, default=Path("/tmp/vnncomp"))
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--refine", choices=["none", "lp", "milp"], default="none",
                    help="refine the root's intermediate bounds of ReLU MLPs before splitting")
    a = ap.parse_args()
    a.out_dir.mkdir(parents=True, exist_ok=True)
    run([c for c in a.categories.split(",") if c], a.sample or None, a.seed, a.timeout_scale, a.out_dir, a.workers, a.refine)


if __name__ == "__main__":
    main()
