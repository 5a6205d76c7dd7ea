"""Wrappers and twins by gymnasium's and stable-baselines3's rules: check_env, seeding,
per-sub-env noise streams, frame stacks noised per frame, and the twins' flags."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from certkit.core import gaussian_noise
from certkit.rl.envs import BatchedCartPole, episode_reset_seed, frame_stack
from certkit.rl.noise import (
    GaussianObservationNoise,
    VectorGaussianObservationNoise,
    make_vec_env,
    noisy_box,
)
from certkit.rl.rollout import smoothed_rollouts


def _warnings_of(fn, env) -> set[str]:
    """The warnings a checker emits, minus gymnasium's note that the env is wrapped."""
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        fn(env)
    return {str(w.message) for w in got if "different from the unwrapped" not in str(w.message)}


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Acrobot-v1", "Pendulum-v1"])
def test_noise_wrapper_passes_gymnasium_and_sb3_check_env(env_id: str) -> None:
    sb3_env_checker = pytest.importorskip("stable_baselines3.common.env_checker")

    def gym_check(e):
        check_env(e, skip_render_check=True)

    raw = (_warnings_of(gym_check, gym.make(env_id).unwrapped)
           | _warnings_of(sb3_env_checker.check_env, gym.make(env_id).unwrapped))
    env = GaussianObservationNoise(gym.make(env_id), 0.5, 3)
    # no assertion error, and no warning the unwrapped env does not give itself
    assert _warnings_of(gym_check, env) <= raw
    assert _warnings_of(sb3_env_checker.check_env, env) <= raw


def test_declared_space_contains_every_noisy_observation_and_reset_seed_is_reproducible() -> None:
    env = GaussianObservationNoise(gym.make("Acrobot-v1"), 0.5, 1)
    assert env.observation_space.contains(env.reset(seed=0)[0])
    rng = np.random.default_rng(0)
    for _ in range(300):  # the old wrapper's noisy cos/sin left [-1, 1] at most steps
        o, *_, info = env.step(int(rng.integers(3)))
        assert env.observation_space.contains(o)
        assert set(info) >= {"noise_episode", "noise_step"}
    a, ia = env.reset(seed=123)
    b, ib = env.reset(seed=123)
    np.testing.assert_array_equal(a, b)
    assert ia == ib and set(ia) == {"noise_episode", "noise_step"}
    c, ic = env.reset()
    env.reset(seed=123)
    e, ie = env.reset()
    np.testing.assert_array_equal(c, e)
    assert ic == ie and ic["noise_episode"] != ia["noise_episode"]
    # widening covers the sampler's extreme draws: |z| < 8.7 < NOISE_ZMAX
    box = noisy_box(gym.spaces.Box(-1.0, 1.0, (2,), np.float32), 0.1)
    np.testing.assert_allclose(box.high, [1.9, 1.9], rtol=1e-6)
    z = gaussian_noise(2_000_000, 1.0, 5)
    assert np.abs(z).max() < 6.0


def test_step_before_reset_is_refused() -> None:
    with pytest.raises(gym.error.ResetNeeded):
        GaussianObservationNoise(gym.make("CartPole-v1"), 0.1).step(0)
    with pytest.raises(gym.error.ResetNeeded):
        BatchedCartPole(3).step(np.zeros(3, np.int64))


def _noise_of(venv, steps: int, seed: int | None) -> np.ndarray:
    """The noise each sub-env adds (noisy minus clean), (steps, n, D)."""
    _, info = venv.reset(seed=seed)
    out = []
    for _ in range(steps):
        keys, t = info["noise_episode"], info["noise_step"]
        out.append(np.stack([gaussian_noise(4, venv.sigma, venv.noise_seed, int(s) * 4,
                                            stream=int(k)) for k, s in zip(keys, t, strict=True)]))
        _, _, _, _, info = venv.step(np.ones(venv.num_envs, np.int64))
    return np.asarray(out)


def test_make_vec_env_gives_each_sub_env_its_own_stream_and_replays_it() -> None:
    import certkit.rl

    assert certkit.rl.make_vec_env is make_vec_env
    a = certkit.rl.make_vec_env("CartPole-v1", 3, 0.2, seed=4)
    assert isinstance(a, VectorGaussianObservationNoise)
    for seed, steps in ((None, 5), (10, 40)):  # unseeded: only before the first (random) end
        na = _noise_of(a, steps, seed)
        nb = _noise_of(make_vec_env("CartPole-v1", 3, 0.2, seed=4), steps, seed)
        np.testing.assert_array_equal(na, nb)  # the same noise on rerun
        for i in range(3):
            for j in range(i):
                assert not np.allclose(na[:, i], na[:, j])  # sub-envs never share noise
    obs, _ = a.reset(seed=1)
    assert a.observation_space.contains(obs)


def test_sb3_make_vec_env_wrapper_kwargs_give_per_rank_streams() -> None:
    env_util = pytest.importorskip("stable_baselines3.common.env_util")
    sb3_make_vec_env = env_util.make_vec_env

    def first_obs(seed: int) -> np.ndarray:
        venv = sb3_make_vec_env("CartPole-v1", n_envs=3, seed=seed,
                                wrapper_class=GaussianObservationNoise,
                                wrapper_kwargs={"sigma": 0.3, "seed": 7})
        obs = [venv.reset()]
        for _ in range(40):  # through SB3's own autoresets
            obs.append(venv.step(np.ones(3, np.int64))[0])
        return np.asarray(obs)

    o1, o2 = first_obs(0), first_obs(0)
    np.testing.assert_array_equal(o1, o2)
    clean = [gym.make("CartPole-v1").reset(seed=i)[0] for i in range(3)]
    noise0 = o1[0] - np.asarray(clean)
    assert not np.allclose(noise0[0], noise0[1]) and not np.allclose(noise0[1], noise0[2])


def test_batched_twin_flags_equal_gymnasium_when_terminating_on_the_last_step() -> None:
    # pole falls with action 1 always: find seeds whose fall step L is the most common one,
    # and cap the episode at L so that gymnasium reports (True, True) there.
    falls = {}
    for s in range(40):
        env = gym.make("CartPole-v1")
        env.reset(seed=s)
        t, term = 0, False
        while not term:
            _, _, term, _, _ = env.step(1)
            t += 1
        falls[s] = t
    L = max(set(falls.values()), key=list(falls.values()).count)
    seeds = list(falls)
    twin = BatchedCartPole(len(seeds), max_episode_steps=L)
    twin.reset(seed=seeds)
    envs = [gym.make("CartPole-v1", max_episode_steps=L) for _ in seeds]
    for e, s in zip(envs, seeds, strict=True):
        e.reset(seed=s)
    both = 0
    done = np.zeros(len(seeds), bool)
    for _ in range(L):
        _, _, bt, btr, _ = twin.step(np.ones(len(seeds), np.int64))
        for i, e in enumerate(envs):
            if done[i]:
                continue
            _, _, term, trunc, _ = e.step(1)
            assert (bool(bt[i]), bool(btr[i])) == (term, trunc)
            both += term and trunc
            done[i] = term or trunc
    assert both >= 1  # the (True, True) case happened and matched


def _stacked(k: int, padding: str = "reset"):
    def factory() -> gym.Env:
        return gym.wrappers.FrameStackObservation(gym.make("CartPole-v1"), k, padding_type=padding)

    return factory


def stack_policy(o: np.ndarray) -> np.ndarray:
    """Uses three frames, so stacking (and its noise) matters."""
    return (o[:, -1, 2] + 0.2 * o[:, 0, 3] - o[:, 1, 1] > 0).astype(np.int64)


def _reference_stacked_returns(k: int, padding: str, sigma: float, seed: int, episodes: int,
                               horizon: int) -> np.ndarray:
    """Hand-written loop: every frame noised ONCE (stream (seed, episode), step t at t·D),
    then stacked; the padding as gymnasium's."""
    out = []
    for ep in range(episodes):
        env = gym.make("CartPole-v1")
        o, _ = env.reset(seed=episode_reset_seed(seed, ep))
        f0 = o + gaussian_noise(4, sigma, seed, 0, stream=ep)
        frames = [f0] * k if padding == "reset" else [np.zeros(4, np.float32)] * (k - 1) + [f0]
        ret = 0.0
        for t in range(horizon):
            a = int(stack_policy(np.stack(frames)[None])[0])
            o, r, term, trunc, _ = env.step(a)
            ret += r
            if term or trunc:
                break
            frames = [*frames[1:], o + gaussian_noise(4, sigma, seed, (t + 1) * 4, stream=ep)]
        out.append(ret)
    return np.asarray(out)


@pytest.mark.parametrize("padding", ["reset", "zero"])
def test_frame_stacks_are_noised_per_frame_like_the_reference_loop(padding: str) -> None:
    sigma, seed, m, T = 0.3, 2, 8, 60
    ref = _reference_stacked_returns(3, padding, sigma, seed, m, T)
    assert ref.std() > 0
    for engine in ("batched", "vector", "naive"):
        ro = smoothed_rollouts(stack_policy, _stacked(3, padding), sigma, m, seed=seed,
                               horizon=T, backend=engine)
        np.testing.assert_array_equal(ro.returns, ref, err_msg=engine)


def test_frame_stack_budget_counts_per_frame_and_unmodelled_stacks_are_refused() -> None:
    class RandomFrameAttack:
        per_frame = True
        budget = 0.5

        def begin(self, ids):
            self.left = np.full(ids.size, self.budget**2)

        def perturb(self, obs, active, t):
            assert obs.shape[1:] == (4,)  # the new frame, not the stack
            eps = np.full(obs.shape, 0.05, np.float32) * active[:, None]
            use = np.minimum((eps.astype(np.float64) ** 2).sum(1), self.left)
            self.left -= use
            return np.where((self.left > 0)[:, None], eps, 0).astype(np.float32)

    ro = smoothed_rollouts(stack_policy, _stacked(4), 0.2, 4, seed=0, horizon=50,
                           attack=RandomFrameAttack())
    assert ro.spent.max() <= 0.5 + 1e-6 and ro.spent.min() > 0.3
    from certkit.rl.attacks import AdaptiveSmoothedAttack
    from certkit.rl.policies import mlp

    net = torch.nn.Sequential(torch.nn.Flatten(), mlp(12, 2))
    with pytest.raises(ValueError, match="frame stack"):
        smoothed_rollouts(net, _stacked(3), 0.2, 2, horizon=5,
                          attack=AdaptiveSmoothedAttack(net, 0.2, 0.5))
    on_top = gym.wrappers.TransformObservation(_stacked(3)(), lambda o: o * 2,
                                               _stacked(3)().observation_space)
    with pytest.raises(ValueError, match="on top of FrameStackObservation"):
        frame_stack(on_top)
    with pytest.raises(ValueError, match="only one"):
        frame_stack(gym.wrappers.FrameStackObservation(_stacked(2)(), 2))
    with pytest.raises(ValueError, match="before frame stacking"):
        GaussianObservationNoise(_stacked(3)(), 0.5)
