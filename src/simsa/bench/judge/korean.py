"""Is an answer in the language it should be in?

A model asked in Korean that answers in English has not answered, however good the English. LLM judges often miss
this, so, as LogicKor and KoMT-Bench do, the check is made by rule and applied after the judges:

* rubric: an answer that fails the check gets the scale minimum (1), whatever the judges said;
* pairwise: the side that fails loses; when both fail, the judges' verdict stands.

The share counts letters only (numbers, punctuation, symbols are not letters) and ignores code blocks, inline code,
TeX math, URLs and e-mail addresses, which are rightly written in Latin script inside a Korean answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

_IGNORED = [
    re.compile(r"(```|~~~).*?(?:\1|\Z)", re.DOTALL),  # fenced code; an unclosed fence runs to the end
    re.compile(r"`[^`\n]*`"),  # inline code
    re.compile(r"\$\$.*?\$\$|\$[^$\n]+\$|\\\(.*?\\\)|\\\[.*?\\\]", re.DOTALL),  # TeX math
    re.compile(r"(?:https?|ftp)://\S+|www\.\S+", re.IGNORECASE),  # URLs
    re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),  # e-mail addresses
]

_HANGUL_RANGES = ((0xAC00, 0xD7A3), (0x1100, 0x11FF), (0x3130, 0x318F), (0xA960, 0xA97F), (0xD7B0, 0xD7FF))


def is_hangul(ch: str) -> bool:
    code = ord(ch)
    return any(lo <= code <= hi for lo, hi in _HANGUL_RANGES)


def _is_latin(ch: str) -> bool:
    return ch.isascii() or 0x00C0 <= ord(ch) <= 0x024F


SCRIPTS: dict[str, Callable[[str], bool]] = {"ko": is_hangul, "en": _is_latin}
LANGUAGES = (*SCRIPTS, "any")  # "any": no check (a translation into another language, say)


@dataclass(frozen=True)
class LanguageCheck:
    """`share` of the expected script among the letters (None with no letters to judge); `reason` says why."""

    share: float | None
    passed: bool
    reason: str


def prose(text: str) -> str:
    """`text` without the parts whose script says nothing about the answer's language."""
    for pattern in _IGNORED:
        text = pattern.sub(" ", text)
    return text


def script_share(text: str, expected: str = "ko") -> float | None:
    """Share of letters in the expected script, over the prose of `text`; None when it has no letters."""
    letters = [ch for ch in prose(text) if ch.isalpha()]
    if not letters:
        return None
    test = SCRIPTS[expected]
    return sum(1 for ch in letters if test(ch)) / len(letters)


def language_check(text: str, expected: str = "ko", min_share: float = 0.5) -> LanguageCheck:
    """Pass when at least `min_share` of the letters are in the expected script. An answer without letters (a bare
    number, only code) passes: there is no language to fault, and the judges grade its content."""
    if expected == "any":
        return LanguageCheck(share=None, passed=True, reason="no language expected")
    if expected not in SCRIPTS:
        raise ValueError(f"unknown language {expected!r} (known: {', '.join(LANGUAGES)})")
    share = script_share(text, expected)
    if share is None:
        return LanguageCheck(share=None, passed=True, reason="no letters outside code, math and URLs")
    passed = share >= min_share
    verb = ">=" if passed else "<"
    return LanguageCheck(share=round(share, 4), passed=passed,
                         reason=f"{expected} share {share:.2f} {verb} {min_share:.2f}")
