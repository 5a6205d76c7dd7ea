"""End to end: `certkit report` on the embedded defaults with a cold cache, as the README's
main job runs it. Every installed domain's section must succeed, every image must decode,
every section must publish a valid headline for its summary card, and (when Debian's
chromium, chromium-driver and selenium are installed) the page must read well in a real
browser: no horizontal overflow at 1280 px, every image decoded, every card linked to its
section, no failed section, a dark scheme."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from certkit.report.browser import (
    check_report,
    chromium_binary,
    inspect_page,
    page_problems,
    selenium_available,
)


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    env = dict(os.environ, CERTKIT_CACHE=str(out / "cache"), MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, "-c", "from certkit.core.cli import run; run()",
                           "--quiet", "report", "--out", str(out / "report")],
                          capture_output=True, text=True, env=env, timeout=1500, check=False)
    assert proc.returncode == 0, f"certkit report failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return out / "report"


def test_every_section_succeeds_and_images_decode(report_dir: Path) -> None:
    summary = json.loads((report_dir / "summary.json").read_text())
    assert summary["sections"], "no report sections were found (entry points not installed?)"
    errors = {k: v["error"] for k, v in summary["sections"].items() if v["error"]}
    assert not errors, errors
    for key, sec in summary["sections"].items():
        assert sec["reproduce"], f"{key}: no 'how to reproduce' line"
        head = sec["headline"]
        assert head and "problem" not in head, f"{key}: no valid headline for its summary card: {head}"
        assert head["n"], f"{key}: the headline does not state its sample size"
        if head["estimate"] and head["bound"] is None:
            assert head["interval"], f"{key}: an estimated headline without an interval"
    html = (report_dir / "index.html").read_text()
    assert "section failed" not in html
    imgs = re.findall(r"src='data:image/png;base64,([^']+)'", html)
    assert imgs
    for b64 in imgs:
        assert base64.b64decode(b64).startswith(b"\x89PNG")


@pytest.mark.skipif(chromium_binary() is None, reason="Debian's chromium is not installed")
def test_page_renders_in_headless_chromium(report_dir: Path) -> None:
    ok, total, failed = check_report(report_dir / "index.html")
    assert total > 0 and ok == total, f"{total - ok} of {total} images did not load"
    assert not failed


@pytest.mark.skipif(not selenium_available(), reason="selenium, chromium or chromium-driver not installed")
def test_page_reads_well_at_1280px(report_dir: Path) -> None:
    summary = json.loads((report_dir / "summary.json").read_text())
    check = inspect_page(report_dir / "index.html", width=1280)
    assert not page_problems(check, len(summary["sections"])), page_problems(check, len(summary["sections"]))
