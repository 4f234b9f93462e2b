"""Streamed chat completions: `simsa serve-model` on loopback (a real tiny model, in a subprocess started as a
team starts it) and the streaming chat clients.

The stream is OpenAI's: `chat.completion.chunk` events, a finish chunk, the usage chunk asked for with
`stream_options.include_usage`, then `data: [DONE]`; its pieces add up to the answer the same request gets without
`stream` (greedy, and sampled with a seed, where the tiny model writes incomplete characters the stream must not cut
wrongly). A client that disconnects stops the generation. `OpenAIChatClient.stream` reads it (and retries only
before the answer begins); `HFChatClient.stream` streams in-process and adds up to `HFChatClient.complete`.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from served_models import address, launch, one_thread, serve_command, stop
from simsa.bench.chat import ChatRequestError, Delta, GenSettings, HFChatClient, IncrementalText, OpenAIChatClient
from simsa.bench.tinymodels import TinySpec, build_tiny_model, korean_corpus

KEY = "sk-stream-51c2"
TIMEOUT_S = 60


@pytest.fixture(autouse=True)
def _torch_on_one_thread() -> Iterator[None]:
    with one_thread():
        yield


@pytest.fixture(scope="session")
def stream_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Korean chat model (built once per session, shared with the arena's streaming tests)."""
    with one_thread():
        return build_tiny_model(tmp_path_factory.getbasetemp() / "stream-tiny" / "tiny-ko", TinySpec(steps=50))


@dataclass
class Served:
    url: str
    model: str
    proc: subprocess.Popen[str]

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {KEY}"}

    def post(self, body: dict[str, Any], path: str = "/chat/completions") -> httpx.Response:
        return httpx.post(f"{self.url}{path}", json=body, headers=self.headers(), timeout=TIMEOUT_S)

    def stream(self, body: dict[str, Any]) -> tuple[httpx.Response, list[Any]]:
        """The response and its events, in order (`data: [DONE]` as the string "[DONE]")."""
        events: list[Any] = []
        with httpx.stream("POST", f"{self.url}/chat/completions", json={**body, "stream": True},
                          headers=self.headers(), timeout=TIMEOUT_S) as resp:
            assert resp.status_code == 200, resp.read()
            for line in resp.iter_lines():
                if line.startswith("data: "):
                    data = line.removeprefix("data: ")
                    events.append(data if data == "[DONE]" else json.loads(data))
                else:
                    assert line == "", line
        return resp, events

    def health(self) -> dict[str, Any]:
        return httpx.get(self.url.removesuffix("/v1") + "/health", timeout=TIMEOUT_S).json()


@pytest.fixture(scope="module")
def served(stream_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    log = tmp_path_factory.mktemp("stream-log") / "stderr.txt"
    with log.open("w") as err:
        proc = launch(serve_command(stream_tiny, "--port", "0", "--json"), api_key=KEY, stderr=err)
    try:
        info = address(proc, log=log)
        yield Served(info["url"], info["model"], proc)
    finally:
        [code] = stop(proc)
    assert code == 0, f"serve-model did not stop cleanly:\n{log.read_text()[-3000:]}"


def _joined(events: list[Any]) -> str:
    return "".join(e["choices"][0]["delta"].get("content") or "" for e in events
                   if isinstance(e, dict) and e.get("choices"))


def _messages(n: int) -> list[dict[str, str]]:
    return [{"role": "system", "content": "짧게 답하세요."}, {"role": "user", "content": korean_corpus()[n]}]


# --------------------------------------------------------------------------- the server's stream


def test_stream_is_openai_chunks_and_equals_the_plain_answer(served: Served) -> None:
    body = {"model": served.model, "messages": _messages(3), "max_tokens": 12, "temperature": 0}
    plain = served.post(body).json()
    resp, events = served.stream({**body, "stream_options": {"include_usage": True}})
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert events[-1] == "[DONE]" and "[DONE]" not in events[:-1]
    chunks = events[:-1]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1 and chunks[0]["id"].startswith("chatcmpl-")
    assert {c["model"] for c in chunks} == {served.model}
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    *answer, finish, usage = chunks
    assert all(c["choices"][0]["finish_reason"] is None and c["usage"] is None for c in answer)
    assert finish["choices"][0] == {"index": 0, "delta": {}, "logprobs": None,
                                    "finish_reason": plain["choices"][0]["finish_reason"]}
    assert usage["choices"] == [] and usage["usage"] == plain["usage"]
    assert _joined(chunks) == plain["choices"][0]["message"]["content"]


def test_sampled_streams_add_up_to_the_plain_answer(served: Served) -> None:
    """Long sampled answers, full of characters the tiny model leaves incomplete (U+FFFD): the pieces still add up
    exactly, with no usage chunk when it is not asked for."""
    pieces_seen = 0
    for seed in (1, 2):
        body = {"messages": _messages(11), "max_tokens": 120, "temperature": 1.0, "seed": seed}
        plain = served.post(body).json()["choices"][0]
        _, events = served.stream(body)
        assert all("usage" not in e for e in events[:-1])
        assert _joined(events[:-1]) == plain["message"]["content"]
        assert events[-2]["choices"][0]["finish_reason"] == plain["finish_reason"]
        pieces_seen += sum(1 for e in events[1:-2] if e["choices"][0]["delta"].get("content"))
    assert pieces_seen > 20  # streamed piece by piece, not in one chunk at the end


def test_stream_stops_at_a_stop_string_like_the_plain_answer(served: Served) -> None:
    body = {"messages": _messages(11), "max_tokens": 60, "temperature": 1.0, "seed": 1}
    free = served.post(body).json()["choices"][0]["message"]["content"]
    stop = next(ch for ch in free[5:] if ch.strip() and ch != "\ufffd")
    plain = served.post({**body, "stop": [stop, "없는말"]}).json()["choices"][0]
    _, events = served.stream({**body, "stop": [stop, "없는말"]})
    assert _joined(events[:-1]) == plain["message"]["content"] == free[: free.index(stop)]
    assert events[-2]["choices"][0]["finish_reason"] == plain["finish_reason"] == "stop"


LONG = {"messages": _messages(3), "max_tokens": 700, "temperature": 1.0}


@pytest.fixture(scope="module")
def long_seed(served: Served) -> tuple[int, dict[str, Any]]:
    """A seed whose sampled answer is long (the tiny model often ends early), and that answer."""
    for seed in range(8):
        plain = served.post({**LONG, "seed": seed}).json()
        if plain["usage"]["completion_tokens"] >= 300:
            return seed, plain
    pytest.fail("no seed gave a long answer")


def test_a_client_that_disconnects_stops_the_generation(served: Served, long_seed: tuple[int, dict]) -> None:
    body = LONG
    seed, plain = long_seed
    before = served.health()
    with httpx.stream("POST", f"{served.url}/chat/completions", json={**body, "seed": seed, "stream": True},
                      headers=served.headers(), timeout=TIMEOUT_S) as resp:
        for line in resp.iter_lines():
            if line.startswith("data: ") and '"content":"' in line and '"content":""' not in line:
                break  # the answer has begun: leave
    deadline = time.monotonic() + 30
    while (after := served.health())["streams_cancelled"] == before["streams_cancelled"]:
        assert time.monotonic() < deadline, f"generation was not stopped: {after}"
        time.sleep(0.05)
    assert after["streams_cancelled"] == before["streams_cancelled"] + 1
    assert after["generations"] == before["generations"] + 1
    assert served.post({**body, "seed": seed}).json()["choices"] == plain["choices"]  # the server is fine after


@pytest.mark.parametrize(("path", "body", "message"), [
    ("/completions", {"prompt": "안녕", "stream": True}, "/v1/chat/completions only"),
    ("/chat/completions", {"messages": [{"role": "user", "content": "x"}], "stream": True, "logprobs": True},
     "logprobs are not streamed"),
    ("/chat/completions", {"messages": [], "stream": True}, "messages"),
    ("/chat/completions", {"messages": [{"role": "user", "content": "x"}], "stream": True,
                           "stream_options": {"include_usage": "yes"}}, "stream_options"),
])
def test_refused_streams_are_json_errors(served: Served, path: str, body: dict[str, Any], message: str) -> None:
    resp = served.post(body, path)
    assert resp.status_code == 400 and resp.headers["content-type"].startswith("application/json")
    assert message in resp.json()["error"]["message"]


# --------------------------------------------------------------------------- the clients


def test_openai_client_stream_equals_complete(served: Served) -> None:
    settings = GenSettings(max_tokens=80, temperature=1.0, seed=2)
    with OpenAIChatClient(served.url, served.model, api_key=KEY, max_retries=0, timeout=TIMEOUT_S) as client:
        whole = client.complete(_messages(11), settings)
        deltas = list(client.stream(_messages(11), settings))
    assert "".join(d.text for d in deltas) == whole.text and len(deltas) > 5
    assert all(d.finish_reason is None for d in deltas[:-1])
    assert deltas[-1] == Delta("", finish_reason=whole.finish_reason, completion_tokens=whole.completion_tokens)


def test_openai_client_closing_the_stream_stops_the_server(served: Served, long_seed: tuple[int, dict]) -> None:
    before = served.health()["streams_cancelled"]
    settings = GenSettings(max_tokens=700, temperature=1.0, top_p=1.0, seed=long_seed[0])
    with OpenAIChatClient(served.url, served.model, api_key=KEY, max_retries=0, timeout=TIMEOUT_S) as client:
        stream = client.stream(_messages(3), settings)
        assert next(stream).text
        stream.close()
    deadline = time.monotonic() + 30
    while served.health()["streams_cancelled"] == before:
        assert time.monotonic() < deadline, "closing the client's stream did not stop the generation"
        time.sleep(0.05)


def _sse(*events: Any) -> bytes:
    """Events as a server sends them; bytes are sent as they are (comments, `data: [DONE]`)."""
    return b"".join((e if isinstance(e, bytes) else b"data: " + json.dumps(e).encode()) + b"\n\n" for e in events)


def _chunk(content: str | None = None, finish: str | None = None, **delta: str) -> dict[str, Any]:
    if content is not None:
        delta["content"] = content
    return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def _mocked(handler: Any, retries: int = 2) -> OpenAIChatClient:
    client = OpenAIChatClient("http://mock.test/v1", "m", max_retries=retries, backoff_base=0.001, backoff_max=0.002)
    client._http = httpx.Client(transport=httpx.MockTransport(handler))
    return client


def test_openai_client_retries_only_before_the_answer_begins() -> None:
    calls: list[dict[str, Any]] = []

    def flaky(request: httpx.Request) -> httpx.Response:
        calls.append(json.loads(request.content))
        if len(calls) == 1:
            return httpx.Response(503, text="busy")
        return httpx.Response(200, content=_sse(_chunk("", role="assistant"), _chunk("안녕"),
                                                b": keep-alive\nevent: ping", _chunk("하세요"), _chunk(finish="stop"),
                                                {"choices": [], "usage": {"completion_tokens": 3}}, b"data: [DONE]"),
                              headers={"content-type": "text/event-stream"})

    client = _mocked(flaky)
    deltas = list(client.stream([{"role": "user", "content": "hi"}], GenSettings(stop=("\n",))))
    assert [d.text for d in deltas] == ["안녕", "하세요", ""] and deltas[-1].finish_reason == "stop"
    assert deltas[-1].completion_tokens == 3 and client.retries == 1 and client.requests == 2
    assert calls[0]["stream"] is True and calls[0]["stream_options"] == {"include_usage": True}
    assert calls[0]["stop"] == ["\n"]

    def broken(request: httpx.Request) -> httpx.Response:
        calls.append({})
        return httpx.Response(200, content=_sse(_chunk("half an ans")), headers={"content-type": "text/event-stream"})

    calls.clear()
    client = _mocked(broken)
    stream = client.stream([{"role": "user", "content": "hi"}], GenSettings())
    assert next(stream).text == "half an ans"
    with pytest.raises(ChatRequestError, match="ended before the answer was complete"):
        next(stream)
    assert len(calls) == 1  # an answer that began is never asked again

    def failing(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=_sse(_chunk("x"), {"error": {"message": "model exploded"}}),
                              headers={"content-type": "text/event-stream"})

    with pytest.raises(ChatRequestError, match="model exploded"):
        list(_mocked(failing).stream([{"role": "user", "content": "hi"}], GenSettings()))

    def refusing(request: httpx.Request) -> httpx.Response:
        calls.append({})
        return httpx.Response(400, json={"error": {"message": "bad"}})

    calls.clear()
    with pytest.raises(ChatRequestError, match="HTTP 400"):
        list(_mocked(refusing).stream([{"role": "user", "content": "hi"}], GenSettings()))
    assert len(calls) == 1


def test_openai_client_stream_wraps_streamed_reasoning_like_complete() -> None:
    def thinking(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=_sse(_chunk(reasoning_content="let me see"), _chunk(reasoning_content="."),
                                                _chunk("4"), _chunk(finish="stop"), b"data: [DONE]"))

    deltas = list(_mocked(thinking).stream([{"role": "user", "content": "2+2"}], GenSettings()))
    assert "".join(d.text for d in deltas) == "<think>let me see.</think>4"


def test_hf_client_stream_equals_complete(stream_tiny: Path) -> None:
    client = HFChatClient(stream_tiny)
    for settings in (GenSettings(max_tokens=12), GenSettings(max_tokens=80, temperature=1.0, seed=2)):
        whole = client.complete(_messages(11), settings)
        deltas = list(client.stream(_messages(11), settings))
        assert "".join(d.text for d in deltas) == whole.text
        assert deltas[-1].finish_reason == whole.finish_reason
        assert deltas[-1].completion_tokens == whole.completion_tokens
    stopped = whole.text[6]
    cut = list(client.stream(_messages(11), GenSettings(max_tokens=80, temperature=1.0, seed=2, stop=(stopped,))))
    assert "".join(d.text for d in cut) == whole.text[: whole.text.index(stopped)]
    assert cut[-1].finish_reason == "stop" and (cut[-1].completion_tokens or 0) < (whole.completion_tokens or 0)


def test_incremental_text_holds_back_what_may_still_change() -> None:
    text = IncrementalText()
    assert text.update("안\ufffd") == "안"  # an incomplete character waits for its next bytes
    assert text.update("안녕 ") == "녕"  # so does trailing space
    assert text.update("안녕 하") == " 하" and text.finish("안녕 하세요") == "세요"
    stopping = IncrementalText(stops=["END", "\n\n"])
    assert stopping.update("abcE") == "ab"  # the last two characters may begin "END"
    assert stopping.update("abcEN") == "c" and not stopping.stopped
    assert stopping.update("abcENDxyz") == "" and stopping.stopped
    assert stopping.finish("abc") == ""
    again = IncrementalText()
    assert again.update("ab") == "ab" and again.finish("ax!") == "x!"  # a changed tail is sent again
