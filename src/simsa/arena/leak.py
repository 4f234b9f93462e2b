"""Identity-leak filter: an answer that names its team, model or company voids the vote.

A blind battle is only blind if the answers do not say who wrote them. Models asked "who are you?" answer with
their name, and a team can train its model to sign its answers. The filter looks for each entrant's configured
names in both answers (and in the prompt, which a rater could use to ask) and reports every hit with its owner and
its position, so the vote is voided with the reason shown.

What is caught (each is tested):
- case, NFKC (full-width letters and digits, compatibility forms), zero-width characters and soft hyphens;
- markdown emphasis or code marks inside a name (`**Hal**la`, `` `baekdu`-32b ``): `*`, `` ` `` and `~` are ignored;
- separators between a name's parts: `baekdu-32b`, `Baekdu 32B`, `baekdu_32b`, `baekdu32b`, `Baekdu.32b` all match
  each other. A separator may appear where the configured term has one, where letters meet digits, and anywhere
  between Hangul syllables (Korean spacing varies: `백두 팀` and `백두팀`); never inside a run of Latin letters, so
  `Hal la` does not match `Halla`;
- Korean particles: a Hangul term matches as a substring, so `백두팀은`, `한라가` and `Halla는` are caught.

Word boundaries: a term that starts (ends) with a Latin letter or digit must not be preceded (followed) by one, so
`Jiri` does not fire inside `jiritsu` and `Halla` does not fire inside `Hallasan` (nor in `Hallas`); possessives
and punctuation (`Halla's`, `Halla,`) still fire. Hangul has no such boundary: `한라` fires inside `한라산`. Words
that must never fire (a mountain named like a team) go in `allow`: a hit that lies inside an allowed phrase is
dropped.

Terms shorter than 3 characters (a Hangul syllable counts as two, so `한라` is allowed and `한` is not) are refused
when the filter is built: they fire on ordinary text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from simsa.errors import InputError

MIN_TERM_WEIGHT = 3
IGNORED = {"*", "`", "~", "\u00ad", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u180e"}
SEPARATORS = " \t\n\r\f\v-_./·:\u00a0"
SEP = r"[\s\-_./·:]{0,3}"
LATIN = "0-9a-z\u00e0-\u024f"


def _is_hangul(ch: str) -> bool:
    return "\uac00" <= ch <= "\ud7a3" or "\u3131" <= ch <= "\u318e"


def _is_latin(ch: str) -> bool:
    return bool(re.fullmatch(f"[{LATIN}]", ch))


def clean(text: str) -> tuple[str, list[int]]:
    """The text folded for matching (NFKC, casefold, ignored marks dropped) and, per folded character, the index of
    the original character it came from."""
    out: list[str] = []
    where: list[int] = []
    for i, ch in enumerate(text):
        if ch in IGNORED or unicodedata.category(ch) == "Cf":
            continue
        for folded in unicodedata.normalize("NFKC", ch).casefold():
            if folded in IGNORED:
                continue
            out.append(folded)
            where.append(i)
    return "".join(out), where


def _skeleton(term: str) -> tuple[str, set[int]]:
    """The term's characters without separators, and the positions (before character k) where it had one."""
    folded, _ = clean(term)
    chars: list[str] = []
    breaks: set[int] = set()
    for ch in folded:
        if ch in SEPARATORS or ch.isspace():
            if chars:
                breaks.add(len(chars))
            continue
        chars.append(ch)
    return "".join(chars), breaks


def _weight(skeleton: str) -> int:
    return sum(2 if _is_hangul(ch) else 1 for ch in skeleton)


def _pattern(skeleton: str, breaks: set[int]) -> str:
    parts = []
    for k, ch in enumerate(skeleton):
        if k:
            prev = skeleton[k - 1]
            flexible = (k in breaks or (_is_hangul(prev) and _is_hangul(ch))
                        or (prev.isdigit() != ch.isdigit() and _is_latin(prev) and _is_latin(ch))
                        or not (_is_latin(prev) and _is_latin(ch)))
            if flexible:
                parts.append(SEP)
        parts.append(re.escape(ch))
    head = f"(?<![{LATIN}])" if _is_latin(skeleton[0]) else ""
    tail = f"(?![{LATIN}])" if _is_latin(skeleton[-1]) else ""
    return head + "".join(parts) + tail


@dataclass(frozen=True)
class Leak:
    """One hit: the configured term, whose it is, and where it is in the original text (`text[start:end]`)."""

    term: str
    owner: str
    start: int
    end: int
    text: str

    def to_dict(self) -> dict:
        return {"term": self.term, "owner": self.owner, "start": self.start, "end": self.end, "text": self.text}

    def reason(self) -> str:
        return f"the answer names {self.owner!r} ({self.text!r} matches {self.term!r})"


@dataclass(frozen=True)
class _Term:
    term: str
    owner: str
    regex: re.Pattern[str]


@dataclass(frozen=True)
class LeakFilter:
    """Compiled leak terms (build with `from_terms`)."""

    terms: tuple[_Term, ...]
    allow: tuple[re.Pattern[str], ...] = ()

    @classmethod
    def from_terms(cls, terms: Mapping[str, Iterable[str]], allow: Iterable[str] = ()) -> LeakFilter:
        """Compile `{owner: names}` (team, model, company and member names in any script, extra words); `allow`
        lists phrases inside which a hit is ignored."""
        compiled: list[_Term] = []
        problems: list[str] = []
        for owner, names in terms.items():
            for name in names:
                skeleton, breaks = _skeleton(name)
                if _weight(skeleton) < MIN_TERM_WEIGHT:
                    problems.append(f"{name!r} (for {owner!r})")
                    continue
                compiled.append(_Term(name, owner, re.compile(_pattern(skeleton, breaks))))
        if problems:
            raise InputError("leak-filter terms too short to be specific (need 3 characters, or 2 Hangul "
                             "syllables): " + ", ".join(problems))
        allowed = []
        for phrase in allow:
            skeleton, breaks = _skeleton(phrase)
            if skeleton:
                allowed.append(re.compile(_pattern(skeleton, breaks)))
        return cls(tuple(compiled), tuple(allowed))

    def find(self, text: str) -> tuple[Leak, ...]:
        """Every hit in `text`, in order of position; a hit inside a longer hit of the same owner is dropped."""
        folded, where = clean(text)
        if not folded:
            return ()
        shields = [(m.start(), m.end()) for rx in self.allow for m in rx.finditer(folded)]
        spans: list[tuple[int, int, _Term]] = []
        for term in self.terms:
            for m in term.regex.finditer(folded):
                if m.end() == m.start():
                    continue
                if any(s <= m.start() and m.end() <= e for s, e in shields):
                    continue
                spans.append((m.start(), m.end(), term))
        kept = [(s, e, t) for s, e, t in spans
                if not any(o is not t and o.owner == t.owner and os <= s and e <= oe and (oe - os) > (e - s)
                           for os, oe, o in spans)]
        leaks = []
        for s, e, t in sorted(kept, key=lambda x: (x[0], -x[1], x[2].owner, x[2].term)):
            start, end = where[s], where[e - 1] + 1
            leaks.append(Leak(term=t.term, owner=t.owner, start=start, end=end, text=text[start:end]))
        return tuple(leaks)

    def owners(self, text: str) -> tuple[str, ...]:
        """The distinct owners named in `text`."""
        return tuple(dict.fromkeys(leak.owner for leak in self.find(text)))
