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
    if ctx.inputs.get("model"):
        return [user_section(ctx)]
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


# ℓ∞ radii in [0, 1] pixel units, as image-robustness papers report them (1/255 ... 8/255)
USER_EPS = (1 / 255, 2 / 255, 4 / 255, 8 / 255)


def user_section(ctx: ReportContext) -> Section:
    """``certkit report --model M --data D``: IBP and CROWN verified accuracy of the user's
    classifier on the user's data at ε = 1/255 ... 8/255 (ℓ∞ ball ∩ [0, 1]), PGD robust
    accuracy beside it (verified must not exceed it: the section's soundness check). A model
    with a layer the bound layer cannot capture gets a section that names it, not a failure.

    Quick: IBP on 100 inputs at every ε, CROWN on the first 20 at 2/255 (CROWN on a
    convolutional net materialises dense matrices today); --full: 500 and 100."""
    import torch

    from certkit.core.bounds.cli import vision_module
    from certkit.core.bounds.graph import UnsupportedLayerError

    t0 = time.perf_counter()
    inputs_mod = importlib.import_module("certkit.vision.data.inputs")
    inp = ctx.inputs
    data = str(inp.get("data") or "digits")
    net = inputs_mod.load_user_model(str(inp["model"]), inp.get("weights"))
    split = inputs_mod.load_user_data(data, inp.get("labels"), inp.get("data_dir"), inp.get("image_size"),
                                      str(inp.get("layout") or "auto"))
    k = int(inp.get("num_classes") or 10)
    inputs_mod.check_user_model(net, split, k, data)
    name = data.replace("\\", "/").rsplit("/", 1)[-1]
    n_ibp, n_crown = (500, 100) if ctx.full else (100, 20)
    x, y = split.x[:n_ibp].float(), split.y[:n_ibp]
    V = vision_module("verified")
    title = f"Verified robustness of your model ({name})"
    reproduce = f"certkit report --model {inp['model']} --data {data} --only bounds"
    try:
        res = {e: V.evaluate(net, x, y, e, methods=("IBP",)) for e in USER_EPS}
        crown = V.evaluate(net, x[:n_crown], y[:n_crown], USER_EPS[1], methods=("CROWN",))
    except UnsupportedLayerError as exc:
        return Section(domain="bounds", title=title, summary={"unsupported": str(exc)},
                       text=(f"Your model could not be bounded: {exc}. Randomized smoothing (the vision "
                             "section) needs only forward passes and still applies."),
                       reproduce=reproduce, seconds=time.perf_counter() - t0)
    torch.manual_seed(ctx.seed)
    e_h = USER_EPS[1]
    adv = V.pgd_attack(net, x[:n_crown], y[:n_crown], e_h, steps=20, seed=ctx.seed)
    with torch.no_grad():
        pgd_acc = float((net(adv).argmax(1) == y[:n_crown]).float().mean())
    rows = [[f"{e * 255:g}/255", round(res[e]["clean_acc"], 4), round(res[e]["verified_acc"]["IBP"], 4),
             round(crown["verified_acc"]["CROWN"], 4) if e == e_h else "—",
             round(pgd_acc, 4) if e == e_h else "—"] for e in USER_EPS]
    ver_h = crown["verified_acc"]["CROWN"]
    ok = ver_h <= pgd_acc + 1e-12 and max(res[e_h]["verified_acc"]["IBP"], ver_h) <= res[e_h]["clean_acc"] + 1e-12
    summary = {"eps": e_h, "n_ibp": len(x), "n_crown": crown["n"], "clean_acc": res[e_h]["clean_acc"],
               "ibp_verified_acc": {f"{e * 255:g}/255": res[e]["verified_acc"]["IBP"] for e in USER_EPS},
               "crown_verified_acc": ver_h, "pgd_acc": pgd_acc}
    summary["headline"] = {
        "label": f"inputs of {name} verified robust (CROWN) to every ℓ∞ perturbation up to 2/255",
        "value": ver_h, "format": "percent", "n": crown["n"], "of": f"inputs of {name}",
        "successes": round(ver_h * crown["n"]),
        "checks": [{"name": "verified accuracy does not exceed PGD robust accuracy (20 steps) or clean accuracy",
                    "passed": bool(ok)}],
        "note": f"IBP verifies {res[e_h]['verified_acc']['IBP']:.1%} of {len(x)} at 2/255; "
                f"PGD leaves {pgd_acc:.1%} of {crown['n']} correct."}
    return Section(
        domain="bounds", title=title, summary=summary,
        tables=[Table("user_verified_accuracy", ["eps", "clean acc", "IBP verified", "CROWN verified",
                                                 "PGD robust acc"], rows,
                      caption=(f"IBP on the first {len(x)} inputs at every ε; CROWN and PGD on the first "
                               f"{crown['n']} at 2/255. Verified = every margin's lower bound > 0 over the "
                               "ℓ∞ ball ∩ [0, 1]."), n=crown["n"], of=f"inputs of {name}")],
        text=("Sound IBP / CROWN bounds (certkit.core.bounds) on your model: an input counted as verified "
              "cannot be misclassified by any perturbation within ε. PGD gives the upper end: no input it "
              "breaks can be verified."),
        reproduce=reproduce,
        full=f"IBP on 500 inputs and CROWN on 100 (quick: {n_ibp} and {n_crown})",
        seconds=time.perf_counter() - t0)
