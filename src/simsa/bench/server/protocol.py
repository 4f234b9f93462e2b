"""The request bodies of /v1/completions and /v1/chat/completions, their parsing and the options refused.

Chat completions may be streamed (`stream: true`, with `stream_options.include_usage` for a last usage chunk);
completions are not: the benchmark clients that use them read whole answers.
"""

from __future__ import annotations

import json
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simsa.bench.server.errors import ApiError

MAX_TOP_LOGPROBS = 20
_PROMPT_SHAPE = "prompt must be a string, a list of strings, a list of token ids or a list of lists of token ids"


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


class StreamOptions(_Body):
    include_usage: bool | None = False


class ChatRequest(_Sampling):
    """POST /v1/chat/completions."""

    messages: list[ChatMessage] = Field(min_length=1)
    stream_options: StreamOptions | None = None
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
    if req.stream and not isinstance(req, ChatRequest):
        raise ApiError(400, "stream is supported on /v1/chat/completions only", "unsupported")
    if req.stream and isinstance(req, ChatRequest) and req.logprobs:
        raise ApiError(400, "logprobs are not streamed: ask without stream for them", "unsupported")
    if req.presence_penalty or req.frequency_penalty or req.logit_bias:
        raise ApiError(400, "presence_penalty, frequency_penalty and logit_bias are not supported", "unsupported")
