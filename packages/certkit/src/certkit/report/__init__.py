"""certkit.report: the robustness report (``certkit report``)."""

from certkit.report.build import build_report, collect_sections
from certkit.report.version import __version__

__all__ = ["__version__", "build_report", "collect_sections"]
