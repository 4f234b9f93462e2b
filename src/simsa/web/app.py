"""The application: one FastAPI app over the store the CLI uses, with the frame every response shares
(security headers, structured access log, errors in the CLI's shape for the API and as pages for people)."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from importlib.resources import files

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from simsa import __version__
from simsa.errors import MAX_LISTED_PROBLEMS, SimsaError
from simsa.store.db import Store
from simsa.web.deps import Refused
from simsa.web.settings import WebSettings

ACCESS_LOG = logging.getLogger("simsa.web.access")
ERROR_LOG = logging.getLogger("simsa.web")
API_PREFIX = "/api/v1"
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
STATUS_LABEL = {401: "login_required", 403: "forbidden", 404: "not_found"}


def create_app(settings: WebSettings | None = None, store: Store | None = None) -> FastAPI:
    """The app for `settings` (default: from the environment) on `store` (default: opened from the settings)."""
    settings = settings or WebSettings.from_env()
    app = FastAPI(title="simsa", version=__version__, docs_url=None, redoc_url=None,
                  openapi_url=f"{API_PREFIX}/openapi.json",
                  description="Open judging for national foundation-model programmes: the JSON API. "
                              "Reads are public; writes need an API token (Authorization: Bearer …).")
    app.state.settings = settings
    app.state.store = store or Store(settings.database_url, pool_size=settings.pool_size)
    _logging(settings)
    app.mount("/static", StaticFiles(directory=str(files("simsa.web") / "static")), name="static")
    _frame(app, settings)
    _errors(app)
    _routes(app)
    return app


def _routes(app: FastAPI) -> None:
    import simsa.web.routes as routes

    for router in routes.all_routers():
        app.include_router(router)

    @app.get("/api/docs", include_in_schema=False)
    def api_docs(request: Request) -> Response:
        """The API reference, drawn from the app's own OpenAPI schema."""
        from simsa.web.api_docs import reference
        from simsa.web.render import page

        base = str(request.base_url).rstrip("/")
        return page(request, "api_docs.html.j2", groups=reference(app.openapi()), base_url=base)

    @app.get("/healthz", include_in_schema=False)
    def healthz(request: Request) -> JSONResponse:
        """Liveness and the store's reachability, for a load balancer."""
        from sqlalchemy import text

        try:
            with request.app.state.store.session(readonly=True) as session:
                session.execute(text("SELECT 1"))
        except Exception as exc:  # the store is down: say so, don't crash the probe
            return JSONResponse({"ok": False, "database": type(exc).__name__}, status_code=503)
        return JSONResponse({"ok": True, "version": __version__})


def _logging(settings: WebSettings) -> None:
    """One JSON line per request and internal errors on stderr, in every worker process (uvicorn sets up only its
    own loggers there); where the host application already configured logging, that configuration is kept."""
    logger = logging.getLogger("simsa.web")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)


def _frame(app: FastAPI, settings: WebSettings) -> None:
    @app.middleware("http")
    async def frame(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if not getattr(app.state, "threads_limited", False):
            # Routes run in the thread pool; at most `threads` at once, matching the store's connection pool.
            anyio.to_thread.current_default_thread_limiter().total_tokens = settings.threads
            app.state.threads_limited = True
        started = time.perf_counter()
        request_id = uuid.uuid4().hex[:16]
        request.state.request_id = request_id
        status = 500
        try:
            try:
                response: Response = await call_next(request)
            except Exception as exc:  # simsa's own bug: answered here, so the connection stays usable
                response = _internal_error(request, exc)
            status = response.status_code
        finally:
            if settings.access_log:
                ACCESS_LOG.info(json.dumps({
                    "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "id": request_id,
                    "method": request.method, "path": request.url.path, "status": status,
                    "ms": round((time.perf_counter() - started) * 1000, 1),
                    "client": request.client.host if request.client else None,
                    "account": getattr(request.state, "actor", None)}, ensure_ascii=False))
        response.headers["X-Request-Id"] = request_id
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["X-Frame-Options"] = "DENY"
        if request.url.scheme == "https":
            response.headers["Strict-Transport-Security"] = "max-age=31536000"
        if "cache-control" not in response.headers and (request.url.path.startswith(API_PREFIX) or
                                                        getattr(request.state, "viewer", None) is not None):
            response.headers["Cache-Control"] = "no-store"
        return response


def _internal_error(request: Request, exc: Exception) -> Response:
    """Logged with its traceback and the request id; the client learns only the id (exit code 70, as the CLI)."""
    request_id = getattr(request.state, "request_id", "-")
    ERROR_LOG.error("internal error in %s %s (request %s)", request.method, request.url.path, request_id,
                    exc_info=exc)
    message = f"internal error (request {request_id}); the server's log has the details"
    if _is_api(request):
        return JSONResponse({"error": message, "exit_code": 70, "status": 500}, status_code=500)
    try:
        return _error_page(request, 500, "error_title", message)
    except Exception:  # the error page itself failed: plain text
        return Response(message, status_code=500, media_type="text/plain")


def _is_api(request: Request) -> bool:
    return request.url.path.startswith(API_PREFIX)


def _api_error(status: int, message: str, **extra: object) -> JSONResponse:
    """The CLI's --json error shape: {"error": one line, "exit_code": the CLI's code for it}."""
    code = 1 if status >= 500 else 2
    return JSONResponse({"error": " ".join(message.split()), "exit_code": code, "status": status, **extra},
                        status_code=status)


def _error_page(request: Request, status: int, label: str, message: str) -> Response:
    from simsa.web.render import page

    return page(request, "error.html.j2", status_code=status, label=label, message=message, status=status)


def _errors(app: FastAPI) -> None:
    @app.exception_handler(SimsaError)
    async def simsa_error(request: Request, exc: SimsaError) -> Response:
        status = 404 if getattr(exc, "not_found", False) else (409 if getattr(exc, "conflict", False) else 400)
        if _is_api(request):
            return _api_error(status, str(exc))
        return _error_page(request, status, "error_title", str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = str(exc.detail)
        label = exc.label if isinstance(exc, Refused) else STATUS_LABEL.get(exc.status_code, "error_title")
        if _is_api(request):
            return _api_error(exc.status_code, message)
        if exc.status_code == 401 and request.method == "GET":
            from urllib.parse import quote

            from fastapi.responses import RedirectResponse

            return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
        return _error_page(request, exc.status_code, label, message)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        shown = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in errors[:MAX_LISTED_PROBLEMS]]
        more = f"; and {len(errors) - len(shown)} more" if len(errors) > len(shown) else ""
        problems = "; ".join(shown)[:4000] + more
        if _is_api(request):
            return _api_error(422, f"invalid request: {problems}")
        return _error_page(request, 422, "error_title", f"invalid request: {problems}")
