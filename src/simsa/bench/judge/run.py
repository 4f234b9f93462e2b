"""The judge task runner: answers are generated turn by turn, then graded by one or more judge models.

1. The candidate (and, in pairwise mode, the baseline) answers every question turn by turn, each turn seeing the
   conversation so far with its own earlier answers (reasoning stripped, as chat models expect their history).
2. rubric: each judge grades each turn on 1-10, turn k with the conversation up to k.
   pairwise: each judge compares candidate and baseline on each turn twice, once in each order.
3. Verdicts are parsed; unparseable ones are kept and counted, never guessed; the language rule is applied last.

Every call goes through the ItemStore first, so re-running a finished task computes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from simsa.bench.chat import ChatClient, GenSettings, Messages
from simsa.bench.judge.cache import CachedCaller, ItemStore, MemoryStore, StageProgress
from simsa.bench.judge.extract import extract_answer, parse_pairwise, parse_rubric
from simsa.bench.judge.judging import OUTCOME_VALUE, pair_item, rubric_item, swap_vote
from simsa.bench.judge.korean import language_check
from simsa.bench.judge.prompts import MODES, PROMPTS, JudgePrompt, select_prompt
from simsa.bench.judge.questions import Question, QuestionSet
from simsa.bench.judge.records import AnswerRecord, ItemRecord, JudgeRun, PairJudgement, RubricJudgement
from simsa.bench.judge.summary import BOOTSTRAP_RESAMPLES, summarise
from simsa.errors import InputError

JUDGE_SETTINGS = GenSettings(max_tokens=1024, temperature=0.0)


@dataclass(frozen=True)
class _Item:
    question: Question
    turn: int  # 1-based


def _items(questions: QuestionSet) -> list[_Item]:
    return [_Item(q, k) for q in questions for k in range(1, len(q.turns) + 1)]


def generate_answers(caller: CachedCaller, client: ChatClient, questions: QuestionSet, settings: GenSettings,
                     min_share: float, stage: str) -> dict[str, list[AnswerRecord]]:
    """Each question answered turn by turn (all first turns in one batch, then all second turns, ...)."""
    history: dict[str, Messages] = {q.id: [] for q in questions}
    answers: dict[str, list[AnswerRecord]] = {q.id: [] for q in questions}
    for k in range(max(len(q.turns) for q in questions)):
        active = [q for q in questions if len(q.turns) > k]
        batch = [[*history[q.id], {"role": "user", "content": q.turns[k]}] for q in active]
        results = caller.run(client, batch, settings, None, f"{stage} turn {k + 1}")
        for q, messages, result in zip(active, batch, results, strict=True):
            ex = extract_answer(result.text)
            check = language_check(ex.answer, q.language, min_share)
            answers[q.id].append(AnswerRecord(text=ex.answer, reasoning=ex.reasoning, flags=ex.flags,
                                              finish_reason=result.finish_reason, language=check))
            history[q.id] = [*messages, {"role": "assistant", "content": ex.answer}]
    return answers


def _labels(judges: Sequence[ChatClient]) -> list[str]:
    """Unique judge labels: the model name, numbered when two judges share it."""
    labels: list[str] = []
    for judge in judges:
        base = str(judge.identity().get("model") or judge.identity().get("kind") or "judge")
        label, n = base, 1
        while label in labels:
            n += 1
            label = f"{base}#{n}"
        labels.append(label)
    return labels


def _prompt_for(mode: str, item: _Item) -> JudgePrompt:
    return select_prompt(mode, item.turn, item.question.reference(item.turn) is not None)


def _render(prompt: JudgePrompt, item: _Item, first: list[AnswerRecord],
            second: list[AnswerRecord] | None = None) -> Messages:
    k = item.turn
    q = item.question
    return prompt.render(questions=q.turns[:k], answers=[a.text for a in first[:k]],
                         references=list(q.references[:k]) if q.references else None,
                         answers_b=[a.text for a in second[:k]] if second is not None else None)


def _judge_batches(caller: CachedCaller, judge: ChatClient, label: str, prompts: list[JudgePrompt],
                   messages: list[Messages], settings: GenSettings) -> list[str]:
    """Raw judge outputs for `messages`, one batch per prompt (the prompt is part of each cache key)."""
    out: list[str] = [""] * len(messages)
    for prompt in dict.fromkeys(prompts):
        idx = [i for i, p in enumerate(prompts) if p == prompt]
        results = caller.run(judge, [messages[i] for i in idx], settings, prompt.ref(), f"judge {label} {prompt.name}")
        for i, result in zip(idx, results, strict=True):
            out[i] = result.text
    return out


def run_judge_task(candidate: ChatClient, judges: Sequence[ChatClient], questions: QuestionSet,
                   mode: str = "rubric", baseline: ChatClient | None = None, store: ItemStore | None = None, *,
                   gen_settings: GenSettings | None = None, judge_settings: GenSettings | None = None,
                   min_language_share: float = 0.5, bootstrap_resamples: int = BOOTSTRAP_RESAMPLES,
                   bootstrap_seed: int = 0, progress: StageProgress | None = None) -> JudgeRun:
    """Generate, judge and summarise (see the module docstring).

    `progress(stage, done, total)` is called as calls complete (cache hits are not reported). Without a store,
    calls are cached in memory for this run only.
    """
    if mode not in MODES:
        raise InputError(f"unknown judge mode {mode!r} (known: {', '.join(MODES)})")
    if not judges:
        raise InputError("at least one judge is needed")
    if mode == "pairwise" and baseline is None:
        raise InputError("pairwise judging needs a baseline model")
    if mode == "rubric" and baseline is not None:
        raise InputError("rubric judging takes no baseline model")
    gen_settings = gen_settings or GenSettings()
    judge_settings = judge_settings or JUDGE_SETTINGS
    caller = CachedCaller(store if store is not None else MemoryStore(), progress)
    labels = _labels(judges)
    items = _items(questions)
    prompts = [_prompt_for(mode, item) for item in items]

    answers = generate_answers(caller, candidate, questions, gen_settings, min_language_share, "candidate")
    base_answers = (generate_answers(caller, baseline, questions, gen_settings, min_language_share, "baseline")
                    if baseline is not None else None)

    judgements: list[list[RubricJudgement | PairJudgement]] = [[] for _ in items]
    for judge, label in zip(judges, labels, strict=True):
        if base_answers is None:
            msgs = [_render(p, it, answers[it.question.id]) for p, it in zip(prompts, items, strict=True)]
            raws = _judge_batches(caller, judge, label, prompts, msgs, judge_settings)
            for n, (p, raw) in enumerate(zip(prompts, raws, strict=True)):
                judgements[n].append(RubricJudgement(judge=label, prompt=p.name, raw=raw, score=parse_rubric(raw)))
        else:
            ab = [_render(p, it, answers[it.question.id], base_answers[it.question.id])
                  for p, it in zip(prompts, items, strict=True)]
            ba = [_render(p, it, base_answers[it.question.id], answers[it.question.id])
                  for p, it in zip(prompts, items, strict=True)]
            raws = _judge_batches(caller, judge, label, prompts + prompts, ab + ba, judge_settings)
            for n, p in enumerate(prompts):
                raw_ab, raw_ba = raws[n], raws[n + len(items)]
                v_ab, v_ba = parse_pairwise(raw_ab), parse_pairwise(raw_ba)
                vote, inconsistent = swap_vote(v_ab, v_ba)
                judgements[n].append(PairJudgement(judge=label, prompt=p.name, raw_ab=raw_ab, raw_ba=raw_ba,
                                                   verdict_ab=v_ab, verdict_ba=v_ba, vote=vote,
                                                   inconsistent=inconsistent))

    records = [_record(mode, item, answers, base_answers, tuple(js)) for item, js in zip(items, judgements,
                                                                                         strict=True)]
    used = [PROMPTS[name].ref() for name in dict.fromkeys(p.name for p in prompts)]
    summary = summarise(mode, records, labels, bootstrap_resamples, bootstrap_seed)
    summary["prompts"] = used
    summary["questions_sha256"] = questions.sha256
    return JudgeRun(mode=mode, candidate=candidate.identity(),
                    baseline=baseline.identity() if baseline is not None else None,
                    judges=[{"label": lb, **j.identity()} for lb, j in zip(labels, judges, strict=True)],
                    questions=questions.describe(), prompts=used,
                    settings=_settings(gen_settings, judge_settings, min_language_share),
                    items=records, summary=summary, computed=caller.computed, cached=caller.cached)


def _settings(gen: GenSettings, judge: GenSettings, min_share: float) -> dict[str, Any]:
    return {"generation": gen.to_dict(), "judge": judge.to_dict(), "min_language_share": min_share}


def _record(mode: str, item: _Item, answers: dict[str, list[AnswerRecord]],
            base_answers: dict[str, list[AnswerRecord]] | None,
            judgements: tuple[RubricJudgement | PairJudgement, ...]) -> ItemRecord:
    q, k = item.question, item.turn
    answer = answers[q.id][k - 1]
    if mode == "rubric":
        scores = [j.score for j in judgements if isinstance(j, RubricJudgement)]
        judged, score, penalty = rubric_item(scores, answer.language.passed)
        return ItemRecord(question_id=q.id, category=q.category, turn=k, answer=answer, baseline_answer=None,
                          judgements=judgements, judged=judged, outcome=None, score=score, penalty=penalty)
    assert base_answers is not None
    base = base_answers[q.id][k - 1]
    votes = [j.vote for j in judgements if isinstance(j, PairJudgement)]
    judged_outcome, outcome, penalty = pair_item(votes, answer.language.passed, base.language.passed)
    return ItemRecord(question_id=q.id, category=q.category, turn=k, answer=answer, baseline_answer=base,
                      judgements=judgements, judged=judged_outcome, outcome=outcome,
                      score=OUTCOME_VALUE[outcome] if outcome is not None else None, penalty=penalty)
