"""Builders shared by tests: compact program files and score tables."""

from __future__ import annotations

from pathlib import Path

from simsa.program.adjudicate import SourceScore
from simsa.program.gates import GateOutcome
from simsa.program.loader import LoadedProgram, parse_program

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "k-ai-2026.toml"


def program_text(teams: list[str], *, criteria: str, elimination: str = "advance_best = 2",
                 gates: str = "", tie_breakers: str = '["team_order"]', extra_stage: str = "",
                 robustness: str = "draws = 300\nseed = 7") -> str:
    team_tables = "\n".join(f'[[teams]]\nid = "{t}"\nname = "Team {t}"\nlicence = "mit"\n' for t in teams)
    return f"""
[program]
id = "test-prog"
name = "Test programme"

{team_tables}

[[stages]]
id = "s1"
name = "Stage 1"
start = 2026-01-01
end = 2026-02-01
appeal_days = 10
tie_breakers = {tie_breakers}
{extra_stage}

[stages.elimination]
{elimination}

[stages.robustness]
{robustness}

{criteria}

{gates}
"""


TWO_CATEGORIES = """
[[stages.criteria]]
id = "bench"
name = "Benchmarks"
points = 60
source = "bench:main"

[[stages.criteria]]
id = "user"
name = "Users"
points = 40
source = "panel:user"
"""


def load(text: str) -> LoadedProgram:
    return parse_program(text, "test.toml")


def scores(table: dict[str, dict[str, float]], stderr: float | None = None) -> dict[str, dict[str, SourceScore]]:
    return {team: {src: SourceScore(value=v, stderr=stderr) for src, v in per.items()} for team, per in table.items()}


def passing(teams: list[str], gate: str = "originality", failing: tuple[str, ...] = ()) -> dict:
    return {t: {gate: GateOutcome(t not in failing, "checked")} for t in teams}


def write_bench_scores(path: Path, teams: tuple[str, ...] = ("baekdu", "halla", "jiri", "seorak", "taebaek"),
                       stage: str = "stage-1") -> int:
    """Benchmark suite scores for the example programme, as a score file imported from elsewhere (JSON)."""
    import json

    suites = ("nia", "global-common", "team-chosen")
    rows = [{"stage": stage, "team": team, "source": f"bench:{suite}", "value": 0.5 + 0.05 * i - 0.01 * j,
             "stderr": 0.02, "run_id": f"run-{team}-{suite}"}
            for i, team in enumerate(teams) for j, suite in enumerate(suites)]
    path.write_text(json.dumps({"scores": rows}), encoding="utf-8")
    return len(rows)
