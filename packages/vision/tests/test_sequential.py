"""Anytime-valid confidence sequences (beta-binomial mixture) and the sequential stop rule:
a numerical-integration reference, time-uniform coverage by simulation (≥ 10,000
Bernoulli streams at several p), and sequential certification on an exact model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _vision_models import Linear2
from scipy import integrate
from scipy.stats import beta as beta_dist
from scipy.stats import norm

from certkit.vision.smoothing.sequential import (
    BetaBinomialCS,
    forecast_lower,
    next_total,
    stop_rule,
)
from certkit.vision.smoothing.smooth import ABSTAIN, Smooth


def naive_mixture(q: float, s: int, t: int, prior) -> float:
    """M_t(q) by numerical integration of the likelihood ratio against the prior."""
    total = 0.0
    for w, a, b in prior:
        def f(th: float, a: float = a, b: float = b) -> float:
            return np.exp(s * (np.log(th) - np.log(q)) + (t - s) * (np.log1p(-th) - np.log1p(-q))) \
                * beta_dist.pdf(th, a, b)
        val, _ = integrate.quad(f, 0, 1, points=[s / t] if 0 < s < t else None, limit=200)
        total += w * val
    return total


@pytest.mark.parametrize(("s", "t"), [(7, 10), (95, 100), (100, 100), (0, 20), (400, 1000)])
def test_bounds_match_numerical_integration(s: int, t: int) -> None:
    cs = BetaBinomialCS(alpha=0.05)
    lo, hi = cs.bounds(np.array([s]), np.array([t]))
    lo, hi = float(lo[0]), float(hi[0])
    # M(q) >= 1/α just outside the interval, < 1/α just inside
    if lo > 0:
        assert naive_mixture(lo * (1 - 1e-6), s, t, cs.prior) >= 20 * 0.999
        assert naive_mixture(min(lo * (1 + 1e-4), s / t), s, t, cs.prior) < 20
    if hi < 1:
        assert naive_mixture(min(hi * (1 + 1e-6), 1 - 1e-12), s, t, cs.prior) >= 20 * 0.999
        assert naive_mixture(max(hi * (1 - 1e-4), s / t), s, t, cs.prior) < 20
    assert lo <= s / t <= hi


def test_bounds_shrink_and_compare_sensibly_with_clopper_pearson() -> None:
    cs = BetaBinomialCS(alpha=0.001)
    t = np.array([100, 1000, 10000, 100000])
    lo, hi = cs.bounds((0.9 * t).astype(np.int64), t)
    assert np.all(np.diff(lo) > 0) and np.all(np.diff(hi) < 0)
    cp = beta_dist.ppf(0.001, 0.9 * t, 0.1 * t + 1)
    assert np.all(lo <= cp)  # anytime validity costs a little width...
    assert np.all(0.9 - lo < 2.5 * (0.9 - cp))  # ...but only a little
    # all successes: within a constant factor of the fixed-n bound
    lo_all = cs.lower_if_all_succeed(10000)
    assert 1 - lo_all < 1.6 * (1 - 0.001 ** (1 / 10000))


def _coverage(p: float, alpha: float, streams: int, horizon: int, seed: int) -> tuple[float, float]:
    """Miscoverage over ``streams`` Bernoulli(p) streams, looked at 60 times up to
    ``horizon`` (every t ≤ 20, then geometric). The counts at the look times are drawn
    exactly by adding Binomial(Δt, p) increments."""
    rng = np.random.default_rng(seed)
    times = np.unique(np.concatenate([np.arange(1, 21), np.geomspace(21, horizon, 40).astype(int)]))
    steps = np.diff(np.concatenate([[0], times]))
    s = np.cumsum(rng.binomial(steps[None, :], p, size=(streams, len(times))), axis=1)
    cs = BetaBinomialCS(alpha)
    lo, hi = cs.bounds(s, np.broadcast_to(times, s.shape))
    miss_lo = np.mean((lo > p).any(axis=1))
    miss_any = np.mean(((lo > p) | (hi < p)).any(axis=1))
    return float(miss_lo), float(miss_any)


@pytest.mark.parametrize("p", [0.5, 0.8, 0.97, 0.999])
def test_time_uniform_coverage_simulation(p: float) -> None:
    """10,000 streams, checked at 60 times up to t = 2,000: the probability that the lower
    bound ever exceeds p (and that the interval ever misses p) is ≤ α + 3 MC s.e."""
    alpha, streams = 0.05, 10_000
    miss_lo, miss_any = _coverage(p, alpha, streams, 2000, seed=int(p * 1000))
    se = np.sqrt(alpha * (1 - alpha) / streams)
    assert miss_lo <= alpha + 3 * se
    assert miss_any <= alpha + 3 * se


def test_naive_pointwise_interval_fails_the_same_simulation() -> None:
    """The simulation has teeth: re-using a fixed-n Clopper-Pearson bound at every look
    (the classic peeking error) exceeds α."""
    rng = np.random.default_rng(0)
    p, alpha, streams, horizon = 0.8, 0.05, 10_000, 2000
    times = np.unique(np.geomspace(10, horizon, 60).astype(int))
    steps = np.diff(np.concatenate([[0], times]))
    k = np.cumsum(rng.binomial(steps[None, :], p, size=(streams, len(times))), axis=1)
    lo = beta_dist.ppf(alpha, k, times - k + 1)
    assert np.mean((lo > p).any(axis=1)) > 2 * alpha


def test_stop_rule_and_schedule() -> None:
    sigma = 0.25
    q = norm.cdf(np.array([0.0, 0.25, 0.5]) / sigma)
    lower = np.array([0.4, q[1] + 0.01, q[2] + 0.001, 0.2, 0.6])
    upper = np.array([0.9, q[2] - 0.01, 0.9999999, 0.45, 0.99])
    n = np.array([100, 100, 100, 100, 100000])
    stop = stop_rule(lower, upper, n, max_n=100000, sigma=sigma, p_cap=0.9999,
                     radius_grid=[0.0, 0.25, 0.5])
    assert stop.tolist() == [False, True, True, True, True]
    assert next_total(np.array([0, 100, 1000]), first=128, growth=1.25, max_n=1200).tolist() == \
        [128, 128, 1200]
    # without a grid: converged radius interval stops
    st = stop_rule(np.array([0.99]), np.array([0.9901]), np.array([500]), max_n=10**5, sigma=sigma,
                   p_cap=0.9999, tol=0.01)
    assert st.tolist() == [True]
    with pytest.raises(ValueError, match="radius_target"):
        stop_rule(lower, upper, n, max_n=10, sigma=sigma, p_cap=0.9, radius_grid=[-1.0])


def test_forecast_is_optimistic_about_the_final_bound() -> None:
    cs = BetaBinomialCS(0.001)
    fc = forecast_lower(cs, np.array([90]), np.array([100]), 10_000)
    lo_true, _ = cs.bounds(np.array([9000]), np.array([10_000]))
    assert fc[0] > lo_true[0]


def test_cs_bad_input() -> None:
    with pytest.raises(ValueError, match="alpha"):
        BetaBinomialCS(alpha=0.0)
    with pytest.raises(ValueError, match="weights"):
        BetaBinomialCS(prior=((0.3, 1.0, 1.0),))
    with pytest.raises(ValueError, match="s: expected"):
        BetaBinomialCS().bounds(np.array([5]), np.array([3]))


@pytest.mark.filterwarnings("ignore::certkit.vision.data.checks.PixelRangeWarning")  # synthetic inputs in [-1, 1]
def test_sequential_certificates_are_sound_and_cheap_on_exact_model() -> None:
    """Sequential certificates never exceed the exact radius, over many inputs, and use far
    fewer samples than the fixed-n budget on clearly-decided inputs."""
    sigma = 0.5
    rng = np.random.default_rng(4)
    x = rng.uniform(-1, 1, size=(80, 1, 2, 2))
    sc = x.reshape(80, -1) @ np.array([1.0, -2.0, 0.5, 1.5]) - 0.3
    dist = np.abs(sc) / np.linalg.norm([1.0, -2.0, 0.5, 1.5])
    smooth = Smooth(Linear2(), 2, sigma)
    grid = [0.0, 0.25, 0.5, 0.75]
    certs = smooth.certify_batch(torch.from_numpy(x), n0=50, n=10_000, alpha=0.001, batch_size=8192,
                                 mode="sequential", radius_target=grid)
    for c in certs:
        if c.prediction != ABSTAIN:
            assert c.prediction == (0 if sc[c.idx] > 0 else 1)
            assert c.radius <= dist[c.idx]
        assert c.p_upper is not None and c.p_lower <= c.p_upper
    assert np.mean([c.n for c in certs]) < 0.5 * 10_000
    # the same inputs under the fixed-n rule reach the same grid level almost always
    fixed = smooth.certify_batch(torch.from_numpy(x), n0=50, n=10_000, alpha=0.001, batch_size=8192)
    lvl = lambda r: int(np.searchsorted(grid, r, side="right"))  # noqa: E731
    agree = np.mean([lvl(a.radius) == lvl(b.radius) and (a.prediction == ABSTAIN) == (b.prediction == ABSTAIN)
                     for a, b in zip(certs, fixed, strict=True)])
    assert agree >= 0.85


@pytest.mark.filterwarnings("ignore::certkit.vision.data.checks.PixelRangeWarning")  # synthetic inputs in [-1, 1]
def test_sequential_without_target_stops_on_tolerance() -> None:
    smooth = Smooth(Linear2(), 2, 0.5)
    x = torch.tensor([[[[0.9, -0.9], [0.2, 0.3]]]], dtype=torch.float64)
    few = smooth.certify_batch(x, n0=20, n=50_000, mode="sequential", tol=0.2, batch_size=4096)[0]
    many = smooth.certify_batch(x, n0=20, n=50_000, mode="sequential", tol=0.01, batch_size=4096)[0]
    assert few.n < many.n <= 50_000
    assert few.radius <= many.radius + 0.2
