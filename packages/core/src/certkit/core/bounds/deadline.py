"""Deadlines for long bound computations: start a step only when it can also end in time.

A deadline is a ``time.perf_counter()`` value (``None``: none). The loops of the bound code
(CROWN's intermediate row chunks, α-CROWN iterations, PGD steps, branch-and-bound batches)
cannot be interrupted inside a step, and on large networks one step takes seconds (a
resnet_4b patches chunk 2–3 s, an nn4sys PGD step over 300 inputs 1.6 s on one thread).
Checking only "is the deadline past?" before each step therefore overshoots by up to one
step. Each loop instead measures its steps and starts the next one only when
:func:`fits`: the measured cost, times :data:`SAFETY` (timing noise on a loaded machine,
a later step being somewhat longer), ends before the deadline; a loop over divisible work
(rows of a CROWN pass) takes, near the deadline, only what its measured cost says fits in
:data:`SHARE` of the time left (:func:`how_many`), so the chunks shrink as the deadline
nears and a chunk that runs several times slower than measured (a 2-core machine at load
6-10 from other work) still ends in time. A step skipped this way
leaves a sound result: bounds keep their looser earlier values (IBP, the best α-CROWN
iterate so far), a search reports ``timeout``.
"""

from __future__ import annotations

import time

SAFETY = 2.0  # a step starts only when SAFETY times its measured cost fits in the time left
SHARE = 0.25  # a chunk of divisible work takes at most this share of the time left (by its measured cost)


def fits(deadline: float | None, seconds: float | None = None) -> bool:
    """Whether a step measured to take ``seconds`` (``None``: not measured yet, then only
    "not past the deadline") can start now and end, with :data:`SAFETY` to spare, before
    ``deadline`` (a ``time.perf_counter()`` value, ``None``: no deadline)."""
    if deadline is None:
        return True
    left = deadline - time.perf_counter()
    return left > 0 and (seconds is None or SAFETY * seconds <= left)


def how_many(deadline: float | None, per_unit: float | None, want: int) -> int:
    """How many units of divisible work costing ``per_unit`` seconds each to take next:
    ``want`` when there is no deadline or no measurement yet, 0 past the deadline or when
    not even one unit fits (:func:`fits`), else at most ``want`` and as many as fit in
    :data:`SHARE` of the time left (at least one)."""
    if deadline is None:
        return want
    left = deadline - time.perf_counter()
    if left <= 0:
        return 0
    if per_unit is None or per_unit <= 0:
        return want
    if SAFETY * per_unit > left:
        return 0
    return max(1, int(min(want, SHARE * left / per_unit)))  # (left may be inf: timeout=inf)
