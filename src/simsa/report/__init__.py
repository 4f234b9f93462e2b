"""Stage reports: Markdown, self-contained HTML with inline SVG charts, and JSON."""

from simsa.report.render import render_report

__all__ = ["render_report"]
