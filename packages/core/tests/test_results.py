from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from certkit.core.results import ResultLog, merge_logs


def test_write_resume_and_no_duplicates(tmp_path: Path) -> None:
    p = tmp_path / "r.jsonl"
    with ResultLog(p) as log:
        for i in (0, 1, 2):
            log.write({"idx": i, "radius": 0.1 * i})
    # a crash mid-write leaves a torn line
    with open(p, "a") as fh:
        fh.write('{"idx": 3, "rad')
    log = ResultLog(p)
    assert len(log) == 3
    assert log.todo(range(6)) == [3, 4, 5]
    with pytest.raises(ValueError, match="already"):
        log.write({"idx": 1})
    log.write({"idx": 3, "radius": 0.3})
    log.close()
    lines = p.read_text().splitlines()
    assert [json.loads(s)["idx"] for s in lines] == [0, 1, 2, 3]


_WRITER = """
import sys, time
from certkit.core.results import ResultLog
with ResultLog(sys.argv[1]) as log:
    for i in range(1000):
        log.write({"idx": i, "value": i * i})
        time.sleep(0.01)
"""


def test_resume_after_killed_process(tmp_path: Path) -> None:
    p = tmp_path / "killed.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(p)])
    deadline = time.time() + 120
    while time.time() < deadline and (not p.exists() or p.read_text().count("\n") < 5):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    log = ResultLog(p)
    done = len(log)
    assert 5 <= done < 1000
    for i in log.todo(range(done + 20)):
        log.write({"idx": i, "value": i * i})
    log.close()
    rows = ResultLog(p).rows()
    assert [r["idx"] for r in rows] == list(range(done + 20))
    assert all(r["value"] == r["idx"] ** 2 for r in rows)


def test_merge_shards(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    with ResultLog(a) as la, ResultLog(b) as lb:
        for i in range(10):
            (la if i % 2 else lb).write({"idx": i, "v": i, "seconds": 0.1})
        la.write({"idx": 4, "v": 4, "seconds": 9.0})  # same result, other timing: fine
    n = merge_logs([a, b], tmp_path / "m.jsonl")
    assert n == 10
    with ResultLog(tmp_path / "c.jsonl") as lc:
        lc.write({"idx": 4, "v": 5})
    with pytest.raises(ValueError, match="disagrees"):
        merge_logs([a, b, tmp_path / "c.jsonl"], tmp_path / "m2.jsonl")
