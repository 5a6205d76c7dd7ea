"""`certkit bounds vnncomp`: a category run, its results CSV, bad rows, resume and refusal."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("onnx")

from certkit.core.bounds.vnncomp import (
    compare,
    read_instances,
    read_published,
    run_category,
)
from certkit.core.cli import main
from certkit.core.results import ResultLog, SettingsMismatchError

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "vnncomp2021"
needs_data = pytest.mark.skipif(not (DATA / "test").is_dir(), reason="../shared/data/vnncomp2021 absent")


@pytest.fixture
def category(tmp_path: Path) -> Path:
    """A copy of the 'test' category with two bad rows added: a missing network, and an
    ACAS Xu property (5 inputs) on a 1-input network."""
    if not (DATA / "test").is_dir():
        pytest.skip("../shared/data/vnncomp2021 absent")
    d = tmp_path / "mini"
    d.mkdir()
    for f in ("test_nano.onnx", "test_nano.vnnlib", "test_sat.onnx", "test_unsat.onnx", "test_prop.vnnlib"):
        shutil.copy(DATA / "test" / f, d / f)
    shutil.copy(DATA / "acasxu" / "prop_1.vnnlib", d / "acas_prop_1.vnnlib")
    (d / "mini_instances.csv").write_text(
        "test_nano.onnx,test_nano.vnnlib,60\n"
        "./test_sat.onnx,./test_prop.vnnlib,60\n"
        "test_unsat.onnx,test_prop.vnnlib,60\n"
        "missing.onnx,test_prop.vnnlib,60\n"
        "test_nano.onnx,acas_prop_1.vnnlib,60\n")
    return d


def test_category_run_results_csv_and_errors(category: Path, tmp_path: Path) -> None:
    out = tmp_path / "res" / "results.csv"
    rows = run_category(category, out=out, timeout_scale=0.5)
    got = {r["onnx"].lstrip("./") + " " + r["vnnlib"].lstrip("./"): r["result"] for r in rows}
    assert got == {"test_nano.onnx test_nano.vnnlib": "unsat", "test_sat.onnx test_prop.vnnlib": "sat",
                   "test_unsat.onnx test_prop.vnnlib": "unsat", "missing.onnx test_prop.vnnlib": "error",
                   "test_nano.onnx acas_prop_1.vnnlib": "error"}
    errs = {r["onnx"]: r["error"] for r in rows if r["result"] == "error"}
    assert "not found" in errs["missing.onnx"] and "\n" not in errs["missing.onnx"]
    assert "inputs" in errs["test_nano.onnx"]
    recs = list(csv.reader(out.read_text().splitlines()))
    assert len(recs) == 5 and all(len(r) == 6 and r[0] == "mini" for r in recs)
    assert [r[4] for r in recs] == ["unsat", "sat", "unsat", "error", "error"]
    assert all(r["timeout"] == 30.0 for r in rows)
    # resume: nothing is re-run; other settings are refused
    again = run_category(category, out=out, timeout_scale=0.5)
    assert [r["run_time"] for r in again] == [r["run_time"] for r in rows]
    with pytest.raises(SettingsMismatchError, match="timeout_scale"):
        run_category(category, out=out, timeout_scale=1.0)
    assert len(run_category(category, out=out, timeout_scale=1.0, new=True)) == 5


def test_compare_counts_contradictions() -> None:
    rows = [{"category": "c", "onnx": "./a.onnx", "vnnlib": "p.vnnlib", "result": "unsat"},
            {"category": "c", "onnx": "b.onnx", "vnnlib": "p.vnnlib", "result": "sat"},
            {"category": "c", "onnx": "d.onnx", "vnnlib": "p.vnnlib", "result": "timeout"}]
    pub = {("c", "a.onnx", "p.vnnlib"): "sat", ("c", "b.onnx", "p.vnnlib"): "sat",
           ("c", "d.onnx", "p.vnnlib"): "unsat"}
    cmp = compare(rows, pub)
    assert cmp["solved"] == 2 and cmp["published_solved"] == 3
    assert len(cmp["contradictions"]) == 1 and "a.onnx" in cmp["contradictions"][0]
    # a gzipped network in the category copy (nn4sys's nets/*.onnx.gz) is the published .onnx
    gz = [{"category": "c", "onnx": "nets/a.onnx.gz", "vnnlib": "p.vnnlib", "result": "unsat"}]
    assert compare(gz, pub)["contradictions"] and compare(gz, pub)["published_solved"] == 1


@needs_data
def test_published_test_category_agrees() -> None:
    pub = read_published(DATA / "results_2021" / "a-b-CROWN.csv")
    assert pub[("acasxu", "ACASXU_run2a_1_1_batch_2000.onnx", "prop_1.vnnlib")] == "unsat"
    assert len(read_instances(DATA / "acasxu")) == 186
    nn = read_published(DATA / "results_2021" / "nnenum.csv")  # holds / violated
    assert nn[("test", "test_sat.onnx", "test_prop.vnnlib")] == "sat"
    assert nn[("acasxu", "ACASXU_run2a_1_1_batch_2000.onnx", "prop_1.vnnlib")] == "unsat"


def test_command_line_errors(category: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.csv"
    assert main(["-q", "bounds", "vnncomp", str(category), "--out", str(out), "--timeout-scale", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("certkit: error: timeout_scale") and "\n" not in err
    assert main(["-q", "bounds", "vnncomp", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert "not a folder" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "bad_instances.csv").write_text("a.onnx,b.vnnlib\n")
    assert main(["-q", "bounds", "vnncomp", str(bad), "--out", str(out)]) == 2
    assert "bad_instances.csv:1" in capsys.readouterr().err
    # bad rows: reported one line each, the rest runs, exit 2
    code = main(["-q", "bounds", "vnncomp", str(category), "--out", str(out), "--timeout-scale", "0.5",
                 "--rows", "0,3"])
    cap = capsys.readouterr()
    assert code == 2
    lines = [s for s in cap.err.splitlines() if s.startswith("certkit: error: row")]
    assert len(lines) == 1 and "missing.onnx" in lines[0]
    assert [r[4] for r in csv.reader(out.read_text().splitlines())] == ["unsat", "error"]
    assert main(["-q", "bounds", "vnncomp", str(category), "--out", str(out), "--rows", "9"]) == 2
    assert "rows: 9 is outside" in capsys.readouterr().err


@needs_data
def test_sat_witness_rechecked_on_the_original_graph() -> None:
    """A sat counterexample is confirmed by onnxruntime on the user's own ONNX graph; the
    same witness put to a graph where it does not hold (the unsat net: no counterexample
    exists) is refused as 'unknown', never reported as sat."""
    pytest.importorskip("onnxruntime")
    import numpy as np

    from certkit.core.bounds.vnnlib import parse_vnnlib
    from certkit.core.bounds.vnnlib_verify import recheck_with_onnxruntime, verify_onnx_vnnlib

    t = DATA / "test"
    r = verify_onnx_vnnlib(t / "test_sat.onnx", t / "test_prop.vnnlib", timeout=30)
    assert r.status == "sat" and r.method.endswith("+onnxruntime")
    prop = parse_vnnlib(t / "test_prop.vnnlib")
    c = prop.clauses[0]
    assert r.y is not None and np.all(c.C @ r.y <= c.d + 1e-5)
    moved = recheck_with_onnxruntime(t / "test_unsat.onnx", prop, r)
    assert moved.status == "unknown" and "not confirmed" in moved.method


def test_relu_split_flag_is_a_setting_of_the_run(category: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """``--no-relu-split`` reaches the verifier and is recorded in the log's settings: a run
    resumed with the other choice is refused (exit 2), never mixed."""
    out = tmp_path / "r.csv"
    assert main(["-q", "bounds", "vnncomp", str(category), "--out", str(out), "--rows", "0",
                 "--no-relu-split"]) == 0
    settings = ResultLog.read_settings(Path(str(out) + ".jsonl"))
    assert "relu_split" in json.dumps(settings)
    capsys.readouterr()
    assert main(["-q", "bounds", "vnncomp", str(category), "--out", str(out), "--rows", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("certkit: error:") and "verify" in err


def test_refine_flag_is_a_setting_of_the_run(category: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """``--refine milp`` reaches the verifier as ``relu_split_kw`` and is recorded in the log's
    settings (a resumed run without it is refused); a bad value is one line, exit 2."""
    out = tmp_path / "r.csv"
    assert main(["-q", "bounds", "vnncomp", str(category), "--out", str(out), "--rows", "0",
                 "--refine", "milp"]) == 0
    settings = json.dumps(ResultLog.read_settings(Path(str(out) + ".jsonl")))
    assert "relu_split_kw" in settings and "milp" in settings
    capsys.readouterr()
    assert main(["-q", "bounds", "vnncomp", str(category), "--out", str(out), "--rows", "0"]) == 2
    assert main(["-q", "bounds", "vnncomp", str(category), "--out", str(tmp_path / "b.csv"), "--rows", "0",
                 "--refine", "mip"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("certkit: error: refine:"), err
