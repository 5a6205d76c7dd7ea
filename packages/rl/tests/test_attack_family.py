"""The adaptive attack family: the authors' fixed-step attack and the spread-budget attack,
and the sweep that reports the strongest."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from certkit.rl.attacks import (
    FixedStepAttack,
    SpreadBudgetAttack,
    adaptive_attack_sweep,
)
from certkit.rl.policies import TorchPolicy
from certkit.rl.rollout import smoothed_rollouts


class Linear(torch.nn.Module):
    """Scores (x0, 0, -1): action 0 while x0 > 0; action 1 is a target (gap x0), action 2
    is never the argmax below x0 = -1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.zeros_like(x[:, 0])
        return torch.stack([x[:, 0], z, z - 1.0], dim=1)


def test_fixed_step_flips_when_the_budget_reaches_and_spends_nothing_otherwise() -> None:
    obs = np.array([[0.3, 0.0], [0.3, 0.0], [1.0, 0.0]], np.float32)
    atk = FixedStepAttack(Linear(), sigma=0.01, budget=0.5, n_samples=64, step=0.01)
    atk.begin(np.arange(3))
    atk.remaining2[2] = 0.5**2  # row 2 needs 1.0 > 0.5: unreachable
    eps = atk.perturb(obs, np.array([True, False, True]), 0)
    # row 0: moved along -x0 by ~0.3 (the smoothed argmax flips to action 1), nothing else
    assert 0.29 <= -eps[0, 0] <= 0.33 and abs(eps[0, 1]) < 1e-6
    assert np.all(eps[1] == 0) and np.all(eps[2] == 0)  # inactive; unsuccessful is free
    assert math.isclose(atk.remaining2[0], 0.25 - float(eps[0, 0]) ** 2, rel_tol=1e-5)
    assert atk.remaining2[2] == 0.25 and atk.successes == 1 and atk.attempts == 2
    # threshold 0.5: action 1 (gap 0.3) is no target; action 2 (gap 1.3) is, out of reach
    atk = FixedStepAttack(Linear(), sigma=0.01, budget=0.5, threshold=0.5, n_samples=8)
    atk.begin(np.arange(1))
    assert np.all(atk.perturb(obs[:1], np.array([True]), 0) == 0)
    assert atk.attempts == 1 and atk.successes == 0 and atk.remaining2[0] == 0.25


def test_spread_attack_spends_b_over_sqrt_t_per_step_and_exactly_b_over_t_steps() -> None:
    pol = TorchPolicy(torch.nn.Sequential(torch.nn.Linear(4, 2)))
    T, B = 30, 0.9
    atk = SpreadBudgetAttack(pol, 0.2, B, T, n_samples=8)
    ro = smoothed_rollouts(pol, "CartPole-v1", 0.2, 5, seed=0, horizon=T, attack=atk)
    expect = B * np.sqrt(ro.lengths / T) * (1 - 1e-6)
    np.testing.assert_allclose(ro.spent, expect, rtol=1e-5)
    assert ro.spent.max() <= B


def test_sweep_runs_the_family_and_reports_the_strongest() -> None:
    pol = TorchPolicy(torch.nn.Sequential(torch.nn.Linear(4, 2)))
    with torch.no_grad():  # a fragile but decent controller: push toward the pole's lean
        pol.module[0].weight.copy_(torch.tensor([[0.0, 0.0, -1.0, -0.3], [0.0, 0.0, 1.0, 0.3]]))
        pol.module[0].bias.zero_()
    res = adaptive_attack_sweep(pol, "CartPole-v1", 0.2, 1.0, 6, horizon=40, thresholds=(0.0,),
                                n_samples=16, pgd_samples=8, pgd_steps=5, seed=3,
                                attacks=("adaptive", "fixed_step", "spread"), fixed_samples=16,
                                fixed_step=0.05)
    assert [r["attack"] for r in res.runs] == ["adaptive", "fixed_step", "spread"]
    assert res.worst_mean == min(res.means)
    assert res.worst_attack == res.runs[int(np.argmin(res.means))]["attack"]
    assert all(r["max_spent"] <= 1.0 * (1 + 1e-5) for r in res.runs)
    with pytest.raises(ValueError, match="attacks"):
        adaptive_attack_sweep(pol, "CartPole-v1", 0.2, 1.0, 2, horizon=5, attacks=("cw",))
