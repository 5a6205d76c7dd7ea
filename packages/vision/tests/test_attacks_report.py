"""The ``attacks`` report section: model caching, and (slow) the full quick-mode section."""

from __future__ import annotations

import os

import pytest
import torch

from certkit.vision.attacks.report import _cached


def test_cached_model_trains_once(tmp_path):
    calls = []

    def build():
        calls.append(1)
        torch.manual_seed(0)
        return torch.nn.Linear(3, 2)

    a = _cached(tmp_path, "lin", {"seed": 0}, build, lambda: torch.nn.Linear(3, 2))
    b = _cached(tmp_path, "lin", {"seed": 0}, build, lambda: torch.nn.Linear(3, 2))
    assert len(calls) == 1
    assert torch.equal(a.weight, b.weight)
    # a truncated checkpoint is retrained, not trusted
    path = next(tmp_path.glob("lin-*.pt"))
    path.write_bytes(path.read_bytes()[:10])
    _cached(tmp_path, "lin", {"seed": 0}, build, lambda: torch.nn.Linear(3, 2))
    assert len(calls) == 2


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("CERTKIT_SLOW") != "1", reason="set CERTKIT_SLOW=1")
def test_section_quick_mode(tmp_path):
    from certkit.core.report import ReportContext
    from certkit.vision.attacks.report import sections

    s = sections(ReportContext(out_dir=tmp_path, cache_dir=tmp_path / "cache"))
    assert [t.name for t in s.tables] == ["robust_accuracy", "corruptions", "translation"]
    rows = {r[0]: r for r in s.tables[0].rows}
    assert rows["pgd_at"][3] > rows["standard"][3] + 0.2        # PGD-AT is more robust
    for r in rows.values():
        assert r[4] <= r[3] + 1e-9                              # APGD ensemble ≥ PGD strength
    d = rows["distilled (T=50)"]
    assert d[2] > d[4] + 0.3                                    # FGSM fooled by distillation
    assert s.figures and s.figures[0].png[:4] == b"\x89PNG"
