"""How arena entrants answer: one chat client per entrant, its identity (what the segment freezes) and timed
completions for both sides of a battle at once.

Both answers are generated concurrently and shown together, so neither the order of arrival nor a visible speed
difference can tell a rater which entrant is which: `both` returns them together, `stream_both` streams them paced
by `simsa.arena.pacing` (both sides grow at the slower running side's pace). Each answer's latency, time to first
token and speed are measured here and shown only after the vote, beside the entrant's declared price, when the
rater judges cost efficiency.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from simsa.arena.pacing import Pacer, Side
from simsa.bench.chat import ChatClient, Delta, GenSettings, HFChatClient, Messages, OpenAIChatClient
from simsa.errors import InputError
from simsa.program.arena_schema import Arena, Entrant

ClientFactory = Callable[[Entrant, Arena], ChatClient]


@dataclass(frozen=True)
class Answer:
    """One entrant's answer to one turn, with what was measured while it was produced."""

    text: str
    finish_reason: str
    latency_seconds: float
    completion_tokens: int | None
    error: str | None = None
    first_token_seconds: float | None = None  # streamed answers: when its first text arrived

    @property
    def tokens_per_second(self) -> float | None:
        if not self.completion_tokens or self.latency_seconds <= 0:
            return None
        return self.completion_tokens / self.latency_seconds

    def stats(self) -> dict[str, Any]:
        tps = self.tokens_per_second
        first = self.first_token_seconds
        return {"latency_seconds": round(self.latency_seconds, 4), "completion_tokens": self.completion_tokens,
                "tokens_per_second": None if tps is None else round(tps, 3), "finish_reason": self.finish_reason,
                "error": self.error, "time_to_first_token_seconds": None if first is None else round(first, 4)}


@dataclass(frozen=True)
class PairEvent:
    """One step of a streamed pair: text that may be shown on a side now, or, last, both finished answers."""

    side: Side | None = None
    text: str = ""
    answers: tuple[Answer, Answer] | None = None

    @property
    def final(self) -> bool:
        return self.answers is not None


def default_client(entrant: Entrant, arena: Arena) -> ChatClient:
    """An OpenAI-compatible client for an endpoint entrant, or transformers in-process for a model directory."""
    if entrant.model_dir is not None:
        return HFChatClient(entrant.model_dir)
    key = os.environ.get(entrant.api_key_env) if entrant.api_key_env else None
    if entrant.api_key_env and not key:
        raise InputError(f"entrant {entrant.team!r}: environment variable {entrant.api_key_env} (its API key) is "
                         "not set")
    assert entrant.endpoint is not None and entrant.model is not None
    return OpenAIChatClient(entrant.endpoint, entrant.model, api_key=key, concurrency=2,
                            timeout=arena.decoding.timeout_seconds, max_retries=1)


class Entrants:
    """The clients of one arena's entrants, made on first use and kept (a served model is loaded once)."""

    def __init__(self, arena: Arena, factory: ClientFactory | None = None) -> None:
        self.arena = arena
        self.factory = factory or default_client
        self._clients: dict[str, ChatClient] = {}
        self._lock = threading.Lock()

    def client(self, team: str) -> ChatClient:
        with self._lock:
            if team not in self._clients:
                self._clients[team] = self.factory(self.arena.entrant(team), self.arena)
            return self._clients[team]

    def identity(self, team: str) -> dict[str, Any]:
        """What is frozen for the entrant: the endpoint, model and served weights digest (or the local model's
        digest), without any secret."""
        ident = dict(self.client(team).identity())
        ident.pop("api_key", None)
        return ident

    def settings(self) -> GenSettings:
        d = self.arena.decoding
        return GenSettings(max_tokens=d.max_tokens, temperature=d.temperature, top_p=d.top_p, seed=d.seed)

    def answer(self, team: str, messages: Messages) -> Answer:
        start = time.perf_counter()
        try:
            result = self.client(team).complete(messages, self.settings())
        except Exception as exc:  # an entrant that fails answers with its error; the battle can be abandoned
            return Answer(text="", finish_reason="error", latency_seconds=time.perf_counter() - start,
                          completion_tokens=None, error=f"{type(exc).__name__}: {str(exc)[:300]}")
        return Answer(text=result.text, finish_reason=result.finish_reason,
                      latency_seconds=time.perf_counter() - start, completion_tokens=result.completion_tokens)

    def both(self, left: tuple[str, Messages], right: tuple[str, Messages]) -> tuple[Answer, Answer]:
        """Both sides' answers, generated at the same time."""
        with ThreadPoolExecutor(max_workers=2) as pool:
            fl = pool.submit(self.answer, *left)
            fr = pool.submit(self.answer, *right)
            return fl.result(), fr.result()

    def deltas(self, team: str, messages: Messages) -> Iterator[Delta]:
        """The entrant's answer as it is generated; a client that cannot stream answers with one piece."""
        client = self.client(team)
        stream = getattr(client, "stream", None)
        if callable(stream):
            yield from stream(messages, self.settings())
            return
        result = client.complete(messages, self.settings())
        yield Delta(result.text)
        yield Delta("", finish_reason=result.finish_reason, completion_tokens=result.completion_tokens)

    def stream_both(self, left: tuple[str, Messages], right: tuple[str, Messages]) -> Iterator[PairEvent]:
        """Both answers streamed at the same time and paced together (`Pacer`): events of text each side may show
        now, then one event with both `Answer`s. Closing the iterator early (the rater left) stops reading both
        entrants, which closes their connections so they stop generating."""
        inbox: queue.Queue[tuple[Side, Delta | Exception | None, float]] = queue.Queue()
        stop = threading.Event()
        start = time.perf_counter()

        def read(side: Side, team: str, messages: Messages) -> None:
            pieces = self.deltas(team, messages)
            try:
                for delta in pieces:
                    inbox.put((side, delta, time.perf_counter() - start))
                    if stop.is_set():
                        return
                inbox.put((side, None, time.perf_counter() - start))
            except Exception as exc:  # an entrant that fails answers with its error
                inbox.put((side, exc, time.perf_counter() - start))
            finally:
                close = getattr(pieces, "close", None)
                if close is not None:
                    close()

        readers = [threading.Thread(target=read, args=(side, team, messages), name=f"simsa-arena-{side}",
                                    daemon=True) for side, (team, messages) in (("left", left), ("right", right))]
        for reader in readers:
            reader.start()
        pacer = Pacer()
        timing = {side: _Timing() for side in ("left", "right")}
        try:
            while any(t.answer is None for t in timing.values()):
                side, item, elapsed = inbox.get()
                if timing[side].answer is not None:
                    continue
                text = timing[side].take(item, pacer.received(side), elapsed)
                released = pacer.push(side, text) if text else []
                if timing[side].answer is not None:
                    released += pacer.finish(side)
                for piece in released:
                    yield PairEvent(side=piece.side, text=piece.text)
            answers = (timing["left"].answer, timing["right"].answer)
            assert answers[0] is not None and answers[1] is not None
            yield PairEvent(answers=(answers[0], answers[1]))
        finally:
            stop.set()


class _Timing:
    """One side's stream while it runs: when its first text came, and its `Answer` once it has ended."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.answer: Answer | None = None

    def take(self, item: Delta | Exception | None, text_so_far: str, elapsed: float) -> str:
        """Record a delta, the failure, or the stream's end (None), and return the text it adds."""
        if item is None:
            self.answer = Answer(text=text_so_far, finish_reason="", latency_seconds=elapsed, completion_tokens=None,
                                 first_token_seconds=self.first)
            return ""
        if isinstance(item, Exception):
            self.answer = Answer(text="", finish_reason="error", latency_seconds=elapsed, completion_tokens=None,
                                 error=f"{type(item).__name__}: {str(item)[:300]}", first_token_seconds=self.first)
            return ""
        if item.text and self.first is None:
            self.first = elapsed
        if item.finish_reason is not None:
            self.answer = Answer(text=text_so_far + item.text, finish_reason=item.finish_reason,
                                 latency_seconds=elapsed, completion_tokens=item.completion_tokens,
                                 first_token_seconds=self.first)
        return item.text


_REGISTRY: dict[tuple[str, str], Entrants] = {}
_REGISTRY_LOCK = threading.Lock()
_FACTORY: ClientFactory | None = None


def use_factory(factory: ClientFactory | None) -> None:
    """Answer with `factory`'s clients from now on (the demo's in-process example models; tests' served models);
    None restores the default. Clears the clients made so far."""
    global _FACTORY
    with _REGISTRY_LOCK:
        _FACTORY = factory
        _REGISTRY.clear()


def entrants_for(key: str, stage_id: str, arena: Arena) -> Entrants:
    """The process-wide clients of a stage's arena (rebuilt when the programme's arena declaration changes)."""
    with _REGISTRY_LOCK:
        found = _REGISTRY.get((key, stage_id))
        if found is None or found.arena != arena:
            found = Entrants(arena, _FACTORY)
            _REGISTRY[(key, stage_id)] = found
        return found
