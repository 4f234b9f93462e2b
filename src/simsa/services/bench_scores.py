"""From a finished benchmark run to a recorded score: the suite's 0–1 value, its bootstrap standard error, and
provenance.

The score row carries the run id, and its evidence is a compact JSON of the per-task contributions, the confidence
interval, the model's hash and the manifest's hash, so a published decision can be traced to the exact run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from simsa.errors import InputError
from simsa.services import programs
from simsa.services import scores as score_service
from simsa.services.programs import ProgramRef, VersionWarning

if TYPE_CHECKING:  # the run store and suite scoring load numpy; a caller that only builds evidence needs neither
    from simsa.bench.runs import RunStore


def suite_evidence(run: dict[str, Any], suite_score: dict[str, Any]) -> str:
    """The evidence text of a recorded suite score (compact JSON)."""
    manifest = run.get("manifest") or {}
    digest = hashlib.sha256(json.dumps(manifest, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()
    model = run.get("model") or {}
    return json.dumps({
        "run_id": run["run_id"], "suite": suite_score["suite"], "ci95": suite_score["ci95"],
        "partial": suite_score["partial"], "model": model.get("ref"), "model_sha256": model.get("sha256"),
        "model_revision": model.get("revision"), "manifest_sha256": digest,
        "engine": (manifest.get("engine") or {}).get("version"),
        "tasks": [{k: t[k] for k in ("task", "metric", "raw", "normalised", "weight", "n_items")}
                  for t in suite_score["tasks"]],
    }, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class SuiteScoreRecord:
    """A suite scored on a run: the score (value, stderr, CI, per-task contributions), and the score row recorded
    for it (None on a dry run)."""

    source: str
    suite_score: dict[str, Any]
    run_id: str
    team: str
    stage: str
    recorded_id: int | None = None
    supersedes: int | None = None
    warnings: tuple[VersionWarning, ...] = ()

    @property
    def recorded(self) -> bool:
        return self.recorded_id is not None

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "suite_score": self.suite_score, "run_id": self.run_id, "team": self.team,
                "stage": self.stage,
                "recorded": {"id": self.recorded_id, "supersedes": self.supersedes} if self.recorded else None}


def record_suite_score(session: Session, program_ref: ProgramRef, runs: RunStore, run_id: str, suite_id: str,
                       stage: str, team: str, actor: str, dry_run: bool = False) -> SuiteScoreRecord:
    """Score `suite_id` on run `run_id` and record it as the team's `bench:<suite>` score (unless dry_run).

    The program is a .toml path or a loaded program's id; its version is registered first if it is new.
    """
    from simsa.bench.suites import runnable_suite, score_suite

    run = runs.load(run_id)
    if run.get("status") != "finished":
        raise InputError(f"run {run_id} is {run.get('status')}; only a finished run can be recorded "
                         "(run the same command again to finish it from the cache)")
    loaded = programs.resolve(session, program_ref)
    suite = runnable_suite(loaded.program, suite_id)
    partial = (run.get("request") or {}).get("limit") is not None
    scored = score_suite(suite, run.get("results") or {}, runs.samples(run_id), partial=partial).to_dict()
    note = f"suite {suite_id}: weighted mean of normalised task metrics; 95% bootstrap CI " \
           f"{scored['ci95'][0]:.4f}–{scored['ci95'][1]:.4f}" + (" (limited run: a subset of items)"
                                                                    if partial else "")
    item = score_service.ScoreInput(stage=stage, team=team, source=f"bench:{suite_id}", value=scored["value"],
                                    stderr=scored["stderr"], run_id=run_id, evidence=suite_evidence(run, scored),
                                    note=note)
    result = SuiteScoreRecord(source=item.source, suite_score=scored, run_id=run_id, team=team, stage=stage)
    if dry_run:
        score_service.validate(loaded.program, item)
        return result
    recorded = score_service.record(session, loaded, [item], actor)
    row = recorded.rows[0]
    return replace(result, recorded_id=row.id, supersedes=row.supersedes_id, warnings=recorded.warnings)
