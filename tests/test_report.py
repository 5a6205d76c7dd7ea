"""The report builder: self-contained HTML, summary.json, failures shown, CLI exit codes."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from certkit.core.cli import main
from certkit.core.report import (
    ReportContext,
    Section,
    Table,
    figure_from_matplotlib,
    use_agg,
)
from certkit.report.build import build_report


def _good(ctx: ReportContext) -> Section:
    use_agg()
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    return Section(domain="toy", title="Toy section", summary={"acc": 0.5},
                   tables=[Table("t", ["a", "b"], [[1, 0.25]])],
                   figures=[figure_from_matplotlib(fig, "curve", "a curve")],
                   reproduce="certkit toy certify", full="more samples")


def _bad(ctx: ReportContext) -> Section:
    raise RuntimeError("boom")


def test_build_report_self_contained_with_failures_visible(tmp_path: Path) -> None:
    ctx = ReportContext(out_dir=tmp_path / "r", cache_dir=tmp_path / "c")
    page, sections = build_report(ctx, providers=[("toy", _good), ("bad", _bad)], log=lambda s: None)
    html = page.read_text()
    assert "Toy section" in html and "certkit toy certify" in html
    imgs = re.findall(r"src='data:image/png;base64,([^']+)'", html)
    assert len(imgs) == 1 and base64.b64decode(imgs[0]).startswith(b"\x89PNG")
    assert "section failed" in html and "boom" in html
    assert "http://" not in html and "https://" not in html  # nothing fetched from outside
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["sections"]["toy/Toy section"]["summary"] == {"acc": 0.5}
    assert summary["sections"]["bad/bad"]["error"].startswith("RuntimeError: boom")
    assert [s.error is None for s in sections] == [True, False]


def test_merge_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from certkit.core.results import ResultLog

    for k in range(2):
        with ResultLog(tmp_path / f"s{k}.jsonl") as log:
            log.write({"idx": k, "v": k})
    rc = main(["merge", str(tmp_path / "s0.jsonl"), str(tmp_path / "s1.jsonl"), "--out", str(tmp_path / "m.jsonl")])
    assert rc == 0
    assert len((tmp_path / "m.jsonl").read_text().splitlines()) == 2
    assert main(["merge", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "x.jsonl")]) == 2
    assert "missing.jsonl" in capsys.readouterr().err



def _with_check(passed: bool):  # type: ignore[no-untyped-def]
    def section(ctx: ReportContext) -> Section:
        return Section(domain="toy", title=f"check {passed}",
                       summary={"headline": {"label": "toy accuracy", "value": 0.5, "format": "percent",
                                             "n": 10, "successes": 5,
                                             "checks": [{"name": "attack below certificate", "passed": passed}]}})
    return section


@pytest.mark.parametrize(("sections", "code", "says"), [
    ([_good], 0, None),
    ([_good, _bad], 1, "1 report section(s) failed: "),
    ([_with_check(True)], 0, None),
    ([_with_check(False)], 1, "soundness check(s) failed: toy/check False: attack below certificate"),
])
def test_report_exit_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                          sections: list, code: int, says: str | None) -> None:  # type: ignore[type-arg]
    """The page is written either way; a failed section or a failed soundness check makes
    the command exit 1 with one line naming it (a script or CI run must not read it as ok)."""
    import certkit.report.build as build

    real = build.build_report
    monkeypatch.setattr(build, "build_report",
                        lambda ctx, only=None, log=print: real(
                            ctx, providers=[(f.__name__, f) for f in sections], log=log))
    out = tmp_path / "rep"
    assert main(["-q", "report", "--out", str(out)]) == code
    assert (out / "index.html").is_file()
    err = [s for s in capsys.readouterr().err.splitlines() if s.startswith("certkit: error:")]
    if says is None:
        assert err == []
    else:
        assert len(err) == 1 and says in err[0]
