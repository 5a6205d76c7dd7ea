"""Report parts of randomized smoothing for ``certkit report``: certified-accuracy curves
and ACR (one per σ), and sequential vs fixed-n certification. Assembled into the vision
section by :mod:`certkit.vision.report`."""

from __future__ import annotations

from typing import Any

import numpy as np

from certkit.core.report import Section, Table, figure_from_matplotlib

RADII = [0.0, 0.25, 0.5, 0.75, 1.0]


def curves_part(models: dict[float, Any], x: Any, y: Any, cfg: dict[str, Any], *, seed: int,
                num_classes: int = 10, data_name: str = "digits", clean: tuple[Any, Any] | None = None) -> Section:
    """Cohen et al. (2019) certificates of ``models`` (σ → base classifier) on inputs
    x (N, C, H, W) with labels y (N,): one table row and one curve per σ.
    ``clean``: (x, y) on which the base classifier's clean accuracy is measured (default x, y)."""
    from certkit.vision.data.models import accuracy
    from certkit.vision.smoothing.metrics import (
        average_certified_radius,
        certified_accuracy,
        plot_certified_accuracy,
    )
    from certkit.vision.smoothing.smooth import Smooth

    cx, cy = clean if clean is not None else (x, y)
    curves: dict[str, list[Any]] = {}
    rows = []
    for sigma, model in models.items():
        certs = Smooth(model, num_classes, sigma).certify_batch(x, n0=100, n=cfg["n"], alpha=0.001,
                                                                batch_size=2000, labels=y, seed=seed)
        curves[f"σ = {sigma:g}"] = certs
        acc = certified_accuracy(certs, RADII)
        rows.append([f"{sigma:g}", round(accuracy(model, cx, cy), 4),
                     *[round(float(a), 3) for a in acc], round(average_certified_radius(certs), 4)])
    fig = plot_certified_accuracy(curves, np.linspace(0, 1.6, 200),
                                  title=f"{data_name}, n = {cfg['n']:,}, α = 0.001")
    summary: dict[str, Any] = {}
    for sigma in models:
        summary[f"certified_accuracy_r0.5_sigma{sigma:g}"] = float(certified_accuracy(curves[f"σ = {sigma:g}"],
                                                                                      [0.5])[0])
        summary[f"acr_sigma{sigma:g}"] = average_certified_radius(curves[f"σ = {sigma:g}"])
    return Section(
        domain="vision", title="curves", summary=summary,
        tables=[Table(f"Randomized smoothing on {data_name}",
                      ["σ", "clean acc (base)", *[f"r={r:g}" for r in RADII], "ACR"], rows,
                      f"{len(x)} test inputs, n0 = 100, n = {cfg['n']:,}, α = 0.001.",
                      n=len(x), of="test inputs")],
        figures=[figure_from_matplotlib(fig, "vision_certified_accuracy",
                                        "Certified accuracy vs ℓ2 radius (Cohen et al. 2019), one curve per σ.")])


def sequential_part(model: Any, sigma: float, x: Any, y: Any, cfg: dict[str, Any], *, seed: int,
                    num_classes: int = 10) -> Section:
    """Sequential (anytime-valid) vs Cohen's fixed-n certification of one smoothed model on
    x (N, C, H, W), y (N,): forward passes, ACR and the largest gap between the curves."""
    import matplotlib.pyplot as plt

    from certkit.vision.smoothing.metrics import (
        average_certified_radius,
        certified_accuracy,
        grid_acr,
    )
    from certkit.vision.smoothing.smooth import Smooth

    smooth = Smooth(model, num_classes, sigma)
    grid = np.round(np.arange(0.0, sigma * 3.5, 0.25), 6).tolist()
    fixed = smooth.certify_batch(x, n0=100, n=cfg["seq_n"], batch_size=2000, labels=y, seed=seed)
    seq = smooth.certify_batch(x, n0=100, n=cfg["seq_n"], batch_size=2000, labels=y, seed=seed,
                               mode="sequential", radius_target=grid)
    ca, cs = certified_accuracy(fixed, grid), certified_accuracy(seq, grid)
    pf = float(np.mean([c.forward_passes for c in fixed]))
    ps = float(np.mean([c.forward_passes for c in seq]))
    gap = float(np.max(np.abs(ca - cs)) * 100)
    table = Table("Sequential certification (anytime-valid bound) vs Cohen's fixed n",
                  ["method", "forward passes / input", "ACR on the grid", "ACR", "max curve gap (points)"],
                  [["Cohen, fixed n", round(pf), round(grid_acr(fixed, grid), 4),
                    round(average_certified_radius(fixed), 4), 0.0],
                   ["sequential", round(ps), round(grid_acr(seq, grid), 4), "-", round(gap, 1)]],
                  f"σ = {sigma}, {len(x)} inputs, max n = {cfg['seq_n']:,}, radius grid step 0.25; "
                  f"{pf / ps:.1f}× fewer forward passes. The sequential run certifies each input only up "
                  "to the grid cell its radius falls in, so its ACR is compared over the grid (radii "
                  "rounded down to the grid, for both runs); a plain ACR of it would not be comparable.")
    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    ax.step(grid, ca, where="post", label=f"Cohen (n = {cfg['seq_n']:,})")
    ax.step(grid, cs, where="post", linestyle="--", label=f"sequential ({ps:,.0f} passes/input)")
    ax.set_xlabel("radius (ℓ2)")
    ax.set_ylabel("certified accuracy")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    return Section(
        domain="vision", title="sequential",
        summary={"sequential_pass_reduction": pf / ps, "sequential_max_curve_gap_points": gap,
                 "sequential_grid_acr": grid_acr(seq, grid), "cohen_grid_acr": grid_acr(fixed, grid)},
        tables=[table],
        figures=[figure_from_matplotlib(fig, "vision_sequential", "Sequential vs fixed-n certification.")])
