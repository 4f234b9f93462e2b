"""Judge prompts: fixed, named and versioned, in Korean, in the MT-Bench tradition (single-answer grading on a 1-10
rubric and pairwise comparison with A/B/tie), worded for simsa.

Every result records each prompt's name, version and sha256, so a change of wording is visible in the results.

RULE: never change the text of a released prompt (system, template or layouts) without bumping its `version`; the
tests pin every (name, version) to its sha256 and fail on a silent edit.

Turn k of a multi-turn question is judged with the whole conversation up to k; the judges are told to grade only the
last answer. Reference answers, where a question has them, are shown to the judge as a guide, not as the only
correct wording.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SYSTEM = "당신은 AI 어시스턴트의 답변을 공정하고 엄격하게 심사하는 평가자입니다."

_CRITERIA = (
    "답변이 질문의 요구를 제대로 해결했는지를 기준으로, 정확성, 유용성, 질문과의 관련성, 설명의 깊이와 구체성, "
    "필요한 경우 창의성을 함께 따지십시오. 한국어로 한 질문에는 자연스러운 한국어로 답해야 하며, 별도의 요청 없이 "
    "다른 언어로 답했다면 크게 감점하십시오. 답변이 길다는 이유만으로 점수를 주지 말고, 어시스턴트의 이름이나 "
    "답변의 순서에 영향을 받지 마십시오."
)

_RUBRIC_OUTPUT = (
    "먼저 평가 근거를 간결하게 쓰고, 맨 마지막 줄에 1부터 10 사이의 점수를 반드시 \"평점: [[N]]\" 형식으로 "
    "적으십시오 (N 자리에 점수를 씁니다)."
)

_PAIR_OUTPUT = (
    "두 답변을 비교한 근거를 간결하게 쓴 뒤, 맨 마지막 줄에 판정을 반드시 다음 중 하나로만 적으십시오: "
    "A가 더 좋으면 \"[[A]]\", B가 더 좋으면 \"[[B]]\", 우열을 가릴 수 없으면 \"[[C]]\"."
)

_REFERENCE_NOTE = (
    "참고 답안이 함께 주어집니다. 답변의 정확성은 참고 답안과 대조하여 확인하되, 표현이 달라도 내용이 맞으면 "
    "정답으로 인정하십시오."
)

_LAST_TURN = (
    "평가 대상은 대화의 마지막 어시스턴트 답변({turn}번째 질문에 대한 답변) 하나뿐이며, 앞선 대화는 맥락으로만 "
    "쓰십시오."
)
_LAST_TURN_PAIR = (
    "평가 대상은 두 대화 각각의 마지막 어시스턴트 답변({turn}번째 질문에 대한 답변)이며, 앞선 대화는 맥락으로만 "
    "쓰십시오."
)

# One user/assistant exchange of a conversation shown to a multi-turn judge.
TURN_LAYOUT = "### 사용자 ({n}번째 질문)\n{question}\n\n### 어시스턴트 ({n}번째 답변)\n{answer}\n"
# One reference answer of a multi-turn question.
REFERENCE_LAYOUT = "### {n}번째 질문의 참고 답안\n{reference}\n"
NO_REFERENCE = "(참고 답안 없음)"


@dataclass(frozen=True)
class JudgePrompt:
    """A judge prompt: `template` is filled with str.format; multi-turn prompts lay out the conversation with
    `turn_layout` and references with `reference_layout` (both part of the hash)."""

    name: str
    version: int
    mode: str  # "rubric" or "pairwise"
    multi_turn: bool
    with_reference: bool
    system: str
    template: str
    turn_layout: str = ""
    reference_layout: str = ""

    @property
    def sha256(self) -> str:
        body = {"name": self.name, "version": self.version, "mode": self.mode, "system": self.system,
                "template": self.template, "turn_layout": self.turn_layout,
                "reference_layout": self.reference_layout}
        return hashlib.sha256(json.dumps(body, ensure_ascii=False, sort_keys=True).encode("utf-8")).hexdigest()

    def ref(self) -> dict[str, Any]:
        """What results record about the prompt."""
        return {"name": self.name, "version": self.version, "sha256": self.sha256}

    def _conversation(self, questions: Sequence[str], answers: Sequence[str]) -> str:
        return "\n".join(self.turn_layout.format(n=i + 1, question=q, answer=a)
                         for i, (q, a) in enumerate(zip(questions, answers, strict=True)))

    def _references(self, references: Sequence[str | None]) -> str:
        return "\n".join(self.reference_layout.format(n=i + 1, reference=r if r is not None else NO_REFERENCE)
                         for i, r in enumerate(references))

    def render(self, questions: Sequence[str], answers: Sequence[str], references: Sequence[str | None] | None = None,
               answers_b: Sequence[str] | None = None) -> list[dict[str, str]]:
        """Chat messages asking the judge about the last turn of `questions` (answers_b: the second assistant of a
        pairwise comparison)."""
        if len(questions) != len(answers) or not questions:
            raise ValueError("one answer per question turn is needed")
        if not self.multi_turn and len(questions) != 1:
            raise ValueError(f"{self.name} judges a single turn")
        if (self.mode == "pairwise") != (answers_b is not None):
            raise ValueError(f"{self.name}: answers_b is {'required' if self.mode == 'pairwise' else 'not used'}")
        if self.with_reference and (references is None or references[len(questions) - 1] is None):
            raise ValueError(f"{self.name} needs a reference answer for the judged turn")
        fields: dict[str, Any] = {"turn": len(questions)}
        refs = list(references or [])[:len(questions)]
        if self.multi_turn:
            if answers_b is None:
                fields["conversation"] = self._conversation(questions, answers)
            else:
                fields["conversation_a"] = self._conversation(questions, answers)
                fields["conversation_b"] = self._conversation(questions, answers_b)
            if self.with_reference:
                fields["references"] = self._references(refs)
        else:
            fields["question"] = questions[0]
            if answers_b is None:
                fields["answer"] = answers[0]
            else:
                fields["answer_a"], fields["answer_b"] = answers[0], answers_b[0]
            if self.with_reference:
                fields["reference"] = refs[0]
        return [{"role": "system", "content": self.system},
                {"role": "user", "content": self.template.format(**fields)}]


def _p(*parts: str) -> str:
    return "\n\n".join(parts)


_RUBRIC_INTRO = "아래 사용자 질문에 대한 AI 어시스턴트의 답변을 평가하십시오."
_RUBRIC_MULTI_INTRO = "아래는 사용자와 AI 어시스턴트의 대화입니다. 어시스턴트의 답변을 평가하십시오."
_PAIR_INTRO = "아래 사용자 질문에 대한 두 AI 어시스턴트(A와 B)의 답변을 비교하여 어느 쪽이 더 나은지 판정하십시오."
_PAIR_MULTI_INTRO = (
    "아래는 같은 사용자가 두 AI 어시스턴트(A와 B)와 각각 나눈 대화입니다. 두 어시스턴트의 답변을 비교하여 어느 쪽이 "
    "더 나은지 판정하십시오."
)

_QUESTION = "[질문]\n{question}"
_ANSWER = "[어시스턴트 답변 시작]\n{answer}\n[어시스턴트 답변 끝]"
_ANSWERS_AB = (
    "[어시스턴트 A 답변 시작]\n{answer_a}\n[어시스턴트 A 답변 끝]\n\n"
    "[어시스턴트 B 답변 시작]\n{answer_b}\n[어시스턴트 B 답변 끝]"
)
_REFERENCE = "[참고 답안 시작]\n{reference}\n[참고 답안 끝]"
_REFERENCES = "[참고 답안 시작]\n{references}\n[참고 답안 끝]"
_CONVERSATION = "[대화 시작]\n{conversation}\n[대화 끝]"
_CONVERSATIONS_AB = (
    "[어시스턴트 A 대화 시작]\n{conversation_a}\n[어시스턴트 A 대화 끝]\n\n"
    "[어시스턴트 B 대화 시작]\n{conversation_b}\n[어시스턴트 B 대화 끝]"
)

RUBRIC_SINGLE = JudgePrompt("ko-rubric-single", 1, "rubric", False, False, SYSTEM,
                            _p(_RUBRIC_INTRO, _CRITERIA, _RUBRIC_OUTPUT, _QUESTION, _ANSWER))
RUBRIC_SINGLE_REF = JudgePrompt("ko-rubric-single-ref", 1, "rubric", False, True, SYSTEM,
                                _p(_RUBRIC_INTRO, _CRITERIA, _REFERENCE_NOTE, _RUBRIC_OUTPUT, _QUESTION, _REFERENCE,
                                   _ANSWER))
RUBRIC_MULTI = JudgePrompt("ko-rubric-multi", 1, "rubric", True, False, SYSTEM,
                           _p(_RUBRIC_MULTI_INTRO, _LAST_TURN, _CRITERIA, _RUBRIC_OUTPUT, _CONVERSATION),
                           turn_layout=TURN_LAYOUT)
RUBRIC_MULTI_REF = JudgePrompt("ko-rubric-multi-ref", 1, "rubric", True, True, SYSTEM,
                               _p(_RUBRIC_MULTI_INTRO, _LAST_TURN, _CRITERIA, _REFERENCE_NOTE, _RUBRIC_OUTPUT,
                                  _REFERENCES, _CONVERSATION),
                               turn_layout=TURN_LAYOUT, reference_layout=REFERENCE_LAYOUT)
PAIR_SINGLE = JudgePrompt("ko-pair-single", 1, "pairwise", False, False, SYSTEM,
                          _p(_PAIR_INTRO, _CRITERIA, _PAIR_OUTPUT, _QUESTION, _ANSWERS_AB))
PAIR_SINGLE_REF = JudgePrompt("ko-pair-single-ref", 1, "pairwise", False, True, SYSTEM,
                              _p(_PAIR_INTRO, _CRITERIA, _REFERENCE_NOTE, _PAIR_OUTPUT, _QUESTION, _REFERENCE,
                                 _ANSWERS_AB))
PAIR_MULTI = JudgePrompt("ko-pair-multi", 1, "pairwise", True, False, SYSTEM,
                         _p(_PAIR_MULTI_INTRO, _LAST_TURN_PAIR, _CRITERIA, _PAIR_OUTPUT, _CONVERSATIONS_AB),
                         turn_layout=TURN_LAYOUT)
PAIR_MULTI_REF = JudgePrompt("ko-pair-multi-ref", 1, "pairwise", True, True, SYSTEM,
                             _p(_PAIR_MULTI_INTRO, _LAST_TURN_PAIR, _CRITERIA, _REFERENCE_NOTE, _PAIR_OUTPUT,
                                _REFERENCES, _CONVERSATIONS_AB),
                             turn_layout=TURN_LAYOUT, reference_layout=REFERENCE_LAYOUT)

PROMPTS: dict[str, JudgePrompt] = {p.name: p for p in (RUBRIC_SINGLE, RUBRIC_SINGLE_REF, RUBRIC_MULTI,
                                                        RUBRIC_MULTI_REF, PAIR_SINGLE, PAIR_SINGLE_REF, PAIR_MULTI,
                                                        PAIR_MULTI_REF)}
MODES = ("rubric", "pairwise")


def select_prompt(mode: str, turn: int, has_reference: bool) -> JudgePrompt:
    """The prompt for judging turn `turn` (1-based): single-turn for the first, multi-turn after; the reference
    variant when the judged turn has a reference answer."""
    if mode not in MODES:
        raise ValueError(f"unknown judge mode {mode!r} (known: {', '.join(MODES)})")
    for prompt in PROMPTS.values():
        if prompt.mode == mode and prompt.multi_turn == (turn > 1) and prompt.with_reference == has_reference:
            return prompt
    raise AssertionError("every combination has a prompt")  # pragma: no cover
