"""ℓ2 coordinate smoothing for point clouds (Cohen, Rosenfeld, Kolter 2019, arXiv:1902.02918).

The smoothed classifier ``g(x) = argmax_c P(f(x + e) = c)``, ``e ~ N(0, sigma^2 I)`` on all
N x 3 coordinates, is robust within the ℓ2 ball (in R^{N x 3}) of radius
``sigma * Phi^{-1}(p_A)`` where ``p_A`` is a Clopper-Pearson lower bound on the top-class
probability: CERTIFY with ``n0`` selection draws and ``n`` estimation draws, abstaining
when ``p_A <= 1/2``. The guarantee holds with probability ``1 - alpha`` over the noise.

Noise comes from the core's counter-based sampler, keyed by (seed, input index, draw
index), so any split of the work gives identical certificates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from certkit.core import gaussian_rows
from certkit.core.stats import certified_radius, clopper_pearson
from certkit.core.validation import check_alpha, check_int, check_seed, check_sigma
from certkit.pointcloud._votes import count_votes

ABSTAIN = -1


@dataclass(frozen=True)
class Certificate:
    """One input's certificate: predicted class (ABSTAIN = -1), ℓ2 radius, p_A lower bound, counts."""

    idx: int
    label: int
    radius: float
    p_lower: float
    count: int
    n: int


@torch.no_grad()
def sample_counts(
    model: torch.nn.Module,
    x: Any,
    sigma: float,
    n: int,
    num_classes: int,
    *,
    seed: int = 0,
    index: int = 0,
    first: int = 0,
    batch_size: int = 200,
) -> np.ndarray:
    """Class counts (C,) of ``model`` on ``n`` noisy copies of cloud ``x`` (N, 3).

    Draw ``j`` uses elements ``[(first + j) * N * 3, ...)`` of stream ``index``: disjoint
    draws for disjoint ``first`` ranges.
    """
    xa = np.asarray(x, dtype=np.float32)
    if xa.ndim != 2 or xa.shape[1] != 3:
        raise ValueError(f"x: expected shape (N, 3), got {xa.shape}")
    if not np.isfinite(xa).all():
        raise ValueError("x: contains NaN or inf")
    M = xa.size
    def draw(start: int, b: int) -> np.ndarray:
        offs = (first + start + np.arange(b, dtype=np.uint64)) * np.uint64(M)
        return gaussian_rows((b, *xa.shape), sigma, seed, np.full(b, index, np.uint64), offs) + xa[None]

    return count_votes(model, draw, n, batch_size, num_classes)


def certify(
    model: torch.nn.Module,
    x: Any,
    sigma: float,
    num_classes: int,
    *,
    n0: int = 64,
    n: int = 1000,
    alpha: float = 0.001,
    seed: int = 0,
    index: int = 0,
    batch_size: int = 200,
) -> Certificate:
    """CERTIFY (Cohen et al., Alg. 1) for one cloud x (N, 3)."""
    sigma = check_sigma(sigma)
    alpha = check_alpha(alpha)
    n0 = check_int(n0, "n0", minimum=1)
    n = check_int(n, "n", minimum=1)
    seed = check_seed(seed)
    c0 = sample_counts(
        model, x, sigma, n0, num_classes, seed=seed, index=index, first=0, batch_size=batch_size
    )
    top = int(np.argmax(c0))
    c = sample_counts(
        model, x, sigma, n, num_classes, seed=seed, index=index, first=n0, batch_size=batch_size
    )
    k = int(c[top])
    pl = float(clopper_pearson(k, n, alpha, side="lower"))
    if pl <= 0.5:
        return Certificate(index, ABSTAIN, 0.0, pl, k, n)
    return Certificate(index, top, float(certified_radius(pl, sigma)), pl, k, n)


__all__ = ["ABSTAIN", "Certificate", "certify", "sample_counts"]
