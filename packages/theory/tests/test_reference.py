"""Ops vs naive Python references, bad input, and properties of the closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from certkit.theory import (
    accuracy_disparity,
    boundary_tilting,
    comp_sum,
    grokking,
    ldr_loss,
    optimistic_omd,
)
from certkit.theory._common import is_prime


def test_comp_sum_loss_matches_naive() -> None:
    rng = np.random.default_rng(0)
    z = rng.standard_normal((7, 4)) * 3
    y = rng.integers(0, 4, 7)
    for tau in (0.0, 0.5, 1.0, 1.5, 2.0):
        got = comp_sum.comp_sum_loss(z, y, tau)
        for i in range(7):
            s = math.exp(z[i, y[i]]) / sum(math.exp(v) for v in z[i])
            u = 1 / s - 1
            ref = math.log1p(u) if tau == 1.0 else ((1 + u) ** (1 - tau) - 1) / (1 - tau)
            assert got[i] == pytest.approx(ref, rel=1e-10)


def test_ce_transform_matches_issue_formula() -> None:
    t = np.linspace(0, 0.99, 50)
    ref = [(1 + x) / 2 * math.log(1 + x) + (1 - x) / 2 * math.log(1 - x) for x in t]
    np.testing.assert_allclose(comp_sum.closed_form(t, 1.0), ref, rtol=1e-12, atol=1e-15)


def test_ldr_kl_matches_naive() -> None:
    g = torch.Generator().manual_seed(1)
    f = torch.randn(5, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 6, (5,), generator=g)
    lam, c = 0.7, 1.3
    got = ldr_loss.ldr_kl_loss(f, y, lam, c, reduction="none")
    for i in range(5):
        terms = [math.exp(((c if k != int(y[i]) else 0.0) + float(f[i, k] - f[i, y[i]])) / lam) for k in range(6)]
        assert float(got[i]) == pytest.approx(lam * math.log(sum(terms) / 6), rel=1e-12)


def test_aldr_gradient_flows() -> None:
    f = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    ldr_loss.aldr_kl_loss(f, torch.tensor([0, 1, 2, 3])).backward()
    assert f.grad is not None and torch.isfinite(f.grad).all()


def test_smooth_adversarial_loss_is_differentiable() -> None:
    w = torch.randn(3, 5, requires_grad=True)
    b = torch.zeros(3, requires_grad=True)
    loss = comp_sum.smooth_adversarial_comp_sum_loss(w, b, torch.randn(8, 5), torch.randint(0, 3, (8,)), 1.0, 0.5, 0.1)
    loss.backward()
    assert w.grad is not None


def test_boundary_identity_brute_force() -> None:
    """Brute force: distance from i to the plane = min over plane points on a dense line search."""
    rng = np.random.default_rng(2)
    i, j, w = rng.standard_normal((3, 3))
    b = -w @ (i + j) / 2
    # points on the plane: i + t * (-w/|w|) hits it at t = (w.i + b)/|w|; brute-force over t
    ts = np.linspace(-5, 5, 200001)
    vals = np.abs((i[None, :] - ts[:, None] * w / np.linalg.norm(w)) @ w + b)
    t_star = abs(ts[np.argmin(vals)])
    assert boundary_tilting.closed_form(i, j, w) == pytest.approx(t_star, abs=1e-4)


def test_grokking_closed_form_small_prime_naive() -> None:
    p = 5
    w1, w2 = grokking.analytic_weights(p)
    cf = grokking.closed_form(p)
    for a in range(p):
        for b in range(p):
            h = [w1[k, a] + w1[k, p + b] for k in range(w1.shape[0])]
            for q in range(p):
                ref = sum(w2[q, k] * h[k] ** 2 for k in range(w1.shape[0]))
                assert ref == pytest.approx(cf[a, b, q], abs=1e-9)


def test_oomd_closed_form_deterministic_matches_direct_run() -> None:
    c = optimistic_omd.drift_path(30, 2, 1.0, 4.0)
    v = np.zeros(30)
    mean, se = optimistic_omd.simulate(c, v, algo="oomd", n_rep=2)
    assert se == 0.0
    assert optimistic_omd.closed_form(c, v, algo="oomd") == pytest.approx(mean, rel=1e-12)


def test_cauchy_collapse_to_majority() -> None:
    out = accuracy_disparity.closed_form(50.0, 0.5, 1.0, norm="linf", dist="cauchy")
    assert out["disparity"] == 1.0 and math.isinf(out["b"])


def test_is_prime() -> None:
    assert [n for n in range(30) if is_prime(n)] == [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]


@pytest.mark.parametrize("call", [
    lambda: comp_sum.closed_form(0.5, 2.5),
    lambda: comp_sum.closed_form(0.5, -0.1),
    lambda: comp_sum.comp_sum_loss(np.zeros((2, 3)), np.array([0, 1]), float("nan")),
    lambda: ldr_loss.gce_loss(torch.zeros(2, 3), torch.tensor([0, 1]), q=0.0),
    lambda: ldr_loss.gce_loss(torch.zeros(2, 3), torch.tensor([0, 1]), q=1.5),
    lambda: ldr_loss.ldr_kl_loss(torch.zeros(2, 3), torch.tensor([0, 1]), lam=0.0),
    lambda: ldr_loss.ldr_kl_loss(torch.zeros(2, 3), torch.tensor([0, 1]), lam=-1.0),
    lambda: ldr_loss.ldr_kl_loss(torch.zeros(2, 3), torch.tensor([0, 3]), lam=1.0),
    lambda: grokking.analytic_weights(21),
    lambda: grokking.make_data(97, 1.2),
    lambda: grokking.make_data(97, -0.1),
    lambda: grokking.simulate(91, 0.1),
    lambda: accuracy_disparity.closed_form(0.5),
    lambda: accuracy_disparity.closed_form(4.0, 5.0),
    lambda: accuracy_disparity.closed_form(4.0, 0.1, -1.0),
    lambda: boundary_tilting.svm_sweep(pair=(3, 3)),
    lambda: boundary_tilting.svm_sweep(lambdas=[0.0]),
    lambda: ldr_loss.corrupt(np.zeros(3, dtype=int), "uniform", 1.5, 10, 0),
])
def test_bad_input_raises_value_error(call: object) -> None:
    with pytest.raises(ValueError):
        call()  # type: ignore[operator]


def test_error_messages_name_the_argument() -> None:
    with pytest.raises(ValueError, match="tau"):
        comp_sum.closed_form(0.5, 3.0)
    with pytest.raises(ValueError, match="p"):
        grokking.analytic_weights(91)
    with pytest.raises(ValueError, match="xi"):
        grokking.make_data(11, 2.0)
    with pytest.raises(ValueError, match="lam"):
        ldr_loss.ldr_kl_loss(torch.zeros(1, 2), torch.tensor([0]), lam=0)
    with pytest.raises(ValueError, match="q"):
        ldr_loss.gce_loss(torch.zeros(1, 2), torch.tensor([0]), q=2)
