"""What the expert and team pages of a stage's panel show, and the form adapters behind their posts.

The visibility rules live here, not in the routes: an expert reaches a submission only through its blind code and
only when assigned to it (a conflicted pair is not an assignment); anything else reads as a missing code, so a
page never confirms that a team is in the panel. Under blinding, every name an expert sees (file names, Markdown,
plot labels, PDF pages) passes through the team's masker, and the team's id and name appear nowhere. Other
experts' scores reach an expert only in round 2, after their own round-1 review is locked, as the anonymised
distribution; discussion authors are shown as "you", "expert 1", "expert 2"… or the secretariat.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from sqlalchemy.orm import Session

from simsa import accounts
from simsa.errors import InputError, NotFound, SimsaError
from simsa.panel.blinding import Masker
from simsa.panel.conflicts import team_names
from simsa.panel.files import MAX_BYTES, Purpose
from simsa.program.loader import LoadedProgram
from simsa.program.schema import ExpertPanel, RubricCriterion
from simsa.services import panel, panel_documents, programs
from simsa.services.panel import CALIBRATION, LockedReview, PanelContext
from simsa.timeutil import utc_text

LIVE_PHASES = ("round1", "round2", "closed")
PURPOSES: tuple[Purpose, ...] = ("report", "log")
MAX_DECLARED_LINES = 200


def _pick(lang: str, en: str, ko: str | None) -> str:
    return (ko if lang == "ko" and ko else None) or en


# ---------------------------------------------------------------------------------------------------- the rubric
@dataclass(frozen=True)
class LevelView:
    value: int
    label: str
    description: str


@dataclass(frozen=True)
class CriterionView:
    """A rubric criterion in the page's language (falling back to English)."""

    id: str
    name: str
    weight: float
    required: bool
    levels: tuple[LevelView, ...]

    def level_label(self, value: int | None) -> str:
        return next((lv.label for lv in self.levels if lv.value == value), "" if value is None else str(value))


def criterion_view(crit: RubricCriterion, lang: str) -> CriterionView:
    levels = tuple(LevelView(lv.value, _pick(lang, lv.label, lv.label_ko),
                             _pick(lang, lv.description, lv.description_ko)) for lv in crit.levels)
    return CriterionView(crit.id, _pick(lang, crit.name, crit.name_ko), crit.weight,
                         crit.justification == "required", levels)


def rubric_view(p: ExpertPanel, lang: str) -> tuple[CriterionView, ...]:
    return tuple(criterion_view(c, lang) for c in p.criteria)


# ---------------------------------------------------------------------------------------------------- documents
@dataclass(frozen=True)
class PlotView:
    title: str  # a label key
    svg: str  # inline <svg> drawn by matplotlib from numbers only; series names masked


@dataclass(frozen=True)
class DocumentView:
    """One frozen document as an expert reads it: Markdown as sanitised HTML, PDF as page images, a training log
    as plots with its summary. `name` is masked under blinding."""

    id: int
    purpose: str
    kind: str
    name: str
    size: int
    sha256: str
    pages: tuple[int, ...] = ()
    html: str | None = None
    plots: tuple[PlotView, ...] = ()
    summary: tuple[tuple[str, str], ...] = ()  # (label key, value)
    problem: str | None = None


def _number(x: float | int | None) -> str:
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    return f"{x:.6g}"


# (series, axis, title label key) of each plot of a training log
_LOG_PLOTS: tuple[tuple[Literal["loss", "lr"], Literal["step", "tokens"], str], ...] = (
    ("loss", "step", "pn_plot_loss_step"), ("loss", "tokens", "pn_plot_loss_tokens"), ("lr", "step", "pn_plot_lr_step"))


def _document_view(ref: panel_documents.DocumentRef, data: bytes, masker: Masker | None) -> DocumentView:
    from simsa.panel.log_plots import log_plot_svg
    from simsa.panel.markdown_view import render_markdown
    from simsa.panel.training_log import parse_training_log

    name = masker.mask_filename(ref.filename) if masker else ref.filename
    base = DocumentView(id=ref.id, purpose=ref.purpose, kind=ref.kind, name=name, size=ref.size, sha256=ref.sha256)
    try:
        if ref.kind == "markdown":
            text = data.decode("utf-8-sig", errors="replace")
            return replace(base, html=render_markdown(text, masker))
        if ref.kind == "pdf":
            return replace(base, pages=tuple(range(1, (ref.pages or 0) + 1)))
        log = parse_training_log(data, ref.kind)
        plots = []
        for y, x, title in _LOG_PLOTS:
            svg = log_plot_svg(log, y, x, masker)
            if svg:
                plots.append(PlotView(title, svg))
        s = log.summary()
        rows = (("pn_sum_points", _number(s.points)), ("pn_sum_first_step", _number(s.first_step)),
                ("pn_sum_last_step", _number(s.last_step)), ("pn_sum_first_loss", _number(s.first_loss)),
                ("pn_sum_last_loss", _number(s.last_loss)), ("pn_sum_min_loss", _number(s.min_loss)),
                ("pn_sum_tokens", _number(s.tokens_last)), ("pn_sum_lr_peak", _number(s.lr_peak)),
                ("pn_sum_warmup", _number(s.warmup_steps)), ("pn_sum_spikes", _number(s.loss_spikes)),
                ("pn_sum_monotonic", _number(s.steps_monotonic)), ("pn_sum_nonfinite", _number(s.nonfinite)))
        return replace(base, plots=tuple(plots), summary=rows)
    except SimsaError as exc:
        return replace(base, problem=str(masker.mask(str(exc)) if masker else exc))


# ---------------------------------------------------------------------------------------------------- reviews
@dataclass(frozen=True)
class LockedLine:
    criterion: str
    value: int
    level: str
    justification: str


@dataclass(frozen=True)
class LockedView:
    """One's own locked review, read-only, with the sha256 of its locked bytes."""

    round: str
    lines: tuple[LockedLine, ...]
    identified: str | None
    identified_as: str | None
    submitted_at: dt.datetime
    content_sha256: str


def _locked_view(review: LockedReview, criteria: Sequence[CriterionView]) -> LockedView:
    lines = tuple(LockedLine(c.name, review.review.scores[c.id], c.level_label(review.review.scores[c.id]),
                             review.review.justifications.get(c.id, "")) for c in criteria
                  if c.id in review.review.scores)
    return LockedView(review.round, lines, review.review.identified, review.review.identified_as,
                      review.submitted_at, review.content_sha256)


@dataclass(frozen=True)
class DistributionRow:
    """How the panel scored one criterion in round 1: (level, its label, how many experts chose it)."""

    criterion: str
    counts: tuple[tuple[int, str, int], ...]
    n: int


@dataclass(frozen=True)
class CommentView:
    id: int
    author: str  # "you", "expert" (numbered) or "secretariat": never a name
    number: int | None
    body: str | None  # None when hidden
    hidden_reason: str | None
    posted_at: dt.datetime


@dataclass(frozen=True)
class Round2View:
    distribution: tuple[DistributionRow, ...]
    thread: tuple[CommentView, ...]
    revised: LockedView | None
    open: bool  # round 2 is the panel's phase now (posting and revising allowed)
    prefill_scores: Mapping[str, int]
    prefill_justifications: Mapping[str, str]


@dataclass(frozen=True)
class ReviewPage:
    """An expert's page for one subject: a team's submission (by blind code) or a calibration anchor."""

    key: str
    stage: str
    stage_name: str
    program_name: str
    timezone: str
    phase: str | None
    subject: str  # "submission" or "anchor"
    code: str | None
    anchor: str | None
    title: str | None  # the team's name, only when the panel is not blind
    blinding: bool
    deadline: dt.datetime
    documents: tuple[DocumentView, ...]
    criteria: tuple[CriterionView, ...]
    can_score: bool
    locked: LockedView | None
    round2: Round2View | None
    url: str


def panel_url(key: str, stage: str) -> str:
    from urllib.parse import quote

    return f"/expert/panels/{quote(key, safe='')}/{quote(stage, safe='')}"


def _names(lang: str, ctx: PanelContext) -> tuple[str, str]:
    p = ctx.loaded.program
    return _pick(lang, ctx.stage.name, ctx.stage.name_ko), _pick(lang, p.program.name, p.program.name_ko)


def masker_for(ctx: PanelContext, team_id: str) -> Masker | None:
    """The team's masker when the panel is blind (None when it is not: names are then shown as they are)."""
    return Masker.for_team(team_names(ctx.team(team_id))) if ctx.panel.blinding else None


# ---------------------------------------------------------------------------------------------------- access
def _missing(code: str, ctx: PanelContext) -> NotFound:
    return NotFound(f"no submission {code!r} in stage {ctx.stage.id!r}")


def expert_submission(session: Session, key: str, stage_id: str, code: str, expert: str) -> tuple[PanelContext, str]:
    """The panel and team behind `code` for an expert assigned to it; NotFound (the same as an unknown code)
    otherwise: not assigned, conflicted, or live scoring not open yet."""
    ctx = panel.context(session, key, stage_id)
    code = (code or "").strip()
    if not code or len(code) > 8 or panel.phase(session, ctx).phase not in LIVE_PHASES:
        raise _missing(code, ctx)
    try:
        team = panel.team_by_code(session, ctx, code)
    except NotFound:
        raise _missing(code, ctx) from None
    if (team, expert) not in panel.assignments(session, ctx):
        raise _missing(code, ctx)
    return ctx, team


def expert_anchor(session: Session, key: str, stage_id: str, anchor: str, expert: str) -> PanelContext:
    """The panel of a calibration anchor, for an expert on that panel once calibration has opened; else NotFound."""
    ctx = panel.context(session, key, stage_id)
    if (anchor not in ctx.anchors or panel.phase(session, ctx).phase is None
            or expert not in panel.assigned_experts(session, ctx)):
        raise NotFound(f"no calibration anchor {anchor!r} in stage {ctx.stage.id!r}")
    return ctx


def submission_page_png(session: Session, key: str, stage_id: str, code: str, document_id: int, page: int,
                        expert: str) -> bytes:
    """A page of a PDF in the submission behind `code`, masked; only for a document of that frozen submission."""
    from simsa.panel.pdf_pages import render_page

    ctx, team = expert_submission(session, key, stage_id, code, expert)
    if document_id not in {d.id for d in panel_documents.submission(session, ctx, team)}:
        raise _missing(code, ctx)
    return _png(session, ctx, document_id, page, masker_for(ctx, team), render_page)


def anchor_page_png(session: Session, key: str, stage_id: str, anchor: str, document_id: int, page: int,
                    expert: str) -> bytes:
    from simsa.panel.pdf_pages import render_page

    ctx = expert_anchor(session, key, stage_id, anchor, expert)
    if document_id not in {d.id for d in panel_documents.anchor_documents(session, ctx, anchor)}:
        raise NotFound(f"no document {document_id} of anchor {anchor!r}")
    return _png(session, ctx, document_id, page, None, render_page)


def _png(session: Session, ctx: PanelContext, document_id: int, page: int, masker: Masker | None, render) -> bytes:
    doc = panel_documents.content(session, ctx, document_id)
    if doc.ref.kind != "pdf" or not 1 <= page <= (doc.ref.pages or 0):
        raise NotFound(f"document {document_id} has no page {page}")
    return render(doc.data, page, masker=masker)


# ---------------------------------------------------------------------------------------------------- pages
# Rendered documents by (document, masker): Markdown and log parsing cost seconds for the largest files, and every
# expert opens the same submission many times. The key holds the document's sha256, so a view is never stale.
_VIEWS: OrderedDict[tuple[panel_documents.DocumentRef, Masker | None], DocumentView] = OrderedDict()
_VIEWS_LOCK = threading.Lock()
MAX_CACHED_VIEWS = 64


def _documents(session: Session, ctx: PanelContext, refs: Sequence[panel_documents.DocumentRef],
               masker: Masker | None) -> tuple[DocumentView, ...]:
    out = []
    for ref in refs:
        key = (ref, masker)
        with _VIEWS_LOCK:
            view = _VIEWS.get(key)
            if view is not None:
                _VIEWS.move_to_end(key)
        if view is None:
            view = _document_view(ref, panel_documents.content(session, ctx, ref.id).data, masker)
            with _VIEWS_LOCK:
                _VIEWS[key] = view
                while len(_VIEWS) > MAX_CACHED_VIEWS:
                    _VIEWS.popitem(last=False)
        out.append(view)
    return tuple(out)


def _thread(session: Session, ctx: PanelContext, team: str, expert: str) -> tuple[CommentView, ...]:
    panelists = {e for t, e in panel.assignments(session, ctx) if t == team}
    numbers: dict[str, int] = {}
    out = []
    for c in panel.thread(session, ctx, team):
        number = None
        if c.author == expert:
            who = "you"
        elif c.author in panelists:
            who = "expert"
            number = numbers.setdefault(c.author, len(numbers) + 1)
        else:
            who = "secretariat"
        out.append(CommentView(c.id, who, number, None if c.hidden else c.body, c.hidden_reason, c.posted_at))
    return tuple(out)


def _distribution(session: Session, ctx: PanelContext, team: str, expert: str,
                  criteria: Sequence[CriterionView]) -> tuple[DistributionRow, ...]:
    levels = panel.round1_distribution(session, ctx, team, expert)
    rows = []
    for c in criteria:
        given = levels.get(c.id, [])
        rows.append(DistributionRow(c.name, tuple((lv.value, lv.label, given.count(lv.value)) for lv in c.levels),
                                    len(given)))
    return tuple(rows)


def submission_page(session: Session, key: str, stage_id: str, code: str, expert: str, lang: str) -> ReviewPage:
    """An assigned expert's page for a submission: its frozen documents, the rubric form or their locked review,
    and in round 2 the anonymised distribution, the discussion and the revision form."""
    ctx, team = expert_submission(session, key, stage_id, code, expert)
    state = panel.phase(session, ctx).phase
    criteria = rubric_view(ctx.panel, lang)
    masker = masker_for(ctx, team)
    docs = _documents(session, ctx, panel_documents.submission(session, ctx, team), masker)
    first = panel.review_of(session, ctx, "1", team, expert)
    round2 = None
    if first is not None and state in ("round2", "closed") and ctx.panel.consensus_round:
        second = panel.review_of(session, ctx, "2", team, expert)
        round2 = Round2View(distribution=_distribution(session, ctx, team, expert, criteria),
                            thread=_thread(session, ctx, team, expert),
                            revised=_locked_view(second, criteria) if second else None,
                            open=state == "round2", prefill_scores=dict(first.review.scores),
                            prefill_justifications=dict(first.review.justifications))
    stage_name, program_name = _names(lang, ctx)
    return ReviewPage(
        key=ctx.key, stage=ctx.stage.id, stage_name=stage_name, program_name=program_name,
        timezone=ctx.loaded.program.program.timezone, phase=state, subject="submission", code=code, anchor=None,
        title=None if ctx.panel.blinding else ctx.team(team).name, blinding=ctx.panel.blinding,
        deadline=ctx.panel.submission_deadline, documents=docs, criteria=criteria,
        can_score=first is None and state == "round1", locked=_locked_view(first, criteria) if first else None,
        round2=round2, url=f"{panel_url(ctx.key, ctx.stage.id)}/submissions/{code}")


def anchor_page(session: Session, key: str, stage_id: str, anchor: str, expert: str, lang: str) -> ReviewPage:
    """A calibration anchor: its documents (nothing to mask) and the rubric form, or the expert's locked score."""
    ctx = expert_anchor(session, key, stage_id, anchor, expert)
    state = panel.phase(session, ctx).phase
    criteria = rubric_view(ctx.panel, lang)
    docs = _documents(session, ctx, panel_documents.anchor_documents(session, ctx, anchor), None)
    mine = panel.review_of(session, ctx, CALIBRATION, anchor, expert)
    stage_name, program_name = _names(lang, ctx)
    return ReviewPage(
        key=ctx.key, stage=ctx.stage.id, stage_name=stage_name, program_name=program_name,
        timezone=ctx.loaded.program.program.timezone, phase=state, subject="anchor", code=None, anchor=anchor,
        title=None, blinding=False, deadline=ctx.panel.submission_deadline, documents=docs, criteria=criteria,
        can_score=mine is None and state == CALIBRATION, locked=_locked_view(mine, criteria) if mine else None,
        round2=None, url=f"{panel_url(ctx.key, ctx.stage.id)}/anchors/{anchor}")


# ---------------------------------------------------------------------------------------------------- dashboard
@dataclass(frozen=True)
class SubjectRow:
    """A line of the dashboard: an anchor or a submission, and what the expert has to do with it."""

    name: str  # the anchor id, or the blind code
    title: str | None  # the team's name when the panel is not blind
    status: str  # to_score | locked | round2_open | revised | missed
    url: str


@dataclass(frozen=True)
class PanelCard:
    key: str
    stage: str
    stage_name: str
    program_name: str
    timezone: str
    phase: str | None
    deadline: dt.datetime
    deadline_passed: bool
    blinding: bool
    consensus_round: bool
    anchors: tuple[SubjectRow, ...]
    submissions: tuple[SubjectRow, ...]


@dataclass(frozen=True)
class TeamOption:
    value: str  # "programme/team", as a declared conflict is written
    program: str
    name: str
    checked: bool


@dataclass(frozen=True)
class DeclarationView:
    declared: bool
    affiliations: str
    relations: str
    teams: tuple[TeamOption, ...]


@dataclass(frozen=True)
class ExpertDashboard:
    expert: str
    declaration: DeclarationView
    panels: tuple[PanelCard, ...]


def _status(state: str | None, first: bool, second: bool, consensus: bool) -> str:
    if second:
        return "revised"
    if first:
        return "round2_open" if state == "round2" and consensus else "locked"
    return "to_score" if state == "round1" else "missed"


def _card(session: Session, ctx: PanelContext, expert: str, lang: str) -> PanelCard | None:
    mine = panel.teams_of(session, ctx, expert)
    if not mine:
        return None
    state = panel.phase(session, ctx).phase
    base = panel_url(ctx.key, ctx.stage.id)
    anchors: tuple[SubjectRow, ...] = ()
    if state is not None:
        done = {r.subject for r in panel.reviews(session, ctx, CALIBRATION) if r.expert == expert}
        anchors = tuple(SubjectRow(a, None, "locked" if a in done else ("to_score" if state == CALIBRATION
                                                                         else "missed"), f"{base}/anchors/{a}")
                        for a in ctx.anchors)
    subs: list[SubjectRow] = []
    if state in LIVE_PHASES:
        codes = panel.codes(session, ctx)
        first = {r.subject for r in panel.reviews(session, ctx, "1") if r.expert == expert}
        second = {r.subject for r in panel.reviews(session, ctx, "2") if r.expert == expert}
        for team in sorted(mine, key=lambda t: (len(codes.get(t, "")), codes.get(t, ""))):
            code = codes.get(team)
            if code is None:
                continue
            subs.append(SubjectRow(code, None if ctx.panel.blinding else ctx.team(team).name,
                                   _status(state, team in first, team in second, ctx.panel.consensus_round),
                                   f"{base}/submissions/{code}"))
    stage_name, program_name = _names(lang, ctx)
    return PanelCard(ctx.key, ctx.stage.id, stage_name, program_name, ctx.loaded.program.program.timezone, state,
                     ctx.panel.submission_deadline, panel.deadline_passed(ctx), ctx.panel.blinding,
                     ctx.panel.consensus_round, anchors, tuple(subs))


def _declaration_view(session: Session, contexts: Sequence[PanelContext], expert: str, lang: str) -> DeclarationView:
    decl = panel.declaration(session, expert)
    chosen = set(decl.conflicts) if decl else set()
    seen: dict[str, TeamOption] = {}
    for ctx in contexts:
        for team in ctx.teams:
            value = f"{ctx.key}/{team.id}"
            if value not in seen:
                seen[value] = TeamOption(value, ctx.key, _pick(lang, team.name, team.name_ko),
                                         value in chosen or team.id in chosen)
    return DeclarationView(decl is not None, "\n".join(decl.affiliations) if decl else "",
                           "\n".join(decl.relations) if decl else "", tuple(seen.values()))


def expert_dashboard(session: Session, expert: str, lang: str) -> ExpertDashboard:
    """The declaration form (every team of every programme with a panel: the declaration is about real
    organisations) and, per panel the expert is assigned to, its phase, anchors and submissions by blind code."""
    contexts = panel.panels(session)
    cards = tuple(c for c in (_card(session, ctx, expert, lang) for ctx in contexts) if c is not None)
    return ExpertDashboard(expert, _declaration_view(session, contexts, expert, lang), cards)


def _lines(text: str, what: str) -> list[str]:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if len(lines) > MAX_DECLARED_LINES:
        raise InputError(f"{len(lines)} {what} lines; at most {MAX_DECLARED_LINES}")
    return lines


def declare_from_form(session: Session, expert: accounts.AccountView, affiliations: str, relations: str,
                      conflicts: Sequence[str]) -> None:
    """The declaration form's text (one entry a line) and ticked teams, recorded as the expert's declaration."""
    known = {o.value for o in _declaration_view(session, panel.panels(session), expert.username, "en").teams}
    unknown = sorted(set(conflicts) - known)
    if unknown:
        raise InputError(f"unknown team {unknown[0]!r} in the declared conflicts")
    panel.declare(session, expert.username, affiliations=_lines(affiliations, "affiliation"),
                  relations=_lines(relations, "relation"), conflicts=list(dict.fromkeys(conflicts)),
                  actor=expert.actor)


# ---------------------------------------------------------------------------------------------------- form posts
def review_fields(ctx_panel: ExpertPanel, fields: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """The rubric form's fields (`score_<criterion>`, `just_<criterion>`) as the service's scores and notes."""
    scores = {c.id: fields.get(f"score_{c.id}", "") for c in ctx_panel.criteria}
    notes = {c.id: fields.get(f"just_{c.id}", "") for c in ctx_panel.criteria}
    return scores, notes


def submit_submission_review(session: Session, key: str, stage_id: str, code: str, expert: str, rnd: str,
                             fields: Mapping[str, str]) -> LockedReview:
    """Lock an expert's round-1 or round-2 review of the submission behind `code` (visibility checked first)."""
    ctx, team = expert_submission(session, key, stage_id, code, expert)
    scores, notes = review_fields(ctx.panel, fields)
    identified = fields.get("identified") or None
    if rnd == "2":  # the identification answer was given in round 1; round 2 keeps it
        first = panel.review_of(session, ctx, "1", team, expert)
        identified = first.review.identified if first else identified
        guess = first.review.identified_as if first else None
    else:
        guess = fields.get("identified_as") or None
    return panel.submit_review(session, ctx, expert, team, rnd, scores, notes, identified=identified,
                               identified_as=guess)


def submit_anchor_review(session: Session, key: str, stage_id: str, anchor: str, expert: str,
                         fields: Mapping[str, str]) -> LockedReview:
    ctx = expert_anchor(session, key, stage_id, anchor, expert)
    scores, notes = review_fields(ctx.panel, fields)
    return panel.submit_review(session, ctx, expert, anchor, CALIBRATION, scores, notes)


def post_submission_comment(session: Session, key: str, stage_id: str, code: str, expert: str, body: str) -> None:
    ctx, team = expert_submission(session, key, stage_id, code, expert)
    panel.post_comment(session, ctx, team, expert, body)


# ---------------------------------------------------------------------------------------------------- team side
@dataclass(frozen=True)
class TeamDocumentRow:
    id: int
    purpose: str
    kind: str
    filename: str
    pages: int | None
    size: int
    sha256: str
    uploaded_at: dt.datetime


@dataclass(frozen=True)
class TeamPanelStage:
    stage: str
    name: str
    deadline: dt.datetime
    deadline_passed: bool
    documents: tuple[TeamDocumentRow, ...]
    limits: Mapping[Purpose, int]


@dataclass(frozen=True)
class TeamPanelView:
    """A team's own uploads per stage with a panel (never a blind code, never another team's document)."""

    program: str
    program_name: str
    timezone: str
    team: str
    team_name: str
    loaded: bool
    stages: tuple[TeamPanelStage, ...]

    def to_dict(self) -> dict:
        return {"program": self.program, "team": self.team, "stages": [
            {"stage": s.stage, "deadline": utc_text(s.deadline), "deadline_passed": s.deadline_passed,
             "documents": [{"id": d.id, "purpose": d.purpose, "kind": d.kind, "filename": d.filename,
                            "size": d.size, "sha256": d.sha256, "uploaded_at": utc_text(d.uploaded_at)}
                           for d in s.documents]} for s in self.stages]}


def _team_account(account: accounts.AccountView) -> tuple[str, str]:
    if account.role != accounts.Role.TEAM or not account.program_key or not account.team_id:
        raise InputError(f"account {account.username!r} is not a team account")
    return account.program_key, account.team_id


def _team_contexts(loaded: LoadedProgram, team: str) -> list[PanelContext]:
    out = []
    for stage in loaded.program.stages:
        if stage.expert_panel is None:
            continue
        ctx = PanelContext(loaded=loaded, stage=stage, panel=stage.expert_panel)
        if any(t.id == team for t in ctx.teams):
            out.append(ctx)
    return out


def team_panel(session: Session, account: accounts.AccountView, lang: str = "en") -> TeamPanelView:
    """The signed-in team's documents per stage with a panel it takes part in."""
    key, team = _team_account(account)
    try:
        loaded = programs.stored(session, key)
    except NotFound:
        return TeamPanelView(key, key, "UTC", team, team, False, ())
    stages = []
    for ctx in _team_contexts(loaded, team):
        docs = tuple(TeamDocumentRow(d.id, d.purpose, d.kind, d.filename, d.pages, d.size, d.sha256, d.uploaded_at)
                     for d in panel_documents.submission(session, ctx, team))
        stages.append(TeamPanelStage(ctx.stage.id, _pick(lang, ctx.stage.name, ctx.stage.name_ko),
                                     ctx.panel.submission_deadline, panel.deadline_passed(ctx), docs,
                                     dict(MAX_BYTES)))
    program = loaded.program
    team_row = next((t for t in program.teams if t.id == team), None)
    team_name = _pick(lang, team_row.name, team_row.name_ko) if team_row else team
    return TeamPanelView(key, _pick(lang, program.program.name, program.program.name_ko), program.program.timezone,
                         team, team_name, True, tuple(stages))


def _team_stage(session: Session, account: accounts.AccountView, stage_id: str) -> tuple[PanelContext, str]:
    key, team = _team_account(account)
    for ctx in _team_contexts(programs.stored(session, key), team):
        if ctx.stage.id == stage_id:
            return ctx, team
    raise NotFound(f"stage {stage_id!r} has no expert panel for your team")


def upload_team_document(session: Session, account: accounts.AccountView, stage_id: str, purpose: str,
                         filename: str | None, data: bytes | None) -> panel_documents.DocumentRef:
    """A team's upload from the form: always to its own submission (the team comes from the account)."""
    ctx, team = _team_stage(session, account, stage_id)
    if purpose not in PURPOSES:
        raise InputError("choose what the file is: a report or a training log")
    if not data:
        raise InputError("choose a file to upload (it must not be empty)")
    return panel_documents.upload(session, ctx, data, filename or "upload", purpose, account.actor, team_id=team)


def withdraw_team_document(session: Session, account: accounts.AccountView, stage_id: str, document_id: int) -> None:
    ctx, team = _team_stage(session, account, stage_id)
    panel_documents.withdraw(session, ctx, document_id, account.actor, team_id=team)
