"""Scoring against a stage's rubric: checking a review, its total on 0–100, and the bytes that are locked.

A review is a level per criterion (one of the criterion's anchored values), a justification where the rubric
requires one, and — for live reviews under blinding — whether the expert could identify the team.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from simsa.audit.chain import canonical
from simsa.errors import InputError
from simsa.program.schema import ExpertPanel

Identified = Literal["yes", "no", "unsure"]
IDENTIFIED: tuple[Identified, ...] = ("yes", "no", "unsure")
MAX_JUSTIFICATION = 5000
MAX_GUESS = 200


@dataclass(frozen=True)
class Review:
    """One expert's scores for one subject: level per criterion, justification per criterion, identification."""

    scores: Mapping[str, int]
    justifications: Mapping[str, str] = field(default_factory=dict)
    identified: Identified | None = None
    identified_as: str | None = None
    # Random bytes locked with the review: the public log holds the content's sha256, and without a nonce a review
    # with few levels and no justification could be found by trying every combination.
    nonce: str = field(default_factory=lambda: secrets.token_hex(16), compare=False)

    def to_dict(self) -> dict:
        return {"scores": dict(sorted(self.scores.items())),
                "justifications": {k: v for k, v in sorted(self.justifications.items()) if v},
                "identified": self.identified, "identified_as": self.identified_as}

    def content(self) -> bytes:
        """The locked form: canonical JSON, so its sha256 is reproducible from the data."""
        return canonical({**self.to_dict(), "nonce": self.nonce}).encode("utf-8")


def rubric_sha256(panel: ExpertPanel) -> str:
    """The rubric's identity: the sha256 of its criteria and levels, stored with every review scored on it."""
    data = [c.model_dump(mode="json") for c in panel.criteria]
    return hashlib.sha256(canonical(data).encode("utf-8")).hexdigest()


def check_review(panel: ExpertPanel, scores: Mapping[str, object], justifications: Mapping[str, str], *,
                 identified: str | None = None, identified_as: str | None = None, live: bool) -> Review:
    """A complete, valid review from form or API input, or one InputError naming every problem.

    `live`: a review of a team (not a calibration anchor); under blinding it must answer "could you identify the
    team?".
    """
    problems: list[str] = []
    known = {c.id for c in panel.criteria}
    for cid in sorted(set(scores) - known):
        problems.append(f"unknown criterion {cid!r}")
    for cid in sorted(set(justifications) - known):
        problems.append(f"justification for unknown criterion {cid!r}")
    levels: dict[str, int] = {}
    notes: dict[str, str] = {}
    for crit in panel.criteria:
        raw = scores.get(crit.id)
        value = _level(raw)
        allowed = [lv.value for lv in crit.levels]
        if raw is None or raw == "":
            problems.append(f"{crit.name}: choose a level ({', '.join(map(str, allowed))})")
        elif value is None or value not in allowed:
            problems.append(f"{crit.name}: {raw!r} is not a level of this criterion "
                            f"({', '.join(map(str, allowed))})")
        else:
            levels[crit.id] = value
        text = (justifications.get(crit.id) or "").strip()
        if len(text) > MAX_JUSTIFICATION:
            problems.append(f"{crit.name}: the justification is {len(text):,} characters; at most "
                            f"{MAX_JUSTIFICATION:,}")
        elif crit.justification == "required" and not text:
            problems.append(f"{crit.name}: a justification is required")
        if text:
            notes[crit.id] = text
    answer: Identified | None = None
    guess = (identified_as or "").strip() or None
    if live and panel.blinding:
        if identified not in IDENTIFIED:
            problems.append("answer \"could you identify the team?\" (yes, no or unsure)")
        else:
            answer = identified
        if guess is not None and len(guess) > MAX_GUESS:
            problems.append(f"the team you identified is {len(guess)} characters; at most {MAX_GUESS}")
    else:
        guess = None
    if problems:
        raise InputError("the review is incomplete: " + "; ".join(problems))
    return Review(scores=levels, justifications=notes, identified=answer, identified_as=guess)


def _level(raw: object) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and math.isfinite(raw) and raw.is_integer():
        return int(raw)
    if isinstance(raw, str) and raw.strip().lstrip("-").isdigit() and len(raw.strip()) <= 4:
        return int(raw.strip())
    return None


def total(panel: ExpertPanel, scores: Mapping[str, int]) -> float:
    """The review's total on 0–100: each criterion's level placed on its scale, weighted by its weight."""
    num = 0.0
    den = 0.0
    for crit in panel.criteria:
        v = scores[crit.id]
        num += crit.weight * (v - crit.low) / (crit.high - crit.low)
        den += crit.weight
    return 100.0 * num / den


def read_content(data: bytes) -> Review:
    """A locked review's bytes read back (they are ours; a row that no longer parses was edited)."""
    try:
        doc = json.loads(data.decode("utf-8"))
        return Review(scores={k: int(v) for k, v in doc["scores"].items()},
                      justifications=dict(doc.get("justifications") or {}),
                      identified=doc.get("identified"), identified_as=doc.get("identified_as"),
                      nonce=str(doc.get("nonce") or ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        raise InputError("a stored review no longer parses: it was altered (audit verify names the row)") from None
