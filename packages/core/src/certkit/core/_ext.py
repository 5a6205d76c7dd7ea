"""Loads the compiled extension with an actionable error when it is missing."""

from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path
from types import ModuleType

try:
    from certkit.core import _core as core_ext
except ImportError as exc:  # pragma: no cover - exercised only on a broken install
    raise ImportError(
        "certkit.core's compiled extension (_core) is not built. Run `make setup` (or "
        "`bash tools/build_core.sh`) from the repository root, or `pip install certkit-core`."
    ) from exc

_simd = os.environ.get("CERTKIT_SIMD", "")
if _simd and _simd not in ("baseline", "avx2", "avx512"):
    raise ValueError(f"CERTKIT_SIMD: expected 'baseline', 'avx2' or 'avx512', got {_simd!r}")
if _simd and not core_ext._build_info()["simd_request_honoured"]:
    _info = core_ext._build_info()
    warnings.warn(
        f"CERTKIT_SIMD={_simd}: this build or CPU cannot run it (compiled "
        f"{_info['simd_variants']}, CPU runs {_info['simd_cpu']}); running {_info['simd']}",
        RuntimeWarning, stacklevel=2)


def _register_scipy_openblas() -> None:
    """Point the core at the scipy-openblas32 wheel's library (found, not imported or loaded:
    BLAS is dlopen()ed on first use; a system OpenBLAS / LAPACK is the fallback)."""
    try:
        spec = importlib.util.find_spec("scipy_openblas32")
    except (ImportError, ValueError):  # pragma: no cover - broken install
        return
    for loc in (spec.submodule_search_locations or []) if spec is not None else []:
        lib = Path(loc) / "lib" / "libscipy_openblas.so"
        if lib.is_file():
            core_ext._blas_preferred(str(lib))
            return


_register_scipy_openblas()

cuda_ext: ModuleType | None
try:
    from certkit.core import _cuda as _cuda_mod

    cuda_ext = _cuda_mod
except ImportError:
    cuda_ext = None

__all__ = ["core_ext", "cuda_ext"]
