"""What the public audit log withholds: the entries of an expert panel or a user arena whose stage is not decided
yet.

The log is public, and a blind panel cannot be: an expert who locked "Submission A" could read in the log which
team that review, its documents or its discussion belong to, and anyone could see who reviews whom. Until the
stage is decided, the panel's entries are therefore published sealed — their place, time, links and hash stay in
the chain (the hash commits to the content), their actor, action, row and payload are withheld — and the whole
entry is published with the decision. The secretariat sees everything; `audit verify` on the server always checks
every entry in full.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import select, union
from sqlalchemy.orm import Session

from simsa.audit.chain import Entry, seal
from simsa.services import decision_records
from simsa.store.models import (
    ArenaBattle,
    ArenaExclusion,
    ArenaRating,
    ArenaTurn,
    ArenaVote,
    PanelAssignment,
    PanelCode,
    PanelComment,
    PanelDocument,
    PanelEvent,
    PanelReview,
)

PANEL_TABLES = {m.__tablename__: m for m in (PanelAssignment, PanelCode, PanelComment, PanelDocument, PanelEvent,
                                            PanelReview)}
# An arena battle's row says which entrant is on which side: published before the decision, it would unblind
# every rater who can read the log. The frozen segments stay public (they name no battle).
ARENA_TABLES = {m.__tablename__: m for m in (ArenaBattle, ArenaTurn, ArenaVote, ArenaRating, ArenaExclusion)}
STAGE_TABLES = {**PANEL_TABLES, **ARENA_TABLES}
BLOB_TABLE = "panel_blobs"


@dataclass(frozen=True)
class Sealer:
    """Which panel entries are withheld: those of `stages` (program, stage) and the files (`blobs`) they hold."""

    stages: frozenset[tuple[str, str]] = frozenset()
    blobs: frozenset[int] = frozenset()

    def note(self, e: Entry) -> str | None:
        """Why `e` is withheld, or None when it is published."""
        if not self.stages or (e.entity not in STAGE_TABLES and e.entity != BLOB_TABLE):
            return None
        if e.entity == BLOB_TABLE:
            return "a file of an expert panel, published with the stage's decision" if e.entity_id in self.blobs \
                else None
        try:
            row = json.loads(e.payload).get("row") or {}
        except (ValueError, AttributeError):
            return None
        key, stage = row.get("program_key"), row.get("stage_id")
        if (key, stage) in self.stages:
            what = "the user arena" if e.entity in ARENA_TABLES else "the expert panel"
            return f"{what} of {key} / {stage}, published with the stage's decision"
        return None

    def shown(self, e: Entry) -> Entry:
        """`e` as the public may read it now."""
        note = self.note(e)
        return e if note is None else seal(e, note)


PUBLISHED = Sealer()  # for the secretariat: nothing withheld


def sealer(session: Session) -> Sealer:
    """The entries withheld from the public now: every panel of a stage without a decision in force."""
    pairs = session.execute(union(*(select(m.program_key, m.stage_id) for m in STAGE_TABLES.values()))).all()
    open_stages = frozenset((k, s) for k, s in pairs if decision_records.effective(session, k, s) is None)
    if not open_stages:
        return PUBLISHED
    docs = session.execute(select(PanelDocument.program_key, PanelDocument.stage_id, PanelDocument.blob_id)).all()
    sealed_blobs = {b for k, s, b in docs if (k, s) in open_stages}
    published_blobs = {b for k, s, b in docs if (k, s) not in open_stages}
    return Sealer(stages=open_stages, blobs=frozenset(sealed_blobs - published_blobs))


def for_viewer(session: Session, is_admin: bool) -> Sealer:
    return PUBLISHED if is_admin else sealer(session)
