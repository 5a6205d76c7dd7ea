"""The `certkit pointcloud` subcommands and the report section (tiny sizes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from certkit.core.cache import save_state
from certkit.core.report import ReportContext
from certkit.core.results import LogLockedError, ResultLog, SettingsMismatchError
from certkit.pointcloud import io, report
from certkit.pointcloud.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def model_spec(tmp_path_factory: pytest.TempPathFactory, tiny: tuple) -> str:
    p = tmp_path_factory.mktemp("m") / "pn.pt"
    save_state(tiny[0].state_dict(), p)
    return f"pointnet:{p}"


def _ok(args: list[str]) -> str:
    r = runner.invoke(app, args)
    assert r.exit_code == 0, (r.output, r.exception)
    return r.output


def test_help_on_every_command() -> None:
    for cmd in ("certify", "attack", "evaluate", "corrupt", "train", "plot"):
        assert "--help" in _ok([cmd, "--help"])


def test_certify_resume_and_plot(tmp_path: Path, model_spec: str) -> None:
    out = tmp_path / "r.jsonl"
    base = ["certify", "--model", model_spec, "--points", "64", "--limit", "3", "--n", "30",
            "--out", str(out)]
    for method in ("smoothing",):
        _ok([*base, "--method", method])
    rows = ResultLog.read(out)
    assert [r["idx"] for r in rows] == [0, 1, 2] and {r["seed"] for r in rows} == {0}
    settings = ResultLog.read_settings(out)
    assert settings is not None and settings["sigma"] == 0.05 and settings["model"].startswith("sha256:")
    _ok(base)  # resumes: nothing new is written
    assert len(out.read_text().splitlines()) == 4  # settings line + 3 rows
    r = runner.invoke(app, [*base, "--sigma", "0.1"])  # other settings: refused, named
    assert isinstance(r.exception, SettingsMismatchError) and "sigma" in str(r.exception)
    holder = subprocess.Popen(  # another process writing the file: this run fails clearly
        [sys.executable, "-c", "import sys, time; from certkit.core.results import ResultLog; "
         "log = ResultLog(sys.argv[1]); print('held', flush=True); time.sleep(60)", str(out)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        r = runner.invoke(app, base)
        assert isinstance(r.exception, LogLockedError)
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()  # type: ignore[union-attr]
    _ok([*base, "--sigma", "0.1", "--new"])  # the old file is moved aside
    assert ResultLog.read_settings(out)["sigma"] == 0.1  # type: ignore[index]
    assert len(list(tmp_path.glob("r.jsonl.*.bak"))) == 1
    for method in ("pointguard", "rotation"):
        _ok(["certify", "--model", model_spec, "--points", "64", "--limit", "2", "--n", "20",
             "--method", method, "--k", "16"])
    png = tmp_path / "p.png"
    _ok(["plot", str(out), "--out", str(png)])
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_certify_on_files_attack_and_evaluate(tmp_path: Path, model_spec: str, tiny: tuple) -> None:
    X = tiny[1]
    io.write_ply(tmp_path / "a.ply", X[0].astype(np.float64))
    io.write_pcd(tmp_path / "b.pcd", X[1].astype(np.float64))
    files = [str(tmp_path / "a.ply"), str(tmp_path / "b.pcd")]
    _ok(["certify", *files, "--model", model_spec, "--points", "64", "--n", "20",
         "--labels", "0,1"])
    for method in ("hacker3d", "gsda", "pgd"):
        _ok(["attack", "--method", method, "--model", model_spec, "--points", "64", "--limit", "2",
             "--max-queries", "40", "--steps", "3"])
    outp = _ok(["evaluate", "--suite", "robo3d", "--model", model_spec, "--points", "64",
                "--limit", "3"])
    assert "mCE 1.000" in outp


def test_corrupt_real_format_and_errors(tmp_path: Path) -> None:
    scan = np.random.default_rng(0).normal(size=(400, 4)).astype(np.float32) * [10, 10, 1, 0.1]
    io.write_lidar_bin(tmp_path / "s.bin", scan)
    r = runner.invoke(app, ["corrupt", str(tmp_path / "s.bin")])
    assert isinstance(r.exception, ValueError) and "cannot tell the row width" in str(r.exception)
    _ok(["corrupt", str(tmp_path / "s.bin"), "--name", "beam_missing", "--severity", "3",
         "--columns", "4", "--out", str(tmp_path / "o.bin")])
    assert len(io.read_lidar_bin(tmp_path / "o.bin", columns=4)) < 400
    # incomplete echo: SemanticKITTI labels (raw 10 car, 252 moving car, 40 road), else an error
    raw = np.where(np.arange(400) < 100, 10, np.where(np.arange(400) < 140, 252, 40)).astype("<u4")
    raw[:5] |= np.uint32(7 << 16)  # instance ids in the high 16 bits are ignored
    raw.tofile(tmp_path / "s.label")
    _ok(["corrupt", str(tmp_path / "s.bin"), "--name", "incomplete_echo", "--severity", "1", "--columns", "4",
         "--labels", str(tmp_path / "s.label"), "--out", str(tmp_path / "e.bin")])
    assert len(io.read_lidar_bin(tmp_path / "e.bin", columns=4)) == 400 - int(140 * 0.75)
    r = runner.invoke(app, ["corrupt", str(tmp_path / "s.bin"), "--name", "incomplete_echo", "--columns", "4"])
    assert isinstance(r.exception, ValueError) and "labels" in str(r.exception)
    raw[:399].tofile(tmp_path / "short.label")
    r = runner.invoke(app, ["corrupt", str(tmp_path / "s.bin"), "--name", "incomplete_echo", "--columns", "4",
                            "--labels", str(tmp_path / "short.label")])
    assert isinstance(r.exception, ValueError) and "expected 400 labels" in str(r.exception)
    r = runner.invoke(app, ["certify", "--method", "magic"])
    assert r.exit_code != 0
    r = runner.invoke(app, ["certify", str(tmp_path / "missing.ply"), "--model", "x:y"])
    assert r.exit_code != 0


def test_report_section_tiny(tmp_path: Path, tiny: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report, "_models", lambda cache, cfg: (tiny[0], tiny[0]))
    s = report.run(ReportContext(out_dir=tmp_path, cache_dir=tmp_path), report.TINY)
    assert s.domain == "pointcloud" and s.reproduce and s.full
    assert {t.name for t in s.tables} - {"kitti_lidar"} == {"corruptions", "attacks", "certified"}
    assert len(s.tables[0].rows) == 15 + 8
    assert all(f.png[:4] == b"\x89PNG" for f in s.figures)
    json.dumps(s.summary)  # serialisable
    assert 0 <= s.summary["hacker3d_success"] <= 1


@pytest.mark.shared_data
def test_kitti_table_on_real_scan() -> None:
    path = report._kitti_path()
    if path is None:
        pytest.skip("shared data absent: ../shared/data/pointcloud/lidar/kitti_000008.bin")
    t = report.kitti_table(path)
    assert t is not None and len(t.rows) == 8
    assert t.rows[[r[0] for r in t.rows].index("incomplete_echo")][1:] == ["needs labels"] * 3
    kept = {r[0]: [float(c.split(" / ")[0]) for c in r[1:]] for r in t.rows if r[0] != "incomplete_echo"}
    mean_range = {r[0]: [float(c.split(" / ")[1][:-2]) for c in r[1:]] for r in t.rows if r[0] != "incomplete_echo"}
    assert kept["beam_missing"] == sorted(kept["beam_missing"], reverse=True)
    assert kept["fog"] == [1.0, 1.0, 1.0]  # fog moves returns, removes none
    assert mean_range["fog"][2] < mean_range["fog"][0]
    assert kept["wet_ground"][2] < kept["wet_ground"][0] < 1.0


def test_evaluate_out_resumes_with_the_same_result(tmp_path: Path, model_spec: str) -> None:
    from certkit.core.cli import STATE

    base = ["evaluate", "--suite", "robo3d", "--model", model_spec, "--points", "64", "--limit", "3"]
    old = STATE["json"]
    STATE["json"] = True
    try:
        whole = json.loads(_ok(base))
        out = tmp_path / "e.jsonl"
        assert json.loads(_ok([*base, "--out", str(out)])) == whole
        rows = ResultLog.read(out)
        assert len(rows) == 24 and {r["seed"] for r in rows} == {0}
        lines = out.read_text().splitlines()
        out.write_text("\n".join(lines[:6]) + "\n")  # a run stopped after 5 units resumes
        assert json.loads(_ok([*base, "--out", str(out)])) == whole
        assert len(out.read_text().splitlines()) == 25
        r = runner.invoke(app, [*base, "--out", str(out), "--seed", "1"])
        assert isinstance(r.exception, SettingsMismatchError) and "seed" in str(r.exception)
    finally:
        STATE["json"] = old
