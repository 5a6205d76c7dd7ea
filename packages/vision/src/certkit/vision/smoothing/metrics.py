"""Certified-accuracy curves, the average certified radius, and the paper-style plot.

Certified accuracy at radius r (Cohen et al. 2019, arXiv 1902.02918, Sec. 4): the fraction
of test inputs that the smoothed classifier classifies *correctly* with a certified radius
≥ r (abstentions count as wrong). The average certified radius, ACR (Zhai et al. 2020,
MACER, arXiv 2001.02378), is the mean over inputs of radius·1[correct].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from certkit.core.validation import as_float_array

__all__ = ["average_certified_radius", "certified_accuracy", "grid_acr", "plot_certified_accuracy", "radii_correct"]


def radii_correct(results: Sequence[Any]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """(radius, correct) arrays from Certificates or their JSON rows (dicts).

    An input counts as correct when its prediction equals its label (abstain: never).
    Rows need ``radius`` and either ``correct`` or both ``prediction`` and ``label``.
    """
    radius = np.empty(len(results))
    correct = np.zeros(len(results), dtype=bool)
    for i, r in enumerate(results):
        row = r if isinstance(r, Mapping) else r.as_row()
        if "radius" not in row:
            raise ValueError(f"results[{i}]: missing 'radius'")
        radius[i] = float(row["radius"])
        if row.get("correct") is not None:
            correct[i] = bool(row["correct"])
        elif row.get("label") is not None and "prediction" in row:
            correct[i] = int(row["prediction"]) == int(row["label"]) and int(row["prediction"]) >= 0
        else:
            raise ValueError(f"results[{i}]: needs 'correct' or 'prediction' and 'label'")
    if np.isnan(radius).any():
        raise ValueError("results: radius contains NaN")
    return radius, correct


def certified_accuracy(results: Sequence[Any], radii: Any) -> npt.NDArray[np.float64]:
    """Certified accuracy at each radius. radii: (R,) → (R,) fractions in [0, 1]."""
    r = as_float_array(radii, "radii").reshape(-1)
    if len(results) == 0:
        raise ValueError("results: empty")
    rad, ok = radii_correct(results)
    return np.asarray([(ok & (rad >= x)).mean() for x in r], dtype=np.float64)


def average_certified_radius(results: Sequence[Any]) -> float:
    """ACR = mean of radius·1[correct] over all inputs (abstentions contribute 0)."""
    if len(results) == 0:
        raise ValueError("results: empty")
    rad, ok = radii_correct(results)
    return float(np.where(ok, rad, 0.0).mean())


def grid_acr(results: Sequence[Any], grid: Any) -> float:
    """ACR over a radius grid: each correct input's radius rounded down to the largest grid
    radius it reaches (0 below the smallest), averaged over all inputs. It equals
    Σ_k (r_k − r_{k−1})·CA(r_k) (r_0 = 0), so it depends only on the certified-accuracy curve
    at the grid radii: the ACR to compare a sequential run (which decides each radius only
    between two grid radii) with a fixed-n run on the same grid."""
    g = np.sort(as_float_array(grid, "grid").reshape(-1))
    if g.size == 0 or g[0] < 0:
        raise ValueError(f"grid: expected radii >= 0, got {grid!r}")
    if len(results) == 0:
        raise ValueError("results: empty")
    rad, ok = radii_correct(results)
    k = np.searchsorted(g, rad, side="right") - 1
    floor = np.where(k >= 0, g[np.clip(k, 0, None)], 0.0)
    return float(np.where(ok, floor, 0.0).mean())


def plot_certified_accuracy(curves: Mapping[str, Sequence[Any]], radii: Any = None, *,
                            ax: Any = None, title: str = "") -> Any:
    """Certified accuracy vs radius, one step curve per entry of ``curves`` (e.g.
    ``{"σ = 0.25": results, "σ = 0.5": results}``), as in Cohen et al.'s Figure 6.
    radii: the x grid (default 0 → largest radius, 200 points). Returns the figure."""
    import matplotlib.pyplot as plt

    if not curves:
        raise ValueError("curves: expected at least one curve")
    if radii is None:
        top = max(float(radii_correct(v)[0].max(initial=0.0)) for v in curves.values())
        radii = np.linspace(0.0, max(top, 1e-3) * 1.05, 200)
    grid = as_float_array(radii, "radii")
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.6, 3.4))
    else:
        fig = ax.figure
    for name, res in curves.items():
        ax.plot(grid, certified_accuracy(res, grid), label=name, drawstyle="steps-post")
    ax.set_xlabel("radius (ℓ2)")
    ax.set_ylabel("certified accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(float(grid[0]), float(grid[-1]))
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    if title:
        ax.set_title(title)
    return fig
