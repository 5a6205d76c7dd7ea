"""Report part of conformal prediction for ``certkit report``: split conformal (THR / APS /
RAPS) on clean data, and RSCP / RSCP+ / PTT / RCT coverage and set size under attack.
Assembled into the vision section by :mod:`certkit.vision.report`."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from certkit.core.report import Section, Table


def conformal_part(model: Any, sigma: float, train: Any, test: Any, cfg: dict[str, Any], *, seed: int,
                   cache: Path, data_name: str = "digits", eps: float = 0.125, alpha: float = 0.1) -> Section:
    """Conformal sets of ``model`` (a base classifier trained under N(0, σ²) noise) on
    ``test`` (a Split: x (N, C, H, W), y (N,)); RCT fine-tunes a copy on ``train`` (cached
    under ``cache``; no RCT row when ``train`` is None)."""
    from certkit.core.cache import load_state, save_state
    from certkit.vision.conformal.experiments import robust_coverage_experiment
    from certkit.vision.conformal.rct import train_rct
    from certkit.vision.conformal.robust import DegenerateSetsWarning
    from certkit.vision.conformal.scores import SplitConformal, softmax_probs

    probs = softmax_probs(model, test.x)
    perm = np.random.default_rng(seed).permutation(len(test))
    cal, te = perm[: len(perm) // 2], perm[len(perm) // 2:]
    rows = []
    for score in ("thr", "aps", "raps"):
        sc = SplitConformal(score=score, alpha=alpha, seed=seed).calibrate(probs=probs[cal], y=test.y[cal].numpy())
        r = sc.evaluate(probs=probs[te], y=test.y[te].numpy())
        rows.append([f"split conformal ({score.upper()}), clean", round(r["coverage"], 3), "-", round(r["size"], 3)])
    extra: dict[str, Any] = {}
    if train is not None:
        rct_epochs = cfg.get("rct_epochs", 3)
        rct_path = cache / f"{data_name}_rct_sigma{sigma:g}_eps{eps:g}_e{rct_epochs}_cw0.1_s{seed}.pt"
        if rct_path.exists():
            rct = copy.deepcopy(model)
            rct.load_state_dict(load_state(rct_path))
            extra["rct"] = rct.eval()
        else:
            extra["rct"] = train_rct(model, train.x, train.y, sigma, eps, epochs=rct_epochs, seed=seed)
            save_state(extra["rct"].state_dict(), rct_path)
    with warnings.catch_warnings(record=True) as caught:  # degenerate sets: said in the caption
        warnings.simplefilter("always", DegenerateSetsWarning)
        rob = robust_coverage_experiment(model, test.x, test.y, sigma=sigma, eps=eps, alpha=alpha,
                                         n_mc=cfg["n_mc"], n_splits=cfg["splits"], seed=seed,
                                         extra_models=extra, attack_mc=cfg.get("attack_mc", 16))
    notes = [str(w.message) for w in caught if issubclass(w.category, DegenerateSetsWarning)]
    for name, r in rob.items():
        rows.append([f"{name.upper()} under PGD (ε = {eps})", round(r["coverage"], 3),
                     round(r["coverage_min"], 3), round(r["size"], 3)])
    table = Table(f"Robust conformal prediction on {data_name} (α = {alpha:g})",
                  ["method", "coverage (mean over splits)", "min over splits", "avg set size"], rows,
                  f"σ = {sigma}, {cfg['n_mc']} Monte-Carlo samples, β = 0.001, {cfg['splits']} random "
                  "calibration/test splits, 20-step ℓ2 PGD on the smoothed score."
                  + "".join(f" Warning: {m}." for m in notes))
    summary = {"rscp_plus_coverage": rob["rscp+"]["coverage"], "rscp_plus_size": rob["rscp+"]["size"],
               "ptt_size": rob["ptt"]["size"]}
    if "rct" in rob:
        summary["rct_size"] = rob["rct"]["size"]
    return Section(domain="vision", title="conformal", tables=[table], summary=summary)
