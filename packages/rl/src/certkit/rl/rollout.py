"""Smoothed rollouts: run episodes of a policy acting on noisy (and optionally attacked)
observations, batched.

Episode ``k`` of a run with seed ``s`` is a self-contained work unit: the env is reset with
:func:`~certkit.rl.envs.episode_reset_seed` ``(s, k)`` and the smoothing noise at step ``t``
is elements ``[t·D, (t+1)·D)`` of the Philox stream ``(s, k)``. Any split of the episodes
into batches, processes or machines gives bit-identical returns (tested).

Engines (``backend``):

- ``"batched"``: numpy twin of the env (:mod:`certkit.rl.envs`: CartPole, Acrobot); all
  episodes of a batch advance in one array operation, the policy sees the whole batch and
  the noise is one sampler call per step;
- ``"vector"``: a gymnasium ``SyncVectorEnv`` (autoreset DISABLED) built from ``env_fn``,
  the policy and the noise still batched; any gymnasium env with Box observations;
- ``"naive"``: one env, one episode at a time, a policy call per step (the reference);
- ``"auto"``: batched when the env has a numpy twin, else vector.

An attack (see :mod:`certkit.rl.attacks`) sees the clean observations and returns a
perturbation ``ε_t`` added *before* the smoothing noise (the adversary cannot see the noise
it is about to get); the rollout checks that ``sqrt(Σ_t ‖ε_t‖²)`` never exceeds its budget.

Frame stacks: when the env's outermost observation wrapper is gymnasium's
``FrameStackObservation``, the engines run the env below it, noise (and attack) each new
frame once, and stack the noisy frames themselves (:func:`certkit.rl.envs.frame_stack`),
as the authors apply policy smoothing to stacked frames; the budget is per frame.
The policy is checked against the env's spaces once per call
(:func:`certkit.rl.policies.check_policy_env`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import numpy.typing as npt
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from certkit.core import gaussian_rows
from certkit.core.validation import check_int, check_seed, check_sigma
from certkit.rl.envs import (
    EnvFactory,
    FrameStack,
    batched_dynamics,
    below_frame_stack,
    check_box_observations,
    episode_reset_seed,
    frame_stack,
    make_env_factory,
    resolve_horizon,
)
from certkit.rl.policies import as_policy_for_env

BACKENDS = ("auto", "batched", "vector", "naive")
NOISE_BLOCK = 64  # steps of noise fetched per sampler call in the batched engines


class Attack(Protocol):
    """An observation adversary with a total ℓ2 budget over each episode."""

    budget: float

    def begin(self, episode_ids: npt.NDArray[np.int64]) -> None:
        """Start a batch of episodes (reset the per-episode budget accounting)."""

    def perturb(self, obs: npt.NDArray[np.float32], active: npt.NDArray[np.bool_],
                t: int) -> npt.NDArray[np.float32]:
        """obs (N, D) clean observations → ε (N, D); zero rows where not active."""


@dataclass
class Rollouts:
    """Per-episode results. episode_ids, lengths: (m,) int64; returns, spent: (m,) float64
    (spent = the adversary's used ℓ2 budget sqrt(Σ_t ‖ε_t‖²), 0 without attack)."""

    episode_ids: npt.NDArray[np.int64]
    returns: npt.NDArray[np.float64]
    lengths: npt.NDArray[np.int64]
    spent: npt.NDArray[np.float64]
    horizon: int
    backend: str


def _noise(n: int, dim: int, sigma: float, seed: int, ids: npt.NDArray[np.int64],
           t: int) -> npt.NDArray[np.float32]:
    return gaussian_rows((n, dim), sigma, seed, streams=ids,
                         offsets=np.full(n, t * dim, dtype=np.int64))


class _NoiseBlocks:
    """Smoothing noise for a batch, fetched ``block`` steps at a time.

    Row i of step t is elements [t·D, (t+1)·D) of stream (seed, ids[i]) — exactly what one
    ``gaussian_rows((N, D), ..., offsets=t·D)`` call per step returns (the sampler is
    counter-based), but one call covers ``block`` steps of every still-running episode,
    which amortises the sampler's per-row cost over D·block elements instead of D.
    """

    def __init__(self, n: int, dim: int, sigma: float, seed: int, ids: npt.NDArray[np.int64],
                 block: int) -> None:
        self.n, self.dim, self.sigma, self.seed, self.ids, self.block = n, dim, sigma, seed, ids, block
        # (block, n, dim): the rows of one step are contiguous, ready to add.
        self.buf = np.zeros((block, n, dim), dtype=np.float32)
        self.t0 = -block

    def get(self, t: int, active: npt.NDArray[np.bool_]) -> npt.NDArray[np.float32]:
        """(n, dim) noise of step t (rows of finished episodes are stale: unused)."""
        if t >= self.t0 + self.block:
            self.t0 = t
            idx = np.flatnonzero(active)
            if idx.size:
                rows = gaussian_rows((idx.size, self.block * self.dim), self.sigma,
                                     self.seed, streams=self.ids[idx],
                                     offsets=np.full(idx.size, t * self.dim, np.int64))
                blk = rows.reshape(idx.size, self.block, self.dim).transpose(1, 0, 2)
                if idx.size == self.n:
                    self.buf[...] = blk
                else:
                    self.buf[:, idx] = blk
        return self.buf[t - self.t0]


class _Frames:
    """The policy's input: the noisy frame itself, or the last ``k`` noisy frames stacked
    as gymnasium's FrameStackObservation stacks them (each frame noised once, when it is
    observed; the padding of the first steps as the wrapper's ``padding_type``)."""

    def __init__(self, stack: FrameStack | None, n: int, frame_shape: tuple[int, ...]) -> None:
        self.stack, self.frame_shape = stack, frame_shape
        dim = int(np.prod(frame_shape))
        self.shape = frame_shape if stack is None else (stack.size, *frame_shape)
        self.buf = None if stack is None else np.zeros((n, stack.size, dim), dtype=np.float32)

    def see(self, o: npt.NDArray[np.float32], t: int) -> npt.NDArray[np.float32]:
        """o: (n, D) noisy frames of step t → (n, D) or (n, k·D) policy inputs."""
        if self.stack is None or self.buf is None:
            return o
        if t == 0:
            if self.stack.padding == "reset":
                self.buf[...] = o[:, None, :]
            else:
                self.buf[:, :-1] = np.asarray(self.stack.value, np.float32).reshape(1, 1, -1)
                self.buf[:, -1] = o
        else:
            self.buf[:, :-1] = self.buf[:, 1:].copy()
            self.buf[:, -1] = o
        return self.buf.reshape(o.shape[0], -1)


def _run_batch(policy: Any, venv: Any, kind: str, sigma: float, seed: int,
               ids: npt.NDArray[np.int64], horizon: int, attack: Attack | None,
               obs_shape: tuple[int, ...], stack: FrameStack | None = None,
               ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    n = ids.size
    dim = int(np.prod(obs_shape))
    frames = _Frames(stack, n, obs_shape)
    in_shape = frames.shape
    seeds = [episode_reset_seed(seed, int(k)) for k in ids]
    obs, _ = venv.reset(seed=seeds)
    returns = np.zeros(n)
    lengths = np.zeros(n, dtype=np.int64)
    spent2 = np.zeros(n)
    active = np.ones(n, dtype=bool)
    noise = _NoiseBlocks(n, dim, sigma, seed, ids, max(1, min(horizon, NOISE_BLOCK)))
    if attack is not None:
        attack.begin(ids)
    for t in range(horizon):
        o = np.asarray(obs, dtype=np.float32).reshape(n, dim)
        if attack is not None:
            eps = np.asarray(attack.perturb(o.reshape((n, *obs_shape)), active.copy(), t),
                             dtype=np.float32).reshape(n, dim)
            eps[~active] = 0.0
            spent2 += np.square(eps.astype(np.float64)).sum(axis=1)
            o = o + eps
        if sigma > 0:
            o = o + noise.get(t, active)
        o = frames.see(o, t)
        if active.all():
            actions = np.asarray(policy(o.reshape((n, *in_shape))))
            if actions.shape[0] != n:
                raise ValueError(f"policy: returned {actions.shape[0]} actions for {n} observations")
        else:
            idx = np.flatnonzero(active)
            act_sub = np.asarray(policy(o[idx].reshape((idx.size, *in_shape))))
            if act_sub.shape[0] != idx.size:
                raise ValueError(f"policy: returned {act_sub.shape[0]} actions for {idx.size} "
                                 f"observations")
            actions = np.zeros((n, *act_sub.shape[1:]), dtype=act_sub.dtype)
            actions[idx] = act_sub
        if kind == "vector":
            for i in np.flatnonzero(~active):  # keep finished envs valid: any legal action
                actions[i] = np.asarray(venv.single_action_space.sample(), dtype=actions.dtype)
        obs, rew, term, trunc, _ = venv.step(actions)
        np.add(returns, np.asarray(rew, dtype=np.float64), out=returns, where=active)
        lengths += active
        ended = np.asarray(term) | np.asarray(trunc)
        active &= ~ended
        if not active.any():
            break
        if kind == "vector" and ended.any():
            # DISABLED autoreset: a finished env must be reset before the next step; its
            # later transitions are ignored.
            obs_r, _ = venv.reset(options={"reset_mask": ended.copy()})
            obs = np.where(ended.reshape((n,) + (1,) * (np.ndim(obs) - 1)), obs_r, obs)
    if attack is not None:
        budget = float(attack.budget)
        if np.any(spent2 > budget**2 * (1 + 1e-5) + 1e-9):
            raise RuntimeError(f"attack exceeded its total l2 budget {budget}: "
                               f"spent up to {np.sqrt(spent2.max()):.6g}")
    return returns, lengths, np.sqrt(spent2)


def _run_naive(policy: Any, env: gym.Env, sigma: float, seed: int, ids: npt.NDArray[np.int64],
               horizon: int, attack: Attack | None, obs_shape: tuple[int, ...],
               stack: FrameStack | None = None,
               ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    dim = int(np.prod(obs_shape))
    frames = _Frames(stack, 1, obs_shape)
    returns = np.zeros(ids.size)
    lengths = np.zeros(ids.size, dtype=np.int64)
    spent = np.zeros(ids.size)
    for j, k in enumerate(ids):
        obs, _ = env.reset(seed=episode_reset_seed(seed, int(k)))
        one = np.array([k], dtype=np.int64)
        if attack is not None:
            attack.begin(one)
        s2 = 0.0
        for t in range(horizon):
            o = np.asarray(obs, dtype=np.float32).reshape(1, dim)
            if attack is not None:
                eps = np.asarray(attack.perturb(o.reshape((1, *obs_shape)), np.ones(1, bool), t),
                                 dtype=np.float32).reshape(1, dim)
                s2 += float(np.square(eps.astype(np.float64)).sum())
                o = o + eps
            if sigma > 0:
                o = o + _noise(1, dim, sigma, seed, one, t)
            a = np.asarray(policy(frames.see(o, t).reshape((1, *frames.shape))))[0]
            obs, r, term, trunc, _ = env.step(a)
            returns[j] += float(r)
            lengths[j] += 1
            if term or trunc:
                break
        spent[j] = np.sqrt(s2)
    return returns, lengths, spent


def smoothed_rollouts(policy: Any, env_fn: str | EnvFactory | gym.Env, sigma: float,
                      episodes: int | Sequence[int] | npt.NDArray[np.integer[Any]], *,
                      seed: int = 0, horizon: int | None = None, backend: str = "auto",
                      batch_size: int = 10_000, attack: Attack | None = None,
                      threads: int | None = 1) -> Rollouts:
    """Run smoothed episodes (policy on ``obs + ε_t + δ_t``, ``δ_t ~ N(0, σ²I)``).

    episodes: a count m (episode ids 0..m−1) or explicit episode ids (to resume or split).
    horizon: caps the episode length; required when the env has no time limit.
    threads: torch intra-op threads while rolling out (1 by default: a small MLP evaluated
    once per step loses time to thread synchronisation, ~10x on a loaded 2-core machine;
    None keeps torch's setting, e.g. for a large CNN policy).
    Returns :class:`Rollouts` in the order of the episode ids.
    """
    sigma = check_sigma(sigma)
    if threads is None:
        return _smoothed_rollouts(policy, env_fn, sigma, episodes, seed, horizon, backend,
                                  batch_size, attack)
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(check_int(threads, "threads", minimum=1))
    try:
        return _smoothed_rollouts(policy, env_fn, sigma, episodes, seed, horizon, backend,
                                  batch_size, attack)
    finally:
        torch.set_num_threads(before)


def clean_rollouts(policy: Any, env_fn: str | EnvFactory | gym.Env,
                   episodes: int | Sequence[int] | npt.NDArray[np.integer[Any]], *,
                   seed: int = 0, horizon: int | None = None, backend: str = "auto",
                   batch_size: int = 10_000, threads: int | None = 1) -> Rollouts:
    """Episodes of the base policy on noise-free observations (the "clean return"), with
    the same engines, episode ids and reset seeds as :func:`smoothed_rollouts`."""
    if threads is None:
        return _smoothed_rollouts(policy, env_fn, 0.0, episodes, seed, horizon, backend,
                                  batch_size, None)
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(check_int(threads, "threads", minimum=1))
    try:
        return _smoothed_rollouts(policy, env_fn, 0.0, episodes, seed, horizon, backend,
                                  batch_size, None)
    finally:
        torch.set_num_threads(before)


def _smoothed_rollouts(policy: Any, env_fn: str | EnvFactory | gym.Env, sigma: float,
                       episodes: int | Sequence[int] | npt.NDArray[np.integer[Any]], seed: int,
                       horizon: int | None, backend: str, batch_size: int,
                       attack: Attack | None) -> Rollouts:
    sigma = 0.0 if sigma == 0.0 else check_sigma(sigma)  # 0: clean_rollouts only
    seed = check_seed(seed)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    if isinstance(episodes, (int, np.integer)) and not isinstance(episodes, bool):
        m = check_int(episodes, "episodes", minimum=1)
        ids = np.arange(m, dtype=np.int64)
    else:
        ids = np.asarray(episodes)
        if ids.ndim != 1 or ids.size < 1 or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError("episodes: expected an integer >= 1 or a non-empty 1-D array of "
                             "episode ids")
        if ids.min() < 0:
            raise ValueError("episodes: episode ids must be >= 0")
        ids = ids.astype(np.int64)
    factory = make_env_factory(env_fn)
    probe = factory()
    check_box_observations(probe)
    policy = as_policy_for_env(policy, probe)
    T = resolve_horizon(probe, horizon)
    stack = frame_stack(probe)
    if stack is not None:  # noise each frame once, below the stack; we stack ourselves
        if attack is not None and not getattr(attack, "per_frame", False):
            raise ValueError(f"attack: {type(attack).__name__} does not model frame stacks (it "
                             f"needs the policy's stacked input); on a FrameStackObservation "
                             f"env only an attack with per_frame = True, which perturbs each "
                             f"new frame, is supported")
        stacked_factory = factory

        def factory() -> gym.Env:
            return below_frame_stack(stacked_factory())

        probe = below_frame_stack(probe)
    obs_shape = check_box_observations(probe)
    kind = backend
    if backend in ("auto", "batched"):
        twin = batched_dynamics(probe, 1, T)
        if twin is None:
            if backend == "batched":
                raise ValueError(f"backend: no batched twin for {type(probe.unwrapped).__name__} "
                                 f"(with its wrappers); use backend='vector' or 'naive'")
            kind = "vector"
        else:
            kind = "batched"
    if kind == "vector" and isinstance(env_fn, gym.Env):
        kind = "naive"  # a single instance cannot be vectorised
    returns = np.zeros(ids.size)
    lengths = np.zeros(ids.size, dtype=np.int64)
    spent = np.zeros(ids.size)
    if kind == "naive":
        r, ln, sp = _run_naive(policy, probe, sigma, seed, ids, T, attack, obs_shape, stack)
        return Rollouts(ids, r, ln, sp, T, kind)
    for lo in range(0, ids.size, batch_size):
        chunk = ids[lo:lo + batch_size]
        if kind == "batched":
            venv: Any = batched_dynamics(probe, chunk.size, T)
        else:
            venv = SyncVectorEnv([factory] * chunk.size, autoreset_mode=AutoresetMode.DISABLED)
        r, ln, sp = _run_batch(policy, venv, kind, sigma, seed, chunk, T, attack, obs_shape,
                               stack)
        if kind == "vector":
            venv.close()
        returns[lo:lo + chunk.size] = r
        lengths[lo:lo + chunk.size] = ln
        spent[lo:lo + chunk.size] = sp
    return Rollouts(ids, returns, lengths, spent, T, kind)
