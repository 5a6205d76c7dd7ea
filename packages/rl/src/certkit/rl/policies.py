"""Policy adapters: everything the certifier needs is ``obs_batch → action_batch``.

A policy here is a callable taking observations of shape ``(N, *obs_shape)`` (float32) and
returning actions ``(N,)`` (discrete, int64) or ``(N, action_dim)`` (continuous, float32).
Attacks additionally need differentiable action scores: :meth:`TorchPolicy.scores` maps a
``(N, *obs_shape)`` tensor to ``(N, n_actions)`` Q-values or logits.

Adapters: :class:`TorchPolicy` (argmax of Q-values/logits, or the raw output for continuous
actions), :class:`SB3Policy` (stable-baselines3 models, optional extra), and
:class:`FunctionPolicy` (plain numpy functions). :func:`as_policy` picks one. Loading
policies from files is :mod:`certkit.rl.loading`; this module imports nothing from certkit.rl.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt
import torch
from torch import nn


class FunctionPolicy:
    """Wraps ``fn(obs (N, ...)) -> actions (N,)``; checks the batch size of the output."""

    differentiable = False

    def __init__(self, fn: Callable[[npt.NDArray[np.float32]], Any]) -> None:
        self.fn = fn

    def __call__(self, obs: npt.NDArray[np.float32]) -> npt.NDArray[Any]:
        out = np.asarray(self.fn(obs))
        if out.ndim == 0 or out.shape[0] != obs.shape[0]:
            raise ValueError(f"policy: returned shape {out.shape} for a batch of {obs.shape[0]} "
                             f"observations (expected ({obs.shape[0]},) or ({obs.shape[0]}, A))")
        return out

    def describe(self) -> str:
        return f"function {getattr(self.fn, '__name__', type(self.fn).__name__)}"


class TorchPolicy:
    """A torch module mapping (N, *obs_shape) → (N, A).

    discrete=True: actions are the argmax over A (Q-values or logits). discrete=False: the
    output is the action, clipped to [action_low, action_high] when given.
    """

    differentiable = True

    def __init__(self, module: nn.Module, discrete: bool = True,
                 action_low: Any = None, action_high: Any = None) -> None:
        if not isinstance(module, nn.Module):
            raise TypeError(f"module: expected a torch.nn.Module, got {type(module).__name__}")
        self.module = module.eval()
        self.discrete = discrete
        self.action_low = None if action_low is None else np.asarray(action_low, np.float32)
        self.action_high = None if action_high is None else np.asarray(action_high, np.float32)

    def scores(self, obs: torch.Tensor) -> torch.Tensor:
        """Differentiable Q-values / logits, (N, A)."""
        return self.module(obs)

    def scores_nograd(self, obs: torch.Tensor) -> torch.Tensor:
        """:meth:`scores` without autograd (the fused plain-MLP forward when it applies;
        the same values), for the attacks' many noisy evaluations."""
        layers = self._plain_mlp() if obs.ndim == 2 else None
        with torch.no_grad():
            return self.module(obs) if layers is None else self._forward_fast(obs, layers)

    def _plain_mlp(self) -> list[nn.Module] | None:
        """The layers of a plain MLP (nn.Sequential of Linear/Tanh/ReLU), else None."""
        if type(self.module) is not nn.Sequential or self.module.training:
            return None
        layers = list(self.module)
        if not layers or not all(type(m) in (nn.Linear, nn.Tanh, nn.ReLU) for m in layers):
            return None
        return layers

    def _forward_fast(self, x: torch.Tensor, layers: list[nn.Module]) -> torch.Tensor:
        """The module's forward with in-place activations (no temporaries): the same
        addmm and tanh/relu kernels as nn.Linear/nn.Tanh, so bit-identical outputs."""
        h = x
        fresh = False  # never modify the caller's input in place
        for m in layers:
            if type(m) is nn.Linear:
                lin: Any = m
                h = (torch.addmm(lin.bias, h, lin.weight.t()) if lin.bias is not None
                     else h @ lin.weight.t())
                fresh = True
            elif type(m) is nn.Tanh:
                h = h.tanh_() if fresh else h.tanh()
            else:
                h = h.relu_() if fresh else h.relu()
        return h

    def __call__(self, obs: npt.NDArray[np.float32]) -> npt.NDArray[Any]:
        x = torch.from_numpy(np.ascontiguousarray(obs, dtype=np.float32))
        layers = self._plain_mlp() if x.ndim == 2 else None
        with torch.inference_mode():
            out = self.module(x) if layers is None else self._forward_fast(x, layers)
            if self.discrete:
                if out.ndim == 2 and out.shape[1] == 2:  # argmax of two columns (ties → 0, as argmax)
                    return (out[:, 1] > out[:, 0]).numpy().astype(np.int64)
                return out.argmax(dim=1).numpy()
        a = out.numpy().astype(np.float32)  # copies out of the inference tensor
        if self.action_low is not None or self.action_high is not None:
            a = np.clip(a, self.action_low, self.action_high)
        return a

    def describe(self) -> str:
        n = sum(p.numel() for p in self.module.parameters())
        return f"torch {type(self.module).__name__} ({n} parameters)"


class SB3Policy:
    """A stable-baselines3 model (``model.predict(obs, deterministic=True)``).

    :meth:`scores` uses the DQN Q-network or the actor's logits (discrete PPO/A2C) so the
    gradient attacks apply. Requires the ``sb3`` extra.
    """

    def __init__(self, model: Any) -> None:
        if not hasattr(model, "predict") or not hasattr(model, "policy"):
            raise TypeError(f"model: expected a stable-baselines3 model, got {type(model).__name__}")
        self.model = model
        # Differentiable scores: DQN Q-values, or the logits of a discrete actor (PPO/A2C).
        # Continuous actors (Box actions) have no action scores to attack.
        discrete = isinstance(getattr(model, "action_space", None), gym.spaces.Discrete)
        self.differentiable = hasattr(model, "q_net") or (
            discrete and hasattr(model.policy, "get_distribution"))

    def __call__(self, obs: npt.NDArray[np.float32]) -> npt.NDArray[Any]:
        actions, _ = self.model.predict(obs, deterministic=True)
        return np.asarray(actions)

    def scores(self, obs: torch.Tensor) -> torch.Tensor:
        """(N, A) Q-values (DQN) or logits (discrete actor), differentiable in obs."""
        if not self.differentiable:
            raise TypeError(f"policy: {type(self.model).__name__} with "
                            f"{type(self.model.action_space).__name__} actions has no action scores")
        if hasattr(self.model, "q_net"):
            return self.model.q_net(obs)
        dist = self.model.policy.get_distribution(obs)
        return dist.distribution.logits

    def describe(self) -> str:
        return f"stable-baselines3 {type(self.model).__name__}"


def as_policy(obj: Any, *, discrete: bool = True, action_low: Any = None,
              action_high: Any = None) -> Any:
    """Adapt a torch module, an SB3 model, an adapter or a function to a policy callable."""
    if isinstance(obj, (TorchPolicy, SB3Policy, FunctionPolicy)):
        return obj
    if isinstance(obj, nn.Module):
        return TorchPolicy(obj, discrete, action_low, action_high)
    mod = type(obj).__module__ or ""
    if mod.startswith("stable_baselines3"):
        return SB3Policy(obj)
    if callable(obj):
        return FunctionPolicy(obj)
    raise TypeError(f"policy: expected a torch module, a stable-baselines3 model or a callable "
                    f"obs_batch -> action_batch, got {type(obj).__name__}")


def as_policy_for_env(obj: Any, env: gym.Env) -> Any:
    """:func:`as_policy` for ``env``: a bare torch module is an argmax policy for Discrete
    actions and a continuous one (output clipped to the Box) for Box actions; then
    :func:`check_policy_env`."""
    space = env.action_space
    if isinstance(obj, nn.Module) and isinstance(space, gym.spaces.Box):
        pol = TorchPolicy(obj, discrete=False, action_low=space.low, action_high=space.high)
    else:
        pol = as_policy(obj)
    check_policy_env(pol, env)
    return pol


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def check_policy_env(policy: Any, env: gym.Env) -> None:
    """ValueError (one line, naming the mismatch) unless ``policy`` fits ``env``: an SB3
    model's spaces against the env's, a torch module's output (one probe forward) against
    the action space. Plain functions are not probed."""
    obs_space, act_space = env.observation_space, env.action_space
    if not isinstance(act_space, (gym.spaces.Discrete, gym.spaces.Box)):
        raise ValueError(f"env: action space {act_space} is not supported (Discrete or Box)")
    if isinstance(policy, SB3Policy):
        mo, ma = policy.model.observation_space, policy.model.action_space
        if tuple(mo.shape or ()) != tuple(obs_space.shape or ()):
            raise ValueError(f"policy: the model observes {mo} but the env's observations are "
                             f"{obs_space}")
        same = type(ma) is type(act_space) and (
            ma.n == act_space.n if isinstance(act_space, gym.spaces.Discrete)
            else ma.shape == act_space.shape)
        if not same:
            raise ValueError(f"policy: the model's action space {ma} does not match the env's "
                             f"{act_space}")
        return
    if not isinstance(policy, TorchPolicy):
        return
    x = torch.zeros((1, *(obs_space.shape or ())), dtype=torch.float32)
    try:
        out = policy.scores_nograd(x)
    except Exception as exc:  # any module error on the env's observation shape
        raise ValueError(f"policy: the module does not accept the env's observations of shape "
                         f"{tuple(obs_space.shape or ())}: {_first_line(exc)}") from exc
    if isinstance(act_space, gym.spaces.Discrete):
        if not policy.discrete:
            raise ValueError(f"policy: a continuous policy for the env's {act_space} actions")
        if out.ndim != 2 or out.shape[1] != act_space.n:
            raise ValueError(f"policy: the module outputs {tuple(out.shape[1:])} scores per "
                             f"observation but the env has {act_space.n} actions ({act_space})")
    else:
        if policy.discrete:
            raise ValueError(f"policy: an argmax (discrete) policy for the env's {act_space} "
                             f"actions; use TorchPolicy(module, discrete=False)")
        if tuple(out.shape[1:]) != tuple(act_space.shape or ()):
            raise ValueError(f"policy: the module outputs actions of shape "
                             f"{tuple(out.shape[1:])} but the env's are {act_space}")


def policy_fingerprint(policy: Any) -> str:
    """Content hash of a policy adapter, for a results log's settings: the torch module's
    architecture and weights (with the discrete/continuous mode and the action clip), an
    SB3 model's algorithm and policy network, or a function's qualified name and bytecode."""
    from certkit.core.results import fingerprint

    pol = as_policy(policy)
    if isinstance(pol, TorchPolicy):
        return fingerprint({"torch": fingerprint(pol.module), "discrete": pol.discrete,
                            "low": None if pol.action_low is None else pol.action_low.tolist(),
                            "high": None if pol.action_high is None else pol.action_high.tolist()})
    if isinstance(pol, SB3Policy):
        return fingerprint({"sb3": type(pol.model).__name__, "policy": fingerprint(pol.model.policy)})
    fn = pol.fn
    code = getattr(fn, "__code__", None) or getattr(type(fn).__call__, "__code__", None)
    return fingerprint({"function": f"{getattr(fn, '__module__', '')}."
                                    f"{getattr(fn, '__qualname__', type(fn).__qualname__)}",
                        "code": None if code is None else code.co_code.hex(),
                        "consts": None if code is None else repr(code.co_consts)})


def mlp(obs_dim: int, n_out: int, hidden: Sequence[int] = (64, 64)) -> nn.Sequential:
    """A small tanh MLP, (N, obs_dim) → (N, n_out)."""
    layers: list[nn.Module] = []
    d = obs_dim
    for h in hidden:
        layers += [nn.Linear(d, h), nn.Tanh()]
        d = h
    layers.append(nn.Linear(d, n_out))
    return nn.Sequential(*layers)
