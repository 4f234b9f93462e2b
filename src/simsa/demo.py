"""The built-in example: stage 1 of the example programme, end to end, on example inputs.

Benchmark and panel scores here are example data (seeded, clearly marked as such in every output); later
pillars replace them with real benchmark runs, panel votes and lineage checks without changing this flow.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import as_file, files
from pathlib import Path

import numpy as np

from simsa.audit import log as audit_log
from simsa.errors import CheckFailed
from simsa.program.loader import load_program
from simsa.report.render import render_report
from simsa.services import appeals as appeal_service
from simsa.services import decisions as decision_service
from simsa.services import gates as gate_service
from simsa.services import programs
from simsa.services import scores as score_service
from simsa.store.db import Store, sqlite_url

PROGRAM_FILE = "k-ai-2026.toml"
STAGE = "stage-1"
DECIDED_AT = dt.datetime(2026, 1, 15, 9, 0, tzinfo=dt.UTC)
ACTOR = "demo"

# team → (NIA, global common, team-chosen) benchmark fractions, expert mean /100, user mean /100
PROFILES: dict[str, tuple[float, float, float, float, float]] = {
    "baekdu": (0.78, 0.71, 0.80, 84.0, 81.0),
    "halla": (0.80, 0.70, 0.78, 82.0, 80.0),
    "jiri": (0.70, 0.66, 0.74, 77.0, 76.0),
    "seorak": (0.70, 0.65, 0.72, 74.0, 74.0),
    "taebaek": (0.66, 0.61, 0.69, 75.5, 73.0),
}
EXPERTS = 10
USERS = 49
BENCH_SE = 0.012

ORIGINALITY = {
    "halla": (False, "vision encoder: all 391 tensors identical to foreign-lab/vision-encoder-400m "
                     "(example evidence; computed lineage checks arrive with `simsa lineage`)"),
}
ORIGINALITY_PASS = "all components trained from re-initialised weights (example evidence)"


def example_program_path() -> Path:
    """The example program file shipped inside the package."""
    with as_file(files("simsa.examples") / PROGRAM_FILE) as path:
        return Path(path)


def write_example_scores(path: Path, seed: int = 2026) -> int:
    """Seeded example scores: one row per benchmark suite, one per expert and per user rater."""
    rng = np.random.default_rng(seed)
    rows = []
    for team, (nia, glob, chosen, expert, user) in PROFILES.items():
        for source, value in (("bench:nia", nia), ("bench:global-common", glob), ("bench:team-chosen", chosen)):
            rows.append({"stage": STAGE, "team": team, "source": source, "value": f"{value:.4f}",
                         "stderr": f"{BENCH_SE}", "rater": "", "run_id": f"example-{team}-{source[6:]}",
                         "evidence": "", "note": "example benchmark result", "example": "true"})
        for i in range(EXPERTS):
            value = float(np.clip(rng.normal(expert, 6.0), 0, 100))
            rows.append({"stage": STAGE, "team": team, "source": "panel:expert", "value": f"{value:.1f}",
                         "stderr": "", "rater": f"expert-{i + 1:02d}", "run_id": "", "evidence": "",
                         "note": "example expert score", "example": "true"})
        for i in range(USERS):
            value = float(np.clip(rng.normal(user, 10.0), 0, 100))
            rows.append({"stage": STAGE, "team": team, "source": "panel:user", "value": f"{value:.1f}",
                         "stderr": "", "rater": f"user-{i + 1:02d}", "run_id": "", "evidence": "",
                         "note": "example user rating", "example": "true"})
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(score_service.FIELDS))
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


@dataclass
class DemoResult:
    workdir: Path
    database: str
    report: Path
    decision: dict
    audit: dict
    files: dict[str, str]

    def to_dict(self) -> dict:
        return {"workdir": str(self.workdir), "database": str(self.database), "report": str(self.report),
                "files": self.files, "advanced": self.decision["advanced"],
                "eliminated": self.decision["eliminated"], "title_holders": self.decision["title_holders"],
                "decision": self.decision, "audit": self.audit}


def run_demo(workdir: Path, step: Callable[[str], None] = lambda _msg: None,
             database_url: str | None = None) -> DemoResult:
    """Load the example programme, record example scores and gate results, decide stage 1, verify, report.

    The database is `workdir/simsa.db` (recreated), unless `database_url` names another (which must be empty).
    """
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
        loaded = load_program(program_copy)
        with store.session() as session:
            version, _ = programs.register(session, loaded, ACTOR)
        step("Recording example scores (benchmarks, expert and user panels)")
        scores_csv = workdir / "example-scores.csv"
        write_example_scores(scores_csv)
        with store.session() as session:
            score_service.add(session, version, loaded.program, score_service.parse_file(scores_csv), ACTOR)
        step("Recording originality gate results")
        with store.session() as session:
            for team in loaded.program.teams:
                if team.joins_at:
                    continue
                passed, evidence = ORIGINALITY.get(team.id, (True, ORIGINALITY_PASS))
                gate_service.record(session, version, loaded.program, stage_id=STAGE, team_id=team.id,
                                    gate_id="originality", passed=passed, evidence=evidence, link=None,
                                    actor=ACTOR, example=True)
        step("Deciding stage 1 (with robustness analysis)")
        with store.session() as session:
            decision = decision_service.decide_and_store(session, loaded, STAGE, ACTOR, at=DECIDED_AT)
        step("Verifying the audit log against the database")
        with store.session() as session:
            verification = audit_log.verify(session)
            if not verification.ok:
                raise CheckFailed(f"demo audit verification failed: {verification.problems[0].message}")
            exported = audit_log.export(session)
        step("Writing reports")
        files_written: dict[str, str] = {}
        with store.session() as session:
            appeals = appeal_service.listing(session, loaded.program.program.id, STAGE)
        for fmt, name in (("html", "report.html"), ("md", "report.md"), ("json", "report.json")):
            path = workdir / name
            path.write_text(render_report(decision, appeals, [], fmt), encoding="utf-8")
            files_written[fmt] = str(path)
        audit_path = workdir / "audit.json"
        audit_path.write_text(json.dumps(exported, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        files_written["audit"] = str(audit_path)
        files_written["program"] = program_ref
        files_written["scores"] = str(scores_csv)
    finally:
        store.dispose()
    return DemoResult(workdir=workdir, database=database_url or str(db_path), report=workdir / "report.html",
                      decision=decision,
                      audit=verification.to_dict(), files=files_written)
