"""From a finished run to a recorded score: the suite's 0–1 value, its bootstrap standard error, and provenance.

The score row carries the run id, and its evidence is a compact JSON of the per-task contributions, the confidence
interval, the model's hash and the manifest's hash, so a published decision can be traced to the exact run.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from simsa.bench.runs import RunStore
from simsa.bench.suites import runnable_suite, score_suite
from simsa.errors import InputError
from simsa.services import programs
from simsa.services import scores as score_service
from simsa.store.db import Store


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


def record_suite_score(db: Store, program_ref: str, runs: RunStore, run_id: str, suite_id: str, stage: str,
                       team: str, actor: str, dry_run: bool = False) -> dict[str, Any]:
    """Score `suite_id` on run `run_id` and record it as the team's `bench:<suite>` score (unless dry_run)."""
    run = runs.load(run_id)
    if run.get("status") != "finished":
        raise InputError(f"run {run_id} is {run.get('status')}; only a finished run can be recorded "
                         "(run the same command again to finish it from the cache)")
    with db.session() as session:
        loaded = programs.resolve(session, program_ref)
        suite = runnable_suite(loaded.program, suite_id)
        partial = (run.get("request") or {}).get("limit") is not None
        scored = score_suite(suite, run.get("results") or {}, runs.samples(run_id), partial=partial).to_dict()
        note = f"suite {suite_id}: weighted mean of normalised task metrics; 95% bootstrap CI " \
               f"{scored['ci95'][0]:.4f}–{scored['ci95'][1]:.4f}" + (" (limited run: a subset of items)"
                                                                        if partial else "")
        item = score_service.ScoreInput(stage=stage, team=team, source=f"bench:{suite_id}", value=scored["value"],
                                        stderr=scored["stderr"], run_id=run_id,
                                        evidence=suite_evidence(run, scored), note=note)
        out: dict[str, Any] = {"source": item.source, "suite_score": scored, "run_id": run_id, "team": team,
                               "stage": stage, "recorded": None}
        if dry_run:
            score_service.validate(loaded.program, item)
            return out
        version, _ = programs.register(session, loaded, actor)
        rows = score_service.add(session, version, loaded.program, [item], actor)
        out["recorded"] = {"id": rows[0].id, "supersedes": rows[0].supersedes_id}
    return out
