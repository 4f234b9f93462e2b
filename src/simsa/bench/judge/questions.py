"""Multi-turn question files for judged generation, in the KoMT-Bench / LogicKor layout.

JSONL, one question per line::

    {"id": "math-01", "category": "수학", "questions": ["turn 1", "turn 2"], "references": ["...", null]}

`id` (string or integer, unique), `category` (non-empty string) and `questions` (one or more non-empty strings, one
per turn) are required; `references` (same length as `questions`, strings or null) and `language` (the language the
answers must be in: "ko" by default, "en", or "any" for no check) are optional. Blank lines are skipped; anything
else is an error reported as `FILE:LINE: message`. The file's sha256 goes into every result.

The shipped sample, data/ko-mt-sample.jsonl, is original to simsa: its questions and references were written for
this project. It only follows the KoMT-Bench / LogicKor format and categories and contains none of their items.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any, NoReturn

from simsa.bench.judge.korean import LANGUAGES
from simsa.errors import InputError

SAMPLE = "ko-mt-sample.jsonl"
_KEYS = {"id", "category", "questions", "references", "language"}


class QuestionFileError(InputError):
    """A question file line is not a valid question."""

    def __init__(self, source: str, line: int | None, message: str) -> None:
        self.source = source
        self.line = line
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Question:
    id: str
    category: str
    turns: tuple[str, ...]
    references: tuple[str | None, ...] | None = None
    language: str = "ko"

    def reference(self, turn: int) -> str | None:
        """The reference answer of turn `turn` (1-based), if any."""
        return self.references[turn - 1] if self.references else None


@dataclass(frozen=True)
class QuestionSet:
    """Validated questions with the name and sha256 of the file they came from."""

    source: str
    sha256: str
    questions: tuple[Question, ...]

    def __len__(self) -> int:
        return len(self.questions)

    def __iter__(self) -> Iterator[Question]:
        return iter(self.questions)

    def categories(self) -> list[str]:
        return list(dict.fromkeys(q.category for q in self.questions))

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "sha256": self.sha256, "questions": len(self.questions),
                "turns": sum(len(q.turns) for q in self.questions),
                "categories": dict(Counter(q.category for q in self.questions))}


def _question(obj: Any, fail: Callable[[str], NoReturn]) -> Question:
    if not isinstance(obj, dict):
        fail(f"expected a JSON object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - _KEYS)
    if unknown:
        fail(f"unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(_KEYS))})")
    for key in ("id", "category", "questions"):
        if key not in obj:
            fail(f"missing required key {key!r}")
    qid = obj["id"]
    if isinstance(qid, bool) or not isinstance(qid, str | int) or (isinstance(qid, str) and not qid.strip()):
        fail("'id' must be a non-empty string or an integer")
    category = obj["category"]
    if not isinstance(category, str) or not category.strip():
        fail("'category' must be a non-empty string")
    turns = obj["questions"]
    if not isinstance(turns, list) or not turns:
        fail("'questions' must be a non-empty list of strings (one per turn)")
    for i, turn in enumerate(turns):
        if not isinstance(turn, str) or not turn.strip():
            fail(f"'questions'[{i}] must be a non-empty string")
    refs = obj.get("references")
    if refs is not None:
        if not isinstance(refs, list) or len(refs) != len(turns):
            fail(f"'references' must be a list of the same length as 'questions' ({len(turns)})")
        for i, ref in enumerate(refs):
            if ref is not None and (not isinstance(ref, str) or not ref.strip()):
                fail(f"'references'[{i}] must be a non-empty string or null")
    language = obj.get("language", "ko")
    if language not in LANGUAGES:
        fail(f"'language' must be one of {', '.join(LANGUAGES)}")
    return Question(id=str(qid), category=category.strip(), turns=tuple(turns),
                    references=tuple(refs) if refs is not None and any(r is not None for r in refs) else None,
                    language=language)


def parse_questions(data: bytes, source: str) -> QuestionSet:
    """Validate a JSONL question file's bytes; `source` names it in error messages and results."""
    digest = hashlib.sha256(data).hexdigest()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    questions: list[Question] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(data.split(b"\n"), start=1):
        def fail(message: str, line: int = number) -> NoReturn:
            raise QuestionFileError(source, line, message)

        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError as exc:
            fail(f"not UTF-8 ({exc.reason} at byte {exc.start})")
        if not line:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            fail(f"invalid JSON: {exc.msg} (column {exc.colno})")
        question = _question(obj, fail)
        if question.id in seen:
            fail(f"duplicate id {question.id!r} (first on line {seen[question.id]})")
        seen[question.id] = number
        questions.append(question)
    if not questions:
        raise QuestionFileError(source, None, "no questions")
    return QuestionSet(source=source, sha256=digest, questions=tuple(questions))


def load_questions(path: str | Path) -> QuestionSet:
    """Read and validate a question file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise QuestionFileError(str(path), None, f"cannot read: {exc.strerror}") from None
    return parse_questions(data, str(path))


def sample_questions() -> QuestionSet:
    """The shipped Korean sample (12 two-turn questions written for simsa)."""
    data = (files("simsa.bench.judge") / "data" / SAMPLE).read_bytes()
    return parse_questions(data, SAMPLE)
