"""Attacks: each one does something real on a trained digits model, stays in its ε-ball and
box, matches a naive reference, and rejects bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from certkit.vision import attacks as A
from certkit.vision.attacks.apgd import checkpoints
from certkit.vision.attacks.quadattack import topk_success
from certkit.vision.data.digits import load_digits
from certkit.vision.data.models import DigitsCNN, accuracy, train_classifier

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits():
    torch.manual_seed(0)
    tr, te = load_digits()
    model = train_classifier(DigitsCNN(), tr.x, tr.y, epochs=10, seed=0)
    assert accuracy(model, te.x, te.y) > 0.9
    return model, te.x[:120], te.y[:120]


def _in_ball(xa, x, eps, norm):
    d = A.distance(xa, x, norm)
    assert float(d.max()) <= eps * (1 + 1e-5) + 1e-6
    assert float(xa.min()) >= 0.0 and float(xa.max()) <= 1.0


def naive_pgd(model, x, y, eps, steps, alpha, seed=0):
    """The reference ℓ∞ PGD loop (as in torchattacks.PGD / Madry et al.), written plainly."""
    g = torch.Generator().manual_seed(seed)
    xa = (x + torch.empty_like(x).uniform_(-eps, eps, generator=g)).clamp(0, 1)
    for _ in range(steps):
        xa.requires_grad_(True)
        loss = F.cross_entropy(model(xa), y)
        grad, = torch.autograd.grad(loss, xa)
        xa = xa.detach() + alpha * grad.sign()
        xa = torch.min(torch.max(xa, x - eps), x + eps).clamp(0, 1)
    return xa


def test_fgsm_equals_naive_formula(digits):
    model, x, y = digits
    xa = A.fgsm(model, x, y, 0.1)
    xr = x.clone().requires_grad_(True)
    g, = torch.autograd.grad(F.cross_entropy(model(xr), y, reduction="sum"), xr)
    ref = (x + 0.1 * g.sign()).clamp(0, 1)
    assert torch.allclose(xa, ref)


@pytest.mark.parametrize("norm,eps", [("linf", 0.3), ("l2", 2.5)])
def test_pgd_large_eps_breaks_model_and_stays_in_ball(digits, norm, eps):
    model, x, y = digits
    xa = A.pgd(model, x, y, eps, norm=norm, steps=20)
    _in_ball(xa, x, eps, norm)
    assert A.robust_accuracy(model, xa, y) <= 0.05
    assert A.robust_accuracy(model, x, y) >= 0.9


def test_pgd_at_least_as_strong_as_reference_loop(digits):
    model, x, y = digits
    eps, steps = 0.1, 20
    ours = A.robust_accuracy(model, A.pgd(model, x, y, eps, steps=steps, step_size=eps / 4), y)
    ref = A.robust_accuracy(model, naive_pgd(model, x, y, eps, steps, eps / 4), y)
    assert ours <= ref + 0.02
    assert ours < A.robust_accuracy(model, x, y) - 0.2  # it does something


def test_pgd_targeted_reaches_targets(digits):
    model, x, y = digits
    t = (y + 1) % 10
    xa = A.pgd(model, x, t, 0.4, steps=30, targeted=True)
    _in_ball(xa, x, 0.4, "linf")
    assert float((A.predict(model, xa) == t).float().mean()) >= 0.9
    xa2 = A.pgd(model, x, t, 0.4, steps=30, targeted=True, loss="cw")
    assert float((A.predict(model, xa2) == t).float().mean()) >= 0.9


def test_restarts_never_weaken(digits):
    model, x, y = digits
    one = A.robust_accuracy(model, A.pgd(model, x, y, 0.08, steps=10, restarts=1, seed=3), y)
    three = A.robust_accuracy(model, A.pgd(model, x, y, 0.08, steps=10, restarts=3, seed=3), y)
    assert three <= one


def test_apgd_checkpoints_match_paper_schedule():
    # p = 0, .22, .41, .57, .70, .80, .87, .93, .99 (then 1.05 > 1): w = ceil(p·100)
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]


def test_apgd_ensemble_at_least_as_strong_as_pgd(digits):
    model, x, y = digits
    eps = 0.1
    pgd_acc = A.robust_accuracy(model, A.pgd(model, x, y, eps, steps=20), y)
    xa = A.apgd_ensemble(model, x, y, eps, steps=20, n_target_classes=2)
    _in_ball(xa, x, eps, "linf")
    assert A.robust_accuracy(model, xa, y) <= pgd_acc + 0.01
    xa = A.apgd(model, x, y, 1.0, norm="l2", loss="dlr", steps=20)
    _in_ball(xa, x, 1.0, "l2")


def test_losses_match_naive():
    z = torch.randn(6, 10, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 3, 9, 4, 4, 1])
    for i in range(6):
        zi = z[i].tolist()
        other = max(v for j, v in enumerate(zi) if j != y[i])
        s = sorted(zi, reverse=True)
        assert abs(float(A.margin_loss(z, y)[i]) - (other - zi[y[i]])) < 1e-5
        assert abs(float(A.dlr_loss(z, y)[i]) - (other - zi[y[i]]) / (s[0] - s[2])) < 1e-5


def test_cw_finds_smaller_perturbations_than_fgsm(digits):
    model, x, y = digits
    x, y = x[:40], y[:40]
    xc = A.cw_l2(model, x, y, steps=60, binary_steps=5)
    ok_c = A.predict(model, xc) != y
    assert float(ok_c.float().mean()) >= 0.95
    xf = A.fgsm(model, x, y, 0.3)
    ok_f = A.predict(model, xf) != y
    both = ok_c & ok_f
    assert int(both.sum()) >= 10
    dc = A.distance(xc, x, "l2")[both]
    df = A.distance(xf, x, "l2")[both]
    assert float(dc.median()) < 0.7 * float(df.median())
    assert float(xc.min()) >= 0 and float(xc.max()) <= 1


def test_lbfgs_reaches_target_with_small_perturbation(digits):
    model, x, y = digits
    x, y = x[:12], y[:12]
    t = (y + 3) % 10
    xa = A.lbfgs_attack(model, x, y, target=t, search_steps=4, max_iter=40)
    assert float((A.predict(model, xa) == t).float().mean()) >= 0.9
    assert float(xa.min()) >= 0 and float(xa.max()) <= 1
    assert float(A.distance(xa, x, "l2").median()) < 2.0


def test_topk_qp_matches_scipy():
    from scipy.optimize import minimize

    g = torch.Generator().manual_seed(1)
    h = torch.randn(3, 6, dtype=torch.float64, generator=g)
    w = torch.randn(5, 6, dtype=torch.float64, generator=g)
    b = torch.randn(5, dtype=torch.float64, generator=g)
    targets = torch.tensor([[4, 2], [0, 1], [3, 0]])
    d = A.topk_qp(h, targets, weight=w, bias=b, margin=0.2, iters=3000)
    for i in range(3):
        hi, t = h[i].numpy(), targets[i].tolist()
        rest = [j for j in range(5) if j not in t]
        pairs = [(t[0], t[1])] + [(t[1], j) for j in rest]
        W, B = w.numpy(), b.numpy()
        cons = [{"type": "ineq",
                 "fun": (lambda v, a=a, c=c, W=W, B=B, hi=hi:
                         (W[a] - W[c]) @ (hi + v) + B[a] - B[c] - 0.2)}
                for a, c in pairs]
        ref = minimize(lambda v: v @ v, np.zeros(6), constraints=cons, method="SLSQP")
        assert ref.success
        assert abs(float(d[i] @ d[i]) - ref.fun) < 1e-4 * max(1.0, ref.fun)
        z = w @ (h[i] + d[i]) + b
        for a, c in pairs:
            assert float(z[a] - z[c]) >= 0.2 - 1e-4


def test_quadattack_orders_top_k(digits):
    model, x, _ = digits
    x = x[:20]
    g = torch.Generator().manual_seed(0)
    targets = torch.stack([torch.randperm(10, generator=g)[:3] for _ in range(20)])
    xa = A.quadattack(model, x, targets, steps=60)
    with torch.no_grad():
        assert float(topk_success(model(xa), targets).float().mean()) >= 0.9
        assert not bool(topk_success(model(x), targets).all())
    # embedding-space QP through the final linear layer
    feats = model.net[:-1]
    xa = A.quadattack(model, x, targets, features=feats, head=model.net[-1], steps=60)
    with torch.no_grad():
        assert float(topk_success(model(xa), targets).float().mean()) >= 0.8
    assert float(xa.min()) >= 0 and float(xa.max()) <= 1


def test_smoothadv_lowers_smoothed_accuracy_and_is_batch_invariant(digits):
    model, x, y = digits
    x, y = x[:40], y[:40]
    sigma, eps = 0.25, 1.5

    def smoothed_acc(xx):
        gen = torch.Generator().manual_seed(123)
        noise = torch.randn((xx.shape[0], 64, *xx.shape[1:]), generator=gen) * sigma
        with torch.no_grad():
            lp = A.smoothed_log_probs(model, xx, noise)
        return float((lp.argmax(1) == y).float().mean())

    xa = A.smoothadv_pgd(model, x, y, sigma, eps, steps=10, num_noise=8)
    _in_ball(xa, x, eps, "l2")
    # a random direction of the same norm barely moves it; the attack does
    r = torch.randn(x.shape, generator=torch.Generator().manual_seed(5))
    xr = (x + eps * r / r.flatten(1).norm(dim=1).view(-1, 1, 1, 1)).clamp(0, 1)
    assert smoothed_acc(xa) < smoothed_acc(xr) - 0.3
    # noise keyed by (seed, input index, sample): splitting the batch changes nothing
    xa1 = A.smoothadv_pgd(model, x[:15], y[:15], sigma, eps, steps=10, num_noise=8,
                          indices=torch.arange(15))
    xa2 = A.smoothadv_pgd(model, x[15:], y[15:], sigma, eps, steps=10, num_noise=8,
                          indices=torch.arange(15, 40))
    assert torch.allclose(torch.cat([xa1, xa2]), xa, atol=1e-5)


# ------------------------------------------------------------------ bad input

def test_bad_input_is_rejected(digits):
    model, x, y = digits
    x, y = x[:4], y[:4]
    with pytest.raises(ValueError, match="eps"):
        A.pgd(model, x, y, 1.5)
    with pytest.raises(ValueError, match="eps"):
        A.pgd(model, x, y, 100.0, norm="l2")
    with pytest.raises(ValueError, match="eps"):
        A.fgsm(model, x, y, -0.1)
    with pytest.raises(ValueError, match="bounds"):
        A.pgd(model, x * 2 + 0.5, y, 0.1)
    with pytest.raises(ValueError, match="y: labels"):
        A.pgd(model, x, y + 10, 0.1)
    with pytest.raises(ValueError, match="y: labels"):
        A.cw_l2(model, x, y - 10, steps=2, binary_steps=1)
    with pytest.raises(TypeError, match="y"):
        A.apgd(model, x, y.float(), 0.1)
    with pytest.raises(ValueError, match="norm"):
        A.pgd(model, x, y, 0.1, norm="l1")
    with pytest.raises(ValueError, match="x: contains NaN"):
        A.pgd(model, x.clone().fill_(float("nan")), y, 0.1)
    with pytest.raises(ValueError, match="sigma"):
        A.smoothadv_pgd(model, x, y, 0.0, 0.5)
    with pytest.raises(ValueError, match="targets"):
        A.quadattack(model, x, torch.tensor([[1, 1]] * 4))
    with pytest.raises(ValueError, match="y: expected shape"):
        A.pgd(model, x, y[:2], 0.1)


def test_train_mode_warns_switches_and_restores():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32),
                                torch.nn.Dropout(0.5), torch.nn.Linear(32, 10))
    model.train()
    seen = []
    model.register_forward_pre_hook(lambda m, a: seen.append(m.training))
    x = torch.rand(5, 1, 8, 8)
    y = torch.zeros(5, dtype=torch.long)
    with pytest.warns(A.TrainModeWarning, match="train mode"):
        A.pgd(model, x, y, 0.1, steps=3)
    assert model.training
    assert seen and not any(seen)
    with pytest.warns(A.TrainModeWarning):
        A.cw_l2(model, x, y, steps=2, binary_steps=1)
    assert model.training
