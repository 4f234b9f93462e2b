"""The built-in example: stage 1 of the example programme, end to end, offline.

Benchmark scores come from real runs: each team's model is a tiny Korean language model built and briefly trained
here on the CPU (more training steps for stronger teams), run through the program's benchmark suites on the shipped
KoBEST, KoBBQ and KoSBi data by lm-evaluation-harness, and recorded with their run ids. The originality gate is
decided from computed evidence (demo_lineage): each team's submitted checkpoint is scanned against a registry of
fingerprinted foreign reference models and compared with the foreign vision encoder one team reuses, and each team's
training-evidence package (recorded while its language model trained) is verified; `gate from-lineage` reads both.
The expert panel's and the user arena's points are reached through the real machinery (demo_panel, demo_arena) by
example experts, raters and entrants: their seeded judgements, behind the panel scores, are the only example data
left.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import as_file, files
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from simsa import demo_arena, demo_lineage, demo_panel
from simsa.audit import log as audit_log
from simsa.errors import CheckFailed
from simsa.program.loader import LoadedProgram
from simsa.services import decisions as decision_service
from simsa.services import gates as gate_service
from simsa.services import programs, reports, score_files
from simsa.services import scores as score_service
from simsa.store.db import Store, sqlite_url

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from simsa.bench.runs import RunStore
    from simsa.program.decision_schema import DecisionDoc
    from simsa.program.schema import Program, Suite

PROGRAM_FILE = "k-ai-2026.toml"
STAGE = "stage-1"
DECIDED_AT = dt.datetime(2026, 1, 15, 9, 0, tzinfo=dt.UTC)
ACTOR = "demo"

# team → expert mean /100, user mean /100 (example panel data)
PROFILES: dict[str, tuple[float, float]] = {
    "baekdu": (84.0, 81.0),
    "halla": (82.0, 80.0),
    "jiri": (77.0, 76.0),
    "seorak": (74.0, 74.0),
    "taebaek": (75.5, 73.0),
}
# team → training steps of its tiny demo model (and a seed): more steps, a better model
TRAINING: dict[str, tuple[int, int]] = {
    "baekdu": (400, 1),
    "halla": (400, 2),
    "jiri": (200, 3),
    "seorak": (100, 4),
    "taebaek": (30, 5),
}
EXPERTS = 10
USERS = 49
DEMO_CACHE_ENV = "SIMSA_DEMO_CACHE"

ORIGINALITY_GATE = "originality"


def example_program_path() -> Path:
    """The example program file shipped inside the package."""
    with as_file(files("simsa.examples") / PROGRAM_FILE) as path:
        return Path(path)


def write_example_scores(path: Path, seed: int = 2026, *, experts: bool = True, users: bool = True) -> int:
    """Seeded example panel scores: one row per user rater unless `users` is false (the demo's user scores then
    come from its arena), and per expert unless `experts` is false (they then come from its expert panel)."""
    rng = np.random.default_rng(seed)
    rows = []
    for team, (expert, user) in PROFILES.items():
        for i in range(EXPERTS):
            value = float(np.clip(rng.normal(expert, 6.0), 0, 100))
            if not experts:
                continue
            rows.append({"stage": STAGE, "team": team, "source": "panel:expert", "value": f"{value:.1f}",
                         "stderr": "", "rater": f"expert-{i + 1:02d}", "run_id": "", "evidence": "",
                         "note": "example expert score", "example": "true"})
        for i in range(USERS):
            value = float(np.clip(rng.normal(user, 10.0), 0, 100))
            if not users:
                continue
            rows.append({"stage": STAGE, "team": team, "source": "panel:user", "value": f"{value:.1f}",
                         "stderr": "", "rater": f"user-{i + 1:02d}", "run_id": "", "evidence": "",
                         "note": "example user rating", "example": "true"})
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(score_service.FIELDS))
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def _reusable_run(store: RunStore, model_sha: str, tasks: list[str], limit: int | None) -> dict | None:
    """A finished run of the same model (content hash), tasks and limit, if the runs directory has one."""
    for run in reversed(store.list()):
        request = run.get("request") or {}
        if (run.get("status") == "finished" and (run.get("model") or {}).get("sha256") == model_sha
                and request.get("tasks") == tasks and request.get("limit") == limit):
            return run
    return None


def stage_suites(program: Program) -> list[Suite]:
    """The suites the demo's stage takes from benchmark runs (imported suites and other stages' are not run)."""
    sources = set(program.stage(STAGE).score_sources())
    return [s for s in program.suites if not s.imported and f"bench:{s.id}" in sources]


def run_team_benchmarks(program: Program, cache: Path, step: Callable[[str], None]) -> dict[str, dict]:
    """Build each team's tiny model and run every suite's tasks on it (reusing finished runs); team → run."""
    from simsa.bench.backends import BackendOptions
    from simsa.bench.identity import directory_sha256
    from simsa.bench.runs import RunRequest, RunStore, execute
    from simsa.bench.tinymodels import TinySpec

    os.environ.setdefault("TQDM_DISABLE", "1")  # the demo reports its own steps; no per-library progress bars
    store = RunStore(cache / "runs")
    suites = stage_suites(program)
    tasks = list(dict.fromkeys(t.task for suite in suites for t in suite.tasks))
    limits = [suite.limit for suite in suites]
    limit = None if any(x is None for x in limits) else max(x for x in limits if x is not None)
    runs: dict[str, dict] = {}
    for team, (steps, seed) in TRAINING.items():
        step(f"Team {team}: tiny model trained {steps} steps (recording its training evidence); running "
             f"{len(tasks)} benchmark tasks")
        model = demo_lineage.build_team_model(cache, team, demo_lineage.model_name(program, team),
                                              TinySpec(steps=steps, seed=seed))
        sha, _ = directory_sha256(model, store.hash_memo)
        run = _reusable_run(store, sha, tasks, limit)
        if run is None:
            run = execute(RunRequest(tasks=tasks, backend=BackendOptions(model=str(model)), limit=limit), store)
        runs[team] = run
    return runs


def record_benchmark_scores(session: Session, loaded: LoadedProgram, store_root: Path, runs: dict[str, dict]) -> int:
    """Score every suite on each team's run and record it as bench:<suite> with the run id and evidence."""
    from simsa.bench.runs import RunStore
    from simsa.bench.suites import score_suite
    from simsa.services.bench_scores import suite_evidence

    store = RunStore(store_root)
    items = []
    for team, run in runs.items():
        samples = store.samples(run["run_id"])
        for suite in stage_suites(loaded.program):
            scored = score_suite(suite, run["results"], samples, partial=run["request"]["limit"] is not None)
            steps = TRAINING[team][0]
            items.append(score_service.ScoreInput(
                stage=STAGE, team=team, source=f"bench:{suite.id}", value=scored.value, stderr=scored.stderr,
                run_id=run["run_id"], evidence=suite_evidence(run, scored.to_dict()),
                note=f"real run of the demo's tiny model for {team} ({steps} training steps); "
                     f"95% CI {scored.ci95[0]:.3f}–{scored.ci95[1]:.3f}"))
    score_service.record(session, loaded, items, ACTOR)
    return len(items)


def record_originality(session: Session, loaded: LoadedProgram, workdir: Path,
                       evidence: dict[str, demo_lineage.TeamEvidence]) -> list[gate_service.LineageGate]:
    """Record each team's originality gate as `simsa gate from-lineage --training-evidence` does: from the saved
    comparison with the foreign encoder, read against the team's declaration and the gate's rules, beside its
    verified training evidence. The link is the HTML report's path inside the demo's folder (relative, so the
    record is the same wherever the demo runs)."""
    out = []
    for team, ev in evidence.items():
        lineage = gate_service.read_lineage_file(ev.compare_json)
        training = gate_service.read_training_evidence_file(ev.verify_json)
        out.append(gate_service.record_result_from_lineage(
            session, loaded, stage_id=STAGE, team_id=team, gate_id=ORIGINALITY_GATE, lineage=lineage.data,
            lineage_sha256=lineage.sha256, lineage_text=lineage.text,
            link=ev.compare_html.relative_to(workdir).as_posix(), actor=ACTOR, training=training))
    return out


@dataclass
class DemoResult:
    workdir: Path
    database: str
    report: Path
    decision: DecisionDoc
    audit: dict
    files: dict[str, str]

    def to_dict(self) -> dict:
        return {"workdir": str(self.workdir), "database": str(self.database), "report": str(self.report),
                "files": self.files, "advanced": self.decision["advanced"],
                "eliminated": self.decision["eliminated"], "title_holders": self.decision["title_holders"],
                "decision": self.decision, "audit": self.audit}


def run_demo(workdir: Path, step: Callable[[str], None] = lambda _msg: None,
             database_url: str | None = None, cache: Path | None = None) -> DemoResult:
    """Load the example programme, run the benchmark suites on tiny team models and record them, run the expert
    panel and the user arena (example judgements), decide the originality gate from computed lineage and training
    evidence, decide stage 1, verify, report.

    The database is `workdir/simsa.db` (recreated), unless `database_url` names another (which must be empty).
    Models, benchmark runs, reference fingerprints and lineage results are kept in `cache` (default
    `workdir/cache`, or $SIMSA_DEMO_CACHE), so a second demo reuses them.
    """
    cache = cache or Path(os.environ.get(DEMO_CACHE_ENV) or workdir / "cache")
    workdir.mkdir(parents=True, exist_ok=True)
    db_path = workdir / "simsa.db"
    for stale in (db_path, workdir / "report.html"):
        if stale.exists() and database_url is None:
            stale.unlink()
    program_copy = workdir / PROGRAM_FILE
    shutil.copyfile(example_program_path(), program_copy)
    program_ref = str(program_copy)
    store = Store(database_url or sqlite_url(db_path))
    try:
        step("Loading the example program")
        with store.session() as session:
            loaded = programs.for_writing(session, program_ref, ACTOR).loaded
        runs = run_team_benchmarks(loaded.program, cache, step)
        step("Recording benchmark scores (suite → 0–1 with a bootstrap CI, from each team's run)")
        with store.session() as session:
            record_benchmark_scores(session, loaded, cache / "runs", runs)
        with store.session() as session:
            with_panel = demo_panel.expert_panel_ready(session, loaded, STAGE)
            with_arena = demo_arena.arena_ready(session, loaded, STAGE)
        kinds = [k for k, shown in (("expert", not with_panel), ("user", not with_arena)) if shown]
        step(f"Recording example {' and '.join(kinds)} panel scores" if kinds else "Writing the example score file")
        scores_csv = workdir / "example-scores.csv"
        write_example_scores(scores_csv, experts=not with_panel, users=not with_arena)
        if kinds:
            with store.session() as session:
                score_service.record(session, loaded, score_files.parse_file(scores_csv), ACTOR)
        if with_panel:
            step("Running the expert panel: documents, conflicts, calibration, blind rounds 1 and 2 (example "
                 "experts)")
            demo_panel.run_panel(store.session, loaded, STAGE, {t: p[0] for t, p in PROFILES.items()}, TRAINING,
                                 ACTOR, DECIDED_AT)
        if with_arena:
            step("Running the user arena: entrants frozen, 10 example raters in blind battles from the balanced "
                 "schedule (example entrants answering in-process, no network), a flagged rater excluded")
            demo_arena.run_arena(store.session, loaded, STAGE, {t: p[1] for t, p in PROFILES.items()}, ACTOR)
        teams = [t.id for t in loaded.program.teams if not t.joins_at]
        originality = demo_lineage.originality_evidence(cache, loaded.program, teams, workdir, step)
        step("Deciding the originality gate from each team's lineage comparison and verified training evidence "
             "(gate from-lineage)")
        with store.session() as session:
            record_originality(session, loaded, workdir, originality)
        step("Deciding stage 1 (with robustness analysis)")
        with store.session() as session:
            decision = decision_service.decide(session, loaded, STAGE, ACTOR, DECIDED_AT).body
        step("Verifying the audit log against the database")
        with store.session() as session:
            verification = audit_log.verify(session)
            if not verification.ok:
                raise CheckFailed(f"demo audit verification failed: {verification.problems[0].message}")
            exported = audit_log.export(session)
        step("Writing reports")
        files_written: dict[str, str] = {}
        with store.session(readonly=True) as session:
            rendered = {fmt: reports.render(session, loaded, STAGE, fmt) for fmt in ("html", "md", "json")}
        for fmt, name in (("html", "report.html"), ("md", "report.md"), ("json", "report.json")):
            path = workdir / name
            path.write_text(rendered[fmt], encoding="utf-8")
            files_written[fmt] = str(path)
        audit_path = workdir / "audit.json"
        audit_path.write_text(json.dumps(exported, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        files_written["audit"] = str(audit_path)
        files_written["program"] = program_ref
        files_written["scores"] = str(scores_csv)
        files_written["benchmark_runs"] = str(cache / "runs")
        files_written["lineage_registry"] = str(demo_lineage.root(cache) / "registry")
        for evidence in originality.values():
            files_written.update(evidence.files())
    finally:
        store.dispose()
    return DemoResult(workdir=workdir, database=database_url or str(db_path), report=workdir / "report.html",
                      decision=decision,
                      audit=verification.to_dict(), files=files_written)
