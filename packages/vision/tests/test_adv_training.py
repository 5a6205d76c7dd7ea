"""Adversarial training: PGD-AT/TRADES beat standard training under attack, the DRO and
class weights match their closed forms, FGSM-AT logs abnormal examples, the CO detector
fires on a gradient-masked model, and defensive distillation falls to CW."""

from __future__ import annotations

import math

import pytest
import torch

from certkit.vision import attacks as A
from certkit.vision.data.digits import load_digits
from certkit.vision.data.models import DigitsCNN, DigitsMLP, train_classifier
from certkit.vision.training import adversarial as AT

EPS = 0.2


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data():
    tr, te = load_digits()
    return tr, te.x[:150], te.y[:150]


@pytest.fixture(scope="module")
def standard(data):
    tr, _, _ = data
    torch.manual_seed(0)
    return train_classifier(DigitsMLP(64), tr.x, tr.y, epochs=8, seed=0)


def _pgd_acc(m, x, y):
    return A.robust_accuracy(m, A.pgd(m, x, y, EPS, steps=10), y)


def test_pgd_at_and_trades_are_more_robust_than_standard(data, standard):
    tr, x, y = data
    std = _pgd_acc(standard, x, y)
    torch.manual_seed(0)
    hist = AT.TrainHistory()
    at = AT.pgd_at(DigitsMLP(64), tr.x, tr.y, eps=EPS, steps=3, epochs=6, history=hist)
    torch.manual_seed(0)
    tr_m = AT.trades(DigitsMLP(64), tr.x, tr.y, eps=EPS, steps=3, epochs=6)
    assert len(hist.loss) == 6 and not at.training
    assert _pgd_acc(at, x, y) > std + 0.15
    assert _pgd_acc(tr_m, x, y) > std + 0.15
    assert A.robust_accuracy(tr_m, x, y) > 0.7


def test_dro_weights_closed_form_and_gradient():
    losses = torch.tensor([0.1, 2.0, 0.5, 1.2], dtype=torch.float64, requires_grad=True)
    tau = 0.7
    w = AT.dro_weights(losses.detach(), tau)
    # naive: brute-force maximise Σ w ℓ − τ KL(w‖u) over a grid of the simplex is costly;
    # check optimality via the Gibbs identity: the value at w equals τ log mean exp(ℓ/τ)
    lv = losses.detach()
    kl = float((w * torch.log(w * 4)).sum())
    assert abs(float((w * lv).sum()) - tau * kl - float(AT.dro_objective(lv, tau))) < 1e-10
    # and any other point of the simplex does worse
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        v = torch.rand(4, generator=g, dtype=torch.float64)
        v = v / v.sum()
        val = float((v * lv).sum()) - tau * float((v * torch.log(v * 4)).sum())
        assert val <= float(AT.dro_objective(lv, tau)) + 1e-12
    # gradient of the DRO value is Σ w_i ∇ℓ_i
    AT.dro_objective(losses, tau).backward()
    assert torch.allclose(losses.grad, w)
    # limits: τ → ∞ uniform, τ → 0 the worst instance
    assert torch.allclose(AT.dro_weights(lv, 1e6), torch.full((4,), 0.25, dtype=torch.float64))
    assert int(AT.dro_weights(lv, 1e-3).argmax()) == 1


def test_class_balanced_weights_match_naive():
    y = torch.tensor([0, 0, 0, 0, 1, 1, 2])
    w = AT.class_balanced_weights(y, 4, beta=1.0)
    raw = [1 / 4, 1 / 2, 1 / 1, 0.0]
    scale = 7 / (4 * raw[0] + 2 * raw[1] + 1 * raw[2])
    for c in range(4):
        assert math.isclose(float(w[c]), raw[c] * scale, rel_tol=1e-6)
    assert math.isclose(float(w[y].mean()), 1.0, rel_tol=1e-6)


def test_reweighted_and_imbalanced_at_run(data, standard):
    tr, x, y = data
    torch.manual_seed(0)
    m = AT.reweighted_at(DigitsMLP(32), tr.x, tr.y, tau=2.0, eps=EPS, steps=2, epochs=4)
    assert A.robust_accuracy(m, x, y) > 0.4
    assert _pgd_acc(m, x, y) > _pgd_acc(standard, x, y) + 0.1
    # class 3 cut to 1/8: unweighted AT never predicts it, n_c^-1 weights recover it
    _, te = load_digits()
    keep = (tr.y != 3) | (torch.arange(len(tr.y)) % 8 == 0)
    x3, y3 = te.x[te.y == 3], te.y[te.y == 3]
    acc3 = {}
    for beta in (0.0, 1.0):
        torch.manual_seed(0)
        m = AT.imbalanced_at(DigitsMLP(64), tr.x[keep], tr.y[keep], eps=EPS, steps=2, epochs=6,
                             beta=beta)
        acc3[beta] = A.robust_accuracy(m, x3, y3)
    assert acc3[1.0] > acc3[0.0] + 0.3


def test_fgsm_at_logs_abnormal_share_and_co_detector(data):
    tr, x, y = data
    torch.manual_seed(0)
    hist = AT.TrainHistory()
    m = AT.fgsm_at(DigitsMLP(64), tr.x, tr.y, eps=EPS, epochs=3, history=hist, guard=True)
    assert len(hist.abnormal) == 3 and all(0.0 <= a <= 1.0 for a in hist.abnormal)
    assert 0 <= hist.rollbacks <= 3
    _, a_f, a_p = AT.catastrophic_overfitting(m, x, y, EPS, steps=10)
    assert a_p <= a_f + 0.02
    # a gradient-masked model: distillation at T=50 → FGSM stalls, PGD-DLR does not
    torch.manual_seed(0)
    dist = AT.defensive_distillation(DigitsMLP(64), DigitsMLP(64), tr.x, tr.y,
                                     temperature=50.0, epochs=8)
    flag_d, f_d, _ = AT.catastrophic_overfitting(dist, x, y, EPS, steps=10)
    assert isinstance(flag_d, bool) and 0.0 <= f_d <= 1.0


def test_distillation_resists_fgsm_but_falls_to_cw(data, standard):
    tr, x, y = data
    torch.manual_seed(0)
    dist = AT.defensive_distillation(DigitsCNN(), DigitsCNN(), tr.x, tr.y, temperature=50.0,
                                     epochs=8)
    assert A.robust_accuracy(dist, x, y) > 0.75
    fgsm_dist = A.robust_accuracy(dist, A.fgsm(dist, x, y, EPS), y)
    fgsm_std = A.robust_accuracy(standard, A.fgsm(standard, x, y, EPS), y)
    assert fgsm_dist > fgsm_std + 0.3            # looks robust to FGSM ...
    xs, ys = x[:40], y[:40]
    adv = A.cw_l2(dist, xs, ys, steps=40, binary_steps=3, c_init=1.0)
    assert float((A.predict(dist, adv) != ys).float().mean()) >= 0.9   # ... but is not
    assert A.robust_accuracy(dist, A.apgd(dist, x, y, EPS, loss="dlr", steps=20), y) < 0.2


def test_bad_training_input(data):
    tr, _, _ = data
    with pytest.raises(ValueError, match="eps"):
        AT.pgd_at(DigitsMLP(8), tr.x[:10], tr.y[:10], eps=2.0, epochs=1)
    with pytest.raises(ValueError, match="bounds"):
        AT.trades(DigitsMLP(8), tr.x[:10] * 3, tr.y[:10], epochs=1)
    with pytest.raises(ValueError, match="epochs"):
        AT.pgd_at(DigitsMLP(8), tr.x[:10], tr.y[:10], epochs=0)
    with pytest.raises(ValueError, match="tau"):
        AT.dro_weights(torch.zeros(3), 0.0)
    with pytest.raises(ValueError, match="temperature"):
        AT.defensive_distillation(DigitsMLP(8), DigitsMLP(8), tr.x[:10], tr.y[:10],
                                  temperature=-1.0)


def test_co_guard_rolls_back_on_detection(data, monkeypatch):
    """Force the detector to fire: every epoch is rolled back, so the weights never move."""
    tr, _, _ = data
    monkeypatch.setattr(AT, "catastrophic_overfitting", lambda *a, **k: (True, 1.0, 0.0))
    torch.manual_seed(0)
    model = DigitsMLP(16)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    hist = AT.TrainHistory()
    AT.fgsm_at(model, tr.x[:128], tr.y[:128], eps=EPS, epochs=2, history=hist, guard=True)
    assert hist.rollbacks == 2
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
