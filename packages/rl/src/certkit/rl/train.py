"""A small built-in PPO trainer (Schulman et al. 2017, arXiv 1707.06347) with Gaussian
observation augmentation, for the smoothed policies that policy smoothing certifies.

Ours, not stable-baselines3's: clipped-surrogate PPO with GAE(λ) (Schulman et al. 2016,
arXiv 1506.02438), separate tanh-MLP actor and critic, advantage normalisation, linear
learning-rate decay. The agent is trained on ``o_t + δ_t``, ``δ_t ~ N(0, σ²I)`` — the same
noise it sees when smoothed — drawn from certkit's counter-based sampler keyed by
(seed, env slot, step). Rollouts use the batched numpy dynamics of :mod:`certkit.rl.envs`,
so only CartPole and Acrobot (and their gymnasium variants) are trainable here.

The deployed policy is the actor's argmax (a deterministic base policy; all randomness of
the smoothed policy is the observation noise, as the certificate requires).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from certkit.core import gaussian_rows
from certkit.core.validation import check_int, check_positive, check_seed
from certkit.rl.checkpoints import TrainedPolicy, load_trained, save_trained
from certkit.rl.envs import batched_dynamics
from certkit.rl.policies import TorchPolicy, mlp
from certkit.rl.rollout import smoothed_rollouts

__all__ = ["PPOConfig", "TrainedPolicy", "load_trained", "save_trained", "train_ppo"]


@dataclass
class PPOConfig:
    """PPO hyper-parameters (defaults tuned for CartPole-v1 / Acrobot-v1)."""

    n_envs: int = 16
    n_steps: int = 128
    epochs: int = 8
    minibatch: int = 512
    lr: float = 2.5e-3
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    hidden: tuple[int, ...] = (64, 64)


def _evaluate(actor: nn.Module, env_id: str, sigma: float, episodes: int, seed: int) -> float:
    ro = smoothed_rollouts(TorchPolicy(actor), env_id, sigma, episodes, seed=seed)
    return float(ro.returns.mean())


def train_ppo(env_id: str = "CartPole-v1", sigma: float = 0.2, total_steps: int = 300_000, *,
              seed: int = 0, target_return: float | None = None, eval_every: int = 10,
              eval_episodes: int = 100, config: PPOConfig | None = None,
              time_limit_s: float | None = None) -> TrainedPolicy:
    """Train a discrete-action PPO agent under Gaussian observation augmentation.

    Stops after ``total_steps`` env steps, or earlier once the smoothed evaluation return
    (``eval_episodes`` noisy episodes, deterministic argmax) reaches ``target_return``.
    meta records the env, σ, steps, seconds and the evaluation history.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny MLPs: threading only adds overhead
    try:
        return _train_ppo(env_id, sigma, total_steps, seed, target_return, eval_every,
                          eval_episodes, config or PPOConfig(), time_limit_s)
    finally:
        torch.set_num_threads(threads)


def _train_ppo(env_id: str, sigma: float, total_steps: int, seed: int,
               target_return: float | None, eval_every: int, eval_episodes: int,
               cfg: PPOConfig, time_limit_s: float | None) -> TrainedPolicy:
    check_positive(sigma, "sigma", allow_zero=True)
    total_steps = check_int(total_steps, "total_steps", minimum=1)
    seed = check_seed(seed)
    probe = gym.make(env_id)
    venv = batched_dynamics(probe, cfg.n_envs)
    if venv is None or not isinstance(probe.action_space, gym.spaces.Discrete):
        raise ValueError(f"env_id: the built-in trainer supports CartPole and Acrobot, got {env_id!r}")
    obs_dim = int(np.prod(probe.observation_space.shape))
    n_act = int(probe.action_space.n)
    torch.manual_seed(seed)
    actor = mlp(obs_dim, n_act, cfg.hidden)
    critic = mlp(obs_dim, 1, cfg.hidden)
    with torch.no_grad():
        actor[-1].weight.mul_(0.01)
    params = list(actor.parameters()) + list(critic.parameters())
    opt = torch.optim.Adam(params, lr=cfg.lr, eps=1e-5)
    rng = np.random.default_rng(seed)
    n, T = cfg.n_envs, cfg.n_steps
    obs, _ = venv.reset(seed=[int(s) for s in rng.integers(0, 2**62, n)])
    slot_step = np.zeros(n, dtype=np.int64)
    slot_stream = np.arange(n, dtype=np.int64)
    next_stream = n
    n_updates = max(1, total_steps // (n * T))
    t0 = time.perf_counter()
    history: list[tuple[int, float]] = []
    ep_returns: list[float] = []
    run_ret = np.zeros(n)
    best_state: dict[str, Any] | None = None
    best_eval = -np.inf
    steps = 0
    for update in range(n_updates):
        frac = 1.0 - update / n_updates
        for g in opt.param_groups:
            g["lr"] = cfg.lr * frac
        b_obs = np.zeros((T, n, obs_dim), np.float32)
        b_act = np.zeros((T, n), np.int64)
        b_logp = np.zeros((T, n), np.float32)
        b_val = np.zeros((T + 1, n), np.float32)
        b_rew = np.zeros((T, n), np.float32)
        b_done = np.zeros((T, n), np.float32)  # episode ended (terminated or truncated) at t
        b_term_val = np.zeros((T, n), np.float32)  # bootstrap value for truncations
        for t in range(T):
            noisy = obs + gaussian_rows((n, obs_dim), sigma, seed, streams=slot_stream,
                                        offsets=slot_step * obs_dim) if sigma > 0 else obs
            with torch.no_grad():
                ot = torch.from_numpy(np.ascontiguousarray(noisy, np.float32))
                logits = actor(ot)
                dist = torch.distributions.Categorical(logits=logits)
                a = dist.sample()
                b_logp[t] = dist.log_prob(a).numpy()
                b_val[t] = critic(ot).squeeze(1).numpy()
            b_obs[t] = noisy
            b_act[t] = a.numpy()
            obs, rew, term, trunc, _ = venv.step(b_act[t])
            b_rew[t] = rew
            run_ret += rew
            slot_step += 1
            done = term | trunc
            b_done[t] = done
            cut = trunc & ~term  # (True, True): terminated on the last step, no bootstrap
            if cut.any():  # bootstrap through time-limit truncations
                with torch.no_grad():
                    tv = critic(torch.from_numpy(obs[cut])).squeeze(1).numpy()
                b_term_val[t, cut] = tv
            if done.any():
                ep_returns.extend(run_ret[done].tolist())
                run_ret[done] = 0.0
                idx = np.flatnonzero(done)
                seeds: list[int | None] = [None] * n
                for i in idx:
                    seeds[i] = int(rng.integers(0, 2**62))
                obs_r, _ = venv.reset(seed=seeds, options={"reset_mask": done})
                obs = np.where(done[:, None], obs_r, obs)
                slot_step[done] = 0
                slot_stream[done] = np.arange(next_stream, next_stream + idx.size)
                next_stream += idx.size
        steps += n * T
        noisy = obs + gaussian_rows((n, obs_dim), sigma, seed, streams=slot_stream,
                                    offsets=slot_step * obs_dim) if sigma > 0 else obs
        with torch.no_grad():
            b_val[T] = critic(torch.from_numpy(np.ascontiguousarray(noisy, np.float32))).squeeze(1).numpy()
        adv = np.zeros((T, n), np.float32)
        last = np.zeros(n, np.float32)
        for t in reversed(range(T)):
            nonterm = 1.0 - b_done[t]
            next_v = b_val[t + 1] * nonterm + b_term_val[t]
            delta = b_rew[t] + cfg.gamma * next_v - b_val[t]
            last = delta + cfg.gamma * cfg.gae_lambda * nonterm * last
            adv[t] = last
        ret = adv + b_val[:T]
        f_obs = torch.from_numpy(b_obs.reshape(T * n, obs_dim))
        f_act = torch.from_numpy(b_act.reshape(-1))
        f_logp = torch.from_numpy(b_logp.reshape(-1))
        f_adv = torch.from_numpy(adv.reshape(-1))
        f_ret = torch.from_numpy(ret.reshape(-1))
        N = T * n
        for _ in range(cfg.epochs):
            perm = torch.from_numpy(rng.permutation(N))
            for s in range(0, N, cfg.minibatch):
                mb = perm[s:s + cfg.minibatch]
                logits = actor(f_obs[mb])
                dist = torch.distributions.Categorical(logits=logits)
                logp = dist.log_prob(f_act[mb])
                ratio = torch.exp(logp - f_logp[mb])
                a_mb = f_adv[mb]
                a_mb = (a_mb - a_mb.mean()) / (a_mb.std() + 1e-8)
                pg = torch.max(-a_mb * ratio, -a_mb * torch.clamp(ratio, 1 - cfg.clip, 1 + cfg.clip)).mean()
                v = critic(f_obs[mb]).squeeze(1)
                vloss = 0.5 * ((v - f_ret[mb]) ** 2).mean()
                loss = pg + cfg.vf_coef * vloss - cfg.ent_coef * dist.entropy().mean()
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                opt.step()
        last_update = update == n_updates - 1
        out_of_time = time_limit_s is not None and time.perf_counter() - t0 > time_limit_s
        if (update + 1) % eval_every == 0 or last_update or out_of_time:
            score = _evaluate(actor, env_id, sigma, eval_episodes, seed=seed + 1 + update)
            history.append((steps, score))
            if score >= best_eval:
                best_eval = score
                best_state = {k: v.clone() for k, v in actor.state_dict().items()}
            if (target_return is not None and score >= target_return) or out_of_time:
                break
    if best_state is not None:
        actor.load_state_dict(best_state)
    meta = {"env_id": env_id, "sigma": sigma, "steps": steps, "seconds": time.perf_counter() - t0,
            "algorithm": "PPO (certkit built-in)", "obs_dim": obs_dim, "n_actions": n_act,
            "hidden": list(cfg.hidden), "history": history, "best_eval": best_eval,
            "train_episode_returns_tail": ep_returns[-20:], "seed": seed}
    return TrainedPolicy(actor.eval(), meta)
