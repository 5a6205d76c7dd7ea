"""Headless-Chromium check of a written report: every image decodes and no section failed.

Uses Debian's ``chromium`` (optional: ``apt-get install chromium``). The page is copied
with a small script appended that, after the load event, records how many <img> elements
decoded (``naturalWidth > 0``); ``--dump-dom`` returns the DOM after scripts ran.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

_PROBE = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  var d = document.createElement('div'); d.id = 'certkit-imgcheck';
  d.textContent = 'images ' + ok + '/' + imgs.length;
  document.body.appendChild(d);
});
</script>"""


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


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
    failed = re.findall(r"<h2[^>]*>([^<]*)</h2>\s*<div class=\"failed\"", out.stdout)
    return int(m.group(1)), int(m.group(2)), failed
