"""Builds ``report/index.html`` (one self-contained page) and ``report/summary.json``.

Every installed domain contributes sections through the ``certkit.report`` entry-point
group (see :mod:`certkit.core.report`). A section that raises is shown with its error (so
the page never hides a failure) and the run's exit status says so.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from certkit.core.report import ReportContext, Section
from certkit.report.headline import headline_of
from certkit.report.page import render_html

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
        t0, c0 = time.perf_counter(), time.process_time()
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
        # CPU time of this process too: on a loaded machine it is the steadier figure
        log(f"[report] {name} done in {dt:.1f} s (CPU {time.process_time() - c0:.1f} s)")
        sections.extend(got)
    return sections


def _headline_json(s: Section) -> dict[str, Any] | None:
    """The card's headline as shown (interval computed), or the reason it could not be shown."""
    h, problem = headline_of(s)
    if problem:
        return {"problem": problem}
    return h.as_dict() if h is not None else None


def build_report(ctx: ReportContext, only: Iterable[str] | None = None,
                 providers: list[tuple[str, SectionFn]] | None = None,
                 log: Callable[[str], None] = print) -> tuple[Path, list[Section]]:
    """Run every section and write ``index.html`` and ``summary.json`` into ``ctx.out_dir``."""
    import certkit.core as core

    t0 = time.perf_counter()
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    sections = collect_sections(ctx, only, providers, log)
    info = core.build_info()
    meta = {"version": info["version"], "simd": info["simd"], "full": ctx.full, "seed": ctx.seed,
            "seconds": time.perf_counter() - t0,
            "generated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    page = ctx.out_dir / "index.html"
    page.write_text(render_html(sections, meta), encoding="utf-8")
    summary = {
        "meta": meta,
        "build_info": info,
        "sections": {s.key: {"summary": s.summary, "seconds": round(s.seconds, 2),
                             "error": s.error, "reproduce": s.reproduce,
                             "headline": _headline_json(s)} for s in sections},
    }
    (ctx.out_dir / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True,
                                                         default=str), encoding="utf-8")
    return page, sections
