"""`certkit vision certify / evaluate / plot / conformal` end to end on tiny settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from certkit.core.cache import save_state
from certkit.core.cli import STATE, main
from certkit.core.results import ResultLog
from certkit.vision.data.models import DigitsMLP


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "mlp.pt"
    save_state(DigitsMLP().state_dict(), path)
    return path


def _certify(tmp_path: Path, weights: Path, out: str, *extra: str) -> int:
    return main(["--quiet", "vision", "certify", "--model", "certkit.vision.data.models:DigitsMLP",
                 "--weights", str(weights), "--count", "5", "--n0", "10", "--n", "50",
                 "--batch-size", "64", "--out", str(tmp_path / out), *extra])


def test_certify_evaluate_plot(tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        assert _certify(tmp_path, weights, "a.jsonl") == 0
        rows = ResultLog.read(tmp_path / "a.jsonl")
        assert [r["idx"] for r in rows] == [0, 1, 2, 3, 4]
        assert _certify(tmp_path, weights, "a.jsonl") == 0  # resume: nothing recomputed
        assert len((tmp_path / "a.jsonl").read_text().splitlines()) == 1 + 5
        assert _certify(tmp_path, weights, "b.jsonl", "--mode", "sequential", "--radius-target", "0.1",
                        "--sigma", "0.5") == 0
        assert _certify(tmp_path, weights, "m.jsonl", "--mode", "sequential", "--radius-target", "0.1",
                        "--bound", "mixture") == 0
        capsys.readouterr()
        # a sequential run with a grid reports its ACR over the grid, never a plain ACR
        assert main(["--json", "--quiet", "vision", "certify", "--model", "certkit.vision.data.models:DigitsMLP",
                     "--weights", str(weights), "--count", "5", "--n0", "10", "--n", "50", "--out",
                     str(tmp_path / "g.jsonl"), "--mode", "sequential", "--radius-target", "0",
                     "--radius-target", "0.1"]) == 0
        summary = json.loads(capsys.readouterr().out)
        assert "acr" not in summary and summary["radius_grid"] == [0.0, 0.1] and 0 <= summary["acr_on_grid"] <= 0.1
        assert main(["vision", "evaluate", str(tmp_path / "g.jsonl"), "--radius", "0", "--radius", "0.1",
                     "--grid"]) == 0
        assert "ACR*: radii rounded down to the grid 0, 0.1" in capsys.readouterr().out
        assert main(["--json", "vision", "evaluate", str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl"),
                     "--radius", "0", "--radius", "0.2"]) == 0
        table = json.loads(capsys.readouterr().out)
        assert len(table) == 2 and all(v["inputs"] == 5 for v in table.values())
        png = tmp_path / "plot.png"
        assert main(["vision", "plot", str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl"), "-o", str(png)]) == 0
        assert png.read_bytes()[:4] == b"\x89PNG"
    finally:
        STATE.update(json=False, quiet=False)


def test_cli_errors(tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        assert _certify(tmp_path, weights, "c.jsonl", "--alpha", "2") == 2
        assert "alpha" in capsys.readouterr().err
        assert _certify(tmp_path, weights, "c.jsonl", "--n", "5") == 2
        assert main(["vision", "certify", "--model", "nope:factory"]) == 2
        assert main(["vision", "evaluate", str(tmp_path / "missing.jsonl")]) == 2
        assert _certify(tmp_path, weights, "c.jsonl", "--shard", "3/2") == 2
        capsys.readouterr()
        assert _certify(tmp_path, weights, "c.jsonl", "--mode", "sequential", "--bound", "hoeffding") == 2
        assert "--bound" in capsys.readouterr().err
    finally:
        STATE.update(json=False, quiet=False)


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["vision", "--help"]) == 0
    out = capsys.readouterr().out
    for cmd in ("certify", "evaluate", "plot", "conformal"):
        assert cmd in out
