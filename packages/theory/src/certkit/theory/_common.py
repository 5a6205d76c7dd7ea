"""Shared pieces of the theory modules: the run record, argument checks, plotting helpers.

Every paper module exposes ``closed_form(...)``, ``simulate(..., seed)``, ``plot(...)``,
``check(mode)`` and ``run(paper_mode, seed) -> TheoryRun``. ``check`` raises
:class:`TheoryCheckError` (an ``AssertionError``) when the closed form and the simulation
disagree by more than the Monte-Carlo (or numerical) error, and returns the numbers it compared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from certkit.core.report import Figure, figure_from_matplotlib, figure_panels, use_agg
from certkit.core.validation import check_finite_scalar, check_int


class TheoryCheckError(AssertionError):
    """Closed form and simulation disagree beyond the Monte-Carlo error."""


@dataclass
class TheoryRun:
    """The output of one paper module's ``run``.

    rows: the headline table (one dict per row, same keys in every row).
    figures: PNG plots.
    summary: headline numbers (what ``check`` compared, what the report shows).
    paper_values: values the paper reports, where it gives them (else empty).
    """

    paper: str
    title: str
    citation: str
    rows: list[dict[str, Any]]
    figures: list[Figure] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    paper_values: dict[str, Any] = field(default_factory=dict)
    mode: str = "quick"


def check_mode(mode: str) -> str:
    if mode not in ("quick", "paper"):
        raise ValueError(f"mode: expected 'quick' or 'paper', got {mode!r}")
    return mode


def check_range(value: Any, name: str, low: float, high: float, *, low_open: bool = False,
                high_open: bool = False) -> float:
    """A finite scalar in [low, high] (ends optionally open); the error names ``name``."""
    v = check_finite_scalar(value, name)
    bad_low = v <= low if low_open else v < low
    bad_high = v >= high if high_open else v > high
    if bad_low or bad_high:
        lb = "(" if low_open else "["
        hb = ")" if high_open else "]"
        raise ValueError(f"{name}: expected a value in {lb}{low}, {high}{hb}, got {value!r}")
    return v


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    r = math.isqrt(n)
    return all(n % k for k in range(3, r + 1, 2))


def check_prime(p: Any, name: str = "p") -> int:
    v = check_int(p, name, minimum=2)
    if not is_prime(v):
        raise ValueError(f"{name}: expected a prime number, got {v}")
    return v


def assert_close(name: str, closed: float, simulated: float, tol: float) -> dict[str, float]:
    """Raise TheoryCheckError unless |closed - simulated| <= tol; return the comparison."""
    gap = abs(float(closed) - float(simulated))
    if not gap <= tol:
        raise TheoryCheckError(
            f"{name}: closed form {closed:.6g} vs simulation {simulated:.6g} "
            f"differ by {gap:.3g} > tolerance {tol:.3g}"
        )
    return {"closed_form": float(closed), "simulated": float(simulated), "tol": float(tol)}


def new_figure(ncols: int = 1, width: float = 4.2, height: float = 3.2) -> tuple[Any, Any]:
    use_agg()
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, axes[0]


def to_png(fig: Any, name: str, caption: str) -> Figure:
    """The figure as one PNG; a multi-panel figure also gets one image per panel
    (``Figure.panels``), which the report page shows so each panel is readable at 100% zoom."""
    panels = figure_panels(fig, name, caption, dpi=160, close=False) if len(fig.axes) > 1 else []
    out = figure_from_matplotlib(fig, name, caption, dpi=90)
    if len(panels) > 1:
        out.panels = panels
    return out
