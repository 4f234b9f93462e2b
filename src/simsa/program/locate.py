"""Map a key path inside a TOML document to the line it was written on.

tomllib gives values but no positions; schema errors are useless without a line number, so this scans the text
for table headers (`[a.b]`, `[[a.b]]`) and `key =` lines and records where each path starts. It understands the
subset of TOML that program files use (tables, arrays of tables, dotted headers, plain and quoted keys); for
anything else the nearest enclosing table is returned, which is still the right place to look.
"""

from __future__ import annotations

import json
import re

_PART = r"""(?:"(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_\-]+)"""
_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\[\]]+?)\s*(\]\]?)\s*(#.*)?$")
_KEY = re.compile(rf"^\s*({_PART}(?:\s*\.\s*{_PART})*)\s*=")
_TOKEN = re.compile(_PART)
_BARE = re.compile(r"^[A-Za-z0-9_\-]+$")

Path = tuple[str | int, ...]


def _unquote(token: str) -> str:
    if token.startswith('"'):
        try:
            return json.loads(token)
        except ValueError:
            return token[1:-1]
    if token.startswith("'"):
        return token[1:-1]
    return token


def _split_dotted(text: str) -> list[str]:
    """Split a dotted key (`a.b`, `"a.b".c`, `'x'.y`) into its parts, dots inside quotes kept."""
    return [_unquote(token) for token in _TOKEN.findall(text)]


def index_lines(text: str) -> dict[Path, int]:
    """Return {path: 1-based line} for every table and key the scanner recognises."""
    positions: dict[Path, int] = {}
    array_counts: dict[Path, int] = {}
    current: Path = ()
    in_multiline: str | None = None
    # Lines are counted on "\n" alone, as TOML (and tomllib's error positions) count them; str.splitlines
    # would also break on characters such as U+2028 that may legally appear inside strings.
    for lineno, line in enumerate(text.split("\n"), start=1):
        if in_multiline:
            if line.count(in_multiline) % 2 == 1:
                in_multiline = None
            continue
        header = _HEADER.match(line)
        if header and not _KEY.match(line):
            is_array = header.group(1) == "[["
            names = _split_dotted(header.group(2))
            resolved: list[str | int] = []
            for name in names[:-1]:
                resolved.append(name)
                count = array_counts.get(tuple(resolved))
                if count is not None:
                    resolved.append(count - 1)
            resolved.append(names[-1])
            if is_array:
                key = tuple(resolved)
                array_counts[key] = array_counts.get(key, 0) + 1
                positions.setdefault(key, lineno)
                resolved.append(array_counts[key] - 1)
            current = tuple(resolved)
            positions.setdefault(current, lineno)
            continue
        assigned = _KEY.match(line)
        if assigned:
            path = current + tuple(_split_dotted(assigned.group(1)))
            positions.setdefault(path, lineno)
            for quote in ('"""', "'''"):
                if line.count(quote) % 2 == 1:
                    in_multiline = quote
    return positions


def line_of(positions: dict[Path, int], path: Path) -> int | None:
    """Line of the longest prefix of `path` that was seen (None when not even the first segment was)."""
    for end in range(len(path), 0, -1):
        hit = positions.get(tuple(path[:end]))
        if hit is not None:
            return hit
    return None


def dotted(path: Path) -> str:
    """Render a path as `stages[0].criteria[2].points` (keys that are not bare TOML keys are quoted)."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            shown = part if _BARE.match(part) else json.dumps(part, ensure_ascii=False)
            out += ("." if out else "") + shown
    return out
