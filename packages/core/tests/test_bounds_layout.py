"""`certkit bounds` and its report section ship with certkit-core and are mounted only when
torch is installed (the command and the section disappear cleanly without it)."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import pytest

pytest.importorskip("torch")


def test_entry_points_belong_to_core() -> None:
    for group, value in (("certkit.commands", "certkit.core.bounds.cli:app"),
                         ("certkit.report", "certkit.core.bounds.report:sections")):
        eps = [ep for ep in entry_points(group=group) if ep.name == "bounds"]
        assert [ep.value for ep in eps] == [value], group  # one provider, certkit-core
        assert eps[0].dist is not None and eps[0].dist.name == "certkit-core"


_NO_TORCH = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError("No module named 'torch'", name=name)
        return None
sys.meta_path.insert(0, Block())
import importlib.util
importlib.util.find_spec = (lambda f: lambda name, *a: None if name.split(".")[0] == "torch" else f(name, *a))(
    importlib.util.find_spec)
import certkit.core.bounds.cli as c
assert c.app is None
from certkit.core.bounds.report import sections
assert sections(None) == []
from certkit.core.cli import _mount_plugins, app
_mount_plugins()
names = [g.name for g in app.registered_groups]
assert "bounds" not in names, names
assert "torch" not in sys.modules
print("ok")
"""


def test_without_torch_the_command_is_not_mounted() -> None:
    proc = subprocess.run([sys.executable, "-c", _NO_TORCH], capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]
    assert "could not load command 'bounds'" not in proc.stderr


def test_with_torch_the_command_is_mounted(capsys: pytest.CaptureFixture[str]) -> None:
    from certkit.core.cli import main

    assert main(["bounds", "--help"]) == 0
    out = capsys.readouterr().out
    assert all(c in out for c in ("verify", "vnnlib", "attack", "plot"))
