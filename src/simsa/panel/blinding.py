"""Masking the terms that would tell an expert which team wrote a document.

Blinding only works where the system controls the text (file names, extracted text, Markdown, our pages), so the
masker is deliberately greedy: case-insensitive, tolerant of line breaks inside a name, Hangul matched as a substring
because Korean particles attach directly to names (`업스테이지의`), and ASCII terms matched on ASCII word boundaries,
so that `ab` does not eat `cabin` but `Upstage의` and `team_upstage` are still caught. Every occurrence becomes the
same five blocks, so the length of the hidden name leaks nothing.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

MASK = "█████"
MIN_TERM = 3
_ASCII_WORD = "A-Za-z0-9"


def _clean(term: str) -> str:
    return " ".join(unicodedata.normalize("NFC", str(term)).split())


def _term_regex(term: str, bounded: bool) -> str:
    body = r"\s+".join(re.escape(part) for part in term.split(" "))
    if bounded and term.isascii():
        return f"(?<![{_ASCII_WORD}]){body}(?![{_ASCII_WORD}])"
    return body


@lru_cache(maxsize=256)
def _pattern(terms: tuple[str, ...], bounded: bool) -> re.Pattern[str] | None:
    if not terms:
        return None
    ordered = sorted(terms, key=len, reverse=True)
    return re.compile("|".join(_term_regex(t, bounded) for t in ordered), re.IGNORECASE)


@dataclass(frozen=True)
class Masker:
    """The identifying terms of one team, longest first (so `Upstage AI` is masked whole, not as `Upstage` + AI)."""

    terms: tuple[str, ...]

    @classmethod
    def for_team(cls, names: Iterable[str]) -> Masker:
        """A masker from the team id, names (both languages), consortium members and model names.

        Blank entries and terms under three characters are dropped: masking `AI` or `KT` everywhere would blank out
        ordinary words and make the document unreadable without hiding much.
        """
        seen: dict[str, str] = {}
        for name in names:
            if name is None:
                continue
            term = _clean(name)
            if len(term) >= MIN_TERM and term.casefold() not in seen:
                seen[term.casefold()] = term
        return cls(tuple(sorted(seen.values(), key=lambda t: (-len(t), t))))

    def mask(self, text: str) -> str:
        """`text` with every occurrence of every term replaced by five blocks."""
        pattern = _pattern(self.terms, True)
        text = unicodedata.normalize("NFC", text)
        return pattern.sub(MASK, text) if pattern else text

    def mask_filename(self, name: str) -> str:
        """A file name with the terms masked as substrings: names are often run together (`UpstageSolar_v2.pdf`)."""
        pattern = _pattern(self.terms, False)
        name = unicodedata.normalize("NFC", name)
        return pattern.sub(MASK, name) if pattern else name

    def find(self, text: str) -> list[str]:
        """The terms that occur in `text`, in the masker's order, each once."""
        text = unicodedata.normalize("NFC", text)
        return [t for t in self.terms if (p := _pattern((t,), True)) is not None and p.search(text)]
