"""Cross-references of a validated program: every name that points at something else must point at something.

The schema checks each table on its own; this pass checks what tables say about each other — a `bench:` source
and its suite, a suite task and the task catalogue, a stage's participants and the teams, a gate's threshold and
the range its source can take — because a misspelt name there passes every type check and still changes who is
cut. Each problem carries the key path it is about (the same path as in the TOML document), so the loader can
name the line; a near name is suggested where one exists. Problems that cannot change an outcome are warnings.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from simsa.program import tasknames
from simsa.program.locate import Path as KeyPath
from simsa.program.schema import Criterion, Program, Stage, close_name, near_names

Severity = Literal["error", "warning"]
SUITE_RANGE = (0.0, 1.0)  # a suite score is a weighted mean of metrics each put on 0–1
SUITE_TYPO_CUTOFF = 0.7  # difflib ratio above which an unknown suite name is taken for a misspelt known one


@dataclass(frozen=True)
class Issue:
    """One cross-reference problem: where it is (a key path of the document), how bad, and what is wrong."""

    loc: KeyPath
    severity: Severity
    message: str


def _criteria(items: list[Criterion], prefix: KeyPath) -> Iterator[tuple[KeyPath, Criterion]]:
    for i, crit in enumerate(items):
        yield (*prefix, i), crit
        yield from _criteria(crit.children, (*prefix, i, "children"))


def _sources(program: Program) -> Iterator[tuple[KeyPath, str]]:
    """(path of the `source` key, source) of every criterion and gate of every stage."""
    for si, stage in enumerate(program.stages):
        for path, crit in _criteria(stage.criteria, ("stages", si, "criteria")):
            if crit.source:
                yield (*path, "source"), crit.source
        for gi, gate in enumerate(stage.gates):
            if gate.source:
                yield ("stages", si, "gates", gi, "source"), gate.source


def _suite_sources(program: Program) -> Iterator[Issue]:
    """`bench:X` sources and the suites they name.

    In a programme that declares suites, every `bench:` source must name one (a benchmark score computed elsewhere
    is declared as a suite with `imported = true`); a near name is suggested. A programme without any [[suites]]
    takes all its benchmark scores by import, which is worth a warning only.
    """
    suite_ids = [s.id for s in program.suites]
    for loc, source in _sources(program):
        if not source.startswith("bench:"):
            continue
        name = source.split(":", 1)[1]
        if name in suite_ids:
            continue
        close = close_name(name, suite_ids, cutoff=SUITE_TYPO_CUTOFF)
        if close is not None:
            yield Issue(loc, "error", f"source {source!r} names no suite (suites: {', '.join(suite_ids)}) "
                                      f"(did you mean 'bench:{close}'?)")
        elif suite_ids:
            yield Issue(loc, "error", f"source {source!r} names no suite (suites: {', '.join(suite_ids)}); declare "
                                      f"[[suites]] id = {name!r} (imported = true if its scores come from "
                                      "`simsa score import`)")
        else:
            yield Issue(loc, "warning", f"source {source!r} names no suite (the programme declares no [[suites]]), "
                                        "so its scores can only be imported (`simsa score import`), not recorded "
                                        "from a benchmark run")
    used = {source.split(":", 1)[1] for _, source in _sources(program) if source.startswith("bench:")}
    for i, suite in enumerate(program.suites):
        if suite.id not in used:
            yield Issue(("suites", i, "id"), "warning", f"suite {suite.id!r} feeds no criterion or gate "
                                                        f"(no source 'bench:{suite.id}')")


def _tasks(program: Program) -> Iterator[Issue]:
    for si, suite in enumerate(program.suites):
        for ti, task in enumerate(suite.tasks):
            if tasknames.is_known(task.task):
                continue
            close = tasknames.near(task.task)
            hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
            yield Issue(("suites", si, "tasks", ti, "task"), "error",
                        f"unknown benchmark task {task.task!r}{hint}; `simsa bench tasks` lists simsa's and the "
                        f"curated tasks, and any task of lm-eval {tasknames.LM_EVAL_VERSION} may be named")


def _range_of(program: Program, stage: Stage, source: str) -> tuple[float, float] | None:
    """The values a source can take in a stage, where the programme fixes them (else None)."""
    for leaf in stage.leaves():
        if leaf.source == source and leaf.norm == "absolute":
            return leaf.raw_range or (0.0, 1.0)
    if source.startswith("bench:") and source.split(":", 1)[1] in {s.id for s in program.suites}:
        return SUITE_RANGE
    return None


def _ranges(program: Program) -> Iterator[Issue]:
    """Suite scores on a scale they cannot have; min_score thresholds no score can reach."""
    suite_ids = {s.id for s in program.suites}
    for si, stage in enumerate(program.stages):
        for path, crit in _criteria(stage.criteria, ("stages", si, "criteria")):
            if (crit.source and crit.source.startswith("bench:") and crit.source.split(":", 1)[1] in suite_ids
                    and crit.norm == "absolute" and crit.raw_range is not None
                    and (crit.raw_range[0] < SUITE_RANGE[0] or crit.raw_range[1] > SUITE_RANGE[1])):
                yield Issue((*path, "raw_range"), "error",
                            f"{crit.source} is a suite score on 0–1, but raw_range is {list(crit.raw_range)}; "
                            "use a range within [0, 1]")
        for gi, gate in enumerate(stage.gates):
            if gate.kind != "min_score" or gate.source is None or gate.threshold is None:
                continue
            span = _range_of(program, stage, gate.source)
            if span is None:
                continue
            loc = ("stages", si, "gates", gi, "threshold")
            if gate.threshold > span[1]:
                yield Issue(loc, "error", f"threshold {gate.threshold:g} is above every possible {gate.source} "
                                          f"score (range [{span[0]:g}, {span[1]:g}]), so every team would fail "
                                          f"gate {gate.id!r}")
            elif gate.threshold < span[0]:
                yield Issue(loc, "warning", f"threshold {gate.threshold:g} is below every possible {gate.source} "
                                            f"score (range [{span[0]:g}, {span[1]:g}]), so gate {gate.id!r} "
                                            "never fails")


def _participation(program: Program) -> Iterator[Issue]:
    """Explicit participants are teams that can take part then; a previous decision only on a later stage."""
    team_ids = [t.id for t in program.teams]
    order = {s.id: i for i, s in enumerate(program.stages)}
    for si, stage in enumerate(program.stages):
        where = ("stages", si)
        if si == 0 and stage.previous_decision is not None:
            yield Issue((*where, "previous_decision"), "error",
                        f"stage {stage.id!r} is the first stage, so there is no previous decision to import")
        if stage.participants is None:
            continue
        if si == 0:
            yield Issue((*where, "participants"), "error",
                        f"stage {stage.id!r} is the first stage: every team that does not join later takes part; "
                        "participants may be declared on a later stage")
            continue
        for pi, tid in enumerate(stage.participants):
            if tid not in team_ids:
                yield Issue((*where, "participants", pi), "error",
                            f"participant {tid!r} is not a team (teams: {', '.join(team_ids)})"
                            f"{near_names(tid, team_ids)}")
                continue
            joins = program.team(tid).joins_at
            if joins is not None and order[joins] > si:
                yield Issue((*where, "participants", pi), "error",
                            f"team {tid!r} joins_at {joins!r}, after stage {stage.id!r}")
        for team in program.teams:
            if team.joins_at == stage.id and team.id not in stage.participants:
                yield Issue((*where, "participants"), "error",
                            f"team {team.id!r} joins_at {stage.id!r} but is not among its participants (a stage's "
                            "participants are its complete list of teams)")


def _arena(program: Program) -> Iterator[Issue]:
    """An arena's entrants and anchor are teams of the stage."""
    team_ids = [t.id for t in program.teams]
    for si, stage in enumerate(program.stages):
        if stage.arena is None:
            continue
        where = ("stages", si, "arena")
        taking_part = stage.participants if stage.participants is not None else team_ids
        for ei, entrant in enumerate(stage.arena.entrants):
            if entrant.team not in team_ids:
                yield Issue((*where, "entrants", ei, "team"), "error",
                            f"entrant team {entrant.team!r} is not a team (teams: {', '.join(team_ids)})"
                            f"{near_names(entrant.team, team_ids)}")
            elif entrant.team not in taking_part:
                yield Issue((*where, "entrants", ei, "team"), "error",
                            f"entrant team {entrant.team!r} does not take part in stage {stage.id!r}")


def _ecosystem_sources(program: Program) -> Iterator[Issue]:
    """`ecosystem:X` sources must name a metric simsa reads from the hub (a misspelt one would never get a score)."""
    used = [(loc, source) for loc, source in _sources(program) if source.startswith("ecosystem:")]
    if not used:
        return
    from simsa.ecosystem.metrics import METRICS  # the hub client behind it is only loaded when a programme uses it

    for loc, source in used:
        name = source.split(":", 1)[1]
        if name not in METRICS:
            yield Issue(loc, "error", f"source {source!r} names no ecosystem metric (metrics: "
                                      f"{', '.join(METRICS)}){near_names(name, list(METRICS))}")


def check(program: Program) -> list[Issue]:
    """Every cross-reference problem of the program, errors and warnings, in document order of the checks."""
    return [*_participation(program), *_suite_sources(program), *_ecosystem_sources(program), *_ranges(program),
            *_tasks(program), *_arena(program)]
