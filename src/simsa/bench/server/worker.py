"""The one thread that owns the model: padded scoring passes and `generate`, with what goes in and comes out."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import secrets
import threading
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList

from simsa.bench.server.errors import ApiError, log
from simsa.bench.server.model import ServedModel

LOGPROB_FLOOR = -9999.0  # JSON has no -inf; vLLM reports the same floor for impossible tokens
LOGIT_BUDGET = 1 << 28  # float32 logits one padded scoring batch may hold (1 GiB); a longer prompt runs alone
_OFFSET_WINDOW = 8  # tokens of left context when measuring how much text each token adds

TopList = list[tuple[int, float]]


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
    stream: TokenStream | None = None


class TokenStream:
    """A generation whose new token ids the worker hands over step by step, then its `GenResult`.

    The worker thread calls `push` (through the event loop's `call_soon_threadsafe`); the request reads `tokens()`
    and then awaits `result`. `cancel()` (the client went away) stops the generation at its next step, or before it
    starts when it is still queued.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.result: asyncio.Future[GenResult] = loop.create_future()
        self._tokens: asyncio.Queue[list[int] | None] = asyncio.Queue()
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    async def tokens(self) -> AsyncIterator[list[int]]:
        """Each step's new token ids, until the generation ends (or fails: then `result` holds the error)."""
        while (ids := await self._tokens.get()) is not None:
            yield ids

    def push(self, ids: list[int] | None) -> None:
        """From the worker thread: new token ids, or None at the end."""
        with contextlib.suppress(RuntimeError):  # the loop is closed: the server has stopped
            self.loop.call_soon_threadsafe(self._tokens.put_nowait, ids)


class _TokenPipe:
    """`generate`'s streamer: each step's tokens to the request's queue (the prompt, passed first, is skipped)."""

    def __init__(self, stream: TokenStream) -> None:
        self.stream = stream
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        self.stream.push(value.reshape(-1).tolist())

    def end(self) -> None:
        """The worker ends the stream itself, after the result is set."""


class _Cancelled(StoppingCriteria):
    """Halts generation once the client that asked for it has gone."""

    def __init__(self, stream: TokenStream) -> None:
        self.stream = stream
        self.fired = False

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        self.fired = self.fired or self.stream.cancelled
        return torch.full((input_ids.shape[0],), self.fired, dtype=torch.bool, device=input_ids.device)


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
        self.stats = {"forward_passes": 0, "scored_sequences": 0, "largest_batch": 0, "generations": 0,
                      "streams_cancelled": 0}
        self._thread = threading.Thread(target=self._run, name="simsa-model", daemon=True)
        self._thread.start()

    async def score(self, seqs: list[ScoreSeq]) -> list[ScoreResult]:
        return await self._submit("score", seqs)

    async def generate(self, spec: GenSpec) -> GenResult:
        return await self._submit("generate", spec)

    def stream(self, spec: GenSpec) -> TokenStream:
        """Queue a generation whose tokens are handed over as they are made (call from the event loop)."""
        if self._closed:
            raise ApiError(503, "the server is shutting down", "shutting_down")
        stream = TokenStream(asyncio.get_running_loop())
        self._queue.put(_Job("generate", spec, stream.loop, stream.result, stream))
        return stream

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
                if job.stream is not None:
                    job.stream.push(None)

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
            if job.stream is not None and job.stream.cancelled:
                self.stats["streams_cancelled"] += 1
                _resolve(job, error=ApiError(499, "the client went away before generation began", "cancelled"))
                return
            result = self._generate(job.payload, job.stream)
        except Exception as exc:
            log.exception("generation failed")
            _resolve(job, error=_model_failure(exc))
        else:
            _resolve(job, result=result)
        finally:
            if job.stream is not None:
                job.stream.push(None)  # after the result: call_soon_threadsafe keeps the order

    def _generate(self, spec: GenSpec, stream: TokenStream | None = None) -> GenResult:
        sample = spec.temperature > 0
        sampling = {"temperature": spec.temperature, "top_p": spec.top_p, "top_k": spec.top_k} if sample else {}
        config = GenerationConfig(max_new_tokens=spec.max_new, do_sample=sample, num_beams=1, repetition_penalty=1.0,
                                  eos_token_id=sorted(self.served.eos_ids) or None, pad_token_id=self.served.pad_id,
                                  return_dict_in_generate=True, output_logits=True, **sampling)
        if sample:
            torch.manual_seed(spec.seed % (1 << 63) if spec.seed is not None else secrets.randbits(63))
        prompt = torch.tensor([spec.ids], dtype=torch.long, device=self.served.device)
        stopping = StoppingCriteriaList([_StopOnText(self.served, len(spec.ids), spec.stops)] if spec.stops else [])
        cancelled = _Cancelled(stream) if stream is not None else None
        if cancelled is not None:
            stopping.append(cancelled)
        with torch.inference_mode():
            out = self.served.model.generate(prompt, attention_mask=torch.ones_like(prompt), generation_config=config,
                                             stopping_criteria=stopping,
                                             streamer=_TokenPipe(stream) if stream is not None else None)
            new = out.sequences[0, len(spec.ids):].tolist()
            chosen, top = self._step_logprobs(out.logits, new, spec.top_logprobs)
        self.stats["generations"] += 1
        if cancelled is not None and cancelled.fired:
            self.stats["streams_cancelled"] += 1
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
