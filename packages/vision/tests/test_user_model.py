"""The user's own 3×32×32 CNN and .npy data, end to end through `certkit vision certify` and
the API: data readers, the dry forward pass, bad input (one line, exit 2; ValueError naming
the argument), and run logs that refuse to mix runs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from certkit.core.cli import STATE, main
from certkit.core.results import ResultLog, SettingsMismatchError
from certkit.vision.data.checks import PixelRangeWarning, check_model_input
from certkit.vision.data.datasets import load_data
from certkit.vision.smoothing.smooth import Smooth

USER_MODULE = textwrap.dedent("""
    import torch
    from torch import nn


    def cnn():
        return nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(),
                             nn.Linear(4 * 16 * 16, 10))


    def half_cnn():  # Dual RS: one half of a 3x32x32 image is 3x32x16
        return nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(),
                             nn.Linear(4 * 16 * 8, 10))
""")


@pytest.fixture
def user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A user's folder: mycnn.py (not on sys.path), weights, 6 images (N, H, W, C) uint8 and labels."""
    (tmp_path / "mycnn_h24.py").write_text(USER_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "mycnn_h24", raising=False)
    sys.path_importer_cache.pop(str(tmp_path), None)
    sys.path.insert(0, str(tmp_path))
    try:
        import mycnn_h24  # type: ignore[import-not-found]

        torch.manual_seed(0)
        torch.save(mycnn_h24.cnn().state_dict(), tmp_path / "w.pt")
        torch.save(mycnn_h24.half_cnn().state_dict(), tmp_path / "w_half.pt")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("mycnn_h24", None)
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8))
    np.save(tmp_path / "y.npy", rng.integers(0, 10, 6))
    yield {"dir": str(tmp_path), "model": "mycnn_h24:cnn", "weights": str(tmp_path / "w.pt"),
           "half": "mycnn_h24:half_cnn", "half_weights": str(tmp_path / "w_half.pt"),
           "x": str(tmp_path / "x.npy"), "y": str(tmp_path / "y.npy")}
    sys.modules.pop("mycnn_h24", None)
    STATE.update(json=False, quiet=False)


def _certify(user: dict[str, str], out: str, *extra: str) -> int:
    return main(["--quiet", "vision", "certify", "--model", user["model"], "--weights", user["weights"],
                 "--data", user["x"], "--labels", user["y"], "--count", "3", "--n0", "10", "--n", "40",
                 "--batch-size", "64", "--out", out, *extra])


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def test_user_cnn_npy_end_to_end(user: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    out = Path(user["dir"]) / "run.jsonl"
    assert _certify(user, str(out)) == 0
    rows = ResultLog.read(out)
    assert [r["idx"] for r in rows] == [0, 1, 2] and all(r["seed"] == 0 for r in rows)
    settings = ResultLog.read_settings(out)
    assert settings is not None
    assert {"model", "data", "labels", "sigma", "n0", "n", "alpha", "seed", "mode", "certkit_version"} <= set(settings)
    assert settings["sigma"] == 0.25 and settings["n"] == 40
    # the same certificates through the API on the same data
    import importlib

    sys.path.insert(0, user["dir"])
    try:
        net = importlib.import_module("mycnn_h24").cnn()
    finally:
        sys.path.remove(user["dir"])
    net.load_state_dict(torch.load(user["weights"], weights_only=True))
    split = load_data(user["x"], labels=user["y"])
    assert split.x.shape == (6, 3, 32, 32) and split.x.dtype == torch.float32 and float(split.x.max()) <= 1.0
    certs = Smooth(net.eval(), 10, 0.25).certify_batch(split.x[:3], n0=10, n=40, labels=split.y[:3])
    assert [(c.prediction, c.radius) for c in certs] == [(r["prediction"], r["radius"]) for r in rows]


def test_runs_are_not_mixed(user: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    out = Path(user["dir"]) / "run.jsonl"
    assert _certify(user, str(out)) == 0
    capsys.readouterr()
    assert _certify(user, str(out), "--sigma", "0.5") == 2  # resuming with another σ is refused
    err = _one_line_error(capsys)
    assert "sigma 0.25 in the file, 0.5 now" in err and "--new" in err
    assert _certify(user, str(out), "--seed", "3", "--n", "50") == 2
    err = _one_line_error(capsys)
    assert "seed" in err and '"n"' not in err and "n 40 in the file, 50 now" in err
    assert _certify(user, str(out), "--sigma", "0.5", "--new") == 0
    assert ResultLog.read_settings(out)["sigma"] == 0.5 and len(ResultLog.read(out)) == 3
    assert len(list(Path(user["dir"]).glob("run.jsonl.*.bak"))) == 1
    # other weights: another model fingerprint
    torch.save({k: v + 1 for k, v in torch.load(user["weights"], weights_only=True).items()}, user["weights"])
    capsys.readouterr()
    assert _certify(user, str(out), "--sigma", "0.5") == 2
    assert "model" in _one_line_error(capsys)


def test_second_writer_is_refused(user: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    out = Path(user["dir"]) / "locked.jsonl"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom certkit.core.results import ResultLog\n"
         f"log = ResultLog({str(out)!r})\nprint('ready', flush=True)\ntime.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        capsys.readouterr()
        assert _certify(user, str(out)) == 2
        err = _one_line_error(capsys)
        assert "another run is writing" in err and "LogLockedError" not in err
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    assert not out.exists() or ResultLog.read(out) == []


@pytest.mark.parametrize(("extra", "needle"), [
    ([], "--labels"),  # .npy images without labels
    (["--labels", "LABELS5"], "--labels: expected (6,)"),
    (["--labels", "LABELS", "--num-classes", "5"], "--num-classes"),
    (["--labels", "LABELS", "--layout", "nchw"], "--data: the model does not accept inputs of shape"),
    (["--labels", "LABELS", "--layout", "sideways"], "--layout"),
    (["--labels", "LABELS", "--image-size", "32"], "--labels: only for array data"),
    (["--labels", "LABELS", "--image-size", "16"], "--image-size: only for image folders"),
    (["--labels", "LABELS", "--data", "FOLDER", "--image-size", "big"], "--image-size: expected H or HxW"),
])
def test_bad_input_one_line_exit_2(user: dict[str, str], capsys: pytest.CaptureFixture[str], extra: list[str],
                                   needle: str) -> None:
    np.save(Path(user["dir"]) / "y5.npy", np.zeros(5, dtype=np.int64))
    if "FOLDER" in extra:  # an image folder (with its own labels)
        extra = [e for e in extra if e not in ("--labels", "LABELS")]
    extra = [user["y"] if e == "LABELS" else str(Path(user["dir"]) / "y5.npy") if e == "LABELS5"
             else user["dir"] if e == "FOLDER" else e for e in extra]
    if extra[-2:] == ["--image-size", "32"]:  # labels given with an image folder
        extra = ["--data", user["dir"], *extra]
    rc = main(["vision", "certify", "--model", user["model"], "--weights", user["weights"], "--data", user["x"],
               "--count", "1", "--n0", "5", "--n", "10", "--out", str(Path(user["dir"]) / "bad.jsonl"), *extra])
    assert rc == 2
    assert needle in _one_line_error(capsys)


def test_default_digits_meet_a_3_channel_model(user: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["vision", "certify", "--model", user["model"], "--weights", user["weights"], "--count", "1",
               "--n0", "5", "--n", "10", "--out", str(Path(user["dir"]) / "d.jsonl")])
    assert rc == 2
    err = _one_line_error(capsys)
    assert "(1, 8, 8)" in err and "default --data" in err and "3 channels" in err


def test_api_bad_input_names_the_argument(user: dict[str, str]) -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=2, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 16 * 16, 10)).eval()
    smooth = Smooth(net, 10, 0.25)
    x = torch.rand(3, 3, 32, 32)
    with pytest.raises(ValueError, match=r"x: the model does not accept inputs of shape \(C, H, W\) = \(1, 32, 32\)"):
        smooth.certify_batch(x[:, :1], n0=5, n=10)
    with pytest.raises(ValueError, match=r"x: certify\(\) takes one input .*use certify_batch\(\)"):
        smooth.certify(x, n0=5, n=10)
    with pytest.raises(ValueError, match=r"num_classes: .*\(1, 10\) logits, but num_classes=5"):
        Smooth(net, 5, 0.25).certify_batch(x, n0=5, n=10)
    with pytest.warns(PixelRangeWarning, match=r"values in \[.*, 2\d\d.*\], outside \[0, 1\].*divide by 255"):
        Smooth(net, 10, 0.25).certify_batch(x[:1] * 255, n0=5, n=10)
    # the checks are cached per Smooth: a new input shape is checked again, and a first
    # batch in [0, 1] does not silence the range check of a later 0-255 batch
    checked = Smooth(net, 10, 0.25)
    checked.certify_batch(x[:1], n0=5, n=10)
    with pytest.raises(ValueError, match="does not accept inputs of shape"):
        checked.certify_batch(x[:1, :2], n0=5, n=10)
    with pytest.warns(PixelRangeWarning):
        checked.certify_batch(x[1:2] * 255, n0=5, n=10)
    with pytest.raises(ValueError, match=r"labels: .* holds no labels"):
        load_data(user["x"])
    with pytest.raises(ValueError, match="layout"):
        load_data(user["x"], labels=user["y"], layout="hwc")
    with pytest.raises(ValueError, match=r"labels: expected \(6,\)"):
        load_data(user["x"], labels=np.zeros(4, dtype=np.int64))
    with pytest.raises(ValueError, match="data: expected one of"):
        load_data("no-such-data")
    # the check on its own (used by every vision command): both shapes in one line
    with pytest.raises(ValueError, match=r"model: maps an input \(1, 3, 32, 32\) to \(1, 10, 1\)"):
        check_model_input(lambda t: net(t)[..., None], x, 10)


def test_api_resume_refuses_other_settings(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 3)).eval()
    x = torch.rand(4, 3, 4, 4)
    log = tmp_path / "api.jsonl"
    first = Smooth(net, 3, 0.25).certify_batch(x, n0=10, n=30, log=log, seed=2)
    with pytest.raises(SettingsMismatchError, match=r"sigma 0\.25 in the file, 0\.5 now"):
        Smooth(net, 3, 0.5).certify_batch(x, n0=10, n=30, log=log, seed=2)
    again = Smooth(net, 3, 0.25).certify_batch(x, n0=10, n=30, log=log, seed=2)
    assert [c.as_row() for c in again] == [c.as_row() for c in first]
    fresh = Smooth(net, 3, 0.5).certify_batch(x, n0=10, n=30, log=log, seed=2, new=True)
    assert ResultLog.read_settings(log)["sigma"] == 0.5 and len(ResultLog.read(log)) == len(fresh) == 4


def test_dual_cli_on_the_user_cnn(user: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    out = Path(user["dir"]) / "dual.jsonl"
    STATE.update(json=True)
    rc = main(["--quiet", "--json", "vision", "certify", "--dual", "--model", user["half"], "--weights",
               user["half_weights"], "--data", user["x"], "--labels", user["y"], "--count", "3", "--n0", "10",
               "--n", "40", "--out", str(out)])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["mode"] == "dual" and summary["inputs"] == 3
    rows = ResultLog.read(out)
    assert all(r["mode"] == "dual" and "p_lower_right" in r and r["seed"] == 0 for r in rows)
    assert ResultLog.read_settings(out)["mode"] == "dual"
    capsys.readouterr()
    # the full-size model does not fit a half image: one line, exit 2
    assert main(["vision", "certify", "--dual", "--model", user["model"], "--weights", user["weights"], "--data",
                 user["x"], "--labels", user["y"], "--count", "1", "--out", str(out) + "2"]) == 2
    assert "--model: --data (its left half): the model does not accept" in _one_line_error(capsys)


def test_conformal_cli_on_the_user_cnn(user: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    common = ["vision", "conformal", "--model", user["model"], "--weights", user["weights"], "--data", user["x"],
              "--labels", user["y"], "--splits", "2"]
    assert main(["--json", *common, "--method", "lac"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["method"] == "split" and res["score"] == "thr" and res["inputs"] == 6 and 0 <= res["coverage"] <= 1
    assert main(["--json", *common, "--method", "rscp+", "--n-mc", "4", "--alpha", "0.3"]) == 0
    captured = capsys.readouterr()
    res = json.loads(captured.out)
    assert res["method"] == "rscp+" and res["full_set_fraction"] == 1.0  # 3 calibration inputs, 4 samples
    assert "warning" in res and "n_mc = 4" in captured.err
    for bad, needle in ((["--method", "cqr"], "method"), (["--score", "lac2"], "score"),
                        (["--num-classes", "3"], "--num-classes")):
        assert main([*common, *bad]) == 2
        assert needle in _one_line_error(capsys)


def test_report_on_the_user_cnn(user: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    """`certkit report --model M --data D --labels L --only attacks` writes the page for the
    user's model; data options without --model are refused (one line, exit 2)."""
    pytest.importorskip("certkit.report")
    out = Path(user["dir"]) / "report"
    rc = main(["--quiet", "--json", "report", "--model", user["model"], "--weights", user["weights"], "--data",
               user["x"], "--labels", user["y"], "--only", "attacks", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    text = json.dumps(summary)
    assert "x.npy" in text and "APGD" in text
    assert "x.npy" in (out / "index.html").read_text()
    capsys.readouterr()
    assert main(["report", "--data", user["x"], "--out", str(out)]) == 2
    assert "--model" in _one_line_error(capsys)


def test_bounds_section_on_the_user_cnn(user: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    """`certkit report --model M --data D --only bounds`: IBP / CROWN verified accuracy of the
    user's CNN, with PGD beside it; verified never exceeds PGD's robust accuracy."""
    pytest.importorskip("certkit.report")
    out = Path(user["dir"]) / "report_bounds"
    rc = main(["--quiet", "report", "--model", user["model"], "--weights", user["weights"], "--data",
               user["x"], "--labels", user["y"], "--only", "bounds", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    (sec,) = summary["sections"].values()
    s = sec["summary"]
    assert sec["error"] is None and "x.npy" in json.dumps(sec)
    assert 0 <= s["crown_verified_acc"] <= s["pgd_acc"] <= 1
    ibp = list(s["ibp_verified_acc"].values())
    assert ibp == sorted(ibp, reverse=True)  # larger eps never verifies more
    assert s["headline"]["checks"][0]["passed"]


def test_0_255_pixels_warn_once_in_one_line(user: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    x = np.load(user["x"]).astype(np.float32)  # 0-255 floats: not divided by 255, so the range is wrong
    np.save(Path(user["dir"]) / "x255.npy", x)
    rc = main(["--quiet", "vision", "certify", "--model", user["model"], "--weights", user["weights"], "--data",
               str(Path(user["dir"]) / "x255.npy"), "--labels", user["y"], "--count", "2", "--n0", "5", "--n", "10",
               "--out", str(Path(user["dir"]) / "w.jsonl")])
    assert rc == 0
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("certkit: warning: --data: values in [0, 255]") and "/ 255" not in err[0]
    assert "divide by 255" in err[0]
