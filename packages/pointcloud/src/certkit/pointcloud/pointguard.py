"""PointGuard: certified robustness by random sub-sampling (Liu, Jia, Gong, CVPR 2021,
arXiv:2011.11834).

The smoothed classifier votes over random k-subsets (without replacement) of the cloud.
An adversary adds, deletes or modifies up to t points. Bound (derived here; it is the
structure of PointGuard's theorem, recalled, not read): with X the clean cloud (N points),
X' the perturbed one (N' points) and I = X ∩ X' (N_I points), a uniform k-subset S of X
lies in I with probability a = C(N_I, k) / C(N, k), a k-subset S' of X' with probability
a' = C(N_I, k) / C(N', k), and conditioned on that both are uniform k-subsets of I. Hence

    P[f(S') = A] >= (p_A - (1 - a)) * a' / a,
    P[f(S') = B] <= p_B * a' / a + (1 - a').

The prediction is certified for the threat model when the first exceeds the second, with
p_A a lower and p_B an upper confidence bound. Modification: N' = N, N_I = N - t; addition:
N' = N + t, N_I = N; deletion: N' = N - t, N_I = N - t. ``certified_t`` returns the largest
t for which this holds. The guarantee holds with probability 1 - alpha (Clopper-Pearson,
Bonferroni over the two classes).
"""

from __future__ import annotations

from math import lgamma
from typing import Any, Literal

import numpy as np
import torch

from certkit.core.stats import clopper_pearson
from certkit.core.validation import check_alpha, check_int, check_seed
from certkit.pointcloud._votes import count_votes

Threat = Literal["modify", "add", "delete"]


def _log_comb(n: int, k: int) -> float:
    return lgamma(n + 1) - lgamma(k + 1) - lgamma(n - k + 1)


def _ratio(n_i: int, n: int, k: int) -> float:
    """C(n_i, k) / C(n, k) (0 when n_i < k)."""
    if n_i < k:
        return 0.0
    return float(np.exp(_log_comb(n_i, k) - _log_comb(n, k)))


def is_certified(p_a: float, p_b: float, n: int, k: int, t: int, threat: Threat = "modify") -> bool:
    """Whether the bound certifies t perturbed points (see module docstring)."""
    if threat == "modify":
        n2, ni = n, n - t
    elif threat == "add":
        n2, ni = n + t, n
    elif threat == "delete":
        n2, ni = n - t, n - t
    else:
        raise ValueError(f"threat: expected 'modify', 'add' or 'delete', got {threat!r}")
    if ni < k or n2 < k:
        return False
    a = _ratio(ni, n, k)
    a2 = _ratio(ni, n2, k)
    lower_a = (p_a - (1 - a)) * a2 / a
    upper_b = p_b * a2 / a + (1 - a2)
    # margin: an exact tie must not be certified through rounding
    return bool(lower_a > upper_b + 1e-12)


def certified_t(p_a: float, p_b: float, n: int, k: int, threat: Threat = "modify") -> int:
    """Largest t with :func:`is_certified` (-1 when even t = 0 fails: abstain)."""
    if not is_certified(p_a, p_b, n, k, 0, threat):
        return -1
    t = 0
    while t + 1 <= n and is_certified(p_a, p_b, n, k, t + 1, threat):
        t += 1
    return t


@torch.no_grad()
def vote_counts(
    model: torch.nn.Module,
    x: Any,
    k: int,
    n: int,
    num_classes: int,
    *,
    seed: int = 0,
    index: int = 0,
    batch_size: int = 200,
) -> np.ndarray:
    """Class counts (C,) of ``model`` on ``n`` random k-subsets of cloud x (N, 3)."""
    xa = np.asarray(x, dtype=np.float32)
    if xa.ndim != 2 or xa.shape[1] != 3 or not np.isfinite(xa).all():
        raise ValueError("x: expected a finite (N, 3) cloud")
    if not 1 <= k <= len(xa):
        raise ValueError(f"k: expected 1 <= k <= {len(xa)}, got {k}")
    rng = np.random.default_rng([check_seed(seed), index])
    # draws are consumed in order from one generator, so batching does not change them
    return count_votes(model, lambda _start, b: xa[np.argsort(rng.random((b, len(xa))), axis=1)[:, :k]],
                       n, batch_size, num_classes)


def certify(
    model: torch.nn.Module,
    x: Any,
    k: int,
    num_classes: int,
    *,
    n: int = 1000,
    alpha: float = 0.001,
    threat: Threat = "modify",
    seed: int = 0,
    index: int = 0,
) -> tuple[int, int]:
    """``(label, certified t)`` for one cloud; label -1 and t = -1 when it abstains."""
    alpha = check_alpha(alpha)
    n = check_int(n, "n", minimum=1)
    c = vote_counts(model, x, k, n, num_classes, seed=seed, index=index)
    order = np.argsort(-c, kind="stable")
    a, b = int(order[0]), int(order[1])
    p_a = float(clopper_pearson(int(c[a]), n, alpha / 2, side="lower"))
    p_b = float(clopper_pearson(int(c[b]), n, alpha / 2, side="upper"))
    t = certified_t(p_a, min(p_b, 1 - p_a), len(np.asarray(x)), k, threat)
    return (a, t) if t >= 0 else (-1, -1)


__all__ = ["certified_t", "certify", "is_certified", "vote_counts"]
