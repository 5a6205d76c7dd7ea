"""Loads the compiled extension with an actionable error when it is missing."""

from __future__ import annotations

from types import ModuleType

try:
    from certkit.core import _core as core_ext
except ImportError as exc:  # pragma: no cover - exercised only on a broken install
    raise ImportError(
        "certkit.core's compiled extension (_core) is not built. Run `make setup` (or "
        "`bash tools/build_core.sh`) from the repository root, or `pip install certkit-core`."
    ) from exc

cuda_ext: ModuleType | None
try:
    from certkit.core import _cuda as _cuda_mod

    cuda_ext = _cuda_mod
except ImportError:
    cuda_ext = None

__all__ = ["core_ext", "cuda_ext"]
