"""Policy smoothing reward certificates (Kumar, Levine & Feizi, "Policy Smoothing for
Provably Robust Reinforcement Learning", ICLR 2022, arXiv 2106.11420).

Setting. The smoothed agent acts on ``o_t + ε_t + δ_t`` at every step t of an episode of
at most T steps, where ``δ_t ~ N(0, σ²I)`` is fresh i.i.d. noise and ``ε_t`` is chosen by an
*adaptive* adversary: any (possibly randomised) function of everything seen so far (past
observations, noise-free or noised, past actions, the current clean observation) but not
of the noise ``δ_t`` it is about to be added to. The environment may be stochastic. The
adversary's budget is total over the episode: ``sqrt(Σ_t ‖ε_t‖₂²) ≤ B``; a per-step budget
``‖ε_t‖₂ ≤ ε`` is the special case ``B = ε·sqrt(T)``.

Theorem (adaptive Neyman–Pearson lemma; Kumar et al. 2022, Thm. 1 — statement recalled
from the paper, not re-derived). For every function ``f`` of the episode with values in
[0, 1],

    E[f(attacked episode)] ≥ Φ(Φ⁻¹(E[f(clean smoothed episode)]) − B/σ).

So for the total reward F and any threshold ν (threshold form):

    P[F(π_ε) ≥ ν] ≥ Φ(Φ⁻¹(P[F(π) ≥ ν]) − B/σ).

Expected-reward bound (derived here from the threshold form). If F ≥ v₀ always (an
a-priori lower bound on the return) and v₀ < v₁ < … < v_H, then since
E[F] = v₀ + ∫_{v₀}^∞ P[F ≥ v] dv and P[F ≥ v] ≥ P[F ≥ v_i] on (v_{i−1}, v_i],

    E[F(π_ε)] ≥ v₀ + Σ_i (v_i − v_{i−1}) · Φ(Φ⁻¹(p̲(v_i)) − B/σ),

each interval valued at its lower end; with simultaneous lower bounds p̲(v_i) ≤ P[F(π) ≥ v_i]
(:mod:`certkit.rl.bounds`) it holds with probability ≥ 1 − α over the m clean episodes.
Negative returns need nothing special: v₀ may be negative (Acrobot: v₀ = −T).

Percentile certificate (CROP-style, Wu et al. 2022, arXiv 2106.09292, in its threshold
form; derived here). With Q_q(F) = inf{v : P[F ≤ v] ≥ q}, P[F ≥ v] > 1 − q implies
Q_q(F) ≥ v. Hence the largest grid value v_i with Φ(Φ⁻¹(p̲(v_i)) − B/σ) > 1 − q is a
certified lower bound on the q-th quantile of the attacked return (v₀ when none is).

Conventions (they reproduce the paper's sanity ceiling for a perfect CartPole-v0 policy,
T = 200, m = 10⁴, α = 0.05, σ = 0.2: 196.8 / 174.8 / 111.6 / 39.3 / 6.4 at B = 0.2 … 1.0):
integer returns use the a-priori grid of every integer in (v₀, v_max] — H = 200 thresholds
for CartPole-v0, so Clopper–Pearson runs at α/H = 2.5·10⁻⁴ per threshold.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from certkit.core import stats
from certkit.core.progress import Counter
from certkit.core.results import ResultLog
from certkit.core.validation import as_float_array, check_alpha, check_int, check_seed, check_sigma
from certkit.rl.bounds import BOUNDS, survival_lower_bounds
from certkit.rl.envs import check_box_observations, make_env_factory, resolve_horizon, return_range
from certkit.rl.policies import as_policy, as_policy_for_env
from certkit.rl.rollout import BACKENDS as ENGINES
from certkit.rl.rollout import smoothed_rollouts

THEOREM = ("adaptive Neyman-Pearson (Kumar, Levine & Feizi, ICLR 2022, arXiv 2106.11420, Thm. 1): "
           "P[F(pi_eps) >= nu] >= Phi(Phi^-1(P[F(pi) >= nu]) - B/sigma), total l2 budget B over "
           "the episode, adaptive adversary")


def attacked_probability_bound(p_lower: Any, budget: float, sigma: float) -> npt.NDArray[np.float64]:
    """Φ(Φ⁻¹(p̲) − B/σ), elementwise; p̲ = 0 gives 0 and p̲ = 1 gives 1."""
    shape = np.shape(p_lower)  # as_float_array turns 0-d input into shape (1,)
    p = np.clip(as_float_array(p_lower, "p_lower"), 0.0, 1.0).reshape(shape)
    sigma = check_sigma(sigma)
    b = _check_budget(budget)
    inner = np.clip(p, 1e-300, 1.0 - 1e-16)
    out = np.asarray(stats.norm_cdf(stats.norm_ppf(inner) - b / sigma), np.float64).reshape(p.shape)
    out = np.where(p <= 0.0, 0.0, out)
    return np.where(p >= 1.0, 1.0, out)


def _check_budget(b: Any) -> float:
    from certkit.core.validation import check_finite_scalar

    v = check_finite_scalar(b, "budgets")
    if v < 0:
        raise ValueError(f"budgets: expected values >= 0, got {b!r}")
    return v


def expected_reward_bound(thresholds: Any, p_lower: Any, budgets: Any, sigma: float,
                          lower: float) -> npt.NDArray[np.float64]:
    """Certified lower bound on E[F(π_ε)] for each budget.

    thresholds (H,) ascending, all > lower; p_lower (H,); budgets (K,) → (K,).
    """
    v = as_float_array(thresholds, "thresholds")
    p = as_float_array(p_lower, "p_lower")
    if v.shape != p.shape or v.ndim != 1:
        raise ValueError(f"p_lower: expected shape {v.shape}, got {p.shape}")
    if v.size and v[0] <= lower:
        raise ValueError("thresholds: expected all thresholds > lower")
    widths = np.diff(np.concatenate([[lower], v]))
    bs = np.atleast_1d(as_float_array(budgets, "budgets"))
    return np.array([lower + float(np.sum(widths * attacked_probability_bound(p, b, sigma)))
                     for b in bs])


def quantile_bound(thresholds: Any, p_lower: Any, budgets: Any, sigma: float, q: float,
                   lower: float) -> npt.NDArray[np.float64]:
    """Certified lower bound on the q-th quantile of F(π_ε) for each budget, (K,)."""
    v = as_float_array(thresholds, "thresholds")
    p = as_float_array(p_lower, "p_lower")
    if not 0.0 < q < 1.0:
        raise ValueError(f"quantiles: expected values in (0, 1), got {q!r}")
    bs = np.atleast_1d(as_float_array(budgets, "budgets"))
    out = np.empty(bs.size)
    for j, b in enumerate(bs):
        ok = np.flatnonzero(attacked_probability_bound(p, b, sigma) > 1.0 - q)
        out[j] = v[ok[-1]] if ok.size else lower
    return out


def threshold_grid(lower: float, upper: float, integer: bool, bound: str,
                   returns: npt.NDArray[np.float64] | None = None,
                   n_thresholds: int = 100) -> npt.NDArray[np.float64]:
    """The thresholds ν_1 < … < ν_H in (lower, upper].

    cp / bernstein need a data-independent grid (Bonferroni): every integer in
    (lower, upper] for integer returns, else ``n_thresholds`` equispaced points.
    dkw is uniform over ν, so it uses the distinct observed returns in (lower, upper].
    """
    if not upper > lower:
        raise ValueError(f"return_bounds: expected lower < upper, got ({lower}, {upper})")
    if bound == "dkw":
        if returns is None:
            raise ValueError("returns: needed for the dkw grid")
        vals = np.unique(returns)
        return vals[(vals > lower) & (vals <= upper)]
    if integer:
        lo, hi = math.floor(lower), math.floor(upper)
        return np.arange(lo + 1, hi + 1, dtype=np.float64)
    return lower + (upper - lower) * np.arange(1, n_thresholds + 1) / n_thresholds


def total_budgets(budgets: Any, budget_kind: str, horizon: int | None) -> npt.NDArray[np.float64]:
    """Budgets as total ℓ2 over the episode: per-step ε becomes B = ε·sqrt(T)."""
    bs = np.atleast_1d(as_float_array(budgets, "budgets"))
    if bs.ndim != 1 or bs.size < 1:
        raise ValueError("budgets: expected a non-empty 1-D list of budgets")
    if np.any(bs < 0):
        raise ValueError(f"budgets: expected values >= 0, got {bs.tolist()}")
    if budget_kind == "total":
        return bs
    if budget_kind == "per_step":
        if horizon is None:
            raise ValueError("horizon: a per-step budget needs the horizon T (B = eps*sqrt(T))")
        return bs * math.sqrt(horizon)
    raise ValueError(f"budget_kind: expected 'total' or 'per_step', got {budget_kind!r}")


@dataclass
class RewardCertificate:
    """A policy-smoothing reward certificate: certified reward vs total ℓ2 budget B.

    budgets: (K,) total ℓ2 budgets B; per_step_budgets: (K,) ε = B/sqrt(T) (the input when
    budget_kind == "per_step"); expected: (K,) certified lower bounds on E[F(π_ε)];
    quantiles: {q: (K,)} certified lower bounds on the q-th quantile; thresholds, p_lower:
    (H,) the grid and its simultaneous lower bounds on P[F ≥ ν] (the "threshold form").
    backend: the distributed backend (serial | process | ray); engine: the rollout engine.
    """

    sigma: float
    alpha: float
    bound: str
    episodes: int
    horizon: int | None
    budget_kind: str
    budgets: list[float]
    per_step_budgets: list[float] | None
    expected: list[float]
    quantiles: dict[str, list[float]]
    return_bounds: tuple[float, float]
    thresholds: list[float]
    p_lower: list[float]
    alpha_per_threshold: float
    clean_mean: float
    clean_quantiles: dict[str, float]
    seed: int | None = None
    env: str = ""
    policy: str = ""
    backend: str = ""
    engine: str = ""
    theorem: str = THEOREM
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def threshold_bound(self, nu: float, budget: float) -> float:
        """Certified lower bound on P[F(π_ε) ≥ ν] at total budget B (0 above the grid)."""
        v = np.asarray(self.thresholds)
        i = int(np.searchsorted(v, nu, side="left"))
        if nu <= self.return_bounds[0]:
            return 1.0
        if i >= v.size:
            return 0.0
        return float(attacked_probability_bound(self.p_lower[i], budget, self.sigma))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["return_bounds"] = list(self.return_bounds)
        return d

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> RewardCertificate:
        d = json.loads(Path(path).read_text())
        d["return_bounds"] = tuple(d["return_bounds"])
        return cls(**d)

    def table(self) -> list[list[Any]]:
        rows = []
        for j, b in enumerate(self.budgets):
            row = [round(b, 4), round(self.expected[j], 3)]
            row += [round(self.quantiles[q][j], 3) for q in sorted(self.quantiles)]
            rows.append(row)
        return rows


def certify_returns(returns: Any, sigma: float, budgets: Any, *, alpha: float = 0.05,
                    bound: str = "cp", return_bounds: tuple[float, float] | None = None,
                    integer: bool | None = None, horizon: int | None = None,
                    budget_kind: str = "total", quantiles: Sequence[float] = (0.5,),
                    n_thresholds: int = 100, **meta: Any) -> RewardCertificate:
    """The certificate from m clean smoothed returns (m,) — no rollouts.

    return_bounds: a-priori (lowest, highest) possible return; required (the bound on E[F]
    needs F ≥ v₀ under *any* attack, which no sample can show).
    integer: the returns are integers (default: all observed returns are whole numbers).
    """
    r = as_float_array(returns, "returns")
    if r.ndim != 1 or r.size < 1:
        raise ValueError("returns: expected a non-empty 1-D array of episode returns")
    sigma = check_sigma(sigma)
    alpha = check_alpha(alpha)
    if bound not in BOUNDS:
        raise ValueError(f"bound: expected one of {BOUNDS}, got {bound!r}")
    if return_bounds is None:
        raise ValueError("return_bounds: pass the a-priori (lowest, highest) return of an "
                         "episode; the expected-reward bound needs F >= lowest under any attack")
    lo, hi = float(return_bounds[0]), float(return_bounds[1])
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"return_bounds: expected finite lowest < highest, got {return_bounds!r}")
    if r.min() < lo - 1e-9 or r.max() > hi + 1e-9:
        raise ValueError(f"return_bounds: observed returns in [{r.min()}, {r.max()}] fall outside "
                         f"the declared range [{lo}, {hi}]")
    if integer is None:
        integer = bool(np.all(r == np.round(r)))
    B = total_budgets(budgets, budget_kind, horizon)
    qs = [float(q) for q in quantiles]
    for q in qs:
        if not 0.0 < q < 1.0:
            raise ValueError(f"quantiles: expected values in (0, 1), got {q!r}")
    grid = threshold_grid(lo, hi, integer, bound, r, n_thresholds)
    if grid.size == 0:  # every return equals the lower bound: nothing to certify
        p = np.zeros(0)
        expected = np.full(B.size, lo)
        qb = {f"{q:g}": [lo] * B.size for q in qs}
        h = 1
    else:
        p = survival_lower_bounds(r, grid, alpha, bound)
        expected = expected_reward_bound(grid, p, B, sigma, lo)
        qb = {f"{q:g}": quantile_bound(grid, p, B, sigma, q, lo).tolist() for q in qs}
        h = grid.size
    per_step = (B / math.sqrt(horizon)).tolist() if horizon else None
    return RewardCertificate(
        sigma=sigma, alpha=alpha, bound=bound, episodes=int(r.size), horizon=horizon,
        budget_kind=budget_kind, budgets=B.tolist(), per_step_budgets=per_step,
        expected=[float(x) for x in expected], quantiles=qb, return_bounds=(lo, hi),
        thresholds=grid.tolist(), p_lower=p.tolist(),
        alpha_per_threshold=alpha / h if bound in ("cp", "bernstein") else alpha,
        clean_mean=float(r.mean()),
        clean_quantiles={f"{q:g}": float(np.quantile(r, q, method="inverted_cdf")) for q in qs},
        **meta)


def env_settings(env_fn: Any, probe: Any) -> dict[str, Any]:
    """What identifies an env for a results log: its name, the registered spec (id, kwargs,
    time limit) and the wrapper chain of an instance."""
    spec = getattr(probe, "spec", None)
    names, e = [], probe
    while hasattr(e, "env"):
        names.append(type(e).__name__)
        e = e.env
    return {"name": _env_name(env_fn), "class": type(getattr(probe, "unwrapped", probe)).__name__,
            "spec": None if spec is None else {
                "id": spec.id, "max_episode_steps": spec.max_episode_steps,
                "kwargs": {k: repr(v) for k, v in sorted((spec.kwargs or {}).items())}},
            "wrappers": names}


def certify_settings(policy: Any, env_fn: Any, probe: Any, sigma: float, seed: int,
                     horizon: int, chunk_size: int) -> dict[str, Any]:
    """The settings :func:`certify_reward` records in its results log: everything that
    changes a logged chunk's returns (policy and env fingerprints, σ, seed, horizon,
    chunk size). Budgets, α and the bound are not among them: they only change the
    certificate computed from the returns, so one log serves any of them; more episodes
    extend a log."""
    from certkit.core.results import run_settings
    from certkit.rl.policies import policy_fingerprint

    return run_settings(run="certkit.rl.certify_reward", policy=policy_fingerprint(policy),
                        env=env_settings(env_fn, probe), sigma=float(sigma), seed=int(seed),
                        horizon=int(horizon), chunk_size=int(chunk_size))


def _env_name(env_fn: Any) -> str:
    if isinstance(env_fn, str):
        return env_fn
    spec = getattr(env_fn, "spec", None)
    if spec is not None:
        return str(spec.id)
    return getattr(env_fn, "__name__", type(env_fn).__name__)


class EpisodeChunkTask:
    """A work unit for :func:`certkit.core.distributed.run`: chunk ``c`` plays the smoothed
    episodes with global ids ``[c·chunk_size, min((c+1)·chunk_size, m))``.

    Each episode is keyed by (seed, global episode id) (env reset seed and Philox noise
    stream), so the returns do not depend on the chunking, the backend or the worker that
    plays them. Built once per worker (the policy stays resident).
    """

    def __init__(self, policy: Any, env_fn: Any, sigma: float, seed: int, horizon: int,
                 engine: str, episodes: int, chunk_size: int) -> None:
        self.policy = as_policy(policy)
        self.env_fn, self.sigma, self.seed, self.horizon = env_fn, sigma, seed, horizon
        self.engine, self.episodes, self.chunk_size = engine, episodes, chunk_size

    def __call__(self, idx: int) -> dict[str, Any]:
        lo = idx * self.chunk_size
        ids = np.arange(lo, min(lo + self.chunk_size, self.episodes), dtype=np.int64)
        ro = smoothed_rollouts(self.policy, self.env_fn, self.sigma, ids, seed=self.seed,
                               horizon=self.horizon, backend=self.engine, batch_size=ids.size)
        return {"idx": int(idx), "returns": ro.returns.tolist(), "lengths": ro.lengths.tolist(),
                "engine": ro.backend, "seed": self.seed, "sigma": self.sigma,
                "horizon": self.horizon, "chunk_size": self.chunk_size}


def _chunk_task(*args: Any) -> EpisodeChunkTask:
    return EpisodeChunkTask(*args)


def certify_reward(policy: Any, env_fn: Any, sigma: float, budgets: Any, episodes: int = 10_000,
                   alpha: float = 0.05, bound: str = "cp", horizon: int | None = None,
                   backend: str | None = None, *, engine: str = "auto", seed: int = 0,
                   budget_kind: str = "total", return_bounds: tuple[float, float] | None = None,
                   quantiles: Sequence[float] = (0.5,), chunk_size: int = 2_000,
                   workers: int | None = None, log: str | Path | None = None,
                   n_thresholds: int = 100, new: bool = False) -> RewardCertificate:
    """Certify the reward of the smoothed policy against an adaptive ℓ2 adversary.

    policy: a torch module, SB3 model or callable obs (N, D) → actions (N,) (picklable —
    a module-level function, not a lambda — for the process and ray backends).
    env_fn: env id, zero-argument factory or Env (Box observations).
    budgets: total ℓ2 budgets B (budget_kind="total") or per-step ε ("per_step", B = ε√T).
    episodes: m clean smoothed episodes (ids 0..m−1, each keyed by (seed, id)).
    horizon: T; defaults to the env's time limit (an env without one needs it).
    backend: "serial" | "process" | "ray" (:mod:`certkit.core.distributed`; default
    ``$CERTKIT_BACKEND`` or serial). Work units are chunks of ``chunk_size`` episodes keyed
    by their global episode ids, so every backend, worker count and chunk size gives
    bit-identical returns and certificates.
    engine: rollout engine inside a chunk, see :func:`certkit.rl.rollout.smoothed_rollouts`.
    log: a ResultLog path: each finished chunk's returns are appended and a restarted run
    only plays the missing chunks (bit-identical results). The file records
    :func:`certify_settings` on its first line: resuming with another policy, env, σ, seed,
    horizon or chunk size raises ``SettingsMismatchError`` (a ValueError naming them);
    ``new=True`` moves an old file aside; a second process writing the same file gets
    ``LogLockedError``.
    Returns a :class:`RewardCertificate` (curve of certified reward vs B).
    """
    from certkit.core import distributed

    t0 = time.perf_counter()
    sigma = check_sigma(sigma)
    alpha = check_alpha(alpha)
    seed = check_seed(seed)
    m = check_int(episodes, "episodes", minimum=1)
    chunk_size = check_int(chunk_size, "chunk_size", minimum=1)
    if bound not in BOUNDS:
        raise ValueError(f"bound: expected one of {BOUNDS}, got {bound!r}")
    if backend in ENGINES:
        raise ValueError(f"backend: expected one of {distributed.BACKENDS}, got {backend!r} "
                         f"(a rollout engine: pass engine={backend!r})")
    if engine not in ENGINES:
        raise ValueError(f"engine: expected one of {ENGINES}, got {engine!r}")
    backend_name = distributed.resolve_backend(backend)
    probe = make_env_factory(env_fn)()
    check_box_observations(probe)
    T = resolve_horizon(probe, horizon)
    total_budgets(budgets, budget_kind, T)  # validate before the expensive part
    known = return_range(probe, T)
    integer = None
    if return_bounds is None:
        if known is None:
            raise ValueError("return_bounds: unknown reward range for this env; pass "
                             "return_bounds=(lowest, highest) possible episode return")
        return_bounds = (known[0], known[1])
        integer = known[2]
    pol = as_policy_for_env(policy, probe)
    factory = distributed.TaskFactory(_chunk_task, (pol, env_fn, sigma, seed, T, engine, m,
                                                    chunk_size))
    chunks = range((m + chunk_size - 1) // chunk_size)
    with Counter(m, "smoothed episodes", unit="episode") as bar:
        def tick(row: dict[str, Any]) -> None:
            bar.update(len(row["returns"]))

        if log is None:
            rows = distributed.run(factory, chunks, backend=backend_name, workers=workers,
                                   on_result=tick)
        else:
            settings = certify_settings(pol, env_fn, probe, sigma, seed, T, chunk_size)
            with ResultLog(log, settings=settings, new=new) as rl:
                distributed.run(factory, chunks, backend=backend_name, workers=workers, log=rl,
                                on_result=tick)
                rows = [r for r in rl.rows() if int(r["idx"]) in chunks]
    rows = sorted(rows, key=lambda r: int(r["idx"]))
    if [int(r["idx"]) for r in rows] != list(chunks):
        raise RuntimeError("certify_reward: missing episode chunks in the results")
    returns = np.concatenate([np.asarray(r["returns"], dtype=np.float64) for r in rows])
    if returns.size != m:
        raise RuntimeError(f"certify_reward: got {returns.size} returns for {m} episodes")
    describe = getattr(pol, "describe", None)
    cert = certify_returns(returns, sigma, budgets, alpha=alpha, bound=bound,
                           return_bounds=return_bounds, integer=integer, horizon=T,
                           budget_kind=budget_kind, quantiles=quantiles,
                           n_thresholds=n_thresholds, seed=seed, env=_env_name(env_fn),
                           policy=describe() if describe else type(pol).__name__,
                           backend=backend_name, engine=str(rows[0]["engine"]))
    cert.extra["chunk_size"] = chunk_size
    cert.seconds = time.perf_counter() - t0
    return cert
