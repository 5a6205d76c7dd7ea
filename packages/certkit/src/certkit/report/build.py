"""Builds ``report/index.html`` (one self-contained page) and ``report/summary.json``.

Every installed domain contributes sections through the ``certkit.report`` entry-point
group (see :mod:`certkit.core.report`). A section that raises is shown with its error (so
the page never hides a failure) and the run's exit status says so.
"""

from __future__ import annotations

import base64
import html
import json
import time
import traceback
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from certkit.core.report import ReportContext, Section

SectionFn = Callable[[ReportContext], Section | list[Section]]


def discover() -> list[tuple[str, SectionFn]]:
    """(domain, callable) for every installed ``certkit.report`` entry point, in a fixed order."""
    order = ["vision", "bounds", "attacks", "pointcloud", "rl", "rank", "theory"]
    found = []
    for ep in entry_points(group="certkit.report"):
        found.append((ep.name, ep))
    found.sort(key=lambda t: (order.index(t[0]) if t[0] in order else len(order), t[0]))
    out: list[tuple[str, SectionFn]] = []
    for name, ep in found:
        out.append((name, _lazy(ep)))
    return out


def _lazy(ep: Any) -> SectionFn:
    def call(ctx: ReportContext) -> Section | list[Section]:
        fn = ep.load()
        return fn(ctx)  # type: ignore[no-any-return]

    return call


def collect_sections(ctx: ReportContext, only: Iterable[str] | None = None,
                     providers: list[tuple[str, SectionFn]] | None = None,
                     log: Callable[[str], None] = print) -> list[Section]:
    wanted = set(only) if only else None
    sections: list[Section] = []
    for name, fn in providers if providers is not None else discover():
        if wanted is not None and name not in wanted:
            continue
        t0 = time.perf_counter()
        log(f"[report] {name} ...")
        try:
            res = fn(ctx)
            got = res if isinstance(res, list) else [res]
        except Exception as exc:  # shown on the page, and makes the command fail
            got = [Section(domain=name, title=name, error=f"{type(exc).__name__}: {exc}\n"
                           + traceback.format_exc(limit=8))]
        dt = time.perf_counter() - t0
        for s in got:
            if not s.seconds:
                s.seconds = dt / max(1, len(got))
        log(f"[report] {name} done in {dt:.1f} s")
        sections.extend(got)
    return sections


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{border-bottom:2px solid #333}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
figure{display:inline-block;margin:.5em;vertical-align:top}figure img{max-width:520px}
figcaption{font-size:.85em;color:#555;max-width:520px}
.repro{font-family:monospace;background:#f6f6f6;padding:.4em;border-radius:4px}
.failed{background:#fee;border:1px solid #c00;padding:.5em;white-space:pre-wrap;font-family:monospace}
.meta{color:#666;font-size:.9em}
"""


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(str(v))


def render_html(sections: list[Section], meta: dict[str, Any]) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>certkit robustness report</title><style>{_CSS}</style></head><body>",
             "<h1>certkit robustness report</h1>",
             f"<p class='meta'>certkit-core {html.escape(str(meta.get('version')))} · {html.escape(str(meta.get('simd')))} · "
             f"{'full' if meta.get('full') else 'quick'} mode · {meta.get('seconds', 0):.0f} s</p>", "<ul>"]
    for i, s in enumerate(sections):
        parts.append(f"<li><a href='#s{i}'>{html.escape(s.title)}</a>{' (failed)' if s.error else ''}</li>")
    parts.append("</ul>")
    for i, s in enumerate(sections):
        parts.append(f"<h2 id='s{i}'>{html.escape(s.title)}</h2>")
        if s.error:
            parts.append(f"<div class='failed'>section failed: {html.escape(s.error)}</div>")
            continue
        if s.text:
            parts.append(f"<p>{html.escape(s.text)}</p>")
        for t in s.tables:
            parts.append("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in t.columns) + "</tr>")
            for row in t.rows:
                parts.append("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>")
            parts.append("</table>")
            if t.caption:
                parts.append(f"<p class='meta'>{html.escape(t.caption)}</p>")
        for f in s.figures:
            b64 = base64.b64encode(f.png).decode("ascii")
            parts.append(f"<figure><img alt='{html.escape(f.name)}' src='data:image/png;base64,{b64}'>"
                         f"<figcaption>{html.escape(f.caption)}</figcaption></figure>")
        parts.append(f"<p class='meta'>section time {s.seconds:.1f} s</p>")
        if s.reproduce:
            parts.append(f"<p>How to reproduce: <span class='repro'>{html.escape(s.reproduce)}</span></p>")
        if s.full:
            parts.append(f"<p class='meta'>With --full: {html.escape(s.full)}</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def build_report(ctx: ReportContext, only: Iterable[str] | None = None,
                 providers: list[tuple[str, SectionFn]] | None = None,
                 log: Callable[[str], None] = print) -> tuple[Path, list[Section]]:
    """Run every section and write ``index.html`` and ``summary.json`` into ``ctx.out_dir``."""
    import certkit.core as core

    t0 = time.perf_counter()
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    sections = collect_sections(ctx, only, providers, log)
    info = core.build_info()
    meta = {"version": info["version"], "simd": info["simd"], "full": ctx.full,
            "seconds": time.perf_counter() - t0}
    page = ctx.out_dir / "index.html"
    page.write_text(render_html(sections, meta), encoding="utf-8")
    summary = {
        "meta": meta,
        "build_info": info,
        "sections": {s.key: {"summary": s.summary, "seconds": round(s.seconds, 2),
                             "error": s.error, "reproduce": s.reproduce} for s in sections},
    }
    (ctx.out_dir / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True,
                                                         default=str), encoding="utf-8")
    return page, sections
