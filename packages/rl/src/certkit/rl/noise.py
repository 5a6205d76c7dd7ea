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

from certkit.core import gaussian_noise, gaussian_rows
from certkit.core.validation import check_int, check_seed, check_sigma


def _check_box(space: gym.Space[Any], name: str = "env") -> int:
    if not isinstance(space, gym.spaces.Box):
        raise TypeError(f"{name}: observation_space must be a gymnasium.spaces.Box for Gaussian "
                        f"observation noise, got {type(space).__name__} (flatten Dict/Tuple "
                        f"spaces with gymnasium.wrappers.FlattenObservation first)")
    return int(np.prod(space.shape))


def _reject_frame_stack(env: Any) -> None:
    e = env
    while e is not None:
        if type(e).__name__ in ("FrameStackObservation", "FrameStackObservationV0"):
            raise ValueError("env: Gaussian noise must be applied before frame stacking "
                             "(noise first, then stack): wrap the env with "
                             "GaussianObservationNoise, then FrameStackObservation")
        e = getattr(e, "env", None)


class GaussianObservationNoise(gym.ObservationWrapper):  # type: ignore[type-arg]
    """Adds N(0, σ²I) to every observation, keyed by (seed, episode, step).

    env: a gymnasium Env with a Box observation space (any shape; D = its size).
    Episode ``k`` (0 for the first ``reset``, then ``episode_offset + j·episode_stride`` for
    the j-th) can also be set explicitly with ``reset(options={"episode": k})``.
    ``info["noise_episode"]`` and ``info["noise_step"]`` record the key of the last draw.
    """

    def __init__(self, env: gym.Env, sigma: float, seed: int = 0, *,
                 episode_offset: int = 0, episode_stride: int = 1) -> None:
        super().__init__(env)
        self.sigma = check_sigma(sigma)
        self.noise_seed = check_seed(seed)
        self._dim = _check_box(env.observation_space)
        _reject_frame_stack(env)
        self.episode_offset = check_int(episode_offset, "episode_offset", minimum=0)
        self.episode_stride = check_int(episode_stride, "episode_stride", minimum=1)
        self._resets = 0
        self.episode = -1
        self.t = 0

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        if options and "episode" in options:
            self.episode = check_seed(options["episode"], "options['episode']")
            options = {k: v for k, v in options.items() if k != "episode"} or None
        else:
            self.episode = self.episode_offset + self._resets * self.episode_stride
        self._resets += 1
        self.t = 0
        obs, info = self.env.reset(seed=seed, options=options)
        return self._noisy(obs), self._info(info)

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        if self.episode < 0:
            raise RuntimeError("call reset() before step()")
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
        dt = o.dtype if o.dtype in (np.float32, np.float64) else np.float32
        noise = gaussian_noise(o.shape, self.sigma, self.noise_seed, offset=self.t * self._dim,
                               dtype=dt, stream=self.episode)
        return (o.astype(dt, copy=False) + noise).astype(dt, copy=False)


class VectorGaussianObservationNoise(VectorObservationWrapper):
    """The vector-env version (``gym.make_vec``): one sampler call per step for all envs.

    Sub-env ``i``'s ``j``-th episode has id ``j·num_envs + i``; its step counter restarts at
    every (auto)reset. Supports the NEXT_STEP, SAME_STEP and DISABLED autoreset modes.
    ``infos["noise_episode"]`` and ``infos["noise_step"]`` (shape (num_envs,)) give the keys.
    """

    def __init__(self, env: VectorEnv, sigma: float, seed: int = 0) -> None:  # type: ignore[type-arg]
        super().__init__(env)
        self.sigma = check_sigma(sigma)
        self.noise_seed = check_seed(seed)
        self._dim = _check_box(env.single_observation_space, "env")
        _reject_frame_stack(env)
        n = env.num_envs
        self.episodes = np.arange(n, dtype=np.int64) - n
        self.steps = np.zeros(n, dtype=np.int64)
        self._ended = np.zeros(n, dtype=bool)
        self._mode = AutoresetMode(env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP))

    def reset(self, *, seed: int | list[int | None] | None = None,
              options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        mask = np.ones(self.num_envs, dtype=bool)
        if options and "reset_mask" in options:
            mask = np.asarray(options["reset_mask"], dtype=bool)
        obs, info = self.env.reset(seed=seed, options=options)
        self.episodes[mask] += self.num_envs
        self.steps[mask] = 0
        self._ended[mask] = False
        return self._noisy(obs), self._info(info)

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        obs, rew, term, trunc, info = self.env.step(actions)
        done = np.asarray(term) | np.asarray(trunc)
        if self._mode == AutoresetMode.NEXT_STEP:
            new = self._ended
            self.episodes[new] += self.num_envs
            self.steps[new] = 0
            self.steps[~new] += 1
            self._ended = done.copy()
        elif self._mode == AutoresetMode.SAME_STEP:
            self.steps += 1
            self.episodes[done] += self.num_envs
            self.steps[done] = 0
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
        dt = o.dtype if o.dtype in (np.float32, np.float64) else np.float32
        noise = gaussian_rows(o.shape, self.sigma, self.noise_seed, streams=self.episodes,
                              offsets=self.steps * self._dim, dtype=dt)
        return (o.astype(dt, copy=False) + noise).astype(dt, copy=False)


def smooth_observations(env: Any, sigma: float, seed: int = 0) -> Any:
    """Wrap a gymnasium Env or VectorEnv with the matching Gaussian noise wrapper."""
    if isinstance(env, VectorEnv):
        return VectorGaussianObservationNoise(env, sigma, seed)
    if isinstance(env, gym.Env):
        return GaussianObservationNoise(env, sigma, seed)
    raise TypeError(f"env: expected a gymnasium Env or VectorEnv, got {type(env).__name__}")
