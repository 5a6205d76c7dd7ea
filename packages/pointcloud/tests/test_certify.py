"""Soundness of the point-cloud certificates: brute force, attacks, coverage."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from certkit.core.stats import clopper_pearson
from certkit.pointcloud import pointguard, smoothing


# ------------------------------------------------------------------ PointGuard -----------
def _brute_force_survives(
    labels: dict[frozenset[int], int], n: int, k: int, t: int, threat: str, num_classes: int
) -> bool:
    """Worst case over every perturbation: subsets touching a new point get the adversary's label."""
    top = max(range(num_classes), key=lambda c: (sum(v == c for v in labels.values()), -c))
    if threat == "modify":
        keeps = [set(range(n)) - set(r) for r in itertools.combinations(range(n), t)]
        n2 = n
    elif threat == "delete":
        keeps = [set(range(n)) - set(r) for r in itertools.combinations(range(n), t)]
        n2 = n - t
    else:
        keeps = [set(range(n))]
        n2 = n + t
    for keep in keeps:
        total = 0
        inside = np.zeros(num_classes)
        # count subsets of the perturbed cloud that avoid new points
        import math

        tot = math.comb(n2, k)
        for s, lab in labels.items():
            if s <= keep:
                inside[lab] += 1
                total += 1
        rest = tot - total
        for b in range(num_classes):
            if b == top:
                continue
            if inside[top] <= inside[b] + rest:
                return False
    return True


@pytest.mark.parametrize("threat", ["modify", "add", "delete"])
def test_pointguard_bound_is_sound_by_brute_force(threat: str) -> None:
    rng = np.random.default_rng(0)
    n, k, C = 7, 2, 3
    subsets = [frozenset(s) for s in itertools.combinations(range(n), k)]
    tight = 0
    for trial in range(60):
        bias = rng.dirichlet([0.3, 1, 1])
        labels = {s: int(rng.choice(C, p=bias)) for s in subsets}
        counts = np.bincount(list(labels.values()), minlength=C)
        order = np.argsort(-counts, kind="stable")
        p_a, p_b = counts[order[0]] / len(subsets), counts[order[1]] / len(subsets)
        t = pointguard.certified_t(p_a, p_b, n, k, threat)  # type: ignore[arg-type]
        for tt in range(0, t + 1):
            assert _brute_force_survives(labels, n, k, tt, threat, C), (trial, tt, t)
        if t >= 0 and t + 1 <= n - k and not _brute_force_survives(labels, n, k, t + 1, threat, C):
            tight += 1
    assert tight > 0  # the bound is attained on some labelings


def test_pointguard_monotone_and_known_values() -> None:
    import math

    # p_A = 1: certified while C(N - t, k) / C(N, k) > 1/2
    expect = max(t for t in range(91) if math.comb(100 - t, 10) / math.comb(100, 10) > 0.5)
    assert pointguard.certified_t(1.0, 0.0, 100, 10, "modify") == expect
    assert pointguard.certified_t(0.5, 0.5, 100, 10) == -1
    ts = [pointguard.certified_t(p, 1 - p, 1024, 16) for p in (0.6, 0.8, 0.95, 0.99)]
    assert ts == sorted(ts) and ts[0] >= 0


class _Majority(nn.Module):
    """Predicts 1 when more than half of the points have x > 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frac = (x[..., 0] > 0).float().mean(1)
        return torch.stack([0.5 - frac, frac - 0.5], 1)


def test_pointguard_attack_inside_certified_region_fails() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 3))
    x[:52, 0] = np.abs(x[:52, 0]) + 0.1
    x[52:, 0] = -np.abs(x[52:, 0]) - 0.1
    model = _Majority()
    label, t = pointguard.certify(model, x, 8, 2, n=400, alpha=0.01, seed=3)
    assert label == 1 and t >= 1
    # strongest attack within t modifications: flip t points to the other side
    xa = x.copy()
    xa[:t, 0] = -5.0
    counts = pointguard.vote_counts(model, xa, 8, 2000, 2, seed=9)
    assert counts.argmax() == label


def test_pointguard_bad_input() -> None:
    with pytest.raises(ValueError):
        pointguard.certified_t(0.9, 0.1, 10, 2, "teleport")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        pointguard.vote_counts(_Majority(), np.zeros((4, 3)), 5, 10, 2)


# ------------------------------------------------------------- coordinate smoothing -----
class _Linear(nn.Module):
    """Sign of the mean x-coordinate: its smoothed version has a closed form."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x[..., 0].mean(1)
        return torch.stack([-m, m], 1)


def test_smoothing_radius_matches_closed_form() -> None:
    # f = [mean x > 0]; mean of N noise draws ~ N(0, sigma^2 / N): P = Phi(mu * sqrt(N) / sigma);
    # the exact ℓ2 robustness of g is the distance to the hyperplane: |mu| * sqrt(N).
    n_pts, sigma, mu = 16, 0.5, 0.08
    x = np.zeros((n_pts, 3), np.float32)
    x[:, 0] = mu
    cert = smoothing.certify(_Linear(), x, sigma, 2, n0=50, n=4000, alpha=0.001, seed=1)
    true_radius = mu * np.sqrt(n_pts)
    assert cert.label == 1
    assert 0 < cert.radius <= true_radius + 1e-9  # sound
    assert cert.radius > 0.7 * true_radius  # not vacuous


def test_smoothing_attack_inside_radius_fails() -> None:
    n_pts, sigma, mu = 16, 0.5, 0.08
    x = np.zeros((n_pts, 3), np.float32)
    x[:, 0] = mu
    model = _Linear()
    cert = smoothing.certify(model, x, sigma, 2, n0=50, n=2000, alpha=0.001, seed=2)
    # worst-case direction: straight towards the decision hyperplane, 99% of the radius
    d = np.zeros_like(x)
    d[:, 0] = -1.0
    d /= np.linalg.norm(d)
    xa = x + 0.99 * cert.radius * d
    c = smoothing.sample_counts(model, xa, sigma, 4000, 2, seed=7, index=5)
    assert c.argmax() == cert.label


def test_smoothing_confidence_bound_coverage() -> None:
    # The Clopper-Pearson lower bound must cover the true p_A in >= 1 - alpha of the repeats.
    n_pts, sigma, mu = 8, 1.0, 0.2
    x = np.zeros((n_pts, 3), np.float32)
    x[:, 0] = mu
    from certkit.core.stats import norm_cdf

    p_true = float(norm_cdf(mu * np.sqrt(n_pts) / sigma))
    alpha, reps, n = 0.1, 200, 100
    miss = 0
    for r in range(reps):
        c = smoothing.sample_counts(_Linear(), x, sigma, n, 2, seed=11, index=r)
        miss += float(clopper_pearson(int(c[1]), n, alpha, side="lower")) > p_true
    # Binomial(200, <=0.1): P(miss > 32) < 1e-3
    assert miss <= 32


def test_smoothing_same_certificate_for_any_split() -> None:
    x = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
    a = smoothing.sample_counts(_Linear(), x, 0.3, 300, 2, seed=4, index=2, batch_size=300)
    b = smoothing.sample_counts(
        _Linear(), x, 0.3, 100, 2, seed=4, index=2, first=0
    ) + smoothing.sample_counts(_Linear(), x, 0.3, 200, 2, seed=4, index=2, first=100, batch_size=7)
    np.testing.assert_array_equal(a, b)


def test_smoothing_bad_input() -> None:
    with pytest.raises(ValueError):
        smoothing.certify(_Linear(), np.zeros((4, 3)), -1.0, 2)
    with pytest.raises(ValueError):
        smoothing.certify(_Linear(), np.zeros((4, 3)), 0.5, 2, alpha=1.5)
    with pytest.raises(ValueError):
        smoothing.certify(_Linear(), np.full((4, 3), np.nan), 0.5, 2)


def test_pointguard_confidence_bounds_coverage() -> None:
    # 12 of 20 points have x > 0; a 5-subset votes 1 iff >= 3 of its points do (hypergeometric).
    import math

    n_pts, pos, k = 20, 12, 5
    p1 = sum(math.comb(pos, j) * math.comb(n_pts - pos, k - j) for j in range(3, k + 1))
    p1 /= math.comb(n_pts, k)
    x = np.zeros((n_pts, 3))
    x[:pos, 0] = 1.0
    x[pos:, 0] = -1.0
    alpha, reps, n = 0.1, 200, 60
    miss = 0
    for r in range(reps):
        c = pointguard.vote_counts(_Majority(), x, k, n, 2, seed=13, index=r)
        lo = float(clopper_pearson(int(c[1]), n, alpha / 2, side="lower"))
        hi = float(clopper_pearson(int(c[0]), n, alpha / 2, side="upper"))
        miss += (lo > p1) or (hi < 1 - p1)  # the Bonferroni pair used by certify()
    assert miss <= 32  # Binomial(200, <= 0.1): P(> 32) < 1e-3
