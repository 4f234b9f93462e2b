"""What a judge run records: each answer, each judge's raw output and parsed verdict, and the item's result.

Everything needed to audit a score is kept: the reasoning stripped from answers, judge outputs that could not be
parsed, both orders of a pairwise comparison, and the language penalty with its reason.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, is_dataclass
from typing import Any

from simsa.bench.judge.korean import LanguageCheck


def jsonable(obj: Any) -> Any:
    """Dataclasses, tuples and dicts as plain JSON types."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return jsonable(asdict(obj))
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    return obj


@dataclass(frozen=True)
class AnswerRecord:
    """A model's answer to one turn: `text` is what judges see (reasoning stripped); `reasoning` is kept apart."""

    text: str
    reasoning: str
    flags: tuple[str, ...]
    finish_reason: str
    language: LanguageCheck


@dataclass(frozen=True)
class RubricJudgement:
    """One judge's grade of one item. `score` is None when the output had no parseable verdict."""

    judge: str
    prompt: str
    raw: str
    score: float | None


@dataclass(frozen=True)
class PairJudgement:
    """One judge's comparison of one item, asked in both orders.

    `verdict_ab` is the judge's answer with the candidate as A, `verdict_ba` with the baseline as A ("A", "B", "tie",
    None when unparseable). `vote` is the candidate's result from this judge: "win", "loss" or "tie"; an
    inconsistent pair of verdicts (the judge followed the position, not the answer) is a tie with `inconsistent`.
    """

    judge: str
    prompt: str
    raw_ab: str
    raw_ba: str
    verdict_ab: str | None
    verdict_ba: str | None
    vote: str | None
    inconsistent: bool


@dataclass(frozen=True)
class ItemRecord:
    """One turn of one question.

    rubric: `judged` is the mean of the parsed scores (None when no judge gave one); `score` is the item's score
    after the language penalty (None when unscored).
    pairwise: `judged` is the judges' majority outcome, `outcome` the outcome after the penalty ("win", "loss",
    "tie"), and `score` its value for the win rate (1, 0, 0.5).
    """

    question_id: str
    category: str
    turn: int
    answer: AnswerRecord
    baseline_answer: AnswerRecord | None
    judgements: tuple[RubricJudgement | PairJudgement, ...]
    judged: float | str | None
    outcome: str | None
    score: float | None
    penalty: str | None = None


@dataclass
class JudgeRun:
    """A finished judge task: its inputs (identities, prompts, question file, settings), items and summary."""

    mode: str
    candidate: dict[str, Any]
    baseline: dict[str, Any] | None
    judges: list[dict[str, Any]]
    questions: dict[str, Any]
    prompts: list[dict[str, Any]]
    settings: dict[str, Any]
    items: list[ItemRecord]
    summary: dict[str, Any]
    computed: int = 0
    cached: int = 0

    def to_dict(self) -> dict[str, Any]:
        return jsonable({"mode": self.mode, "candidate": self.candidate, "baseline": self.baseline,
                         "judges": self.judges, "questions": self.questions, "prompts": self.prompts,
                         "settings": self.settings, "summary": self.summary,
                         "calls": {"computed": self.computed, "cached": self.cached},
                         "items": self.items})
