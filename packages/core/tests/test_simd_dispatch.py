"""Run-time SIMD dispatch (cpp/src/common/dispatch.h): every compiled variant this CPU runs
gives the sampler's bits exactly and the other kernels to their documented tolerance.

Each test switches the running variant in-process (``_core._set_simd``) and compares with the
baseline build of the same kernels. A build with one variant (``CERTKIT_ARCH=native``) skips.
The qemu tests in test_simd_qemu.py run the same checks on emulated older CPUs.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

import certkit.core as ck
from certkit.core import spectral, stats
from certkit.core._ext import core_ext

INFO = ck.build_info()
RUNNABLE = [v for v in INFO["simd_variants"] if v in INFO["simd_cpu"]]
OTHERS = [v for v in RUNNABLE if v != "baseline"]
needs_variants = pytest.mark.skipif(
    not OTHERS, reason=f"one runnable SIMD variant here ({INFO['simd']}): nothing to compare")


@pytest.fixture
def restore_simd() -> Iterator[None]:
    before = ck.build_info()["simd"]
    yield
    if before != "native":
        assert core_ext._set_simd(before)


def _under(variant: str, fn: Callable[[], Any]) -> Any:
    assert core_ext._set_simd(variant), variant
    return fn()


def _baseline_and(variant: str, fn: Callable[[], dict[str, Any]]) -> Iterator[tuple[str, Any, Any]]:
    """(name, baseline value, variant value) for each output of fn."""
    ref = _under("baseline", fn)
    got = _under(variant, fn)
    for name, r in ref.items():
        yield name, r, got[name]


def _samples() -> dict[str, np.ndarray]:
    # odd sizes and offsets: partial Philox blocks and tiles, several threads
    return {
        "gauss32": ck.gaussian_noise((3, 100_003), 0.37, seed=11, offset=5),
        "gauss32_rows": ck.gaussian_rows((7, 4097), 1.5, 3, np.arange(7), np.arange(7) * 4097 + 1),
        "uniform32": ck.uniform_noise(70_001, -2.0, 3.0, seed=5, offset=3),
        "laplace32": ck.laplace_noise(50_001, 0.8, seed=9, offset=2),
        "gauss64": ck.gaussian_noise(30_001, 2.0, seed=1, offset=1, dtype=np.float64),
        "uniform64": ck.uniform_noise(20_001, 0.0, 1.0, seed=2, dtype=np.float64),
        "laplace64": ck.laplace_noise(20_001, 1.0, seed=4, offset=7, dtype=np.float64),
        "bits": ck.random_bits(10_001, seed=8, offset=3),
    }


@needs_variants
@pytest.mark.parametrize("variant", OTHERS)
def test_sampler_bit_identical_across_variants(variant: str, restore_simd: None) -> None:
    for name, r, g in _baseline_and(variant, _samples):
        assert g.dtype == r.dtype
        assert np.array_equal(g.view(np.uint8), r.view(np.uint8)), f"{name} differs ({variant})"


def _stats() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    n = rng.integers(1, 100_000, 400)
    k = (rng.random(400) * (n + 1)).astype(np.int64)
    p = np.concatenate([rng.random(200), 10.0 ** -rng.uniform(1, 300, 50)])
    return {
        "cp_lower": stats.clopper_pearson(k, n, 0.001, "lower"),
        "cp_two": stats.clopper_pearson(k, n, 0.05, "two-sided"),
        "ppf": stats.norm_ppf(p),
        "cdf": stats.norm_cdf(np.linspace(-30, 10, 301)),
        "binom": stats.binom_test_two_sided(k[:100], n[:100], 0.3),
    }


@needs_variants
@pytest.mark.parametrize("variant", OTHERS)
def test_stats_agree_across_variants(variant: str, restore_simd: None) -> None:
    for name, r, g in _baseline_and(variant, _stats):
        # stats.h documents ~1e-15 relative; FMA contraction moves the last bits only
        np.testing.assert_allclose(g, r, rtol=1e-13, atol=0, err_msg=name)


def _bounds(dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    sizes = [40, 64, 48, 10]
    layers: list[tuple[Any, ...]] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        meta = np.array([a, b] + [0] * 10 + [0, 0], np.int64)
        meta[10:12] = 1
        W = (rng.standard_normal((b, a)) / np.sqrt(a)).astype(dtype)
        layers.append((0, W, rng.standard_normal(b).astype(dtype), meta))
        if i < len(sizes) - 2:
            layers.append((2, None, None, np.array([b, b] + [0] * 12, np.int64)))
    # 13 examples: two full 6-row IBP tiles (the batched register tile, which has its own
    # narrow-vector code without AVX-512) and a 1-row tail
    x = rng.standard_normal((13, sizes[0])).astype(dtype)
    C = np.broadcast_to(np.eye(sizes[-1], dtype=dtype), (13, sizes[-1], sizes[-1])).copy()
    out = [core_ext.bounds.compute(layers, x - 0.05, x + 0.05, C, m) for m in (0, 1, 2)]
    return np.stack([o[0] for o in out]), np.stack([o[1] for o in out])


@needs_variants
@pytest.mark.parametrize("variant", OTHERS)
@pytest.mark.parametrize(("dtype", "rtol"), [(np.float32, 1e-4), (np.float64, 1e-11)])
def test_bound_kernels_agree_across_variants(variant: str, dtype: Any, rtol: float,
                                             restore_simd: None) -> None:
    lo_ref, hi_ref = _under("baseline", lambda: _bounds(dtype))
    lo, hi = _under(variant, lambda: _bounds(dtype))
    scale = np.abs(hi_ref - lo_ref).max()
    np.testing.assert_allclose(lo, lo_ref, rtol=0, atol=rtol * scale)
    np.testing.assert_allclose(hi, hi_ref, rtol=0, atol=rtol * scale)


def _spectral() -> dict[str, Any]:
    pts = np.random.default_rng(2).standard_normal((300, 3))
    idx, d2 = spectral.knn(pts, 8)
    indptr, indices, data = spectral.laplacian(pts, 8, weight="gaussian")
    w, V = spectral.eigsh_csr(indptr, indices, data, 12)
    wd, _ = spectral.eigh(np.diag(np.arange(40.0)) + 0.01)
    return {"knn": idx, "d2": d2, "lap": data, "w": w, "V": np.abs(V), "wd": wd}


@needs_variants
@pytest.mark.parametrize("variant", OTHERS)
def test_spectral_ops_agree_across_variants(variant: str, restore_simd: None) -> None:
    for name, r, g in _baseline_and(variant, _spectral):
        if name == "knn":
            assert np.array_equal(g, r)
        else:
            np.testing.assert_allclose(g, r, rtol=0, atol=1e-9, err_msg=name)


def test_build_info_reports_the_running_variant() -> None:
    assert INFO["simd"] == "native" or INFO["simd"] in INFO["simd_variants"]
    assert INFO["simd"] == "native" or INFO["simd"] in INFO["simd_cpu"]
    assert "baseline" in INFO["simd_variants"]
    assert set(INFO["simd_march"]) == set(INFO["simd_variants"])
    if INFO["simd"] != "native":  # the best variant runs unless CERTKIT_SIMD says otherwise
        assert INFO["simd_requested"] or INFO["simd"] == RUNNABLE[-1]


@pytest.mark.skipif(INFO["simd"] == "native", reason="native build: no variants")
@pytest.mark.parametrize("variant", RUNNABLE)
def test_each_variant_runs_code_compiled_for_it(variant: str, restore_simd: None) -> None:
    # the kernels report the instruction set they were compiled for: a dispatch that always
    # ran baseline (which would make the bit-identity tests above vacuous) or a variant built
    # without its -march fails here
    assert core_ext._set_simd(variant)
    assert core_ext._simd_probe() == variant
    assert ck.build_info()["simd"] == variant


def test_set_simd_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="simd: expected 'baseline', 'avx2' or 'avx512'"):
        core_ext._set_simd("sse9")


def _import_with(env_value: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, CERTKIT_SIMD=env_value)
    code = "import certkit.core as c; print(c.build_info()['simd'])"
    return subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-c", code],
                          capture_output=True, text=True, env=env, timeout=120, check=False)


@pytest.mark.skipif(INFO["simd"] == "native", reason="native build: no variants")
def test_environment_forces_baseline() -> None:
    r = _import_with("baseline")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "baseline"


def test_environment_rejects_bad_value() -> None:
    r = _import_with("fastest")
    assert r.returncode != 0
    assert "CERTKIT_SIMD: expected 'baseline', 'avx2' or 'avx512'" in r.stderr


@pytest.mark.skipif("avx512" in RUNNABLE, reason="this CPU and build run avx512")
def test_environment_refuses_a_variant_the_cpu_cannot_run() -> None:
    r = _import_with("avx512")
    assert r.returncode != 0  # RuntimeWarning turned into an error
    assert "CERTKIT_SIMD=avx512: this build or CPU cannot run it" in r.stderr


# ---- the sampler's SIMD code paths (rng_cpu.cpp): the hand-written AVX2 Philox, the 256-bit
# Philox of the float64 fills, the vectorised float32 transforms of every variant. Bits: each
# variant equals the baseline where the AVX2 path's lanes carry into the high counter word
# (block 2^32 inside a group of 8) and on every tail length. Speed: the float32 Gaussian fill
# costs at most 3.5x the uniform fill of the same variant (same Philox words; 6x when the
# baseline / avx2 transforms were scalar, before -fno-trapping-math), and the avx2 Philox beats
# the baseline's (0.94x before it was hand-vectorised). Fills timed alternately in one
# process, best of 15, one thread, so the machine's load mostly cancels out.

@needs_variants
@pytest.mark.parametrize("variant", [v for v in RUNNABLE if v != "baseline"])
def test_counter_carry_and_tails_identical(variant: str, restore_simd: None) -> None:
    carry = 4 * (2**32 - 5)  # float32 element of block 2^32 - 5: the carry lands mid-group

    def draws() -> list[np.ndarray]:
        out = [ck.gaussian_noise(n, 1.0, seed=2**40 + 7, offset=carry + k, stream=3)
               for n, k in [(61, 0), (3, 1), (4 * 512 * 2 + 29, 2)]]
        out += [ck.gaussian_noise(n, 1.0, seed=5, offset=2 * (2**32 - 3), dtype=np.float64)
                for n in (1, 15, 17, 2 * 512 + 9)]
        out += [ck.random_bits(n, seed=9, offset=carry) for n in range(1, 40)]
        return out

    assert core_ext._set_simd("baseline")
    ref = draws()
    assert core_ext._set_simd(variant)
    got = draws()
    for i, (r, g) in enumerate(zip(ref, got, strict=True)):
        assert np.array_equal(r.view(np.uint8), g.view(np.uint8)), f"draw {i} differs ({variant})"


ONE_THREAD = (1 << 18) - 4  # fills under 2^18 values run on one thread


def _best_ratio(num: Callable[[], object], den: Callable[[], object], rounds: int = 15) -> float:
    tn, td = [], []
    for _ in range(rounds):
        for fn, acc in ((num, tn), (den, td)):
            t0 = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - t0)
    return min(tn) / min(td)


@needs_variants
@pytest.mark.parametrize("variant", RUNNABLE)
def test_float32_transforms_are_vectorised(variant: str, restore_simd: None) -> None:
    out = np.empty(ONE_THREAD, np.float32)
    assert core_ext._set_simd(variant)
    ratio = _best_ratio(lambda: ck.fill_gaussian(out, 1.0, 3), lambda: ck.fill_uniform(out, 0.0, 1.0, 3))
    assert ratio < 3.5, f"{variant}: gaussian float32 fill {ratio:.1f}x the uniform fill (scalar transform?)"


@needs_variants
@pytest.mark.skipif("avx2" not in RUNNABLE, reason="this CPU does not run the avx2 variant")
def test_avx2_philox_faster_than_baseline(restore_simd: None) -> None:
    out = np.empty(ONE_THREAD, np.float32)

    def under(v: str) -> Callable[[], object]:
        def run() -> object:
            assert core_ext._set_simd(v)
            return ck.fill_uniform(out, 0.0, 1.0, 3)
        return run

    ratio = _best_ratio(under("avx2"), under("baseline"))
    assert ratio < 0.8, f"avx2 uniform fill {ratio:.2f}x baseline's (Philox not vectorised for AVX2?)"
