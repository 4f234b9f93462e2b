"""The audit log, read: pages of entries, one entry, verification, the publishable export and the readable trail;
and who an API token acts for."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

import simsa.web.api_models as m
from simsa.audit import log as audit_log
from simsa.audit.trail import TrailFilter, build_trail, parse_instant, zone
from simsa.services import api_views, audit_seal
from simsa.web.deps import ReadSession, SignedIn, ViewerDep
from simsa.web.heavy import coalesced, whole_log
from simsa.web.routes.api.common import DOCUMENT_TOKEN, ERRORS, READ_ERRORS, BoundedRoute

router = APIRouter(route_class=BoundedRoute)


@router.get("/audit", response_model=m.AuditPage, responses=READ_ERRORS, tags=["audit"],
            summary="Audit log entries, a page at a time")
def entries(session: ReadSession, who: ViewerDep,
            after: Annotated[int, Query(ge=0, le=api_views.MAX_ID, description="Entries after this seq.")] = 0,
            limit: Annotated[int, Query(ge=1, le=api_views.MAX_AUDIT_PAGE)] = api_views.MAX_AUDIT_PAGE) -> Response:
    """Entries in chain order with their payloads and hashes; `next` is the `after` of the following page."""
    sealer = audit_seal.for_viewer(session, who.is_admin)
    return JSONResponse(api_views.audit_page(session, after, limit, sealer).to_dict())


@router.get("/audit/verify", response_model=m.Verification, tags=["audit"], summary="Verify the audit log")
def verify(request: Request, session: ReadSession) -> dict:
    """As `simsa audit verify`: the chain, and every row of the database against what the log recorded.
    Concurrent requests share one run."""
    return coalesced(request, "verify-api", lambda: audit_log.verify(session).to_dict())


@router.get("/audit/export", response_model=m.AuditExport, tags=["audit"], summary="The whole audit log")
def export(session: ReadSession, who: ViewerDep) -> Response:
    """As `simsa audit export`: every entry, payloads and hashes, and the head, for publication. The entries of an
    expert panel whose stage is undecided are sealed for all but the secretariat (their hashes stay in the chain;
    `sealed` counts them)."""
    sealer = audit_seal.for_viewer(session, who.is_admin)
    return JSONResponse(whole_log(lambda: audit_log.export(session, sealer.shown)))


@router.get("/audit/trail", response_model=m.Trail, responses=READ_ERRORS, tags=["audit"],
            summary="The audit log as a readable trail")
def trail(session: ReadSession, who: ViewerDep,
          since: Annotated[str | None, Query(max_length=64, description="ISO date or date-time (UTC unless an "
                                             "offset is given).")] = None,
          until: Annotated[str | None, Query(max_length=64, description="Before this (exclusive).")] = None,
          actor: Annotated[str | None, Query(max_length=128)] = None,
          action: Annotated[str | None, Query(max_length=64, description="Actions starting with this.")] = None,
          limit: Annotated[int | None, Query(ge=1, le=100_000, description="Only the newest N.")] = None,
          tz: Annotated[str | None, Query(max_length=64, description="IANA zone to show times in.")] = None) -> dict:
    """As `simsa audit log --json`: one summary line per entry, filtered by time, actor and action."""
    flt = TrailFilter(since=parse_instant(since, "since") if since is not None else None,
                      until=parse_instant(until, "until") if until is not None else None,
                      actor=actor, action=action, limit=limit)
    shown_in = zone(tz) if tz is not None else None
    sealer = audit_seal.for_viewer(session, who.is_admin)
    entries = (sealer.shown(e) for e in audit_log.iter_entries(session))
    return whole_log(lambda: build_trail(entries, flt, shown_in).to_dict())


@router.get("/audit/{seq}", response_model=m.AuditEntry, responses=READ_ERRORS, tags=["audit"],
            response_model_exclude_unset=True,
            summary="One audit log entry")
def entry(seq: int, session: ReadSession, who: ViewerDep) -> dict:
    return api_views.audit_entry(session, seq, audit_seal.for_viewer(session, who.is_admin)).to_dict()


@router.get("/me", response_model=m.Account, responses={401: ERRORS[401]}, dependencies=DOCUMENT_TOKEN,
            tags=["accounts"], summary="The account a token acts for")
def me(who: SignedIn) -> dict:
    """The account of the API token sent (or of the signed-in session)."""
    assert who.account is not None
    return who.account.to_dict()
