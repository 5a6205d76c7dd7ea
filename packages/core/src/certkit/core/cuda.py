"""CUDA availability. The CUDA kernels live in a separate module, ``certkit.core._cuda``,
built only with ``CERTKIT_CUDA=1`` (CMake option ``CERTKIT_CUDA=ON``) when nvcc is found."""

from __future__ import annotations

from typing import Any

from certkit.core._ext import cuda_ext


class CudaUnavailableError(RuntimeError):
    """Raised by GPU entry points when certkit-core was built without CUDA."""


def is_built() -> bool:
    """True when the CUDA extension module was compiled and imports."""
    return cuda_ext is not None


def is_available() -> bool:
    """True when the CUDA module is built and sees at least one device."""
    return cuda_ext is not None and int(cuda_ext._build_info()["device_count"]) > 0


def require() -> Any:
    """The CUDA extension module, or a clear error saying how to get it."""
    if cuda_ext is None:
        raise CudaUnavailableError(
            "certkit-core was built without CUDA: rebuild with CERTKIT_CUDA=1 "
            "(`CERTKIT_CUDA=1 bash tools/build_core.sh`) on a machine with nvcc"
        )
    return cuda_ext
