"""Corrections as records: voiding a score or gate result, undoing and replacing an import — never a delete, always
audited, and visible in the decision. Runs on SQLite and PostgreSQL through the command line, in-process."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import func, select

from simsa.audit import log as audit_log
from simsa.store.db import Store
from simsa.store.models import AuditEntry, Score
from test_record_integrity import PROGRAM, _ready, cli
from test_record_integrity import _scores as _scores_file


def _json(code_out: tuple[int, str]) -> dict:
    code, out = code_out
    assert code == 0, out
    return json.loads(out)


def _rows(db: str) -> list[Score]:
    store = Store(db)
    try:
        with store.session(readonly=True) as s:
            assert audit_log.verify(s).ok
            return list(s.execute(select(Score).order_by(Score.id)).scalars())
    finally:
        store.dispose()


def _csv(path: Path, rows: list[tuple[str, str, float]]) -> Path:
    path.write_text("stage,team,source,value,rater\n" + "".join(f"s1,{t},panel:user,{v},{r}\n" for t, r, v in rows),
                    encoding="utf-8")
    return path


def test_a_voided_score_no_longer_counts_and_the_decision_says_so(db_url: str, tmp_path: Path) -> None:
    prog = str(_ready(db_url, tmp_path))
    before = _json(cli(db_url, "stage", "decide", prog, "s1", "--dry-run", "--json"))
    assert before["voided"] == []
    target = next(r for r in _rows(db_url) if r.team_id == "a" and r.rater == "u1")
    assert cli(db_url, "score", "void", prog, str(target.id))[0] == 2  # a reason is required
    voided = _json(cli(db_url, "score", "void", prog, str(target.id), "--reason", "rater u1 had a conflict",
                       "--json"))
    assert voided["voids"] == target.id
    rows = _rows(db_url)
    assert len(rows) == 10 and rows[-1].voided and rows[-1].value is None  # nothing deleted, one row added
    after = _json(cli(db_url, "stage", "decide", prog, "s1", "--dry-run", "--json"))
    [record] = after["voided"]
    assert (record["kind"], record["voids"], record["team"], record["reason"]) == (
        "score", target.id, "a", "rater u1 had a conflict")
    team_a = next(t for t in after["teams"] if t["team"] == "a")
    user_a = team_a["breakdown"]["user"]
    assert user_a["raw"] == 0.8 and user_a.get("n", 1) == 1  # only u2's score is left: 0.8
    code, out = cli(db_url, "score", "void", prog, str(target.id), "--reason", "again")
    assert code == 2 and f"voided by score {voided['id']}" in out
    code, out = cli(db_url, "score", "void", prog, str(voided["id"]), "--reason", "again")
    assert code == 2 and "is itself a void" in out
    # a new score gives the key a value again, superseding the void
    assert cli(db_url, "score", "add", prog, "--stage", "s1", "--team", "a", "--source", "panel:user",
               "--rater", "u1", "--value", "0.6")[0] == 0
    assert _rows(db_url)[-1].supersedes_id == voided["id"]
    assert _json(cli(db_url, "stage", "decide", prog, "s1", "--dry-run", "--json"))["voided"] == []


def test_undoing_an_import_restores_what_it_replaced(db_url: str, tmp_path: Path) -> None:
    prog = str(_ready(db_url, tmp_path))
    batch = _json(cli(db_url, "score", "import", prog, str(_csv(tmp_path / "fix.csv", [
        ("a", "u1", 0.1), ("b", "u1", 0.2), ("c", "u3", 0.3)])), "--json"))
    assert (batch["imported"], batch["superseded"]) == (3, 2)
    # b's new score is corrected by hand after the import: undoing the import must leave that correction alone
    assert cli(db_url, "score", "add", prog, "--stage", "s1", "--team", "b", "--source", "panel:user",
               "--rater", "u1", "--value", "0.55")[0] == 0
    undo = _json(cli(db_url, "score", "void", prog, "--batch", batch["batch_id"], "--reason", "wrong file",
                     "--json"))
    assert (len(undo["restored"]), len(undo["voided"]), len(undo["skipped"])) == (1, 1, 1)
    current = {(r.team_id, r.rater): r for r in _rows(db_url)
               if r.id not in {x.supersedes_id for x in _rows(db_url)}}
    assert current[("a", "u1")].value == 0.8 and "undo of import" in (current[("a", "u1")].reason or "")
    assert current[("b", "u1")].value == 0.55
    assert current[("c", "u3")].voided
    code, out = cli(db_url, "score", "void", prog, "--batch", "imp-nope", "--reason", "x")
    assert code == 2 and "no score import 'imp-nope'" in out


def test_replacing_an_import_voids_the_keys_the_new_file_lacks(db_url: str, tmp_path: Path) -> None:
    prog = str(_ready(db_url, tmp_path))
    first = _json(cli(db_url, "score", "import", prog, str(_csv(tmp_path / "one.csv", [
        ("a", "u3", 0.1), ("b", "u3", 0.2), ("c", "u3", 0.3)])), "--json"))
    second = _json(cli(db_url, "score", "import", prog, str(_csv(tmp_path / "two.csv", [
        ("a", "u3", 0.15), ("b", "u3", 0.25)])), "--replace-batch", first["batch_id"], "--json"))
    assert second["imported"] == 2 and len(second["voided"]) == 1
    rows = _rows(db_url)
    superseded = {r.supersedes_id for r in rows}
    current = {(r.team_id, r.rater): r for r in rows if r.id not in superseded}
    assert current[("c", "u3")].voided and first["batch_id"] in (current[("c", "u3")].reason or "")
    assert (current[("a", "u3")].value, current[("b", "u3")].value) == (0.15, 0.25)
    store = Store(db_url)
    try:
        with store.session(readonly=True) as s:
            actions = s.execute(select(AuditEntry.action, func.count()).group_by(AuditEntry.action)).all()
    finally:
        store.dispose()
    assert dict(actions)["score.import"] == 3 and dict(actions)["score.void"] == 1


def test_a_voided_gate_result_leaves_the_gate_without_one(db_url: str, tmp_path: Path) -> None:
    prog_path = tmp_path / "gated.toml"
    prog_path.write_text(PROGRAM + '\n[[stages.gates]]\nid = "originality"\nname = "Originality"\nkind = "recorded"\n',
                         encoding="utf-8")
    prog = str(prog_path)
    _ready(db_url, tmp_path)
    ids = []
    for team in ("a", "b", "c"):
        ids.append(_json(cli(db_url, "gate", "record", prog, "--stage", "s1", "--team", team, "--gate",
                             "originality", "--pass", "--evidence", "checked", "--json"))["id"])
    assert cli(db_url, "score", "import", prog, str(tmp_path / "scores.json"))[0] == 0
    assert _json(cli(db_url, "stage", "decide", prog, "s1", "--dry-run", "--json"))["advanced"]
    out = _json(cli(db_url, "gate", "void", prog, str(ids[1]), "--reason", "evidence was for another model",
                    "--json"))
    assert out["voids"] == ids[1]
    code, text = cli(db_url, "stage", "decide", prog, "s1")
    assert code == 2 and "originality" in text and "b" in text
    assert cli(db_url, "gate", "record", prog, "--stage", "s1", "--team", "b", "--gate", "originality", "--fail",
               "--evidence", "re-checked")[0] == 0
    decided = _json(cli(db_url, "stage", "decide", prog, "s1", "--dry-run", "--json"))
    assert "b" in decided["eliminated"] and decided["voided"] == []
    assert cli(db_url, "audit", "verify")[0] == 0


def test_gate_import_names_every_bad_row_then_records_all(db_url: str, tmp_path: Path) -> None:
    prog_path = tmp_path / "gated.toml"
    prog_path.write_text(PROGRAM + '\n[[stages.gates]]\nid = "originality"\nname = "Originality"\nkind = "recorded"\n',
                         encoding="utf-8")
    prog = str(prog_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("stage,team,gate,passed,evidence\ns1,a,originality,maybe,x\ns1,b,originality,pass,\n"
                   "s1,c,originality,pass,ok\n", encoding="utf-8")
    code, out = cli(db_url, "gate", "import", prog, str(bad))
    assert code == 2 and "bad.csv:2: passed must be pass/fail" in out and "bad.csv:3: evidence is required" in out
    typo = tmp_path / "typo.json"
    typo.write_text(json.dumps({"gates": [
        {"stage": "s1", "team": "a", "gate": "originalty", "passed": True, "evidence": "ok"},
        {"stage": "s1", "team": "zz", "gate": "originality", "passed": True, "evidence": "ok"}]}), encoding="utf-8")
    code, out = cli(db_url, "gate", "import", prog, str(typo))
    assert code == 2 and "gates[0]" in out and "no gate 'originalty'" in out and "gates[1]" in out
    assert _rows(db_url) == []  # nothing written, the audit still verifies
    good = tmp_path / "gates.csv"
    good.write_text("stage,team,gate,passed,evidence,link\n"
                    "s1,a,originality,pass,independent (log10 p -0.4),https://example.org/a.html\n"
                    "s1,b,originality,fail,reused encoder weights,\n"
                    "s1,c,originality,yes,independent,\n", encoding="utf-8")
    done = _json(cli(db_url, "gate", "import", prog, str(good), "--json"))
    assert done["imported"] == 3 and [r["passed"] for r in done["results"]] == [True, False, True]
    again = _json(cli(db_url, "gate", "import", prog, str(good), "--json"))
    assert again["superseded"] == 3
    assert cli(db_url, "score", "import", prog, str(_scores_file(tmp_path)))[0] == 0
    decided = _json(cli(db_url, "stage", "decide", prog, "s1", "--dry-run", "--json"))
    assert "b" in decided["eliminated"]
    assert cli(db_url, "audit", "verify")[0] == 0
