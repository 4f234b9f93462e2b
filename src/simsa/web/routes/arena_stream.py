"""A battle's two answers streamed to the rater's browser while they are generated (role rater).

The battle page's prompt form posts here from `static/arena.js` (the same fields as its normal post: the prompt,
`use_suggested`, the session's CSRF token); without script the page posts to `/ask` and gets the stored turn. The
answer is a `text/event-stream` of `data: {json}` events from `services.arena.ask_streaming`: `{"side": "a"|"b",
"text": piece}` while text may be shown (both sides paced together, so neither the order nor the speed of arrival
tells who is who), then `{"done": true}` once the turn is stored, or `{"error": message}`. The events carry no
timing and no name. Refusals are those of the form post: no CSRF token 403, another rater's battle 404 (as a token
that exists nowhere), a refused prompt 400 with its error event.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import Response, StreamingResponse

from simsa.accounts import Role
from simsa.errors import NotFound, SimsaError
from simsa.services import arena
from simsa.web.deps import Viewer, require, store
from simsa.web.routes.account import Csrf, form_post

router = APIRouter(prefix="/arena", include_in_schema=False)
log = logging.getLogger("simsa.web")

Rater = Annotated[Viewer, Depends(require(Role.RATER))]
Token = Annotated[str, Path(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")]
Key = Annotated[str, Path(min_length=1, max_length=64)]
Prompt = Annotated[str, Form(max_length=arena.MAX_PROMPT + 2000)]
Flag = Annotated[str, Form(max_length=20)]
HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def sse(event: dict) -> bytes:
    """One Server-Sent Event carrying `event` as JSON."""
    return b"data: " + json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


def _events(events: Iterator[dict]) -> Iterator[bytes]:
    """The service's events as SSE; a failure of ours after the stream began ends it with an error event (the
    details go to the log). Closing this (the rater left) closes the service's iterator, which stops the
    entrants."""
    try:
        for event in events:
            yield sse(event)
    except Exception:
        log.exception("streaming a battle's answers failed")
        yield sse({"error": "the answers could not be streamed; reload the page and ask again"})
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()


@router.post("/{key}/{stage}/b/{token}/stream")
def stream(request: Request, who: Rater, key: Key, stage: Key, token: Token, prompt: Prompt = "",
           use_suggested: Flag = "", csrf_token: Csrf = None) -> Response:
    """Ask both entrants and stream their answers; the checks run before the stream starts."""
    form_post(request, who, csrf_token)
    assert who.account is not None
    try:
        events = arena.ask_streaming(store(request), key, stage, token, who.account, prompt,
                                     use_suggested=use_suggested == "1")
    except NotFound:
        raise
    except SimsaError as exc:
        return StreamingResponse(iter([sse({"error": str(exc)})]), status_code=400, media_type="text/event-stream",
                                 headers=HEADERS)
    return StreamingResponse(_events(events), media_type="text/event-stream", headers=HEADERS)
