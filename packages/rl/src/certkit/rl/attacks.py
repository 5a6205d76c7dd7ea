"""Observation attacks on (smoothed) RL agents, and the soundness check of the reward
certificate.

- :class:`AdaptiveSmoothedAttack` — the adaptive attack of Kumar, Levine & Feizi (ICLR 2022,
  arXiv 2106.11420, appendix; reconstructed from the paper's description): a total ℓ2 budget
  B over the episode, carried over (remaining r² = B² − Σ‖ε_s‖²); at each step, the
  smoothed Q-values Q̄(o) = E_δ[Q(o + δ)] (``n_samples`` = 128 noise draws); target actions
  are those with Q̄ below Q̄(best) − ``threshold``; ℓ2 PGD moves o toward the lowest-valued
  target (cross-entropy of the noisy scores, averaged over the noise draws), projected on
  the remaining budget ball, stopping as soon as the smoothed argmax is a target; an
  unsuccessful attempt is discarded and costs nothing. Ours on top: a successful
  perturbation is shrunk by bisection to the smallest scale that still flips the smoothed
  action (``shrink_steps``), so budget a flip does not need is kept for later steps. :func:`adaptive_attack_sweep` runs it
  for several thresholds and keeps the worst.
- :class:`FixedStepAttack` — the authors' own attack, as released with the paper (facts
  from their CartPole script): one set of ``n_samples`` = 128 noise draws kept for the whole
  step; the smoothed scores are the mean of the scores over those draws; every action whose
  smoothed score is below the current action's by at least ``threshold`` is tried in turn,
  from the clean observation, with normalised-gradient steps of fixed size ``step`` (0.01)
  on the cross-entropy of the smoothed scores, ``int(step_multiplier · r / step)`` steps
  (multiplier 2, r the remaining budget), projected on the remaining budget ball; among the
  targets reached, the lowest-valued one is kept; nothing is spent when none is reached.
- :class:`SpreadBudgetAttack` — the budget spread evenly: ``‖ε_t‖ = B/√T`` at every step,
  one FGSM step (ℓ2) away from the smoothed action on the gradient of the cross-entropy
  averaged over ``n_samples`` = 32 noise draws. No carry-over, no targets: on a policy whose
  every decision is fragile it beats spending the budget on a few flips.
- :class:`PerStepAttack` — FGSM (one step) / PGD per-step attacks in the style of Huang et al.
  2017 (arXiv 1702.02284) for undefended agents: each step, push the observation away from
  the agent's preferred action within ‖ε_t‖ ≤ eps (ℓ2 or ℓ∞).

:func:`adaptive_attack_sweep` runs the adaptive family (``"adaptive"`` and
``"fixed_step"`` at every threshold, ``"spread"``) on the same episodes and reports the
strongest: the soundness check compares the certificate with the lowest attacked mean.

Shapes: obs (N, D) float32; scores (N, A). The attack never sees the smoothing noise δ_t.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from certkit.core.validation import check_int, check_positive, check_seed, check_sigma
from certkit.rl.envs import make_env_factory, resolve_horizon
from certkit.rl.policies import as_policy
from certkit.rl.rollout import smoothed_rollouts


def _scores_fn(policy: Any) -> Any:
    pol = as_policy(policy)
    if not getattr(pol, "differentiable", False):
        raise TypeError("policy: gradient attacks need differentiable scores (a torch module or an "
                        "SB3 DQN/PPO model), got a plain function")
    return pol.scores


def _project(dn: npt.NDArray[np.float64], remaining2: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    """Rows of ``dn`` scaled into the remaining budget balls (float64, a 1e-6 margin so
    float32 rounding never exceeds the budget)."""
    nr = np.linalg.norm(dn, axis=1)
    scale = np.minimum(1.0, np.sqrt(remaining2) * (1 - 1e-6) / np.maximum(nr, 1e-30))
    return (dn * scale[:, None]).astype(np.float32)


class _CarryOverAttack:
    """Shared bookkeeping of the budgeted attacks: a total ℓ2 budget B per episode, the
    remaining r² = B² − Σ‖ε_s‖² per episode of the batch, a torch generator per batch."""

    def __init__(self, policy: Any, sigma: float, budget: float, seed: int) -> None:
        self.scores = _scores_fn(policy)
        self.scores_ng = getattr(as_policy(policy), "scores_nograd", self.scores)
        self.sigma = check_sigma(sigma)
        self.budget = check_positive(budget, "budget", allow_zero=True)
        self.seed = check_seed(seed)
        self.remaining2 = np.zeros(0)
        self.successes = 0
        self.attempts = 0

    def begin(self, episode_ids: npt.NDArray[np.int64]) -> None:
        self.remaining2 = np.full(episode_ids.size, self.budget**2)
        self.gen = torch.Generator().manual_seed(self.seed * 1_000_003 + int(episode_ids[0]))

    def _live(self, obs: npt.NDArray[np.float32], active: npt.NDArray[np.bool_]
              ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.intp], torch.Tensor | None]:
        """(ε (N, D) zeros, the rows with budget left, their observations (m, D) or None)."""
        flat = obs.reshape(obs.shape[0], -1)
        eps = np.zeros_like(flat)
        live = np.flatnonzero(active & (self.remaining2 > 1e-12))
        if live.size == 0 or self.budget == 0:
            return eps, live, None
        return eps, live, torch.from_numpy(np.ascontiguousarray(flat[live]))

    def _spend(self, eps: npt.NDArray[np.float32], rows: npt.NDArray[np.intp],
               delta: npt.NDArray[Any], keep: npt.NDArray[np.bool_] | None = None) -> None:
        """ε[rows] = delta projected on the remaining budget (zero where not ``keep``: an
        unsuccessful attempt costs nothing), and charge it."""
        dn = _project(np.asarray(delta, np.float64), self.remaining2[rows])
        if keep is not None:
            dn[~keep] = 0.0
        eps[rows] = dn
        self.remaining2[rows] = np.maximum(
            self.remaining2[rows] - np.square(dn.astype(np.float64)).sum(axis=1), 0.0)


class AdaptiveSmoothedAttack(_CarryOverAttack):
    """Adaptive attack on a smoothed policy with a total ℓ2 budget per episode.

    policy: differentiable policy (Q-values or logits). sigma: the smoothing σ.
    budget: total ℓ2 budget B. threshold: the Q-gap that makes an action a target.
    shrink_steps: bisection halvings that shrink a successful perturbation to the smallest
    scale that still flips the smoothed action (0: keep PGD's, as the paper describes).
    """

    def __init__(self, policy: Any, sigma: float, budget: float, threshold: float = 0.0, *,
                 n_samples: int = 128, pgd_samples: int = 32, pgd_steps: int = 10,
                 seed: int = 0, shrink_steps: int = 0) -> None:
        super().__init__(policy, sigma, budget, seed)
        self.threshold = check_positive(threshold, "threshold", allow_zero=True)
        self.n_samples = check_int(n_samples, "n_samples", minimum=1)
        self.pgd_samples = check_int(pgd_samples, "pgd_samples", minimum=1)
        self.pgd_steps = check_int(pgd_steps, "pgd_steps", minimum=1)
        self.shrink_steps = check_int(shrink_steps, "shrink_steps", minimum=0)

    def _smoothed_q(self, o: torch.Tensor, s: int) -> torch.Tensor:
        n, d = o.shape
        noise = torch.randn((s, n, d), generator=self.gen) * self.sigma
        with torch.no_grad():
            q = self.scores_ng((o.unsqueeze(0) + noise).reshape(s * n, d)).reshape(s, n, -1)
        return q.mean(0)

    def _shrink(self, o: torch.Tensor, delta: torch.Tensor, done: torch.Tensor,
                tgt_mask: torch.Tensor) -> torch.Tensor:
        """Smallest scale c·delta (bisection, ``shrink_steps`` halvings) that still makes
        the smoothed argmax a target, for the successful rows: the budget a flip does not
        need stays for later steps (ours, not the paper's: a stronger adversary for the
        soundness check). One set of ``n_samples`` noise draws serves every candidate."""
        idx = torch.nonzero(done).squeeze(1)
        o_d, d_d, tm = o[idx], delta[idx], tgt_mask[idx]
        m, d = o_d.shape
        noise = torch.randn((self.n_samples, m, d), generator=self.gen) * self.sigma
        lo = torch.zeros(m)
        hi = torch.ones(m)
        with torch.no_grad():
            for _ in range(self.shrink_steps):
                mid = (lo + hi) / 2
                x = (o_d + mid.unsqueeze(1) * d_d).unsqueeze(0) + noise
                q = self.scores_ng(x.reshape(-1, d)).reshape(self.n_samples, m, -1).mean(0)
                hit = tm.gather(1, q.argmax(dim=1, keepdim=True)).squeeze(1)
                hi = torch.where(hit, mid, hi)
                lo = torch.where(hit, lo, mid)
        out = delta.clone()
        out[idx] = d_d * torch.clamp(hi * 1.25, max=1.0).unsqueeze(1)  # 25% safety margin
        return out

    def perturb(self, obs: npt.NDArray[np.float32], active: npt.NDArray[np.bool_],
                t: int) -> npt.NDArray[np.float32]:
        eps, live, o = self._live(obs, active)
        if o is None:
            return eps.reshape(obs.shape)
        q = self._smoothed_q(o, self.n_samples)
        best = q.max(dim=1).values
        is_target = q < (best - self.threshold).unsqueeze(1)
        has = is_target.any(dim=1)
        if not bool(has.any()):
            return eps.reshape(obs.shape)
        sel = torch.nonzero(has).squeeze(1)
        o_s = o[sel]
        tgt_mask = is_target[sel]
        target = torch.where(tgt_mask, q[sel], torch.full_like(q[sel], math.inf)).argmin(dim=1)
        radius = torch.from_numpy(np.sqrt(self.remaining2[live[sel.numpy()]])).float()
        step = radius * 2.5 / self.pgd_steps
        delta = torch.zeros_like(o_s)
        done = torch.zeros(o_s.shape[0], dtype=torch.bool)
        m, d = o_s.shape
        s = self.pgd_samples
        for _ in range(self.pgd_steps):
            delta.requires_grad_(True)
            noise = torch.randn((s, m, d), generator=self.gen) * self.sigma
            logits = self.scores((o_s + delta).unsqueeze(0).add(noise).reshape(s * m, d))
            loss = F.cross_entropy(logits, target.repeat(s), reduction="sum")
            (g,) = torch.autograd.grad(loss, delta)
            with torch.no_grad():
                gn = g.norm(dim=1, keepdim=True).clamp_min(1e-12)
                upd = delta - step.unsqueeze(1) * g / gn
                nrm = upd.norm(dim=1, keepdim=True).clamp_min(1e-12)
                upd = upd * torch.clamp(radius.unsqueeze(1) / nrm, max=1.0)
                delta = torch.where(done.unsqueeze(1), delta.detach(), upd)
                qs = self._smoothed_q(o_s + delta, self.pgd_samples)
                hit = tgt_mask.gather(1, qs.argmax(dim=1, keepdim=True)).squeeze(1)
                done = done | hit
            if bool(done.all()):
                break
        delta = delta.detach()
        with torch.no_grad():  # confirm success with the full n_samples estimate
            qs = self._smoothed_q(o_s + delta, self.n_samples)
            done = done & tgt_mask.gather(1, qs.argmax(dim=1, keepdim=True)).squeeze(1)
            if self.shrink_steps and bool(done.any()):
                # keep the shrunk perturbation only where it is confirmed too
                small = self._shrink(o_s, delta, done, tgt_mask)
                qs = self._smoothed_q(o_s + small, self.n_samples)
                ok = done & tgt_mask.gather(1, qs.argmax(dim=1, keepdim=True)).squeeze(1)
                delta = torch.where(ok.unsqueeze(1), small, delta)
        self.attempts += int(m)
        self.successes += int(done.sum())
        # projected once more in float64 so float32 rounding never exceeds the budget
        self._spend(eps, live[sel.numpy()], delta.detach().numpy(), done.numpy())
        return eps.reshape(obs.shape)


class FixedStepAttack(_CarryOverAttack):
    """The authors' fixed-step attack on a smoothed policy (see the module doc), batched
    over episodes; a total ℓ2 budget B carried over the episode.

    policy: differentiable policy. sigma: the smoothing σ. threshold: an action is a target
    when its smoothed score is at least ``threshold`` below the current action's.
    """

    def __init__(self, policy: Any, sigma: float, budget: float, threshold: float = 0.0, *,
                 n_samples: int = 128, step: float = 0.01, step_multiplier: float = 2.0,
                 seed: int = 0) -> None:
        super().__init__(policy, sigma, budget, seed)
        self.threshold = check_positive(threshold, "threshold", allow_zero=True)
        self.n_samples = check_int(n_samples, "n_samples", minimum=1)
        self.step = check_positive(step, "step")
        self.step_multiplier = check_positive(step_multiplier, "step_multiplier")

    def _mean_scores(self, x: torch.Tensor, noise: torch.Tensor, grad: bool) -> torch.Tensor:
        s, m, d = noise.shape
        big = (x.unsqueeze(0) + noise).reshape(s * m, d)
        out = self.scores(big) if grad else self.scores_ng(big)
        return out.reshape(s, m, -1).mean(0)

    def perturb(self, obs: npt.NDArray[np.float32], active: npt.NDArray[np.bool_],
                t: int) -> npt.NDArray[np.float32]:
        eps, live, o = self._live(obs, active)
        if o is None:
            return eps.reshape(obs.shape)
        m, d = o.shape
        with torch.no_grad():
            q = self._mean_scores(o, torch.randn((self.n_samples, m, d), generator=self.gen)
                                  * self.sigma, False)
        start = q.argmax(dim=1)
        is_target = q + self.threshold <= q.gather(1, start.unsqueeze(1))
        is_target[torch.arange(m), start] = False
        noise = torch.randn((self.n_samples, m, d), generator=self.gen) * self.sigma  # kept
        radius = torch.from_numpy(np.sqrt(self.remaining2[live])).float()
        counts = (self.step_multiplier * radius / self.step).long()
        best_q = q.gather(1, start.unsqueeze(1)).squeeze(1).clone()
        best = torch.zeros_like(o)
        found = torch.zeros(m, dtype=torch.bool)
        for a in range(q.shape[1]):
            rows = torch.nonzero(is_target[:, a]).squeeze(1)
            if rows.numel() == 0:
                continue
            x0, nz, cnt = o[rows], noise[:, rows], counts[rows]
            delta = torch.zeros_like(x0)
            hit = torch.zeros(rows.numel(), dtype=torch.bool)
            tgt = torch.full((rows.numel(),), a, dtype=torch.long)
            for i in range(int(cnt.max()) + 1):
                with torch.no_grad():
                    now = self._mean_scores(x0 + delta, nz, False).argmax(dim=1) == a
                hit |= now & ~hit
                go = ~hit & (cnt > i)
                if not bool(go.any()):
                    break
                dg = delta[go].clone().requires_grad_(True)
                loss = F.cross_entropy(self._mean_scores(x0[go] + dg, nz[:, go], True), tgt[go],
                                       reduction="sum")
                (g,) = torch.autograd.grad(loss, dg)
                with torch.no_grad():
                    upd = dg - self.step * g / g.norm(dim=1, keepdim=True).clamp_min(1e-12)
                    nrm = upd.norm(dim=1, keepdim=True).clamp_min(1e-12)
                    delta[go] = upd * torch.clamp(radius[rows][go].unsqueeze(1) / nrm, max=1.0)
            better = hit & (q[rows, a] < best_q[rows])
            sel = rows[better]
            best[sel] = delta[better]
            best_q[sel] = q[sel, a]
            found[sel] = True
        self.attempts += int(is_target.any(dim=1).sum())
        self.successes += int(found.sum())
        self._spend(eps, live, best.numpy(), found.numpy())
        return eps.reshape(obs.shape)


class SpreadBudgetAttack(_CarryOverAttack):
    """Spends ``B/√T`` at every step (total exactly B over T steps): one ℓ2 FGSM step away
    from the smoothed action, on the gradient of the cross-entropy averaged over
    ``n_samples`` noise draws. policy: differentiable. horizon: T."""

    def __init__(self, policy: Any, sigma: float, budget: float, horizon: int, *,
                 n_samples: int = 32, seed: int = 0) -> None:
        super().__init__(policy, sigma, budget, seed)
        self.horizon = check_int(horizon, "horizon", minimum=1)
        self.n_samples = check_int(n_samples, "n_samples", minimum=1)
        self.per_step = self.budget / math.sqrt(self.horizon)

    def perturb(self, obs: npt.NDArray[np.float32], active: npt.NDArray[np.bool_],
                t: int) -> npt.NDArray[np.float32]:
        eps, live, o = self._live(obs, active)
        if o is None:
            return eps.reshape(obs.shape)
        m, d = o.shape
        s = self.n_samples
        noise = torch.randn((s, m, d), generator=self.gen) * self.sigma
        x = o.clone().requires_grad_(True)
        logits = self.scores((x.unsqueeze(0) + noise).reshape(s * m, d))
        a0 = logits.detach().reshape(s, m, -1).mean(0).argmax(dim=1)
        loss = F.cross_entropy(logits, a0.repeat(s), reduction="sum")
        (g,) = torch.autograd.grad(loss, x)
        step = g / g.norm(dim=1, keepdim=True).clamp_min(1e-12) * self.per_step
        self._spend(eps, live, step.detach().numpy())
        self.attempts += m
        return eps.reshape(obs.shape)


class PerStepAttack:
    """FGSM / PGD per-step observation attack (Huang et al. 2017) with ‖ε_t‖ ≤ eps.

    norm: "l2" or "linf". steps=1 is FGSM. The total ℓ2 budget reported to the rollout is
    eps·sqrt(T) (ℓ2) or eps·sqrt(D·T) (ℓ∞), so it can be checked against a certificate.
    """

    def __init__(self, policy: Any, eps: float, horizon: int, *, norm: str = "l2",
                 steps: int = 1, obs_dim: int | None = None) -> None:
        self.scores = _scores_fn(policy)
        self.eps = check_positive(eps, "eps", allow_zero=True)
        if norm not in ("l2", "linf"):
            raise ValueError(f"norm: expected 'l2' or 'linf', got {norm!r}")
        self.norm = norm
        self.steps = check_int(steps, "steps", minimum=1)
        h = check_int(horizon, "horizon", minimum=1)
        self.budget = self.eps * math.sqrt(h) * (math.sqrt(obs_dim) if norm == "linf" and obs_dim else 1.0)
        if norm == "linf" and obs_dim is None:
            self.budget = math.inf

    def begin(self, episode_ids: npt.NDArray[np.int64]) -> None:
        return None

    def perturb(self, obs: npt.NDArray[np.float32], active: npt.NDArray[np.bool_],
                t: int) -> npt.NDArray[np.float32]:
        n = obs.shape[0]
        o = torch.from_numpy(np.ascontiguousarray(obs.reshape(n, -1)))
        with torch.no_grad():
            a0 = self.scores(o).argmax(dim=1)
        delta = torch.zeros_like(o)
        alpha = self.eps if self.steps == 1 else 2.5 * self.eps / self.steps
        for _ in range(self.steps):
            delta.requires_grad_(True)
            loss = F.cross_entropy(self.scores(o + delta), a0, reduction="sum")
            (g,) = torch.autograd.grad(loss, delta)
            with torch.no_grad():
                if self.norm == "linf":
                    delta = (delta + alpha * g.sign()).clamp(-self.eps, self.eps)
                else:
                    delta = delta + alpha * g / g.norm(dim=1, keepdim=True).clamp_min(1e-12)
                    nrm = delta.norm(dim=1, keepdim=True).clamp_min(1e-12)
                    delta = delta * torch.clamp(self.eps * (1 - 1e-6) / nrm, max=1.0)
        out = delta.detach().numpy()
        out[~active] = 0.0
        return out.reshape(obs.shape)


ATTACKS = ("adaptive", "fixed_step", "spread")


@dataclass
class SweepResult:
    """Attacked mean return of every run of the sweep (``runs``: attack, threshold, mean,
    success rate); ``worst_*`` is the strongest run (lowest mean). thresholds/means: per
    run, in order (NaN threshold for ``spread``). returns: (m,) of the strongest run."""

    budget: float
    thresholds: list[float]
    means: list[float]
    worst_threshold: float
    worst_mean: float
    returns: npt.NDArray[np.float64]
    max_spent: float
    success_rate: float
    worst_attack: str = "adaptive"
    runs: list[dict[str, Any]] = field(default_factory=list)


def adaptive_attack_sweep(policy: Any, env_fn: Any, sigma: float, budget: float,
                          episodes: int, *, thresholds: Sequence[float] = (0.0, 0.5, 2.0),
                          seed: int = 0, horizon: int | None = None, n_samples: int = 128,
                          pgd_samples: int = 32, pgd_steps: int = 10,
                          backend: str = "auto", batch_size: int = 1000,
                          shrink_steps: int = 0,
                          attacks: Sequence[str] = ("adaptive",),
                          fixed_step: float = 0.01, fixed_samples: int | None = None,
                          spread_samples: int = 32) -> SweepResult:
    """Run the adaptive family on the same episodes (same smoothing noise and env seeds)
    and report the strongest: ``"adaptive"`` (:class:`AdaptiveSmoothedAttack`) and
    ``"fixed_step"`` (:class:`FixedStepAttack`, ``fixed_samples`` draws, default
    ``n_samples``) at every threshold, ``"spread"`` (:class:`SpreadBudgetAttack`) once."""
    unknown = [a for a in attacks if a not in ATTACKS]
    if unknown or not attacks:
        raise ValueError(f"attacks: expected a non-empty subset of {ATTACKS}, got {list(attacks)}")
    if "spread" in attacks:
        horizon = resolve_horizon(make_env_factory(env_fn)(), horizon)
    jobs: list[tuple[str, float, Any]] = []
    for name in attacks:
        if name == "spread":
            jobs.append((name, math.nan, SpreadBudgetAttack(
                policy, sigma, budget, int(horizon or 1), n_samples=spread_samples, seed=seed)))
            continue
        for tau in thresholds:
            atk: Any = (AdaptiveSmoothedAttack(policy, sigma, budget, tau, n_samples=n_samples,
                                               pgd_samples=pgd_samples, pgd_steps=pgd_steps,
                                               seed=seed, shrink_steps=shrink_steps)
                        if name == "adaptive" else
                        FixedStepAttack(policy, sigma, budget, tau, step=fixed_step, seed=seed,
                                        n_samples=fixed_samples or n_samples))
            jobs.append((name, float(tau), atk))
    runs, best = [], None
    for name, tau, atk in jobs:
        ro = smoothed_rollouts(policy, env_fn, sigma, episodes, seed=seed, horizon=horizon,
                               backend=backend, batch_size=batch_size, attack=atk)
        mean = float(ro.returns.mean())
        rate = atk.successes / atk.attempts if atk.attempts and name != "spread" else math.nan
        runs.append({"attack": name, "threshold": tau, "mean": mean, "success_rate": rate,
                     "max_spent": float(ro.spent.max())})
        if best is None or mean < best[1]:
            best = (runs[-1], mean, ro)
    assert best is not None
    succ = [r["success_rate"] for r in runs if not math.isnan(r["success_rate"])]
    return SweepResult(budget=float(budget), thresholds=[r["threshold"] for r in runs],
                       means=[r["mean"] for r in runs], worst_threshold=best[0]["threshold"],
                       worst_mean=best[1], returns=best[2].returns,
                       max_spent=float(best[2].spent.max()),
                       success_rate=float(np.mean(succ)) if succ else 0.0,
                       worst_attack=best[0]["attack"], runs=runs)


def soundness_margin(n: int, value_range: float, alpha: float) -> float:
    """Hoeffding one-sided margin of a mean of n values in a range of width value_range."""
    return value_range * math.sqrt(math.log(1.0 / alpha) / (2.0 * n))
