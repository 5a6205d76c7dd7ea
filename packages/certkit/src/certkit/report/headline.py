"""Headline figures of report sections: what each summary card at the top of the page shows.

A section publishes its headline through an optional ``"headline"`` entry of the ``summary``
dict it returns (so it also lands in ``summary.json``)::

    Section(..., summary={..., "headline": {
        "label": "certified accuracy within l2 radius 0.5",   # what the figure is, plain words
        "value": 0.62,                # the figure itself
        "format": "percent",          # "percent" (value in [0, 1]) or "number" (default)
        "n": 100, "of": "test digits",  # sample size and what it counts
        "successes": 62,              # optional: a proportion k / n -> 95% Clopper-Pearson interval
        "interval": [0.5, 0.7],       # optional: an explicit interval (set "interval_method")
        "bound": "lower",             # optional: the value is itself a one-sided confidence bound
        "confidence": 0.95,           # of the interval or bound (default 0.95)
        "estimate": True,             # False: an exact count (e.g. checks passed), no interval
        "checks": [{"name": "adaptive attack stays above the certificate", "passed": True}],
        "note": "one plain sentence of context",
    }})

Every key but ``label`` and ``value`` is optional. A proportion (``successes`` and ``n``) gets
the exact two-sided Clopper-Pearson interval (Clopper & Pearson 1934) from
:func:`certkit.core.stats.clopper_pearson` at ``confidence``: for every true proportion p the
interval covers p with probability >= ``confidence``. A section without a headline still gets a
card (title, status, link); a malformed headline is reported on its card, never hidden.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from certkit.core.report import Section

_FORMATS = ("percent", "number")
_BOUNDS = ("lower", "upper")


@dataclass
class Check:
    """One soundness check a section ran (e.g. an attack that tried to break its certificate)."""

    name: str
    passed: bool


@dataclass
class Headline:
    """A section's headline figure, validated; ``interval`` is filled for proportions."""

    label: str
    value: float
    format: str = "number"
    n: int | None = None
    of: str = ""
    successes: int | None = None
    interval: tuple[float, float] | None = None
    interval_method: str = ""
    bound: str | None = None
    confidence: float = 0.95
    estimate: bool = True
    checks: list[Check] = field(default_factory=list)
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (``summary.json``'s ``headline`` of each section)."""
        return {"label": self.label, "value": self.value, "format": self.format, "n": self.n,
                "of": self.of, "successes": self.successes,
                "interval": list(self.interval) if self.interval else None,
                "interval_method": self.interval_method, "bound": self.bound,
                "confidence": self.confidence, "estimate": self.estimate,
                "checks": [{"name": c.name, "passed": c.passed} for c in self.checks],
                "note": self.note}


def proportion_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact two-sided Clopper-Pearson interval ``(lower, upper)`` for ``successes`` of ``n``."""
    from certkit.core.stats import clopper_pearson

    lo, hi = clopper_pearson(successes, n, 1.0 - confidence, side="two-sided")
    return float(lo), float(hi)


def max_halfwidth(n: int, confidence: float = 0.95) -> float:
    """The widest half-width of the two-sided Clopper-Pearson interval over every k of n: how
    far any proportion estimated from n examples may be off at that confidence."""
    import numpy as np

    from certkit.core.stats import clopper_pearson

    k = np.arange(n + 1)
    iv = clopper_pearson(k, np.full(n + 1, n), 1.0 - confidence, side="two-sided")
    return float(np.max(iv[:, 1] - iv[:, 0]) / 2.0)


def _num(d: dict[str, Any], key: str) -> float:
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ValueError(f"headline.{key}: expected a number, got {v!r}")
    return float(v)


def _count(d: dict[str, Any], key: str, minimum: int) -> int | None:
    v = d.get(key)
    if v is None:
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ValueError(f"headline.{key}: expected an integer >= {minimum}, got {v!r}")
    return v


def parse_headline(raw: Any) -> Headline:
    """Validate a section's ``summary["headline"]`` dict (see the module docstring).

    Raises ValueError naming the offending key."""
    if not isinstance(raw, dict):
        raise ValueError(f"headline: expected a dict, got {type(raw).__name__}")
    for key in ("label", "value"):
        if key not in raw:
            raise ValueError(f"headline.{key}: missing")
    label = str(raw["label"])
    value = _num(raw, "value")
    fmt = raw.get("format", "number")
    if fmt not in _FORMATS:
        raise ValueError(f"headline.format: expected one of {_FORMATS}, got {fmt!r}")
    bound = raw.get("bound")
    if bound is not None and bound not in _BOUNDS:
        raise ValueError(f"headline.bound: expected one of {_BOUNDS} or None, got {bound!r}")
    confidence = _num(raw, "confidence") if "confidence" in raw else 0.95
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"headline.confidence: expected a number in (0, 1), got {confidence!r}")
    n = _count(raw, "n", 1)
    successes = _count(raw, "successes", 0)
    interval: tuple[float, float] | None = None
    method = str(raw.get("interval_method", ""))
    if successes is not None:
        if n is None or successes > n:
            raise ValueError(f"headline.successes: expected 0 <= successes <= n, got {successes} of {n}")
        interval = proportion_interval(successes, n, confidence)
        method = method or "Clopper-Pearson"
    elif raw.get("interval") is not None:
        iv = raw["interval"]
        if (not isinstance(iv, list | tuple) or len(iv) != 2
                or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in iv)
                or not iv[0] <= iv[1]):
            raise ValueError(f"headline.interval: expected [lower, upper] with lower <= upper, got {iv!r}")
        interval = (float(iv[0]), float(iv[1]))
    estimate = raw.get("estimate", True)
    if not isinstance(estimate, bool):
        raise ValueError(f"headline.estimate: expected True or False, got {estimate!r}")
    checks = []
    for i, c in enumerate(raw.get("checks") or []):
        if not isinstance(c, dict) or "name" not in c or not isinstance(c.get("passed"), bool):
            raise ValueError(f"headline.checks[{i}]: expected {{'name': str, 'passed': bool}}, got {c!r}")
        checks.append(Check(str(c["name"]), bool(c["passed"])))
    return Headline(label=label, value=value, format=fmt, n=n, of=str(raw.get("of", "")),
                    successes=successes, interval=interval, interval_method=method, bound=bound,
                    confidence=confidence, estimate=estimate, checks=checks, note=str(raw.get("note", "")))


def headline_of(section: Section) -> tuple[Headline | None, str | None]:
    """(headline, problem): the section's parsed headline, or None and why not."""
    if section.error:
        return None, None
    raw = section.summary.get("headline") if isinstance(section.summary, dict) else None
    if raw is None:
        return None, None
    try:
        return parse_headline(raw), None
    except ValueError as exc:
        return None, str(exc)


def format_value(v: float, fmt: str) -> str:
    """``0.6234, "percent"`` -> ``"62.3%"``; numbers with 3-4 significant digits."""
    if not math.isfinite(v):
        return "n/a"
    if fmt == "percent":
        p = 100.0 * v
        return f"{p:.0f}%" if p in (0.0, 100.0) else f"{p:.1f}%"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.4g}" if abs(v) < 100 else f"{v:.1f}"


def format_interval(h: Headline) -> str:
    """The uncertainty line under a card's figure (plain words), or '' when there is none."""
    pct = f"{100 * h.confidence:.0f}%"
    if h.bound is not None:
        word = "lower" if h.bound == "lower" else "upper"
        return f"certified {word} bound, holds with {pct} confidence"
    if not h.estimate:
        return "an exact count, not an estimate"
    if h.interval is None:
        return "point estimate, no interval given"
    lo, hi = (format_value(x, h.format) for x in h.interval)
    method = f" ({h.interval_method})" if h.interval_method else ""
    return f"{pct} interval {lo} to {hi}{method}"
