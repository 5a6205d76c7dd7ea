"""Convex two-layer ReLU program: the network it maps to, global optimality against Adam, naive
references, and the check failing when the convex value is perturbed."""

from __future__ import annotations

import numpy as np
import pytest

from certkit.theory import convex_relu
from certkit.theory._common import TheoryCheckError


def test_check_passes_quick() -> None:
    out = convex_relu.check("quick")
    assert out["best_adam"] >= out["network"]["closed_form"] * (1 - 1e-3)


@pytest.mark.parametrize("factor", [1.03, 0.97])
def test_check_fails_when_value_perturbed(factor: float, monkeypatch: pytest.MonkeyPatch) -> None:
    orig = convex_relu.closed_form
    monkeypatch.setattr(convex_relu, "closed_form", lambda *a, **k: orig(*a, **k) * factor)
    with pytest.raises(TheoryCheckError):
        convex_relu.check("quick")


def test_network_mapping_preserves_objective_naive() -> None:
    rng = np.random.default_rng(0)
    x, y = convex_relu.make_data(6, seed=2)
    pats = convex_relu.patterns(x, 4000)
    # a feasible point: v_i = g with pattern 1[Xg >= 0] = D_i, for a few sampled directions
    v = np.zeros((pats.shape[0], 3))
    used = 0
    while used < 3:
        gi = rng.standard_normal(3)
        hit = np.flatnonzero((pats == (x @ gi >= 0)).all(1))
        if hit.size:
            v[int(hit[0])] += gi
            used += 1
    w = np.zeros_like(v)
    u, a = convex_relu.network_from_convex(v, w)
    beta = 0.1
    pred = sum(pats[i] * (x @ v[i]) for i in range(len(v)))
    cvx = 0.5 * ((pred - y) ** 2).sum() + beta * np.linalg.norm(v, axis=1).sum()
    assert convex_relu.nonconvex_objective(x, y, u, a, beta) == pytest.approx(cvx, rel=1e-10)


def test_patterns_are_distinct_and_realisable() -> None:
    x, _ = convex_relu.make_data(8, seed=1)
    pats = convex_relu.patterns(x, 5000)
    assert len({tuple(r) for r in pats}) == len(pats)
    assert set(np.unique(pats)) <= {0.0, 1.0}


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="beta"):
        convex_relu.closed_form(16, 0.0)
    with pytest.raises(ValueError, match="n"):
        convex_relu.make_data(1)
