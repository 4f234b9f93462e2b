"""What every API route shares: a body size cap applied while the body is read, the writer checks (an API token
with the right role), one write transaction per request, and the error responses the schema documents."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from sqlalchemy.orm import Session
from starlette.responses import Response

from simsa.accounts import Role
from simsa.timeutil import parse_user_time
from simsa.web.api_models import ApiError
from simsa.web.deps import Viewer, require_writer, store

bearer = HTTPBearer(auto_error=False, scheme_name="api_token",
                    description="An API token made for an account (Authorization: Bearer <token>).")
DOCUMENT_TOKEN = [Depends(bearer)]  # documents the token in the schema; the checks are `require_writer`'s

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ApiError, "description": "Invalid input (the service's one-line message)."},
    401: {"model": ApiError, "description": "No, or an invalid, expired or revoked API token."},
    403: {"model": ApiError, "description": "The token's account may not do this."},
    404: {"model": ApiError, "description": "No such programme, stage, team or record."},
    413: {"model": ApiError, "description": "The body is larger than the server accepts."},
    422: {"model": ApiError, "description": "The body or a parameter has the wrong shape or type."},
}
READ_ERRORS: dict[int | str, dict[str, Any]] = {code: ERRORS[code] for code in (400, 404, 422)}


class BoundedRoute(APIRoute):
    """A route whose request body is read with a cap (settings.max_upload_bytes): a larger body is refused with 413
    as soon as it is known to be larger, before it is held in memory whole or parsed."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def bounded(request: Request) -> Response:
            if request.method in ("POST", "PUT", "PATCH"):
                await read_capped(request, request.app.state.settings.max_upload_bytes)
            return await handler(request)

        return bounded


async def read_capped(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is not None and not declared.strip().isdigit():
        raise HTTPException(400, "malformed Content-Length header")
    if declared is not None and int(declared) > limit:
        raise HTTPException(413, f"request body larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"request body larger than {limit} bytes")
        chunks.append(chunk)
    request._body = b"".join(chunks)  # what Request.body() returns from now on


Admin = Annotated[Viewer, Depends(require_writer(Role.ADMIN))]
AdminOrTeam = Annotated[Viewer, Depends(require_writer(Role.ADMIN, Role.TEAM))]
AnyWriter = Annotated[Viewer, Depends(require_writer())]


def actor(who: Viewer) -> str:
    assert who.account is not None
    return who.account.actor


@contextmanager
def writing(request: Request) -> Iterator[Session]:
    """One write transaction, committed before the response is built and sent (a client that is told 201 can read
    what it wrote at once), rolled back on any error."""
    with store(request).session() as session:
        yield session


@contextmanager
def reading(request: Request) -> Iterator[Session]:
    """A read-only transaction (no write lock), for a write route's dry run."""
    with store(request).session(readonly=True) as session:
        yield session


def parse_at(value: str | None, what: str = "at") -> dt.datetime | None:
    """A time from a body as a UTC instant (an offset is applied here, at the edge)."""
    return None if value is None else parse_user_time(value, what)
