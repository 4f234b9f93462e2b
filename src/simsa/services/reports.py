"""A stage's report: what it is rendered from (the decision as recorded, its appeals, the decisions it replaced),
and the rendered document as Markdown, self-contained HTML or JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from sqlalchemy.orm import Session

from simsa.ecosystem import is_ecosystem_source
from simsa.services import appeals as appeal_service
from simsa.services import decision_records, programs
from simsa.services import ecosystem as ecosystem_service
from simsa.services.programs import ProgramRef

if TYPE_CHECKING:
    from simsa.report.render import ExtraSection

HEADLINE_METRICS = ["downloads_30d", "likes", "derivatives"]

ReportFormat = Literal["md", "html", "json"]


@dataclass(frozen=True)
class ReportInputs:
    """What a report is rendered from: the decision as recorded, its appeals, the decisions it replaced, and the
    programme's display time zone."""

    decision: dict
    appeals: list[dict]
    history: list[dict]
    timezone: str

    def to_dict(self) -> dict:
        return {"decision": self.decision, "appeals": self.appeals, "history": self.history,
                "timezone": self.timezone}


def report_inputs(session: Session, program_ref: ProgramRef, stage: str,
                  decision_id: int | None = None) -> ReportInputs:
    """The decision in force (or `decision_id`), the stage's appeals and the decisions it replaced, newest first."""
    loaded = programs.resolve(session, program_ref)
    key = loaded.program.program.id
    row = decision_records.get(session, key, stage, decision_id)
    history = []
    for old in decision_records.chain(session, row):
        body = decision_records.body(old)
        history.append({"decision_id": old.id, "decided_at": body["decided_at"], "advanced": body["advanced"],
                        "eliminated": body["eliminated"], "appeal_id": old.appeal_id})
    return ReportInputs(decision=decision_records.body(row), appeals=appeal_service.listing(session, key, stage),
                        history=history, timezone=loaded.program.program.timezone)


def render(session: Session, program_ref: ProgramRef, stage: str, fmt: ReportFormat, lang: str = "both",
           decision_id: int | None = None) -> str:
    """The stage's report as text in `fmt` and `lang` ("en", "ko" or "both"), times in the programme's zone;
    with the programme's ecosystem signals when snapshots were taken."""
    from simsa.report.render import render_report  # matplotlib is slow to import; only load it when rendering

    inputs = report_inputs(session, program_ref, stage, decision_id)
    extra = ecosystem_sections(session, program_ref, stage, lang)
    return render_report(inputs.decision, inputs.appeals, inputs.history, fmt, lang, inputs.timezone, extra)


def ecosystem_sections(session: Session, program_ref: ProgramRef, stage: str, lang: str) -> list[ExtraSection]:
    """The ecosystem section (series, derivative tree, what each number is) when the programme has snapshots:
    the metrics the stage scores on, else the headline ones."""
    from simsa.report import ecosystem_section
    from simsa.report.render import ExtraSection

    loaded = programs.resolve(session, program_ref)
    if not ecosystem_service.snapshots(session, loaded.program.program.id):
        return []
    scored = [s for s in loaded.program.stage(stage).score_sources() if is_ecosystem_source(s)]
    view = ecosystem_service.report_view(session, loaded, scored or HEADLINE_METRICS)
    return [ExtraSection("ecosystem", ecosystem_section.html(view, lang), ecosystem_section.markdown(view, lang),
                         view.to_dict())]
