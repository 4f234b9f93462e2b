"""Showing two streamed answers at one pace, so that speed cannot tell a rater who is who.

How fast an answer arrives (time to its first token, tokens per second) identifies a model as surely as its style
does. Shown as they arrive, two streamed answers would tell the rater which side is faster and how fast each is.
`Pacer` releases both sides' text together: while both are still being generated, each side shows as many
characters as the *slower* side has produced (never more than it has itself), so both sides grow in step at the
slower one's pace and the faster side's speed is not shown. Once a side has finished, the other is shown at its own
pace: its answer is the only one still growing.

The measure is characters (Unicode code points), the unit a rater sees; tokens would differ between entrants'
tokenizers and would need their counts. The pacer is pure: it is fed each side's new text and its end, in any
order, and answers with what may be shown now. It holds no clock: what the rater sees, and when, follows only from
when the slower side's text arrives. What a pace still shows: the slower running side's own speed, the lengths of
both answers, and, once one side ends, the other side's remaining pace — never which side was faster while both
were running.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from simsa.errors import InputError

Side = Literal["left", "right"]
SIDES: tuple[Side, Side] = ("left", "right")


@dataclass(frozen=True)
class Shown:
    """New text that may be shown on one side (appended to what that side shows already)."""

    side: Side
    text: str

    def to_dict(self) -> dict[str, str]:
        return {"side": self.side, "text": self.text}


class Pacer:
    """The paced merge of two answers' streams: `push(side, text)` and `finish(side)` return what may be shown now,
    always in the order left, then right, whichever side's arrival released it."""

    def __init__(self) -> None:
        self._received: dict[Side, str] = {"left": "", "right": ""}
        self._shown: dict[Side, int] = {"left": 0, "right": 0}
        self._finished: dict[Side, bool] = {"left": False, "right": False}

    def push(self, side: Side, text: str) -> list[Shown]:
        """`side` produced `text` (appended to its answer so far)."""
        self._check(side)
        if self._finished[side]:
            raise InputError(f"the {side} answer has finished; it cannot grow")
        self._received[side] += text
        return self._release()

    def finish(self, side: Side) -> list[Shown]:
        """`side`'s answer is complete (or failed): it no longer holds the other side back."""
        self._check(side)
        self._finished[side] = True
        return self._release()

    def level(self) -> int | None:
        """How many characters each side may show: the least any still-running side has produced (None: no limit,
        both have finished)."""
        running = [len(self._received[s]) for s in SIDES if not self._finished[s]]
        return min(running) if running else None

    def shown(self, side: Side) -> str:
        self._check(side)
        return self._received[side][: self._shown[side]]

    def received(self, side: Side) -> str:
        self._check(side)
        return self._received[side]

    @property
    def done(self) -> bool:
        """Both answers are complete and shown in full."""
        return all(self._finished[s] and self._shown[s] == len(self._received[s]) for s in SIDES)

    def _release(self) -> list[Shown]:
        level = self.level()
        out = []
        for side in SIDES:
            text = self._received[side]
            upto = len(text) if level is None else min(len(text), level)
            if upto > self._shown[side]:
                out.append(Shown(side, text[self._shown[side]: upto]))
                self._shown[side] = upto
        return out

    @staticmethod
    def _check(side: str) -> None:
        if side not in SIDES:
            raise InputError(f"side must be left or right, not {side!r}")
