"""Layer-wise Lipschitz bound (Szegedy et al.): SVD vs power iteration vs naive, soundness of the
certified radius against the L-BFGS attack, and the check failing when the bound is perturbed."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from certkit.theory import layer_lipschitz
from certkit.theory._common import TheoryCheckError


def test_check_passes_quick() -> None:
    out = layer_lipschitz.check("quick")
    assert out["attack/certified min"] >= 1.0


@pytest.mark.parametrize("factor", [1.03, 0.97])
def test_check_fails_when_norms_perturbed(factor: float, monkeypatch: pytest.MonkeyPatch) -> None:
    orig = layer_lipschitz.closed_form

    def bad(weights: Any) -> dict[str, Any]:
        out = orig(weights)
        return {"layer_norms": [v * factor for v in out["layer_norms"]], "L": out["L"] * factor}

    monkeypatch.setattr(layer_lipschitz, "closed_form", bad)
    with pytest.raises(TheoryCheckError):
        layer_lipschitz.check("quick")


def test_lipschitz_bound_holds_for_random_perturbations() -> None:
    ws, bs, _ = layer_lipschitz.train_mlp()
    big_l = layer_lipschitz.closed_form(list(ws))["L"]
    rng = np.random.default_rng(0)
    x = rng.random((50, 64))
    r = rng.standard_normal((50, 64)) * 0.1
    d = np.linalg.norm(layer_lipschitz.logits(ws, bs, x + r) - layer_lipschitz.logits(ws, bs, x), axis=1)
    assert np.all(d <= big_l * np.linalg.norm(r, axis=1) + 1e-9)


def test_power_iteration_and_naive_norm() -> None:
    w = np.random.default_rng(1).standard_normal((7, 5))
    naive = max(np.sqrt(np.linalg.eigvalsh(w.T @ w)))
    assert layer_lipschitz.power_iteration(w) == pytest.approx(naive, rel=1e-8)
    assert layer_lipschitz.closed_form([w, w.T])["L"] == pytest.approx(naive**2, rel=1e-12)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="weights"):
        layer_lipschitz.closed_form([])
    with pytest.raises(ValueError, match="n_points"):
        layer_lipschitz.simulate(0)
