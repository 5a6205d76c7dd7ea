"""Generalising vs memorising representations on corrupted modular addition (Doshi, Das,
Mahajan, Lobov & Gromov 2024, "To grok or not to grok: Disentangling generalization and
memorization on corrupted algorithmic datasets", arXiv:2310.13061).

Task: (a, b) -> (a + b) mod p, p prime; a fraction xi of the training labels is replaced by
a wrong label. Model: one-hot(a) ++ one-hot(b) in R^{2p} -> N hidden units with quadratic
activation phi(h) = h^2 -> p logits (no biases).

Analytic periodic solution (Gromov's construction, re-derived here): neuron (sigma, phi1, phi2)
has input weights cos(2 pi sigma a / p + phi1) on a and cos(2 pi sigma b / p + phi2) on b and
output weights cos(2 pi sigma q / p + phi1 + phi2). Expanding h^2 cos(.) leaves one phase-free
term 1/2 cos(2 pi sigma (a + b - q)/p); every other term carries a phase e^{i(m phi1 + n phi2)}
with (m, n) != 0 and |m|, |n| <= 3, and averaging over the grid phi1, phi2 in {0, 2pi/3, 4pi/3}
cancels them all exactly (derived here). With every frequency sigma = 1..(p-1)/2 and the 9
phase pairs (N = 9 (p-1)/2):

    logit_q(a, b) = 9/2 sum_sigma cos(2 pi sigma (a + b - q)/p) = 9/2 ((p-1)/2 if q = a+b mod p, else -1/2),

so accuracy is 100% with margin 9p/4, and each neuron's weights are a single Fourier mode:
inverse participation ratio IPR = sum_k |u^_k|^4 / (sum_k |u^_k|^2)^2 = 1 (u^ the one-sided
DFT over k = 0..(p-1)/2; IPR definition as we recall it from the paper, r = 2).

Trained nets (paper mode): AdamW on half of the p^2 pairs, xi of the training labels
corrupted; generalising neurons have IPR near 1, memorising ones low IPR; pruning the low-IPR
neurons lowers accuracy on the corrupted training labels and raises it on the clean ones
(the paper's claim (ii)). A coarse (xi, weight decay) phase diagram of test accuracy.
The paper's numbers (p = 97, N = 500, its optimiser settings) are not reproduced exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from certkit.core.validation import check_int, check_positive, check_seed
from certkit.theory._common import (
    TheoryCheckError,
    TheoryRun,
    check_mode,
    check_prime,
    check_range,
    new_figure,
    to_png,
)

NAME = "grokking"
TITLE = "Grokking with corrupted labels: analytic periodic solution and IPR (Doshi et al. 2024)"
CITATION = "arXiv:2310.13061"


def analytic_weights(p: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """W1 (N, 2p) and W2 (p, N) of the periodic solution, N = 9 (p - 1)/2."""
    p = check_prime(p)
    if p < 3:
        raise ValueError("p: expected an odd prime")
    idx = np.arange(p)
    w1, w2 = [], []
    phases = 2 * np.pi * np.arange(3) / 3
    for s in range(1, (p - 1) // 2 + 1):
        for f1 in phases:
            for f2 in phases:
                w1.append(np.concatenate([np.cos(2 * np.pi * s * idx / p + f1), np.cos(2 * np.pi * s * idx / p + f2)]))
                w2.append(np.cos(2 * np.pi * s * idx / p + f1 + f2))
    return np.asarray(w1), np.asarray(w2).T


def forward(w1: npt.NDArray[np.float64], w2: npt.NDArray[np.float64], a: npt.ArrayLike,
            b: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Logits (B, p) for inputs a, b: (B,) ints."""
    p = w2.shape[0]
    a, b = np.asarray(a), np.asarray(b)
    h = w1[:, a].T + w1[:, p + b].T
    return (h**2) @ w2.T


def closed_form(p: int) -> npt.NDArray[np.float64]:
    """logit_q(a, b) of the analytic solution as a (p, p, p) array [a, b, q]."""
    p = check_prime(p)
    a, b, q = np.meshgrid(np.arange(p), np.arange(p), np.arange(p), indexing="ij")
    return np.where((a + b - q) % p == 0, 4.5 * (p - 1) / 2, -2.25)


def ipr(w1: npt.NDArray[np.float64], p: int, r: int = 2) -> npt.NDArray[np.float64]:
    """Per-neuron IPR (N,), the mean over the a- and b-halves of the input weights."""
    out = []
    for half in (w1[:, :p], w1[:, p:]):
        pw = np.abs(np.fft.rfft(half, axis=1)) ** 2
        out.append((pw**r).sum(1) / np.maximum(pw.sum(1), 1e-300) ** r)
    return (out[0] + out[1]) / 2


def make_data(p: int, xi: float, train_frac: float = 0.5, seed: int = 0) -> dict[str, npt.NDArray[np.int64]]:
    """All p^2 pairs split into train/test; a fraction xi of the training labels is replaced by
    a uniformly drawn wrong label. Returns a, b, y (true), y_train (possibly corrupted), masks."""
    p = check_prime(p)
    xi = check_range(xi, "xi", 0.0, 1.0)
    train_frac = check_range(train_frac, "train_frac", 0.0, 1.0, low_open=True)
    rng = np.random.default_rng(check_seed(seed))
    a, b = np.divmod(np.arange(p * p), p)
    y = (a + b) % p
    train = rng.random(p * p) < train_frac
    corrupt = train & (rng.random(p * p) < xi)
    y_obs = y.copy()
    y_obs[corrupt] = (y[corrupt] + rng.integers(1, p, corrupt.sum())) % p
    return {"a": a, "b": b, "y": y, "y_obs": y_obs, "train": train, "corrupt": corrupt}


def simulate(p: int = 23, xi: float = 0.2, *, width: int = 256, steps: int = 3000,
             weight_decay: float = 1.0, lr: float = 3e-3, seed: int = 0) -> dict[str, Any]:
    """Train the quadratic MLP (AdamW, full batch, CE on the observed labels); report
    accuracies (clean test, corrupted train w.r.t. the corrupted label, clean train), per-neuron
    IPR, and the same accuracies after pruning neurons with IPR below 0.5 (xi in [0, 1])."""
    p = check_prime(p)
    xi = check_range(xi, "xi", 0.0, 1.0)
    width = check_int(width, "width", minimum=1)
    steps = check_int(steps, "steps", minimum=1)
    weight_decay = check_positive(weight_decay, "weight_decay", allow_zero=True)
    data = make_data(p, xi, seed=seed)
    torch.manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        w1 = torch.nn.Parameter(torch.randn(width, 2 * p) / np.sqrt(2 * p))
        w2 = torch.nn.Parameter(torch.randn(p, width) / np.sqrt(width))
        tr = np.flatnonzero(data["train"])
        a, b = torch.as_tensor(data["a"]), torch.as_tensor(data["b"])
        yo = torch.as_tensor(data["y_obs"])
        opt = torch.optim.AdamW([w1, w2], lr=lr, weight_decay=weight_decay)
        for _ in range(steps):
            opt.zero_grad()
            h = w1[:, a[tr]].T + w1[:, p + b[tr]].T
            loss = torch.nn.functional.cross_entropy((h**2) @ w2.T, yo[tr])
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    W1, W2 = w1.detach().double().numpy(), w2.detach().double().numpy()
    scores = ipr(W1, p)

    def accs(keep: npt.NDArray[np.bool_]) -> dict[str, float]:
        pred = forward(W1[keep], W2[:, keep], data["a"], data["b"]).argmax(1)
        te, cor = ~data["train"], data["corrupt"]
        clean_tr = data["train"] & ~cor
        return {"test_acc": float(np.mean(pred[te] == data["y"][te])),
                "corrupted_train_acc": float(np.mean(pred[cor] == data["y_obs"][cor])) if cor.any() else float("nan"),
                "clean_train_acc": float(np.mean(pred[clean_tr] == data["y"][clean_tr]))}

    keep = scores >= 0.5
    return {"ipr": scores, "full": accs(np.ones(width, bool)), "pruned": accs(keep),
            "n_pruned": int((~keep).sum()), "p": p, "xi": xi, "weight_decay": weight_decay}


def check(mode: str = "quick") -> dict[str, Any]:
    """The analytic network's logits equal the closed form (to 1e-9 relative), accuracy is
    100% and every neuron's IPR is 1 (to 1e-9); quick mode p in (23, 97), paper mode adds 193."""
    mode = check_mode(mode)
    out = {}
    for p in ((23, 97) if mode == "quick" else (23, 97, 193)):
        w1, w2 = analytic_weights(p)
        a, b = np.divmod(np.arange(p * p), p)
        logits = forward(w1, w2, a, b)
        cf = closed_form(p).reshape(p * p, p)
        err = float(np.max(np.abs(logits - cf)) / np.max(np.abs(cf)))
        acc = float(np.mean(logits.argmax(1) == (a + b) % p))
        ip = ipr(w1, p)
        if err > 1e-9 or acc != 1.0 or np.max(np.abs(ip - 1)) > 1e-9:
            raise TheoryCheckError(f"p={p}: logit err {err:.3g}, accuracy {acc}, IPR range [{ip.min()}, {ip.max()}]")
        out[f"p={p}"] = {"max_rel_logit_err": err, "accuracy": acc, "min_ipr": float(ip.min()),
                         "neurons": int(w1.shape[0])}
    return out


def plot(p: int, trained: dict[str, Any] | None) -> list[Any]:
    fig, axes = new_figure(2, 4.0, 3.0)
    w1, w2 = analytic_weights(p)
    axes[0].hist(ipr(w1, p), bins=np.linspace(0, 1.05, 22), color="C0", alpha=0.7, label="analytic")
    if trained is not None:
        axes[0].hist(trained["ipr"], bins=np.linspace(0, 1.05, 22), color="C3", alpha=0.6,
                     label=f"trained, xi={trained['xi']}")
    axes[0].set_xlabel("IPR")
    axes[0].set_ylabel("neurons")
    axes[0].legend(fontsize=7)
    a, b = np.divmod(np.arange(p * p), p)
    logits = forward(w1, w2, a, b)
    axes[1].imshow(logits[:, :].reshape(p, p, p)[:, :, 0], cmap="RdBu_r")
    axes[1].set_title(f"analytic logit for q = 0 (p = {p})", fontsize=9)
    axes[1].set_xlabel("b")
    axes[1].set_ylabel("a")
    return [to_png(fig, "theory_grokking", "IPR histogram and the analytic solution's logits.")]


def phase_diagram(p: int = 23, xis: Any = (0.0, 0.3, 0.6), wds: Any = (0.0, 0.3, 1.0, 3.0),
                  steps: int = 3000, seed: int = 0) -> list[dict[str, float]]:
    """Clean test accuracy over a coarse (xi, weight decay) grid (paper mode)."""
    rows = []
    for xi in xis:
        for wd in wds:
            r = simulate(p, xi, steps=steps, weight_decay=wd, seed=seed)
            rows.append({"xi": xi, "weight_decay": wd, **r["full"], "pruned_test_acc": r["pruned"]["test_acc"],
                         "mean_ipr": float(np.mean(r["ipr"]))})
    return rows


def run(paper_mode: bool = False, seed: int = 0) -> TheoryRun:
    mode = "paper" if paper_mode else "quick"
    res = check(mode)
    rows: list[dict[str, Any]] = [{"setting": k, **v} for k, v in res.items()]
    trained = None
    if paper_mode:
        trained = simulate(97, 0.2, width=500, steps=4000, weight_decay=1.0, seed=seed)
        rows.append({"setting": "trained p=97 xi=0.2", **trained["full"],
                     **{f"pruned_{k}": v for k, v in trained["pruned"].items()}, "n_pruned": trained["n_pruned"]})
        rows += [{"setting": "phase", **r} for r in phase_diagram(seed=seed)]
    return TheoryRun(NAME, TITLE, CITATION, rows, plot(23 if not paper_mode else 97, trained),
                     summary={"analytic accuracy p=97": res["p=97"]["accuracy"],
                              "analytic min IPR p=97": res["p=97"]["min_ipr"]},
                     paper_values={"analytic accuracy": 1.0, "analytic IPR": 1.0,
                                   "note": "the paper's trained-net numbers depend on its settings; "
                                   "paper mode reports ours"},
                     mode=mode)
