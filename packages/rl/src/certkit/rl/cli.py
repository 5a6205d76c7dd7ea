"""``certkit rl ...``: certify, attack, evaluate, train, plot.

Models: a stable-baselines3 zip (PPO, A2C, DQN, SAC, TD3; ``--algo`` overrides the
algorithm read from the zip), a TorchScript file, a certkit-rl checkpoint (``certkit rl
train``), or ``package.module:factory`` / ``file.py:factory`` resolved against the current
directory, with ``--state-dict`` (loaded with weights_only=True). Discrete or continuous
actions follow the env's action space.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from certkit.core.cli import STATE, UsageError, echo_json

app = typer.Typer(help="Policy smoothing reward certificates and attacks for gymnasium agents.",
                  no_args_is_help=True)

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="SB3 zip, TorchScript file, "
                                                              "certkit-rl checkpoint, or "
                                                              "module:factory")]
AlgoOpt = Annotated[str | None, typer.Option(help="SB3 algorithm of the zip: PPO | A2C | DQN | "
                                                  "SAC | TD3 (default: read from the zip)")]
ContinuousOpt = Annotated[bool, typer.Option(help="kept for compatibility: continuous actions "
                                                  "follow the env's Box action space")]
EnvOpt = Annotated[str, typer.Option("--env", "-e", help="gymnasium env id")]


def _budgets(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise UsageError(f"budgets: expected comma-separated numbers, got {text!r}") from exc


def _policy(model: str, state_dict: str | None, env: str, algo: str | None = None,
            continuous: bool = False) -> object:
    import gymnasium as gym

    from certkit.rl.loading import load_policy

    try:
        probe = gym.make(env)
    except gym.error.Error as exc:
        raise UsageError(f"env: {exc}") from exc
    if continuous and not isinstance(probe.action_space, gym.spaces.Box):
        raise UsageError(f"continuous: the env {env} has {probe.action_space} actions")
    return load_policy(model, probe, algo=algo, state_dict=state_dict)


@app.command()
def certify(model: ModelOpt, env: EnvOpt = "CartPole-v1",
            sigma: Annotated[float, typer.Option(help="smoothing noise σ")] = 0.2,
            budgets: Annotated[str, typer.Option(help="comma-separated budgets")] = "0,0.2,0.4,0.6,0.8,1.0",
            budget_kind: Annotated[str, typer.Option(help="total | per_step")] = "total",
            episodes: Annotated[int, typer.Option(help="clean smoothed episodes m")] = 10_000,
            alpha: float = 0.05,
            bound: Annotated[str, typer.Option(help="cp | dkw | bernstein")] = "cp",
            horizon: Annotated[int | None, typer.Option(help="episode length cap T")] = None,
            seed: int = 0,
            backend: Annotated[str | None, typer.Option(help="serial | process | ray (default "
                                                        "$CERTKIT_BACKEND or serial)")] = None,
            engine: Annotated[str, typer.Option(help="rollout engine: auto | batched | vector | "
                                                     "naive")] = "auto",
            workers: Annotated[int | None, typer.Option(help="process/ray pool size")] = None,
            state_dict: Annotated[str | None, typer.Option(help="state_dict for module:factory")] = None,
            algo: AlgoOpt = None,
            continuous: ContinuousOpt = False,
            out: Annotated[Path | None, typer.Option(help="write the certificate JSON here")] = None,
            log: Annotated[Path | None, typer.Option(help="resumable per-chunk log (.jsonl); it "
                                                          "records the run's settings and "
                                                          "refuses to resume another run")] = None,
            new: Annotated[bool, typer.Option("--new", help="move an existing --log aside "
                                                            "and start afresh")] = False,
            ) -> None:
    """Certify the expected reward (and median) of the smoothed policy vs the budget."""
    from certkit.rl.policy_smoothing import certify_reward

    cert = certify_reward(_policy(model, state_dict, env, algo, continuous), env, sigma,
                          _budgets(budgets),
                          episodes=episodes, alpha=alpha, bound=bound, horizon=horizon,
                          backend=backend, engine=engine, workers=workers, seed=seed,
                          budget_kind=budget_kind, log=log, new=new)
    if out is not None:
        cert.save(out)
    if STATE["json"]:
        echo_json(cert.to_dict())
        return
    typer.echo(f"{cert.env}: clean smoothed mean {cert.clean_mean:.2f} over {cert.episodes} "
               f"episodes, sigma={cert.sigma}, bound={cert.bound}, alpha={cert.alpha}")
    typer.echo(f"{'B (total l2)':>14}{'E[F] >=':>12}{'median >=':>12}")
    for b, e, q in zip(cert.budgets, cert.expected, cert.quantiles["0.5"], strict=True):
        typer.echo(f"{b:>14.4g}{e:>12.2f}{q:>12.2f}")


@app.command()
def attack(model: ModelOpt, env: EnvOpt = "CartPole-v1", sigma: float = 0.2,
           budgets: str = "0.2,0.6,1.0", episodes: int = 100, horizon: int | None = None,
           thresholds: Annotated[str, typer.Option(help="Q-gap thresholds to sweep")] = "0,0.5,2",
           method: Annotated[str, typer.Option(help="adaptive | fixed_step | spread | strongest "
                                                    "(all three, the lowest mean) | fgsm | pgd")
                             ] = "adaptive",
           samples: Annotated[int, typer.Option(help="noise draws for the smoothed Q")] = 128,
           pgd_samples: Annotated[int, typer.Option(help="noise draws per PGD step")] = 32,
           pgd_steps: Annotated[int, typer.Option(help="PGD steps per attempt")] = 10,
           seed: int = 0, state_dict: str | None = None, algo: AlgoOpt = None) -> None:
    """Attacks on the smoothed agent with a total ℓ2 budget (adaptive, the authors'
    fixed-step attack, the spread-budget attack, or the strongest of them; worst over
    thresholds), or per-step FGSM/PGD (then budgets are per-step ℓ2 ε and sigma is the
    agent's own noise)."""
    from certkit.rl.attacks import ATTACKS, PerStepAttack, adaptive_attack_sweep
    from certkit.rl.envs import make_env_factory, resolve_horizon
    from certkit.rl.rollout import smoothed_rollouts

    pol = _policy(model, state_dict, env, algo)
    rows = []
    for b in _budgets(budgets):
        if method in (*ATTACKS, "strongest"):
            res = adaptive_attack_sweep(pol, env, sigma, b, episodes, horizon=horizon,
                                        thresholds=_budgets(thresholds), seed=seed,
                                        n_samples=samples, pgd_samples=pgd_samples,
                                        pgd_steps=pgd_steps,
                                        attacks=ATTACKS if method == "strongest" else (method,))
            rows.append({"budget": b, "mean": res.worst_mean, "attack": res.worst_attack,
                         "threshold": res.worst_threshold, "max_spent": res.max_spent,
                         "success_rate": res.success_rate})
        elif method in ("fgsm", "pgd"):
            T = resolve_horizon(make_env_factory(env)(), horizon)
            atk = PerStepAttack(pol, b, T, steps=1 if method == "fgsm" else pgd_steps)
            ro = smoothed_rollouts(pol, env, sigma, episodes, seed=seed, horizon=T, attack=atk)
            rows.append({"budget": b, "mean": float(ro.returns.mean()), "max_spent": float(ro.spent.max())})
        else:
            raise UsageError(f"method: expected one of {', '.join((*ATTACKS, 'strongest'))}, "
                             f"fgsm or pgd, got {method!r}")
    if STATE["json"]:
        echo_json(rows)
        return
    for r in rows:
        typer.echo("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()))


@app.command()
def evaluate(model: ModelOpt, env: EnvOpt = "CartPole-v1", sigma: float = 0.2,
             episodes: int = 1000, horizon: int | None = None, seed: int = 0,
             state_dict: str | None = None, algo: AlgoOpt = None,
             continuous: ContinuousOpt = False) -> None:
    """Mean return of the smoothed policy (no attack)."""
    from certkit.rl.rollout import smoothed_rollouts

    ro = smoothed_rollouts(_policy(model, state_dict, env, algo, continuous), env, sigma, episodes,
                           seed=seed, horizon=horizon)
    out = {"mean": float(ro.returns.mean()), "std": float(ro.returns.std()),
           "episodes": episodes, "horizon": ro.horizon, "backend": ro.backend}
    if STATE["json"]:
        echo_json(out)
    else:
        typer.echo(f"mean return {out['mean']:.2f} ± {out['std']:.2f} over {episodes} episodes")


@app.command()
def train(out: Annotated[Path, typer.Option(help="checkpoint path")],
          env: EnvOpt = "CartPole-v1", sigma: float = 0.2, steps: int = 300_000,
          seed: int = 0,
          target: Annotated[float | None, typer.Option(
              help="stop once the smoothed eval return reaches this (default: 495 for "
                   "CartPole, -85 for Acrobot)")] = None) -> None:
    """Train the built-in PPO agent under Gaussian augmentation (CartPole, Acrobot)."""
    from certkit.rl.train import save_trained, train_ppo

    if target is None:
        target = -85.0 if env.startswith("Acrobot") else 495.0
    tp = train_ppo(env, sigma, steps, seed=seed, target_return=target)
    save_trained(tp, out)
    meta = {k: v for k, v in tp.meta.items() if k != "history"}
    if STATE["json"]:
        echo_json(meta)
    else:
        typer.echo(f"saved {out}: best smoothed eval {meta['best_eval']:.1f} after {meta['steps']} steps")


@app.command()
def plot(certificates: Annotated[list[Path], typer.Argument(help="certificate JSON files")],
         out: Annotated[Path, typer.Option(help="PNG path")] = Path("rl_certificate.png")) -> None:
    """Plot certified reward vs budget from certificate JSON files."""
    from certkit.core.report import use_agg

    use_agg()
    from certkit.rl.plot import plot_certificate
    from certkit.rl.policy_smoothing import RewardCertificate

    certs = []
    for p in certificates:
        try:
            certs.append(RewardCertificate.load(p))
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise UsageError(f"certificates: cannot read {p}: {exc}") from exc
    fig = plot_certificate(certs)
    fig.savefig(out, dpi=120, bbox_inches="tight")
    typer.echo(str(out))



