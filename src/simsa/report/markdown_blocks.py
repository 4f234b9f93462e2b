"""Markdown building blocks shared by the report and its sections: escaping, bilingual paragraphs and tables.

They live apart from the renderer so the arena and panel sections can use the report's own escaping without
importing the renderer that assembles them.
"""

from __future__ import annotations

import re
from typing import Any

_MD_TAG = re.compile(r"<(?=[A-Za-z/!?])")
_MD_SPECIAL = re.compile(r"([\\|*\[])")


def md_escape(text: Any) -> str:
    """Keep untrusted strings inert in Markdown: no tables broken by pipes, no raw HTML, no links."""
    s = " ".join(str(text).split())
    s = _MD_SPECIAL.sub(r"\\\1", s)
    return _MD_TAG.sub(r"\\<", s)


def md_paragraphs(parts: list[str]) -> list[str]:
    """One paragraph per language, so a bilingual note never runs two languages together."""
    out: list[str] = []
    for p in parts:
        out += [p, ""]
    return out


def md_table(header: list[str], rows: list[list[str]], align: str) -> list[str]:
    """A GitHub-style table; `align` holds one of l, r, c per column."""
    rule = {"l": ":---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(md_escape(h) for h in header) + " |"]
    lines.append("| " + " | ".join(rule[a] for a in align) + " |")
    lines += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in rows]
    return lines
