"""The record under attack and under load: times in any zone, impossible orders, concurrent writers, forks the
schema must refuse, forged schema versions, and panel scores without a rater. Every test runs on SQLite and
PostgreSQL; the command line runs in-process (typer's runner) so property tests can try many examples."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing as mp
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from typer.testing import CliRunner

from helpers import EXAMPLE, TWO_CATEGORIES, program_text
from simsa.audit import log as audit_log
from simsa.cli.context import STATE
from simsa.cli.main import app
from simsa.errors import InputError, SimsaError
from simsa.program.loader import load_program
from simsa.services import programs
from simsa.services import scores as score_service
from simsa.store.db import Store
from simsa.store.models import Appeal, AppealResolution, Decision, Score

PROGRAM = program_text(["a", "b", "c"], criteria=TWO_CATEGORIES.replace(
    'source = "panel:user"', 'source = "panel:user"\nraw_range = [0, 1]'), elimination="advance_best = 2",
    robustness="draws = 50\nseed = 7")


def cli(db: str, *args: str) -> tuple[int, str]:
    """One command as a user runs it; returns (exit code, stdout + stderr)."""
    STATE._store = None
    try:
        result = CliRunner().invoke(app, ["--db", db, "--actor", "tester", *args], catch_exceptions=False)
    except SimsaError as exc:  # what `main` turns into one line and an exit code
        return exc.exit_code, str(exc)
    finally:
        if STATE._store is not None:
            STATE._store.dispose()
        STATE._store = None
    return result.exit_code, result.output


def _program_file(tmp: Path) -> Path:
    path = tmp / "prog.toml"
    path.write_text(PROGRAM, encoding="utf-8")
    return path


def _scores(tmp: Path) -> Path:
    rows = [{"stage": "s1", "team": t, "source": "bench:main", "value": v, "stderr": 0.01}
            for t, v in (("a", 0.9), ("b", 0.6), ("c", 0.3))]
    rows += [{"stage": "s1", "team": t, "source": "panel:user", "value": v, "rater": r}
             for t, v in (("a", 0.8), ("b", 0.5), ("c", 0.4)) for r in ("u1", "u2")]
    path = tmp / "scores.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


def _ready(db: str, tmp: Path) -> Path:
    prog = _program_file(tmp)
    code, out = cli(db, "score", "import", str(prog), str(_scores(tmp)))
    assert code == 0, out
    return prog


# --------------------------------------------------------------------------- times


OFFSETS = st.integers(min_value=-12 * 4, max_value=14 * 4).map(lambda q: dt.timedelta(minutes=15 * q))


def _iso(instant: dt.datetime, offset: dt.timedelta) -> str:
    return instant.astimezone(dt.timezone(offset)).isoformat()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(decide_offset=OFFSETS, appeal_offset=OFFSETS, resolve_offset=OFFSETS,
       decided=st.datetimes(min_value=dt.datetime(2026, 1, 2), max_value=dt.datetime(2026, 12, 1)),
       appeal_after=st.integers(min_value=0, max_value=7 * 24 * 60),
       resolve_after=st.integers(min_value=0, max_value=3 * 24 * 60))
def test_every_timed_command_stores_utc_and_the_audit_verifies(
        tmp_path_factory: pytest.TempPathFactory, decide_offset: dt.timedelta, appeal_offset: dt.timedelta,
        resolve_offset: dt.timedelta, decided: dt.datetime, appeal_after: int, resolve_after: int) -> None:
    """Defect 1 and 2: a time given with any offset is the same instant in the row, the log and the export."""
    tmp = tmp_path_factory.mktemp("times")
    db = f"sqlite:///{tmp / 'simsa.db'}"
    prog = _ready(db, tmp)
    decided_at = decided.replace(tzinfo=dt.UTC, microsecond=0)
    appealed_at = decided_at + dt.timedelta(minutes=appeal_after)
    resolved_at = appealed_at + dt.timedelta(minutes=resolve_after)
    assert cli(db, "stage", "decide", str(prog), "s1", "--at", _iso(decided_at, decide_offset))[0] == 0
    code, out = cli(db, "stage", "appeal", "file", str(prog), "s1", "--team", "c", "--grounds", "recount",
                    "--at", _iso(appealed_at, appeal_offset))
    assert code == 0, out
    code, out = cli(db, "stage", "appeal", "resolve", str(prog), "1", "--uphold", "--reason", "recounted",
                    "--at", _iso(resolved_at, resolve_offset))
    assert code == 0, out
    store = Store(db)
    try:
        with store.session(readonly=True) as s:
            decisions = s.execute(select(Decision).order_by(Decision.id)).scalars().all()
            assert [d.decided_at for d in decisions] == [decided_at, resolved_at]
            assert json.loads(decisions[0].body)["decided_at"] == decided_at.strftime("%Y-%m-%dT%H:%M:%SZ")
            assert s.execute(select(Appeal.filed_at)).scalar_one() == appealed_at
            assert s.execute(select(AppealResolution.resolved_at)).scalar_one() == resolved_at
            assert audit_log.verify(s).ok
            exported = audit_log.export(s)
        assert cli(db, "audit", "verify")[0] == 0
        export = tmp / "audit.json"
        export.write_text(json.dumps(exported), encoding="utf-8")
        assert cli(db, "audit", "verify", "--file", str(export))[0] == 0
    finally:
        store.dispose()


def test_korean_time_decision_verifies_on_both_backends(db_url: str, tmp_path: Path) -> None:
    """The reported case: `--at 2026-01-16T09:00:00+09:00` then `audit verify` said entry N was altered."""
    prog = _ready(db_url, tmp_path)
    assert cli(db_url, "stage", "decide", str(prog), "s1", "--at", "2026-01-16T09:00:00+09:00")[0] == 0
    code, out = cli(db_url, "audit", "verify")
    assert code == 0, out
    code, out = cli(db_url, "stage", "show", str(prog), "s1", "--json")
    assert json.loads(out)["decided_at"] == "2026-01-16T00:00:00Z"


def test_impossible_time_orders_are_refused(db_url: str, tmp_path: Path) -> None:
    prog = _ready(db_url, tmp_path)
    assert cli(db_url, "stage", "decide", str(prog), "s1", "--at", "2026-01-16T09:00:00+09:00")[0] == 0
    # 08:59 KST is one minute before the decision
    code, out = cli(db_url, "stage", "appeal", "file", str(prog), "s1", "--team", "c", "--grounds", "g",
                    "--at", "2026-01-16T08:59:00+09:00")
    assert code == 2 and "would predate decision 1" in out
    code, out = cli(db_url, "stage", "appeal", "file", str(prog), "s1", "--team", "c", "--grounds", "g",
                    "--at", "2026-01-16T00:30:00Z")
    assert code == 0, out
    code, out = cli(db_url, "stage", "appeal", "resolve", str(prog), "1", "--reject", "--reason", "r",
                    "--at", "2026-01-16T09:29:00+09:00")
    assert code == 2 and "would predate appeal 1" in out
    code, out = cli(db_url, "stage", "decide", str(prog), "s1", "--supersede", "--reason", "fix",
                    "--at", "2026-01-15T00:00:00Z")
    assert code == 2 and "dated before the decision it replaces" in out
    assert cli(db_url, "audit", "verify")[0] == 0


def test_appeal_window_counts_the_programme_days(tmp_path: Path) -> None:
    """A decision at 02:00 KST on 16 January is a 16 January decision in a programme kept in Asia/Seoul."""
    db = f"sqlite:///{tmp_path / 'simsa.db'}"
    prog = _program_file(tmp_path)
    prog.write_text(PROGRAM.replace('name = "Test programme"', 'name = "Test programme"\ntimezone = "Asia/Seoul"'),
                    encoding="utf-8")
    assert cli(db, "score", "import", str(prog), str(_scores(tmp_path)))[0] == 0
    code, out = cli(db, "stage", "decide", str(prog), "s1", "--at", "2026-01-16T02:00:00+09:00", "--json")
    assert code == 0, out
    assert json.loads(out)["appeal_deadline"] == "2026-01-26"
    late = cli(db, "stage", "appeal", "file", str(prog), "s1", "--team", "c", "--grounds", "g",
               "--at", "2026-01-27T00:10:00+09:00")  # still 26 January in UTC, but 27 January in Seoul
    assert late[0] == 2 and "closed on 2026-01-26" in late[1]
    assert cli(db, "stage", "appeal", "file", str(prog), "s1", "--team", "c", "--grounds", "g",
               "--at", "2026-01-26T23:59:00+09:00")[0] == 0


# --------------------------------------------------------------------------- panel raters


def test_panel_scores_need_a_rater(db_url: str, tmp_path: Path) -> None:
    prog = _program_file(tmp_path)
    code, out = cli(db_url, "score", "add", str(prog), "--stage", "s1", "--team", "a", "--source", "panel:user",
                    "--value", "0.5")
    assert code == 2 and "panel:user scores need a rater" in out
    bad = tmp_path / "bad.csv"
    bad.write_text("stage,team,source,value,rater\ns1,a,panel:user,0.5,u1\ns1,b,panel:user,0.5,\n", encoding="utf-8")
    code, out = cli(db_url, "score", "import", str(prog), str(bad))
    assert code == 2 and "bad.csv:3" in out and "need a rater" in out
    assert cli(db_url, "score", "add", str(prog), "--stage", "s1", "--team", "a", "--source", "bench:main",
               "--value", "0.5")[0] == 0  # a benchmark source has no raters


def test_out_of_bound_numbers_are_refused(db_url: str, tmp_path: Path) -> None:
    """A relative_to_best score of 1e300 used to be accepted and crash every later decision."""
    prog = _program_file(tmp_path).read_text(encoding="utf-8").replace(
        'source = "bench:main"', 'source = "bench:main"\nnormalisation = "relative_to_best"')
    (tmp_path / "rel.toml").write_text(prog, encoding="utf-8")
    code, out = cli(db_url, "score", "add", str(tmp_path / "rel.toml"), "--stage", "s1", "--team", "a",
                    "--source", "bench:main", "--value", "1e300")
    assert code == 2 and "magnitude at most" in out


# --------------------------------------------------------------------------- concurrency


def _add_many(url: str, program: str, n: int, start: mp.Barrier, errors: mp.Queue) -> None:  # type: ignore[type-arg]
    store = Store(url)
    loaded = load_program(program)
    start.wait()
    try:
        for i in range(n):
            with store.session() as s:
                version, _ = programs.register(s, loaded, "writer")
                score_service.add(s, version, loaded.program, [score_service.ScoreInput(
                    stage="s1", team="a", source="panel:user", value=i / n, rater="u1")], "writer")
    except Exception as exc:  # reported to the parent: any error fails the test
        errors.put(f"{type(exc).__name__}: {exc}")
    finally:
        store.dispose()


def test_concurrent_writers_keep_one_current_row_per_key(db_url: str, tmp_path: Path) -> None:
    """Defect 5: three processes × 20 `score add` for one rater gave tracebacks and two current rows."""
    prog = _program_file(tmp_path)
    Store(db_url).dispose()  # migrate once, as the first command would
    ctx = mp.get_context("spawn")
    start, errors = ctx.Barrier(3), ctx.Queue()
    workers = [ctx.Process(target=_add_many, args=(db_url, str(prog), 20, start, errors)) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(180)
    problems = []
    while not errors.empty():
        problems.append(errors.get())
    assert problems == [] and all(w.exitcode == 0 for w in workers)
    store = Store(db_url)
    try:
        with store.session(readonly=True) as s:
            rows = s.execute(select(Score).order_by(Score.id)).scalars().all()
            assert len(rows) == 60
            assert [r.supersedes_id for r in rows] == [None, *[r.id for r in rows[:-1]]]  # one line
            assert len(score_service.current_rows(s, "test-prog")) == 1
            assert score_service.current(s, "test-prog", "s1")["a"]["panel:user"].n == 1
            assert audit_log.verify(s).ok
    finally:
        store.dispose()


def _decide(url: str, program: str, start: mp.Barrier, results: mp.Queue) -> None:  # type: ignore[type-arg]
    from simsa.services import decisions

    store = Store(url)
    loaded = load_program(program)
    start.wait()
    try:
        with store.session() as s:
            results.put(("ok", decisions.decide_and_store(s, loaded, "s1", "decider")["decision_id"]))
    except InputError as exc:
        results.put(("refused", str(exc)))
    except Exception as exc:
        results.put(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        store.dispose()


def test_two_simultaneous_decisions_cannot_both_be_in_force(db_url: str, tmp_path: Path) -> None:
    prog = _ready(db_url, tmp_path)
    ctx = mp.get_context("spawn")
    start, results = ctx.Barrier(2), ctx.Queue()
    workers = [ctx.Process(target=_decide, args=(db_url, str(prog), start, results)) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(180)
    outcomes = sorted(results.get(timeout=10) for _ in workers)
    assert [kind for kind, _ in outcomes] == ["ok", "refused"]
    assert "already has decision" in outcomes[1][1]
    store = Store(db_url)
    try:
        with store.session(readonly=True) as s:
            assert s.execute(select(Decision.id)).scalars().all() == [outcomes[0][1]]
    finally:
        store.dispose()


@pytest.mark.parametrize(("table", "columns", "values"), [
    ("scores", "program_key, stage_id, team_id, source, rater, value, example, recorded_at, recorded_by, voided",
     "'test-prog', 's1', 'a', 'panel:user', 'u1', 0.1, false, :t, 'x', false"),
    ("gate_results", "program_key, stage_id, team_id, gate_id, passed, evidence, example, recorded_at, recorded_by, "
     "voided", "'test-prog', 's1', 'a', 'originality', true, 'e', false, :t, 'x', false"),
    ("decisions", "program_key, stage_id, program_version_id, decided_at, decided_by, body",
     "'test-prog', 's1', 1, :t, 'x', '{}'"),
])
def test_the_schema_refuses_a_second_current_row(db_url: str, tmp_path: Path, table: str, columns: str,
                                                 values: str) -> None:
    """Whatever the application does, the database itself forbids two first rows for one key."""
    store = Store(db_url)
    try:
        with store.session() as s:
            programs.register(s, load_program(_program_file(tmp_path)), "x")
        insert = text(f"INSERT INTO {table} ({columns}) VALUES ({values})")
        with store.engine.begin() as conn:
            conn.execute(insert, {"t": dt.datetime(2026, 1, 1)})
        with pytest.raises(IntegrityError), store.engine.begin() as conn:
            conn.execute(insert, {"t": dt.datetime(2026, 1, 2)})
    finally:
        store.dispose()


def test_a_forged_schema_version_is_one_clear_error(db_url: str, tmp_path: Path) -> None:
    Store(db_url).dispose()
    store = Store(db_url, migrate=False)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffff'"))
    store.dispose()
    code, out = cli(db_url, "score", "list", str(EXAMPLE))
    assert code == 2 and "schema version ['ffff'] is not one this simsa knows" in out


def _first_schema(url: str) -> Store:
    """A store at the first schema version (0001), as an older simsa left it."""
    from alembic import command

    from simsa.store.db import _alembic_config

    store = Store(url, migrate=False)
    with store.engine.begin() as conn:
        cfg = _alembic_config(store.engine)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
    return store


def test_a_database_of_the_first_schema_upgrades_with_its_rows(db_url: str, tmp_path: Path) -> None:
    """Rows written before voids and batches existed keep their values and verify after the upgrade."""
    store = _first_schema(db_url)
    with store.engine.begin() as conn:
        conn.execute(text("INSERT INTO scores (program_key, stage_id, team_id, source, rater, value, example, "
                          "recorded_at, recorded_by) VALUES ('p', 's1', 'a', 'panel:user', 'u1', 0.5, false, :t, "
                          "'x')"), {"t": dt.datetime(2026, 1, 1)})
        conn.execute(text("INSERT INTO scores (program_key, stage_id, team_id, source, rater, value, example, "
                          "recorded_at, recorded_by, supersedes_id) VALUES ('p', 's1', 'a', 'panel:user', 'u1', 0.7, "
                          "false, :t, 'x', 1)"), {"t": dt.datetime(2026, 1, 2)})
    store.dispose()
    upgraded = Store(db_url)
    try:
        with upgraded.session(readonly=True) as s:
            rows = s.execute(select(Score).order_by(Score.id)).scalars().all()
            assert [(r.value, r.supersedes_id, r.voided, r.batch_id) for r in rows] == [
                (0.5, None, False, None), (0.7, 1, False, None)]
            assert score_service.current(s, "p", "s1")["a"]["panel:user"].value == 0.7
    finally:
        upgraded.dispose()


def test_an_upgrade_refuses_a_database_that_already_forked(tmp_path: Path) -> None:
    """Two current rows written concurrently by an older simsa: the upgrade says which key, changes nothing."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    store = _first_schema(url)
    with store.engine.begin() as conn:
        for day in (1, 2):
            conn.execute(text("INSERT INTO scores (program_key, stage_id, team_id, source, rater, value, example, "
                              "recorded_at, recorded_by) VALUES ('p', 's1', 'a', 'panel:user', 'u1', 0.5, false, "
                              ":t, 'x')"), {"t": dt.datetime(2026, 1, day)})
    store.dispose()
    with pytest.raises(InputError, match=r"scores has 2 first rows for one key \('p', 's1', 'a', 'panel:user'"):
        Store(url)
    assert Store(url, migrate=False).engine.connect().execute(text("SELECT version_num FROM alembic_version")
                                                             ).scalar_one() == "0001"
