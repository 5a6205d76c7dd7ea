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


# ---- settings header, refusal to mix runs, lock ---------------------------------------

from certkit.core.results import (  # noqa: E402
    LogLockedError,
    SettingsMismatchError,
    fingerprint,
    run_settings,
)


def test_settings_recorded_and_resume_with_same_settings(tmp_path: Path) -> None:
    p = tmp_path / "s.jsonl"
    s = run_settings(sigma=0.25, n=1000, seed=0, shape=(3, 32, 32))
    with ResultLog(p, settings=s) as log:
        log.write({"idx": 0, "radius": 0.1})
    first = json.loads(p.read_text().splitlines()[0])
    assert first == {"_settings": s}
    assert s["certkit_version"] and s["shape"] == [3, 32, 32]  # tuples read back as lists
    # same settings (a tuple again): resumes, the header is not duplicated
    with ResultLog(p, settings=run_settings(sigma=0.25, n=1000, seed=0, shape=(3, 32, 32))) as log:
        assert log.todo(range(3)) == [1, 2]
        log.write({"idx": 1, "radius": 0.2})
    lines = p.read_text().splitlines()
    assert len(lines) == 3 and sum("_settings" in x for x in lines) == 1
    assert [r["idx"] for r in ResultLog.read(p)] == [0, 1]
    assert ResultLog.read_settings(p) == s


def test_other_settings_refused_naming_each_difference(tmp_path: Path) -> None:
    p = tmp_path / "s.jsonl"
    with ResultLog(p, settings=run_settings(sigma=0.25, n=1000, seed=0)) as log:
        log.write({"idx": 0})
    before = p.read_bytes()
    with pytest.raises(SettingsMismatchError) as err:
        ResultLog(p, settings=run_settings(sigma=0.5, n=1000, seed=1))
    msg = str(err.value)
    assert "sigma 0.25 in the file, 0.5 now" in msg and "seed 0 in the file, 1 now" in msg
    assert "(seed 0 in the file, 1 now; sigma 0.25 in the file, 0.5 now)" in msg  # n unchanged
    assert isinstance(err.value, ValueError) and "\n" not in msg
    assert p.read_bytes() == before  # nothing written, and the lock was released:
    with ResultLog(p, settings=run_settings(sigma=0.25, n=1000, seed=0)) as log:
        assert len(log) == 1


def test_rows_without_settings_refused_and_new_moves_file_aside(tmp_path: Path) -> None:
    p = tmp_path / "old.jsonl"
    with ResultLog(p) as log:
        log.write({"idx": 0, "v": 1})
    with pytest.raises(SettingsMismatchError, match="without recorded settings"):
        ResultLog(p, settings=run_settings(sigma=0.5))
    with ResultLog(p, settings=run_settings(sigma=0.5), new=True) as log:
        assert len(log) == 0 and log.moved_to is not None
        log.write({"idx": 0, "v": 2})
        moved = log.moved_to
    assert [r["v"] for r in ResultLog.read(moved)] == [1]  # nothing lost
    assert [r["v"] for r in ResultLog.read(p)] == [2]
    # a file without settings is still read and resumed by a caller that passes none
    with ResultLog(moved) as log:
        assert log.settings is None and len(log) == 1


_HOLDER = """
import sys, time
from certkit.core.results import ResultLog
log = ResultLog(sys.argv[1])
print("locked", flush=True)
time.sleep(60)
"""


def test_second_writer_gets_a_clear_error(tmp_path: Path) -> None:
    p = tmp_path / "busy.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(p)], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        with pytest.raises(LogLockedError, match="another run is writing"):
            ResultLog(p)
        with pytest.raises(LogLockedError):
            ResultLog(p, new=True)  # --new must not move a file from under a running writer
        assert ResultLog.read(p) == []  # readers take no lock
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    with ResultLog(p) as log:  # the holder died: its lock went with it
        log.write({"idx": 0})


def test_lock_released_on_close_and_shared_within_a_process(tmp_path: Path) -> None:
    p = tmp_path / "x.jsonl"
    a = ResultLog(p)
    b = ResultLog(p)  # same process: allowed (one flock per file per process)
    a.close()
    b.write({"idx": 0})
    b.close()
    code = "import sys; from certkit.core.results import ResultLog; ResultLog(sys.argv[1]).close()"
    subprocess.run([sys.executable, "-c", code, str(p)], check=True)


def test_fingerprint_follows_content() -> None:
    import numpy as np
    import torch

    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU())
    f0 = fingerprint(m)
    assert fingerprint(m) == f0 and f0.startswith("sha256:")
    with torch.no_grad():
        m[0].weight.data[0, 0] += 1e-6
    f1 = fingerprint(m)
    assert f1 != f0
    m2 = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Tanh())
    m2.load_state_dict(m.state_dict())
    assert fingerprint(m2) != f1  # same weights, other architecture
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert fingerprint(x) == fingerprint(x.copy())
    assert fingerprint(x) != fingerprint(x.reshape(4, 3))
    assert fingerprint(x) != fingerprint(x.astype(np.float64))
    y = x.copy()
    y[2, 3] = -1
    assert fingerprint(y) != fingerprint(x)
    assert fingerprint(torch.from_numpy(x)) != fingerprint(torch.from_numpy(y))


def test_fingerprint_of_files_and_folders(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    f = tmp_path / "d" / "a.bin"
    f.write_bytes(b"abc")
    fd, ff = fingerprint(tmp_path / "d"), fingerprint(str(f))
    f.write_bytes(b"abd")
    assert fingerprint(str(f)) != ff and fingerprint(tmp_path / "d") != fd
    with pytest.raises(FileNotFoundError):
        fingerprint(tmp_path / "missing")


def test_merge_keeps_settings_and_refuses_mixed_shards(tmp_path: Path) -> None:
    s = run_settings(sigma=0.25)
    a, b, c = (tmp_path / f"{n}.jsonl" for n in "abc")
    with ResultLog(a, settings=s) as la, ResultLog(b, settings=s) as lb:
        la.write({"idx": 0})
        lb.write({"idx": 1})
    assert merge_logs([a, b], tmp_path / "m.jsonl") == 2
    assert ResultLog.read_settings(tmp_path / "m.jsonl") == s
    with ResultLog(c, settings=run_settings(sigma=0.5)) as lc:
        lc.write({"idx": 2})
    with pytest.raises(SettingsMismatchError, match="sigma"):
        merge_logs([a, c], tmp_path / "m2.jsonl")
