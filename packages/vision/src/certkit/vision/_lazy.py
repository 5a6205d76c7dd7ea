"""Lazy re-exports for the vision subpackages (PEP 562): ``import certkit.vision.smoothing``
imports neither torch nor the topic's modules until a name is used, so the ``certkit``
command starts fast while ``from certkit.vision.smoothing import Smooth`` keeps working."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, names: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` that import ``names[attr]`` (a module path)
    on first access of ``attr`` and return its attribute of the same name."""

    def __getattr__(name: str) -> Any:
        if name in names:
            return getattr(importlib.import_module(names[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *names})

    return __getattr__, __dir__
