"""Chat clients: how candidate models answer questions and how judge models are asked for verdicts.

Two clients share one protocol. `OpenAIChatClient` talks to any OpenAI-compatible server (`simsa serve-model`, vLLM,
a hosted API) with bounded concurrency, a shared rate limit and retries that survive overloaded servers.
`HFChatClient` generates in-process with transformers, for small models and for the tests. Both describe themselves
with `identity()`, which goes into cache keys and manifests: a cached answer is reused only for the same model
(by weight hash where known), endpoint and settings.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Callable, Sequence
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

    def complete(self, messages: Messages, settings: GenSettings) -> ChatResult:
        import httpx

        url = f"{self.base_url}/chat/completions"
        payload: dict[str, Any] = {"model": self.model, "messages": messages, "max_tokens": settings.max_tokens,
                                   "temperature": settings.temperature, "top_p": settings.top_p,
                                   "seed": settings.seed}
        if settings.stop:
            payload["stop"] = list(settings.stop)
        attempt = 0
        while True:
            if self.limiter:
                self.limiter.acquire()
            with self._lock:
                self.requests += 1
            status: int | None = None
            retry_after: float | None = None
            try:
                resp = self._http.post(url, json=payload)
            except httpx.TimeoutException:
                problem = f"timed out after {self.timeout:g} s"
            except httpx.TransportError as exc:
                problem = f"connection failed ({type(exc).__name__}: {exc})"
            else:
                status = resp.status_code
                if 200 <= status < 300:
                    return self._parse(url, resp)
                problem = f"HTTP {status}: {resp.text[:300].strip()}"
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
        self._model = model.to(self.device).eval()

    def complete(self, messages: Messages, settings: GenSettings) -> ChatResult:
        import torch

        with self._lock:
            self._load()
            tok, model = self._tokenizer, self._model
            prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            enc = tok(prompt, return_tensors="pt", add_special_tokens=False)
            inputs = {k: enc[k].to(self.device) for k in ("input_ids", "attention_mask")}
            kwargs: dict[str, Any] = {"max_new_tokens": settings.max_tokens, "do_sample": settings.temperature > 0}
            if settings.temperature > 0:
                kwargs.update(temperature=settings.temperature, top_p=settings.top_p)
            pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
            with torch.random.fork_rng(devices=[]), torch.no_grad():
                torch.manual_seed(settings.seed)
                out = model.generate(**inputs, pad_token_id=pad, **kwargs)
            new = out[0, inputs["input_ids"].shape[1]:].tolist()
        eos = model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos]) if eos is not None else set()
        hit_eos = bool(new) and new[-1] in eos_ids
        text, stopped = truncate_at_stop(tok.decode(new, skip_special_tokens=True), settings.stop)
        finish = "stop" if stopped or hit_eos or len(new) < settings.max_tokens else "length"
        return ChatResult(text=text, finish_reason=finish, prompt_tokens=int(inputs["input_ids"].shape[1]),
                          completion_tokens=len(new))

    def complete_many(self, items: list[Messages], settings: GenSettings,
                      progress: Progress | None = None) -> list[ChatResult]:
        results = []
        for i, messages in enumerate(items):
            results.append(self.complete(messages, settings))
            if progress:
                progress(i + 1, len(items))
        return results
