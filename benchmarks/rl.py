"""Smoothed CartPole rollouts: certkit's batched engine vs a naive one-env-at-a-time loop.

Same work for both: smoothed CartPole-v1 episodes (σ = 0.2) of a small MLP policy
(4→64→64→2, behaviour-cloned in a second from a linear balancing controller so episodes
are long, as a trained agent's are), episode k reset with the same seed and
noised with the same Philox stream in both, so the returns are identical (checked).
The naive loop (gymnasium env + one policy call per step, as reference code does) runs on
a subset of the episodes and is extrapolated linearly (it is per-episode work).

Also timed: gymnasium's own vectorised CartPole (``vector_entry_point``) driven by the same
batched loop, and a gymnasium SyncVectorEnv. Wall and CPU seconds are both printed (the
machine is shared; CPU time is the steadier number), with the load average.

Flags: --episodes (default 10,000), --naive-episodes (default 200), --threads, --repeats, --soundness (also runs
the full soundness check: ≥1,000 adaptive-attacked episodes per budget against the
certificate of a trained policy; minutes).

--family (only this): certified vs attacked return per budget for each attack of the
adaptive family (adaptive, the authors' fixed-step attack, spread-budget) and the strongest,
on two policies: ours (the report's cached PPO, σ = 0.2 augmentation) and a
stable-baselines3 PPO trained here (cached) through SB3's ``make_vec_env`` with our
``GaussianObservationNoise`` wrapper (σ = 0.2). Tens of minutes on a loaded 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from certkit.rl.policies import TorchPolicy, mlp
from certkit.rl.rollout import smoothed_rollouts


def balancing_mlp() -> TorchPolicy:
    """A 4→64→64→2 MLP cloned from a linear controller (fast, deterministic)."""
    torch.manual_seed(0)
    net = mlp(4, 2)
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    scale = torch.tensor([1.0, 1.0, 0.15, 1.0])
    for _ in range(300):
        x = torch.randn(512, 4, generator=g) * scale
        y = ((x[:, 2] + 0.5 * x[:, 3] + 0.1 * x[:, 1] + 0.05 * x[:, 0]) > 0).long()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return TorchPolicy(net)


def gym_native_vector(policy: TorchPolicy, n: int, sigma: float = 0.2, seed: int = 0) -> float:
    """First episode of each of n envs of gymnasium's own vectorised CartPole
    (``gym.make_vec(..., vectorization_mode="vector_entry_point")``), driven by the same
    batched loop (one policy call and one noise call per step, finished envs masked).
    Its envs share one reset generator, so episodes differ from ours (timing row only).
    Returns the mean return."""
    import gymnasium as gym

    from certkit.core import gaussian_rows

    venv = gym.make_vec("CartPole-v1", num_envs=n, vectorization_mode="vector_entry_point")
    obs, _ = venv.reset(seed=seed)
    ids = np.arange(n, dtype=np.int64)
    active = np.ones(n, dtype=bool)
    returns = np.zeros(n)
    for t in range(500):
        o = obs + gaussian_rows((n, 4), sigma, seed, streams=ids, offsets=np.full(n, 4 * t, np.int64))
        obs, rew, term, trunc, _ = venv.step(policy(o))
        np.add(returns, rew, out=returns, where=active)
        active &= ~(term | trunc)
        if not active.any():
            break
    venv.close()
    return float(returns.mean())


def sb3_ppo_cartpole(steps: int = 100_000) -> Any:
    """An SB3 PPO for CartPole-v1 trained under σ = 0.2 observation noise (our wrapper,
    per-rank streams through SB3's make_vec_env), rl-zoo's CartPole hyper-parameters;
    cached as a zip and loaded back through certkit's safe SB3 loader."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    from certkit.core.cache import cache_dir
    from certkit.rl.noise import GaussianObservationNoise
    from certkit.rl.sb3_zip import load_sb3

    path = cache_dir("rl") / f"sb3_ppo_cartpole_sigma0.2_{steps}.zip"
    if not path.exists():
        venv = make_vec_env("CartPole-v1", n_envs=8, seed=0, wrapper_class=GaussianObservationNoise,
                            wrapper_kwargs={"sigma": 0.2, "seed": 1})
        model = PPO("MlpPolicy", venv, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98,
                    n_epochs=20, ent_coef=0.0, learning_rate=1e-3, clip_range=0.2, seed=0,
                    device="cpu", verbose=0)
        model.learn(steps)
        model.save(path)
    return load_sb3(path)


def family_comparison(args: argparse.Namespace) -> None:
    """Certified vs attacked mean return per budget, per attack and strongest."""
    from certkit.core.cache import cache_dir
    from certkit.rl.attacks import ATTACKS, adaptive_attack_sweep, soundness_margin
    from certkit.rl.policy_smoothing import certify_reward
    from certkit.rl.report import trained_cartpole

    budgets = [float(x) for x in args.soundness_budgets.split(",")]
    H, E = args.horizon, args.soundness_episodes
    t0 = time.perf_counter()
    pols = {"ours (certkit PPO)": trained_cartpole(cache_dir("rl")).policy,
            "SB3 PPO": sb3_ppo_cartpole()}
    print(f"policies ready in {time.perf_counter() - t0:.0f} s; load {os.getloadavg()[0]:.1f}",
          flush=True)
    print(f"{'policy':<20}{'B':>5}{'certified':>11}" + "".join(f"{a:>12}" for a in ATTACKS)
          + f"{'strongest':>11}{'margin':>8}{'sound':>7}{'s':>7}", flush=True)
    out = []
    for name, pol in pols.items():
        cert = certify_reward(pol, "CartPole-v1", 0.2, budgets, episodes=args.family_cert_episodes,
                              horizon=H, seed=11)
        for j, b in enumerate(budgets):
            t = time.perf_counter()
            res = adaptive_attack_sweep(pol, "CartPole-v1", 0.2, b, E, horizon=H,
                                        thresholds=(0.0,), seed=12, batch_size=E,
                                        attacks=ATTACKS, n_samples=args.soundness_samples,
                                        pgd_samples=args.pgd_samples, pgd_steps=args.pgd_steps)
            margin = soundness_margin(E, H, 0.01)
            row = {"policy": name, "budget": b, "certified": cert.expected[j],
                   "clean_smoothed": cert.clean_mean,
                   **{r["attack"]: r["mean"] for r in res.runs}, "strongest": res.worst_attack,
                   "margin": margin, "sound": res.worst_mean + margin >= cert.expected[j],
                   "seconds": time.perf_counter() - t, "load": os.getloadavg()[0]}
            out.append(row)
            print(f"{name:<20}{b:>5}{row['certified']:>11.2f}"
                  + "".join(f"{row[a]:>12.2f}" for a in ATTACKS)
                  + f"{row['strongest']:>11}{margin:>8.2f}{row['sound']!s:>7}{row['seconds']:>7.0f}",
                  flush=True)
    print(json.dumps({"name": "rl_attack_family", "horizon": H, "episodes": E,
                      "cert_episodes": args.family_cert_episodes, "rows": out}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=10_000)
    ap.add_argument("--naive-episodes", type=int, default=200)
    ap.add_argument("--soundness", action="store_true")
    ap.add_argument("--soundness-episodes", type=int, default=1000)
    ap.add_argument("--soundness-budgets", default="0.2,0.4,0.6,0.8,1.0")
    ap.add_argument("--soundness-thresholds", default="0,0.5,2")
    ap.add_argument("--soundness-samples", type=int, default=128, help="noise draws for Q")
    ap.add_argument("--pgd-samples", type=int, default=32)
    ap.add_argument("--pgd-steps", type=int, default=10)
    ap.add_argument("--horizon", type=int, default=200, help="soundness-check horizon")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads, the same for every engine (1: a 64-unit MLP loses "
                         "more to thread sync than it gains on a shared 2-core machine)")
    ap.add_argument("--repeats", type=int, default=3, help="best of this many timed runs")
    ap.add_argument("--family", action="store_true",
                    help="only the attack-family comparison on our PPO and an SB3 PPO")
    ap.add_argument("--family-cert-episodes", type=int, default=10_000)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.family:
        family_comparison(args)
        return
    load0 = os.getloadavg()[0]
    policy = balancing_mlp()
    smoothed_rollouts(policy, "CartPole-v1", 0.2, 16, seed=0, threads=args.threads)  # warm-up

    def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
        """fn's result, best wall seconds and best CPU seconds over --repeats runs (CPU
        time is what a loaded shared machine inflates least)."""
        best_w = best_c = float("inf")
        out = None
        for _ in range(max(1, args.repeats)):
            w, c = time.perf_counter(), time.process_time()
            out = fn()
            best_w = min(best_w, time.perf_counter() - w)
            best_c = min(best_c, time.process_time() - c)
        return out, best_w, best_c

    ours, ours_s, ours_cpu = timed(lambda: smoothed_rollouts(
        policy, "CartPole-v1", 0.2, args.episodes, seed=0, threads=args.threads))
    k = min(args.naive_episodes, args.episodes)
    w, c = time.perf_counter(), time.process_time()
    naive = smoothed_rollouts(policy, "CartPole-v1", 0.2, np.arange(k), seed=0, backend="naive",
                              threads=args.threads)
    anchor_s = (time.perf_counter() - w) * args.episodes / k
    anchor_cpu = (time.process_time() - c) * args.episodes / k
    same = bool(np.array_equal(ours.returns[:k], naive.returns))
    gym_ret, gym_s, gym_cpu = timed(lambda: gym_native_vector(policy, args.episodes))
    vec_k = min(1000, args.episodes)
    w, c = time.perf_counter(), time.process_time()
    smoothed_rollouts(policy, "CartPole-v1", 0.2, vec_k, seed=0, backend="vector", batch_size=vec_k,
                      threads=args.threads)
    vec_s = (time.perf_counter() - w) * args.episodes / vec_k
    vec_cpu = (time.process_time() - c) * args.episodes / vec_k
    load1 = os.getloadavg()[0]
    print(f"torch threads {args.threads}; 1-min load average {load0:.2f} before, {load1:.2f} after")
    print(f"{'engine':<40}{'episodes':>9}{'wall s':>9}{'CPU s':>9}{'mean return':>13}")
    print(f"{'certkit batched (numpy twin)':<40}{args.episodes:>9}{ours_s:>9.2f}{ours_cpu:>9.2f}"
          f"{ours.returns.mean():>13.2f}")
    print(f"{'gymnasium native vector CartPole':<40}{args.episodes:>9}{gym_s:>9.2f}{gym_cpu:>9.2f}"
          f"{gym_ret:>13.2f}")
    print(f"{'gymnasium SyncVectorEnv (extrapolated)':<40}{args.episodes:>9}{vec_s:>9.2f}"
          f"{vec_cpu:>9.2f}{'':>13}")
    print(f"{'naive 1-env loop (extrapolated)':<40}{args.episodes:>9}{anchor_s:>9.2f}"
          f"{anchor_cpu:>9.2f}{naive.returns.mean():>13.2f}")
    print(f"identical returns on the first {k} episodes: {same}; mean length {ours.lengths.mean():.1f}")
    if args.soundness:
        from certkit.core.cache import cache_dir
        from certkit.rl.report import soundness_check, trained_cartpole

        tp = trained_cartpole(cache_dir("rl"), quiet=False)
        print(f"soundness: policy {tp.meta.get('steps')} PPO steps, eval {tp.meta.get('best_eval')}",
              flush=True)
        t = time.perf_counter()
        print(f"{'B':>5}{'certified':>11}{'attacked':>10}{'margin':>8}{'sound':>7}{'strongest':>12}"
              f"{'max spent':>10}{'success':>9}{'s':>7}", flush=True)

        def show(r: dict[str, Any]) -> None:
            print(f"{r['budget']:>5}{r['certified']:>11.2f}{r['attacked_mean']:>10.2f}"
                  f"{r['margin']:>8.2f}{r['sound']!s:>7}"
                  f"{r['worst_attack'] + '@' + format(r['worst_threshold'], 'g'):>12}"
                  f"{r['max_spent']:>10.3f}{r['success_rate']:>9.3f}"
                  f"{time.perf_counter() - t:>7.0f}  means {r['means']}", flush=True)

        soundness_check(
            tp.policy, episodes=args.soundness_episodes, cert_episodes=10_000,
            budgets=[float(x) for x in args.soundness_budgets.split(",")], horizon=args.horizon,
            thresholds=tuple(float(x) for x in args.soundness_thresholds.split(",")),
            n_samples=args.soundness_samples, pgd_samples=args.pgd_samples,
            pgd_steps=args.pgd_steps, on_row=show)
    print(json.dumps({"name": "rl_smoothed_cartpole_rollouts", "ours_s": round(ours_s, 4),
                      "anchor_s": round(anchor_s, 4), "ratio": round(anchor_s / ours_s, 2),
                      "episodes": args.episodes, "anchor": "naive one-env loop",
                      "ours_cpu_s": round(ours_cpu, 4), "anchor_cpu_s": round(anchor_cpu, 4),
                      "threads": args.threads, "load": round(max(load0, load1), 2),
                      "identical": same}))


if __name__ == "__main__":
    main()
