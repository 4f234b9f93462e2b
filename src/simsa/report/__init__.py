"""Stage reports: Markdown, self-contained HTML with inline SVG charts, and JSON.

The renderer (Jinja, and matplotlib when drawing) loads on first use, so the command line can use the labels and
number formats without it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["render_report"]


def __getattr__(name: str) -> Any:
    if name == "render_report":
        from simsa.report.render import render_report

        return render_report
    raise AttributeError(name)
