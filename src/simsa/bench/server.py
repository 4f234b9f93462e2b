"""`simsa serve-model`: an OpenAI-compatible HTTP server over one transformers checkpoint.

Benchmark runs reach served models through the OpenAI completions and chat APIs (lm-eval's `local-completions` and
`local-chat-completions`). This server lets a team without vLLM serve a checkpoint for such runs, and lets the tests
drive the HTTP backend against a real model. Log-probabilities are the float32 log-softmax of the logits of the same
forward pass transformers runs, so lm-eval's numbers through this server equal its in-process `hf` numbers.

One worker thread owns the model; the event loop only parses, validates and queues. Scoring requests (max_tokens 0,
or 1 with temperature 0) that wait together run as one right-padded forward pass. Generation runs one prompt at a
time with `model.generate`, with the model's own sampling defaults replaced by the request's parameters.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import queue
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList

from simsa.errors import InputError

log = logging.getLogger("simsa.serve")

DEFAULT_MAX_BODY_BYTES = 32 << 20
MAX_TOP_LOGPROBS = 20
LOGPROB_FLOOR = -9999.0  # JSON has no -inf; vLLM reports the same floor for impossible tokens
LOGIT_BUDGET = 1 << 28  # float32 logits one padded scoring batch may hold (1 GiB); a longer prompt runs alone
DEFAULT_COMPLETION_TOKENS = 16  # OpenAI's default max_tokens for /v1/completions
_OFFSET_WINDOW = 8  # tokens of left context when measuring how much text each token adds
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
                405: "invalid_request_error", 413: "invalid_request_error", 500: "server_error", 503: "server_error"}
_PROMPT_SHAPE = "prompt must be a string, a list of strings, a list of token ids or a list of lists of token ids"

TopList = list[tuple[int, float]]


# --------------------------------------------------------------------------- errors


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


# --------------------------------------------------------------------------- request bodies


class _Body(BaseModel):
    """Strict types (no "1" for 1, no true for 1); fields that no client of ours sends are ignored."""

    model_config = ConfigDict(strict=True, extra="ignore")


_BodyT = TypeVar("_BodyT", bound=BaseModel)


class _Sampling(_Body):
    model: str | None = None
    max_tokens: int | None = Field(default=None, ge=0)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=-1)
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int | None = None
    best_of: int | None = None
    stream: bool | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None


class CompletionRequest(_Sampling):
    """POST /v1/completions."""

    prompt: str | list[str] | list[int] | list[list[int]]
    echo: bool | None = False
    logprobs: int | None = Field(default=None, ge=0, le=MAX_TOP_LOGPROBS)
    add_special_tokens: bool | None = True


class _ContentPart(_Body):
    type: str
    text: str | None = None


class ChatMessage(_Body):
    role: str
    content: str | list[_ContentPart] | None = None


class ChatRequest(_Sampling):
    """POST /v1/chat/completions."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool | None = False
    top_logprobs: int | None = Field(default=None, ge=0, le=MAX_TOP_LOGPROBS)


def _parse(cls: type[_BodyT], raw: bytes) -> _BodyT:
    """Decode and validate a JSON body; the client gets the first problem in one line, not pydantic's report."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}", "invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object", "invalid_json")
    try:
        return cls.model_validate(body)
    except ValidationError as exc:
        errors = exc.errors()
        if any(err["loc"][:1] == ("prompt",) for err in errors) and "prompt" in body:
            raise ApiError(400, _PROMPT_SHAPE, "invalid_prompt") from None
        first = errors[0]
        where = ".".join(str(part) for part in first["loc"] if "[" not in str(part)) or "body"
        raise ApiError(400, f"{where}: {first['msg']}", "invalid_request") from None


def _refuse_unsupported(req: _Sampling) -> None:
    """Options that would change the answer and that this server does not implement are refused, not ignored."""
    if req.n not in (None, 1):
        raise ApiError(400, "n must be 1: this server returns one choice per prompt", "unsupported")
    if req.best_of not in (None, 1):
        raise ApiError(400, "best_of must be 1", "unsupported")
    if req.stream:
        raise ApiError(400, "stream is not supported", "unsupported")
    if req.presence_penalty or req.frequency_penalty or req.logit_bias:
        raise ApiError(400, "presence_penalty, frequency_penalty and logit_bias are not supported", "unsupported")


# --------------------------------------------------------------------------- the model


@dataclass
class ServedModel:
    """The loaded checkpoint and what /v1/models says about it; the tokenizer is used under `tok_lock`."""

    model: Any
    tokenizer: Any
    name: str
    directory: Path
    sha256: str
    max_len: int
    vocab: int
    eos_ids: frozenset[int]
    pad_id: int
    chat_template: str | None
    device: torch.device
    tok_lock: threading.Lock = field(default_factory=threading.Lock)

    def card(self) -> dict[str, Any]:
        """The /v1/models entry; `simsa` carries the content hash clients key their caches by."""
        template_sha = hashlib.sha256(self.chat_template.encode("utf-8")).hexdigest() if self.chat_template else None
        return {"id": self.name, "object": "model", "created": 0, "owned_by": "simsa", "root": self.name,
                "max_model_len": self.max_len,
                "simsa": {"sha256": self.sha256, "sha256_of": "*.safetensors", "directory": self.directory.name,
                          "max_model_len": self.max_len, "chat_template_sha256": template_sha}}

    def check_model(self, requested: str | None) -> None:
        if requested is not None and requested != self.name:
            raise ApiError(404, f"model {requested!r} is not served here; this server serves {self.name!r}",
                           "model_not_found")

    def encode(self, text: str, add_special_tokens: bool) -> list[int]:
        with self.tok_lock:
            return list(self.tokenizer(text, add_special_tokens=add_special_tokens).input_ids)

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        with self.tok_lock:
            return self.tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def decode_each(self, batches: list[list[int]]) -> list[str]:
        with self.tok_lock:
            return self.tokenizer.batch_decode(batches, skip_special_tokens=False)


def weights_sha256(files: Sequence[Path]) -> str:
    """One digest over the weight files (name and content hash, in name order): what the server computes with."""
    total = hashlib.sha256()
    for path in sorted(files, key=lambda p: p.name):
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            while chunk := fh.read(8 << 20):
                digest.update(chunk)
        total.update(f"{path.name} {digest.hexdigest()}\n".encode())
    return total.hexdigest()


def _max_context(config: Any, tokenizer: Any) -> int:
    """The longest sequence the model takes: its position limit, or the tokenizer's when that is smaller."""
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    limits = [value for attr in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")
              if isinstance(value := getattr(text_config, attr, None), int) and value > 0][:1]
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tokenizer_limit, int) and 0 < tokenizer_limit < 1_000_000:
        limits.append(tokenizer_limit)
    return min(limits) if limits else 2048


def _template_text(tokenizer: Any) -> str | None:
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):
        return json.dumps(template, sort_keys=True, ensure_ascii=False)
    return template if isinstance(template, str) else None


def load_model(model_dir: Path, name: str | None = None, dtype: str = "float32", device: str = "cpu") -> ServedModel:
    """Load a safetensors checkpoint for serving; a directory that is not one becomes an InputError."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise InputError(f"{model_dir}: not a directory (serve-model takes a Hugging Face model directory)")
    if not (model_dir / "config.json").is_file():
        raise InputError(f"{model_dir}: no config.json (is this a Hugging Face model directory?)")
    weights = sorted(model_dir.glob("*.safetensors"))
    if not weights:
        raise InputError(f"{model_dir}: no *.safetensors weights (simsa serves safetensors checkpoints only)")
    if dtype not in _DTYPES:
        raise InputError(f"dtype {dtype!r}: choose one of {', '.join(_DTYPES)}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=_DTYPES[dtype], use_safetensors=True)
        model.to(device)
    except Exception as exc:
        raise InputError(f"{model_dir}: cannot load the model ({type(exc).__name__}: {exc})") from exc
    model.eval()
    eos = model.generation_config.eos_token_id
    eos_ids = {*(eos if isinstance(eos, list) else [eos] if eos is not None else [])}
    if tokenizer.eos_token_id is not None:
        eos_ids.add(tokenizer.eos_token_id)
    pad_id = next((i for i in (tokenizer.pad_token_id, *sorted(eos_ids)) if i is not None), 0)
    # The request decides how to decode: sampling defaults shipped with a checkpoint must not leak into answers.
    model.generation_config = GenerationConfig(eos_token_id=sorted(eos_ids) or None, pad_token_id=pad_id,
                                               bos_token_id=model.generation_config.bos_token_id)
    return ServedModel(model=model, tokenizer=tokenizer, name=name or model_dir.resolve().name,
                       directory=model_dir.resolve(), sha256=weights_sha256(weights),
                       max_len=_max_context(model.config, tokenizer),
                       vocab=model.get_input_embeddings().weight.shape[0], eos_ids=frozenset(eos_ids), pad_id=pad_id,
                       chat_template=_template_text(tokenizer), device=torch.device(device))


# --------------------------------------------------------------------------- the worker


@dataclass
class ScoreSeq:
    """One prompt for one forward pass: which log-probs of it are wanted."""

    ids: list[int]
    top_k: int = 0
    prompt_rows: bool = False  # log-probs (and top-k) of every prompt token after the first
    next_token: bool = False  # the greedy next token, its log-prob and the top-k after the whole prompt


@dataclass
class ScoreResult:
    logprobs: list[float] = field(default_factory=list)  # of ids[1:], each given the tokens before it
    top: list[TopList] | None = None  # the top-k after each prefix ids[:i], i = 1..len-1
    next_id: int | None = None
    next_logprob: float | None = None
    next_top: TopList = field(default_factory=list)


@dataclass
class GenSpec:
    """One prompt to continue with `model.generate`."""

    ids: list[int]
    max_new: int
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    stops: list[str] = field(default_factory=list)
    top_logprobs: int = 0


@dataclass
class GenResult:
    ids: list[int]
    logprobs: list[float]
    top: list[TopList]
    stopped: bool  # ended by an end-of-sequence token or a stop string, not by max_tokens


@dataclass
class _Job:
    kind: Literal["score", "generate"]
    payload: Any
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


def _floor(values: torch.Tensor) -> torch.Tensor:
    return values.clamp_min(LOGPROB_FLOOR)


def _topk(rows: torch.Tensor, k: int) -> list[TopList]:
    if k <= 0:
        return [[] for _ in range(rows.shape[0])]
    values, ids = rows.topk(min(k, rows.shape[-1]), dim=-1)
    return [list(zip(i, v, strict=True)) for i, v in zip(ids.tolist(), _floor(values).tolist(), strict=True)]


def _log_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Float32 log-probs, as lm-eval's `hf` backend computes them; NaN means the model is broken, not the request."""
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    if torch.isnan(logprobs).any():
        raise FloatingPointError("the model produced NaN logits")
    return logprobs


class _StopOnText(StoppingCriteria):
    """Halts generation once a stop string appears in the text of the newest tokens."""

    def __init__(self, served: ServedModel, prompt_len: int, stops: list[str]) -> None:
        self.served = served
        self.prompt_len = prompt_len
        self.stops = stops
        self.window = 4 * max(len(s) for s in stops) + _OFFSET_WINDOW

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        tail = input_ids[0, self.prompt_len:][-self.window:].tolist()
        text = self.served.decode(tail)
        hit = any(stop in text for stop in self.stops)
        return torch.full((input_ids.shape[0],), hit, dtype=torch.bool, device=input_ids.device)


class ModelWorker:
    """The one thread that touches the model; scoring jobs that wait together share a padded forward pass."""

    def __init__(self, served: ServedModel, max_batch: int = 16) -> None:
        self.served = served
        self.max_batch = max(1, max_batch)
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._held: deque[_Job | None] = deque()
        self._closed = False
        self.stats = {"forward_passes": 0, "scored_sequences": 0, "largest_batch": 0, "generations": 0}
        self._thread = threading.Thread(target=self._run, name="simsa-model", daemon=True)
        self._thread.start()

    async def score(self, seqs: list[ScoreSeq]) -> list[ScoreResult]:
        return await self._submit("score", seqs)

    async def generate(self, spec: GenSpec) -> GenResult:
        return await self._submit("generate", spec)

    def queued(self) -> int:
        return self._queue.qsize() + len(self._held)

    def close(self, timeout: float = 30.0) -> None:
        """Finish the job in hand, refuse the rest, stop the thread."""
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout)

    async def _submit(self, kind: Literal["score", "generate"], payload: Any) -> Any:
        if self._closed:
            raise ApiError(503, "the server is shutting down", "shutting_down")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.put(_Job(kind, payload, loop, future))
        return await future

    def _next(self) -> _Job | None:
        return self._held.popleft() if self._held else self._queue.get()

    def _run(self) -> None:
        while (job := self._next()) is not None:
            if job.kind == "generate":
                self._run_generation(job)
            else:
                self._run_scoring(self._gather_scoring(job))
        for job in [*self._held, *_drain(self._queue)]:
            if job is not None:
                _resolve(job, error=ApiError(503, "the server is shutting down", "shutting_down"))

    def _gather_scoring(self, first: _Job) -> list[_Job]:
        """The scoring jobs already waiting, up to max_batch sequences; other jobs keep their turn."""
        jobs, count = [first], len(first.payload)
        while count < self.max_batch:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None or job.kind != "score":
                self._held.append(job)
                if job is None:
                    break
                continue
            jobs.append(job)
            count += len(job.payload)
        return jobs

    def _run_scoring(self, jobs: list[_Job]) -> None:
        """Longest first, cut into batches of similar length; a failed batch fails only its own jobs."""
        flat = [(n, k, seq) for n, job in enumerate(jobs) for k, seq in enumerate(job.payload)]
        flat.sort(key=lambda item: -len(item[2].ids))
        results: list[list[ScoreResult | None]] = [[None] * len(job.payload) for job in jobs]
        errors: dict[int, BaseException] = {}
        for group in self._batches([len(item[2].ids) for item in flat]):
            members = [flat[i] for i in group]
            try:
                outs = self._forward([seq for _, _, seq in members])
            except Exception as exc:
                log.exception("scoring failed")
                for n, _, _ in members:
                    errors[n] = _model_failure(exc)
                continue
            for (n, k, _), out in zip(members, outs, strict=True):
                results[n][k] = out
        for n, job in enumerate(jobs):
            _resolve(job, result=None if n in errors else results[n], error=errors.get(n))

    def _batches(self, lengths: list[int]) -> list[range]:
        """Consecutive runs of the (descending) lengths that fit max_batch and the logits budget."""
        budget = max(1, LOGIT_BUDGET // max(1, self.served.vocab))
        groups, start = [], 0
        while start < len(lengths):
            end = start + 1
            while end < len(lengths) and end - start < self.max_batch and (end - start + 1) * lengths[start] <= budget:
                end += 1
            groups.append(range(start, end))
            start = end
        return groups

    def _forward(self, seqs: list[ScoreSeq]) -> list[ScoreResult]:
        """One right-padded forward pass; without padding no mask is passed, exactly as lm-eval's `hf` does."""
        width = max(len(seq.ids) for seq in seqs)
        ids = torch.full((len(seqs), width), self.served.pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, seq in enumerate(seqs):
            ids[row, : len(seq.ids)] = torch.tensor(seq.ids, dtype=torch.long)
            mask[row, : len(seq.ids)] = 1
        padded = any(len(seq.ids) != width for seq in seqs)
        with torch.inference_mode():
            logits = self.served.model(input_ids=ids.to(self.served.device),
                                       attention_mask=mask.to(self.served.device) if padded else None,
                                       use_cache=False).logits
            outs = [self._read(logits[row, : len(seq.ids)], seq) for row, seq in enumerate(seqs)]
        self.stats["forward_passes"] += 1
        self.stats["scored_sequences"] += len(seqs)
        self.stats["largest_batch"] = max(self.stats["largest_batch"], len(seqs))
        return outs

    def _read(self, logits: torch.Tensor, seq: ScoreSeq) -> ScoreResult:
        logprobs = _log_softmax(logits)
        out = ScoreResult()
        if seq.prompt_rows and len(seq.ids) > 1:
            target = torch.tensor(seq.ids[1:], dtype=torch.long, device=logprobs.device).unsqueeze(1)
            out.logprobs = _floor(logprobs[:-1].gather(1, target).squeeze(1)).tolist()
            out.top = _topk(logprobs[:-1], seq.top_k)
        if seq.next_token:
            last = logprobs[-1]
            out.next_id = int(torch.argmax(last))
            out.next_logprob = float(_floor(last[out.next_id]))
            out.next_top = _topk(last.unsqueeze(0), seq.top_k)[0]
        return out

    def _run_generation(self, job: _Job) -> None:
        try:
            result = self._generate(job.payload)
        except Exception as exc:
            log.exception("generation failed")
            _resolve(job, error=_model_failure(exc))
        else:
            _resolve(job, result=result)

    def _generate(self, spec: GenSpec) -> GenResult:
        sample = spec.temperature > 0
        sampling = {"temperature": spec.temperature, "top_p": spec.top_p, "top_k": spec.top_k} if sample else {}
        config = GenerationConfig(max_new_tokens=spec.max_new, do_sample=sample, num_beams=1, repetition_penalty=1.0,
                                  eos_token_id=sorted(self.served.eos_ids) or None, pad_token_id=self.served.pad_id,
                                  return_dict_in_generate=True, output_logits=True, **sampling)
        if sample:
            torch.manual_seed(spec.seed % (1 << 63) if spec.seed is not None else secrets.randbits(63))
        prompt = torch.tensor([spec.ids], dtype=torch.long, device=self.served.device)
        stopping = StoppingCriteriaList([_StopOnText(self.served, len(spec.ids), spec.stops)] if spec.stops else [])
        with torch.inference_mode():
            out = self.served.model.generate(prompt, attention_mask=torch.ones_like(prompt), generation_config=config,
                                             stopping_criteria=stopping)
            new = out.sequences[0, len(spec.ids):].tolist()
            chosen, top = self._step_logprobs(out.logits, new, spec.top_logprobs)
        self.stats["generations"] += 1
        ended = len(new) < spec.max_new or bool(new and new[-1] in self.served.eos_ids)
        return GenResult(new, chosen, top, stopped=ended)

    @staticmethod
    def _step_logprobs(steps: Sequence[torch.Tensor], new: list[int], k: int) -> tuple[list[float], list[TopList]]:
        """Log-probs of the generated tokens under the model's raw distribution (before temperature or top-p)."""
        if not new:
            return [], []
        logprobs = _log_softmax(torch.cat([step[:1] for step in steps]))
        target = torch.tensor(new, dtype=torch.long, device=logprobs.device).unsqueeze(1)
        return _floor(logprobs.gather(1, target).squeeze(1)).tolist(), _topk(logprobs, k)


def _drain(q: queue.Queue[Any]) -> list[Any]:
    """Whatever is left in a queue, without blocking."""
    items = []
    while True:
        try:
            items.append(q.get_nowait())
        except queue.Empty:
            return items


def _model_failure(exc: BaseException) -> ApiError:
    return ApiError(500, f"the model failed on this request: {type(exc).__name__}: {exc}", "model_error")


def _resolve(job: _Job, result: Any = None, error: BaseException | None = None) -> None:
    """Hand a result to the waiting request on its event loop (a client that went away is simply skipped)."""

    def settle() -> None:
        if job.future.done():
            return
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(result)

    with contextlib.suppress(RuntimeError):  # the loop is closed: the server has stopped
        job.loop.call_soon_threadsafe(settle)


# --------------------------------------------------------------------------- planning requests


@dataclass
class PromptPlan:
    """What one prompt of a completions request needs from the worker."""

    ids: list[int]
    text: str | None  # the prompt as the client sent it, when it was text
    score: ScoreSeq | None = None
    gen: GenSpec | None = None


def _stops(stop: str | list[str] | None) -> list[str]:
    return [s for s in ([stop] if isinstance(stop, str) else stop or []) if s]


def _check_ids(served: ServedModel, ids: list[int], max_new: int) -> None:
    """Empty prompts, unknown token ids and prompts that do not fit the context are the client's error (400)."""
    if not ids:
        raise ApiError(400, "the prompt is empty (it has no tokens)", "empty_prompt")
    bad = next((i for i in ids if not 0 <= i < served.vocab), None)
    if bad is not None:
        raise ApiError(400, f"token id {bad} is outside the vocabulary (0..{served.vocab - 1})", "invalid_token_id")
    needed = len(ids) + max(max_new, 1) - 1  # the last generated token is never fed back
    if needed > served.max_len:
        raise ApiError(400, f"this model's maximum context length is {served.max_len} tokens; the request needs "
                            f"{needed} ({len(ids)} in the prompt, {max_new} to generate)", "context_length_exceeded")


def _prompts(served: ServedModel, req: CompletionRequest) -> list[tuple[list[int], str | None]]:
    prompt = req.prompt
    if isinstance(prompt, str):
        return [(served.encode(prompt, bool(req.add_special_tokens)), prompt)]
    if not prompt:
        raise ApiError(400, "prompt is an empty list", "empty_prompt")
    if isinstance(prompt[0], str):
        return [(served.encode(text, bool(req.add_special_tokens)), text) for text in prompt]  # type: ignore[arg-type]
    if isinstance(prompt[0], int):
        return [(list(prompt), None)]  # type: ignore[arg-type]
    return [(list(ids), None) for ids in prompt]  # type: ignore[union-attr]


def plan_completion(served: ServedModel, req: CompletionRequest) -> list[PromptPlan]:
    """Tokenize and validate every prompt; one forward pass answers scoring, `generate` answers the rest."""
    _refuse_unsupported(req)
    max_new = DEFAULT_COMPLETION_TOKENS if req.max_tokens is None else req.max_tokens
    temperature = 1.0 if req.temperature is None else req.temperature
    k = req.logprobs
    plans = []
    for ids, text in _prompts(served, req):
        _check_ids(served, ids, max_new)
        plan = PromptPlan(ids, text)
        want_prompt = bool(req.echo) and k is not None
        if max_new == 0 or (max_new == 1 and temperature == 0):
            plan.score = ScoreSeq(ids, top_k=k or 0, prompt_rows=want_prompt, next_token=max_new == 1)
        else:
            plan.gen = _gen_spec(ids, max_new, req, temperature, k or 0)
            plan.score = ScoreSeq(ids, top_k=k or 0, prompt_rows=True) if want_prompt else None
        plans.append(plan)
    return plans


def _gen_spec(ids: list[int], max_new: int, req: _Sampling, temperature: float, top_logprobs: int) -> GenSpec:
    return GenSpec(ids, max_new, temperature=temperature, top_p=1.0 if req.top_p is None else req.top_p,
                   top_k=max(0, req.top_k or 0), seed=req.seed, stops=_stops(req.stop), top_logprobs=top_logprobs)


def plan_chat(served: ServedModel, req: ChatRequest) -> GenSpec:
    """Messages through the tokenizer's chat template (with the generation prompt), then `generate`."""
    _refuse_unsupported(req)
    if served.chat_template is None:
        raise ApiError(400, f"model {served.name!r} has no chat template; use /v1/completions", "no_chat_template")
    messages = [{"role": m.role, "content": _message_text(m)} for m in req.messages]
    try:
        with served.tok_lock:
            text = served.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except Exception as exc:
        raise ApiError(400, f"the chat template refused these messages: {exc}", "invalid_messages") from None
    ids = served.encode(text, add_special_tokens=False)  # the template already wrote any BOS
    max_new = req.max_tokens if req.max_tokens is not None else req.max_completion_tokens
    if max_new is None:
        max_new = max(1, served.max_len - len(ids))
    if max_new < 1:
        raise ApiError(400, "max_tokens must be at least 1 for chat completions", "invalid_request")
    _check_ids(served, ids, max_new)
    temperature = 1.0 if req.temperature is None else req.temperature
    return _gen_spec(ids, max_new, req, temperature, (req.top_logprobs or 0) if req.logprobs else 0)


def _message_text(message: ChatMessage) -> str | None:
    if message.content is None or isinstance(message.content, str):
        return message.content
    if any(part.type != "text" or part.text is None for part in message.content):
        raise ApiError(400, "only text content parts are supported", "unsupported")
    return "".join(part.text or "" for part in message.content)


# --------------------------------------------------------------------------- rendering answers


def _text_offsets(served: ServedModel, ids: list[int]) -> list[int]:
    """Where each token's text starts: how much text a token adds, measured against a short left context."""
    windows: list[list[int]] = []
    for i in range(len(ids)):
        start = max(0, i - _OFFSET_WINDOW)
        windows += [ids[start: i + 1], ids[start:i]]
    texts = served.decode_each(windows) if windows else []
    offsets, position = [], 0
    for i in range(len(ids)):
        offsets.append(position)
        position += max(0, len(texts[2 * i]) - len(texts[2 * i + 1]))
    return offsets


def _token_strings(served: ServedModel, ids: list[int], tops: list[TopList | None]) -> dict[int, str]:
    wanted = sorted({*ids, *(i for top in tops if top for i, _ in top)})
    return dict(zip(wanted, served.decode_each([[i] for i in wanted]), strict=True))


def _top_dict(top: TopList | None, strings: dict[int, str]) -> dict[str, float] | None:
    """OpenAI keys top log-probs by token text; when two tokens share a text the likelier one is kept."""
    if top is None:
        return None
    out: dict[str, float] = {}
    for token_id, logprob in top:
        out.setdefault(strings[token_id], logprob)
    return out


def _completion_logprobs(served: ServedModel, ids: list[int], logprobs: list[float | None],
                         tops: list[TopList | None]) -> dict[str, Any]:
    strings = _token_strings(served, ids, tops)
    return {"tokens": [strings[i] for i in ids], "token_logprobs": logprobs,
            "top_logprobs": [_top_dict(top, strings) for top in tops], "text_offset": _text_offsets(served, ids)}


def _generated_text(served: ServedModel, ids: list[int], stops: list[str]) -> tuple[str, bool]:
    """The continuation as lm-eval's `hf` backend reads it: special tokens dropped, cut at the first stop string."""
    body = ids[:-1] if ids and ids[-1] in served.eos_ids else ids
    text = served.decode(body, skip_special_tokens=True)
    cuts = [text.find(stop) for stop in stops if stop in text]
    return (text[: min(cuts)], True) if cuts else (text, False)


def _continuation(served: ServedModel, score: ScoreResult | None,
                  gen: GenResult | None) -> tuple[list[int], list[float], list[TopList], bool]:
    """The generated tokens: from `generate`, or the one greedy token a scoring pass picked, or none."""
    if gen is not None:
        return gen.ids, gen.logprobs, gen.top, gen.stopped
    if score is not None and score.next_id is not None and score.next_logprob is not None:
        return [score.next_id], [score.next_logprob], [score.next_top], score.next_id in served.eos_ids
    return [], [], [], False


def _with_prompt(plan: PromptPlan, score: ScoreResult | None, ids: list[int], lps: list[float],
                 tops: list[TopList]) -> tuple[list[int], list[float | None], list[TopList | None]]:
    """Prepend the echoed prompt's log-probs; its first token has none (null), as in OpenAI's API."""
    if score is None:
        return list(ids), list(lps), list(tops)
    prompt_tops = score.top if score.top is not None else [[] for _ in score.logprobs]
    return plan.ids + ids, [None, *score.logprobs, *lps], [None, *prompt_tops, *tops]


def render_completion(served: ServedModel, req: CompletionRequest, plans: list[PromptPlan],
                      scores: list[ScoreResult | None], gens: list[GenResult | None]) -> dict[str, Any]:
    """The OpenAI completions body; with echo the text and log-probs start with the prompt (its first is null)."""
    stops = _stops(req.stop)
    choices, completion_tokens = [], 0
    for index, (plan, score, gen) in enumerate(zip(plans, scores, gens, strict=True)):
        new_ids, new_lps, new_tops, stopped = _continuation(served, score, gen)
        new_text, cut = _generated_text(served, new_ids, stops)
        prompt_text = plan.text if plan.text is not None else served.decode(plan.ids)
        choice: dict[str, Any] = {"index": index, "text": (prompt_text if req.echo else "") + new_text,
                                  "logprobs": None, "finish_reason": "stop" if stopped or cut else "length"}
        if req.logprobs is not None:
            ids, lps, tops = _with_prompt(plan, score if req.echo else None, new_ids, new_lps, new_tops)
            choice["logprobs"] = _completion_logprobs(served, ids, lps, tops)
        choices.append(choice)
        completion_tokens += len(new_ids)
    prompt_tokens = sum(len(plan.ids) for plan in plans)
    return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
            "model": served.name, "choices": choices,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}


def _chat_token(text: str, logprob: float) -> dict[str, Any]:
    return {"token": text, "logprob": logprob, "bytes": list(text.encode("utf-8"))}


def render_chat(served: ServedModel, req: ChatRequest, spec: GenSpec, gen: GenResult) -> dict[str, Any]:
    """The OpenAI chat completion body, with `usage` and, when asked, per-token log-probs."""
    text, cut = _generated_text(served, gen.ids, spec.stops)
    logprobs = None
    if req.logprobs:
        strings = _token_strings(served, gen.ids, list(gen.top))
        logprobs = {"content": [{**_chat_token(strings[i], lp),
                                 "top_logprobs": [_chat_token(strings[t], tlp) for t, tlp in top]}
                                for i, lp, top in zip(gen.ids, gen.logprobs, gen.top, strict=True)]}
    choice = {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": logprobs,
              "finish_reason": "stop" if gen.stopped or cut else "length"}
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": served.name, "choices": [choice],
            "usage": {"prompt_tokens": len(spec.ids), "completion_tokens": len(gen.ids),
                      "total_tokens": len(spec.ids) + len(gen.ids)}}


# --------------------------------------------------------------------------- the app


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
        gate.authorize(request)
        req = await run_in_threadpool(_parse, ChatRequest, await gate.read_body(request))
        served.check_model(req.model)
        spec = await run_in_threadpool(plan_chat, served, req)
        gen = await worker.generate(spec)
        return await _respond(render_chat, served, req, spec, gen)

    return app
