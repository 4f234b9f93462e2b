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


# --- anomalous raters ---------------------------------------------------------------------------------------------

THETA = np.linspace(-1.5, 1.5, 8)  # true strengths of 8 entrants (log-odds)


def _simulate(seed: int, honest: int, per_rater: int, cheats: tuple[str, ...] = ()):
    """Raters interleaved in time, each on random pairs; honest votes follow Bradley–Terry with 10 % ties/both-bad.
    Cheats: "random" (a coin between the two answers), "against" (always the weaker model), "fan" (always entrant
    1, a weak one, when it is in the battle; honest otherwise), "left" (always the first-listed answer)."""
    from simsa.arena.votes import Votes

    rng = np.random.default_rng(seed)
    k = len(THETA)
    kinds = {f"{c}{i}": c for i, c in enumerate(cheats)}
    names = [f"honest{i}" for i in range(honest)] + list(kinds)
    order = np.repeat(np.array(names), per_rater)
    rng.shuffle(order)
    a = np.empty(len(order), dtype=np.int64)
    b = np.empty(len(order), dtype=np.int64)
    kind = np.empty(len(order), dtype=np.int8)
    for i, rater in enumerate(order):
        x, y = rng.choice(k, 2, replace=False)
        p = 1.0 / (1.0 + np.exp(THETA[y] - THETA[x]))
        vote = (2 + int(rng.random() < 0.3)) if rng.random() < 0.1 else (0 if rng.random() < p else 1)
        cheat = kinds.get(str(rater))
        if cheat == "random":
            vote = int(rng.integers(2))
        elif cheat == "against":
            vote = 0 if THETA[x] < THETA[y] else 1
        elif cheat == "fan" and 1 in (x, y):
            vote = 0 if x == 1 else 1
        elif cheat == "left":
            vote = 0
        a[i], b[i], kind[i] = x, y, vote
    return Votes(tuple(f"m{i}" for i in range(k)), a, b, kind), [str(r) for r in order]


def test_honest_raters_are_rarely_flagged():
    from simsa.arena.anomaly import anomalous_raters

    per_rater_flags = []
    family_flags = 0
    for seed in range(5):
        votes, raters = _simulate(seed, honest=200, per_rater=40)
        per_rater_flags += [r.flagged for r in anomalous_raters(votes, raters, alpha=0.05, correction="none")]
        family_flags += any(r.flagged for r in anomalous_raters(votes, raters, alpha=0.05))
    rate = float(np.mean(per_rater_flags))
    assert len(per_rater_flags) == 1000
    assert rate <= 0.05, rate  # each honest rater at level α without correction
    assert family_flags == 0  # with Bonferroni no honest rater among 200 is flagged (5 of 5 simulations)


def test_cheating_raters_are_flagged_with_evidence():
    from simsa.arena.anomaly import anomalous_raters

    cheats = ("random", "random", "against", "against", "fan", "fan", "left", "left")
    needed: dict[str, list[int | None]] = {c: [] for c in set(cheats)}
    for seed in range(3):
        votes, raters = _simulate(100 + seed, honest=150, per_rater=150, cheats=cheats)
        results = {r.rater: r for r in anomalous_raters(votes, raters, alpha=0.05)}
        assert not any(r.flagged for name, r in results.items() if name.startswith("honest"))
        for i, cheat in enumerate(cheats):
            needed[cheat].append(results[f"{cheat}{i}"].first_flag_at)
        against = results["against2"]
        assert against.p_value < 1e-6 and against.statistic > 6
        worst = against.evidence[0]
        assert worst.probability < 0.2 and worst.voted in (worst.model_a, worst.model_b)
        assert raters[worst.index] == "against2"
        assert against.to_dict()["evidence"][0]["history"] >= 10
    # votes needed to flag (Bonferroni over ~158 raters, α = 0.05); measured figures are in docs/arena-hygiene.md
    assert all(n is not None and n <= 25 for n in needed["against"]), needed
    assert all(n is not None and n <= 40 for n in needed["left"]), needed
    assert sum(n is not None for n in needed["fan"]) >= 5, needed
    assert sum(n is not None for n in needed["random"]) >= 4, needed


def test_anomaly_input_errors_and_untested_raters():
    from simsa.arena.anomaly import anomalous_raters
    from simsa.arena.votes import Votes

    votes = Votes.from_rows([("x", "y", "model_a"), ("x", "y", "tie"), ("y", "z", "both_bad")])
    with pytest.raises(InputError, match="3 votes"):
        anomalous_raters(votes, ["r1"])
    with pytest.raises(InputError, match="alpha"):
        anomalous_raters(votes, ["r1"] * 3, alpha=1.5)
    with pytest.raises(InputError, match="correction"):
        anomalous_raters(votes, ["r1"] * 3, correction="holm")
    results = anomalous_raters(votes, ["r1", "r2", "r1"])  # no pair has 10 votes of history: nothing is tested
    assert [(r.rater, r.votes, r.total_votes, r.flagged, r.p_value) for r in results] == [
        ("r1", 0, 2, False, 1.0), ("r2", 0, 1, False, 1.0)]
