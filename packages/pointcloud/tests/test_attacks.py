"""3DHacker (hard-label), GSDA-style spectral and PGD attacks; point-set distances."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from certkit.core.spectral import graph_basis
from certkit.pointcloud.distances import chamfer, hausdorff
from certkit.pointcloud.gsda import gsda_attack
from certkit.pointcloud.hacker3d import hacker3d
from certkit.pointcloud.models import predict
from certkit.pointcloud.pgd import pgd_attack


def _naive(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    da = [min(float(((p - q) ** 2).sum()) for q in b) for p in a]
    db = [min(float(((p - q) ** 2).sum()) for p in a) for q in b]
    return sum(da) / len(da) + sum(db) / len(db), max(max(da), max(db)) ** 0.5


def test_distances_match_naive() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(13, 3)), rng.normal(size=(9, 3))
    cd, hd = _naive(a, b)
    assert chamfer(a, b) == pytest.approx(cd, rel=1e-12)
    assert hausdorff(a, b) == pytest.approx(hd, rel=1e-12)
    assert chamfer(a, a) == 0.0 and hausdorff(a, a) == 0.0
    c = rng.normal(size=(9, 3))
    batch = chamfer(np.stack([a, a]), np.stack([b, c]))
    np.testing.assert_allclose(batch, [cd, _naive(a, c)[0]], rtol=1e-12)
    with pytest.raises(ValueError, match="a:"):
        chamfer(np.full((3, 3), np.nan), b)


class _Counting:
    """A hard-label oracle that records every cloud it is shown."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model, self.seen = model, 0

    def __call__(self, clouds: np.ndarray) -> np.ndarray:
        self.seen += len(clouds)
        return predict(self.model, clouds)


def _correct(tiny: tuple) -> list[int]:
    m, X, y = tiny
    return [int(i) for i in np.flatnonzero(predict(m, X) == y)]


def test_hacker3d_hard_label_success_budget_and_walk(tiny: tuple) -> None:
    m, X, y = tiny
    idx = _correct(tiny)[:2]
    assert idx
    for i in idx:
        oracle = _Counting(m)
        pool = X[y != y[i]]
        r = hacker3d(oracle, X[i], int(y[i]), pool, max_queries=120, low=16, seed=i)
        assert r.queries == oracle.seen <= 120  # every query counted, budget kept
        assert r.success
        assert predict(m, r.adv[None])[0] != y[i]  # really adversarial
        d = [h[1] for h in r.history]
        assert all(b <= a + 1e-12 for a, b in itertools.pairwise(d))  # walk never grows
        assert r.l2 == pytest.approx(np.linalg.norm(r.adv - X[i]), rel=1e-4)
        assert r.chamfer == pytest.approx(chamfer(r.adv, X[i]), rel=1e-4)


def test_hacker3d_perturbation_is_low_frequency(tiny: tuple) -> None:
    m, X, y = tiny
    i = _correct(tiny)[0]
    r = hacker3d(lambda c: predict(m, c), X[i], int(y[i]), X[y != y[i]], low=12, walk_bands=12,
                 max_queries=80, seed=1)
    _, U = graph_basis(X[i].astype(np.float64), 10)
    coeff = U.T @ (r.adv.astype(np.float64) - X[i])
    assert np.abs(coeff[12:]).max() < 1e-4 * max(np.abs(coeff[:12]).max(), 1e-6) + 1e-5
    # deterministic for a seed
    r2 = hacker3d(lambda c: predict(m, c), X[i], int(y[i]), X[y != y[i]], low=12, walk_bands=12,
                  max_queries=80, seed=1)
    np.testing.assert_array_equal(r.adv, r2.adv)


def test_hacker3d_misclassified_and_bad_input(tiny: tuple) -> None:
    m, X, _ = tiny
    wrong = int((predict(m, X[:1])[0] + 1) % 4)  # a label the model does not predict
    r = hacker3d(lambda c: predict(m, c), X[0], wrong, X[1:3], max_queries=10)
    assert r.success and r.queries == 1 and r.l2 == 0.0
    with pytest.raises(ValueError, match="partners"):
        hacker3d(lambda c: predict(m, c), X[0], 0, X[:2, :10])
    with pytest.raises(ValueError, match="x:"):
        hacker3d(lambda c: predict(m, c), np.full((64, 3), np.nan), 0, X[:2])


def test_gsda_spectral_attack(tiny: tuple) -> None:
    m, X, y = tiny
    idx = _correct(tiny)[:4]
    r = gsda_attack(m, X[idx], y[idx], steps=25, lr=0.03)
    assert r.success.mean() >= 0.5
    ok = r.success
    np.testing.assert_array_equal(predict(m, r.adv[ok]) != y[idx][ok], True)
    np.testing.assert_allclose(r.chamfer[ok], chamfer(r.adv[ok], X[idx][ok]), rtol=1e-4)
    # band-limited: the perturbation lives in the lowest 8 graph frequencies
    rb = gsda_attack(m, X[idx[:1]], y[idx[:1]], steps=5, bands=8)
    _, U = graph_basis(X[idx[0]].astype(np.float64), 10)
    c = U.T @ (rb.adv[0].astype(np.float64) - X[idx[0]])
    assert np.abs(c[8:]).max() < 1e-4
    with pytest.raises(ValueError, match="y:"):
        gsda_attack(m, X[:2], y[:3])


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_stays_in_ball_and_succeeds(tiny: tuple, norm: str) -> None:
    m, X, y = tiny
    idx = _correct(tiny)[:6]
    eps = 0.1 if norm == "linf" else 1.5
    r = pgd_attack(m, X[idx], y[idx], eps=eps, steps=10, norm=norm)  # type: ignore[arg-type]
    d = r.adv - X[idx]
    if norm == "linf":
        assert np.abs(d).max() <= eps + 1e-6
    else:
        assert np.linalg.norm(d.reshape(len(idx), -1), axis=1).max() <= eps + 1e-5
    assert r.success.mean() > 0
    np.testing.assert_array_equal(r.success, predict(m, r.adv) != y[idx])
    with pytest.raises(ValueError, match="norm"):
        pgd_attack(m, X[:1], y[:1], norm="l1")  # type: ignore[arg-type]
