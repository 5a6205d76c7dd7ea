"""The RL report section end to end, with tiny training budgets (monkeypatched) so it runs
in CI: both environments' tables and figures, and the cache (a second call trains nothing)."""

from __future__ import annotations

import pytest

from certkit.core.report import ReportContext
from certkit.rl import report


def test_report_section_has_both_environments_and_uses_the_cache(tmp_path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report, "QUICK_TRAIN_STEPS", 2048)
    monkeypatch.setattr(report, "ACRO_QUICK_STEPS", 2048)
    ctx = ReportContext(out_dir=tmp_path / "out", cache_dir=tmp_path / "cache", full=False, seed=0,
                        quiet=True, device="cpu")
    sec = report.sections(ctx)
    names = [t.name for t in sec.tables]
    assert names == ["certified_reward", "soundness", "certified_reward_acrobot"]
    assert len(sec.figures) == 3 and all(f.png[:4] == b"\x89PNG" for f in sec.figures)
    s = sec.summary
    assert s["acrobot_train_steps"] == 2048 and s["train_steps"] == 2048
    assert -500 <= s["acrobot_certified_at_B"][1.0] <= s["acrobot_certified_at_B"][0.0] <= 0
    assert s["acrobot_certified_at_B"][0.0] <= s["acrobot_smoothed_mean"] + 1e-9
    assert -500 <= s["acrobot_clean_mean"] <= 0 and 0 <= s["clean_return"] <= 500
    assert s["ceiling_cartpole_v0"] == [196.8, 174.8, 111.6, 39.3, 6.4]
    acro = sec.tables[2]
    assert [r[0] for r in acro.rows] == report.BUDGETS
    for row in acro.rows:  # cp, dkw, bernstein bounds all within the return range
        assert all(-500 <= v <= 0 for v in row[1:4])
    cached = sorted(p.name for p in (tmp_path / "cache" / "rl").iterdir())
    assert cached == ["acrobot_v1_ppo_sigma0.2_2048_v1.pt", "cartpole_v1_ppo_sigma0.2_2048_v3.pt"]

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached policies must be reused")

    monkeypatch.setattr(report, "train_ppo", no_training)
    again = report.sections(ctx)
    assert again.summary["acrobot_certified_at_B"] == s["acrobot_certified_at_B"]
