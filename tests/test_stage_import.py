"""Judging a later stage on its own: a previous decision made elsewhere, imported by sha256, or explicit participants.

Everything runs through the real CLI in subprocesses: stage 1 is decided in store A and published with
`simsa stage show --json`; stage 2 is decided in a fresh store B from that file, pinned in the program file.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROGRAM = """\
[program]
id = "relay"
name = "Relay programme"

[[teams]]
id = "alpha"
name = "Team Alpha"

[[teams]]
id = "beta"
name = "Team Beta"

[[teams]]
id = "gamma"
name = "Team Gamma"

[[teams]]
id = "delta"
name = "Team Delta (replacement)"
joins_at = "s2"

[[stages]]
id = "s1"
name = "Stage 1"
start = 2026-01-01
end = 2026-02-01
tie_breakers = ["team_order"]

  [stages.elimination]
  advance_best = 2

  [stages.robustness]
  draws = 0

  [[stages.criteria]]
  id = "expert"
  name = "Expert review"
  points = 100
  source = "panel:expert"
  raw_range = [0, 100]

[[stages]]
id = "s2"
name = "Stage 2"
start = 2026-03-01
end = 2026-04-01
tie_breakers = ["team_order"]
{stage2_extra}
  [stages.elimination]
  advance_best = 1

  [stages.robustness]
  draws = 0

  [[stages.criteria]]
  id = "user"
  name = "User review"
  points = 100
  source = "panel:user"
  raw_range = [0, 100]
"""

S1_SCORES = {"alpha": 90, "beta": 40, "gamma": 70}      # stage 1: alpha and gamma advance, beta is cut
S2_SCORES = {"alpha": 50, "beta": 99, "gamma": 60, "delta": 80}


def program(stage2_extra: str = "") -> str:
    return PROGRAM.replace("{stage2_extra}", stage2_extra)


def pinned(file: str, sha256: str) -> str:
    return program(f'\n  [stages.previous_decision]\n  file = "{file}"\n  sha256 = "{sha256}"\n')


def simsa(*args: str, db: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMSA_")}
    env.update(NO_COLOR="1", COLUMNS="400", SIMSA_ACTOR="import-test")
    cmd = [sys.executable, "-m", "simsa.cli.main", *(["--db", db] if db else []), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


def ok_json(result: subprocess.CompletedProcess[str]) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The single error line of a refused command (exit 2, no traceback), without its `error: ` prefix."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0].removeprefix("error: ")


def record_scores(program_file: Path, db: str, stage: str, source: str, values: dict[str, float],
                  tmp: Path) -> None:
    rows = [{"stage": stage, "team": team, "source": source, "value": value, "rater": "panel-1"}
            for team, value in values.items()]
    scores = tmp / f"{stage}-scores.json"
    scores.write_text(json.dumps({"scores": rows}), encoding="utf-8")
    assert ok_json(simsa("score", "import", str(program_file), str(scores), "--json", db=db))["imported"] == len(rows)


def sqlite(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture
def published(tmp_path: Path) -> tuple[Path, str]:
    """Stage 1 decided in store A and published as `stage show --json` writes it: (file, its sha256)."""
    agency_a = tmp_path / "agency-a"
    agency_a.mkdir()
    program_a = agency_a / "relay.toml"
    program_a.write_text(program(), encoding="utf-8")
    db_a = sqlite(agency_a / "a.db")
    record_scores(program_a, db_a, "s1", "panel:expert", S1_SCORES, agency_a)
    decided = ok_json(simsa("stage", "decide", str(program_a), "s1", "--at", "2026-02-01T09:00:00Z", "--json",
                            db=db_a))
    assert decided["title_holders"] == ["alpha", "gamma"]
    shown = simsa("stage", "show", "relay", "s1", "--json", db=db_a)
    assert shown.returncode == 0, shown.stderr
    out = tmp_path / "stage1-decision.json"
    out.write_text(shown.stdout, encoding="utf-8")
    return out, hashlib.sha256(out.read_bytes()).hexdigest()


def agency_b(tmp_path: Path, text: str, decision: Path | None = None) -> tuple[Path, str]:
    """A second agency's directory: its program file (and the published decision beside it), a fresh store."""
    home = tmp_path / "agency-b"
    home.mkdir(exist_ok=True)
    program_b = home / "relay.toml"
    program_b.write_text(text, encoding="utf-8")
    if decision is not None:
        (home / "stage1-decision.json").write_bytes(decision.read_bytes())
    return program_b, sqlite(home / "b.db")


def test_stage_two_is_decided_in_a_fresh_store_from_the_imported_decision(published: tuple[Path, str],
                                                                         tmp_path: Path, db_url: str) -> None:
    decision, sha = published
    program_b, _ = agency_b(tmp_path, pinned("stage1-decision.json", sha), decision)
    db_b = db_url  # store B: SQLite, and PostgreSQL where the test server runs
    checked = ok_json(simsa("program", "check", str(program_b), "--json"))
    assert checked["warnings"] == []
    record_scores(program_b, db_b, "s2", "panel:user", {t: S2_SCORES[t] for t in ("alpha", "gamma", "delta")},
                  tmp_path)

    # Deciding before the import is recorded says what to run.
    refused = one_line_error(simsa("stage", "decide", str(program_b), "s2", "--json", db=db_b))
    assert refused == (f"stage 's2' continues from the published decision of 's1' (stage1-decision.json, sha256 "
                       f"{sha}), but the store has no decision of it yet; record it first: `simsa stage "
                       "import-decision relay stage1-decision.json`")

    imported = ok_json(simsa("stage", "import-decision", str(program_b), str(decision), "--json", db=db_b))
    assert imported == {"stage": "s1", "for_stage": "s2", "file": "stage1-decision.json", "sha256": sha,
                        "title_holders": ["alpha", "gamma"], "decision_id": 1, "recorded": True, "supersedes": None}
    again = ok_json(simsa("stage", "import-decision", str(program_b), str(decision), "--json", db=db_b))
    assert (again["recorded"], again["decision_id"]) == (False, 1)

    # The imported decision is shown as published, marked as imported.
    shown = ok_json(simsa("stage", "show", "relay", "s1", "--json", db=db_b))
    original = json.loads(decision.read_text(encoding="utf-8"))
    assert shown == {**original, "imported": {"sha256": sha, "file": "stage1-decision.json"}}

    decided = ok_json(simsa("stage", "decide", str(program_b), "s2", "--at", "2026-04-01T09:00:00Z", "--json",
                            db=db_b))
    assert sorted(t["team"] for t in decided["teams"]) == ["alpha", "delta", "gamma"]  # holders + joins_at s2
    assert decided["advanced"] == ["delta"]
    assert ok_json(simsa("audit", "verify", "--json", db=db_b))["ok"]


def test_wrong_sha256_is_refused_naming_both_hashes(published: tuple[Path, str], tmp_path: Path) -> None:
    decision, sha = published
    wrong = "ab" * 32
    program_b, db_b = agency_b(tmp_path, pinned("stage1-decision.json", wrong))
    message = one_line_error(simsa("stage", "import-decision", str(program_b), str(decision), db=db_b))
    assert message == (f"{decision}: has sha256 {sha}, which no stage declares (stage 's2' declares {wrong} "
                       "(stage1-decision.json)); import the exact file the programme names, or correct its sha256")
    # With the file beside the program file, the program itself no longer checks: it pins another file.
    agency_b(tmp_path, pinned("stage1-decision.json", wrong), decision)
    checked = one_line_error(simsa("program", "check", str(program_b)))
    sha_line = program_b.read_text(encoding="utf-8").split("\n").index(f'  sha256 = "{wrong}"') + 1
    assert checked == (f"{program_b}:{sha_line}: stages[1].previous_decision.sha256: stage1-decision.json has "
                       f"sha256 {sha}, but the programme declares {wrong}")


def test_a_decision_of_another_programme_is_refused(published: tuple[Path, str], tmp_path: Path) -> None:
    decision, _ = published
    doc = json.loads(decision.read_text(encoding="utf-8"))
    doc["program"]["id"] = "other-programme"
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    sha = hashlib.sha256(foreign.read_bytes()).hexdigest()
    program_b, db_b = agency_b(tmp_path, pinned("stage1-decision.json", sha))
    message = one_line_error(simsa("stage", "import-decision", str(program_b), str(foreign), db=db_b))
    assert message == f"{foreign}: is a decision of programme 'other-programme', not 'relay'"
    agency_b(tmp_path, pinned("stage1-decision.json", sha), foreign)
    checked = one_line_error(simsa("program", "check", str(program_b)))
    assert checked.endswith("stages[1].previous_decision.file: stage1-decision.json is a decision of programme "
                            "'other-programme', not 'relay'")


def test_a_decision_of_the_wrong_stage_or_naming_unknown_teams_is_refused(published: tuple[Path, str],
                                                                          tmp_path: Path) -> None:
    decision, _ = published
    for change, says in ((("stage", "s2"), "decides stage 's2', but stage 's2' continues from 's1'"),
                         (("title_holders", ["alpha", "zeta"]), "names title holder 'zeta', which is not a team of "
                                                              "programme 'relay'"),
                         (("title_holders", ["delta"]), "names title holder 'delta', which joins_at 's2', after "
                                                        "'s1'")):
        doc = json.loads(decision.read_text(encoding="utf-8"))
        doc[change[0]] = change[1]
        altered = tmp_path / "altered.json"
        altered.write_text(json.dumps(doc), encoding="utf-8")
        sha = hashlib.sha256(altered.read_bytes()).hexdigest()
        program_b, db_b = agency_b(tmp_path, pinned("stage1-decision.json", sha))
        message = one_line_error(simsa("stage", "import-decision", str(program_b), str(altered), db=db_b))
        assert message == f"{altered}: {says}"


def test_a_local_decision_is_not_taken_for_the_declared_import(published: tuple[Path, str], tmp_path: Path) -> None:
    decision, sha = published
    program_b, db_b = agency_b(tmp_path, pinned("stage1-decision.json", sha), decision)
    record_scores(program_b, db_b, "s1", "panel:expert", S1_SCORES, tmp_path)
    ok_json(simsa("stage", "decide", str(program_b), "s1", "--json", db=db_b))
    refused = one_line_error(simsa("stage", "decide", str(program_b), "s2", db=db_b))
    assert "but the store has decision 1, made here; record it first: `simsa stage import-decision relay " \
           "stage1-decision.json --supersede --reason TEXT`" in refused
    assert "already has decision 1 (made here)" in one_line_error(
        simsa("stage", "import-decision", str(program_b), str(decision), db=db_b))
    replaced = ok_json(simsa("stage", "import-decision", str(program_b), str(decision), "--supersede", "--reason",
                             "stage 1 was judged by the other agency", "--json", db=db_b))
    assert (replaced["decision_id"], replaced["supersedes"]) == (2, 1)


def test_explicit_participants_decide_a_later_stage_without_a_previous_decision(tmp_path: Path) -> None:
    program_c, db_c = agency_b(tmp_path, program('participants = ["alpha", "beta", "delta"]\n'))
    record_scores(program_c, db_c, "s2", "panel:user", {t: S2_SCORES[t] for t in ("alpha", "beta", "delta")},
                  tmp_path)
    decided = ok_json(simsa("stage", "decide", str(program_c), "s2", "--json", db=db_c))
    assert [t["team"] for t in decided["teams"]] == ["beta", "delta", "alpha"]
    assert decided["advanced"] == ["beta"]


def test_unknown_participant_is_named_with_the_near_team(tmp_path: Path) -> None:
    text = program('participants = ["alpha", "gamme", "delta"]\n')
    path = tmp_path / "relay.toml"
    path.write_text(text, encoding="utf-8")
    at = text.split("\n").index('participants = ["alpha", "gamme", "delta"]') + 1
    assert one_line_error(simsa("program", "check", str(path))) == (
        f"{path}:{at}: stages[1].participants[1]: participant 'gamme' is not a team (teams: alpha, beta, gamma, "
        "delta) (did you mean 'gamma'?)")


def test_show_of_a_stage_that_does_not_exist(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_text(program(), encoding="utf-8")
    message = one_line_error(simsa("stage", "show", str(path), "s22", db=sqlite(tmp_path / "x.db")))
    assert message == "program 'relay' has no stage 's22' (stages: s1, s2) (did you mean 's2'?)"
