"""Trained-net side of the grokking module: the paper's coexistence and pruning claims at the
quick-mode scale, and that the check fails when the IPR ranking is replaced by a random one."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from certkit.theory import grokking
from certkit.theory._common import TheoryCheckError


@pytest.fixture(scope="module")
def quick() -> dict[str, Any]:
    return grokking.simulate(**grokking.QUICK)


def test_quick_net_coexists_and_low_ipr_pruning_removes_memorisation(quick: dict[str, Any]) -> None:
    out = grokking.check_trained(quick)
    assert quick["phase"] == "coexistence"
    assert out["pruned_corrupted_acc"] <= out["corrupted_acc"] - 0.3
    assert out["pruned_test_acc"] >= 0.9
    assert out["high_first_30_test_acc"] < 0.9


def test_check_trained_fails_with_random_ranking(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    monkeypatch.setattr(grokking, "ipr", lambda w1, p, w2=None, r=2: rng.random(w1.shape[0]))
    with pytest.raises(TheoryCheckError):
        grokking.check_trained(grokking.simulate(**grokking.QUICK))


def test_check_trained_fails_when_net_only_memorises() -> None:
    """No weight decay at the quick scale: the net memorises and does not generalise."""
    res = grokking.simulate(**{**grokking.QUICK, "weight_decay": 0.0, "steps": 300})
    assert res["phase"] in ("memorization", "forgetting/confusion")
    with pytest.raises(TheoryCheckError):
        grokking.check_trained(res)


def test_vector_ipr_matches_naive() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 13))
    got = grokking.vector_ipr(x)
    for i in range(5):
        coef = [sum(x[i, j] * np.exp(-2j * np.pi * k * j / 13) for j in range(13)) for k in range(7)]
        pw = [abs(c) ** 2 for c in coef]
        assert got[i] == pytest.approx(sum(q * q for q in pw) / sum(pw) ** 2, rel=1e-10)
    cos = np.cos(2 * np.pi * 3 * np.arange(13) / 13 + 0.4)
    assert grokking.vector_ipr(cos)[0] == pytest.approx(1.0)
    assert np.isnan(grokking.vector_ipr(np.zeros(13))[0])


def test_make_data_corrupts_the_paper_fraction() -> None:
    d = grokking.make_data(31, 0.2, 0.5, seed=3)
    n_train = int(0.5 * 31 * 31)
    assert d["train"].sum() == n_train
    assert d["corrupt"].sum() == int(0.2 * n_train)
    assert not (d["corrupt"] & ~d["train"]).any()
    assert (d["y_obs"][~d["corrupt"]] == d["y"][~d["corrupt"]]).all()
    assert d["flipped"].sum() >= 0.9 * d["corrupt"].sum()       # ~1/p keep their label


@pytest.mark.parametrize(("test", "train", "xi", "want"), [
    (0.95, 0.95, 0.3, "coexistence"), (0.95, 0.8, 0.3, "partial inversion"),
    (0.95, 0.7, 0.3, "full inversion"), (0.5, 0.95, 0.3, "memorization"), (0.5, 0.5, 0.3, "forgetting/confusion")])
def test_phase_table(test: float, train: float, xi: float, want: str) -> None:
    assert grokking.phase(test, train, xi) == want


def test_simulate_bad_input() -> None:
    with pytest.raises(ValueError, match="loss"):
        grokking.simulate(23, 0.1, loss="hinge")
    with pytest.raises(ValueError, match="train_frac"):
        grokking.simulate(23, 0.1, train_frac=1.0)
