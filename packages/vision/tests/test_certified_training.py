"""Certified training, verification statuses, report section and CLI for bound
propagation on digits. One session-scoped model trained briefly (a few epochs)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from certkit.vision.data.digits import load_digits
from certkit.vision.training import certified as V


@pytest.fixture(scope="session")
def trained() -> tuple[torch.nn.Module, object]:
    tr, te = load_digits()
    torch.set_num_threads(1)
    model, _hist = V.train_certified(V.CertifiedMLP(32, 1), tr.x[:600], tr.y[:600],
                                    V.TrainConfig(epochs=5, ramp_epochs=2, eps=0.1))
    return model, te


def test_ibp_init_sigma() -> None:
    m = V.ibp_init(torch.nn.Linear(400, 300))
    assert abs(float(m.weight.detach().std()) - math.sqrt(2 * math.pi) / 400) < 0.002
    assert float(m.bias.detach().abs().max()) == 0.0


def test_eps_schedule_monotone_and_ends() -> None:
    vals = [V.eps_schedule(s, 10, 100, 0.1) for s in range(0, 130)]
    assert vals[0] == 0 and vals[9] == 0 and vals[-1] == pytest.approx(0.1)
    assert all(b >= a for a, b in itertools.pairwise(vals))


def test_regularisers_zero_when_tight_and_balanced() -> None:
    lo = -torch.ones(4, 5)
    up = torch.ones(4, 5)
    lt, lr = V.warmup_regularisers([(lo, up), (lo, up)])
    assert float(lt) == 0.0 and float(lr) == 0.0
    lt, lr = V.warmup_regularisers([(lo, up), (10 * lo, 0.01 * up)])
    assert float(lt) > 0 and float(lr) > 0


def test_certified_training_verifies_and_is_sound(trained: tuple[torch.nn.Module, object]) -> None:
    model, te = trained
    r = V.evaluate(model, te.x, te.y, 0.1)
    assert r["clean_acc"] > 0.6
    assert r["verified_acc"]["IBP"] > 0.2  # certified training gives non-trivial certificates
    # soundness: verified accuracy never exceeds PGD robust accuracy (an attack on the certificate)
    adv = V.pgd_attack(model, te.x, te.y, 0.1, steps=20)
    with torch.no_grad():
        pgd_acc = float((model(adv).argmax(1) == te.y).float().mean())
    assert max(r["verified_acc"].values()) <= pgd_acc + 1e-9
    assert 0 < r["ibp_tightness"] <= 1


def test_verify_statuses(trained: tuple[torch.nn.Module, object]) -> None:
    model, te = trained
    res = V.verify(model, te.x[:20], te.y[:20], 0.1, methods=("IBP", "CROWN"))
    statuses = {r.status for r in res}
    assert statuses <= {"verified", "falsified", "unknown", "timeout"}
    for r in res:
        if r.status == "falsified" and r.method == "PGD":
            xa = torch.tensor(r.counterexample).reshape(1, 1, 8, 8)
            x0 = te.x[r.idx:r.idx + 1]
            assert float((xa - x0).abs().max()) <= 0.1 + 1e-6 and xa.min() >= 0 and xa.max() <= 1
            assert int(model(xa).argmax(1)) != int(te.y[r.idx])
        if r.status == "verified":
            assert r.margin_lower > 0
    # a huge ε: nothing verifies, PGD finds counterexamples
    res = V.verify(model, te.x[:5], te.y[:5], 1.0, methods=("IBP",))
    assert all(r.status in ("falsified", "unknown") for r in res)
    assert any(r.status == "falsified" for r in res)


def test_crown_ibp_training_step_runs() -> None:
    tr, _ = load_digits()
    _model, hist = V.train_certified(V.CertifiedCNN(4, 16), tr.x[:128], tr.y[:128],
                                    V.TrainConfig(method="CROWN-IBP", epochs=2, ramp_epochs=1, warmup_epochs=0))
    assert all(math.isfinite(h["loss"]) for h in hist.epochs)


def test_loss_fusion_training_gives_valid_robust_ce_bound() -> None:
    """CROWN-IBP training with loss fusion runs, and the fused bound it optimises is a valid
    upper bound on the CE that a PGD attack reaches (attack on the certificate)."""
    from certkit.core.bounds import BoundedModel, robust_ce_upper

    tr, te = load_digits()
    model, hist = V.train_certified(V.CertifiedMLP(16, 1), tr.x[:128], tr.y[:128],
                                    V.TrainConfig(method="CROWN-IBP", loss_fusion=True, epochs=2, ramp_epochs=1,
                                                  warmup_epochs=0, eps=0.05))
    assert all(math.isfinite(h["loss"]) for h in hist.epochs)
    x, y = te.x[:64], te.y[:64]
    bm = BoundedModel(model, (1, 8, 8))
    with torch.no_grad():
        ub = robust_ce_upper(bm, x, y, 0.05, x_L=torch.zeros_like(x), x_U=torch.ones_like(x))
        ub_nofloor = robust_ce_upper(bm, x, y, 0.05, x_L=torch.zeros_like(x), x_U=torch.ones_like(x),
                                     intersect_ibp=False)
    adv = V.pgd_attack(model, x, y, 0.05, steps=20)
    with torch.no_grad():
        ce_adv = torch.nn.functional.cross_entropy(model(adv), y, reduction="none")
        ce_clean = torch.nn.functional.cross_entropy(model(x), y, reduction="none")
    assert bool((ce_adv <= ub + 1e-5).all()) and bool((ce_clean <= ub_nofloor + 1e-5).all())


def test_bad_config() -> None:
    tr, _ = load_digits()
    with pytest.raises(ValueError, match="method"):
        V.train_certified(V.CertifiedMLP(8, 1), tr.x[:10], tr.y[:10], V.TrainConfig(method="LP", epochs=1))
    with pytest.raises(ValueError, match="eps"):
        V.train_certified(V.CertifiedMLP(8, 1), tr.x[:10], tr.y[:10], V.TrainConfig(eps=-1, epochs=1))


def test_cli_help_and_bad_eps() -> None:
    from typer.testing import CliRunner

    from certkit.vision.training.cli import app

    runner = CliRunner()
    for cmd in ("train", "evaluate"):  # verify, attack, plot: certkit bounds (certkit-core)
        assert runner.invoke(app, [cmd, "--help"]).exit_code == 0
    r = runner.invoke(app, ["evaluate", "--eps", "-1"])
    assert r.exit_code != 0
