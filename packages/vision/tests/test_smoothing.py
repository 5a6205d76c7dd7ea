"""Randomized smoothing (Cohen et al. 2019): naive references, determinism, soundness
(brute force on an exactly solvable model, an attack on the smoothed classifier, coverage
of the Clopper-Pearson bound), resume after a crash, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from _vision_models import Linear2
from scipy.stats import beta as beta_dist
from scipy.stats import norm
from torch import nn

from certkit.core import gaussian_noise
from certkit.core.results import ResultLog
from certkit.vision.data.digits import load_digits
from certkit.vision.data.models import DigitsMLP, train_classifier
from certkit.vision.smoothing.smooth import ABSTAIN, Certificate, Smooth

W = np.array([1.0, -2.0, 0.5, 1.5])
B = -0.3


def linear_truth(x: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = x.reshape(len(x), -1) @ W + B
    cls = np.where(s > 0, 0, 1)
    dist = np.abs(s) / np.linalg.norm(W)
    return cls, norm.cdf(dist / sigma), dist


@pytest.fixture(scope="module")
def digits_mlp() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    tr, te = load_digits()
    torch.manual_seed(0)
    model = train_classifier(DigitsMLP(hidden=64), tr.x, tr.y, epochs=5, noise_sigma=0.25,
                             batch_size=128, lr=1e-2)
    return model, te.x[:40], te.y[:40]


# ---------------------------------------------------------------- naive reference
def naive_counts(model: nn.Module, x: torch.Tensor, idx: int, first: int, stop: int, sigma: float,
                 seed: int, k: int) -> np.ndarray:
    m = x.numel()
    counts = np.zeros(k, dtype=np.int64)
    for j in range(first, stop):
        eps = gaussian_noise(x.shape, sigma, seed, offset=j * m, stream=idx)
        with torch.no_grad():
            c = int(model((x + torch.from_numpy(eps).to(x.dtype))[None]).argmax(1))
        counts[c] += 1
    return counts


def test_certify_matches_naive_python_reference(digits_mlp) -> None:
    model, xs, _ = digits_mlp
    sigma, n0, n, alpha = 0.25, 20, 150, 0.01
    smooth = Smooth(model, 10, sigma)
    idx = [3, 11, 0, 7]
    certs = smooth.certify_batch(xs[:4], n0=n0, n=n, alpha=alpha, batch_size=37, seed=5, indices=idx)
    for g, cert in enumerate(certs):
        sel = naive_counts(model, xs[g], idx[g], 0, n0, sigma, 5, 10)
        est = naive_counts(model, xs[g], idx[g], n0, n0 + n, sigma, 5, 10)
        c_a = int(np.argmax(sel))
        n_a = int(est[c_a])
        p_low = beta_dist.ppf(alpha, n_a, n - n_a + 1) if n_a > 0 else 0.0
        assert cert.count == n_a
        assert cert.p_lower == pytest.approx(p_low, rel=1e-9, abs=1e-12)
        if p_low < 0.5:
            assert (cert.prediction, cert.radius) == (ABSTAIN, 0.0)
        else:
            assert cert.prediction == c_a
            assert cert.radius == pytest.approx(sigma * norm.ppf(p_low), rel=1e-9)


def test_predict_matches_binomial_test(digits_mlp) -> None:
    from scipy.stats import binomtest

    model, xs, _ = digits_mlp
    smooth = Smooth(model, 10, 0.5)
    for i in range(3):
        counts = naive_counts(model, xs[i], i, 0, 200, 0.5, 1, 10)
        order = np.argsort(-counts, kind="stable")
        na, nb = counts[order[0]], counts[order[1]]
        expect = ABSTAIN if binomtest(int(na), int(na + nb), 0.5).pvalue > 0.01 else int(order[0])
        assert smooth.predict(xs[i], n=200, alpha=0.01, batch_size=64, seed=1, idx=i) == expect


# ---------------------------------------------------------------- determinism
def test_same_certificates_whatever_batch_order_and_sharding(digits_mlp) -> None:
    model, xs, _ = digits_mlp
    smooth = Smooth(model, 10, 0.25)
    kw = dict(n0=30, n=250, alpha=0.001, seed=9)
    ref = smooth.certify_batch(xs[:12], batch_size=1000, **kw)
    key = [(c.idx, c.prediction, c.radius, c.count) for c in ref]
    for bs in (7, 64, 256):
        got = smooth.certify_batch(xs[:12], batch_size=bs, **kw)
        assert [(c.idx, c.prediction, c.radius, c.count) for c in got] == key
    perm = np.random.default_rng(0).permutation(12)
    got = smooth.certify_batch(xs[:12][perm], batch_size=50, indices=perm.tolist(), **kw)
    assert sorted((c.idx, c.prediction, c.radius, c.count) for c in got) == key
    shards = [smooth.certify_batch(xs[a:a + 4], batch_size=33, indices=list(range(a, a + 4)), **kw)
              for a in (8, 0, 4)]
    assert sorted((c.idx, c.prediction, c.radius, c.count) for s in shards for c in s) == key
    # a different seed gives different noise
    other = smooth.certify_batch(xs[:12], batch_size=1000, **{**kw, "seed": 10})
    assert [c.count for c in other] != [c.count for c in ref]


def test_sequential_is_deterministic_and_matches_single_certify(digits_mlp) -> None:
    model, xs, _ = digits_mlp
    smooth = Smooth(model, 10, 0.25)
    kw = dict(n0=50, n=3000, alpha=0.001, seed=2, mode="sequential", radius_target=[0.0, 0.25, 0.5])
    a = smooth.certify_batch(xs[:6], batch_size=128, **kw)
    b = smooth.certify_batch(xs[:6], batch_size=1000, group_size=2, **kw)
    assert [(c.prediction, c.radius, c.n) for c in a] == [(c.prediction, c.radius, c.n) for c in b]
    single = smooth.certify(xs[4], idx=4, batch_size=256, **kw)
    assert single == (a[4].prediction, a[4].radius)


# ---------------------------------------------------------------- soundness (three checks)
@pytest.mark.filterwarnings("ignore::certkit.vision.data.checks.PixelRangeWarning")  # synthetic inputs in [-1, 1]
def test_bruteforce_exact_model_radius_never_exceeds_truth() -> None:
    """(1) On a linear model the exact robust radius is the distance to the hyperplane."""
    sigma = 0.5
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, size=(60, 1, 2, 2))
    cls, _, dist = linear_truth(x, sigma)
    smooth = Smooth(Linear2(W, B), 2, sigma)
    certs = smooth.certify_batch(torch.from_numpy(x), n0=50, n=4000, alpha=0.001, batch_size=4096)
    certified = [c for c in certs if c.prediction != ABSTAIN]
    assert len(certified) > 40
    for c in certified:
        assert c.prediction == cls[c.idx]
        assert c.radius <= dist[c.idx] + 1e-12
        # and the bound is not vacuous: within the CP slack of the truth
        assert c.radius >= 0.5 * dist[c.idx] - 0.3


@pytest.mark.filterwarnings("ignore::certkit.vision.data.checks.PixelRangeWarning")  # synthetic inputs in [-1, 1]
def test_attack_on_exact_model_cannot_cross_certified_radius() -> None:
    """(2a) The worst direction for a linear model is -w: moving by 0.999R never flips g."""
    sigma = 0.5
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, size=(30, 1, 2, 2))
    _, _, dist = linear_truth(x, sigma)
    smooth = Smooth(Linear2(W, B), 2, sigma)
    for c in smooth.certify_batch(torch.from_numpy(x), n0=50, n=2000, batch_size=4096):
        if c.prediction == ABSTAIN:
            continue
        direction = -np.sign(x[c.idx].ravel() @ W + B) * W / np.linalg.norm(W)
        moved = x[c.idx].ravel() + 0.999 * c.radius * direction
        assert (0 if moved @ W + B > 0 else 1) == c.prediction
        over = x[c.idx].ravel() + 1.001 * dist[c.idx] * direction
        assert (0 if over @ W + B > 0 else 1) != c.prediction  # the attack itself works


def smoothadv_pgd(model: nn.Module, x: torch.Tensor, label: int, eps: float, sigma: float,
                  steps: int = 20, m: int = 64, seed: int = 0) -> torch.Tensor:
    """SmoothAdv-style PGD (Salman et al. 2019, arXiv 1906.04584): ascend the cross-entropy
    of the Monte-Carlo average of softmaxes under noise, projected to the ℓ2 ball."""
    g = torch.Generator().manual_seed(seed)
    delta = torch.zeros_like(x, requires_grad=True)
    step = 2.5 * eps / steps
    for _ in range(steps):
        noise = sigma * torch.randn((m, *x.shape), generator=g)
        probs = torch.softmax(model(x + delta + noise), 1).mean(0)
        loss = -torch.log(probs[label] + 1e-12)
        (grad,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            delta += step * grad / (grad.norm() + 1e-12)
            nrm = delta.norm()
            if nrm > eps:
                delta *= eps / nrm
    return (x + delta).detach()


@pytest.mark.filterwarnings("ignore::certkit.vision.data.checks.PixelRangeWarning")  # ℓ2 attacks leave [0, 1]
def test_smoothadv_attack_cannot_flip_certified_digits(digits_mlp) -> None:
    """(2b) Attack the smoothed trained classifier inside the certified ball."""
    model, xs, ys = digits_mlp
    sigma = 0.25
    smooth = Smooth(model, 10, sigma)
    certs = smooth.certify_batch(xs[:12], n0=50, n=1000, alpha=0.001, batch_size=2048, labels=ys[:12])
    attacked = 0
    for c in certs:
        if c.prediction == ABSTAIN or c.radius < 0.05:
            continue
        adv = smoothadv_pgd(model, xs[c.idx], c.prediction, 0.95 * c.radius, sigma, steps=10, m=32, seed=c.idx)
        assert (adv - xs[c.idx]).norm() <= 0.95 * c.radius + 1e-5
        pred = smooth.predict(adv, n=1000, alpha=0.001, batch_size=2048, seed=77, idx=c.idx)
        assert pred in (c.prediction, ABSTAIN)
        attacked += 1
    assert attacked >= 6
    # the attack is not toothless: at 4x the radius it flips some smoothed predictions
    flips = 0
    for c in certs[:8]:
        if c.prediction == ABSTAIN:
            continue
        adv = smoothadv_pgd(model, xs[c.idx], c.prediction, 4 * max(c.radius, 0.25), sigma, steps=10, m=32,
                            seed=1)
        flips += smooth.predict(adv, n=500, alpha=0.001, batch_size=512, seed=3, idx=c.idx) not in (
            c.prediction, ABSTAIN)
    assert flips >= 1


@pytest.mark.filterwarnings("ignore::certkit.vision.data.checks.PixelRangeWarning")  # synthetic inputs in [-1, 1]
def test_clopper_pearson_coverage_on_exact_model() -> None:
    """(3) Over many independent noise streams P(p̲_A > p_A) ≤ α (+ MC error)."""
    sigma, alpha, reps, n = 0.5, 0.1, 400, 200
    x0 = np.array([0.3, -0.2, 0.1, 0.4]).reshape(1, 1, 2, 2)
    _, p_true, _ = linear_truth(x0, sigma)
    smooth = Smooth(Linear2(W, B), 2, sigma)
    xs = torch.from_numpy(np.repeat(x0, reps, axis=0))
    certs = smooth.certify_batch(xs, n0=10, n=n, alpha=alpha, batch_size=8192, seed=3)
    miss = np.mean([c.p_lower > p_true[0] for c in certs])
    assert miss <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / reps)
    assert miss > 0.0  # the bound is tight enough to miss sometimes at α = 0.1


# ---------------------------------------------------------------- resume after a crash
class Exploding(nn.Module):
    def __init__(self, inner: nn.Module, after: int) -> None:
        super().__init__()
        self.inner, self.after, self.calls = inner, after, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls > self.after:
            raise RuntimeError("injected crash")
        return self.inner(x)


def _strip(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def test_resume_after_injected_exception(digits_mlp, tmp_path: Path) -> None:
    model, xs, ys = digits_mlp
    kw = dict(n0=20, n=200, alpha=0.001, batch_size=64, seed=4, labels=ys[:10], group_size=1)
    full = Smooth(model, 10, 0.25).certify_batch(xs[:10], log=tmp_path / "full.jsonl", **kw)
    log = tmp_path / "crash.jsonl"
    with pytest.raises(RuntimeError, match="injected"):
        Smooth(Exploding(model, after=16), 10, 0.25).certify_batch(xs[:10], log=log, **kw)
    partial = ResultLog.read(log)
    assert 0 < len(partial) < 10
    boom = Exploding(model, after=10**9)
    resumed = Smooth(boom, 10, 0.25).certify_batch(xs[:10], log=log, **kw)
    assert boom.calls == 1 + (10 - len(partial)) * 4  # a dry run, then only the missing inputs
    assert [c.as_row() | {"seconds": 0} for c in resumed] == [c.as_row() | {"seconds": 0} for c in full]
    rows = ResultLog.read(log)
    assert sorted(r["idx"] for r in rows) == list(range(10))
    assert {"idx", "label", "prediction", "radius", "correct", "n", "seconds", "seed"} <= set(rows[0])
    assert rows[0]["seed"] == 4 and ResultLog.read_settings(log)["seed"] == 4


_CHILD = """
import sys, time, torch
from torch import nn
from certkit.vision.smoothing.smooth import Smooth
class Slow(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.f = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    def forward(self, x):
        time.sleep(0.1)
        return self.f(x)
xs = torch.load(sys.argv[1], weights_only=True)
# optimize=False: a trace would drop the sleep, and the run would end before the kill
Smooth(Slow(), 10, 0.5, optimize=False).certify_batch(xs, n0=10, n=90, batch_size=100, seed=1, log=sys.argv[2],
                                      group_size=1)
"""


class Slow(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.f = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.f(x)  # type: ignore[no-any-return]


def test_resume_after_kill(tmp_path: Path) -> None:
    xs = torch.rand(40, 1, 8, 8)
    torch.save(xs, tmp_path / "xs.pt")
    log = tmp_path / "run.jsonl"
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "xs.pt"), str(log)])
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            if log.exists() and len(log.read_text().splitlines()) >= 4:
                break
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    before = len(log.read_text().splitlines()) - 1
    assert 3 <= before < 40, "the child should be killed part-way"
    with open(log, "ab") as fh:  # simulate a torn write at the moment of the kill
        fh.write(b'{"idx": 39, "pred')
    slow = Slow()  # the child's model without the sleep: same architecture and weights, same fingerprint
    resumed = Smooth(slow, 10, 0.5).certify_batch(xs, n0=10, n=90, batch_size=100, seed=1, log=log)
    fresh = Smooth(slow, 10, 0.5).certify_batch(xs, n0=10, n=90, batch_size=100, seed=1)
    assert _strip([c.as_row() for c in resumed]) == _strip([c.as_row() for c in fresh])
    lines = log.read_text().splitlines()  # the settings line, then one line per input
    assert len(lines) == 41 and len({r["idx"] for r in ResultLog.read(log)}) == 40


# ---------------------------------------------------------------- bad input
def test_bad_input_errors(digits_mlp) -> None:
    model, xs, _ = digits_mlp
    s = Smooth(model, 10, 0.25)
    with pytest.raises(ValueError, match="n: expected n >= n0"):
        s.certify(xs[0], n0=100, n=10)
    with pytest.raises(ValueError, match="alpha"):
        s.certify(xs[0], n=100, n0=10, alpha=1.5)
    with pytest.raises(ValueError, match="sigma"):
        Smooth(model, 10, 0.0)
    with pytest.raises(ValueError, match="sigma"):
        Smooth(model, 10, float("nan"))
    with pytest.raises(ValueError, match="x: expected shape"):
        s.certify_batch(xs[0], n0=10, n=10)
    with pytest.raises(ValueError, match="x: contains NaN"):
        s.certify_batch(torch.full((1, 1, 8, 8), float("nan")), n0=10, n=10)
    with pytest.raises(TypeError, match="x: expected a floating"):
        s.certify_batch(torch.zeros((1, 1, 8, 8), dtype=torch.int64), n0=10, n=10)
    with pytest.raises(ValueError, match="num_classes"):
        Smooth(model, 7, 0.25).certify_batch(xs[:1], n0=10, n=10)
    with pytest.raises(TypeError, match="model"):
        Smooth("not a model", 10, 0.25)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mode"):
        s.certify(xs[0], n0=10, n=10, mode="fast")
    with pytest.raises(ValueError, match="radius_target"):
        s.certify(xs[0], n0=10, n=10, mode="sequential", radius_target=-1.0)
    with pytest.raises(ValueError, match="labels"):
        s.certify_batch(xs[:2], n0=10, n=10, labels=[1, 12])
    with pytest.raises(ValueError, match="indices"):
        s.certify_batch(xs[:2], n0=10, n=10, indices=[1, 1])


def test_probability_outputs_warn(digits_mlp) -> None:
    model, xs, _ = digits_mlp
    probs = nn.Sequential(model, nn.Softmax(dim=1))
    with pytest.warns(UserWarning, match="probabilities"):
        Smooth(probs, 10, 0.25).certify_batch(xs[:1], n0=10, n=10)


def test_model_moved_to_device_and_dtype_follows_model(digits_mlp) -> None:
    model, xs, _ = digits_mlp
    s = Smooth(model, 10, 0.25, device="cpu")
    a = s.certify_batch(xs[:2].double(), n0=10, n=50)  # float64 x, float32 model: cast
    b = s.certify_batch(xs[:2], n0=10, n=50)
    assert [c.as_row() | {"seconds": 0} for c in a] == [c.as_row() | {"seconds": 0} for c in b]


def test_certificate_row_roundtrip() -> None:
    c = Certificate(idx=1, prediction=2, radius=0.3, p_lower=0.9, count=9, n=10, n0=5, seconds=0.1,
                    sigma=0.25, alpha=0.001, label=2, correct=True)
    assert Certificate.from_row(json.loads(json.dumps(c.as_row()))) == c
    assert c.forward_passes == 15


@pytest.mark.skipif(os.environ.get("CERTKIT_SLOW") != "1", reason="set CERTKIT_SLOW=1")
@pytest.mark.slow
def test_paper_scale_defaults(digits_mlp) -> None:
    model, xs, _ = digits_mlp
    pred, radius = Smooth(model, 10, 0.25).certify(xs[0])
    assert pred != ABSTAIN and radius > 0


# ---------------------------------------------------------------- optimize="auto"
class Branchy(nn.Module):
    """Data-dependent control flow: a trace would freeze one branch."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(64, 10), nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1)
        return self.a(h) if bool(h.mean() > 0.5) else self.b(h)


class FixedBatch(nn.Module):
    """Hard-codes its batch size: a trace of it runs at other sizes, the model does not."""

    def __init__(self, batch: int) -> None:
        super().__init__()
        self.batch, self.f = batch, nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] == 1:  # the dry run on one input
            return self.f(x.reshape(1, 64))
        return self.f(x.reshape(self.batch, 64))


def test_optimize_auto_traces_only_when_safe(digits_mlp) -> None:
    model, xs, _ys = digits_mlp
    kw = dict(n0=20, n=400, alpha=0.001, batch_size=128, seed=1)
    eager = Smooth(model, 10, 0.25, optimize=False)
    auto = Smooth(model, 10, 0.25)
    ce, ca = eager.certify_batch(xs[:6], **kw), auto.certify_batch(xs[:6], **kw)
    assert auto.optimized is True and eager.optimized is False
    # the traced graph is the same function up to float rounding: same certificates here
    assert [(c.prediction, c.count) for c in ce] == [(c.prediction, c.count) for c in ca]
    # data-dependent branches, side effects and float64 stay eager, with correct results
    torch.manual_seed(0)
    br = Branchy()
    s_br = Smooth(br, 10, 0.25)
    got = s_br.certify_batch(xs[:2], **kw)
    assert s_br.optimized is False
    assert [c.count for c in got] == [c.count for c in Smooth(br, 10, 0.25, optimize=False).certify_batch(xs[:2], **kw)]
    boom = Exploding(model, after=10**9)
    s_boom = Smooth(boom, 10, 0.25)
    s_boom.certify_batch(xs[:1], **kw)
    assert s_boom.optimized is False and boom.calls == 1 + 4  # a dry run; 420 samples: one forward per batch of 128
    s64 = Smooth(Linear2(W, B), 2, 0.5)
    s64.certify_batch(torch.zeros(1, 1, 2, 2, dtype=torch.float64), n0=10, n=20)
    assert s64.optimized is False
    # a graph that only works at the traced batch size is caught by the second-batch check
    torch.manual_seed(0)
    fixed = FixedBatch(128)
    s_fixed = Smooth(fixed, 10, 0.25)
    s_fixed.certify_batch(xs[:1], n0=28, n=100, batch_size=128, seed=1)
    assert s_fixed.optimized is False
    with pytest.raises(ValueError, match="optimize"):
        Smooth(model, 10, 0.25, optimize="yes")
    with pytest.warns(UserWarning, match="optimize"):
        Smooth(br, 10, 0.25, optimize=True).certify_batch(xs[:1], **kw)
