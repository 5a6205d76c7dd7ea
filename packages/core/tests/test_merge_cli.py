"""``certkit merge`` comes with certkit-core (entry point certkit.commands:merge), so a core-only
install can join the shards of a ``--shard k/n`` run."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import pytest

from certkit.core.cli import main
from certkit.core.results import ResultLog


def test_merge_is_a_core_command() -> None:
    eps = [ep for ep in entry_points(group="certkit.commands") if ep.name == "merge"]
    assert [ep.value for ep in eps] == ["certkit.core.merge:merge_command"]


def test_merge_joins_shards(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = {"seed": 0, "sigma": 0.25}
    for k in range(2):
        with ResultLog(tmp_path / f"s{k}.jsonl", settings=settings) as log:
            log.write({"idx": 1 - k, "v": k})
    assert main(["merge", str(tmp_path / "s0.jsonl"), str(tmp_path / "s1.jsonl"),
                 "--out", str(tmp_path / "m.jsonl")]) == 0
    rows = ResultLog.read(tmp_path / "m.jsonl")
    assert [r["idx"] for r in rows] == [0, 1]
    assert ResultLog.read_settings(tmp_path / "m.jsonl") == settings
    assert "merged 2 rows" in capsys.readouterr().out
    assert main(["merge", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "x.jsonl")]) == 2
    assert "shards: no such file" in capsys.readouterr().err
