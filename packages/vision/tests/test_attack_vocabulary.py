"""The torchattacks vocabulary (issue #23): norm 'Linf' / 'L2', one targeting convention for
pgd and apgd, restarts / n_restarts, tensor eps, per-channel mean / std, and apgd_ensemble's
class-count check before anything runs."""

from __future__ import annotations

import importlib
import math

import pytest
import torch
from _attack_models import trained_digits

from certkit.vision import attacks as A

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits():
    model, x, y = trained_digits(5)
    return model, x[:32], y[:32]


@pytest.mark.parametrize(("spelling", "canonical"), [("Linf", "linf"), ("LINF", "linf"), ("inf", "linf"),
                                                     (math.inf, "linf"), ("L2", "l2"), (2, "l2")])
def test_norm_spellings(digits, spelling, canonical) -> None:
    model, x, y = digits
    eps = 0.1 if canonical == "linf" else 1.0
    ref = A.pgd(model, x, y, eps, norm=canonical, steps=5)
    assert torch.equal(A.pgd(model, x, y, eps, norm=spelling, steps=5), ref)
    assert torch.equal(A.apgd(model, x[:8], y[:8], eps, norm=spelling, steps=5),
                       A.apgd(model, x[:8], y[:8], eps, norm=canonical, steps=5))
    assert torch.equal(A.distance(ref, x, spelling), A.distance(ref, x, canonical))


def test_bad_norm_names_the_argument(digits) -> None:
    model, x, y = digits
    for bad in ("l1", "L1", 1, True, None):
        with pytest.raises(ValueError, match="norm"):
            A.pgd(model, x, y, 0.1, norm=bad)


def _targets(model, x):
    with torch.no_grad():
        return model(x).argsort(1)[:, 0]                  # the least likely class


def test_targeting_is_the_same_in_pgd_and_apgd(digits) -> None:
    model, x, y = digits
    t = _targets(model, x)
    a = A.pgd(model, x, t, 0.5, targeted=True, steps=40)
    b = A.pgd(model, x, y, 0.5, target=t, steps=40)
    assert torch.equal(a, b)
    for adv in (a, A.apgd(model, x, t, 0.5, targeted=True, steps=40),
                A.apgd(model, x, y, 0.5, target=t, steps=40)):
        with torch.no_grad():
            hit = (model(adv).argmax(1) == t).float().mean()
        assert float(hit) >= 0.8                            # success means reaching the target
        assert float((adv - x).abs().max()) <= 0.5 + 1e-6
    for fn in (A.pgd, A.apgd, A.fgsm):
        with pytest.raises(ValueError, match="targeted"):
            fn(model, x, y, 0.1, targeted=True, target=t)


def test_restarts_alias(digits) -> None:
    model, x, y = digits
    assert torch.equal(A.pgd(model, x, y, 0.05, steps=3, n_restarts=3, seed=1),
                       A.pgd(model, x, y, 0.05, steps=3, restarts=3, seed=1))
    assert torch.equal(A.apgd(model, x, y, 0.05, steps=3, n_restarts=2),
                       A.apgd(model, x, y, 0.05, steps=3, restarts=2))
    with pytest.raises(ValueError, match="restarts"):
        A.pgd(model, x, y, 0.05, restarts=2, n_restarts=3)
    with pytest.raises(ValueError, match="step_size"):
        A.pgd(model, x, y, 0.05, step_size=0.01, alpha=0.02)
    assert torch.equal(A.pgd(model, x, y, 0.05, steps=3, alpha=0.01), A.pgd(model, x, y, 0.05, steps=3, step_size=0.01))


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_tensor_eps(digits, norm) -> None:
    model, x, y = digits
    e = 0.1 if norm == "linf" else 1.0
    ref = A.pgd(model, x, y, e, norm=norm, steps=5)
    assert torch.allclose(A.pgd(model, x, y, torch.tensor(e), norm=norm, steps=5), ref, atol=1e-6)
    per = torch.linspace(0.2, 1.0, len(x)) * e
    for adv in (A.pgd(model, x, y, per, norm=norm, steps=5), A.apgd(model, x, y, per, norm=norm, steps=5),
                A.apgd_ensemble(model, x, y, per, norm=norm, steps=5), A.fgsm(model, x, y, per, norm=norm)):
        assert bool((A.distance(adv, x, norm) <= per * (1 + 1e-5) + 1e-6).all())
        assert float(adv.min()) >= 0 and float(adv.max()) <= 1
    with pytest.raises(ValueError, match="eps"):
        A.pgd(model, x, y, torch.full((3,), e), norm=norm)
    with pytest.raises(ValueError, match="eps"):
        A.pgd(model, x, y, -per, norm=norm)


def test_mean_std_normalisation(digits) -> None:
    model, x, y = digits
    mean, std = [0.3], [0.2]

    def expects_normalised(v: torch.Tensor) -> torch.Tensor:      # model((x - mean) / std) = model(x)
        return model(v * 0.2 + 0.3)

    for attack in (lambda m, **k: A.pgd(m, x, y, 0.1, steps=10, **k),
                   lambda m, **k: A.apgd(m, x, y, 0.1, steps=10, **k),
                   lambda m, **k: A.apgd_ensemble(m, x, y, 0.1, steps=10, **k),
                   lambda m, **k: A.fgsm(m, x, y, 0.1, **k)):
        ref = attack(model)
        got = attack(expects_normalised, mean=mean, std=std)
        assert torch.allclose(got, ref, atol=1e-5)
        assert float(got.min()) >= 0 and float(got.max()) <= 1      # in the unnormalised box
    with pytest.raises(ValueError, match="std"):
        A.pgd(expects_normalised, x, y, 0.1, mean=mean, std=[0.0])
    with pytest.raises(ValueError, match="mean"):
        A.pgd(expects_normalised, x, y, 0.1, mean=[0.1, 0.2], std=std)


def test_apgd_ensemble_checks_class_count_first(monkeypatch) -> None:
    two = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2)).eval()
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        y = 1 - two(x).argmax(1)          # all misclassified: no stage would ever reach the DLR error

    def never(*a, **k):
        raise AssertionError("an attack ran before the class count was checked")

    monkeypatch.setattr(importlib.import_module("certkit.vision.attacks.apgd"), "_apgd", never)
    with pytest.raises(ValueError, match="at least 3 classes"):
        A.apgd_ensemble(two, x, y, 0.1)
    with pytest.raises(ValueError, match="at least 4 classes"):
        A.apgd_ensemble(two, x, y, 0.1, losses=("ce",), n_target_classes=1)
    monkeypatch.undo()
    assert A.apgd_ensemble(two, x, y, 0.1, losses=("ce",), steps=3).shape == x.shape


def test_apgd_t_inside_the_ensemble_counts_any_misclassification(digits) -> None:
    """AutoAttack's APGD-T stage succeeds on any wrong prediction (not only the target)."""
    model, x, y = digits
    adv = A.apgd_ensemble(model, x, y, 0.3, losses=(), n_target_classes=2, steps=20)
    assert A.robust_accuracy(model, adv, y) <= 0.2 < A.robust_accuracy(model, x, y)
    assert float((adv - x).abs().max()) <= 0.3 + 1e-6
