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


def _rows(path: str) -> list[dict]:
    from certkit.core.results import ResultLog

    return [{k: v for k, v in r.items() if k != "seconds"} for r in ResultLog(path).rows()]


def test_vision_certify_backends_and_shards_give_identical_certificates(tmp_path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("certkit.vision")
    common = ["vision", "certify", "--count", "4", "--n0", "20", "--n", "200", "--alpha", "0.01",
              "--batch-size", "100"]
    serial = str(tmp_path / "serial.jsonl")
    assert _run("--quiet", *common, "--out", serial).returncode == 0
    proc = _run("--quiet", *common, "--out", str(tmp_path / "proc.jsonl"), "--backend", "process",
                "--workers", "2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _rows(str(tmp_path / "proc.jsonl")) == _rows(serial)
    shards = []
    for k in range(2):
        p = str(tmp_path / f"s{k}.jsonl")
        assert _run("--quiet", *common, "--out", p, "--shard", f"{k}/2").returncode == 0
        shards.append(p)
    assert _run("merge", *shards, "--out", str(tmp_path / "m.jsonl")).returncode == 0
    assert _rows(str(tmp_path / "m.jsonl")) == _rows(serial)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--backend", "mpi"], "backend"),
        (["--shard", "2/2"], "shard"),
        (["--shard", "x"], "shard"),
        (["--model", "/nonexistent/model.pt"], "model"),
        (["--model", "no_such_module_xyz:factory"], "model"),
    ],
)
def test_vision_certify_bad_input_one_line_exit_2(args: list[str], needle: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("certkit.vision")
    proc = _run("vision", "certify", "--count", "1", "--n", "10", "--n0", "5",
                "--out", str(tmp_path / "x.jsonl"), *args)
    assert proc.returncode == 2, proc.stderr[-1500:]
    assert "Traceback" not in proc.stderr
    assert needle in proc.stderr.lower()
