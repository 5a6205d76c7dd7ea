"""Building blocks of ``certkit report``: each domain contributes sections.

A domain registers a callable under the entry-point group ``certkit.report``::

    [project.entry-points."certkit.report"]
    vision = "certkit.vision.report:sections"

The callable takes a :class:`ReportContext` and returns a :class:`Section` (or a list).
The ``certkit`` distribution's report command gathers every installed domain's sections
into one self-contained ``report/index.html`` plus ``report/summary.json``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Figure:
    """A PNG plot. ``png`` holds the encoded bytes (see :func:`figure_from_matplotlib`).

    panels: optionally the same plot as one image per panel (:func:`figure_panels`); the
    report page shows these instead of ``png`` so each panel can be read at 100% zoom."""

    name: str
    png: bytes
    caption: str = ""
    panels: list[Figure] = field(default_factory=list)


@dataclass
class Table:
    """A small results table; cells are numbers or strings.

    n, of: the number of examples the table's proportions (accuracies, rates) rest on (the
    smallest, when columns differ) and what they are ("test clouds"); the report page then
    states how wide their 95% Clopper-Pearson intervals can be."""

    name: str
    columns: list[str]
    rows: list[list[Any]]
    caption: str = ""
    n: int | None = None
    of: str = ""


@dataclass
class Section:
    """One report section.

    summary: headline numbers, copied into ``summary.json`` under the section's key. An
    optional ``summary["headline"]`` dict (label, value, sample size n, successes for a
    proportion, bound, checks: see ``certkit.report.headline``) fills the section's summary
    card at the top of the page.
    reproduce: the command line that reproduces this section alone.
    full: what ``certkit report --full`` runs instead of the quick default.
    """

    domain: str
    title: str
    summary: dict[str, Any] = field(default_factory=dict)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    text: str = ""
    reproduce: str = ""
    full: str = ""
    seconds: float = 0.0
    error: str | None = None

    @property
    def key(self) -> str:
        return f"{self.domain}/{self.title}"


@dataclass
class ReportContext:
    """What a section needs to know about the run.

    out_dir: where the report is written (sections may write extra files below it).
    cache_dir: the user's cache directory for trained reference models.
    full: run the paper-scale version instead of the quick default.
    inputs: the user's model and data (``certkit report --model M --data D ...``: keys
        ``model``, ``weights``, ``data``, ``labels``, ``data_dir``, ``image_size``,
        ``layout``, ``num_classes``, ``sigma``); empty for the embedded defaults. A section
        that cannot run on them leaves them alone.
    """

    out_dir: Path
    cache_dir: Path
    full: bool = False
    seed: int = 0
    quiet: bool = True
    device: str = "cpu"
    inputs: dict[str, Any] = field(default_factory=dict)


def figure_from_matplotlib(fig: Any, name: str, caption: str = "", dpi: int = 110) -> Figure:
    """Encode a matplotlib figure as PNG (Agg) and close it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return Figure(name=name, png=buf.getvalue(), caption=caption)


def figure_panels(fig: Any, name: str, caption: str = "", dpi: int = 150,
                  close: bool = True) -> list[Figure]:
    """One PNG per panel of a multi-panel matplotlib figure (the report shows one panel per
    image so each can be read at 100% zoom); closes the figure unless ``close=False``.

    Axes that share a position (``twinx``/``twiny``) and a colorbar with the axes of its image
    stay together in one panel. Panel k gets
    the name ``f"{name}_{k}"`` and the caption ``caption`` followed by the panel's title (or
    "panel k of n"). A figure with a single panel gives one Figure named ``name``."""
    import matplotlib.pyplot as plt
    from matplotlib.transforms import Bbox

    groups: list[list[Any]] = []
    colorbars = []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        if getattr(ax, "_colorbar", None) is not None:  # goes with the axes of its image
            colorbars.append(ax)
            continue
        pos = tuple(round(float(v), 4) for v in ax.get_position().bounds)
        for g in groups:
            if tuple(round(float(v), 4) for v in g[0].get_position().bounds) == pos:
                g.append(ax)
                break
        else:
            groups.append([ax])
    for cax in colorbars:
        parent = getattr(cax._colorbar.mappable, "axes", None)
        home = next((g for g in groups if parent in g), groups[-1] if groups else None)
        if home is None:
            groups.append([cax])
        else:
            home.append(cax)
    out = []
    if len(groups) <= 1:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
        out.append(Figure(name=name, png=buf.getvalue(), caption=caption))
    else:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        suptitle = getattr(fig, "_suptitle", None)
        shown = suptitle.get_visible() if suptitle is not None else False
        if suptitle is not None:
            suptitle.set_visible(False)
        for k, group in enumerate(groups):
            for g in groups:
                for ax in g:
                    ax.set_visible(g is group)
            box = Bbox.union([ax.get_tightbbox(renderer) for ax in group])
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=dpi,
                        bbox_inches=box.transformed(fig.dpi_scale_trans.inverted()).padded(0.06))
            title = next((ax.get_title() for ax in group if ax.get_title()), "") or f"panel {k + 1} of {len(groups)}"
            out.append(Figure(name=f"{name}_{k + 1}", png=buf.getvalue(),
                              caption=f"{caption} ({title})" if caption else title))
        for g in groups:
            for ax in g:
                ax.set_visible(True)
        if suptitle is not None:
            suptitle.set_visible(shown)
    if close:
        plt.close(fig)
    return out


def use_agg() -> None:
    """Select matplotlib's non-interactive Agg backend (call before pyplot import)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
