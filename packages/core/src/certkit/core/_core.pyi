"""Type stubs for the compiled extension certkit.core._core (CPU).

Each op family under cpp/src/<op>/ is a submodule; the user-facing API with argument
checking is in certkit.core.{rng, votes, stats, ...}. Ops without a typed entry below are
reachable through the module-level ``__getattr__``.
"""

from typing import Any

import numpy as np
import numpy.typing as npt

class _Rng:
    @staticmethod
    def fill(out: npt.NDArray[np.floating[Any]], seed: int, streams: npt.NDArray[np.uint64],
             offsets: npt.NDArray[np.uint64], dist: int, a: float, b: float) -> None:
        """out: (B, M) float32/float64, C-contiguous; row b = stream (seed, streams[b]) from offsets[b].
        dist: 0 normal (a + b·N), 1 uniform (a + (b-a)·U), 2 laplace (a + b·L)."""
    @staticmethod
    def fill_bits(out: npt.NDArray[np.uint32], seed: int, streams: npt.NDArray[np.uint64],
                  offsets: npt.NDArray[np.uint64]) -> None:
        """out: (B, M) uint32 raw Philox words."""

class _Votes:
    @staticmethod
    def top_two_counts(labels: npt.NDArray[np.int64], num_classes: int
                       ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """labels: (B, N) → counts (B, 2), classes (B, 2)."""
    @staticmethod
    def top_two_from_hist(counts: npt.NDArray[np.int64
                          ]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """counts: (B, C) → counts (B, 2), classes (B, 2)."""

rng: _Rng
votes: _Votes

def _build_info() -> dict[str, Any]: ...
def _set_num_threads(n: int) -> None: ...
def _set_simd(name: str) -> bool:
    """Run the kernels of SIMD variant ``name`` ('baseline', 'avx2', 'avx512') from now on;
    False (nothing changes) when not compiled in or not supported by the CPU."""
def _blas_preferred(path: str) -> None: ...
def _blas_info() -> str: ...
def _simd_probe() -> str: ...
def __getattr__(name: str) -> Any: ...
