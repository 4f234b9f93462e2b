"""Chat clients: how candidate models answer questions and how judge models are asked for verdicts.

Two clients share one protocol. `OpenAIChatClient` talks to any OpenAI-compatible server (`simsa serve-model`, vLLM,
a hosted API) with bounded concurrency, a shared rate limit and retries that survive overloaded servers.
`HFChatClient` generates in-process with transformers, for small models and for the tests. Both describe themselves
with `identity()`, which goes into cache keys and manifests: a cached answer is reused only for the same model
(by weight hash where known), endpoint and settings. Both can also `stream` an answer as `Delta`s while it is
generated (the arena shows battles' answers that way); the pieces add up to what `complete` returns.
"""

from __future__ import annotations

import email.utils
import json
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from simsa.bench.identity import weights_sha256
from simsa.bench.ratelimit import TokenBucket
from simsa.errors import SimsaError

Progress = Callable[[int, int], None]
Messages = list[dict[str, str]]

RETRY_STATUSES = frozenset({408, 429})  # plus every 5xx
RETRY_AFTER_MAX = 60.0  # seconds; a server asking for longer is waited on for this long, then tried again


@dataclass(frozen=True)
class GenSettings:
    """Decoding settings; part of every cache key, so a change of settings never reuses old answers."""

    max_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 1234
    stop: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"max_tokens": self.max_tokens, "temperature": self.temperature, "top_p": self.top_p,
                "seed": self.seed, "stop": list(self.stop)}


@dataclass(frozen=True)
class ChatResult:
    """One completion. Token counts are None when the backend does not report them."""

    text: str
    finish_reason: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChatResult:
        return cls(text=str(data["text"]), finish_reason=str(data.get("finish_reason") or ""),
                   prompt_tokens=data.get("prompt_tokens"), completion_tokens=data.get("completion_tokens"))


@dataclass(frozen=True)
class Delta:
    """A piece of an answer as it is generated. The last delta of a stream has `finish_reason` set (and the
    completion's token count where the backend reports it); its text may be empty."""

    text: str
    finish_reason: str | None = None
    completion_tokens: int | None = None


@runtime_checkable
class ChatClient(Protocol):
    """What the judge runner needs from a model: a stable description and completions in input order."""

    def identity(self) -> dict[str, Any]: ...

    def complete(self, messages: Messages, settings: GenSettings) -> ChatResult: ...

    def complete_many(self, items: list[Messages], settings: GenSettings,
                      progress: Progress | None = None) -> list[ChatResult]: ...


class ChatRequestError(SimsaError):
    """A chat server refused a request or stayed unreachable after every retry."""

    exit_code = 1

    def __init__(self, url: str, status: int | None, message: str, attempts: int) -> None:
        self.url = url
        self.status = status
        self.attempts = attempts
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        super().__init__(f"POST {url} failed{tries}: {message}")


def truncate_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut `text` at the earliest stop string (the stop string itself is dropped, as OpenAI servers do)."""
    cuts = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return (text[:min(cuts)], True) if cuts else (text, False)


class IncrementalText:
    """What of a growing decoded answer can be sent now, so that the pieces sent add up to the final text.

    Each update gets the whole text decoded so far. Held back: a trailing incomplete character (U+FFFD, which the
    next token's bytes may complete), trailing whitespace (a tokenizer may join it with what follows), and the last
    characters that could begin a stop string; a stop string that has appeared cuts the text there. `finish` sends
    the rest of the final text.
    """

    def __init__(self, stops: Sequence[str] = ()) -> None:
        self.stops = [s for s in stops if s]
        self._hold = max((len(s) for s in self.stops), default=1) - 1
        self.sent = ""
        self.stopped = False  # a stop string has appeared: generating more is wasted

    def update(self, text: str) -> str:
        """The new piece that may be sent for `text`, the whole decoded answer so far ("" when none)."""
        cut, self.stopped = truncate_at_stop(text, self.stops)
        ready = cut[: max(0, min(len(cut), len(text) - self._hold))]
        while ready and (ready[-1] == "\ufffd" or ready[-1].isspace()):
            ready = ready[:-1]
        if len(ready) <= len(self.sent) or not ready.startswith(self.sent):
            return ""
        piece, self.sent = ready[len(self.sent):], ready
        return piece

    def finish(self, final: str) -> str:
        """The rest of the final text. Should the final text not continue what was sent (a tokenizer whose earlier
        text changes with later tokens), what follows the part both share is sent again."""
        common = len(self.sent)
        if not final.startswith(self.sent):
            common = next(i for i, (a, b) in enumerate(zip(self.sent + "\0", final + "\1", strict=False)) if a != b)
        piece, self.sent = final[common:], final
        return piece


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: a number of seconds (fractions tolerated) or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _message_text(message: dict[str, Any]) -> str:
    """The assistant text; reasoning a server returns separately (`reasoning_content`) is put back in <think> tags
    so extraction treats every backend alike."""
    content = message.get("content") or ""
    if isinstance(content, list):  # content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    reasoning = message.get("reasoning_content") or message.get("reasoning") or ""
    return f"<think>{reasoning}</think>{content}" if isinstance(reasoning, str) and reasoning else str(content)


class OpenAIChatClient:
    """An OpenAI-compatible `/chat/completions` endpoint, called from a thread pool.

    Connection errors, timeouts, 408, 429 and 5xx are retried with exponential backoff and jitter (a 429/503's
    Retry-After is honoured); other 4xx fail at once. `rate_limit_rps` bounds the request rate of all threads
    together, retries included.
    """

    def __init__(self, base_url: str, model: str, api_key: str | None = None, concurrency: int = 4,
                 timeout: float = 60.0, max_retries: int = 5, backoff_base: float = 0.5, backoff_max: float = 8.0,
                 rate_limit_rps: float | None = None) -> None:
        import httpx

        self.base_url = base_url.rstrip("/")
        self.model = model
        self.concurrency = max(1, concurrency)
        self.timeout = timeout
        self.max_retries = max(0, max_retries)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.limiter = TokenBucket(rate_limit_rps) if rate_limit_rps else None
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        limits = httpx.Limits(max_connections=self.concurrency + 1, max_keepalive_connections=self.concurrency + 1)
        self._http = httpx.Client(timeout=httpx.Timeout(timeout), headers=headers, limits=limits)
        self._jitter = random.Random()
        self._lock = threading.Lock()
        self._identity: dict[str, Any] | None = None
        self.requests = 0  # HTTP attempts on /chat/completions
        self.retries = 0

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OpenAIChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def identity(self) -> dict[str, Any]:
        """kind, base_url, model and the weights' sha256 when the server publishes one (`simsa serve-model` does,
        under `data[].simsa.sha256` of `/models`); asked once, absent or unreachable means None."""
        with self._lock:
            if self._identity is None:
                self._identity = {"kind": "openai", "base_url": self.base_url, "model": self.model,
                                  "sha256": self._served_sha256()}
            return dict(self._identity)

    def _served_sha256(self) -> str | None:
        try:
            resp = self._http.get(f"{self.base_url}/models")
            if resp.status_code != 200:
                return None
            for entry in resp.json().get("data") or []:
                if isinstance(entry, dict) and entry.get("id") == self.model:
                    sha = (entry.get("simsa") or {}).get("sha256")
                    return sha if isinstance(sha, str) and sha else None
        except Exception:  # any failure only means "not known"
            return None
        return None

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, RETRY_AFTER_MAX)
        ceiling = min(self.backoff_max, self.backoff_base * (2 ** attempt))
        with self._lock:
            return ceiling / 2 + self._jitter.uniform(0, ceiling / 2)  # "equal jitter": never less than half

    def _payload(self, messages: Messages, settings: GenSettings, **extra: Any) -> dict[str, Any]:
        payload: dict[str, Any] = {"model": self.model, "messages": messages, "max_tokens": settings.max_tokens,
                                   "temperature": settings.temperature, "top_p": settings.top_p,
                                   "seed": settings.seed, **extra}
        if settings.stop:
            payload["stop"] = list(settings.stop)
        return payload

    def complete(self, messages: Messages, settings: GenSettings) -> ChatResult:
        url = f"{self.base_url}/chat/completions"
        payload = self._payload(messages, settings)
        resp, _attempts = self._post(url, lambda: self._http.post(url, json=payload))
        return self._parse(url, resp)

    def _parse(self, url: str, resp: Any) -> ChatResult:
        try:
            body = resp.json()
            choice = body["choices"][0]
            text = _message_text(choice["message"])
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ChatRequestError(url, resp.status_code, f"malformed response ({exc!r}): {resp.text[:200]}",
                                   1) from None
        usage = body.get("usage") or {}
        return ChatResult(text=text, finish_reason=str(choice.get("finish_reason") or ""),
                          prompt_tokens=usage.get("prompt_tokens"), completion_tokens=usage.get("completion_tokens"))

    def stream(self, messages: Messages, settings: GenSettings) -> Iterator[Delta]:
        """The answer while it is generated (`stream: true`, Server-Sent Events), as deltas; the last one has the
        finish reason and the token count (asked for with `stream_options.include_usage`).

        A failure before the answer starts (connection, timeout, 408, 429, 5xx) is retried as `complete` retries
        it; once the server has answered, a failure is raised, since a retry would repeat what was already shown.
        `timeout` bounds each wait for the next bytes. Closing the iterator closes the connection, which tells the
        server to stop generating.
        """
        url = f"{self.base_url}/chat/completions"
        payload = self._payload(messages, settings, stream=True, stream_options={"include_usage": True})
        resp, attempts = self._open_stream(url, payload)
        try:
            yield from self._stream_deltas(url, resp, attempts)
        finally:
            resp.close()

    def _open_stream(self, url: str, payload: dict[str, Any]) -> tuple[Any, int]:
        """A streaming response whose status is 2xx, after the same retries as `complete`."""
        return self._post(url, lambda: self._http.send(self._http.build_request("POST", url, json=payload),
                                                       stream=True))

    def _post(self, url: str, send: Callable[[], Any]) -> tuple[Any, int]:
        """`send()`'s 2xx response and the attempts it took. Connection errors, timeouts, 408, 429 and 5xx are
        retried with backoff (a Retry-After is honoured); other statuses fail at once with the server's words."""
        import httpx

        attempt = 0
        while True:
            if self.limiter:
                self.limiter.acquire()
            with self._lock:
                self.requests += 1
            status: int | None = None
            retry_after: float | None = None
            try:
                resp = send()
            except httpx.TimeoutException:
                problem = f"timed out after {self.timeout:g} s"
            except httpx.TransportError as exc:
                problem = f"connection failed ({type(exc).__name__}: {exc})"
            else:
                status = resp.status_code
                if 200 <= status < 300:
                    return resp, attempt + 1
                try:
                    resp.read()  # a streamed response's body is not read yet
                    problem = f"HTTP {status}: {resp.text[:300].strip()}"
                except httpx.HTTPError as exc:
                    problem = f"HTTP {status} ({type(exc).__name__} reading the error)"
                finally:
                    resp.close()
                if status not in RETRY_STATUSES and status < 500:
                    raise ChatRequestError(url, status, problem, attempt + 1)
                retry_after = _retry_after(resp.headers.get("Retry-After"))
            if attempt >= self.max_retries:
                raise ChatRequestError(url, status, problem, attempt + 1)
            delay = self._backoff(attempt, retry_after)
            with self._lock:
                self.retries += 1
            time.sleep(delay)
            attempt += 1

    def _stream_deltas(self, url: str, resp: Any, attempts: int) -> Iterator[Delta]:
        """Read `chat.completion.chunk` events up to `data: [DONE]`; reasoning a server streams apart is wrapped
        in <think> tags, as `complete` does."""
        import httpx

        finish: str | None = None
        tokens: int | None = None
        thinking = False
        done = False
        try:
            for event in _sse_data(resp.iter_lines()):
                if event == "[DONE]":
                    done = True
                    break
                chunk = _chunk(url, resp.status_code, event, attempts)
                usage = chunk.get("usage")
                if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
                    tokens = usage["completion_tokens"]
                for choice in chunk.get("choices") or []:
                    if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                        continue
                    delta = choice.get("delta") or {}
                    reasoning = delta.get("reasoning_content") or delta.get("reasoning") or ""
                    content = delta.get("content") or ""
                    text = ""
                    if isinstance(reasoning, str) and reasoning:
                        text += ("" if thinking else "<think>") + reasoning
                        thinking = True
                    if isinstance(content, str) and content:
                        text += ("</think>" if thinking else "") + content
                        thinking = False
                    if text:
                        yield Delta(text)
                    if choice.get("finish_reason"):
                        finish = str(choice["finish_reason"])
        except httpx.TimeoutException:
            raise ChatRequestError(url, resp.status_code, f"the answer stalled (no data for {self.timeout:g} s)",
                                   attempts) from None
        except httpx.TransportError as exc:
            raise ChatRequestError(url, resp.status_code, f"the answer broke off ({type(exc).__name__}: {exc})",
                                   attempts) from None
        if not done and finish is None:
            raise ChatRequestError(url, resp.status_code, "the stream ended before the answer was complete",
                                   attempts)
        yield Delta("</think>" if thinking else "", finish_reason=finish or "", completion_tokens=tokens)

    def complete_many(self, items: list[Messages], settings: GenSettings,
                      progress: Progress | None = None) -> list[ChatResult]:
        """All completions, in input order; the first failure cancels what has not started and is raised."""
        results: list[ChatResult | None] = [None] * len(items)
        if not items:
            return []
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(items))) as pool:
            futures = {pool.submit(self.complete, m, settings): i for i, m in enumerate(items)}
            pending = set(futures)
            done_count = 0
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for fut in done:
                    exc = fut.exception()
                    if exc is not None:
                        for other in pending:
                            other.cancel()
                        raise exc
                    results[futures[fut]] = fut.result()
                    done_count += 1
                if progress:
                    progress(done_count, len(items))
        return [r for r in results if r is not None]


def _sse_data(lines: Iterator[str]) -> Iterator[str]:
    """The data of each Server-Sent Event (its `data:` lines joined); comments and other fields are skipped."""
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        field_name, _, value = line.partition(":")
        if field_name == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)


def _chunk(url: str, status: int, event: str, attempts: int) -> dict[str, Any]:
    """One streamed chunk; an error the server sends inside the stream is raised."""
    try:
        chunk = json.loads(event)
    except ValueError:
        raise ChatRequestError(url, status, f"malformed stream event: {event[:200]}", attempts) from None
    if not isinstance(chunk, dict):
        raise ChatRequestError(url, status, f"malformed stream event: {event[:200]}", attempts)
    error = chunk.get("error")
    if error:
        message = error.get("message") if isinstance(error, dict) else error
        raise ChatRequestError(url, status, f"the server failed while answering: {str(message)[:300]}", attempts)
    return chunk


class _TokenPipe:
    """A `generate` streamer that hands each step's new token ids to another thread (the prompt is skipped)."""

    def __init__(self, out: queue.Queue[list[int] | None]) -> None:
        self.out = out
        self.prompt_seen = False

    def put(self, value: Any) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        self.out.put([int(i) for i in value.reshape(-1).tolist()])

    def end(self) -> None:
        """The generating thread signals the end itself, after `generate` returns or fails."""


class HFChatClient:
    """In-process generation with transformers: the chat template, greedy decoding at temperature 0 and seeded
    sampling otherwise; stop strings are honoured by truncating the decoded text. Calls run one at a time."""

    def __init__(self, model_dir: str | Path, device: str = "cpu", dtype: str = "float32") -> None:
        """`dtype`: a torch dtype name ("float32", "bfloat16") or "auto" (the checkpoint's own)."""
        self.model_dir = Path(model_dir)
        self.device = device
        self.dtype = dtype
        self._model: Any = None
        self._tokenizer: Any = None
        self._identity: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def identity(self) -> dict[str, Any]:
        if self._identity is None:
            self._identity = {"kind": "hf", "model": self.model_dir.name,
                              "sha256": weights_sha256(self.model_dir), "device": self.device,
                              "dtype": self.dtype}
        return dict(self._identity)

    def _load(self) -> None:
        if self._model is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        dtype = "auto" if self.dtype == "auto" else getattr(torch, self.dtype)
        model = AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=dtype)
        self._model = model.to(self.device).eval()  # type: ignore[arg-type]  # transformers' .to loses `self`

    def _prepare(self, messages: Messages,
                 settings: GenSettings) -> tuple[Any, Any, dict[str, Any], dict[str, Any], set[int]]:
        """Tokenizer, model, the chat prompt's tensors, `generate`'s arguments and the end-of-sequence ids (called
        with the lock held)."""
        self._load()
        tok, model = self._tokenizer, self._model
        prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        enc = tok(prompt, return_tensors="pt", add_special_tokens=False)
        inputs = {k: enc[k].to(self.device) for k in ("input_ids", "attention_mask")}
        kwargs: dict[str, Any] = {"max_new_tokens": settings.max_tokens, "do_sample": settings.temperature > 0,
                                  "pad_token_id": tok.pad_token_id if tok.pad_token_id is not None
                                  else tok.eos_token_id}
        if settings.temperature > 0:
            kwargs.update(temperature=settings.temperature, top_p=settings.top_p)
        eos = model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos]) if eos is not None else set()
        return tok, model, inputs, kwargs, eos_ids

    def complete(self, messages: Messages, settings: GenSettings) -> ChatResult:
        import torch

        with self._lock:
            tok, model, inputs, kwargs, eos_ids = self._prepare(messages, settings)
            with torch.random.fork_rng(devices=[]), torch.no_grad():
                torch.manual_seed(settings.seed)
                out = model.generate(**inputs, **kwargs)
            new = out[0, inputs["input_ids"].shape[1]:].tolist()
        hit_eos = bool(new) and new[-1] in eos_ids
        text, stopped = truncate_at_stop(tok.decode(new, skip_special_tokens=True), settings.stop)
        finish = "stop" if stopped or hit_eos or len(new) < settings.max_tokens else "length"
        return ChatResult(text=text, finish_reason=finish, prompt_tokens=int(inputs["input_ids"].shape[1]),
                          completion_tokens=len(new))

    def stream(self, messages: Messages, settings: GenSettings) -> Iterator[Delta]:
        """The answer while it is generated, with the same decoding as `complete` (at temperature 0, or with the
        same seed, the pieces add up to `complete`'s text). Generation runs in a thread that hands over token
        ids; the text is decoded whole each step (`IncrementalText`), not piecewise as transformers'
        TextIteratorStreamer does, so the pieces cannot differ from the full decode. It stops early when a stop
        string appears or when the iterator is closed."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        halt = threading.Event()

        class Halt(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                return torch.full((input_ids.shape[0],), halt.is_set(), dtype=torch.bool, device=input_ids.device)

        with self._lock:
            tok, model, inputs, kwargs, eos_ids = self._prepare(messages, settings)
            pipe: queue.Queue[list[int] | None] = queue.Queue()
            outcome: dict[str, Any] = {}

            def run() -> None:
                try:
                    with torch.random.fork_rng(devices=[]), torch.no_grad():
                        torch.manual_seed(settings.seed)
                        out = model.generate(**inputs, streamer=_TokenPipe(pipe),
                                             stopping_criteria=StoppingCriteriaList([Halt()]), **kwargs)
                    outcome["new"] = out[0, inputs["input_ids"].shape[1]:].tolist()
                except BaseException as exc:  # handed to the reading thread
                    outcome["error"] = exc
                finally:
                    pipe.put(None)

            def body(ids: list[int]) -> list[int]:
                return ids[:-1] if ids and ids[-1] in eos_ids else ids

            worker = threading.Thread(target=run, name="simsa-hf-stream", daemon=True)
            worker.start()
            try:
                ids: list[int] = []
                text = IncrementalText(settings.stop)
                while (more := pipe.get()) is not None:
                    ids += more
                    piece = text.update(tok.decode(body(ids), skip_special_tokens=True))
                    if piece:
                        yield Delta(piece)
                    if text.stopped:
                        halt.set()
                if "error" in outcome:
                    raise outcome["error"]
                new = outcome["new"]
                final, stopped = truncate_at_stop(tok.decode(new, skip_special_tokens=True), settings.stop)
                hit_eos = bool(new) and new[-1] in eos_ids
                finish = "stop" if stopped or hit_eos or len(new) < settings.max_tokens else "length"
                piece = text.finish(final)
                if piece:
                    yield Delta(piece)
                yield Delta("", finish_reason=finish, completion_tokens=len(new))
            finally:
                halt.set()
                worker.join()

    def complete_many(self, items: list[Messages], settings: GenSettings,
                      progress: Progress | None = None) -> list[ChatResult]:
        results = []
        for i, messages in enumerate(items):
            results.append(self.complete(messages, settings))
            if progress:
                progress(i + 1, len(items))
        return results
