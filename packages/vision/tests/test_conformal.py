"""Split conformal (THR/APS/RAPS) and robust conformal (RSCP, RSCP+, PTT): naive
references, coverage simulations, the concentration margins, and a small attacked
coverage check (the 50-split digits version runs in the report and the slow test)."""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import pytest
import torch

from certkit.vision.conformal.experiments import robust_coverage_experiment
from certkit.vision.conformal.robust import (
    RSCP,
    DegenerateSetsWarning,
    PTTransform,
    RSCPPlus,
    empirical_bernstein_margin,
    hoeffding_margin,
    pgd_smoothed_score,
    smoothed_scores,
)
from certkit.vision.conformal.scores import (
    SplitConformal,
    class_scores,
    conformal_quantile,
    coverage_and_size,
)
from certkit.vision.data.digits import load_digits
from certkit.vision.data.models import DigitsMLP, train_classifier


def naive_scores(p: np.ndarray, score: str, u: np.ndarray, lam: float = 0.01, k_reg: int = 5) -> np.ndarray:
    n, k = p.shape
    out = np.zeros_like(p)
    for i in range(n):
        for y in range(k):
            if score == "thr":
                out[i, y] = 1 - p[i, y]
                continue
            order = sorted(range(k), key=lambda j: (-p[i, j], j))
            rank = order.index(y)
            out[i, y] = sum(p[i, j] for j in order[:rank]) + u[i] * p[i, y]
            if score == "raps":
                out[i, y] += lam * max(0, rank + 1 - k_reg)
    return out


@pytest.mark.parametrize("score", ["thr", "aps", "raps"])
def test_scores_match_naive(score: str) -> None:
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(7), size=20)
    u = rng.random(20)
    np.testing.assert_allclose(class_scores(p, score, u=u, lam=0.02, k_reg=2),
                               naive_scores(p, score, u, 0.02, 2), atol=1e-12)


def test_quantile_matches_definition() -> None:
    rng = np.random.default_rng(1)
    for n in (1, 9, 10, 99, 500):
        s = rng.random(n)
        for a in (0.05, 0.1, 0.5):
            k = math.ceil((1 - a) * (n + 1))
            expect = math.inf if k > n else sorted(s)[k - 1]
            assert conformal_quantile(s, a) == expect


@pytest.mark.parametrize("score", ["thr", "aps", "raps"])
def test_split_conformal_coverage_simulation(score: str) -> None:
    """Exchangeable synthetic data: mean coverage over 400 splits is in
    [1 − α, 1 − α + 1/(n+1)] up to Monte-Carlo error."""
    rng = np.random.default_rng(2)
    alpha, n_cal, n_test, reps = 0.1, 100, 200, 400
    covs = []
    for r in range(reps):
        p = rng.dirichlet(np.full(5, 0.7), size=n_cal + n_test)
        y = np.minimum((rng.random(len(p))[:, None] > np.cumsum(p, 1)).sum(1), 4)
        sc = SplitConformal(score=score, alpha=alpha, seed=r).calibrate(probs=p[:n_cal], y=y[:n_cal])
        covs.append(sc.evaluate(probs=p[n_cal:], y=y[n_cal:])["coverage"])
    mean, se = np.mean(covs), np.std(covs) / np.sqrt(reps)
    assert mean >= 1 - alpha - 3 * se
    assert mean <= 1 - alpha + 1 / (n_cal + 1) + 3 * se


def test_margins() -> None:
    assert hoeffding_margin(1000, 0.001) == pytest.approx(math.sqrt(math.log(1000) / 2000))
    # empirical Bernstein: P(mean - margin > E) <= β, by simulation on Beta(0.3, 2) samples
    rng = np.random.default_rng(3)
    beta, n, reps = 0.05, 64, 20000
    x = rng.beta(0.3, 2.0, size=(reps, n))
    lower = x.mean(1) - empirical_bernstein_margin(x.var(1, ddof=1), n, beta)
    true = 0.3 / 2.3
    miss = np.mean(lower > true)
    assert miss <= beta / 2 + 3 * np.sqrt(beta / 2 / reps)  # one side of the two-sided bound
    # Hoeffding margin coverage on the same samples
    miss_h = np.mean(x.mean(1) + hoeffding_margin(n, beta) < true)
    assert miss_h <= beta + 3 * np.sqrt(beta / reps)


def test_ptt_transform_is_monotone_rank_sigmoid() -> None:
    t = PTTransform(np.linspace(0, 1, 101), temperature=400, b=0.9)
    s = np.array([0.0, 0.5, 0.89, 0.905, 1.0])
    out = t(s)
    assert np.all(np.diff(out) >= 0) and out[0] < 1e-100 and out[-1] > 0.999
    q = np.searchsorted(t.holdout, s, side="right") / 101
    np.testing.assert_allclose(out, 1 / (1 + np.exp(-400 * (q - 0.9))))
    st = t.torch(torch.tensor(s, requires_grad=True))
    assert st.shape == (5,)


@pytest.fixture(scope="module")
def mlp() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    tr, te = load_digits()
    torch.manual_seed(0)
    model = train_classifier(DigitsMLP(hidden=64), tr.x, tr.y, epochs=5, noise_sigma=0.25, batch_size=128,
                             lr=1e-2)
    return model, te.x, te.y


def test_smoothed_scores_match_naive_mc(mlp) -> None:
    from certkit.core import gaussian_noise

    model, x, _ = mlp
    mean, var = smoothed_scores(model, x[:3], 0.25, 8, score="thr", seed=4, indices=[5, 6, 7])
    for i, idx in enumerate([5, 6, 7]):
        rows = []
        for j in range(8):
            eps = gaussian_noise(x[i].shape, 0.25, 4, offset=j * 64, stream=idx)
            with torch.no_grad():
                rows.append(1 - torch.softmax(model((x[i] + torch.from_numpy(eps))[None]).double(), 1)[0].numpy())
        rows = np.array(rows)
        np.testing.assert_allclose(mean[i], rows.mean(0), atol=1e-6)
        np.testing.assert_allclose(var[i], rows.var(0, ddof=1), atol=1e-6)


def test_pgd_raises_the_smoothed_true_score(mlp) -> None:
    model, x, y = mlp
    adv = pgd_smoothed_score(model, x[:20], y[:20], 0.25, 0.5, steps=10, n_mc=8)
    assert torch.all((adv - x[:20]).flatten(1).norm(dim=1) <= 0.5 + 1e-5)
    clean, _ = smoothed_scores(model, x[:20], 0.25, 64, seed=1)
    att, _ = smoothed_scores(model, adv, 0.25, 64, seed=1)
    idx = np.arange(20), y[:20].numpy()
    assert att[idx].mean() > clean[idx].mean() + 0.05


def test_rscp_plus_coverage_under_attack_small(mlp) -> None:
    """Small version of the 50-split check: RSCP+ and PTT keep coverage ≥ 1 − α under a
    PGD attack of size ε, with non-trivial sets; the attack lowers plain (ε = 0) coverage."""
    model, x, y = mlp
    res = robust_coverage_experiment(model, x[:200], y[:200], sigma=0.25, eps=0.125, alpha=0.1, n_mc=256,
                                     n_splits=20, attack_steps=5, attack_mc=8, methods=("rscp+", "ptt"))
    for name in ("rscp+", "ptt"):
        assert res[name]["coverage"] >= 0.9
        assert res[name]["size"] < 5
    plain = robust_coverage_experiment(model, x[:200], y[:200], sigma=0.25, eps=0.0, alpha=0.1, n_mc=128,
                                       n_splits=20, attack_steps=5, attack_mc=8, methods=("rscp",))
    assert plain["rscp"]["size"] < res["rscp+"]["size"]


def test_api_and_bad_input(mlp) -> None:
    model, x, y = mlp
    sc = SplitConformal(model, score="aps", alpha=0.2)
    with pytest.raises(ValueError, match="calibrate"):
        sc.predict_set(x[:5])
    sc.calibrate(x[:100], y[:100])
    sets = sc.predict_set(x[100:150])
    assert sets.shape == (50, 10) and sets.dtype == bool
    assert set(sc.evaluate(x[100:150], y[100:150])) == {"coverage", "size"}
    with pytest.raises(ValueError, match="score"):
        SplitConformal(score="lac2")
    with pytest.raises(ValueError, match="alpha"):
        SplitConformal(alpha=1.0)
    with pytest.raises(ValueError, match="probs"):
        class_scores(np.array([[0.5, 0.6]]))
    with pytest.raises(ValueError, match="beta"):
        RSCPPlus(model, 0.25, 0.1, alpha=0.001, beta=0.001)
    with pytest.raises(ValueError, match="sigma"):
        RSCP(model, -1.0, 0.1)
    with pytest.raises(ValueError, match="sets/labels"):
        coverage_and_size(np.ones((3, 2), bool), [0, 1])
    r = RSCPPlus(model, 0.25, 0.1, alpha=0.2, n_mc=64).calibrate(x[:50], y[:50])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateSetsWarning)  # 64 samples: maybe all-class sets
        assert r.predict_set(x[50:60]).shape == (10, 10)


def test_torchcp_vocabulary(mlp) -> None:
    """TorchCP's names work: 'lac' (any case) is THR, logits where TorchCP takes logits,
    alpha at calibration time; the sets equal certkit's own spelling."""
    model, x, y = mlp
    with torch.no_grad():
        logits = model(x[:200])
    probs = torch.softmax(logits.double(), 1).numpy()
    ours = SplitConformal(score="thr", alpha=0.2).calibrate(probs=probs[:100], y=y[:100])
    theirs = SplitConformal(score="LAC").calibrate(logits=logits[:100], y=y[:100], alpha=0.2)
    assert theirs.score == "thr" and theirs.alpha == 0.2 and theirs.threshold == pytest.approx(ours.threshold)
    np.testing.assert_array_equal(theirs.predict_set(logits=logits[100:]), ours.predict_set(probs=probs[100:]))
    with pytest.raises(ValueError, match=r"probs: .* pass logits="):
        SplitConformal().calibrate(probs=logits[:10], y=y[:10])
    with pytest.raises(ValueError, match="logits: give probs or logits"):
        SplitConformal().calibrate(probs=probs[:10], logits=logits[:10], y=y[:10])
    r = RSCPPlus(model, 0.25, 0.1, score="lac", n_mc=32).calibrate(x[:20], y[:20], alpha=0.3)
    assert r.score == "thr" and r.alpha == 0.3


def test_degenerate_rscp_plus_warns_with_the_needed_sample_size(mlp) -> None:
    """With too few Monte-Carlo samples RSCP+ returns all-class sets: it warns and names an
    n_mc that, rerun, gives informative sets (the issue: n_mc = 64, every PTT set full)."""
    model, x, y = mlp
    r = RSCPPlus(model, 0.25, 0.125, alpha=0.1, n_mc=8).calibrate(x[:100], y[:100])
    with pytest.warns(DegenerateSetsWarning, match=r"of the prediction sets hold all 10 classes with n_mc = 8; "
                                                   r"about n_mc = [\d,]+ would give"):
        sets = r.predict_set(x[100:160])
    assert sets.all(1).mean() > 0.5
    mean, var = r.smoothed(x[100:160], seed_offset=1)
    need = r.needed_n_mc(r._cal_true, mean, var)
    assert need is not None and need > 8
    rerun = RSCPPlus(model, 0.25, 0.125, alpha=0.1, n_mc=need).calibrate(x[:100], y[:100])
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateSetsWarning)
        assert rerun.predict_set(x[100:160]).all(1).mean() <= 0.5


@pytest.mark.skipif(os.environ.get("CERTKIT_SLOW") != "1", reason="set CERTKIT_SLOW=1")
@pytest.mark.slow
def test_rscp_plus_50_splits_full() -> None:
    from certkit.vision.data.reference import digits_cnn

    _, te = load_digits()
    model = digits_cnn(0.25)
    res = robust_coverage_experiment(model, te.x, te.y, sigma=0.25, eps=0.125, alpha=0.1, n_mc=1024,
                                     n_splits=50, attack_steps=20)
    for name in ("rscp+", "ptt"):
        assert res[name]["coverage"] >= 0.9
    assert res["ptt"]["size"] <= res["rscp+"]["size"]


def test_rct_loss_matches_naive_and_training_runs(mlp) -> None:
    from scipy.stats import norm as sp_norm

    from certkit.vision.conformal.rct import rct_loss, train_rct

    torch.manual_seed(0)
    logits = torch.randn(3, 8, 4, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    got = rct_loss(logits, y, 0.25, 0.1, 0.2, temperature=0.5, size_weight=1.0, kappa=1.0).item()
    p = torch.softmax(logits, -1).mean(0).numpy()
    s = np.clip(1 - p, 1e-6, 1 - 1e-6)
    cal = s[np.arange(4), y[:4].numpy()]
    tau = np.quantile(cal, min(1.0, 0.8 * (1 + 1 / 4)))
    z = (sp_norm.ppf(tau) - sp_norm.ppf(s[4:]) + 0.1 / 0.25) / 0.5
    size = (1 / (1 + np.exp(-z))).sum(1)
    ce = np.mean([torch.nn.functional.cross_entropy(logits[i], y).item() for i in range(3)])
    assert got == pytest.approx(ce + np.maximum(size - 1, 0).mean(), rel=1e-6)
    model, x, yy = mlp
    tuned = train_rct(model, x[:128], yy[:128], 0.25, 0.125, epochs=1, m=2, batch_size=64)
    assert tuned is not model
    with pytest.raises(ValueError, match="logits"):
        rct_loss(logits[:, :2], y[:2], 0.25, 0.1)


def test_rct_classification_loss_matches_naive_and_raises_true_label_membership() -> None:
    """The conformal-training classification loss (Stutz et al. 2022): a naive loop over the
    prediction half, and a gradient step on it alone raises the true label's soft
    membership (the term does what it is for)."""
    from scipy.stats import norm as sp_norm

    from certkit.vision.conformal.rct import rct_loss

    torch.manual_seed(1)
    logits = torch.randn(2, 8, 4, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 3, 2, 1, 0])
    lm = torch.rand(4, 4, dtype=torch.float64)
    base = rct_loss(logits, y, 0.25, 0.1, 0.2, temperature=0.5, size_weight=1.0)
    got = rct_loss(logits, y, 0.25, 0.1, 0.2, temperature=0.5, size_weight=1.0, class_weight=2.0,
                   loss_matrix=lm)
    p = torch.softmax(logits, -1).mean(0).numpy()
    s = np.clip(1 - p, 1e-6, 1 - 1e-6)
    tau = np.quantile(s[np.arange(4), y[:4].numpy()], min(1.0, 0.8 * (1 + 1 / 4)))
    c = 1 / (1 + np.exp(-(sp_norm.ppf(tau) - sp_norm.ppf(s[4:]) + 0.1 / 0.25) / 0.5))
    terms = []
    for i in range(4):
        yi = int(y[4 + i])
        t = 1 - c[i, yi]
        for k in range(4):
            if k != yi:
                t += float(lm[yi, k]) * c[i, k]
        terms.append(t)
    assert got.item() == pytest.approx(base.item() + 2.0 * np.mean(terms), rel=1e-6)
    # one gradient step on the classification term alone raises c_y on the prediction half
    z = logits.clone().requires_grad_(True)
    loss = rct_loss(z, y, 0.25, 0.1, 0.2, temperature=0.5, size_weight=0.0, class_weight=1.0, ce_weight=0.0)
    loss.backward()
    z2 = (z - 0.5 * z.grad).detach()
    after = rct_loss(z2, y, 0.25, 0.1, 0.2, temperature=0.5, size_weight=0.0, class_weight=1.0, ce_weight=0.0)
    assert after.item() < loss.item()
    with pytest.raises(ValueError, match="class_weight"):
        rct_loss(logits, y, 0.25, 0.1, class_weight=-1.0)
    with pytest.raises(ValueError, match="loss_matrix"):
        rct_loss(logits, y, 0.25, 0.1, class_weight=1.0, loss_matrix=torch.ones(3, 3))
