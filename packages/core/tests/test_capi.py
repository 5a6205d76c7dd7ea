"""The C API (cpp/include/certkit/certkit.h) through ctypes: the same values as the Python
API bit for bit, and a non-zero code with a one-line message naming the argument on bad input."""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
import pytest

import certkit.core as ck
from certkit.core import stats


@pytest.fixture(scope="module")
def lib() -> ctypes.CDLL:
    path = Path(ck.get_library_dir()) / "libcertkit_core.so"
    assert path.is_file(), path
    so = ctypes.CDLL(str(path))
    so.certkit_version.restype = ctypes.c_char_p
    so.certkit_simd.restype = ctypes.c_char_p
    so.certkit_last_error.restype = ctypes.c_char_p
    so.certkit_gaussian_f32.argtypes = [ctypes.c_uint64, ctypes.c_uint64, ctypes.c_uint64,
                                        ctypes.c_float, ctypes.c_void_p, ctypes.c_int64]
    so.certkit_clopper_pearson.argtypes = [ctypes.c_int64, ctypes.c_int64, ctypes.c_double,
                                           ctypes.c_int, ctypes.c_void_p]
    return so


def test_version_and_simd(lib: ctypes.CDLL) -> None:
    assert lib.certkit_version().decode() == ck.__version__
    assert lib.certkit_simd().decode() == ck.build_info()["simd"]


@pytest.mark.parametrize(("seed", "stream", "offset", "sigma", "n"),
                         [(0, 0, 0, 1.0, 1), (7, 3, 5, 0.25, 10_001), (2**63 + 5, 2**40, 2**33 + 1, 3.0, 4099)])
def test_gaussian_equals_python(lib: ctypes.CDLL, seed: int, stream: int, offset: int, sigma: float,
                                n: int) -> None:
    out = np.empty(n, np.float32)
    assert lib.certkit_gaussian_f32(seed, stream, offset, sigma, out.ctypes.data, n) == 0
    ref = ck.gaussian_noise(n, sigma, seed, offset, np.float32, stream=stream)
    assert np.array_equal(out.view(np.uint32), ref.view(np.uint32))


def test_clopper_pearson_equals_python(lib: ctypes.CDLL) -> None:
    out = np.empty(2)
    for k, n, alpha in [(0, 1, 0.05), (990, 1000, 0.001), (5, 10, 0.5), (10**6, 10**6, 1e-9)]:
        for side, name in [(0, "lower"), (1, "upper")]:
            assert lib.certkit_clopper_pearson(k, n, alpha, side, out.ctypes.data) == 0
            assert out[0] == float(stats.clopper_pearson(k, n, alpha, name))
        assert lib.certkit_clopper_pearson(k, n, alpha, 2, out.ctypes.data) == 0
        assert np.array_equal(out, stats.clopper_pearson(k, n, alpha, "two-sided"))


def test_bad_input_gives_code_and_message(lib: ctypes.CDLL) -> None:
    buf = np.empty(4, np.float32)
    cases = [
        (lambda: lib.certkit_gaussian_f32(0, 0, 0, -1.0, buf.ctypes.data, 4), "sigma: expected"),
        (lambda: lib.certkit_gaussian_f32(0, 0, 0, float("nan"), buf.ctypes.data, 4), "sigma: expected"),
        (lambda: lib.certkit_gaussian_f32(0, 0, 0, 1.0, buf.ctypes.data, -1), "n: expected n >= 0"),
        (lambda: lib.certkit_gaussian_f32(0, 0, 0, 1.0, None, 4), "out: expected"),
        (lambda: lib.certkit_gaussian_f32(0, 0, 2**64 - 2, 1.0, buf.ctypes.data, 4), "offset: offset + n"),
        (lambda: lib.certkit_clopper_pearson(5, 4, 0.05, 0, buf.ctypes.data), "k: expected 0 <= k <= n"),
        (lambda: lib.certkit_clopper_pearson(0, 0, 0.05, 0, buf.ctypes.data), "n: expected n >= 1"),
        (lambda: lib.certkit_clopper_pearson(1, 4, 1.0, 0, buf.ctypes.data), "alpha: expected a value in (0, 1)"),
        (lambda: lib.certkit_clopper_pearson(1, 4, 0.05, 3, buf.ctypes.data), "side: expected 0"),
        (lambda: lib.certkit_clopper_pearson(1, 4, 0.05, 0, None), "out: expected"),
    ]
    for call, msg in cases:
        assert call() == 1
        err = lib.certkit_last_error().decode()
        assert err.startswith(msg), err
        assert "\n" not in err
    assert lib.certkit_gaussian_f32(0, 0, 0, 1.0, None, 0) == 0  # n = 0 writes nothing
