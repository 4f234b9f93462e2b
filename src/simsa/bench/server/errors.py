"""Failures as OpenAI-style error objects: `ApiError`, the JSON error body and the app's exception handlers."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("simsa.serve")

_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
                405: "invalid_request_error", 413: "invalid_request_error", 500: "server_error", 503: "server_error"}


class ApiError(Exception):
    """A failure the client is told about as an OpenAI-style error object with an HTTP status."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


def _error_response(status: int, message: str, code: str | None = None) -> JSONResponse:
    error = {"message": message, "type": _ERROR_TYPES.get(status, "invalid_request_error"), "param": None,
             "code": code}
    return JSONResponse({"error": error}, status_code=status)


def _install_error_handlers(app: FastAPI) -> None:
    """Every failure leaves as `{"error": {...}}`; tracebacks stay in the server's log."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error_response(exc.status, exc.message, exc.code)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error_response(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}")

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error_response(400, f"invalid request: {exc.errors()[:3]}", "invalid_request")

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error_response(500, f"internal server error ({type(exc).__name__})", "internal_error")
