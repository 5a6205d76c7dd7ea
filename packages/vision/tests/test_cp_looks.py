"""Clopper-Pearson bounds at fixed looks with α spent across looks: per-look bounds against
scipy's beta quantiles, the all-success floor against brute force, time-uniform coverage
by simulation (≥ 10,000 Bernoulli streams at several p, worst-case stopping), and
sequential certification with this bound on an exact model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _vision_models import Linear2
from scipy.stats import beta as beta_dist
from scipy.stats import norm

from certkit.vision.smoothing.looks import LookClopperPearsonCS, all_success_floor, grid_schedule
from certkit.vision.smoothing.smooth import ABSTAIN, Smooth


def test_bounds_are_per_look_clopper_pearson() -> None:
    cs = grid_schedule(0.01, 5000, first=20, growth=1.5, sigma=0.5, radius_grid=[0.0, 0.5, 1.0])
    looks = np.array(cs.looks)
    assert looks[-1] == 5000 and np.all(np.diff(looks) > 0)
    assert sum(cs.levels) <= 0.01 * (1 + 1e-12)
    rng = np.random.default_rng(0)
    t = rng.choice(looks, 200)
    s = rng.integers(0, t + 1)
    lo, hi = cs.bounds(s, t)
    lv = np.array([cs.levels[cs.looks.index(int(v))] for v in t])
    ref_lo = np.where(s > 0, beta_dist.ppf(lv, np.maximum(s, 1), t - s + 1), 0.0)
    ref_hi = np.where(s < t, beta_dist.ppf(1 - lv, s + 1, np.maximum(t - s, 1)), 1.0)
    np.testing.assert_allclose(lo, ref_lo, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(hi, ref_hi, rtol=1e-8, atol=1e-12)
    # the final look carries half of alpha
    assert cs.levels[-1] == pytest.approx(0.005)


def test_grid_looks_sit_at_the_all_success_floor() -> None:
    sigma, alpha = 0.25, 0.001
    grid = [0.0, 0.25, 0.5, 0.75]
    cs = grid_schedule(alpha, 100_000, sigma=sigma, radius_grid=grid)
    q = norm.cdf(np.array(grid[1:]) / sigma)
    for qk in q:
        # brute force: the first look at which straight successes certify q_k
        hit = [t for t in cs.looks if cs.bounds(np.array([t]), np.array([t]))[0][0] >= qk]
        a_grid = 0.25 * alpha / 3
        floor = int(all_success_floor(np.array([qk]), a_grid)[0])
        assert hit and hit[0] <= floor
        # and no valid level-alpha bound could have done it much sooner
        assert hit[0] >= all_success_floor(np.array([qk]), alpha)[0]


def test_all_success_floor_brute_force() -> None:
    for p, a in [(0.9, 0.05), (0.999, 0.001), (0.5 + 1e-6, 0.01)]:
        t = int(all_success_floor(np.array([p]), a)[0])
        assert a ** (1 / t) >= p > a ** (1 / (t - 1)) if t > 1 else a >= p


@pytest.mark.parametrize("p", [0.5, 0.8, 0.97, 0.999])
def test_time_uniform_coverage_simulation_worst_case_stopping(p: float) -> None:
    """10,000 streams, every look of a 60-look schedule up to t = 3,000. The miss event
    ∃ look: L > p is exactly what the worst stopping rule (stop at the first look where
    the bound is wrong) exploits; its frequency must be ≤ α + 3 MC s.e., same for U."""
    alpha, streams = 0.05, 10_000
    cs = grid_schedule(alpha, 3000, first=10, growth=1.1, sigma=0.5, radius_grid=[0.0, 0.5, 1.0])
    times = np.array(cs.looks)
    rng = np.random.default_rng(int(p * 1e4))
    steps = np.diff(np.concatenate([[0], times]))
    s = np.cumsum(rng.binomial(steps[None, :], p, size=(streams, len(times))), axis=1)
    lo, hi = cs.bounds(s, np.broadcast_to(times, s.shape))
    se = np.sqrt(alpha * (1 - alpha) / streams)
    assert np.mean((lo > p).any(axis=1)) <= alpha + 3 * se
    assert np.mean((hi < p).any(axis=1)) <= alpha + 3 * se


def test_full_alpha_at_every_look_fails_the_same_simulation() -> None:
    """The simulation has teeth: spending the whole α at every look miscovers."""
    p, alpha, streams = 0.8, 0.05, 10_000
    looks = tuple(range(10, 3001, 50))
    cs = LookClopperPearsonCS(alpha, looks, tuple([alpha / len(looks)] * len(looks)))
    times = np.array(cs.looks)
    rng = np.random.default_rng(1)
    s = np.cumsum(rng.binomial(np.diff(np.concatenate([[0], times]))[None, :], p,
                               size=(streams, len(times))), axis=1)
    naive = beta_dist.ppf(alpha, s, times - s + 1)
    assert np.mean((naive > p).any(axis=1)) > 2 * alpha
    lo, _ = cs.bounds(s, np.broadcast_to(times, s.shape))
    assert np.mean((lo > p).any(axis=1)) <= alpha


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="levels"):
        LookClopperPearsonCS(0.01, (10, 20), (0.01, 0.01))
    with pytest.raises(ValueError, match="looks"):
        LookClopperPearsonCS(0.01, (20, 10), (0.001, 0.001))
    cs = LookClopperPearsonCS(0.01, (10, 20), (0.005, 0.005))
    with pytest.raises(ValueError, match="look time"):
        cs.bounds(np.array([3]), np.array([15]))
    with pytest.raises(ValueError, match="s: expected"):
        cs.bounds(np.array([30]), np.array([20]))
    with pytest.raises(ValueError, match="final_share"):
        grid_schedule(0.01, 100, final_share=1.0)
    with pytest.raises(ValueError, match="growth"):
        grid_schedule(0.01, 100, growth=1.0)
    assert cs.next_total(np.array([0, 10, 15, 20, 99])).tolist() == [10, 20, 20, 20, 20]


@pytest.mark.filterwarnings("ignore::certkit.vision.data.checks.PixelRangeWarning")  # synthetic inputs in [-1, 1]
def test_sequential_looks_sound_against_exact_radius_and_agree_with_fixed_n() -> None:
    """On a linear model the exact smoothed radius is |w·x - b| / ‖w‖: no certificate may
    exceed it (the attack is the exact worst-case perturbation), and the grid level agrees
    with the fixed-n run on the same noise almost always."""
    sigma = 0.5
    rng = np.random.default_rng(7)
    x = rng.uniform(-1, 1, size=(60, 1, 2, 2))
    w = np.array([1.0, -2.0, 0.5, 1.5])
    sc = x.reshape(60, -1) @ w - 0.3
    dist = np.abs(sc) / np.linalg.norm(w)
    smooth = Smooth(Linear2(), 2, sigma)
    grid = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    kw = dict(n0=50, n=10_000, alpha=0.001, batch_size=8192)
    seq = smooth.certify_batch(torch.from_numpy(x), mode="sequential", radius_grid=grid, **kw)
    for c in seq:
        if c.prediction != ABSTAIN:
            assert c.prediction == (0 if sc[c.idx] > 0 else 1)
            assert c.radius <= dist[c.idx]
    fixed = smooth.certify_batch(torch.from_numpy(x), **kw)
    lvl = lambda r: int(np.searchsorted(grid, r, side="right"))  # noqa: E731
    agree = np.mean([lvl(a.radius) == lvl(b.radius) and (a.prediction == ABSTAIN) == (b.prediction == ABSTAIN)
                     for a, b in zip(seq, fixed, strict=True)])
    assert agree >= 0.85
    assert np.mean([c.n for c in seq]) < 10_000
    with pytest.raises(ValueError, match="radius_grid"):
        smooth.certify_batch(torch.from_numpy(x[:1]), mode="sequential", radius_grid=grid,
                             radius_target=grid, **kw)
    with pytest.raises(ValueError, match="bound"):
        smooth.certify_batch(torch.from_numpy(x[:1]), mode="sequential", bound="hoeffding", **kw)
