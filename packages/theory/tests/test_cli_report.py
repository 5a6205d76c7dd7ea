"""`certkit theory ...` commands (through the real dispatcher) and the report section."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from certkit.core.cli import main


def test_run_writes_table_and_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--quiet", "theory", "run", "grokking", "--out", str(tmp_path)]) == 0
    assert "check passed" in capsys.readouterr().out
    assert (tmp_path / "grokking.csv").read_text().startswith("setting")
    data = json.loads((tmp_path / "grokking.json").read_text())
    assert data["summary"]["analytic accuracy p=97"] == 1.0
    assert (tmp_path / "theory_grokking.png").read_bytes()[:4] == b"\x89PNG"


def test_unknown_paper_is_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["theory", "run", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown" in capsys.readouterr().err


def test_list_and_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["theory", "list"]) == 0
    assert "comp-sum" in capsys.readouterr().out
    assert main(["theory", "check", "optimistic-omd"]) == 0
    assert "pass" in capsys.readouterr().out


def test_report_section(tmp_path: Path) -> None:
    from certkit.core.report import ReportContext
    from certkit.theory.report import sections

    sec = sections(ReportContext(out_dir=tmp_path, cache_dir=tmp_path))
    assert sec.domain == "theory" and len(sec.figures) >= 3
    assert all(f.png[:4] == b"\x89PNG" for f in sec.figures)
    assert len(sec.tables[0].rows) == 4
