"""Gaussian observation noise for policy smoothing (Kumar, Levine & Feizi, ICLR 2022,
arXiv 2106.11420): the smoothed agent acts on ``o_t + δ_t`` with fresh ``δ_t ~ N(0, σ²I)``
at every step.

The noise comes from certkit's counter-based Philox sampler keyed by
``(seed, episode, step)``: step ``t`` of episode ``k`` uses elements
``[t·D, (t+1)·D)`` of the stream ``(seed, k)``, where ``D`` is the flattened observation
size. The noise of an episode is therefore the same whether it runs alone, in a vector env
or in a batch of 10,000, and never touches the env's ``np_random`` (which, on a wrapper,
is the wrapped env's generator: using it would perturb the env's own randomness).

Noise goes on the raw observation, *before* any frame stacking: apply these wrappers
first, then stack (``FrameStackObservation(GaussianObservationNoise(env, ...), k)``); a
wrapper applied on top of a frame stack is rejected, since it would re-noise old frames.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt
from gymnasium.vector import AutoresetMode, VectorEnv, VectorObservationWrapper
from gymnasium.vector.utils import batch_space

from certkit.core import gaussian_noise, gaussian_rows
from certkit.core.validation import check_int, check_seed, check_sigma

# The sampler's normals are Box-Muller on (0, 1) uniforms that are never closer to 0 than
# 2^-25 (float32) or 2^-54 (float64), so every draw satisfies |z| <= sqrt(-2 ln 2^-54) < 8.7:
# widening a Box by NOISE_ZMAX·σ on each side contains every noisy observation.
NOISE_ZMAX = 9.0
_KEY_TAG = 0x6E6F697365  # "noise": the key derivation is not the env's own seeding


def _check_box(space: gym.Space[Any], name: str = "env") -> int:
    if not isinstance(space, gym.spaces.Box):
        raise TypeError(f"{name}: observation_space must be a gymnasium.spaces.Box for Gaussian "
                        f"observation noise, got {type(space).__name__} (flatten Dict/Tuple "
                        f"spaces with gymnasium.wrappers.FlattenObservation first)")
    return int(np.prod(space.shape))


def noisy_box(space: gym.spaces.Box, sigma: float) -> gym.spaces.Box:
    """The declared space of ``o + δ``, ``δ ~ N(0, σ²I)`` from certkit's sampler: ``space``
    widened by ``NOISE_ZMAX·σ`` on each side (float32 unless the space is float64), so it
    contains every noisy observation (gymnasium's and SB3's ``check_env`` test this)."""
    dt = np.dtype(np.float64) if space.dtype == np.float64 else np.dtype(np.float32)
    big = float(np.finfo(dt).max)
    low = np.clip(np.asarray(space.low, np.float64) - NOISE_ZMAX * sigma, -big, big)
    high = np.clip(np.asarray(space.high, np.float64) + NOISE_ZMAX * sigma, -big, big)
    low = np.where(np.isneginf(space.low), -np.inf, low)
    high = np.where(np.isposinf(space.high), np.inf, high)
    return gym.spaces.Box(low.astype(dt), high.astype(dt), shape=space.shape, dtype=dt)


def seeded_episode_key(reset_seed: int, j: int) -> int:
    """The noise stream of the ``j``-th episode after ``reset(seed=reset_seed)`` (``j = 0``
    for that reset, then one per unseeded reset): a 64-bit hash of the reset seed (numpy's
    SeedSequence, any non-negative int) plus ``j``, modulo 2^64. Sub-envs reset with
    different seeds (SB3's ``make_vec_env(seed=s)`` resets rank ``i`` with ``s + i``) get
    unrelated streams; the same seed gives the same noise."""
    if isinstance(reset_seed, bool) or not isinstance(reset_seed, (int, np.integer)) or reset_seed < 0:
        raise ValueError(f"seed: expected a non-negative integer reset seed, got {reset_seed!r}")
    lo, hi = np.random.SeedSequence(int(reset_seed), spawn_key=(_KEY_TAG,)).generate_state(2)
    return (int(hi) << 32 | int(lo)) + int(j) & (2**64 - 1)


def _reject_frame_stack(env: Any) -> None:
    e = env
    while e is not None:
        if type(e).__name__ in ("FrameStackObservation", "FrameStackObservationV0"):
            raise ValueError("env: Gaussian noise must be applied before frame stacking "
                             "(noise first, then stack): wrap the env with "
                             "GaussianObservationNoise, then FrameStackObservation")
        e = getattr(e, "env", None)


class _EpisodeKeys:
    """Noise stream of every episode of ``n`` slots (sub-envs).

    Slot ``i``'s ``j``-th episode since its last seeded reset ``s`` has key
    :func:`seeded_episode_key` ``(s, j)``; a slot never reset with a seed uses
    ``offset_i + j·stride`` (deterministic in the wrapper's noise seed alone)."""

    def __init__(self, offsets: npt.NDArray[np.int64], stride: int) -> None:
        self.offsets, self.stride = offsets, stride
        self.base: list[int | None] = [None] * offsets.size
        self.count = np.zeros(offsets.size, dtype=np.int64)
        self.keys = np.zeros(offsets.size, dtype=np.uint64)

    def start(self, i: int, seed: int | None) -> int:
        if seed is not None:
            self.base[i] = int(seed)
            self.count[i] = 0
        b = self.base[i]
        key = (int(self.offsets[i]) + int(self.count[i]) * self.stride if b is None
               else seeded_episode_key(b, int(self.count[i])))
        self.count[i] += 1
        self.keys[i] = key
        return key


class GaussianObservationNoise(gym.ObservationWrapper,  # type: ignore[type-arg]
                               gym.utils.RecordConstructorArgs):
    """Adds N(0, σ²I) to every observation, keyed by (seed, episode, step).

    env: a gymnasium Env with a Box observation space (any shape; D = its size).
    Step ``t`` of an episode with key ``k`` adds elements ``[t·D, (t+1)·D)`` of the Philox
    stream ``(seed, k)``. The key follows gymnasium's seeding rules: ``reset(seed=s)`` starts
    the key sequence :func:`seeded_episode_key` ``(s, 0), (s, 1), ...`` (one per later
    unseeded reset), so the same reset seed always gives the same noise; an env never
    reset with a seed uses ``episode_offset + j·episode_stride`` for its ``j``-th episode;
    ``reset(options={"episode": k})`` sets the key explicitly.
    The declared observation space is the env's widened by ``NOISE_ZMAX·σ``
    (:func:`noisy_box`): it contains every noisy observation. ``info["noise_episode"]`` and
    ``info["noise_step"]`` (both at reset and at every step) record the key of the last draw.
    """

    def __init__(self, env: gym.Env, sigma: float, seed: int = 0, *,
                 episode_offset: int = 0, episode_stride: int = 1) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, sigma=sigma, seed=seed,
                                                 episode_offset=episode_offset,
                                                 episode_stride=episode_stride)
        gym.ObservationWrapper.__init__(self, env)
        self.sigma = check_sigma(sigma)
        self.noise_seed = check_seed(seed)
        self._dim = _check_box(env.observation_space)
        _reject_frame_stack(env)
        self.episode_offset = check_int(episode_offset, "episode_offset", minimum=0)
        self.episode_stride = check_int(episode_stride, "episode_stride", minimum=1)
        self.observation_space = noisy_box(env.observation_space, self.sigma)  # type: ignore[arg-type]
        self._keys = _EpisodeKeys(np.array([self.episode_offset]), self.episode_stride)
        self.episode = -1
        self.t = 0

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        if options and "episode" in options:
            self.episode = check_seed(options["episode"], "options['episode']")
            options = {k: v for k, v in options.items() if k != "episode"} or None
        else:
            self.episode = self._keys.start(0, seed)
        self.t = 0
        obs, info = self.env.reset(seed=seed, options=options)
        return self._noisy(obs), self._info(info)

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        if self.episode < 0:
            raise gym.error.ResetNeeded("step: call reset() before step()")
        self.t += 1
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._noisy(obs), reward, terminated, truncated, self._info(info)

    def observation(self, observation: Any) -> Any:
        return self._noisy(observation)

    def _info(self, info: dict[str, Any]) -> dict[str, Any]:
        info = dict(info)
        info["noise_episode"] = self.episode
        info["noise_step"] = self.t
        return info

    def _noisy(self, obs: Any) -> npt.NDArray[Any]:
        o = np.asarray(obs)
        dt = self.observation_space.dtype
        noise = gaussian_noise(o.shape, self.sigma, self.noise_seed, offset=self.t * self._dim,
                               dtype=dt, stream=self.episode)
        return (o.astype(dt, copy=False) + noise).astype(dt, copy=False)


class VectorGaussianObservationNoise(VectorObservationWrapper):
    """The vector-env version (``gym.make_vec``): one sampler call per step for all envs.

    Sub-env ``i`` follows :class:`GaussianObservationNoise`'s keys: after
    ``reset(seed=s)`` (sub-env ``i`` reset with ``s + i``, or the ``i``-th of a list of
    seeds) its episodes are keyed :func:`seeded_episode_key` ``(s_i, j)``; never seeded,
    its ``j``-th episode is ``j·num_envs + i``. The step counter restarts at every
    (auto)reset. Supports the NEXT_STEP, SAME_STEP and DISABLED autoreset modes.
    ``infos["noise_episode"]`` (uint64) and ``infos["noise_step"]`` (int64), shape
    (num_envs,), give the keys. The single observation space is widened as
    :func:`noisy_box`.
    """

    def __init__(self, env: VectorEnv, sigma: float, seed: int = 0) -> None:  # type: ignore[type-arg]
        super().__init__(env)
        self.sigma = check_sigma(sigma)
        self.noise_seed = check_seed(seed)
        self._dim = _check_box(env.single_observation_space, "env")
        _reject_frame_stack(env)
        n = env.num_envs
        self.single_observation_space = noisy_box(env.single_observation_space,  # type: ignore[arg-type]
                                                  self.sigma)
        self.observation_space = batch_space(self.single_observation_space, n)
        self._keys = _EpisodeKeys(np.arange(n, dtype=np.int64), n)
        self.steps = np.zeros(n, dtype=np.int64)
        self._ended = np.zeros(n, dtype=bool)
        self._mode = AutoresetMode(env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP))

    @property
    def episodes(self) -> npt.NDArray[np.uint64]:
        """(num_envs,) the noise key of each sub-env's current episode."""
        return self._keys.keys

    def reset(self, *, seed: int | list[int | None] | None = None,
              options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        n = self.num_envs
        mask = np.ones(n, dtype=bool)
        if options and "reset_mask" in options:
            mask = np.asarray(options["reset_mask"], dtype=bool)
        if seed is None or isinstance(seed, (int, np.integer)):
            seeds: list[int | None] = [None if seed is None else int(seed) + i for i in range(n)]
        else:
            seeds = list(seed)
        obs, info = self.env.reset(seed=seed, options=options)
        for i in np.flatnonzero(mask):
            self._keys.start(int(i), seeds[i])
        self.steps[mask] = 0
        self._ended[mask] = False
        return self._noisy(obs), self._info(info)

    def _restart(self, idx: npt.NDArray[np.intp]) -> None:
        for i in idx:
            self._keys.start(int(i), None)
        self.steps[idx] = 0

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        obs, rew, term, trunc, info = self.env.step(actions)
        done = np.asarray(term) | np.asarray(trunc)
        if self._mode == AutoresetMode.NEXT_STEP:
            new = self._ended
            self.steps[~new] += 1
            self._restart(np.flatnonzero(new))
            self._ended = done.copy()
        elif self._mode == AutoresetMode.SAME_STEP:
            self.steps += 1
            self._restart(np.flatnonzero(done))
        else:
            self.steps += 1
        return self._noisy(obs), rew, term, trunc, self._info(info)

    def observations(self, observations: Any) -> Any:
        return self._noisy(observations)

    def _info(self, info: dict[str, Any]) -> dict[str, Any]:
        info = dict(info)
        info["noise_episode"] = self.episodes.copy()
        info["noise_step"] = self.steps.copy()
        return info

    def _noisy(self, obs: Any) -> npt.NDArray[Any]:
        o = np.asarray(obs)
        dt = self.single_observation_space.dtype
        noise = gaussian_rows(o.shape, self.sigma, self.noise_seed, streams=self.episodes,
                              offsets=self.steps * self._dim, dtype=dt)
        return (o.astype(dt, copy=False) + noise).astype(dt, copy=False)


def make_vec_env(env_id: str, n_envs: int, sigma: float, seed: int = 0, *,
                 vectorization_mode: str = "sync", **env_kwargs: Any) -> VectorEnv:  # type: ignore[type-arg]
    """``n_envs`` copies of ``gym.make(env_id, **env_kwargs)`` in a gymnasium vector env
    with Gaussian observation noise (σ = ``sigma``, noise seed ``seed``), one noise stream
    per sub-env: unseeded, sub-env ``i``'s ``j``-th episode is keyed ``j·n_envs + i``;
    after ``reset(seed=s)``, by :func:`seeded_episode_key` ``(s + i, j)``. Sub-envs never
    share noise, and a rerun replays it exactly.

    The stable-baselines3 equivalent (its VecEnv, not gymnasium's)::

        from stable_baselines3.common.env_util import make_vec_env
        venv = make_vec_env(env_id, n_envs, seed=s, wrapper_class=GaussianObservationNoise,
                            wrapper_kwargs={"sigma": sigma, "seed": noise_seed})

    (SB3 resets rank ``i`` with seed ``s + i``, which keys its noise; pass ``seed=``, or
    every rank replays the same noise.)
    """
    n = check_int(n_envs, "n_envs", minimum=1)
    venv = gym.make_vec(env_id, num_envs=n, vectorization_mode=vectorization_mode, **env_kwargs)
    return VectorGaussianObservationNoise(venv, sigma, seed)


def smooth_observations(env: Any, sigma: float, seed: int = 0) -> Any:
    """Wrap a gymnasium Env or VectorEnv with the matching Gaussian noise wrapper."""
    if isinstance(env, VectorEnv):
        return VectorGaussianObservationNoise(env, sigma, seed)
    if isinstance(env, gym.Env):
        return GaussianObservationNoise(env, sigma, seed)
    raise TypeError(f"env: expected a gymnasium Env or VectorEnv, got {type(env).__name__}")
