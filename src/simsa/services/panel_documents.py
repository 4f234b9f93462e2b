"""Documents in a stage's panel: teams' submissions (reports and training logs) and the calibration anchors.

Files are checked by content (`simsa.panel.files.sniff`), stored once by sha256, and every upload and withdrawal is
audited. A team's submission is frozen at the deadline: later uploads and withdrawals are refused, and what experts
read is exactly what was in force at the deadline.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from sqlalchemy import exists, select
from sqlalchemy.orm import Session, aliased

from simsa.audit.log import append, now_utc
from simsa.errors import InputError, NotFound
from simsa.panel.files import Purpose, safe_filename, sniff
from simsa.services.panel import PanelContext, deadline_passed, phase
from simsa.store.models import PanelBlob, PanelDocument
from simsa.timeutil import as_utc, utc_text

MAX_FILES_PER_TEAM = 20


@dataclass(frozen=True)
class DocumentRef:
    """A document in force, as listed to the people allowed to see it."""

    id: int
    team_id: str | None
    anchor_id: str | None
    purpose: str
    kind: str
    filename: str
    pages: int | None
    size: int
    sha256: str
    uploaded_at: dt.datetime
    uploaded_by: str

    def to_dict(self) -> dict:
        return {"id": self.id, "team": self.team_id, "anchor": self.anchor_id, "purpose": self.purpose,
                "kind": self.kind, "filename": self.filename, "pages": self.pages, "size": self.size,
                "sha256": self.sha256, "uploaded_at": utc_text(self.uploaded_at), "uploaded_by": self.uploaded_by}


def _ref(row: PanelDocument, blob: PanelBlob) -> DocumentRef:
    return DocumentRef(id=row.id, team_id=row.team_id, anchor_id=row.anchor_id, purpose=row.purpose, kind=row.kind,
                       filename=row.filename, pages=row.pages, size=blob.size, sha256=blob.sha256,
                       uploaded_at=as_utc(row.uploaded_at), uploaded_by=row.uploaded_by)


def _store_blob(session: Session, data: bytes, media_type: str, actor: str) -> PanelBlob:
    sha = hashlib.sha256(data).hexdigest()
    found = session.execute(select(PanelBlob).where(PanelBlob.sha256 == sha)).scalar_one_or_none()
    if found is not None:
        return found
    blob = PanelBlob(sha256=sha, size=len(data), media_type=media_type, content=data, stored_at=now_utc(),
                     stored_by=actor)
    session.add(blob)
    session.flush()
    append(session, actor=actor, action="panel.blob.store", row=blob)
    return blob


def _current(session: Session, ctx: PanelContext, *, team_id: str | None = None, anchor_id: str | None = None,
             at: dt.datetime | None = None) -> list[tuple[PanelDocument, PanelBlob]]:
    """Documents in force (at `at`, when given: the frozen submission is the set in force at the deadline)."""
    later = aliased(PanelDocument)
    newer = exists().where(later.supersedes_id == PanelDocument.id)
    if at is not None:
        newer = exists().where(later.supersedes_id == PanelDocument.id, later.uploaded_at <= at)
    query = (select(PanelDocument, PanelBlob).join(PanelBlob, PanelBlob.id == PanelDocument.blob_id)
             .where(PanelDocument.program_key == ctx.key, PanelDocument.stage_id == ctx.stage.id,
                    PanelDocument.withdrawn.is_(False), ~newer))
    if team_id is not None:
        query = query.where(PanelDocument.team_id == team_id)
    if anchor_id is not None:
        query = query.where(PanelDocument.anchor_id == anchor_id)
    if at is not None:
        query = query.where(PanelDocument.uploaded_at <= at)
    return [(d, b) for d, b in session.execute(query.order_by(PanelDocument.id))]


def submission(session: Session, ctx: PanelContext, team_id: str) -> list[DocumentRef]:
    """A team's documents: as they stand now before the deadline, frozen as they stood at it after."""
    ctx.team(team_id)
    at = ctx.panel.submission_deadline if deadline_passed(ctx) else None
    return [_ref(d, b) for d, b in _current(session, ctx, team_id=team_id, at=at)]


def anchor_documents(session: Session, ctx: PanelContext, anchor_id: str) -> list[DocumentRef]:
    return [_ref(d, b) for d, b in _current(session, ctx, anchor_id=anchor_id)]


def upload(session: Session, ctx: PanelContext, data: bytes, filename: str, purpose: Purpose, actor: str, *,
           team_id: str | None = None, anchor_id: str | None = None, now: dt.datetime | None = None) -> DocumentRef:
    """Store a team's document (before the deadline) or a calibration anchor (before calibration opens).

    The file's type is decided by its content; a refused file stores nothing.
    """
    when = as_utc(now) if now else now_utc()
    if (team_id is None) == (anchor_id is None):
        raise InputError("a document belongs to a team or to a calibration anchor")
    if team_id is not None:
        ctx.team(team_id)
        if deadline_passed(ctx, when):
            raise InputError(f"the submission deadline ({utc_text(ctx.panel.submission_deadline)}) has passed; the "
                             "submission is frozen")
        if len(_current(session, ctx, team_id=team_id)) >= MAX_FILES_PER_TEAM:
            raise InputError(f"a submission holds at most {MAX_FILES_PER_TEAM} files; withdraw one first")
    else:
        if anchor_id not in ctx.anchors:
            raise NotFound(f"stage {ctx.stage.id!r} has no calibration anchor {anchor_id!r}")
        if phase(session, ctx).phase is not None:
            raise InputError("calibration anchors are fixed once the panel has opened")
    found = sniff(data, filename, purpose)
    blob = _store_blob(session, data, found.media_type, actor)
    row = PanelDocument(program_key=ctx.key, stage_id=ctx.stage.id, team_id=team_id, anchor_id=anchor_id,
                        purpose=purpose, kind=found.kind, filename=safe_filename(filename), pages=found.pages,
                        blob_id=blob.id, uploaded_at=when, uploaded_by=actor, supersedes_id=None, withdrawn=False)
    session.add(row)
    session.flush()
    append(session, actor=actor, action="panel.document.upload", row=row, at=when)
    return _ref(row, blob)


def withdraw(session: Session, ctx: PanelContext, document_id: int, actor: str, *, team_id: str | None,
             now: dt.datetime | None = None) -> None:
    """Withdraw a document (a team its own, before the deadline; the admin an anchor before the panel opens)."""
    when = as_utc(now) if now else now_utc()
    row = session.get(PanelDocument, document_id)
    if (row is None or row.program_key != ctx.key or row.stage_id != ctx.stage.id or row.withdrawn
            or row.team_id != team_id):
        raise NotFound(f"no document {document_id} of yours in this stage")
    if session.execute(select(PanelDocument).where(PanelDocument.supersedes_id == row.id)).scalar_one_or_none():
        raise NotFound(f"document {document_id} was withdrawn already")
    if team_id is not None and deadline_passed(ctx, when):
        raise InputError("the submission deadline has passed; the submission is frozen")
    if team_id is None and phase(session, ctx).phase is not None:
        raise InputError("calibration anchors are fixed once the panel has opened")
    gone = PanelDocument(program_key=row.program_key, stage_id=row.stage_id, team_id=row.team_id,
                         anchor_id=row.anchor_id, purpose=row.purpose, kind=row.kind, filename=row.filename,
                         pages=row.pages, blob_id=row.blob_id, uploaded_at=when, uploaded_by=actor,
                         supersedes_id=row.id, withdrawn=True)
    session.add(gone)
    session.flush()
    append(session, actor=actor, action="panel.document.withdraw", row=gone, at=when)


@dataclass(frozen=True)
class DocumentContent:
    ref: DocumentRef
    data: bytes
    media_type: str


def content(session: Session, ctx: PanelContext, document_id: int) -> DocumentContent:
    """A document's bytes with its listing; callers decide who may see it (panel_access)."""
    row = session.get(PanelDocument, document_id)
    if row is None or row.program_key != ctx.key or row.stage_id != ctx.stage.id or row.withdrawn:
        raise NotFound(f"no document {document_id} in this stage")
    blob = session.get(PanelBlob, row.blob_id)
    if blob is None or hashlib.sha256(blob.content).hexdigest() != blob.sha256:
        raise InputError(f"document {document_id}'s stored bytes no longer match their sha256 (audit verify names "
                         "the row)")
    return DocumentContent(ref=_ref(row, blob), data=bytes(blob.content), media_type=blob.media_type)


def document_hashes(session: Session, ctx: PanelContext, team_id: str) -> list[str]:
    return [d.sha256 for d in submission(session, ctx, team_id)]
