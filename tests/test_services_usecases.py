"""The use-case entry points the shells share, called directly with a program reference (the example programme's
.toml path or its loaded id) on a real store: what they record, what they return, and what they refuse."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from helpers import write_bench_scores
from simsa.audit import log as audit_log
from simsa.bench.runs import RunStore
from simsa.demo import example_program_path, write_example_scores
from simsa.errors import InputError
from simsa.program.loader import load_program
from simsa.report.render import render_report
from simsa.services import (
    appeals,
    corrections,
    decision_records,
    decisions,
    gate_files,
    gates,
    programs,
    reports,
    scores,
)
from simsa.services.bench_scores import record_suite_score
from simsa.services.score_files import read_score_file
from simsa.store.db import Store
from simsa.store.models import AuditEntry, Score

KEY = "k-ai-2026"
STAGE = "stage-1"
TEAMS = ("baekdu", "halla", "jiri", "seorak", "taebaek")
DECIDED = dt.datetime(2026, 1, 15, 9, 0, tzinfo=dt.UTC)
FILED = dt.datetime(2026, 1, 17, 14, 3, tzinfo=dt.UTC)
RESOLVED = dt.datetime(2026, 1, 21, 10, 0, tzinfo=dt.UTC)
SCORE_KEYS = {"id", "stage", "team", "source", "rater", "value", "stderr", "run_id", "evidence", "note", "example",
              "recorded_at", "recorded_by", "supersedes", "voided", "reason", "batch_id", "grade"}


@pytest.fixture
def program(tmp_path: Path) -> str:
    """The example programme's file, as a reference."""
    path = tmp_path / "k-ai-2026.toml"
    path.write_text(example_program_path().read_text(encoding="utf-8"), encoding="utf-8")
    return str(path)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    store = Store(db_url)
    try:
        yield store
    finally:
        store.dispose()


def _ready(store: Store, program: str, tmp_path: Path) -> None:
    """Stage 1's scores and originality results, recorded through the entry points (jiri fails the gate)."""
    write_example_scores(tmp_path / "panel.csv")
    write_bench_scores(tmp_path / "bench.json")
    with store.session() as s:
        for name in ("panel.csv", "bench.json"):
            corrections.import_scores(s, program, read_score_file(tmp_path / name).items, "test", source_name=name)
        for team in TEAMS:
            gates.record_result(s, KEY, stage_id=STAGE, team_id=team, gate_id="originality", passed=team != "jiri",
                                evidence="lineage check", actor="test")


def _audit_actions(store: Store, action: str) -> int:
    with store.session(readonly=True) as s:
        assert audit_log.verify(s).ok
        return s.execute(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == action)).scalar_one()


def test_for_writing_registers_a_version_once_and_a_loaded_id_resolves_to_it(store: Store, program: str) -> None:
    with store.session() as s:
        first = programs.for_writing(s, program, "test")
        assert first.created and first.key == KEY and first.warnings == ()
        again = programs.for_writing(s, program, "test")
        by_id = programs.for_writing(s, KEY, "test")
        in_memory = programs.for_writing(s, load_program(program), "test")
        assert not again.created and not by_id.created and not in_memory.created
        assert {again.version.id, by_id.version.id, in_memory.version.id} == {first.version.id}
        assert by_id.loaded.sha256 == first.loaded.sha256
        assert first.to_dict() == {"program": KEY, "sha256": first.loaded.sha256, "version_id": first.version.id,
                                   "created": True, "decision_warnings": []}
        with pytest.raises(InputError, match="no loaded program"):
            programs.for_writing(s, "no-such-programme", "test")
    assert _audit_actions(store, "program.load") == 1


def test_recording_scores_supersedes_and_a_bad_item_records_nothing(store: Store, program: str) -> None:
    item = scores.ScoreInput(stage=STAGE, team="baekdu", source="panel:expert", value=81.0, rater="expert-01")
    at = dt.datetime(2026, 1, 10, 12, 0, tzinfo=dt.UTC)
    with store.session() as s:
        first = scores.record(s, program, [item], "test", at=at)
    assert first.program == KEY and len(first.rows) == 1 and first.rows[0].supersedes_id is None
    [shown] = first.to_dict()["recorded"]
    assert set(shown) == SCORE_KEYS and shown["value"] == 81.0 and shown["recorded_by"] == "test"
    assert shown["recorded_at"] == at.isoformat()
    with store.session() as s:
        second = scores.record(s, KEY, [item], "test")  # by the loaded id now
    assert second.rows[0].supersedes_id == first.rows[0].id and second.version_id == first.version_id
    bad = scores.ScoreInput(stage=STAGE, team="nobody", source="panel:expert", value=80.0, rater="expert-02")
    with pytest.raises(InputError, match="unknown team 'nobody'"), store.session() as s:
        scores.record(s, KEY, [item, bad], "test")
    with store.session(readonly=True) as s:
        assert [r.id for r in scores.history(s, KEY, STAGE)] == [first.rows[0].id, second.rows[0].id]


def test_gate_results_are_recorded_imported_and_voided_by_program_reference(store: Store, program: str,
                                                                             tmp_path: Path) -> None:
    with store.session() as s:
        first = gates.record_result(s, program, stage_id=STAGE, team_id="halla", gate_id="originality",
                                    passed=False, evidence="  vision encoder reused  ", actor="test",
                                    link="https://example.org/halla")
        assert first.to_dict() == {"id": first.recorded.id, "stage": STAGE, "team": "halla", "gate": "originality",
                                   "passed": False, "evidence": "vision encoder reused",
                                   "link": "https://example.org/halla", "supersedes": None, "grade": "declared",
                                   "override_reason": None}
        second = gates.record_result(s, KEY, stage_id=STAGE, team_id="halla", gate_id="originality", passed=True,
                                     evidence="re-checked", actor="test")
        assert second.recorded.supersedes == first.recorded.id and second.recorded.passed is True
        with pytest.raises(InputError, match="result is computed, not recorded"):
            gates.record_result(s, KEY, stage_id=STAGE, team_id="halla", gate_id="licence", passed=True,
                                evidence="x", actor="test")
        with pytest.raises(InputError, match="has no gate 'safety'"):
            gates.record_result(s, KEY, stage_id=STAGE, team_id="halla", gate_id="safety", passed=True,
                                evidence="x", actor="test")
        with pytest.raises(InputError, match="needs evidence"):
            gates.record_result(s, KEY, stage_id=STAGE, team_id="halla", gate_id="originality", passed=True,
                                evidence=" ", actor="test")
    csv = tmp_path / "gates.csv"
    csv.write_text("stage,team,gate,passed,evidence\n" + "".join(f"{STAGE},{t},originality,true,checked\n"
                                                                  for t in ("baekdu", "halla")), encoding="utf-8")
    with store.session() as s:
        imported = gate_files.import_gates(s, program, gate_files.read_gate_file(csv).items, "test",
                                           source_name=csv.name)
    out = imported.to_dict()
    assert out["imported"] == 2 and out["superseded"] == 1 and out["batch_id"].startswith("imp-")
    halla = next(r for r in out["results"] if r["team"] == "halla")
    assert halla["supersedes"] == second.recorded.id
    with store.session() as s:
        void = corrections.void_gate(s, program, halla["id"], "  wrong checkpoint  ", "test")
    assert void.to_dict() == {"id": void.id, "voids": halla["id"], "team": "halla", "gate": "originality",
                              "reason": "wrong checkpoint"}
    with store.session(readonly=True) as s:
        assert "halla" not in gates.current(s, KEY, STAGE)
    with pytest.raises(InputError, match="not current"), store.session() as s:
        corrections.void_gate(s, KEY, halla["id"], "again", "test")


def test_score_imports_are_undone_and_scores_voided_by_program_reference(store: Store, program: str,
                                                                          tmp_path: Path) -> None:
    csv = tmp_path / "scores.csv"
    csv.write_text("stage,team,source,value,rater\n" + "".join(f"{STAGE},{t},panel:user,{70 + i},u1\n"
                                                               for i, t in enumerate(TEAMS)), encoding="utf-8")
    with store.session() as s:
        first = corrections.import_scores(s, program, read_score_file(csv).items, "test", source_name=csv.name)
    assert first.to_dict()["imported"] == 5 and first.superseded == 0 and first.warnings == ()
    with store.session() as s:
        again = corrections.import_scores(s, KEY, read_score_file(csv).items, "test", source_name=csv.name)
    assert again.superseded == 5
    with store.session() as s:
        undone = corrections.undo_import(s, program, again.batch_id, "imported twice", "test")
    assert len(undone.restored) == 5 and not undone.voided and not undone.skipped
    with store.session() as s:
        current = scores.current_rows(s, KEY, [STAGE])
        target = current[(STAGE, "jiri", "panel:user", "u1")]
        void = corrections.void_score(s, KEY, target.id, "rater conflict", "test")
    assert void.to_dict() == {"id": void.id, "voids": target.id, "team": "jiri", "source": "panel:user",
                              "rater": "u1", "reason": "rater conflict"}
    with pytest.raises(InputError, match="needs --reason"), store.session() as s:
        corrections.void_score(s, KEY, void.id, " ", "test")
    with pytest.raises(InputError, match="no score import 'imp-nope'"), store.session() as s:
        corrections.undo_import(s, KEY, "imp-nope", "why", "test")
    with store.session(readonly=True) as s:
        assert s.execute(select(func.count()).select_from(Score)).scalar_one() == 5 + 5 + 5 + 1


def test_deciding_appealing_and_reporting_a_stage(store: Store, program: str, tmp_path: Path) -> None:
    _ready(store, program, tmp_path)
    with store.session() as s:
        dry = decisions.decide(s, program, STAGE, "test", DECIDED, dry_run=True)
    assert not dry.recorded and dry.decision_id is None and dry.timezone == "Asia/Seoul"
    with store.session() as s:
        decided = decisions.decide(s, KEY, STAGE, "test", DECIDED)
    assert decided.recorded and decided.decision_id == 1 and "jiri" in decided.body["eliminated"]
    assert decided.to_dict() == decided.body and decided.body["advanced"] == dry.body["advanced"]
    with store.session(readonly=True) as s:
        assert decision_records.body(decision_records.get(s, KEY, STAGE)) == json.loads(json.dumps(decided.body))
    with pytest.raises(InputError, match="already has decision 1"), store.session() as s:
        decisions.decide(s, KEY, STAGE, "test")
    with pytest.raises(InputError, match="has no stage 'stage-9'"), store.session() as s:
        decisions.decide(s, KEY, "stage-9", "test", dry_run=True)

    with store.session() as s:
        filed = appeals.file_appeal(s, program, STAGE, "jiri", "  the wrong checkpoint was compared ", "test", FILED)
    assert filed.to_dict() == {"appeal_id": filed.appeal_id, "decision_id": 1, "team": "jiri", "status": "pending"}
    assert filed.timezone == "Asia/Seoul" and filed.filed_at.replace(tzinfo=dt.UTC) == FILED
    with pytest.raises(InputError, match="did not take part"), store.session() as s:
        appeals.file_appeal(s, KEY, STAGE, "gaya", "grounds", "test", FILED)
    with store.session() as s:
        gates.record_result(s, KEY, stage_id=STAGE, team_id="jiri", gate_id="originality", passed=True,
                            evidence="re-run against the submitted checkpoint", actor="test")
        resolved = appeals.resolve_appeal(s, KEY, filed.appeal_id, True, "wrong checkpoint compared", "test",
                                          RESOLVED)
    assert resolved.status == "upheld" and resolved.new_decision is not None
    assert resolved.new_decision["supersedes"] == 1 and "jiri" in resolved.new_decision["advanced"]
    assert resolved.to_dict() == {"appeal_id": filed.appeal_id, "status": "upheld",
                                  "new_decision": resolved.new_decision}
    with pytest.raises(InputError, match="already resolved"), store.session() as s:
        appeals.resolve_appeal(s, KEY, filed.appeal_id, False, "again", "test", RESOLVED)

    with store.session(readonly=True) as s:
        inputs = reports.report_inputs(s, program, STAGE)
        in_force = json.loads(reports.render(s, KEY, STAGE, "json"))
        first = json.loads(reports.render(s, KEY, STAGE, "json", decision_id=1))
        markdown = reports.render(s, KEY, STAGE, "md", lang="en")
    assert inputs.decision["decision_id"] == resolved.new_decision["decision_id"] and inputs.timezone == "Asia/Seoul"
    assert [h["decision_id"] for h in inputs.history] == [1]
    assert [a["status"] for a in inputs.appeals] == ["upheld"]
    assert set(inputs.to_dict()) == {"decision", "appeals", "history", "timezone"}
    assert in_force["decision"]["decision_id"] == inputs.decision["decision_id"]
    assert in_force["history"][0]["decision_id"] == 1 and in_force["timezone"] == "Asia/Seoul"
    assert first["decision"]["decision_id"] == 1 and first["history"] == []
    assert markdown == render_report(inputs.decision, inputs.appeals, inputs.history, "md", "en", inputs.timezone)
    assert _audit_actions(store, "decision.supersede") == 1


def test_a_new_version_that_changes_a_decided_stage_warns_in_the_results(store: Store, program: str,
                                                                          tmp_path: Path) -> None:
    _ready(store, program, tmp_path)
    with store.session() as s:
        decisions.decide(s, KEY, STAGE, "test", DECIDED)
    changed = tmp_path / "k-ai-2026-amended.toml"
    changed.write_text(Path(program).read_text(encoding="utf-8").replace("advance_best = 4", "advance_best = 3", 1),
                       encoding="utf-8")
    item = scores.ScoreInput(stage=STAGE, team="baekdu", source="panel:expert", value=90.0, rater="expert-01")
    with store.session() as s:
        recorded = scores.record(s, str(changed), [item], "test")
        assert programs.session_warnings(s) == list(recorded.warnings)
    [warning] = recorded.warnings
    assert warning.stage == STAGE and warning.decision_id == 1 and warning.changes
    with store.session() as s:  # the amended version is the latest now: writes by id use it, and warn no more
        again = gates.record_result(s, KEY, stage_id=STAGE, team_id="halla", gate_id="originality", passed=True,
                                    evidence="checked", actor="test")
        assert again.warnings == ()
        redecided = decisions.decide(s, KEY, STAGE, "test", supersede=True, reason="cut changed to three")
    assert redecided.warnings == () and redecided.decision_id == 2 and redecided.body["supersedes"] == 1


def _finished_run(runs: RunStore, *, status: str = "finished") -> str:
    """A run of the example's `nia` suite as the run store keeps it (results per task, no per-item samples)."""
    run_id = runs.new_id()
    runs.save({"run_id": run_id, "status": status, "request": {"tasks": [], "limit": 12},
               "model": {"ref": "tiny/baekdu", "sha256": "ab" * 32, "revision": None},
               "manifest": {"engine": {"version": "0.0-test"}},
               "results": {"simsa_kobest_boolq": {"acc": 0.75, "acc_stderr": 0.05},
                           "simsa_kobest_copa": {"acc": 0.6, "acc_stderr": 0.05},
                           "simsa_kosbi": {"acc": 0.5, "acc_stderr": 0.05}}})
    return run_id


def test_a_suite_score_is_recorded_from_a_finished_run(store: Store, program: str, tmp_path: Path) -> None:
    runs = RunStore(tmp_path / "runs")
    run_id = _finished_run(runs)
    with store.session() as s:
        dry = record_suite_score(s, program, runs, run_id, "nia", STAGE, "baekdu", "test", dry_run=True)
    assert not dry.recorded and dry.to_dict()["recorded"] is None and dry.source == "bench:nia"
    assert dry.suite_score["partial"] and dry.suite_score["value"] == pytest.approx((0.5 + 0.2 + 0.0) / 3)
    with store.session(readonly=True) as s:
        assert programs.latest_version(s, KEY) is None  # a dry run registers nothing
    with store.session() as s:
        rec = record_suite_score(s, program, runs, run_id, "nia", STAGE, "baekdu", "test")
    assert rec.to_dict()["recorded"] == {"id": rec.recorded_id, "supersedes": None}
    with store.session(readonly=True) as s:
        [row] = scores.history(s, KEY, STAGE, "baekdu")
    assert row.run_id == run_id and row.value == pytest.approx(dry.suite_score["value"])
    evidence = json.loads(row.evidence or "{}")
    assert evidence["suite"] == "nia" and evidence["model_sha256"] == "ab" * 32 and len(evidence["tasks"]) == 3
    unfinished = _finished_run(runs, status="failed")
    with pytest.raises(InputError, match="only a finished run can be recorded"), store.session() as s:
        record_suite_score(s, KEY, runs, unfinished, "nia", STAGE, "baekdu", "test")
