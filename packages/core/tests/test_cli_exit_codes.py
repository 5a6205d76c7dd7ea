"""Exit codes through the ``certkit`` dispatcher.

The dispatcher runs typer with ``standalone_mode=False``; click then *returns* the code of a
``typer.Exit`` instead of exiting, and the dispatcher used to drop it (``certkit theory check``
printed FAIL and exited 0). A plugin app mounted the way entry points are mounted checks that
every exit path keeps its code, in process and through the console-script function.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import typer

from certkit.core import cli

probe = typer.Typer(no_args_is_help=True)


@probe.command("exit")
def _exit(code: int) -> None:
    raise typer.Exit(code)


@probe.command("sysexit")
def _sysexit(code: str) -> None:
    sys.exit(int(code) if code.isdigit() else code)


@probe.command("returns")
def _returns(value: int) -> int:
    """A command whose return value is data, not an exit code."""
    return value


@probe.command("interrupt")
def _interrupt() -> None:
    raise KeyboardInterrupt


@probe.command("value-error")
def _value_error() -> None:
    raise ValueError("n: expected a positive integer")


@probe.command("crash")
def _crash() -> None:
    raise RuntimeError("boom")


class _EP:
    name = "probe"

    def load(self) -> Any:
        return probe


@pytest.fixture
def mounted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Mount ``probe`` through the real _mount_plugins, and undo it afterwards."""
    monkeypatch.setattr(cli.app, "registered_groups", list(cli.app.registered_groups))
    monkeypatch.setattr(cli, "entry_points", lambda group: [_EP()])


@pytest.mark.parametrize("code", [0, 1, 3])
def test_typer_exit_code_is_kept(mounted: None, code: int) -> None:
    assert cli.main(["probe", "exit", str(code)]) == code


def test_sys_exit_codes(mounted: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["probe", "sysexit", "4"]) == 4
    assert cli.main(["probe", "sysexit", "bad thing"]) == 1
    assert "bad thing" in capsys.readouterr().err


def test_return_value_is_not_an_exit_code(mounted: None) -> None:
    assert cli.main(["probe", "returns", "5"]) == 0


def test_interrupt_is_130(mounted: None) -> None:
    assert cli.main(["probe", "interrupt"]) == 130


def test_errors(mounted: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["probe", "value-error"]) == 2
    assert capsys.readouterr().err.strip() == "certkit: error: n: expected a positive integer"
    assert cli.main(["probe", "crash"]) == 1
    assert cli.main(["probe", "exit"]) == 2  # missing argument: click usage error
    assert cli.main(["probe", "--help"]) == 0


def test_console_script_passes_the_code_to_the_shell() -> None:
    """The real entry point in a fresh interpreter, with the probe mounted by entry-point stand-in."""
    code = ("import sys; from certkit.core import cli; import typer; t = typer.Typer();\n"
            "@t.command()\ndef fail() -> None:\n    raise typer.Exit(7)\n"
            "@t.command()\ndef ok() -> None:\n    pass\n"
            "class EP:\n    name = 'probe'\n    def load(self): return t\n"
            "cli.entry_points = lambda group: [EP()]; cli.run()")
    proc = subprocess.run([sys.executable, "-c", code, "probe", "fail"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 7, proc.stderr


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_short_help_flag_reaches_mounted_subcommands(mounted: None, capsys: pytest.CaptureFixture[str],
                                                     flag: str) -> None:
    """``-h`` is help on the root and on every mounted subcommand (click passes the root's
    help option names down), not an unknown option (exit 2)."""
    assert cli.main([flag]) == 0
    assert cli.main(["probe", flag]) == 0
    assert cli.main(["probe", "exit", flag]) == 0
    assert "Usage:" in capsys.readouterr().out
