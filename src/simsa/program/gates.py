"""Gate evaluation: the pass/fail conditions that eliminate a team whatever its points."""

from __future__ import annotations

from dataclasses import dataclass

from simsa.program.grades import Grade
from simsa.program.originality import OriginalityRules, originality_summary
from simsa.program.schema import Gate, Team


@dataclass(frozen=True)
class GateOutcome:
    """One gate's result. `evidence_ko` is the Korean evidence of a gate simsa computes (recorded evidence is
    kept in the language it was recorded in, so it has none). `grade` is how strong the evidence is;
    `override_reason` the admin's (or, for a computed gate, the programme's) reason for letting a result below
    the gate's bar stand."""

    passed: bool
    evidence: str
    link: str | None = None
    source: str = "recorded"
    example: bool = False
    record_id: int | None = None
    evidence_ko: str | None = None
    grade: Grade = "declared"
    override_reason: str | None = None

    def to_dict(self) -> dict:
        return {"passed": self.passed, "evidence": self.evidence, "evidence_ko": self.evidence_ko,
                "link": self.link, "source": self.source, "example": self.example, "record_id": self.record_id,
                "grade": self.grade, "override_reason": self.override_reason}


def licence_gate(gate: Gate, team: Team) -> GateOutcome:
    """Every borrowed component must declare an allowed licence and be credited; the model's own licence too."""
    allowed = {x.lower() for x in gate.allowed_licences} if gate.allowed_licences is not None else None
    problems: list[tuple[str, str]] = []
    checked: list[tuple[str, str]] = []
    if team.licence is None:
        problems.append(("the model's own licence is not declared", "모델 자체의 라이선스가 선언되지 않음"))
    for item in team.borrowed:
        name = f"{item.component} ({item.source})"
        if item.licence is None:
            problems.append((f"{name} declares no licence", f"{name}: 라이선스 미선언"))
        elif allowed is not None and item.licence.lower() not in allowed:
            problems.append((f"{name} is under {item.licence}, not an allowed licence",
                             f"{name}: {item.licence} 라이선스는 허용 목록에 없음"))
        if gate.require_credit and not item.credited:
            problems.append((f"{name} is not credited", f"{name}: 출처 미표기"))
        if item.licence is not None:
            checked.append((f"{name}: {item.licence}{', credited' if item.credited else ''}",
                            f"{name}: {item.licence}{', 출처 표기' if item.credited else ''}"))
    if problems:
        return _computed(False, problems, "program file", override_reason=gate.weak_evidence_reason)
    if not team.borrowed:
        return _computed(True, [(f"model licence {team.licence}", f"모델 라이선스 {team.licence}"),
                                ("no borrowed components declared", "선언된 외부 구성요소 없음")], "program file")
    return _computed(True, [(f"model licence {team.licence}", f"모델 라이선스 {team.licence}"), *checked],
                     "program file")


def _computed(passed: bool, parts: list[tuple[str, str]], source: str, grade: Grade = "declared",
              override_reason: str | None = None) -> GateOutcome:
    """A computed gate's outcome with its evidence in English and Korean, clause by clause."""
    return GateOutcome(passed, "; ".join(en for en, _ in parts), source=source,
                       evidence_ko="; ".join(ko for _, ko in parts), grade=grade, override_reason=override_reason)


def min_score_gate(gate: Gate, value: float | None, grade: Grade = "statistical") -> GateOutcome:
    """Pass when the gate's source reaches the threshold; a missing score fails, and says so. The outcome is as
    strong as the score it reads (`grade`)."""
    assert gate.source is not None and gate.threshold is not None
    if value is None:
        return _computed(False, [(f"no score recorded for {gate.source}", f"{gate.source} 점수 기록 없음")],
                         gate.source, "declared")
    ok = value >= gate.threshold
    rel = "≥" if ok else "<"
    return _computed(ok, [(f"{gate.source} = {value:.4g} {rel} threshold {gate.threshold:g}",
                           f"{gate.source} = {value:.4g} {rel} 기준 {gate.threshold:g}")], gate.source, grade,
                     gate.weak_evidence_reason)


def originality_rules(gate: Gate) -> OriginalityRules:
    """The gate's `originality` table as rules; a gate without one allows no reuse (the 2026 rule)."""
    settings = gate.originality
    if settings is None:
        return OriginalityRules()
    return OriginalityRules.from_mapping(settings.model_dump())


def team_declaration(team: Team) -> dict:
    """What the team declared in the program file, as the plain data the originality summary reads."""
    return {"team": team.id, "models": list(team.models), "licence": team.licence,
            "borrowed": [b.model_dump() for b in team.borrowed]}


def originality_from_lineage(gate: Gate, team: Team, lineage: dict) -> dict:
    """The originality summary of a lineage result against the team's declaration and the gate's rules."""
    return originality_summary(lineage, team_declaration(team), originality_rules(gate))
