"""`certkit rl ...` subcommands on a tiny policy checkpoint."""

from __future__ import annotations

import json

import pytest
import torch

from certkit.core.cli import main
from certkit.rl.checkpoints import TrainedPolicy, save_trained
from certkit.rl.policies import mlp


def test_cli_certify_evaluate_plot(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    path = tmp_path / "p.pt"
    save_trained(TrainedPolicy(mlp(4, 2), {"obs_dim": 4, "n_actions": 2, "hidden": [64, 64]}), path)
    cert = tmp_path / "c.json"
    rc = main(["--json", "rl", "certify", "-m", str(path), "--episodes", "50", "--horizon", "40",
               "--budgets", "0,0.2", "--out", str(cert)])
    out = capsys.readouterr().out
    assert rc == 0, out
    data = json.loads(out)
    assert data["bound"] == "cp" and len(data["expected"]) == 2 and data["horizon"] == 40
    rc = main(["--json", "rl", "evaluate", "-m", str(path), "--episodes", "20", "--horizon", "30"])
    assert rc == 0 and "mean" in json.loads(capsys.readouterr().out)
    rc = main(["rl", "plot", str(cert), "--out", str(tmp_path / "c.png")])
    assert rc == 0 and (tmp_path / "c.png").stat().st_size > 1000
    capsys.readouterr()
    rc = main(["rl", "certify", "-m", str(path), "--sigma", "-1", "--episodes", "5"])
    assert rc == 2 and "sigma" in capsys.readouterr().err
    # a results log records the settings: resuming another run is refused; --new starts afresh
    log = tmp_path / "run.jsonl"
    run = ["rl", "certify", "-m", str(path), "--episodes", "8", "--horizon", "10", "--log", str(log)]
    assert main(run) == 0
    capsys.readouterr()
    assert main([*run, "--sigma", "0.3"]) == 2
    err = capsys.readouterr().err
    assert "sigma" in err and "--new" in err and len(err.strip().splitlines()) == 1
    assert main([*run, "--sigma", "0.3", "--new"]) == 0


def test_cli_train_acrobot_and_attack(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "acro.pt"
    rc = main(["--json", "rl", "train", "--out", str(path), "--env", "Acrobot-v1", "--steps", "2048"])
    meta = json.loads(capsys.readouterr().out)
    assert rc == 0 and meta["env_id"] == "Acrobot-v1" and meta["steps"] == 2048 and path.exists()
    rc = main(["--json", "rl", "attack", "-m", str(path), "--env", "Acrobot-v1", "--episodes", "3",
               "--horizon", "15", "--budgets", "0.5", "--thresholds", "0", "--samples", "8",
               "--pgd-samples", "4", "--pgd-steps", "2"])
    rows = json.loads(capsys.readouterr().out)
    assert rc == 0 and rows[0]["budget"] == 0.5 and rows[0]["max_spent"] <= 0.5 * (1 + 1e-5)
    assert -15 <= rows[0]["mean"] <= 0
    rc = main(["--json", "rl", "attack", "-m", str(path), "--env", "Acrobot-v1", "--episodes", "2",
               "--horizon", "10", "--budgets", "0.1", "--method", "fgsm"])
    rows = json.loads(capsys.readouterr().out)
    assert rc == 0 and rows[0]["max_spent"] <= 0.1 * 10**0.5 * (1 + 1e-5)
    rc = main(["--json", "rl", "attack", "-m", str(path), "--env", "Acrobot-v1", "--episodes", "2",
               "--horizon", "10", "--budgets", "0.5", "--method", "strongest", "--thresholds", "0",
               "--samples", "8", "--pgd-samples", "4", "--pgd-steps", "2"])
    rows = json.loads(capsys.readouterr().out)
    assert rc == 0 and rows[0]["attack"] in ("adaptive", "fixed_step", "spread")
    assert rows[0]["max_spent"] <= 0.5 * (1 + 1e-5)
    rc = main(["rl", "attack", "-m", str(path), "--env", "Acrobot-v1", "--method", "cw"])
    assert rc == 2 and "method" in capsys.readouterr().err
