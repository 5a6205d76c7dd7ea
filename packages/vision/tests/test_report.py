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
