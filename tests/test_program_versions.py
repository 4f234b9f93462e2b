"""Program versions: the semantic diff (rules vs cosmetic), `program list`, `program diff`, and the warning when a
version that changes a decided stage's rules is loaded. Real CLI on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from cli_inproc import run
from helpers import EXAMPLE, load, write_bench_scores
from simsa.demo import write_example_scores
from simsa.program.diff import diff_programs
from simsa.store.db import Store
from simsa.store.models import AuditEntry

TEXT = EXAMPLE.read_text(encoding="utf-8")
NIA_POINTS = ('    points = 10\n    source = "bench:nia"', '    points = 12\n    source = "bench:nia"')
GLOBAL_POINTS = ('    points = 20\n    source = "bench:global-common"',
                 '    points = 18\n    source = "bench:global-common"')
NAME_KO = ('name_ko = "백두팀"', 'name_ko = "백두 팀"')
GAYA = ('[[teams]]\nid = "gaya"', '[[teams]]\nid = "hallyeo"\nname = "Team Hallyeo"\nlicence = "mit"\n'
        'joins_at = "stage-2"\n\n[[teams]]\nid = "gaya"')
SAFETY_GATE = ('''
  [[stages.gates]]
  id = "safety"
  name = "Safety threshold"
  name_ko = "안전성 기준"
  kind = "min_score"
  source = "bench:safety"
  threshold = 0.7
''', "")


def edited(*edits: tuple[str, str]) -> str:
    text = TEXT
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def write(tmp_path: Path, name: str, *edits: tuple[str, str]) -> Path:
    path = tmp_path / name
    path.write_text(edited(*edits), encoding="utf-8")
    return path


# --- the diff itself (pure)


def test_points_change_is_a_rule_change_of_its_stage() -> None:
    diff = diff_programs(load(TEXT).program, load(edited(NIA_POINTS, GLOBAL_POINTS)).program)
    assert [(c.path, c.before, c.after, c.category, c.stages) for c in diff.changes] == [
        ("stages[stage-1].criteria[nia].points", 10.0, 12.0, "rules", ("stage-1",)),
        ("stages[stage-1].criteria[global].points", 20.0, 18.0, "rules", ("stage-1",)),
    ]
    assert diff.affecting("stage-2") == [] and len(diff.affecting("stage-1")) == 2


def test_korean_name_is_cosmetic() -> None:
    diff = diff_programs(load(TEXT).program, load(edited(NAME_KO)).program)
    assert [(c.path, c.category, c.stages) for c in diff.changes] == [("teams[baekdu].name_ko", "cosmetic", ())]
    assert diff.rules == [] and diff.changes[0].describe() == "teams[baekdu].name_ko: 백두팀 → 백두 팀"


def test_added_team_and_removed_gate() -> None:
    diff = diff_programs(load(TEXT).program, load(edited(GAYA, SAFETY_GATE)).program)
    by_path = {c.path: c for c in diff.changes}
    added = by_path["teams[hallyeo]"]
    assert (added.kind, added.category, added.stages) == ("added", "rules", ("stage-2",))
    assert added.after["joins_at"] == "stage-2"
    removed = by_path["stages[stage-2].gates[safety]"]
    assert (removed.kind, removed.category, removed.stages) == ("removed", "rules", ("stage-2",))
    assert removed.before["threshold"] == 0.7
    assert set(by_path) == {"teams[hallyeo]", "stages[stage-2].gates[safety]"}
    assert diff.affecting("stage-1") == []


def test_team_order_suites_and_moves_are_rules() -> None:
    before = load(TEXT).program
    swapped = edited(('id = "baekdu"', 'id = "tmp"'), ('id = "halla"', 'id = "baekdu"'), ('id = "tmp"', 'id = "halla"'))
    order = diff_programs(before, load(swapped).program)
    assert any(c.path == "teams (order)" and c.category == "rules" and "stage-1" in c.stages for c in order.changes)
    weight = edited(('  task = "simsa_kobest_wic"\n  metric = "acc"\n',
                     '  task = "simsa_kobest_wic"\n  metric = "acc"\n  weight = 2\n'))
    suite = diff_programs(before, load(weight).program)
    assert [(c.path, c.category, c.stages) for c in suite.changes] == [
        ("suites[global-common].tasks[simsa_kobest_wic/acc].weight", "rules", ("stage-1",))]
    assert json.loads(json.dumps(suite.to_dict()))["rules"] == 1


# --- the store and the CLI


def _decide_stage_1(db: str, tmp_path: Path) -> dict:
    panel = tmp_path / "panel.csv"
    write_example_scores(panel)
    bench = tmp_path / "bench.json"
    write_bench_scores(bench)
    run("score", "import", str(EXAMPLE), str(panel), "--json", db=db).json()
    run("score", "import", str(EXAMPLE), str(bench), "--json", db=db).json()
    for team in ("baekdu", "halla", "jiri", "seorak", "taebaek"):
        run("gate", "record", "k-ai-2026", "--stage", "stage-1", "--team", team, "--gate", "originality", "--pass",
            "--evidence", "lineage check", "--json", db=db).json()
    return run("stage", "decide", "k-ai-2026", "stage-1", "--at", "2026-01-15T09:00:00Z", "--json", db=db).json()


def _load_entries(db: str) -> list[dict]:
    store = Store(db)
    try:
        with store.session(readonly=True) as s:
            rows = s.execute(select(AuditEntry).where(AuditEntry.action == "program.load")
                             .order_by(AuditEntry.seq)).scalars().all()
            return [json.loads(r.payload) for r in rows]
    finally:
        store.dispose()


def test_list_and_diff_two_versions(db_url: str, tmp_path: Path) -> None:
    first = run("program", "load", str(EXAMPLE), "--json", db=db_url).json()
    decided = _decide_stage_1(db_url, tmp_path)
    v2 = write(tmp_path, "v2.toml", NIA_POINTS, GLOBAL_POINTS, NAME_KO)
    second = run("program", "load", str(v2), "--json", db=db_url).json()
    versions = run("program", "list", "--json", db=db_url).json()["versions"]
    assert [(v["id"], v["program"], v["sha256"]) for v in versions] == [
        (first["version_id"], "k-ai-2026", first["sha256"]), (second["version_id"], "k-ai-2026", second["sha256"])]
    assert versions[0]["decisions"] == [decided["decision_id"]] and versions[0]["decisions_in_force"] == [1]
    assert versions[0]["used_by_decision"] and not versions[1]["used_by_decision"]
    assert versions[1]["source_path"] == str(v2) and versions[1]["loaded_by"] == "tester"
    table = run("program", "list", db=db_url)
    assert table.code == 0 and first["sha256"][:12] in table.stdout and "1*" in table.stdout
    csv_lines = run("program", "list", "--format", "csv", db=db_url).stdout.splitlines()
    assert csv_lines[0] == "program,id,sha256,loaded_at,loaded_by,decisions,source_path"
    assert csv_lines[2].startswith(f"k-ai-2026,{second['version_id']},{second['sha256']},")

    default = run("program", "diff", "k-ai-2026", "--json", db=db_url).json()
    assert default["from"]["version_id"] == first["version_id"] and default["to"]["version_id"] == second["version_id"]
    assert (default["rules"], default["cosmetic"]) == (2, 1) and "text_diff" not in default
    by_sha = run("program", "diff", "k-ai-2026", "--from", second["sha256"][:8], "--to", str(first["version_id"]),
                 "--text", "--json", db=db_url).json()
    assert by_sha["changes"][1]["before"] == 12.0 and "-    points = 12\n+    points = 10\n" in by_sha["text_diff"]
    # a file on disk, before loading it, against the latest loaded version
    v3 = write(tmp_path, "v3.toml", NIA_POINTS, GLOBAL_POINTS, NAME_KO, GAYA)
    unloaded = run("program", "diff", str(v3), "--json", db=db_url).json()
    assert unloaded["from"]["version_id"] == second["version_id"] and unloaded["to"]["version_id"] is None
    assert [c["path"] for c in unloaded["changes"]] == ["teams[hallyeo]"]
    shown = run("program", "diff", "k-ai-2026", "--to", str(v3), "--text", db=db_url)
    assert shown.code == 0 and "rules    teams[hallyeo] added (affects stage-2)" in shown.stdout
    assert '+id = "hallyeo"' in shown.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--from", "99"], "'99' is not a loaded version of program 'k-ai-2026'"),
    (["--from", "zz-top"], "is not a version id, a sha256 prefix"),
])
def test_bad_version_references_are_one_line_errors(sqlite_url: str, args: list[str], message: str) -> None:
    run("program", "load", str(EXAMPLE), "--json", db=sqlite_url).json()
    only = run("program", "diff", "k-ai-2026", db=sqlite_url)
    assert only.code == 2 and "only one loaded version" in only.stderr
    out = run("program", "diff", "k-ai-2026", *args, db=sqlite_url)
    assert out.code == 2 and message in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert run("program", "diff", "nothing-here", db=sqlite_url).code == 2


def test_rules_change_after_a_decision_warns_cosmetic_does_not(db_url: str, tmp_path: Path) -> None:
    run("program", "load", str(EXAMPLE), "--json", db=db_url).json()
    decided = _decide_stage_1(db_url, tmp_path)
    cosmetic = run("program", "load", str(write(tmp_path, "cosmetic.toml", NAME_KO)), "--json", db=db_url)
    assert cosmetic.json()["loaded"] is True and cosmetic.json()["decision_warnings"] == []
    assert "warning" not in cosmetic.stderr
    later = run("program", "load", str(write(tmp_path, "stage2.toml", SAFETY_GATE)), "--json", db=db_url).json()
    assert later["decision_warnings"] == []  # stage 2 is undecided: amending its rules puts no decision in question

    rules = run("program", "load", str(write(tmp_path, "rules.toml", NIA_POINTS, GLOBAL_POINTS)), "--json",
                db=db_url)
    loaded = rules.json()
    assert loaded["loaded"] is True  # never refused
    [warning] = loaded["decision_warnings"]
    assert (warning["stage"], warning["decision_id"]) == ("stage-1", decided["decision_id"])
    assert [c["path"] for c in warning["changes"]] == ["stages[stage-1].criteria[nia].points",
                                                      "stages[stage-1].criteria[global].points"]
    assert "warning:" in rules.stderr and "criteria[nia].points: 10 → 12" in rules.stderr
    text = run("program", "load", str(tmp_path / "rules.toml"), db=db_url)  # same version again: nothing new
    assert text.code == 0 and "warning" not in text.stderr

    # the same check where a command registers a version implicitly (a score recorded with a new file)
    implicit = write(tmp_path, "implicit.toml", NIA_POINTS, GLOBAL_POINTS, NAME_KO)
    run("score", "add", str(implicit), "--stage", "stage-1", "--team", "baekdu", "--source", "bench:nia",
        "--value", "0.61", "--json", db=db_url).json()
    entries = _load_entries(db_url)
    assert [bool(e.get("decision_warnings")) for e in entries] == [False, False, False, True, True]
    assert entries[3]["decision_warnings"][0]["decision_id"] == decided["decision_id"]
    assert "stages[stage-1].criteria[nia].points: 10 → 12" in entries[4]["decision_warnings"][0]["changes"]
    # and where `stage decide` registers it: the new decision says which decision in force it was warned about
    amended = write(tmp_path, "amended.toml", NIA_POINTS, GLOBAL_POINTS, ('appeal_days = 10\ntotal_points = 100\n'
                                                                         'precision = 2',
                                                                         'appeal_days = 14\ntotal_points = 100\n'
                                                                         'precision = 2'))
    redecided = run("stage", "decide", str(amended), "stage-1", "--supersede", "--reason", "rules amended",
                    "--at", "2026-01-20T09:00:00Z", "--json", db=db_url)
    body = redecided.json()
    assert body["supersedes"] == decided["decision_id"] and "warning:" in redecided.stderr
    paths = [c["path"] for c in body["decision_warnings"][0]["changes"]]
    assert "stages[stage-1].appeal_days" in paths
    assert run("audit", "verify", "--json", db=db_url).json()["ok"]
