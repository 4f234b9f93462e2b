"""Arena hygiene: the identity-leak filter, exact/near-duplicate prompts and the anomalous-rater test."""

from __future__ import annotations

import time

import numpy as np
import pytest

from simsa.arena.leak import LeakFilter
from simsa.arena.prompts import PromptIndex, PromptKey, find_duplicate, normalise_prompt, prompt_key, similarity
from simsa.errors import InputError

TERMS = {
    "baekdu": ["백두팀", "백두", "Baekdu", "baekdu-32b", "Mountain Labs", "김철수"],
    "halla": ["한라", "Halla", "halla-omni-14b", "Jeju AI"],
    "jiri": ["Jiri", "지리산랩"],
}


@pytest.fixture(scope="module")
def leak_filter():
    return LeakFilter.from_terms(TERMS, allow=["한라산", "지리산"])


@pytest.mark.parametrize(("text", "owner", "hit"), [
    ("저는 백두팀이 개발한 언어 모델입니다.", "baekdu", "백두팀"),
    ("저는 백두 팀에서 만든 모델이에요.", "baekdu", "백두 팀"),
    ("백두팀은 2025년에 설립되었습니다.", "baekdu", "백두팀"),
    ("이 모델은 한라가 학습시켰습니다.", "halla", "한라"),
    ("I am Baekdu, a helpful assistant.", "baekdu", "Baekdu"),
    ("As BAEKDU-32B I cannot browse the web.", "baekdu", "BAEKDU-32B"),
    ("Model: baekdu_32b (instruct)", "baekdu", "baekdu_32b"),
    ("I'm Baekdu 32B.", "baekdu", "Baekdu 32B"),
    ("I am ＢＡＥＫＤＵ, trained in Korea.", "baekdu", "ＢＡＥＫＤＵ"),
    ("I am Bae\u200bkdu.", "baekdu", "Bae\u200bkdu"),
    ("Signed: **Hal**la", "halla", "Hal**la"),
    ("This is `halla-omni-14b` speaking.", "halla", "halla-omni-14b"),
    ("halla omni 14b는 한국어를 잘합니다.", "halla", "halla omni 14b"),
    ("Halla's answer follows.", "halla", "Halla"),
    ("Halla는 제주에서 만들어졌습니다.", "halla", "Halla"),
    ("Developed by mountain-labs in Seoul.", "baekdu", "mountain-labs"),
    ("Built by JEJU AI.", "halla", "JEJU AI"),
    ("Jiri, the assistant, at your service.", "jiri", "Jiri"),
    ("개발자 김철수 드림", "baekdu", "김철수"),
])
def test_leaks_are_caught(leak_filter, text, owner, hit):
    leaks = leak_filter.find(text)
    assert [leak.owner for leak in leaks] == [owner], leaks
    leak = leaks[0]
    assert text[leak.start:leak.end] == hit == leak.text
    assert owner in leak.reason()


@pytest.mark.parametrize("text", [
    "The word jiritsu means independence in Japanese.",
    "We climbed Hallasan last spring.",
    "한라산은 제주도에 있는 산입니다.",
    "지리산 둘레길을 걸었다.",
    "Baekdusan is the highest mountain on the peninsula.",
    "Shall all answers be short? Hal la is not a name.",
    "A small lab in Seoul trained a 32B model.",
    "I am an AI assistant created to help you with coding questions.",
    "저는 인공지능 언어 모델입니다. 무엇을 도와드릴까요?",
])
def test_false_positives(leak_filter, text):
    assert leak_filter.find(text) == ()


def test_a_separator_ends_a_word(leak_filter):
    # `Baekdusan` is one word and does not fire; `baekdu-mountain` is the name followed by a hyphen, and does
    assert [h.text for h in leak_filter.find("the baekdu-mountain range")] == ["baekdu"]


def test_several_owners_and_offsets(leak_filter):
    text = "Unlike Halla, I (Baekdu-32B) answer in Korean; 한라팀보다 낫죠."
    leaks = leak_filter.find(text)
    assert [(x.owner, x.text) for x in leaks] == [("halla", "Halla"), ("baekdu", "Baekdu-32B"), ("halla", "한라")]
    assert leak_filter.owners(text) == ("halla", "baekdu")
    assert leaks[1].to_dict()["term"] == "baekdu-32b"


def test_short_terms_refused_with_clear_error():
    with pytest.raises(InputError, match=r"too short.*'AI'.*'한'"):
        LeakFilter.from_terms({"x": ["AI", "한", "Okay name"]})
    LeakFilter.from_terms({"x": ["한라", "abc"]})  # two syllables / three letters are enough


def test_prompt_normalisation_and_exact_duplicates():
    assert normalise_prompt("  Hello,   WORLD!!  ") == "hello world"
    assert normalise_prompt("ＰＹＴＨＯＮ에서\t리스트란?") == "python에서 리스트란"
    a = prompt_key("What is the capital of Korea?")
    b = prompt_key("  what IS the capital   of korea ")
    assert a == b and similarity(a, b) == 1.0
    dup = find_duplicate(b, [prompt_key("unrelated question here"), a])
    assert dup is not None and dup.kind == "exact" and dup.index == 1
    with pytest.raises(InputError, match="empty"):
        prompt_key(" ?! ")


LONG_EN = ("I run a small logistics company with twelve trucks. Write a one-page plan for cutting our diesel costs by "
           "ten percent over the next year, covering route planning, driver training, tyre pressure and idling, "
           "and tell me which of these to start with first and why.")
LONG_KO = ("우리 회사는 트럭 열두 대를 운영하는 작은 물류 회사입니다. 내년 한 해 동안 경유 비용을 10퍼센트 줄이기 위한 "
           "한 페이지짜리 계획을 써 주세요. 경로 계획, 운전자 교육, 타이어 공기압, 공회전을 다루고 무엇부터 시작해야 "
           "하는지와 그 이유도 알려 주세요.")


def test_one_word_edits_are_near_duplicates_in_both_languages():
    for original, edited in [
        (LONG_EN, LONG_EN.replace("twelve", "fifteen")),
        (LONG_EN, LONG_EN.replace("diesel", "fuel")),
        (LONG_KO, LONG_KO.replace("열두", "열다섯")),
        (LONG_KO, LONG_KO.replace("작은", "중간 규모의")),
        (LONG_KO, LONG_KO.replace(" ", "")),  # spacing changes
    ]:
        dup = find_duplicate(prompt_key(edited), [prompt_key("hello there"), prompt_key(original)])
        assert dup is not None and dup.index == 1, (edited, dup)
        assert dup.kind == "near" or edited.replace(" ", "") == original.replace(" ", "")
        assert dup.similarity >= 0.8


def test_same_topic_different_prompts_are_not_duplicates():
    previous = [prompt_key(LONG_EN), prompt_key(LONG_KO)]
    for other in [
        "I run a small logistics company. How should I choose between leasing and buying our next five trucks?",
        "Write a one-page plan for a bakery to cut its electricity bill, covering ovens, lighting and staff habits.",
        "우리 물류 회사의 트럭 운전자 교육 프로그램을 한 페이지로 설계해 주세요. 안전과 연비를 모두 다뤄 주세요.",
        "경유 가격이 오르는 이유를 초등학생에게 설명해 주세요.",
    ]:
        key = prompt_key(other)
        assert find_duplicate(key, previous) is None, other
        assert max(similarity(key, p) for p in previous) < 0.5


def test_short_prompts():
    hi = prompt_key("hi")
    assert find_duplicate(prompt_key("Hi!"), [hi]).kind == "exact"
    assert find_duplicate(prompt_key("ho"), [hi]) is None
    assert find_duplicate(prompt_key("안녕"), [prompt_key("안녕하세요")]) is None


def test_keys_are_stable_and_round_trip():
    key = prompt_key("서울의 날씨를 알려 주세요")
    assert PromptKey.from_dict(key.to_dict()) == key
    # the signature is a fixed function of the text (no per-process hash seed): pin a few values
    again = prompt_key("서울의   날씨를 알려 주세요!")
    assert again.signature == key.signature and len(key.signature) == 128
    assert all(0 <= x < 2**31 for x in key.signature)
    with pytest.raises(InputError, match="128 hashes"):
        PromptKey.from_dict({"sha256": "x", "signature": [1, 2], "length": 3})
    with pytest.raises(InputError, match="threshold"):
        find_duplicate(key, [], threshold=0)


def test_ten_thousand_previous_prompts_checked_fast():
    rng = np.random.default_rng(0)
    words = ["model", "plan", "write", "explain", "트럭", "비용", "계획", "서울", "data", "python", "정책", "tax",
             "budget", "story", "poem", "회사", "학교", "energy", "weather", "recipe"]
    index = PromptIndex()
    for _ in range(10_000):
        index.add(prompt_key(" ".join(rng.choice(words, size=12))))
    index.add(prompt_key(LONG_EN))
    probe = prompt_key(LONG_EN.replace("twelve", "thirteen"))
    index.find(probe)  # build the array once (as a server does at start-up)
    start = time.perf_counter()
    for _ in range(10):
        dup = index.find(probe)
    elapsed = (time.perf_counter() - start) / 10
    assert dup is not None and dup.index == 10_000
    assert elapsed < 0.05, elapsed
    index.add(prompt_key("one more"))
    assert index.find(prompt_key("one more!")).kind == "exact"
    assert len(index) == 10_002
