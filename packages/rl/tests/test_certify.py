"""Reward certificates: the paper's sanity ceiling, naive references, Monte-Carlo checks of
the adaptive Neyman-Pearson bound, coverage of the confidence bounds, bad input, resume."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
from scipy.stats import beta, norm

from certkit.core.results import LogLockedError, SettingsMismatchError
from certkit.rl.bounds import survival_lower_bounds
from certkit.rl.policies import TorchPolicy, mlp
from certkit.rl.policy_smoothing import (
    EpisodeChunkTask,
    RewardCertificate,
    attacked_probability_bound,
    certify_returns,
    certify_reward,
    expected_reward_bound,
    quantile_bound,
)
from certkit.rl.rollout import clean_rollouts, smoothed_rollouts

CEILING = {0.2: 196.8, 0.4: 174.8, 0.6: 111.6, 0.8: 39.3, 1.0: 6.4}


def clean_policy_other(o: np.ndarray) -> np.ndarray:
    """Another policy (a results log written by linear_policy must refuse it)."""
    return (o[:, 2] > 0).astype(np.int64)


def linear_policy(o: np.ndarray) -> np.ndarray:
    """Elementwise (batch-size independent) numpy policy for CartPole."""
    return ((o[:, 2] * 1.0 + o[:, 3] * 0.5 + o[:, 1] * 0.1 + o[:, 0] * 0.05) > 0).astype(np.int64)


def test_sanity_ceiling_perfect_cartpole_v0_policy() -> None:
    budgets = list(CEILING)
    cert = certify_returns(np.full(10_000, 200.0), 0.2, budgets, alpha=0.05, bound="cp",
                           return_bounds=(0, 200), horizon=200)
    assert len(cert.thresholds) == 200 and cert.alpha_per_threshold == pytest.approx(2.5e-4)
    assert [round(x, 1) for x in cert.expected] == list(CEILING.values())
    # naive reference: 200 * Phi(Phi^-1(CP lower of m/m at alpha/H) - B/sigma)
    p = (2.5e-4) ** (1 / 10_000)
    for b, e in zip(budgets, cert.expected, strict=True):
        assert e == pytest.approx(200 * norm.cdf(norm.ppf(p) - b / 0.2), rel=1e-10)
    # it is a ceiling: other bounds cannot beat CP on a perfect policy
    for bnd in ("dkw", "bernstein"):
        other = certify_returns(np.full(10_000, 200.0), 0.2, budgets, bound=bnd,
                                return_bounds=(0, 200), horizon=200)
        assert all(o <= c + 1e-9 for o, c in zip(other.expected, cert.expected, strict=True))


def test_bounds_match_naive_formulas() -> None:
    rng = np.random.default_rng(0)
    r = rng.integers(0, 21, size=300).astype(float)
    v = np.arange(1, 21, dtype=float)
    k = np.array([(r >= x).sum() for x in v])
    cp = survival_lower_bounds(r, v, 0.1, "cp")
    ref = np.array([beta.ppf(0.1 / 20, kk, 300 - kk + 1) if kk > 0 else 0.0 for kk in k])
    ref = np.maximum.accumulate(ref[::-1])[::-1]
    np.testing.assert_allclose(cp, ref, rtol=1e-9, atol=1e-12)
    dkw = survival_lower_bounds(r, v, 0.1, "dkw")
    np.testing.assert_allclose(dkw, np.clip(k / 300 - math.sqrt(math.log(10) / 600), 0, 1))
    bern = survival_lower_bounds(r, v, 0.1, "bernstein")
    ph = k / 300
    lg = math.log(2 * 20 / 0.1)
    ref_b = np.clip(ph - np.sqrt(2 * ph * (1 - ph) * 300 / 299 * lg / 300) - 7 * lg / (3 * 299), 0, 1)
    np.testing.assert_allclose(bern, np.maximum.accumulate(ref_b[::-1])[::-1], atol=1e-12)
    # expected bound: naive sum over the grid, valued at the lower end of each interval
    e = expected_reward_bound(v, cp, [0.0, 0.3], 0.5, 0.0)
    naive = [sum(norm.cdf(norm.ppf(p) - b / 0.5) if p > 0 else 0.0 for p in cp) for b in (0.0, 0.3)]
    np.testing.assert_allclose(e, naive, rtol=1e-9)


@pytest.mark.parametrize("bound", ["cp", "dkw", "bernstein"])
def test_coverage_of_survival_bounds_at_nominal_alpha(bound: str) -> None:
    """Simultaneous coverage over many repetitions: failure rate must stay <= alpha."""
    rng = np.random.default_rng(1)
    support = np.arange(0, 11, dtype=float)
    probs = rng.dirichlet(np.ones(11))
    true_s = np.array([probs[support >= x].sum() for x in support[1:]])
    true_mean = float((support * probs).sum())
    alpha, m, reps = 0.2, 60, 400
    fails = fails_mean = 0
    for _ in range(reps):
        r = rng.choice(support, size=m, p=probs)
        v = support[1:] if bound != "dkw" else np.unique(r[r > 0])
        p = survival_lower_bounds(r, v, alpha, bound)
        s_v = np.array([probs[support >= x].sum() for x in v])
        fails += bool(np.any(p > s_v + 1e-12))
        c = certify_returns(r, 1.0, [0.0], alpha=alpha, bound=bound, return_bounds=(0, 10))
        fails_mean += c.expected[0] > true_mean + 1e-9
    sd = math.sqrt(alpha * (1 - alpha) / reps)
    assert fails / reps <= alpha + 3 * sd
    assert fails_mean / reps <= alpha + 3 * sd
    assert true_s.size == 10


def test_bound_is_tight_for_a_half_space_and_holds_for_adaptive_adversaries() -> None:
    """Monte-Carlo check of the adaptive NP bound on a T-step game: the agent scores a point
    when x_t + eps_t + delta_t > c. Adversaries (one-shot, spread, adaptive) never beat the bound,
    and the single-step half-space attack attains it."""
    rng = np.random.default_rng(2)
    sigma, c, n = 1.0, -1.0, 200_000
    # T = 1: exact tightness
    for b in (0.5, 1.0, 2.0):
        d = rng.standard_normal(n) * sigma
        p_clean = 1 - norm.cdf(c / sigma)
        emp = np.mean(d - b > c)
        assert emp == pytest.approx(float(attacked_probability_bound(p_clean, b, sigma)), abs=4e-3)
    # T = 4, F = points, threshold nu = 3, total budget B
    T, B, nu = 4, 1.5, 3
    clean = (rng.standard_normal((n, T)) * sigma > c).sum(1)
    p_clean = np.mean(clean >= nu)
    bound = float(attacked_probability_bound(p_clean, B, sigma))
    strategies = {
        "spread": lambda t, rem, hist: B / math.sqrt(T),
        "first": lambda t, rem, hist: B if t == 0 else 0.0,
        # adaptive: spend only while the agent is still on track, half the remaining each time
        "adaptive": lambda t, rem, hist: math.sqrt(rem) * (0.7 if hist >= t else 0.0),
    }
    for name, strat in strategies.items():
        rem = np.full(n, B**2)
        pts = np.zeros(n)
        for t in range(T):
            e = np.array([strat(t, r_, h) for r_, h in zip(rem[:2000], pts[:2000], strict=True)])
            e = np.resize(e, n) if name != "adaptive" else np.where(pts >= t, np.sqrt(rem) * 0.7, 0.0)
            e = np.minimum(e, np.sqrt(rem))
            rem = rem - e**2
            pts += (rng.standard_normal(n) * sigma - e) > c
        emp = np.mean(pts >= nu)
        assert emp >= bound - 4e-3, name


def test_expected_and_quantile_bounds_negative_returns_and_monotone() -> None:
    rng = np.random.default_rng(3)
    r = -rng.integers(60, 200, size=2000).astype(float)  # Acrobot-like returns
    cert = certify_returns(r, 0.3, [0, 0.1, 0.2, 0.4], return_bounds=(-500, 0), horizon=500,
                           quantiles=(0.1, 0.5))
    e = np.array(cert.expected)
    assert np.all(np.diff(e) <= 1e-9) and e[0] <= r.mean() and e[-1] >= -500
    assert e[0] > r.mean() - 10  # not vacuous at B = 0
    q = np.array(cert.quantiles["0.5"])
    assert q[0] <= np.quantile(r, 0.5) and np.all(np.diff(q) <= 0)
    # quantile certificate against its definition on the grid
    qb = quantile_bound(cert.thresholds, cert.p_lower, [0.2], 0.3, 0.5, -500)[0]
    assert float(attacked_probability_bound(cert.p_lower[cert.thresholds.index(qb)], 0.2, 0.3)) > 0.5
    assert cert.threshold_bound(-600, 0.2) == 1.0 and cert.threshold_bound(10, 0.2) == 0.0


def test_per_step_budget_conversion_and_record() -> None:
    r = np.full(100, 50.0)
    c = certify_returns(r, 0.5, [0.01, 0.02], return_bounds=(0, 50), horizon=100,
                        budget_kind="per_step")
    assert c.budgets == pytest.approx([0.1, 0.2]) and c.budget_kind == "per_step"
    assert c.per_step_budgets == pytest.approx([0.01, 0.02])


def test_certify_reward_end_to_end_resume_and_chunking(tmp_path) -> None:
    kw = dict(episodes=60, seed=4, horizon=80)
    a = certify_reward(linear_policy, "CartPole-v1", 0.2, [0.0, 0.2], **kw)
    assert a.horizon == 80 and a.return_bounds == (0.0, 80.0)
    assert a.engine == "batched" and a.backend == "serial"
    b = certify_reward(linear_policy, "CartPole-v1", 0.2, [0.0, 0.2], engine="naive",
                       chunk_size=7, **kw)
    assert a.expected == b.expected and a.clean_mean == b.clean_mean and b.engine == "naive"
    # a crashed run: chunks 0 and 1 (of 16 episodes) done, torn last line
    log = tmp_path / "run.jsonl"
    certify_reward(linear_policy, "CartPole-v1", 0.2, [0.0], log=log, chunk_size=16,
                   **{**kw, "episodes": 32})
    with open(log, "a") as fh:
        fh.write('{"idx": 2, "ret')
    c = certify_reward(linear_policy, "CartPole-v1", 0.2, [0.0, 0.2], log=log, chunk_size=16, **kw)
    assert c.expected == a.expected
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert "_settings" in lines[0] and lines[0]["_settings"]["chunk_size"] == 16
    rows = lines[1:]
    assert sorted(r["idx"] for r in rows) == [0, 1, 2, 3]  # only the missing chunks were played
    assert all(r["seed"] == 4 for r in rows)
    task = EpisodeChunkTask(linear_policy, "CartPole-v1", 0.2, 4, 80, "auto", 60, 16)
    assert rows[1]["returns"] == task(1)["returns"]
    # another run's log is refused, naming what differs; --new moves it aside
    with pytest.raises(SettingsMismatchError, match="chunk_size"):
        certify_reward(linear_policy, "CartPole-v1", 0.2, [0.0], log=log, chunk_size=10, **kw)
    with pytest.raises(SettingsMismatchError, match="sigma"):
        certify_reward(linear_policy, "CartPole-v1", 0.3, [0.0], log=log, chunk_size=16, **kw)
    with pytest.raises(SettingsMismatchError, match="policy"):
        certify_reward(clean_policy_other, "CartPole-v1", 0.2, [0.0], log=log, chunk_size=16, **kw)
    d = certify_reward(linear_policy, "CartPole-v1", 0.2, [0.0], log=log, chunk_size=10, new=True, **kw)
    assert d.expected[0] == a.expected[0] and len(list(tmp_path.glob("run.jsonl.*.bak"))) == 1
    path = tmp_path / "cert.json"
    c.save(path)
    assert RewardCertificate.load(path).expected == c.expected
    with pytest.raises(ValueError, match="engine"):  # a rollout engine is not a backend
        certify_reward(linear_policy, "CartPole-v1", 0.2, [0.0], backend="naive", **kw)
    with pytest.raises(ValueError, match="backend"):
        certify_reward(linear_policy, "CartPole-v1", 0.2, [0.0], backend="mpi", **kw)


def test_certify_log_is_locked_against_a_second_writer(tmp_path) -> None:
    log = tmp_path / "run.jsonl"
    log.touch()
    holder = subprocess.Popen(  # another process holding the writer's lock (flock, as ResultLog)
        [sys.executable, "-c", "import fcntl, os, sys, time\n"
         f"fd = os.open({str(log)!r}, os.O_RDWR)\nfcntl.flock(fd, fcntl.LOCK_EX)\n"
         "print('locked', flush=True)\ntime.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(LogLockedError):
            certify_reward(linear_policy, "CartPole-v1", 0.2, [0.0], episodes=8, horizon=10,
                           log=log)
    finally:
        holder.kill()
        holder.communicate()
    cert = certify_reward(linear_policy, "CartPole-v1", 0.2, [0.0], episodes=8, horizon=10, log=log)
    assert cert.episodes == 8


def test_process_backend_is_bit_identical_to_serial() -> None:
    torch.manual_seed(0)
    pol = TorchPolicy(mlp(4, 2, (16,)))  # picklable: it crosses to spawned workers
    kw = dict(episodes=45, seed=6, horizon=60, bound="dkw", quantiles=(0.1, 0.5))
    ser = certify_reward(pol, "CartPole-v1", 0.3, [0.0, 0.3], backend="serial", chunk_size=45, **kw)
    proc = certify_reward(pol, "CartPole-v1", 0.3, [0.0, 0.3], backend="process", chunk_size=8,
                          workers=2, **kw)
    assert proc.backend == "process" and ser.backend == "serial"
    assert (proc.expected, proc.quantiles, proc.p_lower, proc.clean_mean) == \
        (ser.expected, ser.quantiles, ser.p_lower, ser.clean_mean)


def test_rollouts_are_split_invariant_across_engines() -> None:
    full = smoothed_rollouts(linear_policy, "CartPole-v1", 0.3, 24, seed=9, horizon=120)
    split = smoothed_rollouts(linear_policy, "CartPole-v1", 0.3, 24, seed=9, horizon=120, batch_size=5)
    vec = smoothed_rollouts(linear_policy, "CartPole-v1", 0.3, np.arange(12, 24), seed=9,
                            horizon=120, backend="vector")
    np.testing.assert_array_equal(full.returns, split.returns)
    np.testing.assert_array_equal(full.returns[12:], vec.returns)
    acro = smoothed_rollouts(lambda o: np.where(o[:, 5] > 0, 2, 0), "Acrobot-v1", 0.1, 6, seed=1)
    naive = smoothed_rollouts(lambda o: np.where(o[:, 5] > 0, 2, 0), "Acrobot-v1", 0.1, 6, seed=1,
                              backend="naive")
    np.testing.assert_array_equal(acro.returns, naive.returns)


def test_clean_rollouts_match_a_plain_gymnasium_loop() -> None:
    def pol(o: np.ndarray) -> np.ndarray:
        return np.where(o[:, 5] > 0, 2, 0)

    ids = np.array([0, 3, 4])
    ref = []
    env = gym.make("Acrobot-v1", max_episode_steps=150)
    for k in ids:  # naive reference: gymnasium, one episode at a time, no noise
        obs, _ = env.reset(seed=int(k))  # episode_reset_seed(0, k) == k
        total, done = 0.0, False
        while not done:
            obs, r, term, trunc, _ = env.step(int(pol(obs[None])[0]))
            total += float(r)
            done = term or trunc
        ref.append(total)
    for backend in ("batched", "naive", "vector"):
        got = clean_rollouts(pol, "Acrobot-v1", ids, horizon=150, backend=backend)
        np.testing.assert_array_equal(got.returns, ref)
    with pytest.raises(ValueError, match="sigma"):
        smoothed_rollouts(pol, "Acrobot-v1", 0.0, 2)


def test_bad_input_is_rejected() -> None:
    r = np.full(10, 5.0)
    with pytest.raises(ValueError, match="sigma"):
        certify_returns(r, 0.0, [0.1], return_bounds=(0, 10))
    with pytest.raises(ValueError, match="budgets"):
        certify_returns(r, 0.1, [-0.1], return_bounds=(0, 10))
    with pytest.raises(ValueError, match="alpha"):
        certify_returns(r, 0.1, [0.1], alpha=1.5, return_bounds=(0, 10))
    with pytest.raises(ValueError, match="return_bounds"):
        certify_returns(r, 0.1, [0.1])
    with pytest.raises(ValueError, match="return_bounds"):
        certify_returns(r, 0.1, [0.1], return_bounds=(0, 3))
    with pytest.raises(ValueError, match="bound"):
        certify_returns(r, 0.1, [0.1], return_bounds=(0, 10), bound="hoeffding")
    with pytest.raises(ValueError, match="episodes"):
        certify_reward(linear_policy, "CartPole-v1", 0.2, [0.1], episodes=0)
    with pytest.raises(ValueError, match="horizon"):
        certify_reward(linear_policy, lambda: gym.make("CartPole-v1", max_episode_steps=None).unwrapped,
                       0.2, [0.1], episodes=2, return_bounds=(0, 500))
    with pytest.raises(TypeError, match="Box"):
        certify_reward(lambda o: np.zeros(len(o), int), "FrozenLake-v1", 0.2, [0.1], episodes=2)
    with pytest.raises(ValueError, match="return_bounds"):
        certify_reward(lambda o: np.zeros((len(o), 1), np.float32), "MountainCar-v0", 0.2, [0.1],
                       episodes=2)
    with pytest.raises(ValueError, match="policy"):
        smoothed_rollouts(lambda o: np.zeros(1, int), "CartPole-v1", 0.2, 3, horizon=5)
