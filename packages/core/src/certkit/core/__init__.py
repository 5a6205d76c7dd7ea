"""certkit.core: the Python face of certkit's compiled core.

Counter-based sampling (:mod:`certkit.core.rng`), certificate statistics
(:mod:`certkit.core.stats`), vote counting (:mod:`certkit.core.votes`), argument checks
shared by every package (:mod:`certkit.core.validation`) and, behind the ``torch`` extra,
bound propagation (:mod:`certkit.core.bounds`).
"""

from __future__ import annotations

import os
from typing import Any

from certkit.core import cuda, stats, validation
from certkit.core._ext import core_ext
from certkit.core.cuda import CudaUnavailableError
from certkit.core.rng import (
    fill_gaussian,
    fill_laplace,
    fill_uniform,
    gaussian_noise,
    gaussian_rows,
    laplace_noise,
    random_bits,
    uniform_noise,
)
from certkit.core.version import __version__
from certkit.core.votes import top_two_counts, top_two_from_counts


def build_info() -> dict[str, Any]:
    """What the compiled core was built with.

    Keys: ``version``, ``compiler``, ``flags``, ``build_type``, ``openmp`` (bool),
    ``openmp_threads``, ``simd`` (e.g. ``"avx2+fma"``), ``ops`` (compiled op families),
    ``cuda`` (bool: the CUDA module is built), ``cuda_arch`` (list, empty without CUDA),
    ``cuda_devices``.
    """
    info: dict[str, Any] = dict(core_ext._build_info())
    info["python_version"] = __version__
    if cuda.is_built():
        ci = cuda.require()._build_info()
        info["cuda"] = True
        info["cuda_arch"] = [a for a in str(ci["cuda_archs"]).split(",") if a]
        info["cuda_runtime"] = int(ci["cuda_runtime"])
        info["cuda_devices"] = int(ci["device_count"])
    else:
        info["cuda"] = False
        info["cuda_arch"] = []
        info["cuda_devices"] = 0
    return info


def set_num_threads(n: int) -> None:
    """Set the number of OpenMP threads the compiled kernels use (process-wide)."""
    n = validation.check_int(n, "n", minimum=1)
    core_ext._set_num_threads(n)


if "CERTKIT_NUM_THREADS" in os.environ:  # pragma: no cover - environment dependent
    set_num_threads(int(os.environ["CERTKIT_NUM_THREADS"]))

__all__ = [
    "CudaUnavailableError",
    "__version__",
    "build_info",
    "cuda",
    "fill_gaussian",
    "fill_laplace",
    "fill_uniform",
    "gaussian_noise",
    "gaussian_rows",
    "laplace_noise",
    "random_bits",
    "set_num_threads",
    "stats",
    "top_two_counts",
    "top_two_from_counts",
    "uniform_noise",
    "validation",
]
