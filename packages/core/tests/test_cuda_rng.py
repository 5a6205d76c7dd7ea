"""The CUDA sampler gives the CPU sampler's bits (runs only where CUDA is built and a GPU
is visible; CI has neither and skips)."""

from __future__ import annotations

import numpy as np
import pytest

import certkit.core as ck
from certkit.core import cuda

pytestmark = pytest.mark.gpu


@pytest.mark.skipif(not cuda.is_available(), reason="certkit-core built without CUDA or no GPU")
def test_cuda_fill_bit_identical_to_cpu() -> None:
    torch = pytest.importorskip("torch")
    t = torch.empty(1_000_003, device="cuda")
    for offset, stream in [(0, 0), (7, 3), (2**33 + 1, 2**40)]:
        cuda.fill_gaussian_(t, 0.5, seed=99, offset=offset, stream=stream)
        cpu = ck.gaussian_noise(t.numel(), 0.5, 99, offset, stream=stream)
        np.testing.assert_array_equal(t.cpu().numpy().view(np.uint32), cpu.view(np.uint32))


def test_cuda_entry_point_errors_clearly_without_cuda() -> None:
    if cuda.is_built():
        pytest.skip("CUDA module is built here")
    with pytest.raises(ck.CudaUnavailableError, match="built without CUDA"):
        cuda.fill_gaussian_(object())
