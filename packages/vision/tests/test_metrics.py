"""Certified accuracy, ACR and the plot against naive references."""

from __future__ import annotations

import numpy as np
import pytest

from certkit.core.report import use_agg
from certkit.vision.smoothing.metrics import (
    average_certified_radius,
    certified_accuracy,
    plot_certified_accuracy,
    radii_correct,
)
from certkit.vision.smoothing.smooth import Certificate


def _rows(seed: int = 0, n: int = 50) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = int(rng.integers(0, 3))
        pred = int(rng.integers(-1, 3))
        rows.append({"idx": i, "label": label, "prediction": pred,
                     "radius": float(rng.uniform(0, 1)) if pred >= 0 else 0.0})
    return rows


def test_certified_accuracy_matches_naive_loop() -> None:
    rows = _rows()
    radii = [0.0, 0.1, 0.5, 0.99, 2.0]
    expect = [sum(1 for r in rows if r["prediction"] == r["label"] and r["radius"] >= x) / len(rows)
              for x in radii]
    np.testing.assert_allclose(certified_accuracy(rows, radii), expect)
    acr = sum(r["radius"] for r in rows if r["prediction"] == r["label"]) / len(rows)
    assert average_certified_radius(rows) == pytest.approx(acr)


def test_accepts_certificates_and_correct_field() -> None:
    c = [Certificate(idx=0, prediction=1, radius=0.5, p_lower=0.9, count=9, n=10, n0=1, seconds=0,
                     sigma=0.25, alpha=0.001, label=1, correct=True),
         Certificate(idx=1, prediction=-1, radius=0.0, p_lower=0.4, count=4, n=10, n0=1, seconds=0,
                     sigma=0.25, alpha=0.001, label=1, correct=False)]
    np.testing.assert_allclose(certified_accuracy(c, [0.0, 0.5, 0.6]), [0.5, 0.5, 0.0])
    rad, ok = radii_correct(c)
    assert ok.tolist() == [True, False] and rad.tolist() == [0.5, 0.0]


def test_bad_results() -> None:
    with pytest.raises(ValueError, match="empty"):
        certified_accuracy([], [0.0])
    with pytest.raises(ValueError, match="radius"):
        certified_accuracy([{"prediction": 1, "label": 1}], [0.0])
    with pytest.raises(ValueError, match="correct"):
        average_certified_radius([{"radius": 0.1}])
    with pytest.raises(ValueError, match="radii"):
        certified_accuracy(_rows(), [float("nan")])


def test_plot_one_curve_per_sigma() -> None:
    use_agg()
    fig = plot_certified_accuracy({"σ = 0.25": _rows(0), "σ = 0.5": _rows(1)})
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 2
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["σ = 0.25", "σ = 0.5"]
    with pytest.raises(ValueError, match="curves"):
        plot_certified_accuracy({})


def test_grid_acr_rounds_radii_down_to_the_grid() -> None:
    from certkit.vision.smoothing.metrics import grid_acr

    rows = [{"radius": r, "correct": c} for r, c in
            [(0.1, True), (0.3, True), (0.6, False), (1.2, True), (0.0, False), (0.5, True)]]
    grid = [0.0, 0.25, 0.5, 1.0]
    naive = np.mean([max([g for g in grid if g <= r["radius"]], default=0.0) if r["correct"] else 0.0
                     for r in rows])
    assert grid_acr(rows, grid) == pytest.approx(naive)
    ca = certified_accuracy(rows, grid)
    steps = np.diff(np.concatenate([[0.0], grid]))
    assert grid_acr(rows, grid) == pytest.approx(float((steps * ca).sum()))  # a function of the curve only
    with pytest.raises(ValueError, match="grid"):
        grid_acr(rows, [-1.0])
