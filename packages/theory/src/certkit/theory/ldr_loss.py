"""Label distributionally robust (LDR) losses (Zhu, Ying & Yang 2023, "Label Distributionally
Robust Losses for Multi-class Classification: Consistency, Robustness and Adaptivity",
arXiv:2112.14869).

LDR-KL loss (the form given in our issue, which is the paper's KL-regularised worst case over
label weights p in the simplex: max_p sum_k p_k (c 1[k!=y] + f_k - f_y) - lam KL(p, 1/K)):

    psi_lam(f, y) = lam * log( (1/K) sum_k exp((c 1[k != y] + f_k - f_y) / lam) ),   lam > 0.

This matches the authors' released implementation (github.com/DixianZhu/LDR, loss.py,
LDRLoss_V1: lam (log mean_k exp(z_k / lam)) with z = c (1 - onehot(y)) + f - f_y), read by us;
we did not read the paper's equation itself.

Limits (derived here; both exact statements about the formula):
* lam -> 0: psi -> max(0, max_{k != y} (c + f_k - f_y)), the Crammer-Singer SVM loss, with
  0 <= CS - psi <= lam log K.
* lam = 1, c = 0: psi = CE(f, y) - log K exactly.

Adaptive ALDR-KL. Source: the authors' released implementation (github.com/DixianZhu/LDR,
loss.py, ALDRLoss_V1), read by us; the paper's own equation was not accessible to us, so this
is the code's form, not a quotation of the paper. Each example keeps its own lam_i and the
loss is psi_{lam_i}(f, y) - alpha log K / (2 lam0) (lam_i - lam0)^2. Ours and theirs differ
in how lam_i is chosen:

* ours (:func:`adaptive_lambda`): lam_i = argmax over lam in [lam0 (1 - 1/alpha), lam0] of
  Phi(lam) = psi_lam(z) - alpha log K / (2 lam0) (lam - lam0)^2, z = c 1[k != y] + f - f_y
  *with* the margin, solved exactly (grid + golden section). We derived (d psi_lam / d lam =
  -KL(softmax(z / lam), 1/K)) that its stationarity condition is
  lam = lam0 (1 - KL(softmax(z / lam), 1/K) / (alpha log K)).
* theirs (:func:`authors_lambda_step`): one step per visit of the example,
  lam_i <- lam0 (1 - KL(softmax(f / lam_i), 1/K) / (alpha log K)), where the KL is of the
  softmax of the (normalised) scores *without* the margin, computed with the previous lam_i
  (initially lam0) and smoothed (softmax + 1e-5, renormalised). The margin term only enters
  their loss value, not the update.

At c = 0 the two agree at a fixed point of their step (softmax is shift invariant, so f and z
give the same KL); at c > 0 they differ: on the check's 64 logits (K = 7, N(0, 9) entries,
lam0 = 1, alpha = 2) our lam and their step iterated to its fixed point differ by up to 0.139
at c = 1 and 0.013 at c = 0.1 (the issue measured 0.099 at c = 1 on other logits); a single
step from lam0, as their first epoch takes, is 0.15-0.17 from ours at any c. :func:`check`
tests both statements. Other differences from the authors' code: their
ALDR divides the scores by their mean absolute value (L1 norm / K; softplus first only when
asked) and their LDRLoss_V1 applies softplus and then divides by the mean score; we apply the
losses to raw logits. Their defaults: margin c = 0.1, lam0 in {0.1, 1, 10} (cross-validated),
alpha = 2 (README).

Top-k consistency (paper's claim): population minimisers of LDR losses keep the order of the
class probabilities; MAE's do not (the paper's negative result for symmetric losses). For
c = 0 the minimiser of sum_y p_y psi_lam(f, y) is f = lam log p + const (derived: this is
lam-scaled CE); :func:`check` compares it with a numerical minimiser, and checks the order
for c > 0 numerically and the failure for MAE (all non-top classes tied at the box bound).

Noisy-label benchmark (:func:`noisy_benchmark`): scikit-learn digits, linear softmax model,
uniform noise (label replaced by a uniformly drawn class with probability r) and
class-dependent pair-flip noise (y -> y+1 mod K with probability r), against CE, GCE, SCE, MAE
and focal losses.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from certkit.core.validation import check_int, check_positive, check_seed
from certkit.theory._common import (
    TheoryCheckError,
    TheoryRun,
    assert_close,
    check_mode,
    check_range,
    new_figure,
    to_png,
)

NAME = "ldr-loss"
TITLE = "LDR-KL losses: limits, top-k consistency, noisy labels (Zhu, Ying & Yang 2023)"
CITATION = "arXiv:2112.14869"


def _check_logits(f: torch.Tensor, y: torch.Tensor) -> None:
    if f.ndim != 2:
        raise ValueError(f"logits: expected shape (B, K), got {tuple(f.shape)}")
    if y.shape != (f.shape[0],) or y.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"y: expected an integer tensor of shape ({f.shape[0]},)")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= f.shape[1]):
        raise ValueError("y: labels must lie in [0, K)")


def _margins(f: torch.Tensor, y: torch.Tensor, c: float) -> torch.Tensor:
    fy = f.gather(1, y[:, None].long())
    off = torch.full_like(f, c)
    off.scatter_(1, y[:, None].long(), 0.0)
    return off + f - fy


def ldr_kl_loss(logits: torch.Tensor, y: torch.Tensor, lam: float | torch.Tensor = 1.0,
                c: float = 1.0, reduction: str = "mean") -> torch.Tensor:
    """LDR-KL loss. logits: (B, K) float; y: (B,) long; lam > 0 (scalar or (B,) tensor);
    c >= 0 the margin. reduction: 'mean' | 'sum' | 'none'."""
    _check_logits(logits, y)
    c = check_positive(c, "c", allow_zero=True)
    if isinstance(lam, torch.Tensor):
        if torch.any(lam <= 0):
            raise ValueError("lam: expected values > 0")
        lam_t = lam.reshape(-1, 1).to(logits.dtype)
    else:
        lam_t = torch.tensor(check_positive(lam, "lam"), dtype=logits.dtype)
    z = _margins(logits, y, c)
    k = logits.shape[1]
    out = (lam_t * (torch.logsumexp(z / lam_t, dim=1, keepdim=True) - math.log(k)))[:, 0]
    return _reduce(out, reduction)


def _reduce(v: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return v.mean()
    if reduction == "sum":
        return v.sum()
    if reduction == "none":
        return v
    raise ValueError(f"reduction: expected 'mean', 'sum' or 'none', got {reduction!r}")


def _aldr_objective(z: torch.Tensor, lam: torch.Tensor, lam0: float, alpha: float) -> torch.Tensor:
    """Phi(lam) = psi_lam(z) - alpha log K / (2 lam0) (lam - lam0)^2. z: (B, K); lam: (B, M) -> (B, M)."""
    k = z.shape[1]
    psi = lam * (torch.logsumexp(z[:, None, :] / lam[:, :, None], dim=2) - math.log(k))
    return psi - alpha * math.log(k) / (2.0 * lam0) * (lam - lam0) ** 2


def adaptive_lambda(logits: torch.Tensor, y: torch.Tensor, lam0: float = 1.0, alpha: float = 2.0,
                    c: float = 1.0, iters: int = 40) -> torch.Tensor:
    """Per-example lam_i = argmax_lam Phi(lam) on [max(lam0 (1 - 1/alpha), 1e-3 lam0), lam0]
    (a 257-point grid, then golden-section refinement around the best grid point). The
    stationarity condition is the authors' update lam = lam0 (1 - KL(softmax(z/lam), 1/K) /
    (alpha log K)) (derived: d psi_lam / d lam = -KL). Returns (B,), detached (envelope theorem)."""
    lam0 = check_positive(lam0, "lam0")
    alpha = check_positive(alpha, "alpha")
    z = _margins(logits.detach(), y, c)
    lo_end = max(lam0 * (1.0 - 1.0 / alpha), 1e-3 * lam0)
    grid = torch.linspace(lo_end, lam0, 257, dtype=z.dtype)
    vals = _aldr_objective(z, grid.expand(z.shape[0], -1), lam0, alpha)
    j = vals.argmax(dim=1)
    step = float(grid[1] - grid[0])
    lo = (grid[j] - step).clamp_min(lo_end)
    hi = (grid[j] + step).clamp_max(lam0)
    g = (math.sqrt(5.0) - 1.0) / 2.0
    for _ in range(iters):                               # golden section on [lo, hi]
        m1, m2 = hi - g * (hi - lo), lo + g * (hi - lo)
        f1 = _aldr_objective(z, m1[:, None], lam0, alpha)[:, 0]
        f2 = _aldr_objective(z, m2[:, None], lam0, alpha)[:, 0]
        left = f1 >= f2
        hi = torch.where(left, m2, hi)
        lo = torch.where(left, lo, m1)
    return (lo + hi) / 2


def authors_lambda_step(logits: torch.Tensor, lam: torch.Tensor, lam0: float = 1.0, alpha: float = 2.0,
                        smoothing: float = 1e-5) -> torch.Tensor:
    """One lam update of the authors' ALDRLoss_V1 (our re-implementation of the formula in their
    released code, not of ours): lam0 (1 - KL(q, 1/K) / (alpha log K)) with q = softmax(f / lam)
    of the scores *without* the margin, q <- (q + smoothing) / sum. logits (B, K) (already
    normalised as the caller wants), lam (B,) the previous values. Returns (B,), detached."""
    lam0 = check_positive(lam0, "lam0")
    alpha = check_positive(alpha, "alpha")
    f = logits.detach()
    k = f.shape[1]
    q = torch.softmax(f / lam.reshape(-1, 1).to(f.dtype), dim=1) + smoothing
    q = q / q.sum(dim=1, keepdim=True)
    kl = (q * torch.log(k * q)).sum(dim=1)
    return lam0 - lam0 * kl / (alpha * math.log(k))


def aldr_kl_loss(logits: torch.Tensor, y: torch.Tensor, lam0: float = 1.0, alpha: float = 2.0,
                 c: float = 1.0, reduction: str = "mean") -> torch.Tensor:
    """ALDR-KL: psi_{lam_i}(f, y) - alpha log K / (2 lam0) (lam_i - lam0)^2 with the per-example
    lam_i of :func:`adaptive_lambda`, i.e. max over lam of that objective. logits (B, K), y (B,)."""
    _check_logits(logits, y)
    lam = adaptive_lambda(logits, y, lam0, alpha, c)
    k = logits.shape[1]
    pen = alpha * math.log(k) / (2.0 * lam0) * (lam - lam0) ** 2
    return _reduce(ldr_kl_loss(logits, y, lam, c, reduction="none") - pen, reduction)


def cs_svm_loss(logits: torch.Tensor, y: torch.Tensor, c: float = 1.0) -> torch.Tensor:
    """Crammer-Singer: max(0, max_{k != y} c + f_k - f_y). Returns (B,)."""
    return _margins(logits, y, c).max(dim=1).values.clamp_min(0.0)


# --- baselines for the noisy-label benchmark (each returns the batch mean) -------------------


def gce_loss(f: torch.Tensor, y: torch.Tensor, q: float = 0.7) -> torch.Tensor:
    q = check_range(q, "q", 0.0, 1.0, low_open=True)
    return ((1 - torch.softmax(f, 1).gather(1, y[:, None])[:, 0] ** q) / q).mean()


def sce_loss(f: torch.Tensor, y: torch.Tensor, a: float = 0.1, b: float = 1.0) -> torch.Tensor:
    s_y = torch.softmax(f, 1).gather(1, y[:, None])[:, 0]
    return a * torch.nn.functional.cross_entropy(f, y) + b * (-math.log(1e-4)) * (1 - s_y).mean()


def mae_loss(f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return 2 * (1 - torch.softmax(f, 1).gather(1, y[:, None])[:, 0]).mean()


def focal_loss(f: torch.Tensor, y: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    logp = torch.log_softmax(f, 1).gather(1, y[:, None])[:, 0]
    return (-(1 - logp.exp()) ** gamma * logp).mean()


LOSSES: dict[str, Any] = {
    "CE": lambda f, y: torch.nn.functional.cross_entropy(f, y),
    "GCE": gce_loss, "SCE": sce_loss, "MAE": mae_loss, "focal": focal_loss,
    "LDR-KL": lambda f, y: ldr_kl_loss(f, y, 2.0, 1.0),
    "ALDR-KL": lambda f, y: aldr_kl_loss(f, y, 1.0, 2.0, 1.0),
}


# --- closed forms and population minimisers ---------------------------------------------------


def closed_form(p: npt.ArrayLike, lam: float = 1.0) -> npt.NDArray[np.float64]:
    """Population minimiser of E_{y~p} psi_lam(f, y) for c = 0: f = lam log p (centred). p: (K,)."""
    lam = check_positive(lam, "lam")
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 1 or np.any(p <= 0) or abs(p.sum() - 1) > 1e-9:
        raise ValueError("p: expected a strictly positive probability vector (K,)")
    f = lam * np.log(p)
    return f - f.mean()


def population_minimiser(p: npt.ArrayLike, loss: str = "ldr", lam: float = 1.0, c: float = 1.0,
                         box: float = 50.0) -> npt.NDArray[np.float64]:
    """Numerical minimiser over f in [-box, box]^K of sum_y p_y loss(f, y) (L-BFGS-B, float64).
    loss: 'ldr' (LDR-KL with lam, c), 'ce' or 'mae'. Returns f (K,) centred."""
    from scipy.optimize import minimize

    p = np.asarray(p, dtype=np.float64)
    k = p.size
    ys = torch.arange(k)
    pt = torch.as_tensor(p)

    def fun(v: npt.NDArray[np.float64]) -> tuple[float, npt.NDArray[np.float64]]:
        f = torch.as_tensor(v).requires_grad_(True)
        fb = f[None, :].expand(k, k)
        if loss == "ldr":
            per = ldr_kl_loss(fb, ys, lam, c, reduction="none")
        elif loss == "ce":
            per = torch.nn.functional.cross_entropy(fb, ys, reduction="none")
        elif loss == "mae":
            per = 1 - torch.softmax(fb, 1).diagonal()
        else:
            raise ValueError(f"loss: expected 'ldr', 'ce' or 'mae', got {loss!r}")
        val = (pt * per).sum()
        (g,) = torch.autograd.grad(val, f)
        return float(val.detach()), g.numpy().copy()

    res = minimize(fun, np.zeros(k), jac=True, method="L-BFGS-B", bounds=[(-box, box)] * k,
                   options={"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-10})
    return res.x - res.x.mean()


def keeps_order(p: npt.NDArray[np.float64], f: npt.NDArray[np.float64], tol: float = 1e-6) -> bool:
    """True if p_a > p_b implies f_a > f_b + tol for all pairs (top-k consistent for every k)."""
    for a in range(p.size):
        for b in range(p.size):
            if p[a] > p[b] + 1e-9 and not f[a] > f[b] + tol:
                return False
    return True


def simulate(k: int = 5, n: int = 20, seed: int = 0) -> dict[str, Any]:
    """Population minimisers for n random p ~ Dirichlet(1_K): fraction with class order kept,
    per loss, and max |closed form - numerical| for LDR-KL with c = 0."""
    rng = np.random.default_rng(check_seed(seed))
    k, n = check_int(k, "k", minimum=2), check_int(n, "n", minimum=1)
    kept = {"LDR-KL (lam=1, c=1)": 0, "CE": 0, "MAE": 0}
    err = 0.0
    for _ in range(n):
        p = rng.dirichlet(np.ones(k))
        f0 = population_minimiser(p, "ldr", lam=0.7, c=0.0)
        err = max(err, float(np.max(np.abs(f0 - closed_form(p, 0.7)))))
        kept["LDR-KL (lam=1, c=1)"] += keeps_order(p, population_minimiser(p, "ldr", 1.0, 1.0))
        kept["CE"] += keeps_order(p, population_minimiser(p, "ce"))
        kept["MAE"] += keeps_order(p, population_minimiser(p, "mae", box=10.0))
    return {"order_kept": {key: v / n for key, v in kept.items()}, "c0_max_abs_err": err}


# --- noisy labels -------------------------------------------------------------------------------


def corrupt(y: npt.NDArray[np.int64], kind: str, rate: float, k: int, seed: int) -> npt.NDArray[np.int64]:
    """uniform: with prob. rate replace by a uniform class; pair: y -> y+1 mod k with prob. rate."""
    rate = check_range(rate, "rate", 0.0, 1.0)
    rng = np.random.default_rng(seed)
    flip = rng.random(y.size) < rate
    if kind == "uniform":
        return np.where(flip, rng.integers(0, k, y.size), y)
    if kind == "pair":
        return np.where(flip, (y + 1) % k, y)
    raise ValueError(f"kind: expected 'uniform' or 'pair', got {kind!r}")


def noisy_benchmark(settings: Any = (("uniform", 0.6), ("pair", 0.3)), losses: Any = None,
                    seeds: Any = (0,), steps: int = 300, hidden: int = 0) -> list[dict[str, Any]]:
    """Test accuracy on clean digits labels after training on noisy labels. Linear softmax
    model (hidden = 0) or a one-hidden-layer MLP; full-batch Adam, lr 0.05, weight decay 1e-4."""
    from sklearn.datasets import load_digits

    ds = load_digits()
    x = (ds.data / 16.0).astype(np.float32)
    losses = list(LOSSES) if losses is None else list(losses)
    rows = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                             # tiny problem: threads only contend
    try:
        _bench(settings, losses, seeds, steps, hidden, x, ds.target, rows)
    finally:
        torch.set_num_threads(threads)
    return rows


def _bench(settings: Any, losses: list[str], seeds: Any, steps: int, hidden: int,
           x: npt.NDArray[np.float32], target: npt.NDArray[np.int64], rows: list[dict[str, Any]]) -> None:
    from sklearn.model_selection import train_test_split

    for kind, rate in settings:
        for seed in seeds:
            xtr, xte, ytr, yte = train_test_split(x, target, test_size=0.3, random_state=seed,
                                                  stratify=target)
            ynoisy = corrupt(ytr, kind, rate, 10, seed + 1000)
            xt, yt = torch.as_tensor(xtr), torch.as_tensor(ynoisy, dtype=torch.long)
            for name in losses:
                torch.manual_seed(seed)
                model: torch.nn.Module = torch.nn.Linear(64, 10) if not hidden else torch.nn.Sequential(
                    torch.nn.Linear(64, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 10))
                opt = torch.optim.Adam(model.parameters(), lr=0.05, weight_decay=1e-4)
                for _ in range(steps):
                    opt.zero_grad()
                    LOSSES[name](model(xt), yt).backward()
                    opt.step()
                with torch.no_grad():
                    acc = float((model(torch.as_tensor(xte)).argmax(1).numpy() == yte).mean())
                rows.append({"noise": f"{kind} {rate}", "seed": seed, "loss": name, "test_acc": acc})


def check(mode: str = "quick") -> dict[str, Any]:
    """LDR-KL vs its variational definition (numerical max over the simplex, 1e-6), the
    Crammer-Singer reference written out, limits (CS-SVM at lam -> 0 within lam log K,
    CE - log K at lam = 1, c = 0, to 1e-10),
    the c = 0 population minimiser vs lam log p (1e-4), class order kept by LDR-KL and CE for
    every sampled p but not by MAE, and the ALDR-KL value vs a brute-force maximum over a lam
    grid of psi_lam - alpha log K / (2 lam0) (lam - lam0)^2; lam_i against its stationarity
    condition and against the authors' update (equal at c = 0, not at c = 1)."""
    mode = check_mode(mode)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _check(mode)
    finally:
        torch.set_num_threads(threads)


def variational_psi(f: npt.ArrayLike, y: int, lam: float, c: float) -> float:
    """The LDR-KL loss from its definition, max over p in the simplex of
    sum_k p_k (c 1[k != y] + f_k - f_y) - lam KL(p, 1/K), by SLSQP on the simplex (the
    reference for :func:`ldr_kl_loss`, which uses the log-sum-exp closed form). f: (K,)."""
    from scipy.optimize import minimize

    f = np.asarray(f, dtype=np.float64)
    k = f.size
    z = np.array([(c if j != y else 0.0) + f[j] - f[y] for j in range(k)])

    def neg(p: npt.NDArray[np.float64]) -> tuple[float, npt.NDArray[np.float64]]:
        q = np.maximum(p, 1e-300)
        val = p @ z - lam * float(np.sum(p * np.log(k * q)))
        return -val, -(z - lam * (np.log(k * q) + 1.0))

    best = -np.inf
    for start in (np.full(k, 1.0 / k), np.eye(k)[int(np.argmax(z))] * 0.9 + 0.1 / k):
        res = minimize(neg, start, jac=True, method="SLSQP", bounds=[(0.0, 1.0)] * k,
                       constraints=[{"type": "eq", "fun": lambda p: p.sum() - 1.0, "jac": lambda p: np.ones(k)}],
                       options={"ftol": 1e-14, "maxiter": 500})
        best = max(best, -float(res.fun))
    return best


def _check(mode: str) -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    f = torch.randn(64, 7, generator=g, dtype=torch.float64) * 3
    y = torch.randint(0, 7, (64,), generator=g)
    out: dict[str, Any] = {}
    worst = 0.0
    for lam_v, c_v in ((0.5, 1.0), (2.0, 0.3), (1.0, 0.0)):
        got = ldr_kl_loss(f[:12], y[:12], lam_v, c_v, reduction="none")
        for b in range(12):
            ref = variational_psi(f[b].numpy(), int(y[b]), lam_v, c_v)
            assert_close(f"LDR-KL vs its definition (lam={lam_v}, c={c_v}, example {b})", float(got[b]), ref,
                         1e-6 * max(1.0, abs(ref)))
            worst = max(worst, abs(float(got[b]) - ref))
    out["definition_max_err"] = worst
    lam = 1e-3
    fn, yn = f.numpy(), y.numpy()
    cs_ref = torch.as_tensor([max(0.0, max(1.0 + fn[i, k] - fn[i, yn[i]] for k in range(7) if k != yn[i]))
                              for i in range(len(yn))])
    if float((cs_svm_loss(f, y) - cs_ref).abs().max()) > 1e-12:
        raise TheoryCheckError("cs_svm_loss differs from max(0, max_{k != y} c + f_k - f_y)")
    gap = (cs_ref - ldr_kl_loss(f, y, lam, 1.0, reduction="none"))
    if not (gap.min() >= -1e-12 and gap.max() <= lam * math.log(7) + 1e-12):
        raise TheoryCheckError(f"lam->0 limit: CS-SVM gap outside [0, lam log K]: {gap.min()}, {gap.max()}")
    out["cs_svm_max_gap"] = float(gap.max())
    ce = torch.nn.functional.cross_entropy(f, y, reduction="none") - math.log(7)
    d = float((ce - ldr_kl_loss(f, y, 1.0, 0.0, reduction="none")).abs().max())
    if d > 1e-10:
        raise TheoryCheckError(f"lam=1, c=0: LDR-KL differs from CE - log K by {d}")
    out["ce_limit_max_err"] = d
    sim = simulate(n=4 if mode == "quick" else 100)
    if sim["c0_max_abs_err"] > 1e-4:
        raise TheoryCheckError(f"c=0 minimiser differs from lam log p by {sim['c0_max_abs_err']:.3g}")
    if sim["order_kept"]["LDR-KL (lam=1, c=1)"] < 1 or sim["order_kept"]["CE"] < 1:
        raise TheoryCheckError(f"top-k consistency violated: {sim['order_kept']}")
    if sim["order_kept"]["MAE"] > 0:
        raise TheoryCheckError(f"MAE minimiser unexpectedly keeps the order: {sim['order_kept']}")
    out.update(sim)
    lam0, alpha = 2.0, 2.0
    lam_i = adaptive_lambda(f[:8], y[:8], lam0, alpha)
    grid = torch.linspace(lam0 * (1 - 1 / alpha), lam0, 20001, dtype=torch.float64)[1:]
    pen = alpha * math.log(7) / (2 * lam0) * (grid - lam0) ** 2
    for b in range(8):
        fb, yb = f[b:b + 1].expand(grid.numel(), -1), y[b:b + 1].expand(grid.numel())
        best = float((ldr_kl_loss(fb, yb, grid, 1.0, reduction="none") - pen).max())
        got = float(aldr_kl_loss(f[b:b + 1], y[b:b + 1], lam0, alpha, 1.0))
        assert_close(f"ALDR-KL objective, example {b}", best, got, 1e-6 * max(1.0, abs(best)))
    out["aldr_lambda"] = lam_i.tolist()
    out.update(_check_aldr_vs_authors(f, y))
    return out


def _check_aldr_vs_authors(f: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Our lam_i against the stationarity condition with the margin (interior optima), and
    against the authors' update iterated to its fixed point (no smoothing): equal at c = 0,
    different at c = 1 (documented in the module docstring)."""
    lam0, alpha, k = 1.0, 2.0, f.shape[1]
    out = {}
    for c in (0.0, 1.0):
        ours = adaptive_lambda(f, y, lam0, alpha, c)
        q = torch.softmax(_margins(f, y, c) / ours[:, None], dim=1)
        kl = (q * torch.log(k * q.clamp_min(1e-300))).sum(1)
        interior = (ours > lam0 * (1 - 1 / alpha) + 1e-6) & (ours < lam0 - 1e-6)
        stat = float((ours - lam0 * (1 - kl / (alpha * math.log(k))))[interior].abs().max())
        if stat > 1e-6:
            raise TheoryCheckError(f"ALDR-KL (c={c}): lam_i violates its stationarity condition by {stat:.3g}")
        theirs = torch.full_like(ours, lam0)
        for _ in range(200):
            theirs = authors_lambda_step(f, theirs, lam0, alpha, smoothing=0.0)
        diff = float((ours - theirs).abs().max())
        if c == 0.0 and diff > 1e-6:
            raise TheoryCheckError(f"ALDR-KL (c=0): lam_i differs from the authors' fixed point by {diff:.3g}")
        if c > 0.0 and diff < 1e-2:
            raise TheoryCheckError(f"ALDR-KL (c={c}): lam_i unexpectedly equals the authors' (margin-free) update")
        out[f"aldr_stationarity_err_c{c:g}"] = stat
        out[f"aldr_vs_authors_fixed_point_c{c:g}"] = diff
    return out


def plot(sim_rows: list[dict[str, Any]], bench: list[dict[str, Any]]) -> list[Any]:
    fig, axes = new_figure(2, 4.0, 3.0)
    lam = np.geomspace(1e-3, 3, 50)
    g = torch.Generator().manual_seed(3)
    f = torch.randn(256, 10, generator=g, dtype=torch.float64) * 2
    y = torch.randint(0, 10, (256,), generator=g)
    gaps = [float((cs_svm_loss(f, y) - ldr_kl_loss(f, y, lv, 1.0, reduction="none")).mean()) for lv in lam]
    axes[0].loglog(lam, gaps, "-", label="mean CS-SVM - LDR-KL")
    axes[0].loglog(lam, lam * math.log(10), "k--", label="lam log K (bound)")
    axes[0].set_xlabel("lam")
    axes[0].legend(fontsize=7)
    axes[0].set_title("lam -> 0: LDR-KL -> CS-SVM", fontsize=9)
    noises = sorted({r["noise"] for r in bench})
    names = list(dict.fromkeys(r["loss"] for r in bench))
    width = 0.8 / len(names)
    for q, name in enumerate(names):
        vals = [np.mean([r["test_acc"] for r in bench if r["noise"] == nz and r["loss"] == name]) for nz in noises]
        axes[1].bar(np.arange(len(noises)) + q * width, vals, width, label=name)
    axes[1].set_xticks(np.arange(len(noises)) + 0.4 - width / 2, noises, fontsize=7)
    axes[1].set_ylabel("clean test accuracy")
    axes[1].legend(fontsize=6, ncol=2)
    axes[1].set_title("digits, noisy training labels", fontsize=9)
    return [to_png(fig, "theory_ldr_loss", "LDR-KL limit and the noisy-label benchmark.")]


ALL_SETTINGS = (("clean", 0.0), ("uniform", 0.3), ("uniform", 0.6), ("uniform", 0.9),
                ("pair", 0.1), ("pair", 0.3), ("pair", 0.5))


def run(paper_mode: bool = False, seed: int = 0) -> TheoryRun:
    mode = "paper" if paper_mode else "quick"
    res = check(mode)
    if paper_mode:
        settings = [(k if k != "clean" else "uniform", r) for k, r in ALL_SETTINGS]
        bench = noisy_benchmark(settings, seeds=(0, 1, 2), steps=600, hidden=128)
    else:
        bench = noisy_benchmark((("uniform", 0.6), ("pair", 0.3)), seeds=(seed,), steps=150)
    return TheoryRun(NAME, TITLE, CITATION, bench, plot([], bench),
                     summary={"cs_svm_max_gap(lam=1e-3)": res["cs_svm_max_gap"],
                              "ce_limit_max_err": res["ce_limit_max_err"],
                              "order_kept": res["order_kept"], "c0_minimiser_err": res["c0_max_abs_err"]},
                     paper_values={"note": "the paper benchmarks on 7 datasets (not digits) with tuned "
                                   "hyperparameters; our digits numbers are not comparable to its tables"},
                     mode=mode)
