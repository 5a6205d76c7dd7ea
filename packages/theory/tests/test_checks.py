"""Every paper's check() passes in quick mode and FAILS when its closed form is perturbed."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from certkit.theory import (
    accuracy_disparity,
    boundary_tilting,
    comp_sum,
    grokking,
    ldr_loss,
    optimistic_omd,
)
from certkit.theory._common import TheoryCheckError

SCALAR_MODULES = [comp_sum, boundary_tilting, optimistic_omd, grokking, ldr_loss]


@pytest.mark.parametrize("mod", [*SCALAR_MODULES, accuracy_disparity], ids=lambda m: m.NAME)
def test_check_passes_quick(mod: Any) -> None:
    assert mod.check("quick")


def _scaled(fn: Any, factor: float) -> Any:
    def wrapper(*a: Any, **k: Any) -> Any:
        return np.asarray(fn(*a, **k)) * factor if not isinstance(fn(*a, **k), float) else fn(*a, **k) * factor
    return wrapper


@pytest.mark.parametrize("factor", [1.03, 0.97])
@pytest.mark.parametrize("mod", SCALAR_MODULES, ids=lambda m: m.NAME)
def test_check_fails_when_closed_form_perturbed(mod: Any, factor: float, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mod, "closed_form", _scaled(mod.closed_form, factor))
    with pytest.raises(TheoryCheckError):
        mod.check("quick")


@pytest.mark.parametrize("factor", [1.03, 0.97])
def test_accuracy_disparity_check_fails_when_perturbed(factor: float, monkeypatch: pytest.MonkeyPatch) -> None:
    orig = accuracy_disparity.closed_form

    def bad(*a: Any, **k: Any) -> dict[str, Any]:
        out = dict(orig(*a, **k))
        out["acc_neg"] = min(out["acc_neg"] * factor, 1.0)
        return out

    monkeypatch.setattr(accuracy_disparity, "closed_form", bad)
    with pytest.raises(TheoryCheckError):
        accuracy_disparity.check("quick")


def test_ldr_check_fails_when_loss_perturbed(monkeypatch: pytest.MonkeyPatch) -> None:
    orig = ldr_loss.ldr_kl_loss
    monkeypatch.setattr(ldr_loss, "ldr_kl_loss", lambda *a, **k: orig(*a, **k) * 1.03)
    with pytest.raises(TheoryCheckError):
        ldr_loss.check("quick")


def test_comp_sum_check_fails_with_wrong_n_dependence(monkeypatch: pytest.MonkeyPatch) -> None:
    """Claiming the n = 2 transform for n = 3 with MAE (t/2 instead of t/3) must fail."""
    orig = comp_sum.closed_form
    monkeypatch.setattr(comp_sum, "closed_form", lambda t, tau, n=2: orig(t, tau, 2))
    with pytest.raises(TheoryCheckError):
        comp_sum.check("quick")
