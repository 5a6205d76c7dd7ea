"""Headless-Chromium checks of a written report, as a reader's browser sees the page.

Two ways in, both with Debian's ``chromium`` (``apt-get install chromium chromium-driver``):

* :func:`check_report` needs only the browser: the page is copied with a small script appended
  that, after the load event, records how many <img> elements decoded (``naturalWidth > 0``);
  ``--dump-dom`` returns the DOM after scripts ran.
* :func:`inspect_page` drives the browser through selenium and Debian's ``chromedriver`` (the
  ``certkit[test]`` extra installs selenium): at a given window width it measures horizontal
  overflow of the page, decoded images, the summary cards and their links, failed sections,
  and the page's background colour in the light and the dark scheme. Nothing is downloaded:
  the driver is the system's, never fetched by Selenium Manager.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_PROBE = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  var d = document.createElement('div'); d.id = 'certkit-imgcheck';
  d.textContent = 'images ' + ok + '/' + imgs.length;
  document.body.appendChild(d);
});
</script>"""

_DRIVERS = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def chromedriver_binary() -> str | None:
    path = shutil.which("chromedriver")
    if path:
        return path
    return next((p for p in _DRIVERS if Path(p).is_file()), None)


def selenium_available() -> bool:
    """True when selenium, chromium and chromedriver are all installed."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return False
    return chromium_binary() is not None and chromedriver_binary() is not None


def check_report(index_html: Path, timeout: float = 120.0) -> tuple[int, int, list[str]]:
    """(images decoded, images total, failed section titles) as the browser sees the page."""
    exe = chromium_binary()
    if exe is None:
        raise FileNotFoundError("chromium: not installed (apt-get install chromium)")
    html = index_html.read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe.html"
        probe.write_text(html.replace("</body>", _PROBE + "</body>"), encoding="utf-8")
        out = subprocess.run(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             f"--user-data-dir={tmp}/profile", "--virtual-time-budget=10000", "--dump-dom",
             probe.as_uri()],
            capture_output=True, text=True, timeout=timeout, check=False)
    m = re.search(r"images (\d+)/(\d+)", out.stdout)
    if not m:
        raise RuntimeError(f"chromium produced no image check (exit {out.returncode}): {out.stderr[-500:]}")
    failed = re.findall(r"<h2[^>]*>([^<]*)</h2>(?:(?!<h2).)*?<div class=\"failed-box\"", out.stdout, flags=re.S)
    return int(m.group(1)), int(m.group(2)), failed


@dataclass
class PageCheck:
    """What :func:`inspect_page` measured.

    overflow_px: how far the page is wider than the window (0 when nothing sticks out);
    too_wide: up to 10 elements whose right edge passes the viewport (tag#id.class, px);
    cards: one dict per summary card {href, target, title}; target is the linked section's id
    when it exists, else None; failed: ids of sections that show an error;
    background: computed body background colour (light scheme) and background_dark (dark).
    """

    width: int
    overflow_px: int
    images_total: int
    images_decoded: int
    too_wide: list[str] = field(default_factory=list)
    cards: list[dict[str, Any]] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    background: str = ""
    background_dark: str = ""


_MEASURE = """
var de = document.documentElement, vw = de.clientWidth;
var wide = [];
document.querySelectorAll('body *').forEach(function (el) {
  var r = el.getBoundingClientRect();
  if (r.width > 0 && r.right > vw + 1 && wide.length < 10) {
    var inScroll = false, p = el.parentElement;
    while (p) { var ox = getComputedStyle(p).overflowX;
      if ((ox === 'auto' || ox === 'scroll' || ox === 'hidden') && p.getBoundingClientRect().right <= vw + 1) { inScroll = true; break; }
      p = p.parentElement; }
    if (!inScroll) wide.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
      (el.className && typeof el.className === 'string' ? '.' + el.className.split(' ').join('.') : '') + ' ' + Math.round(r.right - vw) + 'px');
  }
});
var imgs = Array.prototype.slice.call(document.images);
var cards = Array.prototype.slice.call(document.querySelectorAll('#summary a.card')).map(function (a) {
  var href = a.getAttribute('href') || '', t = href.charAt(0) === '#' ? document.getElementById(href.slice(1)) : null;
  var title = a.querySelector('.title');
  return {href: href, target: t && t.tagName.toLowerCase() === 'section' ? t.id : null,
          title: title ? title.textContent : ''};
});
var secs = Array.prototype.slice.call(document.querySelectorAll('main section.report'));
return {scrollWidth: Math.max(de.scrollWidth, document.body.scrollWidth), clientWidth: vw, wide: wide,
        images: imgs.length,
        decoded: imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length,
        cards: cards, sections: secs.map(function (s) { return s.id; }),
        failed: secs.filter(function (s) { return s.querySelector('.failed-box'); }).map(function (s) { return s.id; }),
        background: getComputedStyle(document.body).backgroundColor || getComputedStyle(de).backgroundColor};
"""

_BACKGROUND = "return getComputedStyle(document.documentElement).backgroundColor;"


def _driver(width: int, height: int) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    exe, drv = chromium_binary(), chromedriver_binary()
    if exe is None or drv is None:
        raise FileNotFoundError("chromium: chromium and chromium-driver are not installed "
                                "(apt-get install chromium chromium-driver)")
    opts = Options()
    opts.binary_location = exe
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--hide-scrollbars", f"--window-size={width},{height}"):
        opts.add_argument(arg)
    return webdriver.Chrome(options=opts, service=Service(executable_path=drv))


def _scheme(driver: Any, scheme: str) -> None:
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia",
                           {"features": [{"name": "prefers-color-scheme", "value": scheme}]})


def inspect_page(index_html: Path, width: int = 1280, height: int = 900,
                 screenshot: Path | None = None, dark_screenshot: Path | None = None) -> PageCheck:
    """Load ``index_html`` in headless Chromium with a ``width``-pixel window and measure it.

    screenshot / dark_screenshot: where to write a full-page PNG in the light / dark scheme."""
    index_html = Path(index_html).resolve()
    if not index_html.is_file():
        raise FileNotFoundError(f"index_html: no such file {index_html}")
    driver = _driver(width, height)
    try:
        # the window includes no scrollbar (hidden), so the layout viewport is `width` wide
        driver.get(index_html.as_uri())
        _scheme(driver, "light")
        m = driver.execute_script(_MEASURE)
        bg_light = driver.execute_script(_BACKGROUND)
        _scheme(driver, "dark")
        bg_dark = driver.execute_script(_BACKGROUND)
        for path, scheme in ((screenshot, "light"), (dark_screenshot, "dark")):
            if path is not None:
                _scheme(driver, scheme)
                full = int(driver.execute_script("return document.documentElement.scrollHeight"))
                driver.set_window_size(width, min(full + 200, 30000))
                driver.save_screenshot(str(path))
                driver.set_window_size(width, height)
    finally:
        driver.quit()
    return PageCheck(width=int(m["clientWidth"]), overflow_px=max(0, int(m["scrollWidth"]) - int(m["clientWidth"])),
                     images_total=int(m["images"]), images_decoded=int(m["decoded"]), too_wide=list(m["wide"]),
                     cards=list(m["cards"]), sections=list(m["sections"]), failed=list(m["failed"]),
                     background=str(bg_light), background_dark=str(bg_dark))


def page_problems(check: PageCheck, n_sections: int) -> list[str]:
    """What keeps a measured page from reading well (empty when it is fine): horizontal
    overflow, undecoded images, a missing or unlinked summary card, a failed section, no dark
    scheme. ``n_sections``: how many sections the page should have."""
    out = []
    if check.overflow_px > 0 or check.too_wide:
        out.append(f"the page is {check.overflow_px} px wider than the {check.width} px window: {check.too_wide}")
    if check.images_total == 0 or check.images_decoded != check.images_total:
        out.append(f"{check.images_total - check.images_decoded} of {check.images_total} images did not decode")
    if not len(check.cards) == len(check.sections) == n_sections:
        out.append(f"{len(check.cards)} summary cards and {len(check.sections)} sections; expected {n_sections} each")
    unlinked = [c["href"] for c in check.cards if c["target"] is None]
    if unlinked or [c["target"] for c in check.cards] != check.sections[: len(check.cards)]:
        out.append(f"summary cards not linked to their sections in order: {unlinked or check.cards}")
    if check.failed:
        out.append(f"failed sections: {check.failed}")
    nums = [int(v) for v in re.findall(r"\d+", check.background_dark)[:3]]
    if len(nums) < 3 or max(nums) >= 60 or check.background_dark == check.background:
        out.append(f"no dark scheme: background {check.background!r}, dark {check.background_dark!r}")
    return out
