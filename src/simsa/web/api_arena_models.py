"""Request and response bodies of the arena's API routes (/api/v1/programs/{key}/stages/{stage}/arena…).

Requests are strict and bounded as every other API body (simsa.web.api_models): unknown fields, strings where
numbers belong, a prompt longer than the arena accepts and oversized evidence are refused before any service is
called. Responses name what a client can rely on; a battle's reveal (who answered, how fast, at what price) is
present only once the battle's vote is stored.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from simsa.services.arena import MAX_PROMPT
from simsa.web.api_models import ID_TEXT
from simsa.web.api_models import _Body as Body
from simsa.web.api_models import _Document as Document
from simsa.web.api_models import _Out as Out

MAX_REASON = 2000      # what the store keeps of an exclusion's reason
MAX_EVIDENCE = 50      # entries of evidence attached to an exclusion
EVIDENCE_TEXT = 2000
USERNAME_TEXT = 64     # the arena tables' rater column

Choice = Literal["left", "right", "tie", "both_bad"]
Side = Literal["left", "right"]
Level = Annotated[int, Field(ge=1, le=5)]
EvidenceValue = Annotated[str, Field(max_length=EVIDENCE_TEXT)] | int | bool | None | Annotated[
    float, Field(allow_inf_nan=False)]


# --------------------------------------------------------------------------- requests (raters)


class TurnIn(Body):
    """One prompt for both entrants of a battle: the rater's own text, or the battle's suggested prompt (an
    attention check always asks its own prompt)."""

    prompt: str | None = Field(default=None, min_length=1, max_length=MAX_PROMPT,
                               description="Your prompt (refused when you asked it, or nearly it, before).")
    use_suggested: bool = Field(default=False, description="Ask the battle's suggested (curated) prompt instead.")

    @model_validator(mode="after")
    def _one_prompt(self) -> TurnIn:
        if self.use_suggested == (self.prompt is not None):
            raise ValueError("give a prompt, or use_suggested: true (not both)")
        return self


class VoteIn(Body):
    choice: Choice = Field(description="The better answer: left, right, tie, or both_bad.")


class RatingIn(Body):
    """Optional ratings of one answer after the vote (1–5), once per side."""

    side: Side
    usefulness: Level | None = None
    cost_efficiency: Level | None = Field(default=None, description="Judged with the measured latency, tokens/s "
                                                                     "and declared price the reveal shows.")

    @model_validator(mode="after")
    def _something(self) -> RatingIn:
        if self.usefulness is None and self.cost_efficiency is None:
            raise ValueError("give usefulness, cost_efficiency or both")
        return self


# --------------------------------------------------------------------------- requests (secretariat)


class FreezeIn(Body):
    reason: str = Field(default="", max_length=MAX_REASON,
                        description="Required when votes exist and an entrant changed: a new segment opens.")


class ExclusionIn(Body):
    """The secretariat's decision on a rater or one vote; the votes stay and an excluded one stops counting."""

    rater: str | None = Field(default=None, min_length=1, max_length=USERNAME_TEXT)
    vote: int | None = Field(default=None, ge=1, description="A vote's id (GET …/arena/votes).")
    decision: Literal["exclude", "keep"]
    reason: str = Field(min_length=1, max_length=MAX_REASON, description="Published with the stage's result.")
    evidence: dict[Annotated[str, Field(min_length=1, max_length=ID_TEXT)], EvidenceValue] = Field(
        default_factory=dict, max_length=MAX_EVIDENCE, description="What the decision was made on.")

    @model_validator(mode="after")
    def _one_target(self) -> ExclusionIn:
        if (self.rater is None) == (self.vote is None):
            raise ValueError("name a rater or a vote (one of them)")
        return self


# --------------------------------------------------------------------------- responses


class TurnOut(Out):
    turn: int
    prompt: str
    left: str
    right: str


class RevealSide(Out):
    team: str
    price_per_million_tokens: float | None
    turns: list[dict[str, Any]] = Field(description="Per turn: latency_seconds, completion_tokens, "
                                                    "tokens_per_second, finish_reason.")


class Reveal(Out):
    left: RevealSide
    right: RevealSide


class Battle(Out):
    """A battle as its rater sees it. `vote`, `vote_status`, `vote_reason`, `reveal` and `ratings` are absent
    until the vote is stored: nothing before it names or times an entrant."""

    battle: str = Field(description="The battle's token (only its rater can use it).")
    category: str
    started_at: str
    turns: list[TurnOut]
    max_turns: int
    suggested_prompt: str | None
    voted: bool
    vote: Choice | None = None
    vote_status: Literal["counted", "void", "gold_pass", "gold_fail"] | None = None
    vote_reason: str | None = Field(default=None, description="Why a void vote does not count.")
    reveal: Reveal | None = None
    ratings: dict[str, dict[str, int | None]] | None = None


class SegmentOut(Out):
    number: int
    manifest_sha256: str
    manifest: dict[str, Any]
    reason: str
    opened_at: str
    opened_by: str


class PairState(Out):
    a: str
    b: str
    scheduled: int = Field(description="Battles the schedule handed out: voted (not void) and pending.")
    counted: int
    void: int
    excluded: int
    left_a: int = Field(description="Scheduled battles with `a` on the left.")
    left_b: int


class ArenaState(Out):
    """The secretariat's view of the arena now: the frozen segment, the window, votes by status and per pair."""

    program: str
    stage: str
    opens: str
    closes: str
    open: bool
    segment: SegmentOut | None
    segments: int
    votes_per_pair: int
    votes: dict[str, int] = Field(description="Votes of the current segment by status, and `excluded`.")
    raters: int
    pending: int = Field(description="Battles started, not voted, still holding their place in the schedule.")
    pairs: list[PairState]


class ArenaResult(Document):
    """The arena's result (`ArenaResult.to_dict()`): raw and style-controlled rankings with intervals, the scores
    that become panel:user, votes per pair, exclusions by reason, segments, robustness and flagged raters."""

    kind: str
    program: str
    stage: str
    segment: int | None
    votes: dict[str, Any]
    pairs: list[dict[str, Any]]


class VoteOut(Out):
    vote: int
    battle: str
    segment: int
    rater: str
    kind: Literal["entrants", "gold"]
    model_a: str
    model_b: str
    category: str
    winner: str = Field(description="model_a, model_b, tie or both_bad")
    status: str
    reason: str | None
    excluded: str | None = Field(description="The secretariat's reason when the vote or its rater is excluded.")
    voted_at: str
    dwell_seconds: float


class VoteList(Out):
    program: str
    stage: str
    votes: list[VoteOut]


class Frozen(Out):
    segment: SegmentOut
    opened: bool = Field(description="False when the entrants are as already frozen (nothing changed).")
    changed: list[str] = Field(description="Entrants whose identity differs from the previous segment's.")


class ExclusionOut(Out):
    id: int
    rater: str | None
    vote: int | None
    decision: str
    reason: str
    evidence: dict[str, Any]
    decided_at: str
    decided_by: str
