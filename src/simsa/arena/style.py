"""Style covariates of an answer — length, Markdown headers, list items, bold spans — as style control needs them.

Raters prefer longer, more formatted answers whatever their substance; Chatbot Arena's style control measures four
counts per answer and lets the Bradley–Terry fit attribute part of each vote to their difference (a−b)/(a+b+1).

Length is counted in *tokens* independent of any model's tokenizer (the covariate is a ratio, then z-scored, so
only proportions matter): each Han character or kana is a token (Chinese and Japanese are written without spaces,
a character is roughly a word-piece); each run of Hangul syllables is a token (Korean separates words by spaces,
so an eojeol counts like an English word); each run of other letters or digits is a token; each other visible
character (punctuation, symbols) is a token. Headers, lists and bold are counted outside fenced code blocks, where
'#' and '*' are code, not formatting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

STYLE_COVARIATES = ("length", "headers", "lists", "bold")

_HAN_KANA = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f"
_HANGUL = r"\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f"
_TOKEN = re.compile(rf"[{_HAN_KANA}]|[{_HANGUL}]+|[^\W_{_HAN_KANA}{_HANGUL}]+|[^\s\w]|_", re.UNICODE)
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_HEADER = re.compile(r"^ {0,3}#{1,6}(?:[ \t]|$)")
_LIST = re.compile(r"^[ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]+\S")
_RULE = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")  # '* * *' is a thematic break, not a list item
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*|__(?=\S)(.+?)(?<=\S)__")


@dataclass(frozen=True)
class StyleCounts:
    """The four style counts of one answer."""

    length: int
    headers: int
    lists: int
    bold: int

    def as_array(self) -> np.ndarray:
        return np.array([self.length, self.headers, self.lists, self.bold], dtype=float)


def count_tokens(text: str) -> int:
    """Script-aware token count (see the module's docstring)."""
    return sum(1 for _ in _TOKEN.finditer(text))


def _prose_lines(text: str) -> list[str]:
    """Lines outside fenced code blocks."""
    lines: list[str] = []
    fence: str | None = None
    for line in text.splitlines():
        match = _FENCE.match(line)
        if fence is None:
            if match:
                fence = match.group(1)
            else:
                lines.append(line)
        elif match and match.group(1) == fence:
            fence = None
    return lines


def style_counts(text: str) -> StyleCounts:
    """Length in tokens, ATX header lines (# … ######), list items (-, *, +, 1. or 1)), **bold**/__bold__ spans."""
    lines = _prose_lines(text)
    headers = sum(1 for line in lines if _HEADER.match(line))
    lists = sum(1 for line in lines if _LIST.match(line) and not _RULE.match(line))
    bold = sum(len(_BOLD.findall(line)) for line in lines)
    return StyleCounts(count_tokens(text), headers, lists, bold)


def style_diff(a: StyleCounts, b: StyleCounts) -> np.ndarray:
    """(a − b)/(a + b + 1) per covariate, in STYLE_COVARIATES order: the raw covariate of a vote for a over b."""
    x, y = a.as_array(), b.as_array()
    return (x - y) / (x + y + 1.0)
