"""Smoothed CartPole rollouts: certkit's batched engine vs a naive one-env-at-a-time loop.

Same work for both: smoothed CartPole-v1 episodes (σ = 0.2) of a small MLP policy
(4→64→64→2, behaviour-cloned in a second from a linear balancing controller so episodes
are long, as a trained agent's are), episode k reset with the same seed and
noised with the same Philox stream in both, so the returns are identical (checked).
The naive loop (gymnasium env + one policy call per step, as reference code does) runs on
a subset of the episodes and is extrapolated linearly (it is per-episode work).

Flags: --episodes (default 10,000), --naive-episodes (default 200), --soundness (also runs
the full soundness check: ≥1,000 adaptive-attacked episodes per budget against the
certificate of a trained policy; minutes).
"""

from __future__ import annotations

import argparse
import json
import time

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
    args = ap.parse_args()
    torch.set_num_threads(1)  # a 64-unit MLP gains nothing from threads; avoids contention
    policy = balancing_mlp()
    smoothed_rollouts(policy, "CartPole-v1", 0.2, 16, seed=0)  # warm-up
    t = time.perf_counter()
    ours = smoothed_rollouts(policy, "CartPole-v1", 0.2, args.episodes, seed=0)
    ours_s = time.perf_counter() - t
    k = min(args.naive_episodes, args.episodes)
    t = time.perf_counter()
    naive = smoothed_rollouts(policy, "CartPole-v1", 0.2, np.arange(k), seed=0, backend="naive")
    naive_sub = time.perf_counter() - t
    anchor_s = naive_sub * args.episodes / k
    same = bool(np.array_equal(ours.returns[:k], naive.returns))
    vec_k = min(1000, args.episodes)
    t = time.perf_counter()
    smoothed_rollouts(policy, "CartPole-v1", 0.2, vec_k, seed=0, backend="vector", batch_size=vec_k)
    vec_s = (time.perf_counter() - t) * args.episodes / vec_k
    print(f"{'engine':<34}{'episodes':>10}{'seconds':>12}{'mean return':>14}")
    print(f"{'certkit batched (numpy twin)':<34}{args.episodes:>10}{ours_s:>12.2f}{ours.returns.mean():>14.2f}")
    print(f"{'gymnasium SyncVectorEnv (extrap.)':<34}{args.episodes:>10}{vec_s:>12.2f}{'':>14}")
    print(f"{'naive 1-env loop (extrapolated)':<34}{args.episodes:>10}{anchor_s:>12.2f}{naive.returns.mean():>14.2f}")
    print(f"identical returns on the first {k} episodes: {same}; mean length {ours.lengths.mean():.1f}")
    if args.soundness:
        from certkit.core.cache import cache_dir
        from certkit.rl.report import soundness_check, trained_cartpole

        tp = trained_cartpole(cache_dir("rl"), quiet=False)
        print(f"soundness: policy {tp.meta.get('steps')} PPO steps, eval {tp.meta.get('best_eval')}",
              flush=True)
        t = time.perf_counter()
        rows = soundness_check(
            tp.policy, episodes=args.soundness_episodes, cert_episodes=10_000,
            budgets=[float(x) for x in args.soundness_budgets.split(",")], horizon=args.horizon,
            thresholds=tuple(float(x) for x in args.soundness_thresholds.split(",")),
            n_samples=args.soundness_samples, pgd_samples=args.pgd_samples,
            pgd_steps=args.pgd_steps)
        print(f"{'B':>5}{'certified':>11}{'attacked':>10}{'margin':>8}{'sound':>7}{'worst tau':>10}"
              f"{'max spent':>10}   ({time.perf_counter() - t:.0f} s)")
        for r in rows:
            print(f"{r['budget']:>5}{r['certified']:>11.2f}{r['attacked_mean']:>10.2f}"
                  f"{r['margin']:>8.2f}{r['sound']!s:>7}{r['worst_threshold']:>10}"
                  f"{r['max_spent']:>10.3f}")
    print(json.dumps({"name": "rl_smoothed_cartpole_rollouts", "ours_s": round(ours_s, 4),
                      "anchor_s": round(anchor_s, 4), "ratio": round(anchor_s / ours_s, 2),
                      "episodes": args.episodes, "anchor": "naive one-env loop",
                      "identical": same}))


if __name__ == "__main__":
    main()
