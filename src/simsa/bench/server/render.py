"""Rendering answers: the OpenAI completions and chat completion bodies, with log-probs when asked, and the
chunks of a streamed chat completion."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from simsa.bench.chat import IncrementalText
from simsa.bench.server.errors import ApiError
from simsa.bench.server.model import ServedModel
from simsa.bench.server.plans import PromptPlan, _stops
from simsa.bench.server.protocol import ChatRequest, CompletionRequest
from simsa.bench.server.worker import _OFFSET_WINDOW, GenResult, GenSpec, ScoreResult, TopList


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


class ChatStream:
    """The Server-Sent Events of one streamed chat completion, in OpenAI's `chat.completion.chunk` format: a first
    chunk with the role, one per piece of text, one with the finish reason, the usage chunk when
    `stream_options.include_usage` asks for it, then `data: [DONE]`.

    The text is decoded whole after every step and sent through `IncrementalText`, so the pieces add up to exactly
    the text the same request gets without `stream` (`render_chat`).
    """

    def __init__(self, served: ServedModel, req: ChatRequest, spec: GenSpec) -> None:
        self.served = served
        self.spec = spec
        self.usage = bool(req.stream_options and req.stream_options.include_usage)
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.ids: list[int] = []
        self.text = IncrementalText(spec.stops)

    def start(self) -> bytes:
        return self._chunk({"role": "assistant", "content": ""})

    def step(self, new_ids: list[int]) -> bytes:
        """The chunk for a step's new tokens (nothing while their text is held back)."""
        self.ids += new_ids
        body = self.ids[:-1] if self.ids and self.ids[-1] in self.served.eos_ids else self.ids
        piece = self.text.update(self.served.decode(body, skip_special_tokens=True))
        return self._chunk({"content": piece}) if piece else b""

    def finish(self, gen: GenResult) -> bytes:
        text, cut = _generated_text(self.served, gen.ids, self.spec.stops)
        piece = self.text.finish(text)
        out = self._chunk({"content": piece}) if piece else b""
        out += self._chunk({}, finish_reason="stop" if gen.stopped or cut else "length")
        if self.usage:
            usage = {"prompt_tokens": len(self.spec.ids), "completion_tokens": len(gen.ids),
                     "total_tokens": len(self.spec.ids) + len(gen.ids)}
            out += _event({**self._head(), "choices": [], "usage": usage})
        return out + b"data: [DONE]\n\n"

    def error(self, exc: BaseException) -> bytes:
        """A failure after the response began: an error object in the stream (the status is already sent)."""
        status, message, code = (exc.status, exc.message, exc.code) if isinstance(exc, ApiError) else \
            (500, f"internal server error ({type(exc).__name__})", "internal_error")
        kind = "server_error" if status >= 500 else "invalid_request_error"
        return _event({"error": {"message": message, "type": kind, "param": None, "code": code}})

    def _head(self) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.served.name}

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        body: dict[str, Any] = {**self._head(), "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                                             "finish_reason": finish_reason}]}
        if self.usage:
            body["usage"] = None
        return _event(body)


def _event(body: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode() + b"\n\n"
