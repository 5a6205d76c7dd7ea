"""Shared helpers for the benchmark scripts: timing and the table + JSON line format."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from typing import Any


def _times(fn: Callable[[], Any], repeat: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def best_time(fn: Callable[[], Any], repeat: int = 5, warmup: int = 1) -> float:
    """Minimum wall time over ``repeat`` runs (the least noisy estimate on a shared machine)."""
    return min(_times(fn, repeat, warmup))


def median_time(fn: Callable[[], Any], repeat: int = 5, warmup: int = 1) -> float:
    return statistics.median(_times(fn, repeat, warmup))


def print_table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    def fmt(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    cells = [[fmt(v) for v in r] for r in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print(f"\n{title}")
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths)))
    for r in cells:
        print("  ".join(v.rjust(w) for v, w in zip(r, widths)))


def emit(name: str, ours_s: float, anchor_s: float, **extra: Any) -> None:
    """The one JSON line per comparison: ratio = anchor / ours (> 1 means we are faster)."""
    rec = {"name": name, "ours_s": round(ours_s, 6), "anchor_s": round(anchor_s, 6),
           "ratio": round(anchor_s / ours_s, 3) if ours_s > 0 else None, **extra}
    print(json.dumps(rec))
