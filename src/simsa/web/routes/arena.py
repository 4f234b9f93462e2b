"""A rater's arena pages (role rater): the arenas open to them, and one blind battle — ask, read both answers,
vote, then see who was who and rate the answers.

What a page may show before the vote is decided in `simsa.services.arena_views`. Asking does not hold a database
transaction while the entrants answer (`services.arena.ask`); the answers are made server-side, both at once, so
the page needs no script. Another rater's battle answers exactly as a token that exists nowhere (404).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from simsa.accounts import AccountView, Role
from simsa.errors import NotFound, SimsaError
from simsa.services import arena, arena_views
from simsa.web.deps import ReadSession, Viewer, WriteSession, require, store
from simsa.web.i18n import WEB_LABELS, t
from simsa.web.render import page, redirect
from simsa.web.routes.account import Csrf, after_refusal, form_post

router = APIRouter(prefix="/arena", include_in_schema=False)

Rater = Annotated[Viewer, Depends(require(Role.RATER))]
Token = Annotated[str, Path(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")]
Key = Annotated[str, Path(min_length=1, max_length=64)]
Prompt = Annotated[str, Form(max_length=arena.MAX_PROMPT + 2000)]
Choice = Annotated[str, Form(max_length=20)]
Level = Annotated[str, Form(max_length=4)]


def _account(who: Viewer) -> AccountView:
    assert who.account is not None
    return who.account


def category_label(lang: str) -> Callable[[str], str]:
    def label(category: str) -> str:
        key = f"ar_cat_{category}"
        return t(key, lang) if key in WEB_LABELS else category
    return label


def _home(request: Request, session: Session, who: Viewer, *, error: str | None = None,
          status_code: int = 200) -> Response:
    view = arena_views.rater_home(session, _account(who), who.lang)
    return page(request, "arena_home.html.j2", status_code=status_code, view=view, error=error)


@router.get("")
def home(request: Request, who: Rater, session: ReadSession) -> Response:
    return _home(request, session, who)


@router.post("/{key}/{stage}/battle")
def start(request: Request, who: Rater, session: WriteSession, key: Key, stage: Key,
          csrf_token: Csrf = None) -> Response:
    form_post(request, who, csrf_token)
    try:
        token = arena_views.start(session, key, stage, _account(who))
    except NotFound:
        raise
    except SimsaError as exc:
        with after_refusal(request, session) as reading:
            return _home(request, reading, who, error=str(exc), status_code=400)
    return redirect(request, f"/arena/{key}/{stage}/b/{token}")


def _battle(request: Request, session: Session, who: Viewer, key: str, stage: str, token: str, *,
            error: str | None = None, kept: dict | None = None, status_code: int = 200) -> Response:
    view = arena_views.battle_page(session, key, stage, token, _account(who), who.lang)
    return page(request, "arena_battle.html.j2", status_code=status_code, view=view, error=error, kept=kept or {},
                category_label=category_label(who.lang))


@router.get("/{key}/{stage}/b/{token}")
def battle(request: Request, who: Rater, session: ReadSession, key: Key, stage: Key, token: Token) -> Response:
    return _battle(request, session, who, key, stage, token)


@router.post("/{key}/{stage}/b/{token}/ask")
def ask(request: Request, who: Rater, key: Key, stage: Key, token: Token, prompt: Prompt = "",
        use_suggested: Choice = "", csrf_token: Csrf = None) -> Response:
    """No transaction is held here while both entrants answer (seconds): the service opens its own, short ones."""
    form_post(request, who, csrf_token)
    try:
        arena.ask(store(request), key, stage, token, _account(who), prompt, use_suggested=use_suggested == "1")
    except NotFound:
        raise
    except SimsaError as exc:
        with store(request).session(readonly=True) as reading:
            return _battle(request, reading, who, key, stage, token, error=str(exc), kept={"prompt": prompt},
                           status_code=400)
    return redirect(request, f"/arena/{key}/{stage}/b/{token}?done=done_ar_asked#answers")


@router.post("/{key}/{stage}/b/{token}/vote")
def vote(request: Request, who: Rater, session: WriteSession, key: Key, stage: Key, token: Token,
         choice: Choice = "", csrf_token: Csrf = None) -> Response:
    form_post(request, who, csrf_token)
    try:
        arena_views.vote(session, key, stage, token, _account(who), choice)
    except NotFound:
        raise
    except SimsaError as exc:
        with after_refusal(request, session) as reading:
            return _battle(request, reading, who, key, stage, token, error=str(exc), status_code=400)
    return redirect(request, f"/arena/{key}/{stage}/b/{token}?done=done_ar_voted#reveal")


@router.post("/{key}/{stage}/b/{token}/rate")
def rate(request: Request, who: Rater, session: WriteSession, key: Key, stage: Key, token: Token,
         usefulness_left: Level = "", cost_efficiency_left: Level = "", usefulness_right: Level = "",
         cost_efficiency_right: Level = "", csrf_token: Csrf = None) -> Response:
    form_post(request, who, csrf_token)
    fields = {"usefulness_left": usefulness_left, "cost_efficiency_left": cost_efficiency_left,
              "usefulness_right": usefulness_right, "cost_efficiency_right": cost_efficiency_right}
    try:
        arena_views.rate_from_form(session, key, stage, token, _account(who), fields)
    except NotFound:
        raise
    except SimsaError as exc:
        with after_refusal(request, session) as reading:
            return _battle(request, reading, who, key, stage, token, error=str(exc), status_code=400)
    return redirect(request, f"/arena/{key}/{stage}/b/{token}?done=done_ar_rated#reveal")
