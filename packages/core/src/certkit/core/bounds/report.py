"""Report section ``bounds``: IBP / CROWN verified accuracy of a certifiably trained
digits model at ε = 0.1 (ℓ∞, [0,1] pixels) next to clean accuracy, and a plot of verified
accuracy against ε. The model and the data come from certkit-vision (certified training);
without torch or certkit-vision the section is left out (an empty list)."""

from __future__ import annotations

import importlib.util
import time

from certkit.core.report import ReportContext, Section, Table, figure_from_matplotlib, use_agg


def sections(ctx: ReportContext) -> list[Section]:
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("certkit.vision") is None:
        return []
    import torch

    from certkit.core.bounds.cli import vision_module

    V = vision_module("verified")
    t0 = time.perf_counter()
    torch.manual_seed(ctx.seed)
    model, meta = V.cached_model(ctx.cache_dir / "vision", full=ctx.full, seed=ctx.seed)
    _, te = vision_module("digits").load_digits()
    epss = [0.02, 0.05, 0.1, 0.15]
    rows = []
    res = {}
    for e in epss:
        # CROWN at the headline ε only (and everywhere with --full) to stay in the time budget
        meths = ("IBP", "CROWN") if (e == 0.1 or ctx.full) else ("IBP",)
        r = V.evaluate(model, te.x, te.y, e, methods=meths)
        res[e] = r
        crown = r["verified_acc"].get("CROWN")
        rows.append([e, round(r["clean_acc"], 4), round(r["verified_acc"]["IBP"], 4),
                     "—" if crown is None else round(crown, 4), round(r["ibp_tightness"], 3)])
    use_agg()
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.plot(epss, [res[e]["verified_acc"]["IBP"] for e in epss], "o-", label="IBP verified")
    ce = [e for e in epss if "CROWN" in res[e]["verified_acc"]]
    ax.plot(ce, [res[e]["verified_acc"]["CROWN"] for e in ce], "s", label="CROWN verified")
    ax.axhline(res[0.1]["clean_acc"], color="k", ls="--", lw=1, label="clean")
    ax.set_xlabel("ε (ℓ∞, [0,1] pixels)")
    ax.set_ylabel("accuracy (digits test)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    r10 = res[0.1]
    summary = {"eps": 0.1, "clean_acc": r10["clean_acc"], "ibp_verified_acc": r10["verified_acc"]["IBP"],
               "crown_verified_acc": r10["verified_acc"]["CROWN"], "ibp_tightness": r10["ibp_tightness"],
               "train_seconds": meta.get("train_seconds"), "train_method": meta.get("method"),
               "arch": meta.get("arch")}
    va, n_te = r10["verified_acc"], len(te)  # the summary card of `certkit report` (certkit.report.headline)
    summary["headline"] = {
        "label": "test digits verified robust (CROWN) to every ℓ∞ perturbation up to ε = 0.1",
        "value": va["CROWN"], "format": "percent", "n": n_te, "of": "test digits",
        "successes": round(va["CROWN"] * n_te),
        "checks": [{"name": "verified accuracy (IBP and CROWN) does not exceed clean accuracy",
                    "passed": bool(max(va["IBP"], va["CROWN"]) <= r10["clean_acc"] + 1e-12)}],
        "note": f"Clean accuracy {r10['clean_acc']:.1%}; IBP alone verifies {va['IBP']:.1%}."}
    return [Section(
        domain="bounds", title="Certified training and bound propagation (digits)",
        summary=summary,
        tables=[Table("verified_accuracy", ["eps", "clean acc", "IBP verified", "CROWN verified", "IBP tightness τ"],
                      rows, caption=f"{meta.get('arch')} trained with {meta.get('method')} at ε=0.1 "
                                    f"(Shi et al. 2021 recipe), digits test split (n={len(te)}).",
                      n=len(te), of="test digits")],
        figures=[figure_from_matplotlib(fig, "bounds_verified_vs_eps", "Verified accuracy vs ε")],
        text=("Verified = every margin's lower bound > 0 over the ℓ∞ ball ∩ [0,1] (sound IBP/CROWN "
              "bounds from certkit.core.bounds)."),
        reproduce="certkit vision verified evaluate --eps 0.1",
        full="trains the BN-CNN with CROWN-IBP (β 1→0) for 40 epochs instead of the 12-epoch BN-MLP with IBP",
        seconds=time.perf_counter() - t0)]
