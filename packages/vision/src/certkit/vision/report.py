"""The vision section of ``certkit report``: randomized-smoothing certified-accuracy curves
(one per σ), sequential vs fixed-n certification (forward passes and curve agreement),
and robust conformal coverage / set size under attack, all on the embedded digits data
with cached reference models (DigitsCNN trained under Gaussian noise). The parts live
beside their code: :mod:`certkit.vision.smoothing.report`, :mod:`certkit.vision.conformal.report`."""

from __future__ import annotations

import time
from typing import Any

from certkit.core.report import ReportContext, Section, use_agg


def _settings(full: bool) -> dict[str, Any]:
    if full:
        return {"sigmas": (0.12, 0.25, 0.5), "inputs": 540, "n": 100_000, "seq_inputs": 300,
                "seq_n": 100_000, "n_mc": 1024, "splits": 50, "epochs": 30, "attack_mc": 16, "rct_epochs": 10}
    return {"sigmas": (0.25, 0.5), "inputs": 100, "n": 1_000, "seq_inputs": 30, "seq_n": 10_000,
            "n_mc": 96, "splits": 50, "epochs": 20, "attack_mc": 8, "rct_epochs": 3}


def _user_section(ctx: ReportContext, cfg: dict[str, Any], t_start: float) -> Section:
    """The vision section on the user's model and data (``certkit report --model M --data D``):
    certified-accuracy curve and ACR at the given σ, sequential vs fixed n, split and robust
    conformal sets (no RCT: it needs the user's training data)."""
    from pathlib import Path

    from certkit.vision.conformal.report import conformal_part
    from certkit.vision.data.inputs import check_user_model, load_user_data, load_user_model
    from certkit.vision.smoothing.report import curves_part, sequential_part

    inp = ctx.inputs
    data = str(inp.get("data") or "digits")
    net = load_user_model(str(inp["model"]), inp.get("weights"))
    split = load_user_data(data, inp.get("labels"), inp.get("data_dir"), inp.get("image_size"),
                           str(inp.get("layout") or "auto"))
    k, sigma = int(inp.get("num_classes") or 10), float(inp.get("sigma") or 0.25)
    check_user_model(net, split, k, data)
    name = Path(data).name
    x, y = split.x, split.y
    nc = cfg.get("conformal_inputs") or len(split)
    conf = type(split)(x[:nc], y[:nc])
    parts = [
        curves_part({sigma: net}, x[: cfg["inputs"]], y[: cfg["inputs"]], cfg, seed=ctx.seed, num_classes=k,
                    data_name=name),
        sequential_part(net, sigma, x[: cfg["seq_inputs"]], y[: cfg["seq_inputs"]], cfg, seed=ctx.seed,
                        num_classes=k),
        conformal_part(net, sigma, None, conf, cfg, seed=ctx.seed, cache=ctx.cache_dir / "vision", data_name=name),
    ]
    summary = {k_: v for p in parts for k_, v in p.summary.items()}
    n_cert = len(x[: cfg["inputs"]])
    acc = summary[f"certified_accuracy_r0.5_sigma{sigma:g}"]
    cover = summary["rscp_plus_coverage"]
    summary["headline"] = {
        "label": f"inputs of {name} certified correct within ℓ2 radius 0.5 (randomized smoothing of your "
                 f"model, σ = {sigma:g})",
        "value": acc, "format": "percent", "n": n_cert, "of": f"inputs of {name}",
        "successes": round(acc * n_cert),
        "checks": [{"name": f"robust conformal sets (RSCP+) keep ≥ 90% coverage under PGD attack "
                            f"({cover:.1%}, mean over splits)", "passed": bool(cover >= 0.9 - 0.01)}]}
    args = " ".join(f"--{key.replace('_', '-')} {val}" for key, val in inp.items()
                    if val is not None and not (key == "layout" and val == "auto"))
    return Section(
        domain="vision", title=f"Randomized smoothing, sequential certification, robust conformal prediction "
                               f"({name})",
        summary=summary, tables=[t for p in parts for t in p.tables], figures=[f for p in parts for f in p.figures],
        text=(f"Your model {inp['model']} on {data} ({len(split)} inputs of shape {tuple(x.shape[1:])}, {k} "
              f"classes), smoothed at σ = {sigma:g} (it should be trained under that noise). Certificates: Cohen "
              "et al. (2019); sequential mode: Clopper-Pearson bounds at fixed looks; robust conformal: RSCP, "
              "RSCP+ and PTT (Yan et al. 2024)."),
        reproduce=f"certkit report --only vision {args}",
        full=(f"all {len(split)} inputs at n = 100,000; sequential vs Cohen at n = 100,000 on 300 inputs; "
              "conformal with 1,024 Monte-Carlo samples over 50 splits."),
        seconds=time.perf_counter() - t_start,
    )


def sections(ctx: ReportContext) -> Section:
    use_agg()
    if ctx.inputs.get("model"):
        return _user_section(ctx, {**_settings(ctx.full), **({} if ctx.full else {"conformal_inputs": 500})},
                             time.perf_counter())
    from certkit.vision.conformal.report import conformal_part
    from certkit.vision.data.digits import load_digits
    from certkit.vision.data.reference import digits_cnn
    from certkit.vision.smoothing.report import curves_part, sequential_part

    t_start = time.perf_counter()
    cfg = _settings(ctx.full)
    cache = ctx.cache_dir / "vision"
    train, test = load_digits()
    models = {sigma: digits_cnn(sigma, epochs=cfg["epochs"], seed=ctx.seed, cache_dir=cache)
              for sigma in cfg["sigmas"]}
    sigma = 0.25
    parts = [
        curves_part(models, test.x[: cfg["inputs"]], test.y[: cfg["inputs"]], cfg, seed=ctx.seed,
                    clean=(test.x, test.y)),
        sequential_part(models[sigma], sigma, test.x[: cfg["seq_inputs"]], test.y[: cfg["seq_inputs"]], cfg,
                        seed=ctx.seed),
        conformal_part(models[sigma], sigma, train, test, cfg, seed=ctx.seed, cache=cache),
    ]
    summary = {k: v for p in parts for k, v in p.summary.items()}
    n_cert, acc = len(test.x[: cfg["inputs"]]), summary["certified_accuracy_r0.5_sigma0.25"]
    cover = summary["rscp_plus_coverage"]
    summary["headline"] = {  # the summary card of `certkit report` (certkit.report.headline)
        "label": "test digits certified correct within ℓ2 radius 0.5 (randomized smoothing, σ = 0.25)",
        "value": acc, "format": "percent", "n": n_cert, "of": "test digits", "successes": round(acc * n_cert),
        "checks": [{"name": f"robust conformal sets (RSCP+) keep ≥ 90% coverage under PGD attack "
                            f"({cover:.1%}, mean over splits)", "passed": bool(cover >= 0.9 - 0.01)}]}
    return Section(
        domain="vision", title="Randomized smoothing, sequential certification, robust conformal prediction",
        summary=summary,
        tables=[t for p in parts for t in p.tables], figures=[f for p in parts for f in p.figures],
        text=("Certificates: Cohen et al. (2019) CERTIFY with Clopper-Pearson bounds; sequential mode uses "
              "exact Clopper-Pearson bounds at a fixed schedule of looks with α spent across the looks (union "
              "bound), so stopping at any look keeps the 1-α guarantee. Robust conformal: RSCP (Gendler et al. "
              "2022), RSCP+, PTT and RCT (Yan et al. 2024; conformal training loss of Stutz et al. 2022 with "
              "size and classification terms; RCT rows are RSCP+ sets of the RCT-fine-tuned model)."),
        reproduce="certkit report --only vision",
        full=("σ ∈ {0.12, 0.25, 0.5}, all 540 test inputs at n = 100,000; sequential vs Cohen at n = 100,000 "
              "on 300 inputs; conformal with 1,024 Monte-Carlo samples over 50 splits."),
        seconds=time.perf_counter() - t_start,
    )
