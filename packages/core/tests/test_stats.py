"""certkit.core.stats: the compiled statistics against scipy (naive reference), exact edge
cases, bad input, coverage of the Clopper-Pearson bound and its properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as ss

from certkit.core import set_num_threads, stats
from certkit.core._ext import core_ext

RTOL = 1e-10
ALPHAS = [1e-10, 1e-3, 0.05, 0.5, 0.9]


def _rel(ours: np.ndarray, ref: np.ndarray) -> np.ndarray:
    ours, ref = np.asarray(ours, float), np.asarray(ref, float)
    err = np.abs(ours - ref)
    nz = ref != 0
    err[nz] /= np.abs(ref[nz])
    return err


def _ref_lower(k: np.ndarray, n: np.ndarray | int, alpha: float) -> np.ndarray:
    """scipy reference: the alpha quantile of Beta(k, n - k + 1); 0 at k = 0."""
    k = np.asarray(k)
    kk = np.maximum(k, 1)
    return np.where(k == 0, 0.0, ss.beta.ppf(alpha, kk, n - kk + 1))


def _ref_upper(k: np.ndarray, n: np.ndarray | int, alpha: float) -> np.ndarray:
    """scipy reference: the upper alpha quantile of Beta(k + 1, n - k) (isf, not ppf(1 - alpha),
    which loses the digits of a small alpha); 1 at k = n."""
    k = np.asarray(k)
    kk = np.minimum(k, np.asarray(n) - 1)
    return np.where(k == n, 1.0, ss.beta.isf(alpha, kk + 1, np.maximum(n - kk, 1)))


def _k_grid(n: int, rng: np.random.Generator, m: int = 400) -> np.ndarray:
    """Random k in [0, n] plus k near 0, n/2 and n."""
    near = np.concatenate([np.arange(0, 12), n - np.arange(0, 12), n // 2 + np.arange(-6, 7)])
    ks = np.concatenate([rng.integers(0, n + 1, m), near])
    return np.unique(ks[(ks >= 0) & (ks <= n)])


# ---- Clopper-Pearson against scipy --------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 10, 37, 1000, 10**5, 10**6])
def test_clopper_pearson_matches_scipy(n: int) -> None:
    rng = np.random.default_rng(n)
    ks = _k_grid(n, rng)
    for alpha in ALPHAS:
        lo = stats.clopper_pearson(ks, n, alpha, "lower")
        up = stats.clopper_pearson(ks, n, alpha, "upper")
        np.testing.assert_array_less(_rel(lo, _ref_lower(ks, n, alpha)), RTOL)
        np.testing.assert_array_less(_rel(up, _ref_upper(ks, n, alpha)), RTOL)


def test_clopper_pearson_n_1e7_matches_scipy_away_from_small_k() -> None:
    # At n = 1e7 scipy's beta.isf is itself off by up to ~1.5e-10 for k < ~30 (upper side):
    # those are checked against mpmath in test_stats_accuracy.py.
    n = 10**7
    rng = np.random.default_rng(7)
    ks = _k_grid(n, rng, 300)
    ks = ks[(ks >= 40)]
    for alpha in [1e-3, 0.05]:
        np.testing.assert_array_less(
            _rel(stats.clopper_pearson(ks, n, alpha), _ref_lower(ks, n, alpha)), RTOL
        )
        np.testing.assert_array_less(
            _rel(stats.clopper_pearson(ks, n, alpha, "upper"), _ref_upper(ks, n, alpha)), RTOL
        )


def test_clopper_pearson_mixed_n_broadcast_and_two_sided() -> None:
    rng = np.random.default_rng(1)
    n = rng.integers(1, 10**6, size=(30, 1))
    frac = rng.uniform(0, 1, size=(1, 7))
    k = np.floor(n * frac).astype(np.int64)  # (30, 7)
    out = stats.clopper_pearson(k, n, 0.01, "two-sided")
    assert out.shape == (30, 7, 2)
    nb = np.broadcast_to(n, k.shape)
    np.testing.assert_array_less(_rel(out[..., 0], _ref_lower(k, nb, 0.005)), RTOL)
    np.testing.assert_array_less(_rel(out[..., 1], _ref_upper(k, nb, 0.005)), RTOL)
    # two-sided = one-sided at alpha / 2, bit for bit
    np.testing.assert_array_equal(out[..., 0], stats.clopper_pearson(k, n, 0.005, "lower"))
    np.testing.assert_array_equal(out[..., 1], stats.clopper_pearson(k, n, 0.005, "upper"))


def test_clopper_pearson_dedup_paths_agree_bitwise() -> None:
    """Bitmap (shared n, many pairs), sort-unique (shared n, few pairs), sorted pairs (mixed n)
    and one-at-a-time calls give identical bits."""
    rng = np.random.default_rng(2)
    n = 1000
    k = rng.integers(0, n + 1, 5000)  # n + 1 <= 4 N: bitmap
    bitmap = stats.clopper_pearson(k, n, 0.001)
    few = np.array([stats.clopper_pearson(k[i : i + 3], n, 0.001) for i in range(0, 60, 3)]).ravel()
    np.testing.assert_array_equal(few, bitmap[:60])  # N = 3: sort-unique
    n_arr = np.full(k.shape, n)
    n_arr[::7] = n  # same values, passed as an array: shared-n detection
    np.testing.assert_array_equal(stats.clopper_pearson(k, n_arr, 0.001), bitmap)
    n_mixed = np.where(np.arange(k.size) % 2 == 0, n, n + 1)
    mixed = stats.clopper_pearson(k, n_mixed, 0.001)
    np.testing.assert_array_equal(mixed[::2], bitmap[::2])
    single = [
        float(stats.clopper_pearson(int(k[i]), int(n_mixed[i]), 0.001)) for i in range(1, 40, 2)
    ]
    np.testing.assert_array_equal(mixed[1:40:2], single)


def test_clopper_pearson_thread_count_does_not_change_bits() -> None:
    rng = np.random.default_rng(3)
    k = rng.integers(0, 10**5 + 1, 20000)
    threads = int(core_ext._build_info()["openmp_threads"])
    try:
        set_num_threads(1)
        one = stats.clopper_pearson(k, 10**5, 0.001, "two-sided")
        set_num_threads(2)
        two = stats.clopper_pearson(k, 10**5, 0.001, "two-sided")
    finally:
        set_num_threads(max(threads, 1))
    np.testing.assert_array_equal(one, two)


# ---- exact edge cases ---------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 10, 1000, 10**5, 10**7])
@pytest.mark.parametrize("alpha", [1e-10, 0.001, 0.05, 0.5])
def test_clopper_pearson_exact_edges(n: int, alpha: float) -> None:
    assert float(stats.clopper_pearson(0, n, alpha, "lower")) == 0.0
    assert float(stats.clopper_pearson(n, n, alpha, "upper")) == 1.0
    assert float(stats.clopper_pearson(n, n, alpha, "lower")) == alpha ** (1 / n)
    assert float(stats.clopper_pearson(0, n, alpha, "upper")) == -math.expm1(math.log(alpha) / n)
    two = stats.clopper_pearson([0, n], n, alpha, "two-sided")
    assert two[0, 0] == 0.0 and two[1, 1] == 1.0
    assert two[1, 0] == (alpha / 2) ** (1 / n)
    assert two[0, 1] == -math.expm1(math.log(alpha / 2) / n)


def test_scalar_and_shapes() -> None:
    out = stats.clopper_pearson(3, 10, 0.05)
    assert isinstance(out, np.ndarray) and out.shape == () and out.dtype == np.float64
    assert stats.clopper_pearson(3, 10, 0.05, "two-sided").shape == (2,)
    assert stats.clopper_pearson(np.zeros((0,), np.int64), 10, 0.05).shape == (0,)
    assert stats.clopper_pearson([[1, 2]], [[3], [4]], 0.05).shape == (2, 2)
    assert stats.binom_test_two_sided(3, 10).shape == ()
    assert stats.norm_ppf([[0.1, 0.2]]).shape == (1, 2)


def test_non_contiguous_and_other_dtypes_are_copied() -> None:
    rng = np.random.default_rng(4)
    k64 = rng.integers(0, 501, (40, 30))
    ref = stats.clopper_pearson(k64, 500, 0.01)
    np.testing.assert_array_equal(stats.clopper_pearson(np.asfortranarray(k64), 500, 0.01), ref)
    np.testing.assert_array_equal(stats.clopper_pearson(k64[:, ::3], 500, 0.01), ref[:, ::3])
    np.testing.assert_array_equal(stats.clopper_pearson(k64.astype(np.int32), 500, 0.01), ref)
    np.testing.assert_array_equal(stats.clopper_pearson(k64.astype(np.uint16), 500, 0.01), ref)
    np.testing.assert_array_equal(stats.clopper_pearson(k64.astype(float), 500.0, 0.01), ref)
    p = rng.uniform(0, 1, (20, 20))
    np.testing.assert_array_equal(stats.norm_ppf(p.T), stats.norm_ppf(np.ascontiguousarray(p.T)))
    np.testing.assert_array_equal(
        stats.norm_ppf(p.astype(np.float32)), stats.norm_ppf(p.astype(np.float32).astype(float))
    )


# ---- soundness: coverage, brute force, attack ---------------------------------------------


@pytest.mark.parametrize(("p", "n"), [(0.5, 20), (0.9, 100), (0.99, 1000), (0.999, 10**5)])
def test_lower_bound_monte_carlo_coverage(p: float, n: int) -> None:
    """P[lower(k) > p] <= alpha over 20,000 binomial draws (3 MC std slack). Returning the
    point estimate k / n would miss about half the time."""
    alpha, draws = 0.05, 20000
    rng = np.random.default_rng(int(p * 1000) + n)
    k = rng.binomial(n, p, size=draws)
    lower = stats.clopper_pearson(k, n, alpha)
    miss = float(np.mean(lower > p))
    assert miss <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / draws)
    # ... and the bound is not vacuous: it misses sometimes (the test can fail).
    assert miss > 0.0 or n * (1 - p) < 1
    assert float(np.mean(k / n > p)) > 0.2


@pytest.mark.parametrize("n", [1, 2, 5, 13, 40, 200])
@pytest.mark.parametrize("side", ["lower", "upper", "two-sided"])
def test_exact_coverage_brute_force_and_worst_p(n: int, side: str) -> None:
    """Exact miscoverage sum_k pmf(k; n, p) [bound misses p] <= alpha for every p, including
    the adversarial p just past each bound (where miscoverage jumps up)."""
    alpha = 0.1
    k = np.arange(n + 1)
    b = stats.clopper_pearson(k, n, alpha, side)
    if side == "lower":
        bounds = b
    elif side == "upper":
        bounds = b
    else:
        bounds = np.concatenate([b[:, 0], b[:, 1]])
    eps = 1e-9
    ps = np.concatenate([np.linspace(0.0, 1.0, 101), bounds - eps, bounds + eps])
    ps = ps[(ps >= 0) & (ps <= 1)]
    for p in ps:
        pmf = ss.binom.pmf(k, n, p)
        if side == "lower":
            miss = pmf[b > p].sum()
        elif side == "upper":
            miss = pmf[b < p].sum()
        else:
            miss = pmf[(b[:, 0] > p) | (b[:, 1] < p)].sum()
        assert miss <= alpha + 1e-12, (p, miss)
    # tightness: just below some bound the miscoverage gets close to alpha (exact test)
    if side == "lower" and n >= 13:
        worst = max(ss.binom.pmf(k, n, p)[b > p].sum() for p in b[1:] - eps)
        assert worst > 0.5 * alpha


# ---- properties ---------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(1, 10**7),
    frac=st.floats(0.0, 1.0),
    alpha=st.floats(1e-8, 0.5),
)
def test_property_bounds_bracket_estimate_and_are_monotone(
    n: int, frac: float, alpha: float
) -> None:
    k = min(int(frac * n), n)
    ks = np.array([max(k - 1, 0), k, min(k + 1, n)])
    lo = stats.clopper_pearson(ks, n, alpha, "lower")
    up = stats.clopper_pearson(ks, n, alpha, "upper")
    assert np.all(lo <= ks / n) and np.all(ks / n <= up)
    assert np.all((lo >= 0) & (up <= 1))
    assert np.all(np.diff(lo) >= 0) and np.all(np.diff(up) >= 0)
    if ks[0] < ks[1]:
        assert lo[0] < lo[1] and up[0] < up[1]
    # smaller alpha: wider interval
    lo2 = stats.clopper_pearson(ks, n, alpha / 10, "lower")
    up2 = stats.clopper_pearson(ks, n, alpha / 10, "upper")
    assert np.all(lo2 <= lo) and np.all(up2 >= up)


# ---- normal --------------------------------------------------------------------------------


def test_norm_ppf_matches_scipy() -> None:
    rng = np.random.default_rng(5)
    p = np.concatenate(
        [
            10 ** rng.uniform(-300, 0, 5000),
            rng.uniform(0, 1, 5000),
            1 - 10 ** rng.uniform(-16, -1, 2000),
            0.5 + rng.uniform(-1e-9, 1e-9, 500),
            [0.5, 0.02425, 0.97575, 0.25, 0.75, 1e-300, 5e-324],
        ]
    )
    p = p[(p > 0) & (p < 1)]
    np.testing.assert_array_less(_rel(stats.norm_ppf(p), ss.norm.ppf(p)), 1e-13)
    assert stats.norm_ppf(0.0) == -np.inf and stats.norm_ppf(1.0) == np.inf
    assert stats.norm_ppf(0.5) == 0.0


def test_norm_cdf_matches_scipy_and_inverts() -> None:
    rng = np.random.default_rng(6)
    x = np.concatenate([rng.normal(0, 3, 5000), rng.uniform(-37, 37, 2000), [0.0, -np.inf, np.inf]])
    ref = ss.norm.cdf(x)
    np.testing.assert_array_less(_rel(stats.norm_cdf(x), ref), 1e-12)
    xs = rng.uniform(-30, 1, 2000)  # above ~1 the cdf itself rounds away digits of x
    np.testing.assert_allclose(stats.norm_ppf(stats.norm_cdf(xs)), xs, rtol=1e-12, atol=1e-14)


def test_certified_radius() -> None:
    p = np.array([0.0, 0.3, 0.5, 0.5000001, 0.6, 0.9, 0.999, 1 - 1e-12, 1.0])
    r = stats.certified_radius(p, 0.25)
    ref = np.where(p > 0.5, 0.25 * ss.norm.ppf(p), 0.0)
    np.testing.assert_array_less(_rel(r[:-1], ref[:-1]), 1e-13)
    assert r[-1] == np.inf and r[2] == 0.0 and r[0] == 0.0
    # certificates from counts are finite: the CP lower bound is < 1
    lower = stats.clopper_pearson(10**5, 10**5, 1e-3)
    assert np.isfinite(stats.certified_radius(lower, 1.0))


# ---- binomial test -------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 7, 100, 1000, 10**5, 10**7])
@pytest.mark.parametrize("p", [0.5, 0.3, 0.01, 0.9, 1 / 3])
def test_binom_test_matches_scipy(n: int, p: float) -> None:
    rng = np.random.default_rng(n + int(p * 100))
    sd = int(math.sqrt(n * p * (1 - p))) + 1
    mode = int(p * n)
    ks = np.concatenate(
        [
            rng.integers(0, n + 1, 6),
            [0, n, mode, min(n, mode + 1)],
            mode + rng.integers(-4 * sd, 4 * sd + 1, 8),
        ]
    )
    ks = np.unique(ks[(ks >= 0) & (ks <= n)])
    ours = stats.binom_test_two_sided(ks, n, p)
    ref = np.array([ss.binomtest(int(k), n, p).pvalue for k in ks])
    keep = ref > 1e-250  # scipy's sf loses digits near underflow (checked against mpmath elsewhere)
    np.testing.assert_array_less(_rel(ours[keep], ref[keep]), RTOL)
    assert np.all(ours[~keep] < 1e-240)


def test_binom_test_degenerate_p_and_default() -> None:
    ks = np.array([0, 1, 5])
    for p in [0.0, 1.0]:
        ref = [ss.binomtest(int(k), 5, p).pvalue for k in ks]
        np.testing.assert_array_equal(stats.binom_test_two_sided(ks, 5, p), ref)
    assert float(stats.binom_test_two_sided(5, 10)) == 1.0
    np.testing.assert_allclose(
        stats.binom_test_two_sided([0, 3, 10], 10),
        [ss.binomtest(k, 10).pvalue for k in [0, 3, 10]],
        rtol=RTOL,
    )


# ---- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "exc", "name"),
    [
        ({"k": ["a"], "n": 10, "alpha": 0.05}, TypeError, "k"),
        ({"k": [True], "n": 10, "alpha": 0.05}, TypeError, "k"),
        ({"k": [1.5], "n": 10, "alpha": 0.05}, ValueError, "k"),
        ({"k": [np.nan], "n": 10, "alpha": 0.05}, ValueError, "k"),
        ({"k": [-1], "n": 10, "alpha": 0.05}, ValueError, "k"),
        ({"k": [11], "n": 10, "alpha": 0.05}, ValueError, "k"),
        ({"k": [1, 5], "n": [10, 4], "alpha": 0.05}, ValueError, "k"),
        ({"k": [0], "n": 0, "alpha": 0.05}, ValueError, "n"),
        ({"k": [0], "n": [3, -2], "alpha": 0.05}, ValueError, "n"),
        ({"k": [0], "n": "ten", "alpha": 0.05}, TypeError, "n"),
        ({"k": [0], "n": 2**60, "alpha": 0.05}, ValueError, "n"),
        ({"k": [0], "n": 2**48 + 1, "alpha": 0.05}, ValueError, "n"),
        ({"k": [1, 2, 3], "n": [4, 5], "alpha": 0.05}, ValueError, "k, n"),
        ({"k": [1], "n": 10, "alpha": 0.0}, ValueError, "alpha"),
        ({"k": [1], "n": 10, "alpha": 1.0}, ValueError, "alpha"),
        ({"k": [1], "n": 10, "alpha": -0.1}, ValueError, "alpha"),
        ({"k": [1], "n": 10, "alpha": float("nan")}, ValueError, "alpha"),
        ({"k": [1], "n": 10, "alpha": "0.05"}, TypeError, "alpha"),
        ({"k": [1], "n": 10, "alpha": 0.05, "side": "both"}, ValueError, "side"),
        ({"k": [1], "n": 10, "alpha": 0.05, "side": None}, ValueError, "side"),
    ],
)
def test_clopper_pearson_bad_input(kwargs: dict, exc: type, name: str) -> None:
    with pytest.raises(exc, match=rf"^{name}"):
        stats.clopper_pearson(**kwargs)


def test_other_functions_bad_input() -> None:
    with pytest.raises(ValueError, match=r"^p"):
        stats.norm_ppf([0.5, np.nan])
    with pytest.raises(ValueError, match=r"^p"):
        stats.norm_ppf([1.5])
    with pytest.raises(ValueError, match=r"^p"):
        stats.norm_ppf(-0.1)
    with pytest.raises(TypeError, match=r"^p"):
        stats.norm_ppf(["x"])
    with pytest.raises(ValueError, match=r"^x"):
        stats.norm_cdf([np.nan])
    with pytest.raises(TypeError, match=r"^x"):
        stats.norm_cdf([1 + 2j])
    for sigma in [0.0, -1.0, float("nan"), float("inf")]:
        with pytest.raises(ValueError, match=r"^sigma"):
            stats.certified_radius([0.9], sigma)
    with pytest.raises(TypeError, match=r"^sigma"):
        stats.certified_radius([0.9], "1")
    with pytest.raises(ValueError, match=r"^p_lower"):
        stats.certified_radius([1.2], 1.0)
    with pytest.raises(ValueError, match=r"^p_lower"):
        stats.certified_radius([np.nan], 1.0)
    with pytest.raises(ValueError, match=r"^p_lower"):
        stats.certified_radius([-0.1], 1.0)
    with pytest.raises(ValueError, match=r"^p"):
        stats.binom_test_two_sided(3, 10, 1.5)
    with pytest.raises(ValueError, match=r"^p"):
        stats.binom_test_two_sided(3, 10, float("nan"))
    with pytest.raises(ValueError, match=r"^k"):
        stats.binom_test_two_sided(11, 10)
    with pytest.raises(ValueError, match=r"^n"):
        stats.binom_test_two_sided(0, 0)
    with pytest.raises(TypeError, match=r"^k"):
        stats.binom_test_two_sided(["a"], 10)


def test_compiled_layer_rejects_bad_buffers() -> None:
    """The last line of defence: invalid pairs reaching the C++ driver raise, never crash."""
    cs = core_ext.stats
    with pytest.raises(ValueError, match="pairs outside"):
        cs.clopper_pearson(np.array([5]), np.array([3]), 0.05, 0)
    with pytest.raises(ValueError, match="pairs outside"):
        cs.binom_test_two_sided(np.array([-1]), np.array([3]), 0.5)
    with pytest.raises(ValueError, match=r"^side"):
        cs.clopper_pearson(np.array([1]), np.array([3]), 0.05, 7)
    with pytest.raises(ValueError, match=r"^alpha"):
        cs.clopper_pearson(np.array([1]), np.array([3]), 1.5, 0)
    with pytest.raises(ValueError, match=r"^n"):
        cs.clopper_pearson(np.array([1, 2, 3]), np.array([3, 4]), 0.05, 0)
