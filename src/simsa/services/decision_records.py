"""Reading stored decisions back: the one in force, the chain it replaced, a decision's JSON.

Apart from deciding (simsa.services.decisions) because much reads decisions without deciding: the programme
versions warn about decisions in force, the status, the public pages and the reports show them.
"""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from simsa.errors import InputError
from simsa.store.models import Decision


def effective(session: Session, key: str, stage_id: str) -> Decision | None:
    """The stage's decision in force: the newest one that no later decision supersedes."""
    superseded = select(Decision.supersedes_id).where(Decision.supersedes_id.is_not(None))
    return session.execute(select(Decision).where(Decision.program_key == key, Decision.stage_id == stage_id,
                                                  Decision.id.not_in(superseded))
                           .order_by(Decision.id.desc()).limit(1)).scalar_one_or_none()


def chain(session: Session, row: Decision) -> list[Decision]:
    """Earlier decisions this one replaced, newest first."""
    out = []
    cur = row
    while cur.supersedes_id is not None:
        prev = session.get(Decision, cur.supersedes_id)
        if prev is None:
            break
        out.append(prev)
        cur = prev
    return out


def body(row: Decision) -> dict:
    """The decision's JSON as it was stored."""
    return json.loads(row.body)


def get(session: Session, key: str, stage_id: str, decision_id: int | None = None) -> Decision:
    """Decision `decision_id` of the stage (checked to be the stage's), else the one in force; an input error when
    there is none, so a command says what to run instead of failing on a missing row."""
    if decision_id is not None:
        row = session.get(Decision, decision_id)
        if row is None or row.program_key != key or row.stage_id != stage_id:
            raise InputError(f"no decision {decision_id} for stage {stage_id!r} of program {key!r}")
        return row
    row = effective(session, key, stage_id)
    if row is None:
        raise InputError(f"stage {stage_id!r} of program {key!r} has no decision yet; run `simsa stage decide`")
    return row
