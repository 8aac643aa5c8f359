"""Self-contained HTML reports with plots (matplotlib, the `report` extra, imported lazily)."""

from twofold.report.build import ReportData, ScalingPoint, compare_report, scaling_counts, scaling_points
from twofold.report.html import render_html, write_atomic

__all__ = [
    "ReportData",
    "ScalingPoint",
    "compare_report",
    "render_html",
    "scaling_counts",
    "scaling_points",
    "write_atomic",
    "write_report",
]


def write_report(path: str, data: ReportData) -> str:
    """Render `data` and write it atomically to `path`; returns the path written."""
    return str(write_atomic(path, render_html(data)))
