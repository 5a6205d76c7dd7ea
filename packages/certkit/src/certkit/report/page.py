"""The report page: one self-contained HTML file (inline CSS, PNGs as data URIs, no script).

Layout, top to bottom: a header (what the page is, how it was run, the overall status), one
summary card per section (headline figure, its 95% interval or certified bound, the sample
size, the soundness checks that ran, a link to the section; see :mod:`certkit.report.headline`),
then the sections. Tables scroll inside their own box when wider than the page; figures sit
in a grid at their natural size (never wider than the column); the colour scheme follows the
reader's setting (``prefers-color-scheme``). Nothing is loaded from the network.
"""

from __future__ import annotations

import base64
import html
import re
import struct
from typing import Any

from certkit.core.report import Figure, Section, Table
from certkit.report.headline import (
    Headline,
    format_interval,
    format_value,
    headline_of,
    max_halfwidth,
)

DOMAIN_NAMES = {"vision": "Vision", "bounds": "Verified bounds", "attacks": "Attacks",
                "pointcloud": "Point clouds", "rl": "Reinforcement learning", "rank": "Ranking",
                "theory": "Theory"}

CSS = """
:root{color-scheme:light dark;--bg:#ffffff;--fg:#1c1f24;--muted:#59606b;--line:#d8dce2;
--card:#f5f7fa;--accent:#1d5fbf;--ok:#17803a;--bad:#c0282d;--code:#eef1f4;--th:#eaeef3;--plot:#ffffff}
@media (prefers-color-scheme:dark){:root{--bg:#14171b;--fg:#e4e7eb;--muted:#a2a9b4;--line:#3a4048;
--card:#1d2126;--accent:#86b4ff;--ok:#5cc27a;--bad:#ff7f78;--code:#252a30;--th:#252b32;--plot:#ffffff}}
*,*::before,*::after{box-sizing:border-box}
html{background:var(--bg);color:var(--fg)}
body{margin:0 auto;max-width:1200px;padding:1.5rem 1.25rem 4rem;
font:16px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;overflow-wrap:break-word}
a{color:var(--accent)}
h1{font-size:1.9rem;margin:.2em 0 .3em}
h2{font-size:1.45rem;margin:0;line-height:1.3}
h3{font-size:1.05rem;margin:1.2em 0 .4em}
.lede{font-size:1.05rem;max-width:62em;margin:.2em 0 .8em}
.meta{color:var(--muted);font-size:.9rem}.meta code{white-space:nowrap}
.status{display:inline-block;padding:.15em .7em;border-radius:999px;font-weight:600;font-size:.95rem}
.status.ok{background:color-mix(in srgb,var(--ok) 15%,transparent);color:var(--ok)}
.status.bad{background:color-mix(in srgb,var(--bad) 15%,transparent);color:var(--bad)}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(255px,1fr));gap:.9rem;margin:1.2rem 0 2rem;padding:0;list-style:none}
.card{display:flex;flex-direction:column;gap:.15rem;height:100%;padding:.9rem 1rem;background:var(--card);
border:1px solid var(--line);border-left:5px solid var(--accent);border-radius:8px;color:inherit;text-decoration:none}
.card:hover,.card:focus{border-color:var(--accent);outline:none}
.card.failed{border-left-color:var(--bad)}
.card .domain{font-size:.78rem;text-transform:uppercase;letter-spacing:.06em;color:var(--muted)}
.card .title{font-weight:600;line-height:1.3}
.card .value{font-size:2rem;font-weight:700;line-height:1.15;margin-top:.35rem;font-variant-numeric:tabular-nums}
.card .ci{font-size:.88rem;color:var(--muted)}
.card .label{font-size:.92rem;margin-bottom:.2rem}
.card .n{font-size:.88rem;color:var(--muted)}
.card .checks{margin:.45rem 0 0;padding:0;list-style:none;font-size:.86rem}
.card .checks li{padding-left:1.3em;text-indent:-1.3em}
.card .more{margin-top:auto;padding-top:.5rem;font-size:.88rem;color:var(--accent)}
.pass{color:var(--ok)}.fail{color:var(--bad)}
section.report{margin-top:2.6rem;padding-top:.6rem;border-top:2px solid var(--line)}
section.report>header{display:flex;flex-wrap:wrap;align-items:baseline;gap:.4rem 1rem;justify-content:space-between}
.tag{font-size:.78rem;text-transform:uppercase;letter-spacing:.06em;color:var(--muted);display:block}
.up{font-size:.88rem;white-space:nowrap}
.recap{margin:.7rem 0;padding:.55rem .9rem;background:var(--card);border-radius:6px;border:1px solid var(--line)}
.tbl{margin:1rem 0 1.3rem}
.tbl>h3{margin:.2rem 0 .35rem}
.scroll{overflow-x:auto;width:fit-content;max-width:100%;border:1px solid var(--line);border-radius:6px}
.scroll:focus{outline:2px solid var(--accent)}
table{border-collapse:collapse;font-size:.9rem;font-variant-numeric:tabular-nums;min-width:max-content}
th,td{padding:.3em .65em;border-bottom:1px solid var(--line);text-align:right;vertical-align:top}
th{background:var(--th);font-weight:600;text-align:right;white-space:normal;max-width:12em}
td:first-child,th:first-child{text-align:left}
td.text{text-align:left;min-width:14em;max-width:40em;white-space:normal}
tr:last-child td{border-bottom:0}
.caption{color:var(--muted);font-size:.88rem;margin:.35rem 0 0;max-width:62em}
.figures{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,500px),1fr));gap:1rem;margin:1rem 0}
figure.plot{margin:0;display:flex;flex-direction:column}
figure.plot.wide{grid-column:1/-1}
figure.plot .frame{background:var(--plot);border:1px solid var(--line);border-radius:6px;padding:.4rem;text-align:center}
figure.plot img{max-width:100%;height:auto;vertical-align:middle}
figure.plot figcaption{color:var(--muted);font-size:.88rem;margin-top:.35rem}
dl.how{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;font-size:.92rem;margin:1rem 0 0}
dl.how dt{color:var(--muted)}dl.how dd{margin:0}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.9em;background:var(--code);
padding:.1em .35em;border-radius:4px;overflow-wrap:anywhere}
.failed-box{border:1px solid var(--bad);border-left:5px solid var(--bad);border-radius:6px;padding:.7rem 1rem;margin:1rem 0}
.failed-box pre{white-space:pre-wrap;overflow-wrap:anywhere;font-size:.82rem;margin:.5rem 0 0;max-height:24em;overflow:auto}
footer{margin-top:3rem;color:var(--muted);font-size:.85rem}
"""

def domain_name(domain: str) -> str:
    return DOMAIN_NAMES.get(domain, domain)


def section_ids(sections: list[Section]) -> list[str]:
    """Stable, unique anchor ids (``sec-<domain>-<title words>``) for the sections."""
    ids: list[str] = []
    for s in sections:
        base = "sec-" + re.sub(r"[^a-z0-9]+", "-", f"{s.domain} {s.title}".lower()).strip("-")[:60].rstrip("-")
        sid, k = base, 2
        while sid in ids:
            sid, k = f"{base}-{k}", k + 1
        ids.append(sid)
    return ids


def png_size(png: bytes) -> tuple[int, int] | None:
    """(width, height) in pixels from a PNG's IHDR chunk, or None when it is not a PNG."""
    if len(png) < 24 or not png.startswith(b"\x89PNG\r\n\x1a\n") or png[12:16] != b"IHDR":
        return None
    w, h = struct.unpack(">II", png[16:24])
    return int(w), int(h)


def _e(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _cell(v: Any) -> str:
    if isinstance(v, bool):
        return "<td>" + ("yes" if v else "no") + "</td>"
    if isinstance(v, float):
        return f"<td>{_e(format(v, '.4g'))}</td>"
    if isinstance(v, int):
        return f"<td>{v}</td>"
    text = str(v)
    cls = " class='text'" if len(text) > 40 else ""
    return f"<td{cls}>{_e(text)}</td>"


def _value_text(h: Headline) -> str:
    v = format_value(h.value, h.format)
    if not h.estimate and h.n is not None:
        return f"{v} of {h.n:,}"
    if h.bound == "lower":
        return "≥ " + v
    if h.bound == "upper":
        return "≤ " + v
    return v


def _sample_text(h: Headline) -> str:
    if h.n is None:
        return "sample size not stated"
    of = f" {h.of}" if h.of else ""
    return f"n = {h.n:,}{of}"


def _checks_html(h: Headline | None) -> str:
    if h is None or not h.checks:
        return "<ul class='checks'><li>No soundness check in this section's quick run.</li></ul>"
    items = []
    for c in h.checks:
        mark, cls = ("✓", "pass") if c.passed else ("✗ FAILED:", "fail")
        items.append(f"<li class='{cls}'>{mark} {_e(c.name)}</li>")
    return "<ul class='checks'>" + "".join(items) + "</ul>"


def render_card(s: Section, sid: str) -> str:
    """One summary card, linked to the section's anchor."""
    head = (f"<span class='domain'>{_e(domain_name(s.domain))}</span>"
            f"<span class='title'>{_e(s.title)}</span>")
    if s.error:
        body = ("<span class='value fail'>failed</span>"
                f"<span class='label'>This section stopped with an error: {_e(s.error.splitlines()[0][:160])}</span>")
        return (f"<li><a class='card failed' href='#{sid}' data-section='{sid}'>{head}{body}"
                "<span class='more'>See the error →</span></a></li>")
    h, problem = headline_of(s)
    if h is None:
        why = f"headline not shown: {problem}" if problem else "This section publishes no headline figure."
        body = f"<span class='label'>{_e(why)}</span>"
    else:
        body = (f"<span class='value'>{_e(_value_text(h))}</span>"
                f"<span class='label'>{_e(h.label)}</span>"
                f"<span class='ci'>{_e(format_interval(h))}</span>"
                f"<span class='n'>{_e(_sample_text(h))}</span>")
    return (f"<li><a class='card' href='#{sid}' data-section='{sid}'>{head}{body}{_checks_html(h)}"
            "<span class='more'>Read the section →</span></a></li>")


def render_table(t: Table) -> str:
    parts = ["<div class='tbl'>"]
    if t.name and not re.fullmatch(r"[a-z0-9_]+", t.name):
        parts.append(f"<h3>{_e(t.name)}</h3>")
    parts.append(f"<div class='scroll' role='region' tabindex='0' aria-label='{_e(t.name)}'><table>")
    parts.append("<thead><tr>" + "".join(f"<th scope='col'>{_e(c)}</th>" for c in t.columns) + "</tr></thead><tbody>")
    for row in t.rows:
        parts.append("<tr>" + "".join(_cell(v) for v in row) + "</tr>")
    parts.append("</tbody></table></div>")
    caption = t.caption
    n = getattr(t, "n", None)
    if isinstance(n, int) and not isinstance(n, bool) and n > 0:
        of = f" {t.of}" if getattr(t, "of", "") else ""
        caption = (f"{caption} " if caption else "") + (
            f"Proportions in this table rest on at least n = {n:,}{of}; the 95% interval of each is at most "
            f"±{100 * max_halfwidth(n):.0f} percentage points wide (Clopper-Pearson).")
    if caption:
        parts.append(f"<p class='caption'>{_e(caption)}</p>")
    parts.append("</div>")
    return "".join(parts)


def render_figure(f: Figure) -> str:
    size = png_size(f.png)
    dims = f" width='{size[0]}' height='{size[1]}'" if size else ""
    wide = " wide" if size and size[0] > 620 else ""
    b64 = base64.b64encode(f.png).decode("ascii")
    alt = f.caption or f.name
    return (f"<figure class='plot{wide}'><div class='frame'><img alt='{_e(alt)}'{dims} "
            f"src='data:image/png;base64,{b64}'></div>"
            + (f"<figcaption>{_e(f.caption)}</figcaption>" if f.caption else "") + "</figure>")


def render_section(s: Section, sid: str) -> str:
    parts = [f"<section class='report' id='{sid}'><header><div><span class='tag'>{_e(domain_name(s.domain))}</span>"
             f"<h2>{_e(s.title)}</h2></div><a class='up' href='#summary'>↑ back to the summary</a></header>"]
    if s.error:
        parts.append("<div class='failed-box' role='alert'><strong>This section failed</strong> (section failed: "
                     "its results are missing from this page and the command exited with an error)."
                     f"<pre>{_e(s.error)}</pre></div></section>")
        return "".join(parts)
    h, _ = headline_of(s)
    if h is not None:
        parts.append(f"<p class='recap'><strong>{_e(_value_text(h))}</strong> {_e(h.label)} "
                     f"({_e(format_interval(h))}; {_e(_sample_text(h))})."
                     + (f" {_e(h.note)}" if h.note else "")
                     + ("<br>Soundness checks: " + "; ".join(
                         f"<span class='{'pass' if c.passed else 'fail'}'>{'✓' if c.passed else '✗ FAILED:'} "
                         f"{_e(c.name)}</span>" for c in h.checks) + "." if h.checks else "") + "</p>")
    if s.text:
        parts.append(f"<p>{_e(s.text)}</p>")
    parts.extend(render_table(t) for t in s.tables)
    if s.figures:
        shown = [p for f in s.figures for p in (getattr(f, "panels", None) or [f])]  # one panel per image
        parts.append("<div class='figures'>" + "".join(render_figure(f) for f in shown) + "</div>")
    parts.append("<dl class='how'>")
    if s.reproduce:
        parts.append(f"<dt>Reproduce</dt><dd><code>{_e(s.reproduce)}</code></dd>")
    if s.full:
        parts.append(f"<dt>With --full</dt><dd>{_e(s.full)}</dd>")
    parts.append(f"<dt>Run time</dt><dd>{s.seconds:.1f} s</dd></dl></section>")
    return "".join(parts)


def _overall(sections: list[Section]) -> str:
    failed = [s for s in sections if s.error]
    heads = [headline_of(s)[0] for s in sections]
    checks = [c for h in heads if h is not None for c in h.checks]
    bad = [c for c in checks if not c.passed]
    ok = not failed and not bad
    words = [f"{len(sections) - len(failed)} of {len(sections)} sections ran"]
    if checks:
        words.append(f"{len(checks) - len(bad)} of {len(checks)} soundness checks passed")
    return f"<span class='status {'ok' if ok else 'bad'}'>{'✓' if ok else '✗'} {_e(', '.join(words))}</span>"


def render_html(sections: list[Section], meta: dict[str, Any]) -> str:
    """The whole page as one string (self-contained: no external resource of any kind)."""
    ids = section_ids(sections)
    full = bool(meta.get("full"))
    scale = ("Full mode: paper-scale sample sizes." if full else
             "Quick mode: small samples, so the whole page runs in minutes on a laptop; the interval "
             "under each figure shows how much it could move. <code>certkit report --full</code> runs "
             "the paper-scale versions.")
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        "<meta name='color-scheme' content='light dark'>"
        f"<title>certkit robustness report</title><style>{CSS}</style></head><body>",
        "<header id='top'><h1>certkit robustness report</h1>",
        "<p class='lede'>Certificates and attacks for each installed domain, on small built-in data sets. "
        "Each card gives one section's headline figure, how uncertain it is, how many examples it rests "
        "on and which soundness checks ran; select a card to read the section.</p>",
        f"<p>{_overall(sections)}</p>",
        f"<p class='meta'>{scale}<br>certkit-core {_e(meta.get('version'))} · {_e(meta.get('simd'))} · "
        f"seed {_e(meta.get('seed', 0))} · {float(meta.get('seconds', 0.0)):.0f} s"
        + (f" · {_e(meta['generated'])}" if meta.get("generated") else "") + "</p></header>",
        "<nav id='summary' aria-label='summary'><ul class='cards'>",
    ]
    parts.extend(render_card(s, sid) for s, sid in zip(sections, ids, strict=True))
    parts.append("</ul></nav><main>")
    parts.extend(render_section(s, sid) for s, sid in zip(sections, ids, strict=True))
    parts.append("</main><footer>Generated by <code>certkit report</code>. Every number on this page is an estimate "
                 "from the stated number of examples, unless it is marked as a certified bound or an exact "
                 "count.</footer></body></html>")
    return "\n".join(parts)
