"""The secretariat's arena pages (role admin): every stage's arena, and one arena's state — its frozen entrants
and segments, votes per pair against the quota, left/right and category balance, votes by status and reason,
raters with the anomaly test's evidence and the forms to exclude or keep a rater or a vote, and the live ranking
(raw and style-controlled, with intervals and robustness figures), which no one else sees before the decision.

Freezing and checking the entrants call their endpoints, so those two posts hold no transaction while waiting.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from simsa.errors import NotFound, SimsaError
from simsa.services import arena_admin_views
from simsa.services.arena_admin_views import IdentityCheck
from simsa.web.deps import Admin, ReadSession, Viewer, WriteSession, store
from simsa.web.heavy import coalesced
from simsa.web.render import page, redirect
from simsa.web.routes.account import Csrf, Short, Text, after_refusal, form_post
from simsa.web.routes.arena import Key

router = APIRouter(prefix="/admin/arenas", include_in_schema=False)

Name = Annotated[str, Form(max_length=64)]


def arena_url(key: str, stage: str) -> str:
    return f"/admin/arenas/{key}/{stage}"


def _page(request: Request, session: Session, who: Viewer, key: str, stage: str, *, error: str | None = None,
          kept: dict | None = None, check: IdentityCheck | None = None, status_code: int = 200) -> Response:
    view = arena_admin_views.arena_admin(session, key, stage, who.lang, ranking=False)
    return page(request, "admin_arena.html.j2", status_code=status_code, view=view, error=error, kept=kept or {},
                check=check)


def _refused(request: Request, who: Viewer, key: str, stage: str, exc: SimsaError, *,
             session: Session | None = None, kept: dict | None = None) -> Response:
    if session is not None:
        with after_refusal(request, session) as reading:
            return _page(request, reading, who, key, stage, error=str(exc), kept=kept, status_code=400)
    with store(request).session(readonly=True) as reading:
        return _page(request, reading, who, key, stage, error=str(exc), kept=kept, status_code=400)


@router.get("")
def arena_list(request: Request, who: Admin, session: ReadSession) -> Response:
    return page(request, "admin_arenas.html.j2", arenas=arena_admin_views.arena_summaries(session, who.lang))


@router.get("/{key}/{stage}")
def arena_page(request: Request, who: Admin, session: ReadSession, key: Key, stage: Key) -> Response:
    return _page(request, session, who, key, stage)


@router.get("/{key}/{stage}/ranking")
def ranking(request: Request, who: Admin, session: ReadSession, key: Key, stage: Key) -> Response:
    """The live ranking: two bootstrap fits and the robustness searches, one computation at a time per arena."""
    view = coalesced(request, f"arena-ranking:{key}/{stage}/{who.lang}",
                     lambda: arena_admin_views.arena_admin(session, key, stage, who.lang))
    return page(request, "admin_arena_ranking.html.j2", view=view)


@router.post("/{key}/{stage}/freeze")
def freeze(request: Request, who: Admin, key: Key, stage: Key, reason: Text = "", csrf_token: Csrf = None) -> Response:
    form_post(request, who, csrf_token)
    assert who.account is not None
    try:
        _segment, opened = arena_admin_views.freeze_now(store(request), key, stage, who.account.actor, reason)
    except NotFound:
        raise
    except SimsaError as exc:
        return _refused(request, who, key, stage, exc, kept={"reason": reason})
    return redirect(request, arena_url(key, stage), done="done_ar_frozen" if opened else "done_ar_unchanged")


@router.post("/{key}/{stage}/check")
def check(request: Request, who: Admin, key: Key, stage: Key, csrf_token: Csrf = None) -> Response:
    form_post(request, who, csrf_token)
    try:
        found = arena_admin_views.check_entrants(store(request), key, stage)
    except NotFound:
        raise
    except SimsaError as exc:
        return _refused(request, who, key, stage, exc)
    except Exception as exc:  # an endpoint that does not answer
        return _refused(request, who, key, stage, SimsaError(f"could not read the entrants' identities "
                                                             f"({type(exc).__name__}: {str(exc)[:200]})"))
    with store(request).session(readonly=True) as reading:
        return _page(request, reading, who, key, stage, check=found)


@router.post("/{key}/{stage}/exclusions")
def decide(request: Request, who: Admin, session: WriteSession, key: Key, stage: Key, rater: Name = "",
           vote: Short = "", decision: Name = "exclude", reason: Text = "", csrf_token: Csrf = None) -> Response:
    form_post(request, who, csrf_token)
    assert who.account is not None
    try:
        arena_admin_views.decide_exclusion(session, key, stage, who.account.actor, rater=rater, vote=vote,
                                           decision=decision, reason=reason)
    except NotFound:
        raise
    except SimsaError as exc:
        target = f"rater-{rater}" if rater else "vote"
        return _refused(request, who, key, stage, exc, session=session,
                        kept={target: {"reason": reason, "vote": vote}})
    return redirect(request, arena_url(key, stage) + "?done=done_ar_excluded#raters")
