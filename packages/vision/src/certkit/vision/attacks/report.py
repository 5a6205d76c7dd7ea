"""Report section ``attacks``: robust accuracy of a standard, a PGD-AT and a TRADES digits
CNN under FGSM / PGD / APGD-CE+DLR (AutoAttack-style) / CW-ℓ2, defensive distillation's
fall to CW, corruption CE/mCE and one-pixel translation robustness with crop selection.

Quick mode trains small models once (cached under ``ctx.cache_dir/attacks``) and attacks
the first 200 test digits; ``--full`` uses the whole test split, more epochs and stronger
attack settings (more steps and restarts).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from certkit.core.report import ReportContext, Section, Table, figure_from_matplotlib, use_agg

EPS_LINF = 0.2      # ℓ∞ budget on [0, 1] pixels of 8×8 digits
EPS_L2 = 1.0        # ℓ2 budget for the CW column (minimum-norm attack, thresholded)


@dataclass(frozen=True)
class Budget:
    epochs: int
    at_steps: int
    n_test: int
    pgd_steps: int
    apgd_steps: int
    restarts: int
    cw_steps: int
    cw_binary: int
    n_cw: int


QUICK = Budget(epochs=10, at_steps=5, n_test=200, pgd_steps=20, apgd_steps=25, restarts=1,
               cw_steps=40, cw_binary=3, n_cw=60)
FULL = Budget(epochs=30, at_steps=10, n_test=10_000, pgd_steps=100, apgd_steps=100,
              restarts=3, cw_steps=200, cw_binary=8, n_cw=10_000)


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Tiny models: one intra-op thread is fastest and does not fight other processes."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _cached(cache: Path, name: str, config: dict[str, Any],
            build: Callable[[], nn.Module], make: Callable[[], nn.Module]) -> nn.Module:
    """Train with ``build`` or load the cached state_dict (keyed by name and config)."""
    from certkit.core.cache import load_state, save_state

    key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
    path = cache / f"{name}-{key}.pt"
    if path.exists():
        try:
            model = make()
            model.load_state_dict(load_state(path))
            return model.eval()
        except Exception:  # a truncated or stale file: retrain
            path.unlink(missing_ok=True)
    torch.manual_seed(config.get("seed", 0))
    model = build()
    save_state(model.state_dict(), path)
    return model.eval()


def reference_models(cache: Path, full: bool = False, seed: int = 0,
                     which: tuple[str, ...] = ("standard", "pgd_at", "trades")
                     ) -> dict[str, nn.Module]:
    """The digits CNNs of the report (trained once, cached): 'standard', 'pgd_at', 'trades',
    'distilled' (T = 50), 'shift_aug' (trained with ±2-pixel realistic shifts)."""
    from certkit.vision.corruptions.translation import shift_augment
    from certkit.vision.data.digits import load_digits
    from certkit.vision.data.models import DigitsCNN, train_classifier
    from certkit.vision.training import adversarial as AT

    b = FULL if full else QUICK
    tr, _ = load_digits()
    base = {"epochs": b.epochs, "seed": seed, "v": 1}
    builders: dict[str, tuple[dict[str, Any], Callable[[], nn.Module]]] = {
        "standard": (base, lambda: train_classifier(DigitsCNN(), tr.x, tr.y, epochs=b.epochs,
                                                    seed=seed)),
        "pgd_at": ({**base, "eps": EPS_LINF, "steps": b.at_steps},
                   lambda: AT.pgd_at(DigitsCNN(), tr.x, tr.y, eps=EPS_LINF, steps=b.at_steps,
                                     epochs=b.epochs, seed=seed)),
        "trades": ({**base, "eps": EPS_LINF, "steps": b.at_steps, "beta": 6.0},
                   lambda: AT.trades(DigitsCNN(), tr.x, tr.y, eps=EPS_LINF, steps=b.at_steps,
                                     epochs=b.epochs, seed=seed)),
        "distilled": ({**base, "T": 50.0},
                      lambda: AT.defensive_distillation(DigitsCNN(), DigitsCNN(), tr.x, tr.y,
                                                        temperature=50.0, epochs=b.epochs,
                                                        seed=seed)),
        "shift_aug": ({**base, "radius": 2, "copies": 2},
                      lambda: train_classifier(DigitsCNN(), *shift_augment(tr.x, tr.y, 2, 2, seed),
                                               epochs=b.epochs, seed=seed)),
    }
    out = {}
    for name in which:
        if name not in builders:
            raise ValueError(f"which: unknown reference model {name!r}; expected one of "
                             f"{sorted(builders)}")
        cfg, build = builders[name]
        out[name] = _cached(cache, name, {**cfg, "name": name}, build, DigitsCNN)
    return out


def attack_table(models: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor,
                 b: Budget, seed: int = 0) -> list[list[Any]]:
    """Rows [model, clean, FGSM, PGD, APGD-CE+DLR, CW ℓ2 ≤ EPS_L2, median CW ℓ2]."""
    from certkit.vision import attacks as A

    rows = []
    for name, m in models.items():
        clean = A.robust_accuracy(m, x, y)
        fg = A.robust_accuracy(m, A.fgsm(m, x, y, EPS_LINF), y)
        pg = A.robust_accuracy(m, A.pgd(m, x, y, EPS_LINF, steps=b.pgd_steps,
                                        restarts=b.restarts, seed=seed), y)
        ap = A.robust_accuracy(m, A.apgd_ensemble(m, x, y, EPS_LINF, steps=b.apgd_steps,
                                                  restarts=b.restarts, seed=seed), y)
        xc, yc = x[:b.n_cw], y[:b.n_cw]
        adv = A.cw_l2(m, xc, yc, steps=b.cw_steps, binary_steps=b.cw_binary, c_init=1.0)
        fooled = (A.predict(m, adv) != yc) & (A.predict(m, xc) == yc)
        d = A.distance(adv, xc, "l2")
        broken = (A.predict(m, xc) != yc) | (fooled & (d <= EPS_L2))
        cw_acc = 1.0 - float(broken.float().mean())
        med = float(d[fooled].median()) if bool(fooled.any()) else float("nan")
        rows.append([name, round(clean, 3), round(fg, 3), round(pg, 3), round(ap, 3),
                     round(cw_acc, 3), round(med, 3)])
    return rows


def _user_section(ctx: ReportContext) -> Section:
    """The attacks section on the user's model and data (``certkit report --model M --data D``):
    clean and robust accuracy under FGSM / PGD / APGD-CE+DLR / CW-ℓ2, robust accuracy vs ε,
    and corruption errors per family (13 corruptions × 5 severities)."""
    use_agg()
    import matplotlib.pyplot as plt

    from certkit.vision import attacks as A
    from certkit.vision.corruptions.suite import FAMILIES, corruption_errors
    from certkit.vision.data.inputs import check_user_model, load_user_data, load_user_model

    t0 = time.perf_counter()
    b = FULL if ctx.full else QUICK
    inp = ctx.inputs
    data = str(inp.get("data") or "digits")
    net = load_user_model(str(inp["model"]), inp.get("weights"))
    split = load_user_data(data, inp.get("labels"), inp.get("data_dir"), inp.get("image_size"),
                           str(inp.get("layout") or "auto"))
    check_user_model(net, split, int(inp.get("num_classes") or 10), data)
    name = Path(data).name
    n = min(b.n_test, len(split))
    x, y = split.x[:n].float(), split.y[:n]
    eps = 8 / 255 if x.shape[-1] >= 32 else EPS_LINF  # the usual CIFAR/ImageNet budget; digits' otherwise
    rows = attack_table({"your model": net}, x, y, b, ctx.seed) if eps == EPS_LINF else None
    if rows is None:
        clean = A.robust_accuracy(net, x, y)
        pg = A.robust_accuracy(net, A.pgd(net, x, y, eps, steps=b.pgd_steps, restarts=b.restarts, seed=ctx.seed), y)
        ap = A.robust_accuracy(net, A.apgd_ensemble(net, x, y, eps, steps=b.apgd_steps, restarts=b.restarts,
                                                    seed=ctx.seed), y)
        fg = A.robust_accuracy(net, A.fgsm(net, x, y, eps), y)
        rows = [["your model", round(clean, 3), round(fg, 3), round(pg, 3), round(ap, 3)]]
    eps_grid = [eps * f for f in (0.25, 0.5, 0.75, 1.0, 1.5)]
    curve = [A.robust_accuracy(net, A.pgd(net, x, y, e, steps=b.pgd_steps // 2, seed=ctx.seed), y) for e in eps_grid]
    errs = corruption_errors(net, x, y, seed=ctx.seed)
    fam_rows = [[f, round(sum(sum(errs[c]) / 5 for c in cs) / len(cs), 3)] for f, cs in FAMILIES.items()]
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.plot(eps_grid, curve, marker="o")
    ax.set_xlabel("ℓ∞ radius ε (pixels in [0, 1])")
    ax.set_ylabel("PGD robust accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title(f"your model, {n} inputs of {name}")
    cols = ["model", "clean", "FGSM", f"PGD-{b.pgd_steps}", "APGD-CE+DLR"]
    if len(rows[0]) > 5:
        cols += [f"CW ℓ2≤{EPS_L2}", "median CW ℓ2"]
    ap_acc = rows[0][4]
    summary = {"eps_linf": eps, "n_test": n, "clean": rows[0][1], "pgd": rows[0][3], "apgd": ap_acc,
               "clean_error": errs["clean"][0],
               "headline": {"label": f"accuracy of your model under the strongest attack (APGD-CE+DLR, ℓ∞ ε = "
                                     f"{eps:.4g}) on {name}", "value": ap_acc, "format": "percent", "n": n,
                            "of": f"inputs of {name}", "successes": round(ap_acc * n),
                            "checks": [{"name": "APGD-CE+DLR breaks at least as many inputs as PGD",
                                        "passed": bool(ap_acc <= rows[0][3] + 1e-9)}]}}
    args = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in inp.items()
                    if v is not None and not (k == "layout" and v == "auto"))
    return Section(
        domain="vision", title=f"Attacks and corruptions ({name})", summary=summary,
        tables=[Table("robust_accuracy", cols, rows,
                      f"Accuracy of your model on {n} inputs of {name} under ℓ∞ ε = {eps:.4g} attacks (FGSM, PGD "
                      "with random start, APGD-CE then APGD-DLR on survivors)."),
                Table("corruption_errors", ["family", "mean error (5 severities)"], fam_rows,
                      f"Clean error {errs['clean'][0]:.3f}; 13 corruptions × 5 severities, grouped by family.")],
        figures=[figure_from_matplotlib(fig, "attacks_eps_curve_user", "Robust accuracy under ℓ∞ PGD vs ε.")],
        text=f"Your model {inp['model']} on {data}: the empirical check beside the certificates.",
        reproduce=f"certkit report --only attacks {args}",
        full=f"--full: {min(FULL.n_test, len(split))} inputs, PGD-100 and APGD-100 with 3 restarts.",
        seconds=time.perf_counter() - t0,
    )


def sections(ctx: ReportContext) -> Section:
    if ctx.inputs.get("model"):
        return _user_section(ctx)
    use_agg()
    import matplotlib.pyplot as plt

    from certkit.vision import attacks as A
    from certkit.vision.corruptions.suite import FAMILIES, corruption_errors, mce
    from certkit.vision.corruptions.translation import translation_report
    from certkit.vision.data.digits import load_digits

    t0 = time.perf_counter()
    b = FULL if ctx.full else QUICK
    cache = Path(ctx.cache_dir) / "attacks"
    with single_thread():
        models = reference_models(cache, ctx.full, ctx.seed,
                                  ("standard", "pgd_at", "trades", "distilled", "shift_aug"))
        _, te = load_digits()
        n = min(b.n_test, len(te))
        x, y = te.x[:n], te.y[:n]
        main = {k: models[k] for k in ("standard", "pgd_at", "trades")}
        rows = attack_table({**main, "distilled (T=50)": models["distilled"]}, x, y, b,
                            ctx.seed)
        # robust accuracy vs ε (PGD) for the figure
        eps_grid = [0.05, 0.1, 0.15, 0.2, 0.25, 0.3]
        curves = {k: [A.robust_accuracy(m, A.pgd(m, x, y, e, steps=b.pgd_steps // 2), y)
                      for e in eps_grid] for k, m in main.items()}
        errs = {k: corruption_errors(m, x, y, seed=ctx.seed) for k, m in main.items()}
        mce_rows = []
        for k in main:
            m_ce, ces = mce(errs[k], errs["standard"])
            rel, _ = mce(errs[k], errs["standard"], relative=True)
            fam = {f: sum(ces[c] for c in cs) / len(cs) for f, cs in FAMILIES.items()}
            mean_err = sum(sum(v) for kk, v in errs[k].items() if kk != "clean") / (5 * len(ces))
            mce_rows.append([k, round(errs[k]["clean"][0], 3), round(mean_err, 3), round(m_ce, 3),
                             round(rel, 3)] + [round(fam[f], 3) for f in FAMILIES])
        tr_rows = []
        tr_summary = {}
        for k in ("standard", "shift_aug"):
            r = translation_report(models[k], x, y, radius=2)
            tr_summary[k] = r
            tr_rows.append([k, round(r["acc_plain"], 3), round(r["flip_plain"], 3),
                            round(r["acc_crop_selection"], 3), round(r["flip_crop_selection"], 3),
                            round(r["certified_consistent"], 3)])

    fig, ax = plt.subplots(figsize=(5, 3.4))
    for k, v in curves.items():
        ax.plot(eps_grid, v, marker="o", label=k)
    ax.set_xlabel("ℓ∞ radius ε (pixels in [0, 1])")
    ax.set_ylabel("PGD robust accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"Digits CNN, {n} test images")
    figure = figure_from_matplotlib(fig, "attacks_eps_curve",
                                    "Robust accuracy under ℓ∞ PGD vs the radius ε.")
    by = {r[0]: r for r in rows}
    summary = {
        "eps_linf": EPS_LINF, "eps_l2_cw": EPS_L2, "n_test": n,
        **{f"{k}_{col}": by[k][i] for k in main
           for i, col in ((1, "clean"), (3, "pgd"), (4, "apgd"), (5, "cw"))},
        "distilled_fgsm": by["distilled (T=50)"][2], "distilled_cw": by["distilled (T=50)"][5],
        "mce_pgd_at": mce_rows[1][3], "mce_trades": mce_rows[2][3],
        "flip_plain_shift_aug": tr_summary["shift_aug"]["flip_plain"],
        "flip_crop_selection_shift_aug": tr_summary["shift_aug"]["flip_crop_selection"],
    }
    summary["headline"] = {  # the summary card of `certkit report` (certkit.report.headline)
        "label": f"accuracy of the adversarially trained (PGD-AT) CNN under the strongest attack "
                 f"(APGD-CE+DLR, ℓ∞ ε = {EPS_LINF:g}); the standard CNN keeps {by['standard'][4]:.1%}",
        "value": by["pgd_at"][4], "format": "percent", "n": n, "of": "test digits",
        "successes": round(by["pgd_at"][4] * n),
        "checks": [{"name": "APGD-CE+DLR breaks at least as many inputs as PGD on every model",
                    "passed": all(r[4] <= r[3] + 1e-9 for r in rows)}]}
    return Section(
        domain="vision", title="Attacks and adversarial training",
        summary=summary,
        tables=[
            Table("robust_accuracy", ["model", "clean", "FGSM", f"PGD-{b.pgd_steps}",
                                      "APGD-CE+DLR", f"CW ℓ2≤{EPS_L2}", "median CW ℓ2"], rows,
                  f"Accuracy on {n} digits test images under ℓ∞ ε={EPS_LINF} attacks (FGSM, "
                  "PGD with random start, APGD-CE then APGD-DLR on survivors) and CW-ℓ2 "
                  f"counted as a success only within ℓ2 ≤ {EPS_L2} (first {min(n, b.n_cw)} "
                  "images). Defensive distillation resists FGSM/PGD on the cross-entropy "
                  "(saturated softmax, vanishing gradient) and falls to the logit-based "
                  "DLR and CW losses.", n=min(n, b.n_cw), of="test digits"),
            Table("corruptions", ["model", "clean err", "mean corr. err", "mCE", "rel. mCE",
                                  *[f"CE {f}" for f in FAMILIES]], mce_rows,
                  "Corruption error over 13 corruptions × 5 severities, normalised by the "
                  "standard CNN (so its mCE is 1).", n=n, of="test digits"),
            Table("translation", ["model", "acc", "1-px flip rate", "acc (crop sel.)",
                                  "flip (crop sel.)", "certified consistent"], tr_rows,
                  "One-pixel realistic (non-cyclic) shifts in the 4 axis directions; crop "
                  "selection among 5×5 candidate 8×8 crops of a 12×12 view; 'certified' "
                  "counts inputs whose selected crop provably stays the same under all 4 "
                  "shifts (exchangeable-score bound (n−1)/(n+1) = 0.667).", n=n, of="test digits"),
        ],
        figures=[figure],
        text=("The attack suite is the empirical check for every certificate in certkit: "
              "APGD-DLR finds adversarial examples PGD misses on adversarially trained and "
              "distilled models."),
        reproduce="certkit report --only attacks",
        full=("--full: all 539 test digits, 30 training epochs, PGD-100 and APGD-100 with 3 "
              "restarts, CW with 8 binary-search steps of 200 iterations."),
        seconds=time.perf_counter() - t0,
    )
