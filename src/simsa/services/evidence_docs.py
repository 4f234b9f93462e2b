"""Evidence documents: the `lineage compare` result behind an originality gate, kept in the store by the sha256
of its bytes (one row per distinct document) and linked from the gate result it decided, so the public can read
the full comparison and check its hash against the one the evidence text names."""

from __future__ import annotations

import hashlib
import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from simsa.audit.chain import canonical
from simsa.audit.log import append, now_utc
from simsa.errors import InputError
from simsa.store.models import EvidenceDocument, GateResult

LINEAGE_KIND = "simsa.lineage.compare/1"
TRAINING_EVIDENCE_KIND = "simsa.evidence.verify/1"
MAX_DOCUMENT_CHARS = 20_000_000


def lineage_text(lineage: dict) -> str:
    """The stored form of a lineage result that arrived as JSON data rather than a file (API): canonical JSON,
    the form the audit log hashes, so its sha256 is reproducible from the data."""
    return canonical(lineage)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def store_document(session: Session, text: str, *, kind: str, actor: str,
                   media_type: str = "application/json") -> EvidenceDocument:
    """The stored document with these exact bytes, adding it (audited) when it is new."""
    if len(text) > MAX_DOCUMENT_CHARS:
        raise InputError(f"an evidence document is {len(text):,} characters; at most {MAX_DOCUMENT_CHARS:,}")
    sha = digest(text)
    found = session.execute(select(EvidenceDocument).where(EvidenceDocument.sha256 == sha)).scalar_one_or_none()
    if found is not None:
        return found
    row = EvidenceDocument(sha256=sha, kind=kind, media_type=media_type, content=text, stored_at=now_utc(),
                           stored_by=actor)
    session.add(row)
    session.flush()
    append(session, actor=actor, action="evidence.store", row=row)
    return row


def _current_gate(session: Session, program_key: str, stage_id: str, team_id: str, gate_id: str) -> GateResult | None:
    superseded = select(GateResult.supersedes_id).where(GateResult.supersedes_id.is_not(None))
    return session.execute(select(GateResult).where(
        GateResult.program_key == program_key, GateResult.stage_id == stage_id, GateResult.team_id == team_id,
        GateResult.gate_id == gate_id, GateResult.id.not_in(superseded))).scalar_one_or_none()


def document_for_gate(session: Session, program_key: str, stage_id: str, team_id: str, gate_id: str, *,
                      kind: str | None = LINEAGE_KIND) -> EvidenceDocument | None:
    """The stored document (exact text and hash) the current result of this gate was decided from, of `kind`
    (None: any kind); None when it has none (recorded by hand, voided, or never recorded)."""
    row = _current_gate(session, program_key, stage_id, team_id, gate_id)
    if row is None or row.document_id is None or row.voided:
        return None
    doc = session.get(EvidenceDocument, row.document_id)
    if doc is None or (kind is not None and doc.kind != kind):
        return None
    return doc


def lineage_of(doc: EvidenceDocument) -> dict:
    """A stored lineage document read as data. A document that no longer parses as a JSON object raises InputError
    (only an edit behind the log's back makes one; `audit verify` names the row)."""
    try:
        # A file saved with a byte-order mark is kept with it (its sha256 is the file's); JSON readers skip it.
        data = json.loads(doc.content.removeprefix("\ufeff"))
    except (ValueError, RecursionError):
        raise InputError(f"evidence document {doc.id} is not JSON: it was altered (audit verify names it)") from None
    if not isinstance(data, dict):
        raise InputError(f"evidence document {doc.id} is not a lineage result: it was altered (audit verify names "
                         "it)")
    return data


def lineage_for_gate(session: Session, program_key: str, stage_id: str, team_id: str, gate_id: str) -> dict | None:
    """The lineage comparison the current result of this gate was decided from; None when it has none (recorded
    by hand, voided, or never recorded). A stored document that no longer parses raises InputError."""
    doc = document_for_gate(session, program_key, stage_id, team_id, gate_id)
    return None if doc is None else lineage_of(doc)
