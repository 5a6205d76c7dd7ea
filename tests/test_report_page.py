"""The report page: summary cards with intervals, tables and figures that fit, light and dark
schemes, one panel per image; and, in a real headless Chromium (Debian's chromium and
chromium-driver with selenium, skipped when absent), no horizontal overflow at 1280 px, every
image decoded, every card present and linked to its section, no failed section."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest

from certkit.core.report import (
    Figure,
    ReportContext,
    Section,
    Table,
    figure_from_matplotlib,
    figure_panels,
    use_agg,
)
from certkit.core.stats import clopper_pearson
from certkit.report.browser import check_report, inspect_page, page_problems, selenium_available
from certkit.report.build import build_report
from certkit.report.headline import format_value, parse_headline, proportion_interval
from certkit.report.page import png_size, render_html

use_agg()
import matplotlib.pyplot as plt  # noqa: E402

needs_browser = pytest.mark.skipif(not selenium_available(),
                                   reason="selenium, chromium or chromium-driver not installed")


def _plot(width: float = 4.6, panels: int = 1) -> object:
    fig, axes = plt.subplots(1, panels, figsize=(width, 3.2))
    for k, ax in enumerate(np.atleast_1d(axes)):
        ax.plot([0, 1, 2], [k, 1, 0], label=f"curve {k}")
        ax.set_title(f"panel {k}")
        ax.set_xlabel("radius")
        ax.legend()
    return fig


def _rich(ctx: ReportContext) -> Section:
    """A section shaped like the widest real ones: a 16-column table with long headers and
    cells, a wide single-panel figure and a normal one, and a proportion headline."""
    cols = ["ranker", *[f"maskCRQ@{k} (closure, very long header)" for k in range(15)]]
    rows = [[f"ranker {i}", *[round(0.123456 * j, 4) for j in range(15)]] for i in range(3)]
    return Section(
        domain="rank", title="A wide table and two figures",
        summary={"headline": {"label": "queries certified at K = 10", "value": 0.125, "format": "percent",
                              "n": 8, "of": "queries", "successes": 1}},
        tables=[Table("wide_table", cols, rows, "Sixteen columns must scroll in their own box."),
                Table("Long text cells", ["paper", "headline"],
                      [["comp-sum", "max |T - tight| = 7.8e-16 " * 8]])],
        figures=[figure_from_matplotlib(_plot(11.0), "wide", "A 11-inch wide figure."),
                 figure_from_matplotlib(_plot(), "normal", "A normal figure.")],
        text="Plain words.", reproduce="certkit report --only rank")


def _bound(ctx: ReportContext) -> Section:
    return Section(domain="rl", title="A certified bound",
                   summary={"headline": {"label": "certified expected reward at budget 0.2", "value": 393.8,
                                         "bound": "lower", "n": 2000, "of": "episodes",
                                         "checks": [{"name": "attack stays above", "passed": True}]}},
                   figures=figure_panels(_plot(9.0, panels=2), "two", "Two panels."),
                   reproduce="certkit report --only rl")


def _plain(ctx: ReportContext) -> Section:
    return Section(domain="theory", title="No headline", tables=[Table("t", ["a"], [[1]])],
                   reproduce="certkit theory run x")


def _boom(ctx: ReportContext) -> Section:
    raise RuntimeError("boom")


# --- headline figures --------------------------------------------------------------------------

def test_proportion_headline_gets_the_clopper_pearson_interval() -> None:
    h = parse_headline({"label": "x", "value": 0.125, "format": "percent", "n": 8, "successes": 1})
    lo, hi = clopper_pearson(1, 8, 0.05, side="two-sided")
    assert h.interval == pytest.approx((lo, hi)) and h.interval_method == "Clopper-Pearson"
    assert 0.0 < h.interval[0] < 0.125 < h.interval[1] < 0.6
    lo0, hi0 = proportion_interval(0, 10)
    assert lo0 == 0.0 and hi0 == pytest.approx(float(clopper_pearson(0, 10, 0.05, "two-sided")[1]))
    # the interval's coverage at the nominal 95% (exact interval: never below it)
    rng = np.random.default_rng(0)
    for p in (0.05, 0.3, 0.5):
        ks = rng.binomial(20, p, size=400)
        ivs = {k: proportion_interval(int(k), 20) for k in set(ks.tolist())}
        cover = np.mean([ivs[k][0] <= p <= ivs[k][1] for k in ks])
        assert cover >= 0.95 - 3 * np.sqrt(0.95 * 0.05 / 400)


@pytest.mark.parametrize(("raw", "key"), [
    ({"value": 1.0}, "headline.label"),
    ({"label": "x", "value": "high"}, "headline.value"),
    ({"label": "x", "value": 0.5, "format": "ratio"}, "headline.format"),
    ({"label": "x", "value": 0.5, "n": 4, "successes": 5}, "headline.successes"),
    ({"label": "x", "value": 0.5, "successes": 1}, "headline.successes"),
    ({"label": "x", "value": 0.5, "n": 0}, "headline.n"),
    ({"label": "x", "value": 0.5, "interval": [0.6, 0.4]}, "headline.interval"),
    ({"label": "x", "value": 0.5, "bound": "left"}, "headline.bound"),
    ({"label": "x", "value": 0.5, "checks": [{"name": "c"}]}, "headline.checks[0]"),
    ({"label": "x", "value": 0.5, "confidence": 95}, "headline.confidence"),
    ({"label": "x", "value": 4, "estimate": "no"}, "headline.estimate"),
])
def test_bad_headline_is_a_clear_error(raw: dict, key: str) -> None:
    with pytest.raises(ValueError, match=re.escape(key)):
        parse_headline(raw)


def test_table_sample_size_note() -> None:
    from certkit.report.headline import max_halfwidth

    k = np.arange(17)
    iv = clopper_pearson(k, np.full(17, 16), 0.05, side="two-sided")
    assert max_halfwidth(16) == pytest.approx(float(np.max(iv[:, 1] - iv[:, 0]) / 2))
    assert 0.24 < max_halfwidth(16) < 0.27 and max_halfwidth(539) < 0.05
    sec = Section(domain="d", title="T", tables=[Table("t", ["a"], [[0.5]], "Sixteen clouds.", n=16, of="test clouds")])
    html = render_html([sec], {})
    assert "Sixteen clouds. Proportions in this table rest on at least n = 16 test clouds; the 95% interval of each is at " \
           "most ±25 percentage points wide (Clopper-Pearson)." in html


def test_format_value() -> None:
    assert format_value(0.125, "percent") == "12.5%"
    assert format_value(1.0, "percent") == "100%"
    assert format_value(393.826, "number") == "393.8"
    assert format_value(0.7272727, "number") == "0.7273"
    assert format_value(float("nan"), "number") == "n/a"


# --- the page as HTML ----------------------------------------------------------------------------

def _page(tmp_path: Path, providers: list) -> tuple[Path, str]:
    ctx = ReportContext(out_dir=tmp_path / "r", cache_dir=tmp_path / "c")
    page, _ = build_report(ctx, providers=providers, log=lambda s: None)
    return page, page.read_text()


def test_cards_intervals_and_layout_in_the_html(tmp_path: Path) -> None:
    _, html = _page(tmp_path, [("rank", _rich), ("rl", _bound), ("theory", _plain), ("bad", _boom)])
    cards = re.findall(r"<a class='card( failed)?' href='#([^']+)'", html)
    ids = re.findall(r"<section class='report' id='([^']+)'", html)
    assert [c[1] for c in cards] == ids and len(ids) == 4 and len(set(ids)) == 4
    assert [bool(c[0]) for c in cards] == [False, False, False, True]
    assert "12.5%" in html and "95% interval 0.3% to 52.7% (Clopper-Pearson)" in html
    assert "n = 8 queries" in html
    assert "≥ 393.8" in html and "certified lower bound, holds with 95% confidence" in html
    assert "✓ attack stays above" in html and "publishes no headline figure" in html
    assert "section failed" in html and "boom" in html
    assert "✗" in html  # the overall status line says a section failed
    assert html.count("<div class='scroll' role='region' tabindex='0'") == 3  # every table in its own box
    assert "prefers-color-scheme:dark" in html and "color-scheme" in html
    # self-contained: no script, no external stylesheet, font or image, no network at all
    assert "<script" not in html and "<link" not in html and "url(" not in html
    assert "http://" not in html and "https://" not in html
    for w, h in re.findall(r"width='(\d+)' height='(\d+)' src='data:image/png", html):
        assert int(w) > 100 and int(h) > 100
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())["sections"]
    hl = summary["rank/A wide table and two figures"]["headline"]
    assert hl["interval"] == pytest.approx(list(proportion_interval(1, 8)))
    assert summary["theory/No headline"]["headline"] is None and summary["bad/bad"]["headline"] is None


def test_malformed_headline_is_shown_not_hidden(tmp_path: Path) -> None:
    def bad_headline(ctx: ReportContext) -> Section:
        return Section(domain="x", title="X", summary={"headline": {"label": "y", "value": 1, "n": -3}})

    _, html = _page(tmp_path, [("x", bad_headline)])
    assert "headline not shown: headline.n: expected an integer &gt;= 1, got -3" in html
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["sections"]["x/X"]["headline"] == {"problem": "headline.n: expected an integer >= 1, got -3"}


def test_a_failed_check_is_visible_on_card_recap_and_status() -> None:
    h = {"label": "x", "value": 0.5, "checks": [{"name": "attack above certificate", "passed": False},
                                                 {"name": "coverage", "passed": True}]}
    html = render_html([Section(domain="d", title="T", summary={"headline": h})], {})
    assert html.count("✗ FAILED: attack above certificate") == 2  # card and recap
    assert "<span class='status bad'>✗ 1 of 1 sections ran, 1 of 2 soundness checks passed</span>" in html


def test_figure_panels_gives_one_image_per_panel() -> None:
    figs = figure_panels(_plot(9.0, panels=3), "three", "Three panels.")
    assert [f.name for f in figs] == ["three_1", "three_2", "three_3"]
    assert [f.caption for f in figs] == [f"Three panels. (panel {k})" for k in range(3)]
    sizes = [png_size(f.png) for f in figs]
    assert all(s is not None and 250 < s[0] < 700 for s in sizes), sizes
    # a twin axis stays with its panel; a single panel is one image
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1])
    ax.twinx().plot([1, 0], color="C1")
    assert len(figure_panels(fig, "twin")) == 1
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    fig.colorbar(axes[0].imshow(np.eye(4)), ax=axes[0])
    axes[1].plot([0, 1])
    with_bar = figure_panels(fig, "bar")
    assert len(with_bar) == 2 and png_size(with_bar[0].png)[0] > png_size(with_bar[1].png)[0]  # type: ignore[index]
    # close=False keeps the figure whole for a combined image; the page shows the panels
    fig = _plot(9.0, panels=2)
    panels = figure_panels(fig, "two", "Two.", close=False)
    combined = figure_from_matplotlib(fig, "two", "Two.")
    combined.panels = panels
    assert png_size(combined.png)[0] > max(png_size(p.png)[0] for p in panels)  # type: ignore[index]
    html = render_html([Section(domain="d", title="T", figures=[combined])], {})
    assert html.count("data:image/png") == 2 and "Two. (panel 1)" in html


def test_png_size() -> None:
    png = figure_from_matplotlib(_plot(), "p").png
    w, h = png_size(png)  # type: ignore[misc]
    assert 300 < w < 700 and 200 < h < 500
    assert png_size(b"GIF89a") is None


def test_render_html_without_sections() -> None:
    html = render_html([], {"version": "0", "simd": "x", "seconds": 0.0})
    assert "0 of 0 sections ran" in html and "<ul class='cards'></ul>" in html.replace("\n", "")


# --- in a real browser ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fixture_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("page")
    ctx = ReportContext(out_dir=out, cache_dir=out / "c")
    page, _ = build_report(ctx, providers=[("rank", _rich), ("rl", _bound), ("theory", _plain)],
                           log=lambda s: None)
    return page


@needs_browser
def test_page_in_headless_chromium(fixture_page: Path) -> None:
    check = inspect_page(fixture_page, width=1280)
    assert check.width == 1280 and check.images_total == 4  # the two-panel figure is two images
    assert check.background == "rgb(255, 255, 255)"
    assert not page_problems(check, 3), page_problems(check, 3)


@needs_browser
def test_browser_check_sees_overflow_failures_and_broken_images(tmp_path: Path) -> None:
    """The browser test can fail: a page that sticks out, a failed section, a broken image
    and a card pointing nowhere are each caught."""
    page, html = _page(tmp_path, [("rank", _rich), ("bad", _boom)])
    broken = Figure("broken", b"\x89PNG\r\n\x1a\nnot really")
    html = html.replace("<main>", "<main><div style='width:1600px'>too wide</div>"
                        + f"<img alt='x' src='data:image/png;base64,{base64.b64encode(broken.png).decode()}'>", 1)
    html = html.replace("href='#sec-rank", "href='#nowhere", 1)
    page.write_text(html)
    check = inspect_page(page, width=1280)
    assert check.overflow_px >= 300 and any(w.startswith("div") for w in check.too_wide)
    assert check.images_decoded == check.images_total - 1
    assert check.failed == ["sec-bad-bad"]
    assert check.cards[0]["target"] is None and check.cards[1]["target"] == "sec-bad-bad"
    found = page_problems(check, 2)
    assert len(found) == 4 and all(any(w in p for p in found) for w in ("wider", "decode", "linked", "failed"))
    ok, total, failed = check_report(page)  # the browser-only check sees the same
    assert (ok, total, failed) == (check.images_decoded, check.images_total, ["bad"])
