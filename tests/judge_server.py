"""An OpenAI-compatible chat server on loopback with rule-based "models", for testing the judge runner over real HTTP.

The models are deterministic rules (the logic under test is the client and the runner, not a model), chosen by the
request's `model`; `NAME@tag` behaves like NAME under another name, so an ensemble can hold several copies:

* candidates: `ko-long` (a long Korean answer that says which turn it answers and repeats the question),
  `ko-short` (a short Korean answer), `english` (answers in English), `thinker` (a `<think>` block, then Korean),
  `split-thinker` (reasoning returned in `reasoning_content`, as vLLM's reasoning parsers do);
* pairwise judges: `judge-a` (always `[[A]]`: pure position bias), `judge-hangul` (prefers the answer with more Hangul
  letters, ties on equal counts);
* rubric judges: `judge-seven` (always `[[7]]`), `judge-hangul` (1 + Hangul letters / 25, capped at 10), `judge-len`
  (1 + characters / 35, capped at 10), `judge-think` (a decoy `[[2]]` inside `<think>`, then `[[8]]`),
  `judge-fallback` (`점수: 6`, no brackets), `judge-garbage` (no verdict at all).

The judges read the answers out of simsa's Korean judge prompts by their markers. Faults can be queued: the next
chat requests answer with a status (and Retry-After) or only after a delay. Every request is logged with its arrival
time.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Fault:
    status: int = 0  # answer with this status instead of a completion (0: answer normally)
    retry_after: str | None = None
    delay: float = 0.0  # seconds to wait before answering


@dataclass
class Logged:
    method: str
    path: str
    model: str | None
    at: float  # time.monotonic() on arrival
    status: int = 0
    messages: list[dict[str, str]] | None = None


def hangul(text: str) -> int:
    return sum(1 for ch in text if "\uac00" <= ch <= "\ud7a3")


def _between(text: str, start: str, end: str) -> str | None:
    m = re.search(re.escape(start) + r"\n(.*?)\n" + re.escape(end), text, re.DOTALL)
    return m.group(1) if m else None


def _judged_answer(prompt: str) -> str:
    """The answer a rubric prompt asks about: the marked answer (turn 1) or the conversation's last answer."""
    single = _between(prompt, "[어시스턴트 답변 시작]", "[어시스턴트 답변 끝]")
    if single is not None:
        return single
    conversation = _between(prompt, "[대화 시작]", "[대화 끝]") or ""
    return re.split(r"### 어시스턴트 \(\d+번째 답변\)\n", conversation)[-1]


def _pair_answers(prompt: str) -> tuple[str, str] | None:
    for kind in ("답변", "대화"):
        a = _between(prompt, f"[어시스턴트 A {kind} 시작]", f"[어시스턴트 A {kind} 끝]")
        b = _between(prompt, f"[어시스턴트 B {kind} 시작]", f"[어시스턴트 B {kind} 끝]")
        if a is not None and b is not None:
            return a, b
    return None


def _score(value: float) -> str:
    return f"규칙에 따라 채점했습니다.\n평점: [[{min(10, max(1, int(value)))}]]"


def answer(model: str, messages: list[dict[str, str]]) -> dict[str, Any] | None:
    """The assistant message of a rule model, or None for an unknown model."""
    name = model.split("@", 1)[0]
    turn = sum(1 for m in messages if m["role"] == "user")
    last = messages[-1]["content"]
    pair = _pair_answers(last)
    if name == "ko-long":
        return {"content": f"{turn}번째 질문에 답하겠습니다. 질문을 차근차근 살펴보면 다음과 같습니다: {last} "
                           "이 내용을 바탕으로 자세히 설명하고 결론을 정리했습니다."}
    if name == "ko-short":
        return {"content": "네, 알겠습니다."}
    if name == "english":
        return {"content": f"Here is my answer to question {turn}, written in English as usual."}
    if name == "thinker":
        return {"content": "<think>The user writes Korean, so I answer in Korean.</think>"
                           "생각을 마친 뒤의 한국어 답변입니다."}
    if name == "split-thinker":
        return {"content": "추론을 따로 보낸 한국어 답변입니다.", "reasoning_content": "Plan the answer first."}
    if name == "judge-a":
        return {"content": "두 답변 모두 무난하지만 A를 고르겠습니다.\n[[A]]"}
    if name == "judge-hangul":
        if pair is not None:
            a, b = hangul(pair[0]), hangul(pair[1])
            verdict = "[[A]]" if a > b else "[[B]]" if b > a else "[[C]]"
            return {"content": f"한글이 더 많은 쪽을 골랐습니다.\n{verdict}"}
        return {"content": _score(1 + hangul(_judged_answer(last)) / 25)}
    if name == "judge-len":
        return {"content": _score(1 + len(_judged_answer(last)) / 35)}
    if name == "judge-seven":
        return {"content": "무난한 답변입니다. 평점: [[7]]"}
    if name == "judge-think":
        return {"content": "<think>처음에는 [[2]]라고 생각했지만 다시 보니 훨씬 낫다.</think>"
                           "좋은 답변입니다.\n평점: [[8]]"}
    if name == "judge-fallback":
        return {"content": "설명이 충실합니다.\n점수: 6"}
    if name == "judge-garbage":
        return {"content": "I'd rather not grade this one."}
    return None


class JudgeServer:
    """The server, started on 127.0.0.1 at a free port in a background thread; `base_url` ends in /v1."""

    def __init__(self, sha256s: dict[str, str] | None = None) -> None:
        self.sha256s = dict(sha256s or {})  # model -> weights sha256 published by /v1/models
        self.log: list[Logged] = []
        self.faults: deque[Fault] = deque()
        self.lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"owner": self})
        self.httpd = _Server(("127.0.0.1", 0), handler)
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def inject(self, *faults: Fault) -> None:
        with self.lock:
            self.faults.extend(faults)

    def chat_requests(self, model: str | None = None) -> list[Logged]:
        with self.lock:
            return [e for e in self.log
                    if e.path.endswith("/chat/completions") and (model is None or e.model == model)]

    def reset(self) -> None:
        with self.lock:
            self.log.clear()
            self.faults.clear()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out has hung up; writing to it fails, on purpose


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner: JudgeServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        entry = Logged("GET", self.path, None, time.monotonic())
        with self.owner.lock:
            self.owner.log.append(entry)
        if self.path.rstrip("/") != "/v1/models":
            entry.status = 404
            self._send(404, {"error": {"message": "not found"}})
            return
        data = [{"id": name, "object": "model", "simsa": {"sha256": sha}} for name, sha in self.owner.sha256s.items()]
        entry.status = 200
        self._send(200, {"object": "list", "data": data})

    def do_POST(self) -> None:
        at = time.monotonic()
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        entry = Logged("POST", self.path, body.get("model"), at, messages=body.get("messages"))
        with self.owner.lock:
            self.owner.log.append(entry)
            fault = self.owner.faults.popleft() if self.owner.faults else None
        if self.path != "/v1/chat/completions":
            entry.status = 404
            self._send(404, {"error": {"message": "not found"}})
            return
        if fault and fault.delay:
            time.sleep(fault.delay)
        if fault and fault.status:
            entry.status = fault.status
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            self._send(fault.status, {"error": {"message": f"injected {fault.status}"}}, headers)
            return
        message = answer(str(body.get("model")), body.get("messages") or [])
        if message is None:
            entry.status = 404
            self._send(404, {"error": {"message": f"model {body.get('model')!r} does not exist"}})
            return
        entry.status = 200
        prompt_chars = sum(len(m.get("content", "")) for m in body.get("messages") or [])
        self._send(200, {"id": "chatcmpl-test", "object": "chat.completion", "model": body.get("model"),
                         "choices": [{"index": 0, "message": {"role": "assistant", **message},
                                      "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": prompt_chars // 2,
                                   "completion_tokens": len(message["content"]) // 2}})
