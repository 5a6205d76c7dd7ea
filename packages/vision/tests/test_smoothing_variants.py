"""Dual randomized smoothing, adaptive smoothing and the training helpers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm
from torch import nn

from certkit.vision.data.digits import load_digits
from certkit.vision.data.models import DigitsMLP
from certkit.vision.smoothing.adaptive import AdaptiveSmoothing, pgd_accuracy, train_mixer
from certkit.vision.smoothing.dual import DualSmooth, split_checkerboard
from certkit.vision.smoothing.smooth import ABSTAIN
from certkit.vision.training.noise import consistency_loss, train_consistency, train_gaussian


def test_checkerboard_split_matches_naive() -> None:
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).reshape(2, 3, 4, 6)
    left, right = split_checkerboard(x)
    for i in range(4):
        lj = [j for j in range(6) if (i + j) % 2 == 0]
        rj = [j for j in range(6) if (i + j) % 2 == 1]
        assert torch.equal(left[:, :, i], x[:, :, i, lj]) and torch.equal(right[:, :, i], x[:, :, i, rj])
    with pytest.raises(ValueError, match="even W"):
        split_checkerboard(torch.zeros(1, 1, 4, 5))


class Half(nn.Module):
    """Binary linear classifier on a (1, 2, 1) half image."""

    def __init__(self, w: list[float], b: float) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w, dtype=torch.float64), requires_grad=False)
        self.b = b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.reshape(x.shape[0], -1).double() @ self.w + self.b
        return torch.stack([s, -s], 1)


@pytest.mark.filterwarnings("ignore::certkit.vision.data.checks.PixelRangeWarning")  # synthetic inputs in [-1, 1]
def test_dual_radius_sound_on_exact_linear_halves_and_issue_formula_is_not() -> None:
    """For linear halves p^h(a) = Φ(u_h − a/σ) exactly, so the dual classifier flips iff
    some split a² + b² = R² has Φ(u_l − a/σ) + Φ(u_r − b/σ) ≤ 1. Brute-force over the split."""
    sigma = 0.5
    wl, wr = [1.0, 0.5], [0.3, -1.0]
    model = DualSmooth(Half(wl, 0.2), Half(wr, 0.1), 2, sigma)
    rng = np.random.default_rng(0)
    xs = torch.from_numpy(rng.uniform(0, 1, size=(25, 1, 2, 2)))
    certs = model.certify_batch(xs, n0=50, n=5_000, alpha=0.001, batch_size=8192)
    theta = np.linspace(0, np.pi / 2, 2001)
    checked = unsound_seen = 0
    for x, cert in zip(xs, certs, strict=True):
        cls, radius = cert.prediction, cert.radius
        left, right = split_checkerboard(x[None])
        sl = float(left.reshape(-1).double() @ torch.tensor(wl, dtype=torch.float64) + 0.2)
        sr = float(right.reshape(-1).double() @ torch.tensor(wr, dtype=torch.float64) + 0.1)
        # exact probabilities of class `cls` for each half
        sign = 1 if cls == 0 else -1
        ul = sign * sl / (sigma * np.linalg.norm(wl))
        ur = sign * sr / (sigma * np.linalg.norm(wr))
        if cls == ABSTAIN:
            continue
        checked += 1

        def worst(r: float, ul: float = ul, ur: float = ur) -> float:
            return float(np.min(norm.cdf(ul - r * np.cos(theta) / sigma) + norm.cdf(ur - r * np.sin(theta) / sigma)))

        assert worst(0.999 * radius) > 1.0  # sound
        exact = sigma * (ul + ur) / math.sqrt(2)
        assert radius <= exact + 1e-9 and worst(1.01 * exact) < 1.0  # and the exact form is tight
        rl, rr = sigma * ul, sigma * ur
        if rl > 0 and rr > 0 and abs(rl - rr) > 0.1:
            unsound_seen += worst(0.999 * math.hypot(rl, rr)) < 1.0
    assert checked >= 10 and unsound_seen >= 1


def test_consistency_loss_matches_naive() -> None:
    torch.manual_seed(0)
    logits = torch.randn(3, 4, 5)
    y = torch.tensor([0, 1, 2, 3])
    p = torch.softmax(logits, -1)
    pm = p.mean(0)
    ce = np.mean([nn.functional.cross_entropy(logits[i], y).item() for i in range(3)])
    kl = np.mean([[float((pm[b] * (pm[b].log() - p[i, b].log())).sum()) for b in range(4)] for i in range(3)])
    ent = float(-(pm * pm.log()).sum(-1).mean())
    assert consistency_loss(logits, y, 10.0, 0.5).item() == pytest.approx(ce + 10 * kl + 0.5 * ent, rel=1e-5)
    with pytest.raises(ValueError, match="logits"):
        consistency_loss(torch.zeros(4, 5), y)


def test_training_helpers_learn() -> None:
    tr, te = load_digits()
    torch.manual_seed(0)
    m1 = train_gaussian(DigitsMLP(32), tr.x[:400], tr.y[:400], 0.25, epochs=3, lr=1e-2)
    m2 = train_consistency(DigitsMLP(32), tr.x[:400], tr.y[:400], 0.25, epochs=3, lr=1e-2)
    for m in (m1, m2):
        with torch.no_grad():
            assert (m(te.x).argmax(1) == te.y).float().mean() > 0.5


def test_adaptive_smoothing_mixture_and_pgd() -> None:
    tr, te = load_digits()
    torch.manual_seed(0)
    std = train_gaussian(DigitsMLP(32), tr.x[:400], tr.y[:400], 0.05, epochs=3, lr=1e-2)
    rob = train_gaussian(DigitsMLP(32), tr.x[:400], tr.y[:400], 0.5, epochs=3, lr=1e-2)
    mix = AdaptiveSmoothing(std, rob, 64, 10)
    x, y = te.x[:64], te.y[:64]
    with torch.no_grad():
        for w, ref in ((0.0, std), (1.0, rob)):
            mix.fixed_weight = w
            torch.testing.assert_close(mix(x), torch.log_softmax(ref(x), 1), atol=1e-5, rtol=1e-5)
    mix.fixed_weight = None
    train_mixer(mix, tr.x[:256], tr.y[:256], 0.1, epochs=1, steps=3)
    clean = pgd_accuracy(mix, x, y, 0.0)
    attacked = pgd_accuracy(mix, x, y, 0.1, steps=10)
    assert 0.0 <= attacked <= clean <= 1.0
    with pytest.raises(ValueError, match="norm"):
        pgd_accuracy(mix, x, y, 0.1, norm="l1")


def test_dual_certificates_are_keyed_by_input_index_not_batch_position(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A Dual RS certificate depends on the input and its index only: in a batch of 3 or
    alone, resumed from a log or not (the old DualSmooth keyed noise by batch position)."""
    model = DualSmooth(Half([1.0, 0.5], 0.2), Half([0.3, -1.0], 0.1), 2, 0.5)
    rng = np.random.default_rng(1)
    xs = torch.from_numpy(rng.uniform(0.3, 1, size=(3, 1, 2, 2)))
    kw = dict(n0=20, n=300, alpha=0.01, batch_size=97, seed=5)
    batch = model.certify_batch(xs, **kw, indices=[7, 8, 9], labels=[0, 0, 1])
    alone = model.certify_batch(xs[2:], **kw, indices=[9], labels=[1])
    strip = ("seconds",)
    assert {k: v for k, v in batch[2].as_row().items() if k not in strip} == \
        {k: v for k, v in alone[0].as_row().items() if k not in strip}
    assert model.certify(xs[2], **kw, idx=9) == (batch[2].prediction, batch[2].radius)
    assert batch[2].mode == "dual" and batch[2].seed == 5 and batch[2].label == 1
    log = tmp_path / "dual.jsonl"
    first = model.certify_batch(xs[:2], **kw, indices=[7, 8], log=log)
    resumed = model.certify_batch(xs, **kw, indices=[7, 8, 9], log=log)
    assert [c.radius for c in resumed] == [c.radius for c in batch] and resumed[:2] == first
