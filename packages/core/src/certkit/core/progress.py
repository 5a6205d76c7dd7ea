"""Progress bars for loops over inputs, episodes or queries (tqdm).

Bars show the rate, the ETA and, with ``unit="sample"``, samples per second. They stay
quiet when ``quiet`` is set, when ``CERTKIT_QUIET=1``, or when stderr is not a terminal.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_QUIET = False


def set_quiet(quiet: bool) -> None:
    """Silence (or re-enable) every certkit progress bar in this process."""
    global _QUIET
    _QUIET = bool(quiet)


def is_quiet() -> bool:
    return _QUIET or os.environ.get("CERTKIT_QUIET") == "1" or not sys.stderr.isatty()


def progress(it: Iterable[T], *, total: int | None = None, desc: str = "", unit: str = "it",
             quiet: bool | None = None, **kwargs: Any) -> Iterator[T]:
    """Wrap an iterable in a tqdm bar unless quiet (see module docstring)."""
    if quiet is None:
        quiet = is_quiet()
    if quiet:
        yield from it
        return
    from tqdm.auto import tqdm

    yield from tqdm(it, total=total, desc=desc, unit=unit, dynamic_ncols=True, **kwargs)


class Counter:
    """A manual bar: ``with Counter(total, desc, unit="sample") as c: c.update(k)``."""

    def __init__(self, total: int | None, desc: str = "", unit: str = "it",
                 quiet: bool | None = None) -> None:
        self._bar: Any = None
        if not (is_quiet() if quiet is None else quiet):
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=True, dynamic_ncols=True)

    def update(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def __enter__(self) -> Counter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()
