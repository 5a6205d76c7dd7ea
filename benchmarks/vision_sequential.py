"""Sequential certification vs Cohen et al.'s fixed-n CERTIFY: forward passes and the
certified-accuracy curve on the same model, inputs and noise.

Anchor: CERTIFY with n0 = 100 selection + n = 100,000 estimation samples per input
(Cohen, Rosenfeld & Kolter 2019, arXiv 1902.02918), run with certkit's packed sampler
(the sample count, not the implementation, is compared here; see vision_certify.py for
the implementation comparison). Ours: ``mode="sequential"``, ``max_n`` = n, the curve's
radius grid as ``radius_grid`` (stop once the certified radius and the reachable radius
share a grid cell), with the default bound (Clopper-Pearson at fixed looks, α spent
across looks, ``certkit.vision.smoothing.looks``) and, for comparison, the beta-binomial
mixture confidence sequence. Both at α = 0.001, same seed: sample j of input i is the
same noise draw in both runs.

The **physical floor**: certifying radius r needs at least log(1/α)/(-log Φ(r/σ)) ≈
log(1/α)/(1-Φ(r/σ)) samples even for an input with p_A = 1 (no valid level-α bound
reaches Φ(r/σ) sooner). Per input we print two floors for reaching *Cohen's* grid level:
the all-success floor, and a clairvoyant one (fixed-n Clopper-Pearson at the true p̂, with
an oracle that knows exactly when to stop and pays nothing for looking repeatedly or for
resolving the upper side). Their means bound the pass ratio any valid method can reach.

    python benchmarks/vision_sequential.py [--inputs 100] [--sigmas 0.25] [--grid-steps 0.25 0.1]

Measured (2-core CPU shared with other jobs, load 7-11, 100 digits test inputs, α = 0.001,
Cohen n = 100,000; bound "looks"): forward-pass ratio Cohen/ours and worst curve gap

    σ      grid 0.25            grid 0.1             clairvoyant bound (0.25 / 0.1)
    0.12   133×, 0 points       4.5×, 0 points       184× / 7.2×
    0.25   10.4×, 0 points      3.4×, 1 point        28.6× / 7.1×
    0.50   12.6×, 1 point       6.0×, 1 point        32.4× / 13.3×

On the 0.1 grid at σ = 0.25 and 0.12 even the clairvoyant oracle (exact p, fixed-n
Clopper-Pearson, free looks) cannot exceed ~7×: the top cells are narrower than what
100,000 samples resolve, so the inputs in them must run (nearly) to n to match Cohen.

Prints, per (σ, grid step), both curves, the gap per radius in points, mean passes ours
vs Cohen and the floors; then one JSON line (ours_s/anchor_s are wall times of the first
configuration; ``pass_ratio`` the forward-pass ratio anchor/ours; per-config numbers under
``configs``).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np


def floors(cohen: list[Any], grid: np.ndarray, sigma: float, alpha: float, n: int) -> tuple[float, float]:
    """Mean over inputs of (all-success floor, clairvoyant fixed-n CP floor) for reaching
    the grid level Cohen's run reached."""
    from certkit.core import stats
    from certkit.vision.smoothing.looks import all_success_floor

    q = stats.norm_cdf(grid / sigma)
    ts = np.unique(np.geomspace(1, n, 4000).astype(np.int64))
    f_all, f_cp = [], []
    for c in cohen:
        if c.prediction < 0:
            f_all.append(0)
            f_cp.append(0)
            continue
        level = int(np.sum(c.radius >= grid))
        thr = max(float(q[level - 1]), 0.5 + 1e-12)
        f_all.append(int(all_success_floor(np.array([thr]), alpha)[0]))
        p_hat = c.count / c.n
        lo = stats.clopper_pearson(np.floor(p_hat * ts).astype(np.int64), ts, alpha)
        ok = np.flatnonzero(lo >= thr)
        f_cp.append(int(ts[ok[0]]) if ok.size else n)
    return float(np.mean(f_all)), float(np.mean(f_cp))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--inputs", type=int, default=100)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--sigmas", type=float, nargs="+", default=[0.25])
    ap.add_argument("--alpha", type=float, default=0.001)
    ap.add_argument("--grid-steps", type=float, nargs="+", default=[0.25, 0.1],
                    help="radius grid steps (Cohen et al.'s tables use 0.25)")
    ap.add_argument("--batch-size", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--mixture", action="store_true", help="also run the beta-binomial mixture CS")
    ap.add_argument("--cohen-log", default=None,
                    help="JSON-lines cache of the fixed-n results; '{sigma}' is replaced by σ")
    args = ap.parse_args()

    import torch

    from certkit.vision.data.digits import load_digits
    from certkit.vision.data.reference import digits_cnn
    from certkit.vision.smoothing.metrics import average_certified_radius, certified_accuracy
    from certkit.vision.smoothing.smooth import Smooth

    _, test = load_digits()
    xs, ys = test.x[: args.inputs], test.y[: args.inputs]
    configs: list[dict[str, Any]] = []
    wall: dict[str, float] = {}
    print(f"digits DigitsCNN, {len(xs)} inputs, α={args.alpha}, Cohen n0=100 n={args.n}, "
          f"torch threads {torch.get_num_threads()}")
    for sigma in args.sigmas:
        model = digits_cnn(sigma, epochs=args.epochs)
        smooth = Smooth(model, 10, sigma)
        kw = dict(n0=100, n=args.n, alpha=args.alpha, batch_size=args.batch_size, labels=ys, seed=0)
        log = args.cohen_log.replace("{sigma}", f"{sigma:g}") if args.cohen_log else None
        cohen = smooth.certify_batch(xs, log=log, **kw)
        anchor_s = float(sum(c.seconds for c in cohen))  # recorded per input, also when read from the cache
        pa = float(np.mean([c.forward_passes for c in cohen]))
        for step in args.grid_steps:
            # the grid: multiples of the step below the largest radius n samples can certify
            r_max = sigma * float(np.squeeze(__import__("scipy").stats.norm.ppf(args.alpha ** (1 / args.n))))
            grid = np.round(np.arange(0.0, r_max, step), 6)
            bounds = ["looks", "mixture"] if args.mixture else ["looks"]
            runs = {}
            for bound in bounds:
                runs[bound] = smooth.certify_batch(xs, mode="sequential", max_n=args.n,
                                                   radius_grid=grid.tolist(), bound=bound, **kw)
                wall.setdefault(f"ours_{bound}", float(sum(c.seconds for c in runs[bound])))
            ca = certified_accuracy(cohen, grid)
            cs = {b: certified_accuracy(r, grid) for b, r in runs.items()}
            f_all, f_cp = floors(cohen, grid, sigma, args.alpha, args.n)
            print(f"\nσ={sigma:g}, grid step {step:g} ({grid.size} radii, top {grid[-1]:g})")
            head = "".join(f"{b + ' Δ':>12}" for b in runs)
            print(f"{'radius':>8}{'Cohen %':>9}" + "".join(f"{b + ' %':>12}" for b in runs) + head)
            for i, r in enumerate(grid):
                print(f"{r:8.2f}{100 * ca[i]:9.1f}" + "".join(f"{100 * cs[b][i]:12.1f}" for b in runs)
                      + "".join(f"{100 * (cs[b][i] - ca[i]):12.1f}" for b in runs))
            row: dict[str, Any] = {"sigma": sigma, "grid_step": step, "passes_cohen": pa,
                                   "floor_all_success": f_all, "floor_clairvoyant_cp": f_cp,
                                   "max_ratio_all_success": pa / (100 + f_all),
                                   "max_ratio_clairvoyant": pa / (100 + f_cp)}
            for b, r in runs.items():
                ps = float(np.mean([c.forward_passes for c in r]))
                gap = float(np.max(np.abs(ca - cs[b])) * 100)
                at_max = float(np.mean([c.n >= args.n for c in r]))
                share_max = float(sum(c.n for c in r if c.n >= args.n) / sum(c.n for c in r))
                print(f"{b:>8}: passes/input {ps:,.0f} vs Cohen {pa:,.0f} → {pa / ps:.2f}× fewer; "
                      f"max |Δ| {gap:.1f} points; ACR {average_certified_radius(r):.4f} vs "
                      f"{average_certified_radius(cohen):.4f}; {100 * at_max:.0f}% of inputs ran to n "
                      f"({100 * share_max:.0f}% of our passes)")
                row.update({f"passes_{b}": ps, f"ratio_{b}": pa / ps, f"gap_points_{b}": gap,
                            f"acr_{b}": average_certified_radius(r)})
            row["acr_cohen"] = average_certified_radius(cohen)
            ps_l = row["passes_looks"]
            print(f"  floors (mean per input, to reach Cohen's level): all-success {f_all:,.0f} "
                  f"(→ at most {pa / (100 + f_all):.1f}×), clairvoyant fixed-n CP {f_cp:,.0f} "
                  f"(→ at most {pa / (100 + f_cp):.1f}×); forced share of our passes: "
                  f"{100 * (100 + f_all) / ps_l:.0f}% / {100 * (100 + f_cp) / ps_l:.0f}%")
            configs.append(row)
        wall.setdefault("anchor", anchor_s)
    first = configs[0]
    print(json.dumps({"name": "vision_sequential", "ours_s": wall["ours_looks"], "anchor_s": wall["anchor"],
                      "ratio": wall["anchor"] / wall["ours_looks"], "pass_ratio": first["ratio_looks"],
                      "passes_cohen": first["passes_cohen"], "passes_sequential": first["passes_looks"],
                      "worst_curve_gap_points": first["gap_points_looks"], "inputs": len(xs),
                      "configs": configs}))


if __name__ == "__main__":
    main()
