"""Evidence grades: how strong the evidence behind a score or a gate result is.

No elimination may rest on weak evidence, so every score and gate result carries one of four grades, strongest
first:

* ``cryptographic`` — a hash matches (bit-identical tensors, a committed file's sha256);
* ``statistical`` — a test with a p-value or a measurement with a sampling error (a lineage test, a benchmark run
  with its bootstrap CI, the arena's fitted strengths);
* ``declared`` — what someone stated and answers for (a team's declaration in the program file, a result an admin
  recorded, the expert panel's judgement, an imported score);
* ``heuristic`` — a number with no null model behind it (raw similarity, popularity, membership scores).

A gate may require a minimum grade; a failure resting only on heuristic evidence is refused unless an admin
overrides it with a recorded reason.
"""

from __future__ import annotations

from typing import Literal, get_args

from simsa.errors import InputError

Grade = Literal["cryptographic", "statistical", "declared", "heuristic"]
GRADES: tuple[Grade, ...] = get_args(Grade)  # strongest first
WEAKEST: Grade = "heuristic"

GRADE_NOTES: dict[Grade, str] = {
    "cryptographic": "a hash matches: bit-identical bytes",
    "statistical": "a test with a p-value, or a measurement with its sampling error",
    "declared": "stated by someone who answers for it (a team's declaration, an admin's record, the expert panel)",
    "heuristic": "a number with no null model behind it (raw similarity, popularity): never enough to eliminate",
}
GRADE_NOTES_KO: dict[Grade, str] = {
    "cryptographic": "해시 일치: 비트 단위로 동일",
    "statistical": "유의확률이 있는 검정 또는 표본 오차가 있는 측정",
    "declared": "책임 있는 주체의 진술 (팀의 선언, 관리자의 기록, 전문가 패널)",
    "heuristic": "귀무 모형이 없는 수치 (단순 유사도, 인기도): 탈락 근거로 불충분",
}


def check_grade(value: str) -> Grade:
    """`value` as a grade, or an error naming the four."""
    if value not in GRADES:
        raise InputError(f"unknown evidence grade {value!r}; expected one of {', '.join(GRADES)}")
    return value


def rank(grade: Grade) -> int:
    """Higher is stronger: heuristic 0 … cryptographic 3."""
    return len(GRADES) - 1 - GRADES.index(grade)


def at_least(grade: Grade, minimum: Grade | None) -> bool:
    """Whether `grade` meets `minimum` (no minimum: always)."""
    return minimum is None or rank(grade) >= rank(minimum)


def weakest(grades: list[Grade]) -> Grade:
    """The weakest of several grades: a number is only as strong as the weakest evidence it combines."""
    return min(grades, key=rank) if grades else "declared"


def strongest(grades: list[Grade]) -> Grade:
    """The strongest of several grades: a failure rests on its best evidence."""
    return max(grades, key=rank) if grades else "declared"


def source_grade(source: str, *, imported_suites: frozenset[str] = frozenset()) -> Grade:
    """The grade a score source implies: a benchmark run (with its CI) and the arena's fitted strengths are
    statistical; an imported suite's scores, the expert panel and manual scores are declared; ecosystem signals
    (downloads, likes, trending) are heuristic."""
    kind, _, name = source.partition(":")
    if kind == "bench":
        return "declared" if name in imported_suites else "statistical"
    if source == "panel:user":
        return "statistical"
    if kind == "ecosystem":
        return "heuristic"
    return "declared"


def refusal(*, passed: bool, grade: Grade, minimum: Grade | None, what: str) -> str | None:
    """Why a result of this grade cannot stand without an admin's recorded reason, or None when it can."""
    if not at_least(grade, minimum):
        return f"{what} rests on {grade} evidence, below the gate's minimum grade {minimum}"
    if not passed and grade == WEAKEST:
        return f"{what} fails on heuristic evidence only, which cannot eliminate a team"
    return None
