"""`certkit bounds` model loading (certified-training checkpoint, torch.export .pt2,
TorchScript, module:factory + --weights) and distributed verification (serial vs process
backends give identical rows; shards and resumable logs). The digits data and models come
from certkit-vision: skipped without it."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("certkit.vision")

from certkit.core.bounds.cli import make_verify_task, vision_module  # noqa: E402
from certkit.core.cli import main  # noqa: E402
from certkit.core.distributed import TaskFactory, run  # noqa: E402

V = vision_module("verified")
load_digits = vision_module("digits").load_digits
FACTORY = f"{V.__name__}:CertifiedMLP"


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A briefly certifiably-trained default CertifiedMLP saved in every supported format."""
    torch.manual_seed(0)
    tr, _ = load_digits()
    model, _ = V.train_certified(V.CertifiedMLP(), tr.x[:300], tr.y[:300],
                                 V.TrainConfig(epochs=2, ramp_epochs=1, eps=0.05))
    d = tmp_path_factory.mktemp("bounds_models")
    torch.save(model.state_dict(), d / "w.pt")
    ep = torch.export.export(model, (torch.zeros(2, 1, 8, 8),), dynamic_shapes=({0: torch.export.Dim("b")},))
    torch.export.save(ep, str(d / "m.pt2"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.trace(model, torch.zeros(2, 1, 8, 8)), str(d / "m_ts.pt"))
    return {"weights": str(d / "w.pt"), "pt2": str(d / "m.pt2"), "ts": str(d / "m_ts.pt"), "dir": str(d)}


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict[str, object]:
    capsys.readouterr()
    assert main(["--json", *argv]) == 0
    out = capsys.readouterr().out
    return json.loads(out[out.index("{"):])  # type: ignore[no-any-return]


def _rows(log: Path) -> list[dict[str, object]]:
    from certkit.core.results import ResultLog

    return [{k: v for k, v in r.items() if k != "seconds"} for r in ResultLog.read(log)]


def test_model_formats_agree(saved: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    common = ["bounds", "verify", "--eps", "0.02", "--n", "8", "--methods", "IBP,CROWN", "--backend", "serial"]
    a = _json(capsys, [*common, "--model", FACTORY, "--weights", saved["weights"], "--log", str(tmp_path / "a")])
    b = _json(capsys, [*common, "--model", saved["pt2"], "--log", str(tmp_path / "b")])
    assert a == b and a["n"] == 8
    # the .pt2 program is mapped back to nn layers: identical bounds, input by input
    ra, rb = _rows(tmp_path / "a"), _rows(tmp_path / "b")
    assert ra == rb and any(r["method"] in ("IBP", "CROWN") for r in ra)
    # TorchScript: attacks work, bounds give a one-line error (exit 2)
    r = _json(capsys, ["bounds", "attack", "--model", saved["ts"], "--eps", "0.05", "--n", "30", "--steps", "5"])
    assert 0 <= r["pgd_accuracy"] <= 1  # type: ignore[operator]
    capsys.readouterr()
    assert main(["bounds", "verify", "--model", saved["ts"], "--n", "1", "--methods", "IBP"]) == 2
    assert "TorchScript" in capsys.readouterr().err


def test_model_errors(saved: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.pt"
    torch.save({"net.1.weight": torch.zeros(3, 3)}, bad)
    for argv, word in (
        (["--model", FACTORY, "--weights", str(bad)], "weights"),
        (["--model", f"{V.__name__}:nope"], "model"),
        (["--model", f"{V.__name__}:CertifiedCNN", "--weights", saved["weights"]], "weights"),
        (["--weights", saved["weights"]], "weights"),
        (["--model", str(tmp_path / "missing.pt2")], "model"),
    ):
        capsys.readouterr()
        assert main(["bounds", "attack", "--n", "2", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert word in err and len(err.strip().splitlines()) == 1, err


def test_verify_backends_identical(saved: dict[str, str]) -> None:
    """Work units carry their own seeds: serial and process backends give the same rows."""
    args = (FACTORY, saved["weights"], 0.05, 1e9, 10, 3, ("IBP", "CROWN"))
    idx = [0, 1, 2, 3, 4]
    rows = {}
    for backend in ("serial", "process"):
        out = run(TaskFactory(make_verify_task, args), idx, backend=backend, workers=2)
        rows[backend] = [{k: v for k, v in r.items() if k != "seconds"} for r in out]
    assert rows["serial"] == rows["process"]
    assert [r["idx"] for r in rows["serial"]] == idx
    assert {r["status"] for r in rows["serial"]} <= {"verified", "falsified", "unknown", "timeout"}


def test_verify_cli_shard_and_resume(saved: dict[str, str], tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "v.jsonl"
    base = ["bounds", "verify", "--model", saved["pt2"], "--eps", "0.05", "--n", "6", "--methods", "IBP",
            "--log", str(log), "--backend", "serial"]
    r = _json(capsys, [*base, "--shard", "0/2"])
    assert r["n"] == 3
    assert sorted(int(x["idx"]) for x in _rows(log)) == [0, 2, 4]  # type: ignore[call-overload]
    r = _json(capsys, base)  # resumes: only the odd indices run now
    assert r["n"] == 6 and sum(r["counts"].values()) == 6  # type: ignore[attr-defined]
    assert all(x["seed"] == 0 for x in _rows(log))
    capsys.readouterr()
    assert main([*base, "--shard", "2/2"]) == 2
    # the log records the settings: resuming with another eps is refused (one line, exit 2)
    other = [a if a != "0.05" else "0.06" for a in base]
    capsys.readouterr()
    assert main(other) == 2
    err = capsys.readouterr().err
    assert "eps" in err and len(err.strip().splitlines()) == 1
    r = _json(capsys, [*other, "--new", "--n", "2"])  # --new moves the old file aside
    assert r["n"] == 2 and len(_rows(log)) == 2 and len(list(log.parent.glob(log.name + ".*.bak"))) == 1
