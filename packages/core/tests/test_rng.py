"""The Philox sampler against naive references, its invariances, and its statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _philox_ref import normal_f32, philox4x32_10, words
from scipy import stats

import certkit.core as ck
from certkit.core import rng


def test_known_answer_vectors_random123() -> None:
    # Random123's kat_vectors for philox4x32_10
    assert philox4x32_10((0, 0, 0, 0), (0, 0)) == (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)
    assert philox4x32_10((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2) == (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)
    assert philox4x32_10((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0)) == (
        0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)
    got = ck.random_bits(4, seed=0)
    assert got.tolist() == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]


@pytest.mark.parametrize(("seed", "stream", "offset"), [(0, 0, 0), (123, 7, 5), (2**40 + 3, 2**33 + 1, 2**35 + 1), (2**64 - 1, 0, 13)])
def test_bits_match_naive_reference(seed: int, stream: int, offset: int) -> None:
    got = ck.random_bits(61, seed=seed, offset=offset, stream=stream)
    np.testing.assert_array_equal(got, words(seed, stream, offset, 61))


@pytest.mark.parametrize(("seed", "stream", "offset", "n"), [(0, 0, 0, 64), (9, 3, 1, 37), (5, 0, 2**33 + 2, 23)])
def test_float32_normals_bit_exact_with_reference(seed: int, stream: int, offset: int, n: int) -> None:
    got = ck.gaussian_noise(n, seed=seed, offset=offset, stream=stream)
    np.testing.assert_array_equal(got.view(np.uint32), normal_f32(seed, stream, offset, n).view(np.uint32))


def test_float32_transform_close_to_exact_box_muller() -> None:
    w = words(4, 0, 0, 4000).reshape(-1, 4).astype(np.float64)
    u = ((w.astype(np.uint64) >> 8).astype(np.float64) + 0.5) * 2.0**-24
    r = np.sqrt(-2 * np.log(u[:, 0::2]))
    th = 2 * np.pi * u[:, 1::2]
    exact = np.empty_like(u)
    exact[:, 0::2] = r * np.cos(th)
    exact[:, 1::2] = r * np.sin(th)
    got = ck.gaussian_noise(4000, seed=4).astype(np.float64).reshape(-1, 4)
    np.testing.assert_allclose(got, exact, rtol=0, atol=3e-6 * (1 + np.abs(exact)).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["gaussian", "uniform", "laplace"])
def test_element_j_independent_of_chunking_and_offset_split(dtype: type, kind: str) -> None:
    n = 100_003
    make = {"gaussian": ck.gaussian_noise, "uniform": ck.uniform_noise, "laplace": ck.laplace_noise}[kind]
    whole = make(n, seed=77, dtype=dtype, stream=5)
    rs = np.random.default_rng(0)
    cuts = np.sort(rs.choice(np.arange(1, n), size=40, replace=False))
    pieces = [make(b - a, seed=77, offset=int(a), dtype=dtype, stream=5)
              for a, b in zip(np.r_[0, cuts], np.r_[cuts, n])]
    np.testing.assert_array_equal(np.concatenate(pieces).view(np.uint8), whole.view(np.uint8))
    # an offset split across two calls with a shared base
    base = 1_000
    tail = make(n - base, seed=77, offset=base, dtype=dtype, stream=5)
    np.testing.assert_array_equal(tail, whole[base:])


def test_independent_of_thread_count() -> None:
    threads = ck.build_info()["openmp_threads"]
    try:
        ck.set_num_threads(1)
        one = ck.gaussian_noise((3, 400_001), seed=11)
        ck.set_num_threads(max(2, threads))
        many = ck.gaussian_noise((3, 400_001), seed=11)
    finally:
        ck.set_num_threads(threads)
    np.testing.assert_array_equal(one, many)


def test_gaussian_rows_matches_individual_streams() -> None:
    streams = np.array([4, 0, 9, 4])
    offsets = np.array([0, 17, 3, 1000])
    rows = ck.gaussian_rows((4, 5, 7), 0.5, 3, streams, offsets)
    for b in range(4):
        ref = ck.gaussian_noise(35, 0.5, 3, int(offsets[b]), stream=int(streams[b]))
        np.testing.assert_array_equal(rows[b].ravel(), ref)


def test_fill_in_place_and_shapes() -> None:
    out = np.zeros((6, 5), np.float64)
    res = ck.fill_gaussian(out, sigma=2.0, seed=1, mean=3.0)
    assert res is out and out.std() > 0
    np.testing.assert_array_equal(out.ravel(), ck.gaussian_noise(30, 2.0, 1, dtype=np.float64, mean=3.0))
    assert ck.gaussian_noise((2, 0, 3)).shape == (2, 0, 3)


N_STAT = 1_000_000


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gaussian_statistics(dtype: type) -> None:
    x = ck.gaussian_noise(N_STAT, sigma=1.0, seed=2024, dtype=dtype).astype(np.float64)
    se = 1 / math.sqrt(N_STAT)
    assert abs(x.mean()) < 5 * se
    assert abs(x.var() - 1) < 5 * math.sqrt(2) * se
    assert abs(stats.skew(x)) < 5 * math.sqrt(6) * se
    assert abs(stats.kurtosis(x)) < 5 * math.sqrt(24) * se
    assert stats.kstest(x, "norm").pvalue > 1e-4
    # tails: P(|X| > 4) = 6.33e-5 within 5 standard errors
    p4 = 2 * stats.norm.sf(4)
    assert abs(np.mean(np.abs(x) > 4) - p4) < 5 * math.sqrt(p4 / N_STAT)


def test_uniform_and_laplace_statistics() -> None:
    u = ck.uniform_noise(N_STAT, -1.0, 3.0, seed=5, dtype=np.float64)
    assert u.min() > -1 and u.max() < 3
    assert stats.kstest(u, stats.uniform(loc=-1, scale=4).cdf).pvalue > 1e-4
    lap = ck.laplace_noise(N_STAT, scale=0.5, seed=6).astype(np.float64)
    assert stats.kstest(lap, stats.laplace(scale=0.5).cdf).pvalue > 1e-4


def test_no_correlation_between_seeds_streams_or_neighbouring_offsets() -> None:
    n = 500_000
    a = ck.gaussian_noise(n, seed=1).astype(np.float64)
    bound = 5 / math.sqrt(n)
    for other in (ck.gaussian_noise(n, seed=2), ck.gaussian_noise(n, seed=1, stream=1),
                  ck.gaussian_noise(n, seed=2**32 + 1)):
        assert abs(np.corrcoef(a, other.astype(np.float64))[0, 1]) < bound
    # lag-1 and lag-4 autocorrelation inside one stream (Box-Muller pairs must be independent)
    for lag in (1, 2, 4):
        assert abs(np.corrcoef(a[:-lag], a[lag:])[0, 1]) < bound


def test_bad_input_errors_name_the_argument() -> None:
    with pytest.raises(ValueError, match="sigma"):
        ck.gaussian_noise(3, sigma=0.0)
    with pytest.raises(ValueError, match="sigma"):
        ck.gaussian_noise(3, sigma=float("nan"))
    with pytest.raises(ValueError, match="sigma"):
        ck.gaussian_noise(3, sigma=-1.0)
    with pytest.raises(TypeError, match="dtype"):
        ck.gaussian_noise(3, dtype=np.int32)
    with pytest.raises(ValueError, match="offset"):
        ck.gaussian_noise(3, offset=-1)
    with pytest.raises(ValueError, match="seed"):
        ck.gaussian_noise(3, seed=2**64)
    with pytest.raises(TypeError, match="seed"):
        ck.gaussian_noise(3, seed=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shape"):
        ck.gaussian_noise((2, -1))
    with pytest.raises(ValueError, match="out"):
        ck.fill_gaussian(np.zeros((4, 4), np.float32)[:, ::2])
    with pytest.raises(TypeError, match="out"):
        ck.fill_gaussian(np.zeros(4, np.int64))
    ro = np.zeros(4, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        ck.fill_gaussian(ro)
    with pytest.raises(ValueError, match="high"):
        ck.uniform_noise(3, 1.0, 1.0)
    with pytest.raises(ValueError, match="scale"):
        ck.laplace_noise(3, scale=0)
    with pytest.raises(ValueError, match="streams"):
        ck.gaussian_rows((2, 3), 1.0, 0, [0], [0, 0])
    with pytest.raises(ValueError, match="offsets"):
        ck.gaussian_rows((2, 3), 1.0, 0, [0, 1], [0, -1])
    assert rng.__doc__ and "Philox" in rng.__doc__
