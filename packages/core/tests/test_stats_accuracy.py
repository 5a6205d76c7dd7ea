"""certkit.core.stats against 40-digit mpmath references, where scipy itself is not accurate
enough to judge 1e-10 (n = 1e7 with small k, deep tails, denormal probabilities)."""

from __future__ import annotations

import mpmath as mp
import numpy as np
import pytest

from certkit.core import stats
from certkit.core._ext import core_ext

mp.mp.dps = 40


def _binom_sum(n: int, x: mp.mpf, lo: int, hi: int) -> mp.mpf:
    """sum_{j=lo}^{hi} C(n, j) x^j (1-x)^(n-j), exactly (naive reference), stopping once the
    terms are negligible when summing away from the mode."""
    y = 1 - x
    t = mp.exp(
        mp.loggamma(n + 1)
        - mp.loggamma(lo + 1)
        - mp.loggamma(n - lo + 1)
        + lo * mp.log(x)
        + (n - lo) * mp.log(y)
    )
    total, j = t, lo
    while j < hi:
        t = t * (n - j) / (j + 1) * x / y
        j += 1
        total += t
        if t < total * mp.mpf(10) ** -35 and j > n * x:
            break
    return total


def _ref_ibeta(a: int, b: int, x: float) -> tuple[mp.mpf, mp.mpf]:
    """I_x(a, b) and 1 - I_x(a, b) for integers: P(Bin(a+b-1, x) >= a) and its complement,
    each summed directly when it is the small tail."""
    n, X = a + b - 1, mp.mpf(x)
    if a > n * x:  # lower tail I is the far tail: sum j >= a
        lower = _binom_sum(n, X, a, n)
        return lower, 1 - lower
    upper = _binom_sum(n, 1 - X, b, n)  # P(Bin(n, x) <= a-1) = P(Bin(n, 1-x) >= b)
    return 1 - upper, upper


@pytest.mark.parametrize(
    ("a", "b", "z"),
    [
        (5, 10**5, -1.5),
        (205, 99796, 0.5),  # near the mean: the old NR continued fraction lost 1e-12 here
        (416, 99585, 2.0),
        (30, 40, 0.3),
        (3000, 7001, 1.0),
        (3000, 7001, -1.5),
        (1086573, 8913428, -7.5),  # deep tail at n = 1e7 (scipy: 2.5e-12 off)
        (7918560, 2081441, -8.0),
        (2, 10**7 - 1, 1.0),
        (9, 12, -2.0),
    ],
)
def test_ibeta_against_exact_binomial_sums(a: int, b: int, z: float) -> None:
    mean = a / (a + b)
    sd = (a * b / ((a + b) ** 2 * (a + b + 1))) ** 0.5
    x = float(min(max(mean + z * sd, 1e-300), 1 - 1e-16))
    lo, up, _ = core_ext.stats._ibeta(np.array([float(a)]), np.array([float(b)]), np.array([x]))
    ref_lo, ref_up = _ref_ibeta(a, b, x)
    assert abs(lo[0] - ref_lo) <= 1e-13 * ref_lo
    assert abs(up[0] - ref_up) <= 1e-13 * ref_up


def test_log_prefactor_against_mpmath() -> None:
    rng = np.random.default_rng(11)
    for _ in range(150):
        n = int(10 ** rng.uniform(0, 7.3))
        a = float(rng.integers(1, n + 1))
        b = float(max(n - a + 1, 1))
        mean = a / (a + b)
        sd = (a * b / ((a + b) ** 2 * (a + b + 1))) ** 0.5
        x = float(np.clip(mean + sd * rng.normal() * rng.choice([1, 5, 30]), 1e-300, 1 - 1e-16))
        A, B, X = mp.mpf(a), mp.mpf(b), mp.mpf(x)
        ref = (
            A * mp.log(X)
            + B * mp.log(1 - X)
            - (mp.loggamma(A) + mp.loggamma(B) - mp.loggamma(A + B))
        )
        ours = core_ext.stats._log_beta_prefactor(np.array([a]), np.array([b]), np.array([x]))[0]
        assert abs(ours - ref) <= 1e-13 * max(1.0, abs(float(ref))), (a, b, x)


def _cp_ref(k: int, n: int, alpha: float, side: str, x0: float) -> mp.mpf:
    """Root in mpmath of the exact binomial tail (small k): lower: P(Bin(n,x) >= k) = alpha,
    upper: P(Bin(n,x) <= k) = alpha."""
    if side == "lower":

        def f(x: mp.mpf) -> mp.mpf:
            return mp.log(1 - _binom_sum(n, x, 0, k - 1)) - mp.log(alpha)

    else:

        def f(x: mp.mpf) -> mp.mpf:
            return mp.log(_binom_sum(n, x, 0, k)) - mp.log(alpha)

    return mp.findroot(
        f,
        (mp.mpf(x0) * (1 - mp.mpf(10) ** -8), mp.mpf(x0) * (1 + mp.mpf(10) ** -8)),
        solver="secant",
    )


@pytest.mark.parametrize(
    ("k", "alpha"), [(1, 0.05), (2, 0.05), (3, 1e-3), (20, 0.05), (24, 1e-10), (2, 0.9)]
)
def test_clopper_pearson_n_1e7_small_k_against_mpmath(k: int, alpha: float) -> None:
    """The region where scipy's beta.isf is off by up to 1.5e-10; ours is ~1e-16 here."""
    n = 10**7
    for side in ["lower", "upper"]:
        ours = float(stats.clopper_pearson(k, n, alpha, side))
        ref = _cp_ref(k, n, alpha, side, ours)
        assert abs(ours - ref) <= 1e-13 * ref, (side, ours, ref)


def test_binom_test_extreme_tail_against_mpmath() -> None:
    # scipy's binom.sf is 1e-5 off here (p-value ~2e-295)
    n, p, k = 100, 1e-4, 79
    P = mp.mpf(p)
    ref = sum(mp.binomial(n, j) * P**j * (1 - P) ** (n - j) for j in range(k, n + 1))
    ours = float(stats.binom_test_two_sided(k, n, p))
    assert abs(ours - ref) <= 1e-12 * ref


@pytest.mark.parametrize(
    "p", [5e-324, 1e-320, 2.2e-308, 1e-290, 1e-281, 1e-279, 1e-250, 1e-20, 0.3, 0.5 + 1e-12]
)
def test_norm_ppf_tails_against_mpmath(p: float) -> None:
    ours = float(stats.norm_ppf(p))
    ref = mp.findroot(lambda x: mp.log(mp.ncdf(x)) - mp.log(mp.mpf(p)), ours)
    assert abs(ours - ref) <= 1e-15 * abs(ref)


@pytest.mark.parametrize("x", [-37.0, -36.45759358616012, -20.0, -5.0, -0.1, 0.0, 1e-8, 3.0, 8.0])
def test_norm_cdf_against_mpmath(x: float) -> None:
    ref = mp.ncdf(mp.mpf(x))
    assert abs(float(stats.norm_cdf(x)) - ref) <= 1e-13 * ref


@pytest.mark.parametrize("n", [10**8, 10**10, 2**48])
def test_clopper_pearson_huge_n_brackets_its_root(n: int) -> None:
    """Away from small k (no cheap exact reference): the true root of I_x(k, n-k+1) = alpha
    (lower) / 1 - I_x(k+1, n-k) = alpha (upper) lies within a relative 1e-14 (or 2 ulps) of
    the bound (the residual itself is ill-conditioned: d log I / d log x ~ 3 sqrt(n)), using the
    incomplete beta checked above; and the bounds bracket k/n."""
    ks = np.array([n // 3, n // 2, n - 1000, n - 2], dtype=np.int64)
    kf = ks.astype(float)
    for alpha in [1e-3, 0.5]:
        lo = stats.clopper_pearson(ks, n, alpha, "lower")
        up = stats.clopper_pearson(ks, n, alpha, "upper")
        for x, a, b, tail in [(lo, kf, n - kf + 1, 0), (up, kf + 1, n - kf, 1)]:
            # a relative 1e-14, or 2 ulps of x near 1 (finer than x can resolve there)
            h = np.maximum(1e-14 * np.minimum(x, 1 - x), 2 * np.spacing(x))
            below = core_ext.stats._ibeta(a, b, x - h)[tail]
            above = core_ext.stats._ibeta(a, b, x + h)[tail]
            if tail == 0:  # I increasing in x
                assert np.all(below < alpha) and np.all(alpha < above)
            else:  # 1 - I decreasing in x
                assert np.all(below > alpha) and np.all(alpha > above)
        assert np.all(lo < ks / n) and np.all(ks / n < up)
