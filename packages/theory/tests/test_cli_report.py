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


def _broken(mode: str = "quick") -> None:
    raise AssertionError("closed form 0.5 vs simulation 0.7")


@pytest.mark.parametrize("json_out", [False, True])
def test_check_exits_1_when_a_check_fails(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                          json_out: bool) -> None:
    from certkit.theory import registry

    monkeypatch.setattr(registry.module("comp-sum"), "check", _broken)
    argv = ["--json"] * json_out + ["theory", "check", "comp-sum"]
    assert main(argv) == 1
    assert "FAIL: closed form 0.5" in capsys.readouterr().out
    assert main([*argv[:-1], "optimistic-omd"]) == 0


def test_check_exits_1_when_a_check_crashes(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from certkit.theory import registry

    def crash(mode: str = "quick") -> None:
        raise ValueError("nan in the closed form")

    monkeypatch.setattr(registry.module("grokking"), "check", crash)
    assert main(["theory", "check", "grokking"]) == 1
    assert "ERROR: ValueError: nan" in capsys.readouterr().out


def test_check_exit_code_reaches_the_shell() -> None:
    """The console-script entry point in a fresh interpreter, one check broken on purpose."""
    import subprocess
    import sys

    code = ("import certkit.theory.comp_sum as m\n"
            "def bad(mode='quick'):\n    raise AssertionError('broken on purpose')\n"
            "m.check = bad\nfrom certkit.core.cli import run\nrun()")
    proc = subprocess.run([sys.executable, "-c", code, "theory", "check", "comp-sum"], capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "comp-sum" in proc.stdout and "FAIL: broken on purpose" in proc.stdout
