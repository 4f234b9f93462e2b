"""Answer extraction and verdict parsing.

Reasoning models wrap their thinking in `<think>` (or `<thinking>`, `<reasoning>`) blocks; judges must see only the
answer, and a judge's own thinking must never be read as its verdict. Verdicts are parsed strictly: an output with
no verdict, or with conflicting ones, is None (recorded and counted by the runner), never a guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TAG = re.compile(r"<(/?)(think|thinking|reasoning)\s*>", re.IGNORECASE)

# Flags an extraction may carry.
REASONING_STRIPPED = "reasoning_stripped"  # one or more closed reasoning blocks were removed
TRUNCATED_REASONING = "truncated_reasoning"  # a reasoning block never closed: the model ran out before answering
UNOPENED_REASONING = "unopened_reasoning"  # a closing tag without an opening one: what precedes it is reasoning
EMPTY_ANSWER = "empty_answer"


@dataclass(frozen=True)
class Extracted:
    """The answer a judge sees, the reasoning kept for the record, and what extraction had to do."""

    answer: str
    reasoning: str
    flags: tuple[str, ...] = ()


def extract_answer(text: str) -> Extracted:
    """Split model output into answer and reasoning.

    Closed blocks are removed wherever they are. A closing tag with no opening (some chat templates put the opening
    tag in the prompt) makes everything before it reasoning. An opening tag that never closes means the answer was
    never written: the remainder is reasoning and the answer is empty, flagged `truncated_reasoning`.
    """
    answer_parts: list[str] = []
    reasoning_parts: list[str] = []
    flags: list[str] = []
    pos = 0
    open_name: str | None = None
    open_at = 0
    for m in _TAG.finditer(text):
        closing, name = m.group(1) == "/", m.group(2).lower()
        if open_name is None:
            if closing:  # stray closing tag: all the answer so far was reasoning
                reasoning_parts.extend(answer_parts)
                reasoning_parts.append(text[pos:m.start()])
                answer_parts = []
                flags.append(UNOPENED_REASONING)
            else:
                answer_parts.append(text[pos:m.start()])
                open_name, open_at = name, m.end()
            pos = m.end()
        elif closing and name == open_name:
            reasoning_parts.append(text[open_at:m.start()])
            flags.append(REASONING_STRIPPED)
            open_name = None
            pos = m.end()
        # any other tag inside an open block is part of the reasoning text
    if open_name is not None:
        reasoning_parts.extend(answer_parts)
        reasoning_parts.append(text[open_at:])
        answer_parts = []
        flags.append(TRUNCATED_REASONING)
    else:
        answer_parts.append(text[pos:])
    answer = "".join(answer_parts).strip()
    if not answer:
        flags.append(EMPTY_ANSWER)
    reasoning = "\n".join(p.strip() for p in reasoning_parts if p.strip())
    return Extracted(answer=answer, reasoning=reasoning, flags=tuple(dict.fromkeys(flags)))


_NUMBER = r"(\d+(?:\.\d+)?)"
_BRACKETED = re.compile(r"\[\[\s*" + _NUMBER + r"\s*(?:/\s*10\s*)?\]\]")
_LABELLED = re.compile(r"(?:rating|score|평점|점수)\s*[:：]\s*\[?\s*" + _NUMBER + r"\s*\]?(?:\s*/\s*10)?(?!\d)",
                       re.IGNORECASE)
_PAIR = re.compile(r"\[\[\s*(A|B|C|tie|무승부|동점)\s*\]\]", re.IGNORECASE)


def _single(values: list[float]) -> float | None:
    distinct = set(values)
    return distinct.pop() if len(distinct) == 1 else None


def parse_rubric(text: str, low: float = 1, high: float = 10) -> float | None:
    """A rubric score from a judge's output: `[[7]]`, `[[7.5]]`, `Rating: [[7]]`; failing those, a labelled number
    (`Rating: 7`, `점수: 7`, `평점: 7/10`). Reasoning blocks are ignored. None when absent, out of range, or when the
    output gives different scores."""
    answer = extract_answer(text).answer
    for pattern in (_BRACKETED, _LABELLED):
        values = [float(v) for v in pattern.findall(answer)]
        if values:
            score = _single(values)
            return score if score is not None and low <= score <= high else None
    return None


def parse_pairwise(text: str) -> str | None:
    """A pairwise verdict: "A", "B" or "tie" (`[[A]]`, `[[B]]`, `[[C]]`). None when absent or contradictory."""
    answer = extract_answer(text).answer
    found = {v.upper() for v in _PAIR.findall(answer)}
    verdicts = {"A" if v == "A" else "B" if v == "B" else "tie" for v in found}
    return verdicts.pop() if len(verdicts) == 1 else None
