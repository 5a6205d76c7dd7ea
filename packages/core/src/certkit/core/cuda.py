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


def fill_gaussian_(tensor: Any, sigma: float = 1.0, seed: int = 0, offset: int = 0, *,
                   stream: int = 0, mean: float = 0.0) -> Any:
    """Fill a contiguous float32 CUDA tensor in place with the same N(mean, σ²) draws that
    :func:`certkit.core.fill_gaussian` writes on the CPU (bit-identical: same Philox stream
    and float32 transform). tensor: any shape, ``torch.float32``, on a CUDA device."""
    import numpy as np

    from certkit.core.validation import check_finite_scalar, check_int, check_seed, check_sigma

    ext = require()
    if not getattr(tensor, "is_cuda", False):
        raise ValueError("tensor: expected a CUDA tensor (use certkit.core.fill_gaussian on CPU)")
    if str(tensor.dtype) != "torch.float32":
        raise TypeError(f"tensor: expected torch.float32, got {tensor.dtype}")
    if not tensor.is_contiguous():
        raise ValueError("tensor: expected a contiguous tensor")
    sigma = check_sigma(sigma)
    seed = check_seed(seed)
    offset = check_int(offset, "offset", minimum=0)
    stream = check_seed(stream, "stream")
    ext.rng.fill_f32(int(tensor.data_ptr()), 1, int(tensor.numel()), seed,
                     np.array([stream], np.uint64), np.array([offset], np.uint64), 0,
                     check_finite_scalar(mean, "mean"), sigma)
    return tensor
