"""LLM-as-judge generation tasks: multi-turn Korean questions answered by a candidate model and graded by judge
models, on a 1-10 rubric or pairwise against a baseline (MT-Bench / KoMT-Bench / LogicKor practice).

The entry point is `run_judge_task`; chat clients live in `simsa.bench.chat`.
"""

from simsa.bench.judge.cache import CachedCaller, ItemStore, MemoryStore, call_key
from simsa.bench.judge.extract import Extracted, extract_answer, parse_pairwise, parse_rubric
from simsa.bench.judge.korean import LanguageCheck, language_check
from simsa.bench.judge.prompts import PROMPTS, JudgePrompt, select_prompt
from simsa.bench.judge.questions import (
    Question,
    QuestionFileError,
    QuestionSet,
    load_questions,
    parse_questions,
    sample_questions,
)
from simsa.bench.judge.records import AnswerRecord, ItemRecord, JudgeRun, PairJudgement, RubricJudgement
from simsa.bench.judge.run import JUDGE_SETTINGS, run_judge_task

__all__ = [
    "JUDGE_SETTINGS",
    "PROMPTS",
    "AnswerRecord",
    "CachedCaller",
    "Extracted",
    "ItemRecord",
    "ItemStore",
    "JudgePrompt",
    "JudgeRun",
    "LanguageCheck",
    "MemoryStore",
    "PairJudgement",
    "Question",
    "QuestionFileError",
    "QuestionSet",
    "RubricJudgement",
    "call_key",
    "extract_answer",
    "language_check",
    "load_questions",
    "parse_pairwise",
    "parse_questions",
    "parse_rubric",
    "run_judge_task",
    "sample_questions",
    "select_prompt",
]
