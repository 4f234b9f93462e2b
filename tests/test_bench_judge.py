"""LLM-as-judge generation tasks: extraction, the Korean check, question files, prompts, verdict rules, the chat
clients against a real loopback HTTP server (tests/judge_server.py) with injected faults, the runner in both modes
with caching, and in-process generation with a tiny trained model.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from judge_server import Fault, JudgeServer
from simsa.bench.chat import (
    ChatClient,
    ChatRequestError,
    GenSettings,
    HFChatClient,
    OpenAIChatClient,
    TokenBucket,
    truncate_at_stop,
)
from simsa.bench.identity import weights_sha256
from simsa.bench.judge import (
    PROMPTS,
    QuestionFileError,
    QuestionSet,
    extract_answer,
    language_check,
    load_questions,
    parse_pairwise,
    parse_questions,
    parse_rubric,
    run_judge_task,
    sample_questions,
    select_prompt,
)
from simsa.bench.judge.cache import call_key
from simsa.bench.judge.judging import majority, pair_item, rubric_item, swap_vote
from simsa.bench.judge.summary import bootstrap_ci, spearman_agreement
from simsa.errors import InputError

FAST = {"backoff_base": 0.01, "backoff_max": 0.05, "timeout": 5.0}


class DictStore:
    """The ItemStore protocol in a dict, counting reads and writes."""

    def __init__(self) -> None:
        self.data: dict[str, dict] = {}
        self.gets = self.puts = 0

    def get(self, key: str) -> dict | None:
        self.gets += 1
        value = self.data.get(key)
        return json.loads(json.dumps(value)) if value is not None else None  # as a database would: a copy

    def put(self, key: str, value: dict, scope: str | None = None) -> None:
        self.puts += 1
        self.data[key] = json.loads(json.dumps(value))


# --------------------------------------------------------------------------- extraction and verdicts


@pytest.mark.parametrize(("text", "answer", "reasoning", "flags"), [
    ("그냥 답입니다.", "그냥 답입니다.", "", ()),
    ("<think>먼저 생각</think>\n답입니다.", "답입니다.", "먼저 생각", ("reasoning_stripped",)),
    ("<thinking>a</thinking>x<reasoning>b</reasoning>y", "xy", "a\nb", ("reasoning_stripped",)),
    ("<THINK>upper</THINK>답", "답", "upper", ("reasoning_stripped",)),
    ("<think>생각이 끝나지 않았", "", "생각이 끝나지 않았", ("truncated_reasoning", "empty_answer")),
    ("서두 <think>끝나지 않은 생각", "", "서두\n끝나지 않은 생각", ("truncated_reasoning", "empty_answer")),
    ("템플릿이 연 생각</think>최종 답", "최종 답", "템플릿이 연 생각", ("unopened_reasoning",)),
    ("<think>a <reasoning>nested</think>답", "답", "a <reasoning>nested", ("reasoning_stripped",)),
    ("<think></think>", "", "", ("reasoning_stripped", "empty_answer")),
])
def test_extract_answer(text: str, answer: str, reasoning: str, flags: tuple[str, ...]) -> None:
    ex = extract_answer(text)
    assert (ex.answer, ex.reasoning, ex.flags) == (answer, reasoning, flags)


@pytest.mark.parametrize(("text", "score"), [
    ("좋습니다. [[7]]", 7.0),
    ("Rating: [[7.5]]", 7.5),
    ("평점: [[ 9 ]]", 9.0),
    ("Rating: [[8/10]]", 8.0),
    ("설명...\n점수: 7", 7.0),
    ("Score: 6/10", 6.0),
    ("평점: 4점", 4.0),
    ("<think>[[2]]일까?</think>최종 평점: [[8]]", 8.0),
    ("[[7]] ... 다시 말해 [[7]]", 7.0),
    ("[[3]] 아니 [[9]]", None),  # contradictory: never guessed
    ("[[11]]", None),
    ("[[0]]", None),
    ("I cannot grade this.", None),
    ("<think>평점: [[8]]", None),  # the verdict only in unfinished reasoning
    ("[[rating]]", None),
])
def test_parse_rubric(text: str, score: float | None) -> None:
    assert parse_rubric(text) == score


@pytest.mark.parametrize(("text", "verdict"), [
    ("A가 낫다. [[A]]", "A"),
    ("최종 판정: [[B]]", "B"),
    ("비슷합니다 [[C]]", "tie"),
    ("[[a]]", "A"),
    ("<think>[[A]]?</think>[[B]]", "B"),
    ("[[A]] 아니면 [[B]]", None),
    ("A is better", None),
])
def test_parse_pairwise(text: str, verdict: str | None) -> None:
    assert parse_pairwise(text) == verdict


# --------------------------------------------------------------------------- the Korean check


def test_language_check() -> None:
    assert language_check("안녕하세요, 반갑습니다.").passed
    english = language_check("Hello, this answer is in English.")
    assert not english.passed and english.share == 0.0 and "< 0.50" in english.reason
    # code, URLs, math, numbers and punctuation do not count against a Korean answer
    mixed = ("다음 함수를 보세요:\n```python\ndef square_even(values):\n    return [v * v for v in values]\n```\n"
             "자세한 내용은 https://docs.python.org/ko/3/tutorial 을 참고하고 `list comprehension` 을 쓰면 "
             "$x^2 + y$ 입니다.")
    check = language_check(mixed)
    assert check.passed and check.share == 1.0
    assert language_check("12 + 30 = 42").share is None and language_check("12 + 30 = 42").passed
    assert language_check("").passed
    half = language_check("가나 ab")  # 2 of 4 letters: the bound is inclusive
    assert half.share == 0.5 and half.passed
    assert not language_check("가나 ab", min_share=0.6).passed
    assert language_check("English is fine here", expected="en").passed
    assert language_check("anything", expected="any").passed
    with pytest.raises(ValueError, match="unknown language"):
        language_check("x", expected="xx")


# --------------------------------------------------------------------------- question files


def _jsonl(*objs: object) -> bytes:
    return "\n".join(o if isinstance(o, str) else json.dumps(o, ensure_ascii=False) for o in objs).encode("utf-8")


GOOD = {"id": "q1", "category": "수학", "questions": ["1+1은?", "2+2는?"], "references": ["2", None]}


@pytest.mark.parametrize(("second", "message"), [
    ("{not json", "q.jsonl:3: invalid JSON"),
    ('["a list"]', "q.jsonl:3: expected a JSON object"),
    ({"id": "q2", "category": "수학"}, "q.jsonl:3: missing required key 'questions'"),
    ({"id": "q2", "category": "수학", "questions": []}, "q.jsonl:3: 'questions' must be a non-empty list"),
    ({"id": "q2", "category": "수학", "questions": ["a", 3]}, "q.jsonl:3: 'questions'[1] must be a non-empty string"),
    ({"id": "q2", "category": "", "questions": ["a"]}, "q.jsonl:3: 'category' must be a non-empty string"),
    ({"id": True, "category": "c", "questions": ["a"]}, "q.jsonl:3: 'id' must be"),
    ({"id": "q2", "category": "c", "questions": ["a", "b"], "references": ["x"]},
     "q.jsonl:3: 'references' must be a list of the same length as 'questions' (2)"),
    ({"id": "q2", "category": "c", "questions": ["a"], "references": [""]}, "q.jsonl:3: 'references'[0]"),
    ({"id": "q2", "category": "c", "questions": ["a"], "turns": 1}, "q.jsonl:3: unknown key(s) turns"),
    ({"id": "q2", "category": "c", "questions": ["a"], "language": "fr"}, "q.jsonl:3: 'language' must be one of"),
    ({"id": "q1", "category": "c", "questions": ["a"]}, "q.jsonl:3: duplicate id 'q1' (first on line 1)"),
])
def test_question_file_errors_name_the_line(second: object, message: str) -> None:
    with pytest.raises(QuestionFileError) as err:
        parse_questions(_jsonl(GOOD, "", second), "q.jsonl")
    assert str(err.value).startswith(message)
    assert err.value.line == 3 and isinstance(err.value, InputError)


def test_question_files_load(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + _jsonl(GOOD, {"id": 7, "category": "c", "questions": ["only"]}) + b"\n")
    qs = load_questions(path)
    assert [q.id for q in qs] == ["q1", "7"] and qs.questions[0].reference(1) == "2"
    assert qs.questions[0].reference(2) is None and qs.questions[1].references is None
    assert qs.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(QuestionFileError, match="no questions"):
        parse_questions(b"\n\n", "empty.jsonl")
    with pytest.raises(QuestionFileError, match=r"bad\.jsonl:2: not UTF-8"):
        parse_questions(_jsonl(GOOD) + b"\n\xff\xfe", "bad.jsonl")
    with pytest.raises(QuestionFileError, match="cannot read"):
        load_questions(tmp_path / "missing.jsonl")


def test_sample_questions() -> None:
    qs = sample_questions()
    assert len(qs) == 12 and all(len(q.turns) == 2 for q in qs)
    assert set(qs.categories()) == {"추론", "수학", "글쓰기", "코딩", "이해", "문법"}
    for q in qs:
        assert all(language_check(t).passed for t in q.turns)
        if q.category in ("추론", "수학"):
            assert q.references is not None and all(r is not None for r in q.references)
    assert len(qs.sha256) == 64 and qs.describe()["turns"] == 24


# --------------------------------------------------------------------------- prompts

# Released prompts. A failure here means a prompt's text changed: bump its version and add the new hash; never
# edit a released (name, version) in place.
PINNED = {
    ("ko-rubric-single", 1): "4f379995d900f44ba7a45f9642dd9cd44a03856c0e266ea4c4aa4dda1af99e18",
    ("ko-rubric-single-ref", 1): "287463908d14ff31ef862b6922aec17c8a15ff7eb848f174d1c369b0fa095d94",
    ("ko-rubric-multi", 1): "6780c1c6cdceb27a18bcc06a9356b897f58c68422057af9b5800d82cb5291cba",
    ("ko-rubric-multi-ref", 1): "2b084e69a77414dde29531da1e8a8c8c5ba34d6e894877e3c47e5d6efd25cda5",
    ("ko-pair-single", 1): "76b9ca7b0e014708f71e3bd3ef15de25b52bb38880061928a515d2a459a8dffc",
    ("ko-pair-single-ref", 1): "2b855af82cb905bb9b28717380fa962c745b0241237f8d20ba8c8c45cbae0982",
    ("ko-pair-multi", 1): "af60b0f288e8f29e5b44f542ebb95b7edddf7f48975675536dc4bfe0afb7d4d5",
    ("ko-pair-multi-ref", 1): "d69fa6c1acf6796b15f27969dc410f1529e84899f0cb66239ca2bc18e2eb9462",
}


def test_prompts_are_pinned_to_their_versions() -> None:
    assert {(p.name, p.version): p.sha256 for p in PROMPTS.values()} == PINNED


def test_prompts_render() -> None:
    single = select_prompt("rubric", 1, False).render(["질문?"], ["답변."])
    assert single[0]["role"] == "system" and "질문?" in single[1]["content"] and "답변." in single[1]["content"]
    assert "[[N]]" in single[1]["content"]
    multi = select_prompt("rubric", 2, True).render(["첫 질문", "둘째 질문"], ["첫 답", "둘째 답"], [None, "참고2"])
    text = multi[1]["content"]
    expected = ("첫 질문", "둘째 질문", "첫 답", "둘째 답", "참고2", "(참고 답안 없음)", "2번째 질문")
    assert all(s in text for s in expected)
    pair = select_prompt("pairwise", 2, False).render(["q1", "q2"], ["a1", "a2"], answers_b=["b1", "b2"])[1]["content"]
    assert pair.index("a2") < pair.index("b1") and "[[C]]" in pair
    answer_with_braces = select_prompt("rubric", 1, False).render(["{x}"], ["{answer} }{"])[1]["content"]
    assert "{answer} }{" in answer_with_braces
    with pytest.raises(ValueError, match="reference"):
        select_prompt("rubric", 1, True).render(["q"], ["a"], [None])
    with pytest.raises(ValueError, match="unknown judge mode"):
        select_prompt("elo", 1, False)


# --------------------------------------------------------------------------- verdict rules and statistics


def test_swap_votes_and_majority() -> None:
    assert swap_vote("A", "B") == ("win", False)  # candidate as A wins, and as B wins
    assert swap_vote("B", "A") == ("loss", False)
    assert swap_vote("A", "A") == ("tie", True)  # position bias
    assert swap_vote("tie", "tie") == ("tie", False)
    assert swap_vote("A", "tie") == ("tie", True)
    assert swap_vote(None, "A") == (None, False)
    assert majority(["win", "win", "tie"]) == "win"
    assert majority(["win", "loss"]) == "tie"
    assert majority(["loss", None, None]) == "loss"
    assert majority([None]) is None
    assert pair_item(["win"], candidate_ok=False, baseline_ok=True) == ("win", "loss",
                                                                       "language: candidate answer failed the check")
    assert pair_item(["loss"], candidate_ok=True, baseline_ok=False)[1] == "win"
    assert pair_item(["loss"], candidate_ok=False, baseline_ok=False) == ("loss", "loss", None)
    assert rubric_item([7, None, 8], True) == (7.5, 7.5, None)
    assert rubric_item([9], False)[:2] == (9, 1.0)
    assert rubric_item([None], True) == (None, None, None)


def test_bootstrap_and_agreement() -> None:
    groups = [[1.0, 2.0], [5.0, 6.0], [9.0, 10.0], [3.0, 4.0]]
    ci = bootstrap_ci(groups, seed=3)
    assert ci is not None and ci[0] < 5.5 < ci[1] and ci == bootstrap_ci(groups, seed=3)
    assert bootstrap_ci([[1.0]]) is None
    agree = spearman_agreement({"a": [1, 2, 3, 4], "b": [2, 3, 4, 5], "c": [4, 3, 2, None]})
    assert agree is not None and agree["pairs"]["a ~ b"] == pytest.approx(1.0)
    assert agree["pairs"]["a ~ c"] == pytest.approx(-1.0)
    assert spearman_agreement({"a": [1, 2, 3]}) is None
    assert spearman_agreement({"a": [1, 2, 3], "b": [5, 5, 5]})["value"] is None  # constant: undefined


def test_token_bucket_spacing() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(round(s, 6))

    bucket = TokenBucket(rate=4, burst=2, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        bucket.acquire()
    assert slept == [0.25, 0.5, 0.75]  # two at once, then one every 1/4 s


def test_cache_key_covers_what_decides_the_output() -> None:
    ident = {"kind": "openai", "model": "m", "sha256": None, "base_url": "http://x/v1"}
    msgs = [{"role": "user", "content": "안녕"}]
    key = call_key(ident, msgs, GenSettings())
    assert key == call_key(dict(reversed(ident.items())), msgs, GenSettings())
    assert key != call_key({**ident, "sha256": "ab"}, msgs, GenSettings())
    assert key != call_key(ident, msgs, GenSettings(seed=1))
    assert key != call_key(ident, msgs, GenSettings(), PROMPTS["ko-rubric-single"].ref())
    assert truncate_at_stop("abc<|end|>def", ["<|end|>", "d"]) == ("abc", True)


# --------------------------------------------------------------------------- the HTTP client


@pytest.fixture(scope="module")
def http_server() -> Iterator[JudgeServer]:
    srv = JudgeServer(sha256s={"ko-long": "f" * 64})
    yield srv
    srv.close()


@pytest.fixture
def server(http_server: JudgeServer) -> JudgeServer:
    http_server.reset()
    return http_server


def _client(server: JudgeServer, model: str, **kw: object) -> OpenAIChatClient:
    return OpenAIChatClient(server.base_url, model, **{**FAST, **kw})  # type: ignore[arg-type]


def test_client_identity_and_results_in_order(server: JudgeServer) -> None:
    client = _client(server, "ko-long", concurrency=4)
    assert isinstance(client, ChatClient)
    assert client.identity() == {"kind": "openai", "base_url": server.base_url, "model": "ko-long", "sha256": "f" * 64}
    assert _client(server, "ko-short").identity()["sha256"] is None  # not published: tolerated
    items = [[{"role": "user", "content": f"질문 번호 {i}"}] for i in range(12)]
    seen: list[tuple[int, int]] = []
    results = client.complete_many(items, GenSettings(), progress=lambda d, t: seen.append((d, t)))
    assert [f"질문 번호 {i}" in r.text for i, r in enumerate(results)] == [True] * 12
    assert seen[-1] == (12, 12) and results[0].finish_reason == "stop" and results[0].completion_tokens
    split = _client(server, "split-thinker").complete(items[0], GenSettings())
    assert split.text == "<think>Plan the answer first.</think>추론을 따로 보낸 한국어 답변입니다."
    client.identity()
    assert len([e for e in server.log if e.path.endswith("/models")]) == 2  # asked once per client


def test_retries_after_429_and_500(server: JudgeServer) -> None:
    server.inject(Fault(429, retry_after="0.15"), Fault(429, retry_after="0.15"), Fault(500), Fault(503))
    client = _client(server, "ko-short", max_retries=5)
    start = time.monotonic()
    result = client.complete([{"role": "user", "content": "안녕"}], GenSettings())
    elapsed = time.monotonic() - start
    assert result.text == "네, 알겠습니다."
    assert [e.status for e in server.chat_requests()] == [429, 429, 500, 503, 200]
    assert client.retries == 4 and elapsed >= 0.3  # Retry-After honoured


def test_retries_exhausted_and_4xx_fail_clearly(server: JudgeServer) -> None:
    server.inject(Fault(500), Fault(500), Fault(500))
    with pytest.raises(ChatRequestError) as err:
        _client(server, "ko-short", max_retries=2).complete([{"role": "user", "content": "x"}], GenSettings())
    msg = str(err.value)
    assert f"POST {server.base_url}/chat/completions failed after 3 attempts: HTTP 500" in msg
    assert err.value.status == 500 and len(server.chat_requests()) == 3
    server.reset()
    with pytest.raises(ChatRequestError, match=r"failed: HTTP 404: .*does not exist"):
        _client(server, "no-such-model", max_retries=5).complete([{"role": "user", "content": "x"}], GenSettings())
    assert len(server.chat_requests()) == 1  # a client error is not retried
    dead = OpenAIChatClient("http://127.0.0.1:9/v1", "m", max_retries=1, backoff_base=0.01, timeout=1.0)
    with pytest.raises(ChatRequestError, match=r"127\.0\.0\.1:9/v1/chat/completions failed after 2 attempts: "
                                               r"connection failed"):
        dead.complete([{"role": "user", "content": "x"}], GenSettings())


def test_timeouts_give_a_clear_error(server: JudgeServer) -> None:
    server.inject(Fault(delay=1.0), Fault(delay=1.0))
    client = _client(server, "ko-short", timeout=0.2, max_retries=1)
    start = time.monotonic()
    with pytest.raises(ChatRequestError, match=r"failed after 2 attempts: timed out after 0\.2 s"):
        client.complete([{"role": "user", "content": "x"}], GenSettings())
    assert time.monotonic() - start < 0.9 and len(server.chat_requests()) == 2


def test_rate_limit_bounds_the_request_rate(server: JudgeServer) -> None:
    client = _client(server, "ko-short", concurrency=4, rate_limit_rps=20)
    client.complete_many([[{"role": "user", "content": str(i)}] for i in range(10)], GenSettings())
    times = sorted(e.at for e in server.chat_requests())
    assert len(times) == 10 and times[-1] - times[0] >= 9 / 20 * 0.8  # 10 requests at 20/s take ~0.45 s
    assert all(later - earlier >= 4 / 20 * 0.5 for earlier, later in zip(times, times[4:], strict=False))


# --------------------------------------------------------------------------- the runner

SAMPLE = sample_questions()


def _subset(n: int) -> QuestionSet:
    return QuestionSet(source=SAMPLE.source, sha256=SAMPLE.sha256, questions=SAMPLE.questions[:n])


def test_pairwise_position_bias_is_cancelled_by_the_swap(server: JudgeServer) -> None:
    run = run_judge_task(_client(server, "ko-long"), [_client(server, "judge-a")], SAMPLE, "pairwise",
                         baseline=_client(server, "ko-short"), store=DictStore())
    s = run.summary
    assert s["win_rate"] == 0.5 and s["ties"] == 24 and s["counts"]["inconsistent_swaps"] == 24
    assert all(j.inconsistent and j.verdict_ab == j.verdict_ba == "A" for i in run.items for j in i.judgements)
    assert s["judge_agreement"] is None and s["ci95"] == [0.5, 0.5]
    assert {p["name"] for p in s["prompts"]} == {"ko-pair-single", "ko-pair-single-ref", "ko-pair-multi",
                                                 "ko-pair-multi-ref"}
    assert len(server.chat_requests("judge-a")) == 48  # every item judged in both orders


def test_pairwise_hangul_judge_gives_a_consistent_winner(server: JudgeServer) -> None:
    judge = _client(server, "judge-hangul")
    run = run_judge_task(_client(server, "ko-long"), [judge], SAMPLE, "pairwise",
                         baseline=_client(server, "ko-short"))
    assert run.summary["win_rate"] == 1.0 and run.summary["counts"]["inconsistent_swaps"] == 0
    assert {j.verdict_ab + j.verdict_ba for i in run.items for j in i.judgements} == {"AB"}
    reverse = run_judge_task(_client(server, "ko-short"), [judge], SAMPLE, "pairwise",
                             baseline=_client(server, "ko-long"))
    assert reverse.summary["win_rate"] == 0.0 and reverse.summary["losses"] == 24
    assert reverse.summary["by_turn"]["2"] == {"n": 12, "win_rate": 0.0, "wins": 0, "losses": 12, "ties": 0}


def test_pairwise_ensemble_majority(server: JudgeServer) -> None:
    judges = [_client(server, "judge-hangul"), _client(server, "judge-a"), _client(server, "judge-hangul@2")]
    run = run_judge_task(_client(server, "ko-long"), judges, _subset(4), "pairwise",
                         baseline=_client(server, "ko-short"))
    assert run.summary["win_rate"] == 1.0  # two consistent votes for the candidate beat one inconsistent tie
    assert [j.vote for j in run.items[0].judgements] == ["win", "tie", "win"]
    assert run.summary["counts"]["inconsistent_swaps"] == 8
    assert run.summary["judge_agreement"] == {"method": "unanimous_share", "value": 0.0, "items": 8}
    assert [j["label"] for j in run.judges] == ["judge-hangul", "judge-a", "judge-hangul@2"]
    tie = run_judge_task(_client(server, "ko-long"), judges[:2], _subset(2), "pairwise",
                         baseline=_client(server, "ko-short"))
    assert tie.summary["win_rate"] == 0.5  # one win against one tie: no majority


def test_pairwise_language_penalty(server: JudgeServer) -> None:
    judge = [_client(server, "judge-a")]
    run = run_judge_task(_client(server, "english"), judge, _subset(3), "pairwise",
                         baseline=_client(server, "ko-short"))
    assert run.summary["win_rate"] == 0.0 and run.summary["counts"]["penalised_items"] == 6
    assert {i.judged for i in run.items} == {"tie"} and {i.outcome for i in run.items} == {"loss"}
    both = run_judge_task(_client(server, "english"), judge, _subset(3), "pairwise",
                          baseline=_client(server, "english@2"))
    assert both.summary["win_rate"] == 0.5 and both.summary["counts"]["penalised_items"] == 0
    assert both.summary["counts"]["baseline_language_failures"] == 6


def test_rubric_ensemble_unparseable_and_reasoning_judges(server: JudgeServer) -> None:
    judges = [_client(server, m) for m in ("judge-seven", "judge-garbage", "judge-think", "judge-fallback")]
    run = run_judge_task(_client(server, "ko-long"), judges, SAMPLE, "rubric", store=DictStore())
    s = run.summary
    assert s["mean"] == pytest.approx(7.0) and s["mean_0_1"] == pytest.approx(6 / 9)
    assert s["counts"]["unparseable_verdicts"] == 24 and s["counts"]["language_failures"] == 0
    assert [j.score for j in run.items[0].judgements] == [7.0, None, 8.0, 6.0]
    assert run.items[0].judgements[1].raw == "I'd rather not grade this one."  # kept for the record
    assert set(s["by_category"]) == set(SAMPLE.categories()) and set(s["by_turn"]) == {"1", "2"}
    assert s["questions_sha256"] == SAMPLE.sha256 and s["scale"] == [1, 10]
    assert {(p["name"], p["version"]) for p in run.prompts} == {(n, 1) for n in (
        "ko-rubric-single", "ko-rubric-single-ref", "ko-rubric-multi", "ko-rubric-multi-ref")}
    assert all(len(p["sha256"]) == 64 for p in run.prompts)
    json.dumps(run.to_dict(), ensure_ascii=False)


def test_rubric_penalises_an_english_answer(server: JudgeServer) -> None:
    run = run_judge_task(_client(server, "english"), [_client(server, "judge-seven")], _subset(3), "rubric")
    assert {i.judged for i in run.items} == {7.0} and {i.score for i in run.items} == {1.0}
    assert run.summary["mean"] == 1.0 and run.summary["mean_0_1"] == 0.0
    assert run.summary["counts"]["language_failures"] == 6 and run.items[0].penalty.startswith("language")
    assert run.items[0].answer.language.share == 0.0


def test_rubric_judge_agreement_and_interval(server: JudgeServer) -> None:
    judges = [_client(server, "judge-hangul"), _client(server, "judge-len")]
    run = run_judge_task(_client(server, "ko-long"), judges, SAMPLE, "rubric", bootstrap_seed=5)
    s = run.summary
    assert s["judge_agreement"]["method"] == "spearman" and s["judge_agreement"]["value"] > 0.5
    assert s["ci95"][0] <= s["mean"] <= s["ci95"][1] and s["ci95"][0] < s["ci95"][1]
    again = run_judge_task(_client(server, "ko-long"), judges, SAMPLE, "rubric", bootstrap_seed=5)
    assert again.summary["ci95"] == s["ci95"]


def test_multi_turn_history_and_reasoning_stripped(server: JudgeServer) -> None:
    run = run_judge_task(_client(server, "thinker"), [_client(server, "judge-seven")], _subset(2), "rubric")
    first = run.items[0].answer
    assert first.text == "생각을 마친 뒤의 한국어 답변입니다." and first.flags == ("reasoning_stripped",)
    assert first.reasoning == "The user writes Korean, so I answer in Korean."
    turn2 = [e.messages for e in server.chat_requests("thinker") if len(e.messages or []) == 3]
    assert len(turn2) == 2 and turn2[0][1] == {"role": "assistant", "content": "생각을 마친 뒤의 한국어 답변입니다."}
    judged = [e.messages[1]["content"] for e in server.chat_requests("judge-seven")]
    assert all("<think>" not in m and "The user writes" not in m for m in judged)
    server.reset()
    run = run_judge_task(_client(server, "ko-long"), [_client(server, "judge-seven")], _subset(1), "rubric")
    assert [i.answer.text.split("번째")[0] for i in run.items] == ["1", "2"]


def test_second_run_with_the_same_store_computes_nothing(server: JudgeServer) -> None:
    store = DictStore()
    args = (_client(server, "ko-long"), [_client(server, "judge-hangul"), _client(server, "judge-seven")], SAMPLE)
    stages: list[tuple[str, int, int]] = []
    first = run_judge_task(*args, "rubric", store=store, progress=lambda *a: stages.append(a))
    assert first.computed == 24 + 48 and first.cached == 0
    assert ("candidate turn 2", 12, 12) in stages
    requests = len(server.chat_requests())
    second = run_judge_task(*args, "rubric", store=store)
    assert (second.computed, second.cached) == (0, 72) and len(server.chat_requests()) == requests
    assert second.to_dict()["items"] == first.to_dict()["items"]
    assert second.summary == first.summary
    # other judge settings: the answers are reused, every judge call is made again
    third = run_judge_task(*args, "rubric", store=store, judge_settings=GenSettings(max_tokens=256))
    assert (third.computed, third.cached) == (48, 24)


def test_runner_refuses_bad_arguments(server: JudgeServer) -> None:
    cand = _client(server, "ko-long")
    with pytest.raises(InputError, match="needs a baseline"):
        run_judge_task(cand, [cand], SAMPLE, "pairwise")
    with pytest.raises(InputError, match="unknown judge mode"):
        run_judge_task(cand, [cand], SAMPLE, "elo")
    with pytest.raises(InputError, match="at least one judge"):
        run_judge_task(cand, [], SAMPLE, "rubric")


# --------------------------------------------------------------------------- in-process generation


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from simsa.bench.tinymodels import TinySpec, build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("judge-tiny"), TinySpec(steps=30))


def test_hf_client_is_deterministic(tiny_model: Path, server: JudgeServer) -> None:
    client = HFChatClient(tiny_model)
    ident = client.identity()
    assert ident["kind"] == "hf" and ident["sha256"] == weights_sha256(tiny_model) and len(ident["sha256"]) == 64
    messages = [{"role": "user", "content": "안녕하세요? 오늘 날씨를 알려 주세요."}]
    greedy = GenSettings(max_tokens=12)
    a, b = client.complete(messages, greedy), client.complete(messages, greedy)
    assert a == b and a.text and a.completion_tokens and a.completion_tokens <= 12
    sampled = GenSettings(max_tokens=12, temperature=1.0, seed=7)
    assert client.complete(messages, sampled) == client.complete(messages, sampled)
    cut = a.text[len(a.text) // 2:][:2]
    if cut.strip():
        stopped = client.complete(messages, GenSettings(max_tokens=12, stop=(cut,)))
        assert stopped.finish_reason == "stop" and stopped.text == a.text[:a.text.find(cut)]
    # an in-process candidate judged over HTTP
    run = run_judge_task(client, [_client(server, "judge-len")], _subset(2), "rubric",
                         gen_settings=GenSettings(max_tokens=8))
    assert run.summary["counts"]["items"] == 4 and run.candidate["sha256"] == ident["sha256"]
