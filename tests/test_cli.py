"""The command line as users run it: a real subprocess per command, JSON out, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import EXAMPLE, write_bench_scores
from simsa.demo import write_example_scores


def simsa(*args: str, db: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "400", "SIMSA_ACTOR": "cli-test"}
    env.pop("SIMSA_DATABASE_URL", None)
    cmd = [sys.executable, "-m", "simsa.cli.main", *(["--db", db] if db else []), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=120)


def ok_json(result: subprocess.CompletedProcess[str]) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_full_stage_flow_through_the_cli(db_url: str, tmp_path: Path) -> None:
    scores = tmp_path / "scores.csv"
    write_example_scores(scores)
    bench = tmp_path / "bench.json"  # benchmark results imported from elsewhere (`simsa bench record` is the other way)
    write_bench_scores(bench)
    program = str(EXAMPLE)
    assert ok_json(simsa("program", "load", program, "--json", db=db_url))["loaded"] is True
    imported = ok_json(simsa("score", "import", program, str(scores), "--json", db=db_url))
    assert imported["imported"] == 5 * (10 + 49)
    assert ok_json(simsa("score", "import", program, str(bench), "--json", db=db_url))["imported"] == 15
    for team in ("baekdu", "halla", "jiri", "seorak", "taebaek"):
        args = ["gate", "record", "k-ai-2026", "--stage", "stage-1", "--team", team, "--gate", "originality",
                "--fail" if team == "jiri" else "--pass", "--evidence", "lineage check", "--json"]
        assert ok_json(simsa(*args, db=db_url))["passed"] is (team != "jiri")
    dry = ok_json(simsa("stage", "decide", program, "stage-1", "--dry-run", "--json", db=db_url))
    assert dry["decision_id"] is None
    decided = ok_json(simsa("stage", "decide", program, "stage-1", "--at", "2026-01-15T09:00:00Z", "--json",
                            db=db_url))
    assert decided["decision_id"] == 1 and "jiri" in decided["eliminated"]
    assert {k: decided[k] for k in ("teams", "advanced")} == {k: dry[k] for k in ("teams", "advanced")}
    again = simsa("stage", "decide", program, "stage-1", db=db_url)
    assert again.returncode == 2 and "already has decision 1" in again.stderr
    shown = ok_json(simsa("stage", "show", "k-ai-2026", "stage-1", "--json", db=db_url))
    assert shown == decided
    appeal = ok_json(simsa("stage", "appeal", "file", program, "stage-1", "--team", "jiri", "--grounds",
                           "the lineage check compared the wrong checkpoint", "--at", "2026-01-20", "--json",
                           db=db_url))
    ok_json(simsa("gate", "record", program, "--stage", "stage-1", "--team", "jiri", "--gate", "originality",
                  "--pass", "--evidence", "re-run against the submitted checkpoint: independent", "--json", db=db_url))
    resolved = ok_json(simsa("stage", "appeal", "resolve", program, str(appeal["appeal_id"]), "--uphold",
                             "--reason", "wrong checkpoint compared", "--json", db=db_url))
    assert resolved["new_decision"]["supersedes"] == 1
    assert "jiri" in resolved["new_decision"]["advanced"]
    listed = ok_json(simsa("stage", "appeal", "list", program, "stage-1", "--json", db=db_url))["appeals"]
    assert [a["status"] for a in listed] == ["upheld"]
    for fmt in ("md", "html", "json"):
        out = tmp_path / f"report.{fmt}"
        ok_json(simsa("report", program, "stage-1", "--format", fmt, "-o", str(out), "--json", db=db_url))
        assert out.stat().st_size > 2000
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert report["history"][0]["decision_id"] == 1 and report["appeals"][0]["status"] == "upheld"
    verified = ok_json(simsa("audit", "verify", "--json", db=db_url))
    # program, 295 + 15 scores and one `score.import` entry per file, 5 gates, decision, appeal, gate, resolution
    # with its new decision
    assert verified["ok"] and verified["entries"] == 1 + (295 + 1) + (15 + 1) + 5 + 1 + 1 + 1 + 1 + 1
    export = tmp_path / "audit.json"
    ok_json(simsa("audit", "export", "-o", str(export), "--json", db=db_url))
    assert ok_json(simsa("audit", "verify", "--file", str(export), "--json"))["ok"]
    history = ok_json(simsa("score", "list", "k-ai-2026", "--team", "jiri", "--json", db=db_url))["scores"]
    assert len(history) == 62 and all(s["current"] for s in history)


def test_audit_verify_fails_with_exit_1_and_names_the_row(tmp_path: Path) -> None:
    result = simsa("demo", "--workdir", str(tmp_path), "--json")
    assert ok_json(result)["audit"]["ok"]
    import sqlite3

    with sqlite3.connect(tmp_path / "simsa.db") as conn:
        conn.execute("UPDATE scores SET value = value + 1 WHERE id = 7")
    failed = simsa("audit", "verify", db=f"sqlite:///{tmp_path / 'simsa.db'}")
    assert failed.returncode == 1
    assert "scores row 7 differs from audit entry" in failed.stderr and "value" in failed.stderr
    assert "Traceback" not in failed.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["stage", "decide", "k-ai-2026", "stage-1"], "no loaded program with that id"),
    (["score", "add", str(EXAMPLE), "--stage", "stage-1", "--team", "baekdu", "--source", "panel:expert",
      "--value", "101"], "outside the range [0, 100] of criterion 'expert'"),
    (["stage", "decide", str(EXAMPLE), "stage-9"], "has no stage 'stage-9'"),
    (["stage", "decide", str(EXAMPLE), "stage-1"], "cannot decide stage 'stage-1': no score for"),
    (["stage", "decide", str(EXAMPLE), "stage-1", "--at", "yesterday"], "not an ISO 8601 date-time"),
])
def test_user_errors_are_one_line_with_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = simsa(*args, db=f"sqlite:///{tmp_path / 'x.db'}")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.stderr
    as_json = simsa(*args, "--json", db=f"sqlite:///{tmp_path / 'x.db'}")
    assert as_json.returncode == 2 and message in json.loads(as_json.stdout)["error"]


def test_bad_database_url_is_a_clear_error(tmp_path: Path) -> None:
    result = simsa("audit", "verify", db=f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}")
    assert result.returncode == 2 and "database directory" in result.stderr
    result = simsa("audit", "verify", db="nosuchdb://x")
    assert result.returncode == 2 and "error:" in result.stderr and "Traceback" not in result.stderr
