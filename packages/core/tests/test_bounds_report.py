"""Report section ``bounds`` in quick mode on a cached model (a briefly trained stand-in
saved where ``cached_model`` looks, so the test does not train the reference model)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("certkit.vision")

from certkit.core.bounds.cli import vision_module
from certkit.core.bounds.report import sections
from certkit.core.cache import save_state
from certkit.core.report import ReportContext

V = vision_module("verified")
load_digits = vision_module("digits").load_digits


def test_report_section_quick_cached(tmp_path: Path) -> None:
    tr, _ = load_digits()
    model, cfg = V.quick_config(full=False)
    cfg.epochs, cfg.ramp_epochs = 2, 1
    model, _ = V.train_certified(model, tr.x[:300], tr.y[:300], cfg)
    meta = {"train_seconds": 1.0, "method": cfg.method, "epochs": cfg.epochs, "eps": cfg.eps,
            "arch": type(model).__name__}
    save_state({"model": model.state_dict(), "meta": meta}, tmp_path / "cache" / "vision" / "verified_quick_s0.pt")
    ctx = ReportContext(out_dir=tmp_path / "out", cache_dir=tmp_path / "cache", full=False, seed=0)
    (sec,) = sections(ctx)
    assert sec.domain == "bounds" and sec.full and sec.reproduce.startswith("certkit vision verified")
    s = sec.summary
    assert s["arch"] == "CertifiedMLP" and s["eps"] == 0.1
    for k in ("clean_acc", "ibp_verified_acc", "crown_verified_acc"):
        assert 0.0 <= s[k] <= 1.0
    # a certificate never exceeds clean accuracy
    assert s["ibp_verified_acc"] <= s["clean_acc"] and s["crown_verified_acc"] <= s["clean_acc"]
    (table,) = sec.tables
    assert [r[0] for r in table.rows] == [0.02, 0.05, 0.1, 0.15]
    ibp_col = [r[2] for r in table.rows]
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(ibp_col))  # verified acc falls with ε
    (fig,) = sec.figures
    assert fig.png[:8] == b"\x89PNG\r\n\x1a\n"
    # the cached model was used, not retrained
    assert s["train_seconds"] == 1.0 and sec.seconds > 0
