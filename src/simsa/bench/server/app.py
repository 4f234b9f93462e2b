"""The FastAPI app: the API key and body-size gate, and `create_app` wiring the routes to the worker."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from simsa.bench.server.errors import ApiError, _install_error_handlers, log
from simsa.bench.server.model import ServedModel, load_model
from simsa.bench.server.plans import PromptPlan, plan_chat, plan_completion
from simsa.bench.server.protocol import ChatRequest, CompletionRequest, _parse
from simsa.bench.server.render import ChatStream, render_chat, render_completion
from simsa.bench.server.worker import GenSpec, ModelWorker

DEFAULT_MAX_BODY_BYTES = 32 << 20


class _Gate:
    """The API key and the body limit, checked before any work is queued."""

    def __init__(self, api_key: str | None, max_body_bytes: int) -> None:
        self._key = hashlib.sha256(api_key.encode("utf-8")).digest() if api_key else None
        self.max_body_bytes = max_body_bytes

    def authorize(self, request: Request) -> None:
        """Bearer key compared in constant time (digests, so not even its length leaks)."""
        if self._key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        given = hashlib.sha256(token.strip().encode("utf-8")).digest()
        if not (hmac.compare_digest(given, self._key) and scheme.lower() == "bearer"):
            raise ApiError(401, "missing or wrong API key (send Authorization: Bearer KEY)", "invalid_api_key")

    async def read_body(self, request: Request) -> bytes:
        """The raw body, refused with 413 past the limit without reading the rest."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            raise self._too_large()
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                raise self._too_large()
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self) -> ApiError:
        return ApiError(413, f"the request body is larger than {self.max_body_bytes} bytes", "request_too_large")


async def _run_plans(worker: ModelWorker, plans: list[PromptPlan]) -> tuple[list[Any], list[Any]]:
    """All of a request's scoring goes to the worker as one job; each generation is its own job."""
    seqs = [plan.score for plan in plans if plan.score is not None]
    gens = [worker.generate(plan.gen) for plan in plans if plan.gen is not None]
    scored, *generated = await asyncio.gather(worker.score(seqs) if seqs else _nothing(), *gens)
    score_iter, gen_iter = iter(scored), iter(generated)
    return ([next(score_iter) if plan.score is not None else None for plan in plans],
            [next(gen_iter) if plan.gen is not None else None for plan in plans])


async def _respond(render: Callable[..., dict[str, Any]], *args: Any) -> Response:
    """Render and serialize off the event loop: echoed prompts with top log-probs make large bodies."""

    def work() -> bytes:
        return json.dumps(render(*args), ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")

    return Response(await run_in_threadpool(work), media_type="application/json")


async def _nothing() -> list[Any]:
    return []


def _stream_chat(worker: ModelWorker, served: ServedModel, req: ChatRequest, spec: GenSpec) -> StreamingResponse:
    """A chat completion as Server-Sent Events. A client that disconnects cancels the events, and with them the
    generation: the worker stops it at its next step (or never starts it)."""
    tokens = worker.stream(spec)
    chunks = ChatStream(served, req, spec)

    async def events() -> AsyncIterator[bytes]:
        try:
            yield chunks.start()
            async for ids in tokens.tokens():
                if chunk := chunks.step(ids):
                    yield chunk
            try:
                gen = await tokens.result
            except Exception as exc:
                yield chunks.error(exc)
                return
            yield chunks.finish(gen)
        except Exception as exc:  # a bug of ours: logged, and told to the client in the stream
            log.exception("streaming failed")
            yield chunks.error(exc)
        finally:
            tokens.cancel()

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def create_app(model_dir: Path, name: str | None = None, max_batch: int = 16, api_key: str | None = None,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, dtype: str = "float32", device: str = "cpu") -> FastAPI:
    """Load the model, start its worker thread and return the app (the worker stops at the app's shutdown)."""
    served = load_model(model_dir, name, dtype, device)
    worker = ModelWorker(served, max_batch)
    gate = _Gate(api_key, max_body_bytes)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await run_in_threadpool(worker.close)

    app = FastAPI(title="simsa serve-model", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.served = served
    app.state.worker = worker
    _install_error_handlers(app)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": served.name, "queued": worker.queued(), **worker.stats}

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        gate.authorize(request)
        return {"object": "list", "data": [served.card()]}

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        gate.authorize(request)
        req = await run_in_threadpool(_parse, CompletionRequest, await gate.read_body(request))
        served.check_model(req.model)
        plans = await run_in_threadpool(plan_completion, served, req)
        scores, gens = await _run_plans(worker, plans)
        return await _respond(render_completion, served, req, plans, scores, gens)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        """One answer; with `stream: true` as Server-Sent Events while it is generated."""
        gate.authorize(request)
        req = await run_in_threadpool(_parse, ChatRequest, await gate.read_body(request))
        served.check_model(req.model)
        spec = await run_in_threadpool(plan_chat, served, req)
        if req.stream:
            return _stream_chat(worker, served, req, spec)
        gen = await worker.generate(spec)
        return await _respond(render_chat, served, req, spec, gen)

    return app
