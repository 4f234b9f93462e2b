"""Request and response bodies of the expert panel's API routes (/api/v1/programs/{key}/stages/{stage}/panel…).

Requests are strict and bounded as every other API body (simsa.web.api_models): unknown fields, strings where
numbers belong and oversized maps are refused before any service is called.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from simsa.panel.rubric import MAX_GUESS, MAX_JUSTIFICATION
from simsa.web.api_models import ID_TEXT, Id
from simsa.web.api_models import _Body as Body
from simsa.web.api_models import _Document as Document
from simsa.web.api_models import _Out as Out

MAX_CRITERIA = 50     # more criteria than any rubric has: a bigger map is refused unread
CODE_TEXT = 8         # a blind code: "A" … "ZZ"

CriterionId = Annotated[str, Field(min_length=1, max_length=ID_TEXT)]
Justification = Annotated[str, Field(max_length=MAX_JUSTIFICATION)]
Phase = Literal["calibration", "round1", "round2", "closed"]


class ReviewIn(Body):
    """A review to lock: of a submission (by its blind code) in round 1 or 2, or of a calibration anchor."""

    round: Literal["calibration", "1", "2"]
    submission: str | None = Field(default=None, min_length=1, max_length=CODE_TEXT,
                                   description="The submission's blind code (rounds 1 and 2).")
    anchor: Id | None = Field(default=None, description="The calibration anchor's id (round calibration).")
    scores: dict[CriterionId, int] = Field(max_length=MAX_CRITERIA, description="criterion id → level")
    justifications: dict[CriterionId, Justification] = Field(default_factory=dict, max_length=MAX_CRITERIA)
    identified: Literal["yes", "no", "unsure"] | None = Field(
        default=None, description="Could you identify the team? (required for live reviews under blinding)")
    identified_as: str | None = Field(default=None, max_length=MAX_GUESS)

    @model_validator(mode="after")
    def _one_subject(self) -> ReviewIn:
        if self.round == "calibration" and (self.anchor is None or self.submission is not None):
            raise ValueError("a calibration review names an anchor (and no submission)")
        if self.round != "calibration" and (self.submission is None or self.anchor is not None):
            raise ValueError(f"a round-{self.round} review names a submission by its blind code (and no anchor)")
        return self


class AssignmentIn(Body):
    team: Id
    expert: str = Field(min_length=1, max_length=64)


class AdvanceIn(Body):
    to: Phase


class PanelState(Document):
    """The panel as the caller may see it: `view` is "admin" (everything but scores), "expert" (their own
    assignments by blind code and their own locked reviews) or "public" (after the decision: the stored result)."""

    program: str
    stage: str
    view: Literal["admin", "expert", "public"]
    phase: Literal["setup", "calibration", "round1", "round2", "closed"]


class PanelResult(Document):
    """The panel's result document (`simsa.panel.result/1`): per team aggregate, standard error, experts,
    identification and round shift; agreement (α with interval, ICCs, severities)."""

    schema_: str = Field(alias="schema")
    program: str
    stage: str
    teams: list[dict[str, Any]]
    agreement: dict[str, Any]


class ReviewLocked(Out):
    id: int
    round: str
    subject: str | None = Field(description="The anchor id, or the submission's blind code.")
    scores: dict[str, int]
    justifications: dict[str, str]
    identified: str | None
    identified_as: str | None
    rubric_sha256: str
    submitted_at: str
    content_sha256: str = Field(description="sha256 of the locked bytes (the audit log holds it).")


class AssignmentDone(Out):
    team: str
    expert: str
    assigned: bool
    experts: int = Field(description="Non-conflicted experts the team has now.")
    min_experts: int


class Balanced(Out):
    added: list[dict[str, str]]
    short: list[dict[str, Any]] = Field(description="Teams still below the minimum, with how many they have.")


class PhaseChanged(Out):
    phase: str
    since: str | None
    details: dict[str, Any]
