"""Batched dynamics vs gymnasium (naive reference), and the noise wrappers' keying."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from certkit.core import gaussian_noise
from certkit.rl.envs import BatchedAcrobot, BatchedCartPole, batched_dynamics, resolve_horizon
from certkit.rl.noise import (
    GaussianObservationNoise,
    VectorGaussianObservationNoise,
    seeded_episode_key,
    smooth_observations,
)


@pytest.mark.parametrize("env_id,cls,n_act", [("CartPole-v1", BatchedCartPole, 2),
                                              ("Acrobot-v1", BatchedAcrobot, 3)])
def test_batched_dynamics_match_gymnasium_step_for_step(env_id: str, cls: type, n_act: int) -> None:
    n, steps = 6, 120
    rng = np.random.default_rng(0)
    actions = rng.integers(0, n_act, size=(steps, n))
    benv = cls(n, max_episode_steps=100)
    seeds = [11 * i + 3 for i in range(n)]
    bobs, _ = benv.reset(seed=seeds)
    envs = [gym.make(env_id, max_episode_steps=100) for _ in range(n)]
    ref = [e.reset(seed=s)[0] for e, s in zip(envs, seeds, strict=True)]
    np.testing.assert_array_equal(bobs, np.stack(ref))
    alive = np.ones(n, bool)
    for t in range(steps):
        bobs, brew, bterm, btrunc, _ = benv.step(actions[t])
        for i, e in enumerate(envs):
            if not alive[i]:
                assert brew[i] == 0.0  # frozen after the end
                continue
            o, r, term, trunc, _ = e.step(int(actions[t, i]))
            np.testing.assert_allclose(bobs[i], o, rtol=1e-6, atol=1e-6)
            assert brew[i] == r and bool(bterm[i]) == term and bool(btrunc[i]) == trunc
            if term or trunc:
                alive[i] = False
    # reset_mask restarts only the masked envs
    mask = np.zeros(n, bool)
    mask[0] = True
    benv.reset(seed=seeds, options={"reset_mask": mask})
    assert not benv.done[0]


def test_fast_seeded_resets_equal_gymnasium_resets() -> None:
    seeds = [0, 1, 7, 2**32 + 5, 2**40 + 11, 123456789]
    for env_id, cls in (("CartPole-v1", BatchedCartPole), ("Acrobot-v1", BatchedAcrobot)):
        env = gym.make(env_id)
        ref = []
        for s in seeds:
            env.reset(seed=s)
            ref.append(np.array(env.unwrapped.state, dtype=np.float64))
        b = cls(len(seeds))
        b.reset(seed=seeds)
        np.testing.assert_array_equal(b.state.T, np.asarray(ref, dtype=np.float64))
        # the generic (slow) path gives the same states
        np.testing.assert_array_equal(b._initial_states(seeds),
                                      np.stack([b._initial_state(np.random.default_rng(s))
                                                for s in seeds], axis=1))


def test_batched_twin_detection_and_horizon() -> None:
    env = gym.make("CartPole-v1")
    twin = batched_dynamics(env, 3)
    assert isinstance(twin, BatchedCartPole) and twin.max_episode_steps == 500
    wrapped = gym.wrappers.TransformObservation(env, lambda o: o * 2, env.observation_space)
    assert batched_dynamics(wrapped, 3) is None  # unknown wrapper: no twin
    assert batched_dynamics(gym.make("MountainCarContinuous-v0"), 2) is None
    assert resolve_horizon(env, None) == 500 and resolve_horizon(env, 50) == 50
    raw = gym.make("CartPole-v1", max_episode_steps=None).unwrapped
    with pytest.raises(ValueError, match="horizon"):
        resolve_horizon(raw, None)


def test_wrapper_noise_is_keyed_by_seed_episode_step_and_leaves_env_rng_alone() -> None:
    sigma, seed = 0.3, 7
    base = gym.make("CartPole-v1")
    env = GaussianObservationNoise(gym.make("CartPole-v1"), sigma, seed)
    for episode in range(2):
        o, info = env.reset(seed=100 + episode)
        c, _ = base.reset(seed=100 + episode)
        key = seeded_episode_key(100 + episode, 0)
        assert info["noise_episode"] == key
        np.testing.assert_array_equal(o, c + gaussian_noise(4, sigma, seed, 0, stream=key))
        for t in range(1, 6):
            o, _, _term, _trunc, info = env.step(0)
            c, *_ = base.step(0)
            assert info["noise_step"] == t
            np.testing.assert_array_equal(o, c + gaussian_noise(4, sigma, seed, t * 4, stream=key))
    # the wrapped env's generator is not consumed by the noise
    assert env.unwrapped.np_random.bit_generator.state == base.unwrapped.np_random.bit_generator.state
    o, info = env.reset()  # unseeded: the next key of the last seeded sequence
    assert info["noise_episode"] == seeded_episode_key(101, 1)
    o, info = env.reset(seed=1, options={"episode": 42})
    assert info["noise_episode"] == 42


def test_vector_wrapper_matches_single_env_noise() -> None:
    sigma, seed, n = 0.2, 3, 3
    venv = VectorGaussianObservationNoise(gym.make_vec("CartPole-v1", num_envs=n,
                                                       vectorization_mode="sync"), sigma, seed)
    obs, info = venv.reset(seed=5)
    clean = gym.make_vec("CartPole-v1", num_envs=n, vectorization_mode="sync")
    cobs, _ = clean.reset(seed=5)
    for i in range(n):
        key = seeded_episode_key(5 + i, 0)
        assert info["noise_episode"][i] == key
        np.testing.assert_array_equal(obs[i], cobs[i] + gaussian_noise(4, sigma, seed, 0, stream=key))
    for _t in range(1, 40):
        a = np.ones(n, dtype=np.int64)
        obs, _, _term, _trunc, info = venv.step(a)
        cobs, *_ = clean.step(a)
        for i in range(n):
            k, s = info["noise_episode"][i], info["noise_step"][i]
            np.testing.assert_array_equal(obs[i], cobs[i] + gaussian_noise(4, sigma, seed, s * 4, stream=k))
    restarted = [i for i in range(n) if info["noise_episode"][i] != seeded_episode_key(5 + i, 0)]
    later = {i: {seeded_episode_key(5 + i, j) for j in range(1, 40)} for i in range(n)}
    assert restarted and all(info["noise_episode"][i] in later[i]
                             for i in restarted)  # autoreset: the next keys of each sub-env
    assert isinstance(smooth_observations(gym.make("CartPole-v1"), 0.1), GaussianObservationNoise)


def test_noise_goes_before_frame_stacking() -> None:
    env = gym.wrappers.FrameStackObservation(GaussianObservationNoise(gym.make("CartPole-v1"), 0.5, 1), 3)
    o, _ = env.reset(seed=0)
    o2, *_ = env.step(0)
    assert o.shape == (3, 4)
    np.testing.assert_array_equal(o2[1], o[2])  # old frames keep the noise they were drawn with
    with pytest.raises(ValueError, match="before frame stacking"):
        GaussianObservationNoise(gym.wrappers.FrameStackObservation(gym.make("CartPole-v1"), 3), 0.5)


def test_wrapper_bad_input() -> None:
    with pytest.raises(ValueError, match="sigma"):
        GaussianObservationNoise(gym.make("CartPole-v1"), 0.0)
    with pytest.raises(TypeError, match="Box"):
        GaussianObservationNoise(gym.make("FrozenLake-v1"), 0.1)
