"""Batched numpy dynamics for classic-control environments, and env introspection.

:class:`BatchedCartPole` and :class:`BatchedAcrobot` step ``N`` independent copies of
gymnasium's ``CartPoleEnv`` / ``AcrobotEnv`` with whole-array numpy arithmetic (the same
formulas, in float64, as gymnasium 1.x; Barto, Sutton & Anderson 1983 and Sutton 1996),
so one call advances all ``N`` episodes. They are :class:`gymnasium.vector.VectorEnv`
subclasses in the ``DISABLED`` autoreset mode: a finished sub-environment stays frozen
(reward 0, ``terminated``/``truncated`` repeated) until ``reset(options={"reset_mask": m})``.
Their (terminated, truncated) flags are gymnasium's exactly, (True, True) included when an
episode terminates on its last allowed step, and ``step()`` before the first ``reset()``
raises :class:`gymnasium.error.ResetNeeded`, as gymnasium's ``OrderEnforcing`` does.

Sub-environment ``i`` reset with seed ``s`` starts from exactly the state that gymnasium's
single env reaches with ``env.reset(seed=s)`` (both draw from ``np.random.default_rng(s)``),
so a naive one-env-at-a-time loop reproduces batched episodes step for step (tested).

Shapes: observations ``(N, obs_dim)`` float32, actions ``(N,)`` int, rewards ``(N,)``
float64, flags ``(N,)`` bool.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt
from gymnasium.vector import AutoresetMode, VectorEnv

EnvFactory = Callable[[], gym.Env]

# Wrappers that gymnasium.make adds and that do not change the dynamics or observations.
_TRANSPARENT_WRAPPERS = ("TimeLimit", "OrderEnforcing", "PassiveEnvChecker")


def make_env_factory(env: str | EnvFactory | gym.Env, **kwargs: Any) -> EnvFactory:
    """Normalise an env id, a zero-argument factory or an Env instance to a factory."""
    if isinstance(env, str):
        env_id = env

        def factory() -> gym.Env:
            return gym.make(env_id, **kwargs)

        return factory
    if isinstance(env, gym.Env):
        inst = env
        return lambda: inst
    if callable(env):
        return env
    raise TypeError(f"env_fn: expected an env id, a callable returning a gymnasium Env, or an Env, "
                    f"got {type(env).__name__}")


def time_limit(env: gym.Env) -> int | None:
    """The ``max_episode_steps`` of the env's TimeLimit wrapper (or its spec), else None."""
    e: Any = env
    while isinstance(e, gym.Wrapper):
        if isinstance(e, gym.wrappers.TimeLimit):
            return int(e._max_episode_steps)
        e = e.env
    spec = getattr(env, "spec", None)
    if spec is not None and spec.max_episode_steps is not None:
        return int(spec.max_episode_steps)
    return None


def resolve_horizon(env: gym.Env, horizon: int | None) -> int:
    """The episode horizon T: ``horizon`` when given (it caps the env's own limit),
    else the env's time limit; an env without one needs an explicit horizon."""
    if horizon is not None:
        if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
            raise ValueError(f"horizon: expected an integer >= 1, got {horizon!r}")
        lim = time_limit(env)
        return int(horizon) if lim is None else min(int(horizon), lim)
    lim = time_limit(env)
    if lim is None:
        raise ValueError("horizon: the env has no time limit (no TimeLimit wrapper or "
                         "spec.max_episode_steps); pass horizon=T so the certificate has a "
                         "finite episode length")
    return lim


def check_box_observations(env: gym.Env) -> tuple[int, ...]:
    """Gaussian smoothing needs real-valued observations: a Box space. Returns its shape."""
    space = env.observation_space
    if not isinstance(space, gym.spaces.Box):
        raise TypeError(f"env: observation_space must be a gymnasium.spaces.Box for Gaussian "
                        f"observation smoothing, got {type(space).__name__} (Dict/Tuple/Discrete "
                        f"observations are not supported: flatten them with "
                        f"gymnasium.wrappers.FlattenObservation first)")
    return tuple(int(s) for s in space.shape)


def _wrapper_names(env: gym.Env) -> list[str]:
    names = []
    e: Any = env
    while isinstance(e, gym.Wrapper):
        names.append(type(e).__name__)
        e = e.env
    return names


# Wrappers that stack past observations into one: noise on their output would re-noise old
# frames at every step. FrameStackObservation is modelled (each frame noised once, below the
# stack); any other is refused.
_STACKERS = ("FrameStackObservation", "FrameStackObservationV0", "FrameStack")


@dataclass(frozen=True)
class FrameStack:
    """A gymnasium ``FrameStackObservation``: ``size`` frames; padding ``"reset"`` (the
    reset frame repeated), ``"zero"`` or ``"_custom"`` (``value``, one frame)."""

    size: int
    padding: str
    value: npt.NDArray[Any]


def frame_stack(env: gym.Env) -> FrameStack | None:
    """The frame stack of ``env`` when it is the outermost observation wrapper, else None.

    Policy smoothing as the authors apply it to stacked frames: each frame gets its noise
    once, when it is observed, and the stack holds the noisy frames, so the adversary's
    budget is counted per frame. Raises ValueError for what this cannot model: a stacking
    wrapper other than gymnasium's FrameStackObservation, two stacks, or a wrapper that
    changes observations or dynamics on top of the stack."""
    names = _wrapper_names(env)
    at = [i for i, n in enumerate(names) if n in _STACKERS]
    if not at:
        return None
    if len(at) > 1 or names[at[0]] != "FrameStackObservation":
        raise ValueError(f"env: cannot model the frame stacking of {names[at[0]]} (wrappers "
                         f"{names}): only one gymnasium FrameStackObservation is supported")
    above = [n for n in names[:at[0]] if n not in _TRANSPARENT_WRAPPERS]
    if above:
        raise ValueError(f"env: {above} on top of FrameStackObservation cannot be modelled (the "
                         f"noise goes on each frame, below the stack): make the frame stack "
                         f"the outermost wrapper")
    e: Any = env
    for _ in range(at[0]):
        e = e.env
    return FrameStack(int(e.stack_size), str(e.padding_type), np.asarray(e.padding_value))


def below_frame_stack(env: gym.Env) -> gym.Env:
    """The env below its FrameStackObservation (see :func:`frame_stack`)."""
    e: Any = env
    while type(e).__name__ != "FrameStackObservation":
        e = e.env
    return e.env  # type: ignore[no-any-return]


def episode_reset_seed(seed: int, episode: int) -> int:
    """The gymnasium reset seed of episode ``episode`` under run seed ``seed``: every
    rollout engine (batched, vector, naive) resets episode k with this seed, so results do
    not depend on how episodes are split into batches."""
    return int(seed) * (1 << 32) + int(episode)


def _seeded_uniform(seeds: list[int | None], low: float, high: float,
                    k: int) -> npt.NDArray[np.float64]:
    """``np.random.default_rng(s).uniform(low, high, size=(k,))`` for every seed, (k, N).

    Gymnasium seeds an env with ``Generator(PCG64(SeedSequence(s)))`` and numpy's uniform
    is ``low + (high − low) · ((raw >> 11) · 2⁻⁵³)`` on the PCG64 stream; drawing the raw
    words directly skips the Generator's per-call overhead (3x faster resets, identical
    values, tested against gymnasium's own reset). A None seed draws fresh entropy.
    """
    raw = np.empty((len(seeds), k), dtype=np.uint64)
    for i, s in enumerate(seeds):
        raw[i] = np.random.PCG64(s).random_raw(k)
    u = (raw >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)
    return (low + (high - low) * u).T


class _BatchedBase(VectorEnv):  # type: ignore[type-arg]
    """Shared bookkeeping: per-env done flags, time limit, DISABLED autoreset."""

    obs_dim: int
    max_episode_steps: int | None

    def __init__(self, num_envs: int, max_episode_steps: int | None) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs: expected >= 1, got {num_envs}")
        self.num_envs = int(num_envs)
        self.max_episode_steps = max_episode_steps
        self.metadata = {"autoreset_mode": AutoresetMode.DISABLED}
        # Internal state, (state_dim, N): one contiguous row per component.
        self.state = np.zeros((self._state_dim(), self.num_envs), dtype=np.float64)
        self.done = np.ones(self.num_envs, dtype=bool)
        self.elapsed = np.zeros(self.num_envs, dtype=np.int64)
        self._last_term = np.zeros(self.num_envs, dtype=bool)
        self._last_trunc = np.zeros(self.num_envs, dtype=bool)
        self._has_reset = False

    def _state_dim(self) -> int:
        return 4

    def _initial_state(self, rng: np.random.Generator) -> npt.NDArray[np.float64]:
        raise NotImplementedError

    def _initial_states(self, seeds: list[int | None]) -> npt.NDArray[np.float64]:
        """Initial states of the seeded sub-envs, (state_dim, len(seeds))."""
        return np.stack([self._initial_state(np.random.default_rng(s)) for s in seeds], axis=1)

    def _obs(self) -> npt.NDArray[np.float32]:
        raise NotImplementedError

    def reset(self, *, seed: int | Sequence[int | None] | None = None,
              options: dict[str, Any] | None = None) -> tuple[npt.NDArray[np.float32], dict[str, Any]]:
        mask = np.ones(self.num_envs, dtype=bool)
        if options and "reset_mask" in options:
            mask = np.asarray(options["reset_mask"], dtype=bool)
            if mask.shape != (self.num_envs,):
                raise ValueError(f"options['reset_mask']: expected shape ({self.num_envs},)")
        if seed is None or isinstance(seed, (int, np.integer)):
            seeds: list[int | None] = [None if seed is None else int(seed) + i
                                       for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"seed: expected {self.num_envs} seeds, got {len(seeds)}")
        idx = np.flatnonzero(mask)
        if idx.size:
            self.state[:, idx] = self._initial_states([seeds[i] for i in idx])
        self.done[mask] = False
        self.elapsed[mask] = 0
        self._last_term[mask] = False
        self._last_trunc[mask] = False
        self._has_reset = True
        return self._obs(), {}

    def reset_states(self, states: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Start every sub-env from the given internal states, shape (N, state_dim)."""
        s = np.asarray(states, dtype=np.float64)
        if s.shape != self.state.T.shape:
            raise ValueError(f"states: expected shape {self.state.T.shape}, got {s.shape}")
        self.state[...] = s.T
        self.done[:] = False
        self.elapsed[:] = 0
        self._last_term[:] = False
        self._last_trunc[:] = False
        self._has_reset = True
        return self._obs()

    def _advance(self, actions: npt.NDArray[Any], active: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
        raise NotImplementedError

    def _reward(self, terminated: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
        raise NotImplementedError

    def step(self, actions: Any) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64],
                                          npt.NDArray[np.bool_], npt.NDArray[np.bool_], dict[str, Any]]:
        if not self._has_reset:
            raise gym.error.ResetNeeded("step: call reset() before step()")
        a = np.asarray(actions)
        if a.shape != (self.num_envs,):
            raise ValueError(f"actions: expected shape ({self.num_envs},), got {a.shape}")
        active = ~self.done
        terminated = self._advance(a, active)
        reward = np.where(active, self._reward(terminated), 0.0)
        self.elapsed[active] += 1
        truncated = np.zeros(self.num_envs, dtype=bool)
        if self.max_episode_steps is not None:
            # gymnasium's TimeLimit truncates on the last step whether or not the episode
            # also terminated there: (True, True) is a valid pair.
            truncated = active & (self.elapsed >= self.max_episode_steps)
        term = np.where(active, terminated, self._last_term)
        trunc = np.where(active, truncated, self._last_trunc)
        self._last_term, self._last_trunc = term, trunc
        self.done |= term | trunc
        return self._obs(), reward, term, trunc, {}


class BatchedCartPole(_BatchedBase):
    """N copies of gymnasium's CartPoleEnv (v0: 200 steps, v1: 500 steps), vectorised.

    Actions (N,) in {0, 1}; observations (N, 4) float32 = (x, ẋ, θ, θ̇).
    """

    def __init__(self, num_envs: int, max_episode_steps: int | None = 500, *,
                 gravity: float = 9.8, masscart: float = 1.0, masspole: float = 0.1,
                 length: float = 0.5, force_mag: float = 10.0, tau: float = 0.02,
                 euler: bool = True, theta_threshold_radians: float = 12 * 2 * math.pi / 360,
                 x_threshold: float = 2.4) -> None:
        self.gravity, self.masscart, self.masspole = gravity, masscart, masspole
        self.total_mass = masspole + masscart
        self.length = length
        self.polemass_length = masspole * length
        self.force_mag, self.tau, self.euler = force_mag, tau, euler
        self.theta_threshold_radians, self.x_threshold = theta_threshold_radians, x_threshold
        self.obs_dim = 4
        high = np.array([x_threshold * 2, np.finfo(np.float32).max, theta_threshold_radians * 2,
                         np.finfo(np.float32).max], dtype=np.float32)
        self.single_observation_space = gym.spaces.Box(-high, high, dtype=np.float32)
        self.single_action_space = gym.spaces.Discrete(2)
        super().__init__(num_envs, max_episode_steps)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)

    @classmethod
    def from_env(cls, env: gym.Env, num_envs: int, max_episode_steps: int | None = None) -> BatchedCartPole:
        """Copy the physical constants of a (wrapped) gymnasium CartPoleEnv."""
        u: Any = env.unwrapped
        return cls(num_envs, max_episode_steps if max_episode_steps is not None else time_limit(env),
                   gravity=u.gravity, masscart=u.masscart, masspole=u.masspole, length=u.length,
                   force_mag=u.force_mag, tau=u.tau, euler=u.kinematics_integrator == "euler",
                   theta_threshold_radians=u.theta_threshold_radians, x_threshold=u.x_threshold)

    def _initial_state(self, rng: np.random.Generator) -> npt.NDArray[np.float64]:
        return rng.uniform(low=-0.05, high=0.05, size=(4,))

    def _initial_states(self, seeds: list[int | None]) -> npt.NDArray[np.float64]:
        return _seeded_uniform(seeds, -0.05, 0.05, 4)

    def _obs(self) -> npt.NDArray[np.float32]:
        return np.ascontiguousarray(self.state.T, dtype=np.float32)

    def _advance(self, actions: npt.NDArray[Any], active: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
        s = self.state  # (4, N): contiguous component rows
        x, x_dot, theta, theta_dot = s[0], s[1], s[2], s[3]
        force = np.where(actions == 1, self.force_mag, -self.force_mag)
        costheta = np.cos(theta)
        sintheta = np.sin(theta)
        temp = (force + self.polemass_length * np.square(theta_dot) * sintheta) / self.total_mass
        thetaacc = (self.gravity * sintheta - costheta * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * np.square(costheta) / self.total_mass))
        xacc = temp - self.polemass_length * thetaacc * costheta / self.total_mass
        if self.euler:
            nx = x + self.tau * x_dot
            nx_dot = x_dot + self.tau * xacc
            nth = theta + self.tau * theta_dot
            nth_dot = theta_dot + self.tau * thetaacc
        else:
            nx_dot = x_dot + self.tau * xacc
            nx = x + self.tau * nx_dot
            nth_dot = theta_dot + self.tau * thetaacc
            nth = theta + self.tau * nth_dot
        if active.all():
            s[0], s[1], s[2], s[3] = nx, nx_dot, nth, nth_dot
        else:
            for j, v in enumerate((nx, nx_dot, nth, nth_dot)):
                np.copyto(s[j], v, where=active)
        x, theta = s[0], s[2]
        return ((np.abs(x) > self.x_threshold) | (np.abs(theta) > self.theta_threshold_radians))

    def _reward(self, terminated: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
        return np.ones(self.num_envs)


class BatchedAcrobot(_BatchedBase):
    """N copies of gymnasium's AcrobotEnv (book dynamics, RK4, dt = 0.2), vectorised.

    Actions (N,) in {0, 1, 2} (torque −1, 0, +1); observations (N, 6) float32 =
    (cos θ1, sin θ1, cos θ2, sin θ2, θ̇1, θ̇2); reward −1 per step until the tip swings up.
    """

    dt = 0.2
    LINK_LENGTH_1 = 1.0
    LINK_MASS_1 = 1.0
    LINK_MASS_2 = 1.0
    LINK_COM_POS_1 = 0.5
    LINK_COM_POS_2 = 0.5
    LINK_MOI = 1.0
    MAX_VEL_1 = 4 * math.pi
    MAX_VEL_2 = 9 * math.pi

    def __init__(self, num_envs: int, max_episode_steps: int | None = 500) -> None:
        self.obs_dim = 6
        high = np.array([1.0, 1.0, 1.0, 1.0, self.MAX_VEL_1, self.MAX_VEL_2], dtype=np.float32)
        self.single_observation_space = gym.spaces.Box(-high, high, dtype=np.float32)
        self.single_action_space = gym.spaces.Discrete(3)
        super().__init__(num_envs, max_episode_steps)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)

    @classmethod
    def from_env(cls, env: gym.Env, num_envs: int, max_episode_steps: int | None = None) -> BatchedAcrobot:
        return cls(num_envs, max_episode_steps if max_episode_steps is not None else time_limit(env))

    def _initial_state(self, rng: np.random.Generator) -> npt.NDArray[np.float64]:
        return rng.uniform(low=-0.1, high=0.1, size=(4,)).astype(np.float32).astype(np.float64)

    def _initial_states(self, seeds: list[int | None]) -> npt.NDArray[np.float64]:
        return _seeded_uniform(seeds, -0.1, 0.1, 4).astype(np.float32).astype(np.float64)

    def _obs(self) -> npt.NDArray[np.float32]:
        s = self.state
        return np.stack([np.cos(s[0]), np.sin(s[0]), np.cos(s[1]), np.sin(s[1]),
                         s[2], s[3]], axis=1).astype(np.float32)

    def _dsdt(self, s: npt.NDArray[np.float64], a: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        m1, m2, l1 = self.LINK_MASS_1, self.LINK_MASS_2, self.LINK_LENGTH_1
        lc1, lc2, i1, i2, g = self.LINK_COM_POS_1, self.LINK_COM_POS_2, self.LINK_MOI, self.LINK_MOI, 9.8
        theta1, theta2, dtheta1, dtheta2 = s[0], s[1], s[2], s[3]
        d1 = m1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * np.cos(theta2)) + i1 + i2
        d2 = m2 * (lc2**2 + l1 * lc2 * np.cos(theta2)) + i2
        phi2 = m2 * lc2 * g * np.cos(theta1 + theta2 - math.pi / 2.0)
        phi1 = (-m2 * l1 * lc2 * dtheta2**2 * np.sin(theta2)
                - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * np.sin(theta2)
                + (m1 * lc1 + m2 * l1) * g * np.cos(theta1 - math.pi / 2) + phi2)
        ddtheta2 = (a + d2 / d1 * phi1 - m2 * l1 * lc2 * dtheta1**2 * np.sin(theta2) - phi2) / (
            m2 * lc2**2 + i2 - d2**2 / d1)
        ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
        return np.stack([dtheta1, dtheta2, ddtheta1, ddtheta2], axis=0)

    def _advance(self, actions: npt.NDArray[Any], active: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
        a = np.asarray(actions, dtype=np.float64) - 1.0
        y0 = self.state
        dt, dt2 = self.dt, self.dt / 2.0
        k1 = self._dsdt(y0, a)
        k2 = self._dsdt(y0 + dt2 * k1, a)
        k3 = self._dsdt(y0 + dt2 * k2, a)
        k4 = self._dsdt(y0 + dt * k3, a)
        ns = y0 + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
        two_pi = 2 * math.pi
        for j in (0, 1):  # gymnasium's wrap(): repeated shifts by 2π into [-π, π]
            v = ns[j]
            while np.any(v > math.pi):
                v = np.where(v > math.pi, v - two_pi, v)
            while np.any(v < -math.pi):
                v = np.where(v < -math.pi, v + two_pi, v)
            ns[j] = v
        ns[2] = np.minimum(np.maximum(ns[2], -self.MAX_VEL_1), self.MAX_VEL_1)
        ns[3] = np.minimum(np.maximum(ns[3], -self.MAX_VEL_2), self.MAX_VEL_2)
        np.copyto(self.state, ns, where=active[None, :])
        s = self.state
        return -np.cos(s[0]) - np.cos(s[1] + s[0]) > 1.0

    def _reward(self, terminated: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
        return np.where(terminated, 0.0, -1.0)


_BATCHED: dict[str, type[_BatchedBase]] = {"CartPoleEnv": BatchedCartPole, "AcrobotEnv": BatchedAcrobot}


def batched_dynamics(env: gym.Env, num_envs: int,
                     max_episode_steps: int | None = None) -> _BatchedBase | None:
    """A batched twin of ``env`` when its dynamics are implemented here and its wrappers
    are only gymnasium.make's transparent ones; else None (use the generic vector path)."""
    cls = _BATCHED.get(type(env.unwrapped).__name__)
    if cls is None:
        return None
    if any(n not in _TRANSPARENT_WRAPPERS for n in _wrapper_names(env)):
        return None
    u: Any = env.unwrapped
    if cls is BatchedAcrobot and (getattr(u, "torque_noise_max", 0.0) != 0.0
                                  or getattr(u, "book_or_nips", "book") != "book"):
        return None
    if cls is BatchedCartPole and getattr(u, "_sutton_barto_reward", False):
        return None
    return cls.from_env(env, num_envs, max_episode_steps)  # type: ignore[attr-defined]


def return_range(env: gym.Env, horizon: int) -> tuple[float, float, bool] | None:
    """A-priori (lowest, highest, integer-valued) return over ``horizon`` steps for envs
    whose reward structure we know; None otherwise (the caller must pass return_bounds)."""
    name = type(env.unwrapped).__name__
    if name == "CartPoleEnv":
        return 0.0, float(horizon), True
    if name == "AcrobotEnv":
        return -float(horizon), 0.0, True
    if name == "PendulumEnv":
        # cost_t = θ² + 0.1 θ̇² + 0.001 u², θ normalised to [-π, π], |θ̇| <= max_speed,
        # |u| <= max_torque (gymnasium clips both): reward in [-cost_max, 0].
        u: Any = env.unwrapped
        worst = math.pi**2 + 0.1 * float(u.max_speed) ** 2 + 0.001 * float(u.max_torque) ** 2
        return -worst * horizon, 0.0, False
    if name == "Continuous_MountainCarEnv":
        # reward_t = -0.1 a_t² (a clipped to [-1, 1]) plus +100 once, at the goal.
        return -0.1 * horizon, 100.0, False
    return None
