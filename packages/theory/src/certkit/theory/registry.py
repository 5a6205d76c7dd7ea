"""Paper name -> module. Each module exposes closed_form, simulate, plot, check(mode) and
run(paper_mode, seed) -> TheoryRun."""

from __future__ import annotations

import csv
import importlib
import json
import math
from pathlib import Path
from types import ModuleType
from typing import Any

from certkit.theory._common import TheoryRun

PAPERS: dict[str, str] = {
    "comp-sum": "certkit.theory.comp_sum",
    "accuracy-disparity": "certkit.theory.accuracy_disparity",
    "boundary-tilting": "certkit.theory.boundary_tilting",
    "ldr-loss": "certkit.theory.ldr_loss",
    "optimistic-omd": "certkit.theory.optimistic_omd",
    "grokking": "certkit.theory.grokking",
    "layer-lipschitz": "certkit.theory.layer_lipschitz",
    "convex-relu": "certkit.theory.convex_relu",
}
ALIASES = {"comp_sum": "comp-sum", "cross-entropy": "comp-sum", "accuracy_disparity": "accuracy-disparity",
           "boundary_tilting": "boundary-tilting", "ldr": "ldr-loss", "ldr_loss": "ldr-loss",
           "optimistic_omd": "optimistic-omd", "oomd": "optimistic-omd", "grok": "grokking",
           "intriguing": "layer-lipschitz", "layer_lipschitz": "layer-lipschitz", "lipschitz": "layer-lipschitz",
           "convex_relu": "convex-relu"}


def resolve(name: str) -> str:
    key = ALIASES.get(name, name)
    if key not in PAPERS:
        raise ValueError(f"paper: unknown {name!r}; expected one of {', '.join(PAPERS)}")
    return key


def module(name: str) -> ModuleType:
    return importlib.import_module(PAPERS[resolve(name)])


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if hasattr(v, "tolist"):
        return v.tolist()
    if isinstance(v, tuple | list):
        return [_clean(x) for x in v]
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    return v


def write_run(run: TheoryRun, out_dir: Path) -> list[Path]:
    """Write ``<paper>.csv``, ``<paper>.json`` and the PNGs into out_dir; return the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    cols: list[str] = list(dict.fromkeys(k for r in run.rows for k in r))
    csv_path = out_dir / f"{run.paper}.csv"
    with csv_path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        for r in run.rows:
            w.writerow({k: _clean(r.get(k, "")) for k in cols})
    paths.append(csv_path)
    js = out_dir / f"{run.paper}.json"
    js.write_text(json.dumps(_clean({"paper": run.paper, "title": run.title, "citation": run.citation,
                                     "mode": run.mode, "summary": run.summary,
                                     "paper_values": run.paper_values, "rows": run.rows}), indent=1))
    paths.append(js)
    for fig in run.figures:
        p = out_dir / f"{fig.name}.png"
        p.write_bytes(fig.png)
        paths.append(p)
    return paths
