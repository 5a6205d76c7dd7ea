"""Adversarially robust conformal prediction through randomized smoothing: RSCP, RSCP+
and the PTT score transform, plus a PGD attack on the smoothed score.

**RSCP** (Gendler, Weng, Daniel & Romano, "Adversarially Robust Conformal Prediction",
ICLR 2022). For a score s(x, y) ∈ [0, 1] the smoothed score S̃(x, y) = E_ε s(x + ε, y),
ε ~ N(0, σ²I), has Φ⁻¹(S̃(·, y)) 1/σ-Lipschitz (Salman et al. 2019, arXiv 1906.04584,
Lemma 2), so for ‖δ‖₂ ≤ ε: Φ⁻¹(S̃(x, y)) ≥ Φ⁻¹(S̃(x + δ, y)) − ε/σ. Calibrating τ on clean
smoothed scores and including y when Φ⁻¹(S̃(x̃, y)) − ε/σ ≤ Φ⁻¹(τ) at the attacked input
x̃ keeps coverage ≥ 1 − α — *if S̃ were known exactly*. RSCP plugs in Monte-Carlo
estimates, which voids the guarantee.

**RSCP+** (Yan, Zhang & Weng, "Provably Robust Conformal Prediction with Improved
Efficiency", ICLR 2024, arXiv 2404.19651) makes it provable. With N Monte-Carlo samples per
input and β (default 0.001):
- calibrate on the estimates at level α − 2β and add the Hoeffding margin
  b_H = √(ln(1/β) / (2N)) to the threshold: τ⁺ = Q_{1−α+2β}(Ŝ_cal) + b_H;
- at test time use the empirical-Bernstein lower bound (Maurer & Pontil 2009, arXiv
  0907.3740, Thm 4) Ŝ − √(2V̂ ln(2/β)/N) − 7 ln(2/β)/(3(N−1)) of the test score;
so P(y ∈ C(x̃)) ≥ 1 − α for every ‖x̃ − x‖ ≤ ε. (The split of the failure budget,
α − 2β for the quantile, β per Monte-Carlo bound, is recalled from the paper, not
re-derived here.)

**PTT** (post-training transformation, same paper): before smoothing, map the base score
through its rank among hold-out scores (the empirical CDF Q̂) and a steep sigmoid,
s ↦ sigmoid(T(Q̂(s) − b)), T = 400, b = 0.9. The map is fixed before calibration, so any
guarantee above holds unchanged; it sharpens the smoothed score so sets get smaller.

**Degenerate sets.** The margins of RSCP+ shrink as 1/√N: with too few Monte-Carlo samples
τ⁺ reaches 1 or the test lower bounds fall below it for every class, and every set holds
all K classes (valid, useless). :meth:`RSCP.predict_set` and the experiments then warn
(:class:`DegenerateSetsWarning`) and name the n_mc that would give informative sets.

Noise for input i, sample j is keyed by (seed, i, j) through the core's Philox sampler,
as in :mod:`certkit.vision.smoothing.smooth`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from certkit.core import gaussian_rows, stats
from certkit.core.validation import check_alpha, check_int, check_positive, check_sigma
from certkit.vision.conformal.scores import (
    canonical_score,
    class_scores,
    conformal_quantile,
    coverage_and_size,
)

FloatArray = npt.NDArray[np.float64]

__all__ = [
    "RSCP",
    "DegenerateSetsWarning",
    "PTTransform",
    "RSCPPlus",
    "empirical_bernstein_margin",
    "hoeffding_margin",
    "pgd_smoothed_score",
    "smoothed_scores",
]


class DegenerateSetsWarning(UserWarning):
    """RSCP+ / PTT sets hold every class on most inputs: too few Monte-Carlo samples."""


def hoeffding_margin(n_mc: int, beta: float) -> float:
    """b_H = √(ln(1/β) / (2N)): P(mean of N [0,1] draws < its expectation − b_H) ≤ β."""
    n_mc = check_int(n_mc, "n_mc", minimum=1)
    return math.sqrt(math.log(1.0 / check_alpha(beta, "beta")) / (2.0 * n_mc))


def empirical_bernstein_margin(var: Any, n_mc: int, beta: float) -> FloatArray:
    """Maurer-Pontil empirical-Bernstein margin for [0,1] samples with sample variance
    ``var`` (unbiased): √(2 V̂ ln(2/β)/N) + 7 ln(2/β) / (3(N − 1))."""
    n_mc = check_int(n_mc, "n_mc", minimum=2)
    lg = math.log(2.0 / check_alpha(beta, "beta"))
    v = np.asarray(var, dtype=np.float64)
    return np.sqrt(2.0 * v * lg / n_mc) + 7.0 * lg / (3.0 * (n_mc - 1))


@dataclass
class PTTransform:
    """s ↦ sigmoid(T(Q̂(s) − b)), Q̂ the empirical CDF of ``holdout`` scores (n,)."""

    holdout: FloatArray
    temperature: float = 400.0
    b: float = 0.9

    def __post_init__(self) -> None:
        h = np.sort(np.asarray(self.holdout, dtype=np.float64).reshape(-1))
        if h.size == 0 or not np.all(np.isfinite(h)):
            raise ValueError("holdout: expected a non-empty array of finite scores")
        self.holdout = h
        check_positive(self.temperature, "temperature")

    def __call__(self, s: FloatArray) -> FloatArray:
        q = np.searchsorted(self.holdout, s, side="right") / self.holdout.size
        return 1.0 / (1.0 + np.exp(-self.temperature * (q - self.b)))

    def torch(self, s: torch.Tensor) -> torch.Tensor:
        """A differentiable surrogate (the CDF linearly interpolated) for attacks."""
        h = torch.as_tensor(self.holdout, dtype=s.dtype, device=s.device)
        grid = torch.linspace(0, 1, h.numel(), dtype=s.dtype, device=s.device)
        idx = torch.searchsorted(h, s.detach().contiguous()).clamp(1, h.numel() - 1)
        lo, hi = h[idx - 1], h[idx]
        w = ((s - lo) / (hi - lo).clamp_min(1e-12)).clamp(0, 1)
        q = grid[idx - 1] + w * (grid[idx] - grid[idx - 1])
        return torch.sigmoid(self.temperature * (q - self.b))


def _bounded_scores(probs: FloatArray, score: str, u: FloatArray | None, k: int) -> FloatArray:
    s = class_scores(probs, score, u=u)
    if score == "raps":  # bring RAPS into [0, 1] for the Hoeffding / Bernstein bounds
        s = s / (1.0 + 0.01 * max(0, k - 5))
    return np.clip(s, 0.0, 1.0)


@torch.no_grad()
def smoothed_scores(model: nn.Module, x: torch.Tensor, sigma: float, n_mc: int, *, score: str = "thr",
                    seed: int = 0, indices: Any = None, transform: PTTransform | None = None,
                    batch_size: int = 4096) -> tuple[FloatArray, FloatArray]:
    """Monte-Carlo smoothed scores of every class: (mean, unbiased variance), each (N, K).

    x: (N, C, H, W). Sample j of input i uses noise (seed, indices[i], j). APS/RAPS draw
    their U from the same counter-based stream family (stream offset 2**40)."""
    sigma = check_sigma(sigma)
    n_mc = check_int(n_mc, "n_mc", minimum=2)
    model.eval()
    dev = next((p.device for p in model.parameters()), torch.device("cpu"))
    n = x.shape[0]
    ids = np.arange(n, dtype=np.int64) if indices is None else np.asarray(indices, dtype=np.int64)
    shape = tuple(x.shape[1:])
    m = int(np.prod(shape))
    per = max(1, batch_size // n_mc)
    means, vars_ = [], []
    for a in range(0, n, per):
        g = np.arange(a, min(n, a + per))
        rows_g = np.repeat(g, n_mc)
        samp = np.tile(np.arange(n_mc, dtype=np.int64), len(g))
        noise = gaussian_rows((len(rows_g), *shape), sigma, seed, ids[rows_g], samp * m)
        xb = x[torch.from_numpy(rows_g)].to(dev) + torch.from_numpy(noise).to(dev, x.dtype)
        probs = torch.softmax(model(xb).double(), 1).cpu().numpy()
        u = None
        if score != "thr":
            from certkit.core import uniform_noise

            u = np.concatenate([uniform_noise(n_mc, 0.0, 1.0, seed, dtype=np.float64,
                                              stream=int(ids[i]) + 2**40) for i in g])
        s = _bounded_scores(probs, score, u, probs.shape[1])
        if transform is not None:
            s = transform(s)
        s = s.reshape(len(g), n_mc, -1)
        means.append(s.mean(1))
        vars_.append(s.var(1, ddof=1))
    return np.concatenate(means), np.concatenate(vars_)


def _torch_true_score(probs: torch.Tensor, y: torch.Tensor, score: str) -> torch.Tensor:
    py = probs.gather(1, y[:, None])
    if score == "thr":
        return 1.0 - py[:, 0]
    above = (probs * (probs > py).to(probs.dtype)).sum(1)
    return above + 0.5 * py[:, 0]


def pgd_smoothed_score(model: nn.Module, x: torch.Tensor, y: torch.Tensor, sigma: float, eps: float, *,
                       steps: int = 20, n_mc: int = 16, score: str = "thr",
                       transform: PTTransform | None = None, seed: int = 0) -> torch.Tensor:
    """ℓ2 PGD that *raises* the Monte-Carlo smoothed score of the true label (to push it out
    of the set): x (N, C, H, W), y (N,) → x̃ with ‖x̃ − x‖₂ ≤ eps per input."""
    sigma = check_sigma(sigma)
    eps = check_positive(eps, "eps", allow_zero=True)
    if eps == 0:
        return x.clone()
    g = torch.Generator().manual_seed(seed)
    delta = torch.zeros_like(x)
    step = 2.5 * eps / steps
    model.eval()
    for _ in range(steps):
        delta.requires_grad_(True)
        noise = sigma * torch.randn((n_mc, *x.shape), generator=g, dtype=x.dtype)
        xb = (x + delta).unsqueeze(0) + noise
        probs = torch.softmax(model(xb.reshape(-1, *x.shape[1:])), 1)
        s = _torch_true_score(probs, y.repeat(n_mc), score)
        if transform is not None:
            s = transform.torch(s)
        loss = s.reshape(n_mc, -1).mean(0).sum()
        (grad,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            gn = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (x.dim() - 1))
            delta = delta + step * grad / gn
            dn = delta.flatten(1).norm(dim=1).view(-1, *[1] * (x.dim() - 1))
            delta = delta * torch.clamp(eps / dn.clamp_min(1e-12), max=1.0)
    return (x + delta).detach()


class RSCP:
    """Randomized-smoothed conformal prediction (Gendler et al. 2022; see module docs).

    model: (B, C, H, W) → (B, K) logits. sigma: smoothing noise; eps: ℓ2 budget the sets
    must withstand (0 gives smoothed split conformal). n_mc: Monte-Carlo samples per input.
    """

    plus = False

    def __init__(self, model: nn.Module, sigma: float, eps: float, alpha: float = 0.1, *,
                 score: str = "thr", n_mc: int = 256, beta: float = 0.001, seed: int = 0,
                 transform: PTTransform | None = None) -> None:
        self.model = model
        self.sigma = check_sigma(sigma)
        self.eps = check_positive(eps, "eps", allow_zero=True)
        self.alpha = check_alpha(alpha)
        self.beta = check_alpha(beta, "beta")
        if self.plus and not 2 * self.beta < self.alpha:
            raise ValueError(f"beta: expected 2·beta < alpha, got beta={beta}, alpha={alpha}")
        self.score, self.n_mc, self.seed, self.transform = (canonical_score(score), check_int(n_mc, "n_mc", minimum=2),
                                                            seed, transform)
        self.threshold: float | None = None
        self._cal_true: FloatArray | None = None

    def smoothed(self, x: torch.Tensor, indices: Any = None, seed_offset: int = 0) -> tuple[FloatArray, FloatArray]:
        return smoothed_scores(self.model, x, self.sigma, self.n_mc, score=self.score,
                               seed=self.seed + seed_offset, indices=indices, transform=self.transform)

    # probability-free API on precomputed smoothed scores (used by experiments)
    def threshold_from_scores(self, cal_true: FloatArray, n_mc: int | None = None) -> float:
        """τ from calibration smoothed true-label scores (n,) (``n_mc``: the Monte-Carlo
        sample size the margins assume, default this method's)."""
        if self.plus:
            tau = conformal_quantile(cal_true, self.alpha - 2 * self.beta)
            return tau + hoeffding_margin(n_mc or self.n_mc, self.beta)
        return conformal_quantile(cal_true, self.alpha)

    def sets_from_scores(self, mean: FloatArray, var: FloatArray, threshold: float,
                         n_mc: int | None = None) -> npt.NDArray[np.bool_]:
        """(N, K) sets from test smoothed scores and a threshold."""
        s = mean - empirical_bernstein_margin(var, n_mc or self.n_mc, self.beta) if self.plus else mean
        if threshold >= 1.0:
            return np.ones_like(mean, dtype=bool)
        lhs = stats.norm_ppf(np.clip(s, 1e-12, 1 - 1e-12)) - self.eps / self.sigma
        rhs = float(np.asarray(stats.norm_ppf(np.array([min(max(threshold, 1e-12), 1 - 1e-12)]))).reshape(-1)[0])
        return np.asarray(lhs <= rhs)

    def needed_n_mc(self, cal_true: FloatArray, mean: FloatArray, var: FloatArray, *,
                    max_full: float = 0.5, limit: int = 2**22) -> int | None:
        """The smallest n_mc·2^k (≤ ``limit``) at which at most ``max_full`` of the sets of
        these test scores would hold every class, with the margins of RSCP+ recomputed for
        that sample size and the same estimated means and variances (a plug-in estimate);
        None when even ``limit`` does not do it."""
        n = self.n_mc
        while n <= limit:
            sets = self.sets_from_scores(mean, var, self.threshold_from_scores(cal_true, n), n)
            if float(sets.all(1).mean()) <= max_full:
                return n
            n *= 2
        return None

    def warn_if_degenerate(self, sets: npt.NDArray[np.bool_], cal_true: FloatArray, mean: FloatArray,
                           var: FloatArray, *, stacklevel: int = 2) -> float:
        """Warn (:class:`DegenerateSetsWarning`) when more than half of the sets hold every
        class, naming the Monte-Carlo sample size that would be needed. Returns the
        fraction of all-class sets."""
        full = float(np.asarray(sets).all(1).mean()) if len(sets) else 0.0
        if self.plus and full > 0.5:
            need = self.needed_n_mc(cal_true, mean, var)
            what = (f"about n_mc = {need:,} would give informative sets (plug-in estimate from these scores)"
                    if need is not None else "no n_mc up to 4 million would help (the smoothed scores "
                    "themselves do not separate the classes: lower σ or ε)")
            warnings.warn(f"{type(self).__name__}: {full:.0%} of the prediction sets hold all {sets.shape[1]} "
                          f"classes with n_mc = {self.n_mc}; {what}", DegenerateSetsWarning,
                          stacklevel=stacklevel + 1)
        return full

    def calibrate(self, x: torch.Tensor, y: Any, indices: Any = None, *, alpha: float | None = None) -> RSCP:
        """τ from clean smoothed scores of a calibration set; ``alpha`` (TorchCP: at
        calibration time) replaces the constructor's."""
        if alpha is not None:
            self.alpha = check_alpha(alpha)
            if self.plus and not 2 * self.beta < self.alpha:
                raise ValueError(f"alpha: expected alpha > 2·beta = {2 * self.beta}, got {alpha}")
        mean, _ = self.smoothed(x, indices)
        yy = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y).astype(np.int64)
        self._cal_true = mean[np.arange(len(yy)), yy]
        self.threshold = self.threshold_from_scores(self._cal_true)
        return self

    def predict_set(self, x: torch.Tensor, indices: Any = None) -> npt.NDArray[np.bool_]:
        """(N, K) sets at inputs x (attacked or not); warns when they degenerate."""
        if self.threshold is None or self._cal_true is None:
            raise ValueError("calibrate() must be called before predict_set()")
        mean, var = self.smoothed(x, indices, seed_offset=1)
        sets = self.sets_from_scores(mean, var, self.threshold)
        self.warn_if_degenerate(sets, self._cal_true, mean, var, stacklevel=2)
        return sets

    def evaluate(self, x: torch.Tensor, y: Any, indices: Any = None) -> dict[str, float]:
        return coverage_and_size(self.predict_set(x, indices), y)


class RSCPPlus(RSCP):
    """RSCP+ (Yan et al. 2024): provable coverage with Monte-Carlo estimates (module docs)."""

    plus = True
