"""`simsa serve-model` against a real tiny model, over real HTTP on loopback.

The server runs in a subprocess started the way a team starts it (port 0, --json, API key from the environment).
Numbers are checked against transformers run in this process, and lm-eval's own API clients (`local-completions`,
`local-chat-completions`) are pointed at it and must agree with lm-eval's in-process `hf` backend.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import socket
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch

from served_models import START_TIMEOUT_S, address, launch, one_thread, serve_command, stop
from simsa.bench.tinymodels import TinySpec, build_tiny_model, korean_corpus

KEY = "sk-test-7f3a9c"
REQUEST_TIMEOUT_S = 60

@dataclass
class Server:
    url: str
    model: str
    sha256: str
    proc: subprocess.Popen[str]

    def post(self, path: str, body: Any, key: str | None = KEY) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.post(f"{self.url}{path}", json=body, headers=headers, timeout=REQUEST_TIMEOUT_S)

    def get(self, path: str, key: str | None = KEY) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.get(f"{self.url}{path}", headers=headers, timeout=REQUEST_TIMEOUT_S)

    def health(self) -> dict[str, Any]:
        return httpx.get(self.url.removesuffix("/v1") + "/health", timeout=REQUEST_TIMEOUT_S).json()


@dataclass
class Direct:
    """The same checkpoint in this process: what the server's numbers must equal."""

    tokenizer: Any
    model: Any

    def logprobs(self, ids: list[int]) -> torch.Tensor:
        with torch.no_grad():
            logits = self.model(torch.tensor([ids])).logits[0]
        return torch.log_softmax(logits.float(), dim=-1)

    def chat_ids(self, messages: list[dict[str, str]]) -> list[int]:
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def generate(self, ids: list[int], max_new: int, seed: int | None = None) -> list[int]:
        prompt = torch.tensor([ids])
        kwargs: dict[str, Any] = {"do_sample": False}
        if seed is not None:
            torch.manual_seed(seed)
            kwargs = {"do_sample": True, "temperature": 1.0, "top_p": 1.0, "top_k": 0}
        with torch.no_grad():
            out = self.model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=max_new, **kwargs)
        return out[0, len(ids):].tolist()

    def text(self, new: list[int]) -> str:
        if new and new[-1] == self.tokenizer.eos_token_id:
            new = new[:-1]
        return self.tokenizer.decode(new, skip_special_tokens=True)


@pytest.fixture(autouse=True)
def _torch_on_one_thread() -> Iterator[None]:
    with one_thread():
        yield


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with one_thread():
        return build_tiny_model(tmp_path_factory.mktemp("serve") / "tiny-ko", TinySpec(steps=50))


@pytest.fixture(scope="session")
def direct(tiny_dir: Path) -> Direct:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32)
    return Direct(AutoTokenizer.from_pretrained(tiny_dir), model.eval())


@pytest.fixture(scope="session")
def server(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("serve-log") / "stderr.txt"
    with log.open("w") as err:
        proc = launch(serve_command(tiny_dir, "--port", "0", "--json", "--max-batch", "8"), api_key=KEY, stderr=err)
    try:
        info = address(proc, log=log)
        yield Server(info["url"], info["model"], info["sha256"], proc)
    finally:
        [code] = stop(proc)
    assert code == 0, f"serve-model did not stop cleanly on SIGTERM (exit {code}):\n{log.read_text()[-3000:]}"


def _corpus_ids(direct: Direct, count: int, start: int = 0) -> list[list[int]]:
    return [direct.tokenizer(text).input_ids for text in korean_corpus()[start: start + count]]


def _assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "code"} and error["message"]
    assert "Traceback" not in response.text
    if code is not None:
        assert error["code"] == code
    return error


# --------------------------------------------------------------------------- the model card


def test_models_lists_name_and_content_hash(server: Server, tiny_dir: Path) -> None:
    listing = server.get("/models").json()
    assert listing["object"] == "list" and len(listing["data"]) == 1
    card = listing["data"][0]
    assert card["id"] == server.model == tiny_dir.name
    expected = hashlib.sha256()
    for path in sorted(tiny_dir.glob("*.safetensors")):
        expected.update(f"{path.name} {hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
    assert card["simsa"]["sha256"] == server.sha256 == expected.hexdigest()
    assert card["simsa"]["directory"] == tiny_dir.name
    assert card["simsa"]["max_model_len"] == card["max_model_len"] == 1024
    template = (tiny_dir / "chat_template.jinja").read_text(encoding="utf-8")
    assert card["simsa"]["chat_template_sha256"] == hashlib.sha256(template.encode()).hexdigest()


# --------------------------------------------------------------------------- completions: scoring


def test_echo_logprobs_equal_transformers_and_batch(server: Server, direct: Direct) -> None:
    prompts = _corpus_ids(direct, 3)  # different lengths: one right-padded forward pass
    before = server.health()["forward_passes"]
    body = server.post("/completions", {"model": server.model, "prompt": prompts, "max_tokens": 0, "echo": True,
                                        "logprobs": 3}).json()
    assert server.health()["forward_passes"] == before + 1
    assert server.health()["largest_batch"] >= 3
    choices = sorted(body["choices"], key=lambda c: c["index"])
    for ids, choice in zip(prompts, choices, strict=True):
        rows = direct.logprobs(ids)
        lp = choice["logprobs"]
        assert lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None
        want = [rows[i - 1, ids[i]].item() for i in range(1, len(ids))]
        assert lp["token_logprobs"][1:] == pytest.approx(want, abs=1e-5)
        for i, top in enumerate(lp["top_logprobs"][1:], start=1):
            assert 1 <= len(top) <= 3 and max(top.values()) == pytest.approx(rows[i - 1].max().item(), abs=1e-5)
        assert len(lp["tokens"]) == len(lp["text_offset"]) == len(ids)
        assert lp["text_offset"] == sorted(lp["text_offset"]) and lp["text_offset"][-1] <= len(choice["text"])
        assert choice["text"] == direct.tokenizer.decode(ids)
        assert choice["finish_reason"] == "length"
    assert body["usage"] == {"prompt_tokens": sum(map(len, prompts)), "completion_tokens": 0,
                             "total_tokens": sum(map(len, prompts))}


def test_text_prompt_scores_like_its_token_ids(server: Server, direct: Direct) -> None:
    text = korean_corpus()[5]
    ids = direct.tokenizer(text).input_ids
    by_text = server.post("/completions", {"prompt": text, "max_tokens": 0, "echo": True, "logprobs": 1}).json()
    by_ids = server.post("/completions", {"prompt": ids, "max_tokens": 0, "echo": True, "logprobs": 1}).json()
    assert by_text["choices"][0]["text"] == text
    assert by_text["choices"][0]["logprobs"]["token_logprobs"] == by_ids["choices"][0]["logprobs"]["token_logprobs"]


def test_max_tokens_one_appends_the_greedy_token(server: Server, direct: Direct) -> None:
    ids = _corpus_ids(direct, 1, start=7)[0]
    choice = server.post("/completions", {"prompt": [ids], "max_tokens": 1, "temperature": 0, "echo": True,
                                          "logprobs": 1, "seed": 1234}).json()["choices"][0]
    last = direct.logprobs(ids)[-1]
    token_logprobs = choice["logprobs"]["token_logprobs"]
    assert len(token_logprobs) == len(ids) + 1
    assert token_logprobs[-1] == pytest.approx(last.max().item(), abs=1e-5)
    assert choice["logprobs"]["tokens"][-1] == direct.tokenizer.decode([int(last.argmax())])
    assert token_logprobs[-1] == max(choice["logprobs"]["top_logprobs"][-1].values())  # lm-eval's is_greedy test


def test_concurrent_scoring_equals_sequential(server: Server, direct: Direct) -> None:
    prompts = _corpus_ids(direct, 16, start=20)

    def score(ids: list[int]) -> tuple[list[str], list[float | None]]:
        response = server.post("/completions", {"model": server.model, "prompt": [ids], "max_tokens": 1,
                                                "temperature": 0, "logprobs": 1, "echo": True, "seed": 1234})
        assert response.status_code == 200, response.text
        lp = response.json()["choices"][0]["logprobs"]
        return lp["tokens"], lp["token_logprobs"]

    sequential = [score(ids) for ids in prompts]
    with ThreadPoolExecutor(max_workers=16) as pool:
        concurrent = list(pool.map(score, prompts))
    for (tokens_a, lps_a), (tokens_b, lps_b) in zip(sequential, concurrent, strict=True):
        assert tokens_a == tokens_b
        assert lps_a[0] is None and lps_b[0] is None
        assert lps_b[1:] == pytest.approx(lps_a[1:], abs=1e-4)


# --------------------------------------------------------------------------- lm-eval's clients


def _instances(kind: str, args: list[tuple[Any, ...]]) -> list[Any]:
    from lm_eval.api.instance import Instance

    return [Instance(request_type=kind, doc={}, arguments=arg, idx=i) for i, arg in enumerate(args)]


def test_lm_eval_local_completions_equals_hflm(server: Server, tiny_dir: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from lm_eval.models.huggingface import HFLM
    from lm_eval.models.openai_completions import LocalCompletionsAPI

    monkeypatch.setenv("OPENAI_API_KEY", KEY)  # lm-eval's API clients send this as the bearer key
    sentences = korean_corpus()[40:45]
    pairs = [(s[: len(s) // 2], s[len(s) // 2:]) for s in sentences]
    # (context, continuation) pairs whose tokens minus the last never coincide: HFLM serves such pairs from one
    # cached forward pass and then mis-slices the multi-token one
    pairs += [(korean_corpus()[50][:-1], "."), ("", korean_corpus()[51]), ("그들은 한국 경제 발전의 ", "주역이다.")]
    api = LocalCompletionsAPI(base_url=f"{server.url}/completions", model=server.model, tokenizer=str(tiny_dir),
                              tokenizer_backend="huggingface", num_concurrent=4, max_retries=1,
                              tokenized_requests=True)
    hf = HFLM(pretrained=str(tiny_dir), device="cpu", batch_size=1)
    got = api.loglikelihood(_instances("loglikelihood", pairs))
    want = hf.loglikelihood(_instances("loglikelihood", pairs))
    assert [flag for _, flag in got] == [flag for _, flag in want]
    assert any(flag for _, flag in want)  # the greedy case is exercised too
    for (a, _), (b, _) in zip(got, want, strict=True):
        assert a == pytest.approx(b, abs=1e-4)
    batched = LocalCompletionsAPI(base_url=f"{server.url}/completions", model=server.model, tokenizer=str(tiny_dir),
                                  tokenizer_backend="huggingface", batch_size=4, max_retries=1,
                                  tokenized_requests=True)  # four prompts per request, answered by `index`
    got_batched = batched.loglikelihood(_instances("loglikelihood", pairs))
    assert [flag for _, flag in got_batched] == [flag for _, flag in want]
    assert [ll for ll, _ in got_batched] == pytest.approx([ll for ll, _ in want], abs=1e-4)
    prompts = [korean_corpus()[60 + i][:12] for i in range(3)]
    until = {"until": ["\n\n", "다."], "max_gen_toks": 8, "do_sample": False}
    generated = api.generate_until(_instances("generate_until", [(p, dict(until)) for p in prompts]))
    assert generated == hf.generate_until(_instances("generate_until", [(p, dict(until)) for p in prompts]))
    texts = [(sentences[2],), (sentences[3] + " " + sentences[4],)]
    rolling_api = api.loglikelihood_rolling(_instances("loglikelihood_rolling", texts))
    rolling_hf = hf.loglikelihood_rolling(_instances("loglikelihood_rolling", texts))
    assert rolling_api == pytest.approx(rolling_hf, abs=1e-4)


def test_lm_eval_local_chat_completions_generates_like_the_server(server: Server, direct: Direct,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from lm_eval.models.api_models import JsonChatStr
    from lm_eval.models.openai_completions import LocalChatCompletion

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    messages = [{"role": "user", "content": korean_corpus()[11]}]
    chat = LocalChatCompletion(base_url=f"{server.url}/chat/completions", model=server.model, max_retries=1)
    [text] = chat.generate_until(_instances("generate_until", [
        (JsonChatStr(json.dumps(messages, ensure_ascii=False)), {"until": ["\n\n"], "max_gen_toks": 12})]))
    assert text == direct.text(direct.generate(direct.chat_ids(messages), 12))


# --------------------------------------------------------------------------- generation


def test_chat_greedy_equals_transformers_generate(server: Server, direct: Direct) -> None:
    messages = [{"role": "system", "content": "짧게 답하세요."}, {"role": "user", "content": korean_corpus()[3]}]
    body = server.post("/chat/completions", {"model": server.model, "messages": messages, "max_tokens": 12,
                                             "temperature": 0}).json()
    ids = direct.chat_ids(messages)
    new = direct.generate(ids, 12)
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": direct.text(new)}
    assert body["usage"] == {"prompt_tokens": len(ids), "completion_tokens": len(new),
                             "total_tokens": len(ids) + len(new)}


def test_chat_sampling_with_seed_equals_transformers(server: Server, direct: Direct) -> None:
    messages = [{"role": "user", "content": korean_corpus()[8]}]
    request = {"messages": messages, "max_tokens": 16, "temperature": 1.0, "seed": 77, "logprobs": True,
               "top_logprobs": 2}
    first = server.post("/chat/completions", request).json()["choices"][0]
    again = server.post("/chat/completions", request).json()["choices"][0]
    new = direct.generate(direct.chat_ids(messages), 16, seed=77)
    assert first["message"]["content"] == again["message"]["content"] == direct.text(new)
    assert len(first["logprobs"]["content"]) == len(new)
    assert all(len(entry["top_logprobs"]) == 2 for entry in first["logprobs"]["content"])


def test_completion_generation_stops_at_stop_string(server: Server, direct: Direct) -> None:
    for text in korean_corpus()[:60]:
        prompt = text[: len(text) // 2]
        free = server.post("/completions", {"prompt": prompt, "max_tokens": 8, "temperature": 0}).json()
        generated = free["choices"][0]["text"]
        if len(generated) >= 2:
            break
    else:
        pytest.fail("the tiny model never generated two characters")
    assert generated == direct.text(direct.generate(direct.tokenizer(prompt).input_ids, 8))
    stop = generated[1]
    cut = server.post("/completions", {"prompt": prompt, "max_tokens": 8, "temperature": 0,
                                       "stop": [stop, "없는말"]}).json()["choices"][0]
    assert cut["text"] == generated[: generated.index(stop)]
    assert cut["finish_reason"] == "stop"


# --------------------------------------------------------------------------- errors and the API key


@pytest.mark.parametrize(("body", "code"), [
    ({"prompt": "안녕", "max_tokens": "3"}, "invalid_request"),
    ({"prompt": [1.5, 2]}, "invalid_prompt"),
    ({"prompt": [True, 3]}, "invalid_prompt"),
    ({"prompt": {"text": "x"}}, "invalid_prompt"),
    ({"prompt": "안녕", "echo": "yes"}, "invalid_request"),
    ({"prompt": "안녕", "n": 2}, "unsupported"),
    ({"prompt": "안녕", "stream": True}, "unsupported"),
    ({"prompt": "안녕", "logprobs": 21}, "invalid_request"),
    ({"prompt": []}, "empty_prompt"),
    ({"prompt": [[]]}, "empty_prompt"),
    ({"prompt": [5] * 1025, "max_tokens": 0}, "context_length_exceeded"),
    ({"prompt": [5] * 1000, "max_tokens": 100}, "context_length_exceeded"),
    ({"prompt": [5, 1200]}, "invalid_token_id"),
    ({"prompt": [[5], [-1]]}, "invalid_token_id"),
])
def test_bad_completion_requests_are_400(server: Server, body: dict[str, Any], code: str) -> None:
    _assert_error(server.post("/completions", body), 400, code)


def test_context_boundary_is_accepted(server: Server) -> None:
    response = server.post("/completions", {"prompt": [5] * 1024, "max_tokens": 1, "temperature": 0})
    assert response.status_code == 200, response.text


def test_bad_chat_requests_are_400(server: Server) -> None:
    _assert_error(server.post("/chat/completions", {"messages": []}), 400, "invalid_request")
    _assert_error(server.post("/chat/completions", {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:,"}}]}]}), 400, "unsupported")
    _assert_error(server.post("/chat/completions", {"messages": [{"role": "user"}], "max_tokens": 0}), 400)


def test_malformed_json_and_unknown_model(server: Server) -> None:
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    for raw in (b'{"prompt": ', b"[1, 2]", b"\xff\xfe"):
        response = httpx.post(f"{server.url}/completions", content=raw, headers=headers, timeout=REQUEST_TIMEOUT_S)
        _assert_error(response, 400, "invalid_json")
    error = _assert_error(server.post("/completions", {"model": "other", "prompt": "안녕"}), 404, "model_not_found")
    assert server.model in error["message"]
    _assert_error(server.post("/chat/completions", {"model": "other", "messages": [{"role": "user", "content": "x"}]}),
                  404, "model_not_found")
    _assert_error(server.get("/nothing"), 404)


def test_api_key_is_enforced(server: Server) -> None:
    body = {"prompt": "안녕", "max_tokens": 0}
    _assert_error(server.post("/completions", body, key=None), 401, "invalid_api_key")
    _assert_error(server.post("/completions", body, key="wrong"), 401, "invalid_api_key")
    _assert_error(server.post("/chat/completions", {"messages": [{"role": "user", "content": "x"}]}, key=KEY + "x"),
                  401, "invalid_api_key")
    _assert_error(server.get("/models", key=None), 401, "invalid_api_key")
    basic = httpx.post(f"{server.url}/completions", json=body, headers={"Authorization": f"Basic {KEY}"},
                       timeout=REQUEST_TIMEOUT_S)
    _assert_error(basic, 401, "invalid_api_key")
    assert server.post("/completions", body).status_code == 200
    assert server.health()["status"] == "ok"  # health needs no key


def _raw_request(url: str, head: bytes) -> tuple[int, dict[str, Any]]:
    """Send only request headers (a body is announced but never sent) and read the response."""
    host, port = url.removeprefix("http://").split("/")[0].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=REQUEST_TIMEOUT_S) as sock:
        sock.sendall(head)
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        header, _, body = data.partition(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in header.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")))
        while len(body) < length:
            body += sock.recv(65536)
    return int(header.split(b" ")[1]), json.loads(body)


def test_oversized_body_is_413_before_it_is_read(server: Server) -> None:
    head = (f"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {KEY}\r\n"
            "Content-Type: application/json\r\nContent-Length: 40000000\r\n\r\n").encode()
    status, body = _raw_request(server.url, head)
    assert status == 413 and body["error"]["code"] == "request_too_large"


# --------------------------------------------------------------------------- failures inside the server


def _poisoned_copy(src: Path, dst: Path) -> Path:
    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dst)
    [weights] = sorted(dst.glob("*.safetensors"))
    tensors = load_file(weights)
    tensors["lm_head.weight"] = torch.full_like(tensors["lm_head.weight"], float("nan"))
    save_file(tensors, weights, metadata={"format": "pt"})
    return dst


def test_model_failure_is_500_and_streamed_body_is_limited(tiny_dir: Path, tmp_path: Path) -> None:
    from simsa.bench.server import create_app

    app = create_app(_poisoned_copy(tiny_dir, tmp_path / "nan-model"), max_body_bytes=4096)

    async def chunks() -> Any:
        for _ in range(4):
            yield b" " * 2048

    async def exercise() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://serve.test") as client:
            return [await client.post("/v1/completions", json={"prompt": "안녕", "max_tokens": 0, "echo": True,
                                                                "logprobs": 1}),
                    await client.post("/v1/chat/completions",
                                      json={"messages": [{"role": "user", "content": "안녕"}], "max_tokens": 3}),
                    await client.post("/v1/completions", content=chunks())]

    try:
        scored, chatted, streamed = asyncio.run(exercise())
    finally:
        app.state.worker.close()
    assert "NaN" in _assert_error(scored, 500, "model_error")["message"]
    _assert_error(chatted, 500, "model_error")
    _assert_error(streamed, 413, "request_too_large")


def test_bad_model_directory_is_an_input_error(tmp_path: Path) -> None:
    result = subprocess.run(serve_command(tmp_path, "--port", "0", "--json"), capture_output=True, text=True,
                            timeout=START_TIMEOUT_S)
    assert result.returncode == 2
    assert "config.json" in result.stderr and "Traceback" not in result.stderr
