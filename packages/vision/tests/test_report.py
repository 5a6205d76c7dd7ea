"""The vision report section, on tiny settings with a stub model (structure and numbers)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from certkit.core.report import ReportContext, Section


def test_section_structure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import certkit.vision.data.reference as ref
    import certkit.vision.report as rep
    from certkit.vision.data.digits import load_digits
    from certkit.vision.data.models import DigitsMLP, train_classifier

    tr, _ = load_digits()
    torch.manual_seed(0)
    model = train_classifier(DigitsMLP(32), tr.x[:300], tr.y[:300], epochs=3, noise_sigma=0.25, lr=1e-2)
    monkeypatch.setattr(ref, "digits_cnn", lambda sigma, **kw: model)
    monkeypatch.setattr(rep, "_settings", lambda full: {"sigmas": (0.25, 0.5), "inputs": 10, "n": 100,
                                                         "seq_inputs": 6, "seq_n": 300, "n_mc": 32,
                                                         "splits": 3, "epochs": 1, "rct_epochs": 1})
    sec = rep.sections(ReportContext(out_dir=tmp_path, cache_dir=tmp_path))
    assert isinstance(sec, Section) and sec.domain == "vision"
    assert sec.tables[0].name == "Randomized smoothing on digits"
    assert len(sec.tables) == 3 and len(sec.figures) == 2
    assert all(f.png[:4] == b"\x89PNG" for f in sec.figures)
    assert {"acr_sigma0.25", "sequential_pass_reduction", "rscp_plus_coverage"} <= set(sec.summary)
    assert 0.0 <= sec.summary["rscp_plus_coverage"] <= 1.0
    assert sec.reproduce.startswith("certkit") and sec.full


def test_section_on_the_users_model_and_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`certkit report --model M --data D`: the vision section runs on a user 3x32x32 CNN and
    .npy data (NHWC uint8 + labels), with its tables, headline and a reproduce line."""
    import numpy as np

    import certkit.vision.report as rep

    (tmp_path / "usercnn_h24r.py").write_text(
        "import torch\nfrom torch import nn\n\ndef cnn():\n    torch.manual_seed(0)\n"
        "    return nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(),"
        " nn.Linear(4 * 16 * 16, 3))\n")
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8))
    np.save(tmp_path / "y.npy", rng.integers(0, 3, 16))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(rep, "_settings", lambda full: {"sigmas": (0.25,), "inputs": 4, "n": 120, "seq_inputs": 3,
                                                         "seq_n": 200, "n_mc": 8, "splits": 2, "epochs": 1,
                                                         "attack_mc": 2})
    inputs = {"model": "usercnn_h24r:cnn", "weights": None, "data": str(tmp_path / "x.npy"),
              "labels": str(tmp_path / "y.npy"), "num_classes": 3, "sigma": 0.5, "layout": "auto"}
    try:
        sec = rep.sections(ReportContext(out_dir=tmp_path, cache_dir=tmp_path, inputs=inputs))
    finally:
        import sys

        sys.modules.pop("usercnn_h24r", None)
    assert isinstance(sec, Section) and "x.npy" in sec.title and "x.npy" in sec.text
    assert [t.name for t in sec.tables] == ["Randomized smoothing on x.npy",
                                           "Sequential certification (anytime-valid bound) vs Cohen's fixed n",
                                           "Robust conformal prediction on x.npy (α = 0.1)"]
    assert len(sec.tables[2].rows) == 3 + 3  # split THR/APS/RAPS, RSCP, RSCP+, PTT (no RCT without training data)
    assert "certified_accuracy_r0.5_sigma0.5" in sec.summary and sec.summary["headline"]["n"] == 4
    assert sec.reproduce.startswith("certkit report --only vision --model usercnn_h24r:cnn")
    assert "--num-classes 3" in sec.reproduce and "--layout" not in sec.reproduce
    bad = {**inputs, "num_classes": 10}
    with pytest.raises(ValueError, match="--num-classes"):
        rep.sections(ReportContext(out_dir=tmp_path, cache_dir=tmp_path, inputs=bad))
    import sys

    sys.modules.pop("usercnn_h24r", None)
