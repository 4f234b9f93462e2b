"""Planning requests: tokenized, validated prompts and what each needs from the worker."""

from __future__ import annotations

from dataclasses import dataclass

from simsa.bench.server.errors import ApiError
from simsa.bench.server.model import ServedModel
from simsa.bench.server.protocol import ChatMessage, ChatRequest, CompletionRequest, _refuse_unsupported, _Sampling
from simsa.bench.server.worker import GenSpec, ScoreSeq

DEFAULT_COMPLETION_TOKENS = 16  # OpenAI's default max_tokens for /v1/completions


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
        return [(served.encode(text, bool(req.add_special_tokens)), text) for text in prompt]
    if isinstance(prompt[0], int):
        return [(list(prompt), None)]
    return [(list(ids), None) for ids in prompt]


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
