"""Policies from files: stable-baselines3 zips, certkit-rl checkpoints, and what certkit's
model loader reads (TorchScript, ``torch.export`` ``.pt2``, ``module:factory``).

Nothing here runs code stored in a file: checkpoints and state dicts are read with
``torch.load(weights_only=True)``, TorchScript with ``torch.jit.load``, SB3 zips through
:mod:`certkit.rl.sb3_zip` (an allow-listed unpickler for their metadata). ``module:factory``
imports the user's own code on purpose, resolved against the current directory first (as
``python -m`` would; :func:`certkit.core.modelio.load_model`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from torch import nn

from certkit.core.modelio import load_model
from certkit.rl.checkpoints import load_trained
from certkit.rl.envs import check_box_observations
from certkit.rl.policies import as_policy, check_policy_env
from certkit.rl.sb3_zip import is_sb3_zip, load_sb3


def load_module(spec: str, state_dict: str | None = None) -> nn.Module:
    """A torch module: a certkit-rl checkpoint, or what :func:`certkit.core.modelio.load_model`
    reads (TorchScript, a ``torch.export`` ``.pt2``, ``module:factory`` from the current
    directory with an optional state_dict file, ``weights_only=True``)."""
    obj = _load(spec, state_dict, None)
    if not isinstance(obj, nn.Module):
        raise ValueError(f"model: {spec} is a {type(obj).__name__}, not a torch module")
    return obj


def _load(spec: str, state_dict: str | None, algo: str | None) -> Any:
    p = Path(spec)
    if p.is_file() and is_sb3_zip(p):
        if state_dict is not None:
            raise ValueError("state_dict: not used with an SB3 zip (its weights are inside)")
        return load_sb3(p, algo)
    if algo is not None:
        raise ValueError(f"algo: {spec} is not a stable-baselines3 zip (a zip with 'data' and "
                         f"'policy.pth' entries)")
    if p.is_file() and state_dict is None and p.suffix != ".pt2":
        try:
            return load_trained(p).module
        except ValueError:
            pass  # not a certkit-rl checkpoint: TorchScript?
    if not p.exists() and ":" in spec and os.getcwd() not in sys.path:
        # load_model finds module:factory in the current directory; keep it on sys.path so
        # the process backend's (spawned) workers can unpickle the module's class too
        sys.path.append(os.getcwd())
    return load_model(spec, state_dict)


def load_policy(spec: str, env: gym.Env | None = None, *, algo: str | None = None,
                state_dict: str | None = None) -> Any:
    """A policy adapter (:mod:`certkit.rl.policies`) for ``spec``: an SB3 zip (PPO, A2C, DQN,
    SAC, TD3; algorithm read from the zip unless ``algo``), a certkit-rl checkpoint, a
    TorchScript file, or ``module:factory`` (a torch module, an SB3 model or a callable).

    env: when given, a torch module is discrete (argmax) for Discrete actions and continuous
    (its output, clipped to the Box) for Box actions, and the policy is checked against the
    env's spaces (ValueError naming the mismatch)."""
    if env is not None:
        check_box_observations(env)
    obj = _load(spec, state_dict, algo)
    if env is None:
        return as_policy(obj)
    space = env.action_space
    if isinstance(space, gym.spaces.Box):
        pol = as_policy(obj, discrete=False, action_low=np.asarray(space.low),
                        action_high=np.asarray(space.high))
    else:
        pol = as_policy(obj)
    check_policy_env(pol, env)
    return pol
