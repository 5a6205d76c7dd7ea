"""Layer-wise Lipschitz upper bounds vs a box-constrained L-BFGS attack (Szegedy, Zaremba,
Sutskever, Bruna, Erhan, Goodfellow & Fergus 2014, "Intriguing properties of neural networks",
arXiv:1312.6199).

Provenance: recalled, not read in this session. The paper (i) finds adversarial examples by
box-constrained L-BFGS: minimise c ||r|| + loss_f(x + r, l) subject to x + r in [0, 1]^m, with
a line search for the smallest c > 0 whose minimiser r reaches the target label l; and (ii)
bounds the instability of a network by the product of per-layer upper Lipschitz constants, a
fully connected layer max(0, W x + b) contributing its spectral norm ||W||_2 (ReLU is
1-Lipschitz).

What we compute (derived here): for an MLP with ReLU hidden layers and logits f(x) = W_L
relu(... relu(W_1 x + b_1) ...) + b_L, ||f(x + r) - f(x)||_2 <= L ||r||_2 with
L = prod_l ||W_l||_2 (:func:`closed_form`). A logit difference f_i - f_j changes by at most
||e_i - e_j||_2 L ||r|| = sqrt(2) L ||r||, so no perturbation with ||r||_2 < margin(x) /
(sqrt(2) L) changes the prediction (margin = top logit minus runner-up). :func:`simulate`
estimates each ||W_l||_2 by power iteration (the check's independent side), trains a small
MLP on scikit-learn digits (pixels scaled to [0, 1]), runs the box-constrained L-BFGS attack
(scipy L-BFGS-B, bisection on c) towards the runner-up class, and reports the smallest
adversarial ||r||_2 found next to the certified lower bound margin / (sqrt(2) L). The
attack can only find perturbations at or above the bound; the ratio shows how loose the
product-of-norms bound is (the paper's point that it is only an upper bound on instability).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from certkit.core.validation import check_int, check_seed
from certkit.theory._common import (
    TheoryCheckError,
    TheoryRun,
    assert_close,
    check_mode,
    new_figure,
    to_png,
)

NAME = "layer-lipschitz"
TITLE = "Layer-wise Lipschitz bounds vs box-constrained L-BFGS attacks (Szegedy et al. 2014)"
CITATION = "arXiv:1312.6199"


def closed_form(weights: list[npt.NDArray[np.float64]]) -> dict[str, Any]:
    """Per-layer spectral norms (SVD) and their product L. weights: list of (out, in) arrays."""
    if not weights:
        raise ValueError("weights: expected at least one (out, in) matrix")
    norms = [float(np.linalg.norm(np.asarray(w, dtype=np.float64), 2)) for w in weights]
    return {"layer_norms": norms, "L": float(np.prod(norms))}


def certified_radius(margin: npt.ArrayLike, lip: float) -> npt.NDArray[np.float64]:
    """margin / (sqrt(2) L): no l2 perturbation smaller than this changes the prediction of a
    network whose logits are L-Lipschitz in l2 (margin = top logit - runner-up; derived in the
    module doc). margin: any shape; returns the same shape."""
    return np.asarray(margin, dtype=np.float64) / (np.sqrt(2.0) * float(lip))


def _exact_linear_distance(w: npt.NDArray[np.float64], b: npt.NDArray[np.float64], x: npt.NDArray[np.float64]) -> float:
    """Exact minimum l2 distance from x to a change of argmax of the linear logits W x + b: the
    nearest of the hyperplanes (w_top - w_k) . x' + b_top - b_k = 0 (pairwise, no box)."""
    lg = w @ x + b
    top = int(np.argmax(lg))
    return float(min((lg[top] - lg[k]) / np.linalg.norm(w[top] - w[k]) for k in range(len(lg)) if k != top))


def _check_tight_case() -> dict[str, float]:
    """On a one-layer net with w_0 - w_1 along the top right singular vector and
    ||w_0 - w_1|| = sqrt(2) ||W||_2 (W = [[1, 0], [-1, 0], [0, 0.5]]), the certified radius
    must equal the exact distance to the boundary (the bound is tight there); on random
    one-layer nets it must not exceed it."""
    w = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 0.5]])
    b = np.zeros(3)
    x = np.array([0.2, -0.5])                            # runner-up: class 1
    lg = w @ x + b
    srt = np.sort(lg)
    rad = float(certified_radius(srt[-1] - srt[-2], closed_form([w])["L"]))
    out = assert_close("certified radius on the tight one-layer case", rad, _exact_linear_distance(w, b, x),
                       1e-12)
    rng = np.random.default_rng(5)
    for _ in range(50):
        w, b, x = rng.standard_normal((4, 3)), rng.standard_normal(4), rng.standard_normal(3)
        srt = np.sort(w @ x + b)
        rad = float(certified_radius(srt[-1] - srt[-2], closed_form([w])["L"]))
        if rad > _exact_linear_distance(w, b, x) * (1 + 1e-12):
            raise TheoryCheckError("certified radius exceeds the exact distance on a one-layer net")
    return out


def power_iteration(w: npt.ArrayLike, iters: int = 500, seed: int = 0) -> float:
    """||w||_2 by power iteration on w^T w (the independent estimate)."""
    w = np.asarray(w, dtype=np.float64)
    v = np.random.default_rng(seed).standard_normal(w.shape[1])
    for _ in range(check_int(iters, "iters", minimum=1)):
        v = w.T @ (w @ v)
        v /= np.linalg.norm(v)
    return float(np.linalg.norm(w @ v))


def _data() -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)


@lru_cache(maxsize=4)
def train_mlp(hidden: tuple[int, ...] = (32, 32), steps: int = 400, seed: int = 0) -> tuple[Any, ...]:
    """A ReLU MLP on digits (first 1200 images train, rest test); returns the torch module's
    weights and biases as numpy arrays (W_l (out, in), b_l (out,)) and the test accuracy."""
    x, y = _data()
    torch.manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sizes = [64, *hidden, 10]
        layers: list[torch.nn.Module] = []
        for i in range(len(sizes) - 1):
            layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
            if i < len(sizes) - 2:
                layers.append(torch.nn.ReLU())
        net = torch.nn.Sequential(*layers)
        opt = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-4)
        xt, yt = torch.as_tensor(x[:1200]), torch.as_tensor(y[:1200])
        for _ in range(steps):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(xt), yt).backward()
            opt.step()
        with torch.no_grad():
            acc = float((net(torch.as_tensor(x[1200:])).argmax(1).numpy() == y[1200:]).mean())
    finally:
        torch.set_num_threads(threads)
    lin = [m for m in net if isinstance(m, torch.nn.Linear)]
    return (tuple(m.weight.detach().double().numpy() for m in lin),
            tuple(m.bias.detach().double().numpy() for m in lin), acc)


def logits(ws: Any, bs: Any, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """MLP logits (B, 10) for x (B, 64)."""
    h = np.atleast_2d(x)
    for i, (w, b) in enumerate(zip(ws, bs, strict=True)):
        h = h @ w.T + b
        if i < len(ws) - 1:
            h = np.maximum(h, 0.0)
    return h


def lbfgs_attack(ws: Any, bs: Any, x: npt.NDArray[np.float64], target: int, *, c_steps: int = 8,
                 c_hi: float = 10.0) -> float:
    """Box-constrained L-BFGS attack (recalled form): for a given c minimise
    c ||r||_2^2 + CE(f(x + r), target) over x + r in [0, 1]^64 with scipy L-BFGS-B; bisect on c
    (in log scale) for the largest c whose minimiser is classified as ``target``. Returns the
    smallest ||r||_2 among successful minimisers (inf if none)."""
    from scipy.optimize import minimize

    wt = [torch.as_tensor(w) for w in ws]
    bt = [torch.as_tensor(b) for b in bs]
    x0 = np.asarray(x, dtype=np.float64)

    def fg(r: npt.NDArray[np.float64], c: float) -> tuple[float, npt.NDArray[np.float64]]:
        rt = torch.as_tensor(r).requires_grad_(True)
        h = (torch.as_tensor(x0) + rt)[None, :]
        for i, (w, b) in enumerate(zip(wt, bt, strict=True)):
            h = h @ w.T + b
            if i < len(wt) - 1:
                h = torch.relu(h)
        obj = c * (rt**2).sum() + torch.nn.functional.cross_entropy(h, torch.tensor([target]))
        obj.backward()
        return float(obj.detach()), rt.grad.numpy().copy()

    bounds = list(zip(-x0, 1.0 - x0, strict=True))
    best = float("inf")
    lo, hi = -6.0, float(np.log10(c_hi))
    for _ in range(check_int(c_steps, "c_steps", minimum=1)):
        c = 10.0 ** ((lo + hi) / 2)
        res = minimize(fg, np.zeros_like(x0), args=(c,), jac=True, method="L-BFGS-B", bounds=bounds,
                       options={"maxiter": 100})
        r = res.x
        if int(logits(ws, bs, x0 + r).argmax()) == target:
            best = min(best, float(np.linalg.norm(r)))
            lo = (lo + hi) / 2                           # success: try a larger penalty
        else:
            hi = (lo + hi) / 2
    return best


def simulate(n_points: int = 6, *, hidden: tuple[int, ...] = (32, 32), steps: int = 400,
             seed: int = 0) -> dict[str, Any]:
    """Power-iteration norms, the attack's smallest ||r||_2 on n_points correctly classified
    test digits (target: the runner-up class) and each point's certified radius
    margin / (sqrt(2) L). Arrays have shape (n_points,). Cached per argument set."""
    return _simulate(check_int(n_points, "n_points", minimum=1), tuple(check_int(h, "hidden", minimum=1)
                                                                       for h in hidden),
                     check_int(steps, "steps", minimum=1), check_seed(seed))


@lru_cache(maxsize=4)
def _simulate(n_points: int, hidden: tuple[int, ...], steps: int, seed: int) -> dict[str, Any]:
    ws, bs, acc = train_mlp(tuple(hidden), steps, seed)
    cf = closed_form(list(ws))
    x, y = _data()
    xt, yt = x[1200:].astype(np.float64), y[1200:]
    lg = logits(ws, bs, xt)
    ok = np.flatnonzero(lg.argmax(1) == yt)
    pick = np.random.default_rng(seed).choice(ok, size=min(n_points, ok.size), replace=False)
    srt = np.sort(lg[pick], axis=1)
    margin = srt[:, -1] - srt[:, -2]
    runner = np.argsort(lg[pick], axis=1)[:, -2]
    dist = np.array([lbfgs_attack(ws, bs, xt[i], int(t)) for i, t in zip(pick, runner, strict=True)])
    return {"power_norms": [power_iteration(w) for w in ws], "attack_dist": dist,
            "certified": certified_radius(margin, cf["L"]), "margin": margin, "test_acc": acc, **cf}


def check(mode: str = "quick") -> dict[str, Any]:
    """(1) Each layer's SVD spectral norm equals power iteration (1e-6 relative), and so does L;
    (2) every adversarial example the attack finds is at least the certified radius away
    (soundness of margin / (sqrt(2) L)); (3) the attack succeeds on most points; (4) the
    radius is exact on a one-layer net built to make the bound tight, and never exceeds the
    exact distance on random one-layer nets."""
    mode = check_mode(mode)
    out: dict[str, Any] = {"tight_case": _check_tight_case()}
    sim = simulate(6 if mode == "quick" else 40)
    cf = closed_form(list(train_mlp((32, 32), 400, 0)[0]))
    for i, (a, b) in enumerate(zip(cf["layer_norms"], sim["power_norms"], strict=True)):
        out[f"layer {i + 1}"] = assert_close(f"layer {i + 1} spectral norm", a, b, 1e-6 * b)
    out["L"] = assert_close("product of norms", cf["L"], float(np.prod(sim["power_norms"])),
                            1e-6 * float(np.prod(sim["power_norms"])))
    found = np.isfinite(sim["attack_dist"])
    if found.mean() < 0.75:
        raise TheoryCheckError(f"attack found adversarial examples for only {found.mean():.0%} of the points")
    if np.any(sim["attack_dist"][found] < sim["certified"][found] * (1 - 1e-9)):
        raise TheoryCheckError("an adversarial example lies inside the certified Lipschitz radius")
    ratio = sim["attack_dist"][found] / sim["certified"][found]
    out["attack/certified median"] = float(np.median(ratio))
    out["attack/certified min"] = float(np.min(ratio))
    out["test_acc"] = sim["test_acc"]
    return out


def plot(sim: dict[str, Any]) -> list[Any]:
    fig, axes = new_figure(2, 4.0, 3.0)
    n = len(sim["layer_norms"])
    axes[0].bar(np.arange(n) - 0.2, sim["layer_norms"], 0.4, label="SVD ||W_l||_2")
    axes[0].bar(np.arange(n) + 0.2, sim["power_norms"], 0.4, label="power iteration")
    axes[0].set_xticks(range(n), [f"layer {i + 1}" for i in range(n)])
    axes[0].set_ylabel("spectral norm")
    axes[0].set_title(f"L = prod = {sim['L']:.1f}", fontsize=9)
    axes[0].legend(fontsize=7)
    found = np.isfinite(sim["attack_dist"])
    axes[1].scatter(sim["certified"][found], sim["attack_dist"][found], s=14)
    m = 1.05 * float(max(sim["attack_dist"][found].max(), 1e-3))
    axes[1].plot([0, m], [0, m], "k:", lw=1, label="attack = certified (bound tight)")
    axes[1].set_xlim(0, m)
    axes[1].set_ylim(0, m)
    axes[1].set_xlabel("certified radius margin / (sqrt(2) L)", fontsize=8)
    axes[1].set_ylabel("L-BFGS adversarial ||r||_2", fontsize=8)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return [to_png(fig, "theory_layer_lipschitz", "Per-layer spectral norms and L-BFGS distances vs the "
                   "Lipschitz certified radius on digits.")]


def run(paper_mode: bool = False, seed: int = 0) -> TheoryRun:
    mode = "paper" if paper_mode else "quick"
    res = check(mode)
    sim = simulate(40 if paper_mode else 6, seed=check_seed(seed))
    rows = [{"point": i, "certified_radius": float(c), "attack_dist": float(a), "margin": float(m)}
            for i, (c, a, m) in enumerate(zip(sim["certified"], sim["attack_dist"], sim["margin"], strict=True))]
    return TheoryRun(NAME, TITLE, CITATION, rows, plot(sim),
                     summary={"L": sim["L"], "layer_norms": sim["layer_norms"], "test_acc": sim["test_acc"],
                              "attack/certified median": res["attack/certified median"],
                              "attack/certified min": res["attack/certified min"]},
                     paper_values={"note": "the paper's Table 5 lists per-layer bounds for AlexNet on ImageNet; "
                                   "we use a small digits MLP, so no number carries over"}, mode=mode)
