"""The `certkit` command across packages: every subcommand has --help, errors are one
line with exit code 2 (no traceback unless --debug)."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import pytest

from certkit.core.cli import main

COMMANDS = sorted({ep.name for ep in entry_points(group="certkit.commands")})


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from certkit.core.cli import run; run()", *args],
                          capture_output=True, text=True, timeout=300, check=False)


def test_root_help_lists_every_installed_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


@pytest.mark.parametrize("name", COMMANDS)
def test_every_subcommand_has_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([name, "--help"]) == 0
    assert "Usage" in capsys.readouterr().out


def test_errors_are_one_line_exit_2_without_traceback() -> None:
    proc = _run("merge", "/nonexistent/a.jsonl", "--out", "/tmp/x.jsonl")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "shards" in proc.stderr
    dbg = _run("--debug", "merge", "/nonexistent/a.jsonl", "--out", "/tmp/x.jsonl")
    assert "Traceback" in dbg.stderr


def test_unknown_command_exit_2() -> None:
    proc = _run("frobnicate")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
