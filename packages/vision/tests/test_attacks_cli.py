"""``certkit vision attack ...``: run (resumable), evaluate, plot, and one-line errors."""

from __future__ import annotations

import json

import pytest
import torch

from certkit.core.cache import save_state
from certkit.core.cli import main
from certkit.core.results import ResultLog
from certkit.vision.data.digits import load_digits
from certkit.vision.data.models import DigitsMLP, train_classifier

SPEC = "certkit.vision.data.models:DigitsMLP"


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    tr, _ = load_digits()
    torch.manual_seed(0)
    m = train_classifier(DigitsMLP(), tr.x, tr.y, epochs=4)
    path = tmp_path_factory.mktemp("w") / "mlp.pt"
    save_state(m.state_dict(), path)
    yield str(path)
    torch.set_num_threads(n)


def _json(capsys, argv):
    capsys.readouterr()
    assert main(["--json", "--quiet", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_run_is_resumable(weights, tmp_path, capsys):
    out = tmp_path / "res.jsonl"
    base = ["vision", "attack", "run", "--model", SPEC, "--weights", weights, "--attack", "pgd",
            "--steps", "10", "--eps", "0.3", "--out", str(out)]
    first = _json(capsys, [*base, "--n", "20"])
    assert first["n"] == 20 and first["robust_accuracy"] <= 0.1 < first["clean_accuracy"]
    second = _json(capsys, [*base, "--n", "30"])
    assert second["n"] == 30
    rows = ResultLog.read(out)
    assert sorted(r["idx"] for r in rows) == list(range(30))
    assert all(r["linf"] <= 0.3 + 1e-6 and "seed" in r for r in rows)
    capsys.readouterr()
    assert main([*base, "--n", "30", "--eps", "0.2"]) == 2  # another ε: not mixed into this file
    assert "eps 0.3 in the file, 0.2 now" in capsys.readouterr().err
    assert _json(capsys, [*base, "--n", "5", "--eps", "0.2", "--new"])["n"] == 5


def test_run_on_user_arrays(weights, tmp_path, capsys):
    """--data / --labels take the same readers as every vision command (here (N, H, W, C) uint8)."""
    import numpy as np

    _, te = load_digits()
    np.save(tmp_path / "x.npy", (te.x[:12].permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8))
    np.save(tmp_path / "y.npy", te.y[:12].numpy())
    res = _json(capsys, ["vision", "attack", "run", "--model", SPEC, "--weights", weights, "--attack", "fgsm",
                         "--eps", "0.1", "--data", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy")])
    assert res["n"] == 12 and res["clean_accuracy"] > 0.5
    np.save(tmp_path / "x3.npy", np.zeros((4, 3, 8, 8), dtype=np.float32))
    assert main(["vision", "attack", "run", "--model", SPEC, "--weights", weights, "--data",
                 str(tmp_path / "x3.npy"), "--labels", str(tmp_path / "y.npy")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--labels" in err
    np.save(tmp_path / "y4.npy", np.zeros(4, dtype=np.int64))
    assert main(["vision", "attack", "run", "--model", SPEC, "--weights", weights, "--data",
                 str(tmp_path / "x3.npy"), "--labels", str(tmp_path / "y4.npy")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--data: the model does not accept inputs of shape" in err


def test_evaluate_and_plot(weights, tmp_path, capsys):
    res = _json(capsys, ["vision", "attack", "evaluate", "--model", SPEC, "--weights", weights,
                         "--n", "30", "--baseline", "none"])
    assert len(res["errors"]) == 14 and all(len(v) == 5 for k, v in res["errors"].items()
                                            if k != "clean")
    png = tmp_path / "p.png"
    res = _json(capsys, ["vision", "attack", "plot", "--model", SPEC, "--weights", weights,
                         "--n", "20", "--points", "3", "--steps", "5", "--out", str(png)])
    assert png.read_bytes()[:4] == b"\x89PNG"
    acc = res["accuracy"]["model"]
    assert acc[0] >= acc[-1]


def test_user_errors_exit_2(weights, capsys):
    argv = ["vision", "attack", "run", "--model", SPEC, "--weights", weights, "--n", "5"]
    assert main([*argv, "--attack", "nope"]) == 2
    assert main([*argv, "--eps", "5"]) == 2
    assert main(["vision", "attack", "run", "--model", "no.such:thing", "--n", "5"]) == 2
    err = capsys.readouterr().err
    assert "--attack" in err and "eps" in err
