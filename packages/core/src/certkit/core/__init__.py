"""certkit.core: the Python face of certkit's compiled core.

Counter-based sampling (:mod:`certkit.core.rng`), certificate statistics
(:mod:`certkit.core.stats`), vote counting (:mod:`certkit.core.votes`), argument checks
shared by every package (:mod:`certkit.core.validation`) and, behind the ``torch`` extra,
bound propagation (:mod:`certkit.core.bounds`).
"""

from __future__ import annotations

import os
from pathlib import Path
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
    """What the compiled core was built with, and what it runs.

    Keys: ``version``, ``compiler``, ``flags``, ``build_type``, ``openmp`` (bool),
    ``openmp_threads``, ``simd`` (the SIMD variant the kernels run: ``"baseline"``,
    ``"avx2"``, ``"avx512"``, or ``"native"`` for a ``-march=native`` build), ``simd_variants``
    (compiled in), ``simd_march`` (variant -> ``-march``), ``simd_cpu`` (variants this CPU
    runs), ``simd_requested`` (``$CERTKIT_SIMD``, ``""`` when unset), ``blas`` (the BLAS /
    LAPACK library the bound kernels and spectral ops load on first use), ``ops`` (compiled op
    families), ``cuda`` (bool: the CUDA module is built), ``cuda_arch`` (list, empty without
    CUDA), ``cuda_devices``.
    """
    info: dict[str, Any] = dict(core_ext._build_info())
    info.pop("simd_request_honoured", None)
    info["blas"] = core_ext._blas_info()
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


def get_include() -> str:
    """Directory of the C/C++ headers (``#include <certkit/certkit.h>``, ``<certkit/rng.h>``
    ...); pass it as ``-I``. The library is in :func:`get_library_dir`."""
    return str(_ext_dir() / "include")


def get_library_dir() -> str:
    """Directory of ``libcertkit_core.so`` (link with ``-L<dir> -lcertkit_core`` and an rpath
    to it, or use :func:`get_cmake_dir`)."""
    return str(_ext_dir() / "lib")


def get_cmake_dir() -> str:
    """Directory of the CMake package: ``find_package(certkit_core CONFIG REQUIRED)`` with
    ``-Dcertkit_core_DIR=<this>`` gives the target ``certkit::core``."""
    return str(_ext_dir() / "lib" / "cmake" / "certkit_core")


def _ext_dir() -> Path:
    # beside the compiled module (in an editable install the Python sources live elsewhere)
    return Path(str(core_ext.__file__)).resolve().parent


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
    "get_cmake_dir",
    "get_include",
    "get_library_dir",
    "laplace_noise",
    "random_bits",
    "set_num_threads",
    "stats",
    "top_two_counts",
    "top_two_from_counts",
    "uniform_noise",
    "validation",
]
