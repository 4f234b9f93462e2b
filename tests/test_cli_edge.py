"""The CLI's edge, as users and scripts meet it: a real subprocess per command.

Exit codes and one-line errors for every kind of failure (a crash gets a crash log, not a traceback), hostile score
files, listings that stay readable at 80 columns and parse as CSV when piped, no stray output from libraries, the
global --lang option, serve-model's refusal to serve an open API beyond loopback, and a quick start (checked as the
modules a command loads, which does not depend on how busy the machine is).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import EXAMPLE
from simsa.cli.crash import EX_SOFTWARE, mask_argv

ANSI = re.compile(r"\x1b\[|\x1b\]")
HEAVY = ("sqlalchemy", "alembic", "numpy", "scipy", "matplotlib", "torch", "transformers", "lm_eval", "jinja2",
         "huggingface_hub", "simsa.store", "simsa.services", "simsa.lineage", "simsa.bench")  # typer loads pydantic


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("SIMSA_DATABASE_URL", "SIMSA_LANG", "NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "COLUMNS",
                        "SIMSA_CRASH_DIR", "TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS")}
    env.update({"SIMSA_ACTOR": "edge-test", "XDG_STATE_HOME": str(tmp_path / "state"), **extra})
    return env


def simsa(*args: str, tmp_path: Path, db: Path | None = None, cwd: Path | None = None, timeout: float = 120,
          **env: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "simsa.cli.main", *(["--db", f"sqlite:///{db}"] if db else []), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env_for(tmp_path, **env), cwd=cwd or tmp_path,
                          timeout=timeout)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def crash_in(tmp_path: Path, argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """Run the real entry point with a bug planted in the store: what users see when simsa itself fails."""
    code = ("import sys\n"
            "from simsa.cli import context\n"
            "def broken(self):\n"
            "    raise ZeroDivisionError('planted bug\\nsecond line')\n"
            "context.AppState.store = broken\n"
            f"sys.argv = ['simsa', *{argv!r}]\n"
            "from simsa.cli.main import main\n"
            "main()\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env_for(tmp_path, **env), cwd=tmp_path, timeout=120)


# --------------------------------------------------------------------------- exceptions at the edge


def test_unexpected_exception_is_one_line_exit_70_and_a_crash_log(tmp_path: Path) -> None:
    crash_dir = tmp_path / "crashes"
    url = "postgresql+psycopg://judge:s3cret@db.invalid/simsa"
    result = crash_in(tmp_path, ["--db", url, "score", "list", "k-ai-2026"], SIMSA_CRASH_DIR=str(crash_dir))
    assert result.returncode == EX_SOFTWARE == 70
    line = one_error_line(result)
    [log] = crash_dir.glob("crash-*.log")
    assert re.fullmatch(r"crash-\d{8}T\d{6}Z-\d+\.log", log.name)
    assert line == f"internal error: ZeroDivisionError: planted bug second line (details in {log})"
    text = log.read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in text and "ZeroDivisionError: planted bug" in text
    assert "command: simsa --db postgresql+psycopg://judge:***@db.invalid/simsa score list" in text
    assert "s3cret" not in text
    assert log.stat().st_mode & 0o077 == 0  # tracebacks show data: the owner's alone

    as_json = crash_in(tmp_path, ["score", "list", "k-ai-2026", "--json"], SIMSA_CRASH_DIR=str(crash_dir))
    assert as_json.returncode == 70
    doc = json.loads(as_json.stdout)
    assert doc["exit_code"] == 70 and doc["error"].startswith("internal error: ZeroDivisionError: planted bug")
    assert Path(doc["crash_log"]).exists() and Path(doc["crash_log"]).parent == crash_dir


def test_crash_log_falls_back_to_the_state_dir_then_the_temp_dir(tmp_path: Path) -> None:
    result = crash_in(tmp_path, ["score", "list", "x"])
    assert result.returncode == 70
    [log] = (tmp_path / "state" / "simsa").glob("crash-*.log")
    assert f"(details in {log})" in one_error_line(result)

    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where a directory should be")
    temp = tmp_path / "tmp"
    temp.mkdir()
    result = crash_in(tmp_path, ["score", "list", "x"], SIMSA_CRASH_DIR=str(blocked / "c"),
                      XDG_STATE_HOME=str(blocked / "s"), TMPDIR=str(temp))
    assert result.returncode == 70
    [log] = temp.glob("crash-*.log")
    assert f"(details in {log})" in one_error_line(result)


def test_secrets_are_masked_in_the_logged_command() -> None:
    assert mask_argv(["--db", "postgresql+psycopg://judge:pw@db/simsa", "serve-model", "m", "--api-key=k1",
                      "--api-key", "k2", "--token", "t"]) == [
        "--db", "postgresql+psycopg://judge:***@db/simsa", "serve-model", "m", "--api-key=***", "--api-key", "***",
        "--token", "***"]


def test_os_errors_are_one_line_exit_2(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    missing = tmp_path / "no-such-dir" / "audit.json"
    result = simsa("audit", "export", "-o", str(missing), tmp_path=tmp_path, db=db)
    assert result.returncode == 2
    assert one_error_line(result) == f"error: No such file or directory: {missing}"


def test_usage_errors_keep_exit_2(tmp_path: Path) -> None:
    assert simsa("score", "add", str(EXAMPLE), tmp_path=tmp_path).returncode == 2  # missing options
    assert simsa("no-such-command", tmp_path=tmp_path).returncode == 2
    assert simsa("score", "list", "x", "--format", "xml", tmp_path=tmp_path).returncode == 2


# --------------------------------------------------------------------------- hostile score files


@pytest.mark.parametrize(("name", "content", "message"), [
    ("nested.json", "[" * 100_000 + "]" * 100_000, "JSON nested too deeply to be a score file"),
    ("huge.json", '[{"stage": "stage-1", "team": "baekdu", "source": "bench:nia", "value": 1%s}]' % ("0" * 400),
     "value must be a finite number of magnitude at most 1e+12, got an integer of 401 digits"),
], ids=["nested-json", "10**400"])
def test_hostile_score_files_are_one_line_exit_2(name: str, content: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    result = simsa("score", "import", str(EXAMPLE), str(path), tmp_path=tmp_path, db=tmp_path / "x.db")
    assert result.returncode == 2
    assert message in one_error_line(result)


def test_fifo_and_device_are_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "scores.csv"
    os.mkfifo(fifo)
    result = simsa("score", "import", str(EXAMPLE), str(fifo), tmp_path=tmp_path, db=tmp_path / "x.db", timeout=60)
    assert result.returncode == 2 and "not a regular file (a FIFO)" in one_error_line(result)
    if Path("/dev/zero").exists():
        link = tmp_path / "zero.json"
        link.symlink_to("/dev/zero")
        result = simsa("score", "import", str(EXAMPLE), str(link), tmp_path=tmp_path, db=tmp_path / "x.db",
                       timeout=60)
        assert result.returncode == 2 and "not a regular file (a character device)" in one_error_line(result)


def test_cp949_import_prints_the_conversion_notice(tmp_path: Path) -> None:
    path = tmp_path / "scores.csv"
    path.write_bytes("stage,team,source,value,note\nstage-1,baekdu,bench:nia,0.71,국문 메모: 재평가 요청\n"
                     .encode("cp949"))
    db = tmp_path / "x.db"
    result = simsa("score", "import", str(EXAMPLE), str(path), "--json", tmp_path=tmp_path, db=db)
    assert result.returncode == 0, result.stderr
    notice = f"{path}: converted from CP949 (Korean Windows encoding) to UTF-8"
    assert json.loads(result.stdout)["notices"] == [notice]
    assert notice in result.stderr
    listed = json.loads(simsa("score", "list", "k-ai-2026", "--json", tmp_path=tmp_path, db=db).stdout)
    assert listed["scores"][0]["note"] == "국문 메모: 재평가 요청"
    plain = simsa("score", "import", str(EXAMPLE), str(path), tmp_path=tmp_path, db=db)
    assert plain.returncode == 0 and f"note: {notice}" in plain.stderr


# --------------------------------------------------------------------------- listings when piped


@pytest.fixture()
def scored_db(tmp_path: Path) -> Path:
    """Scores with long text and cells a spreadsheet would run as formulas."""
    db = tmp_path / "list.db"
    path = tmp_path / "scores.csv"
    rows = ["stage,team,source,value,stderr,rater,note,evidence"]
    for i, team in enumerate(("baekdu", "halla", "jiri", "seorak", "taebaek")):
        rows.append(f"stage-1,{team},panel:expert,{70 + i},0.5,expert-panel-member-with-a-long-name-{i},"
                    f"=HYPERLINK(\"http://evil.example\";\"click\"),@SUM(A1:A9)")
        rows.append(f"stage-1,{team},bench:global-common,{0.5 + i / 100},0.012,,-2+3,+1")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    result = simsa("score", "import", str(EXAMPLE), str(path), tmp_path=tmp_path, db=db)
    assert result.returncode == 0, result.stderr
    return db


def test_score_list_table_fits_80_columns_without_escapes_when_piped(scored_db: Path, tmp_path: Path) -> None:
    result = simsa("score", "list", "k-ai-2026", tmp_path=tmp_path, db=scored_db, COLUMNS="80")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, result.stdout
    assert not ANSI.search(result.stdout + result.stderr)
    text = result.stdout
    for word in ("id", "team", "source", "value", "status", "baekdu", "taebaek", "panel:expert", "current"):
        assert word in text
    narrow = simsa("score", "list", "k-ai-2026", tmp_path=tmp_path, db=scored_db)  # no COLUMNS: 80 when piped
    assert max(len(line) for line in narrow.stdout.splitlines()) <= 80


def test_score_list_csv_parses_and_neutralises_formulas(scored_db: Path, tmp_path: Path) -> None:
    result = simsa("score", "list", "k-ai-2026", "--format", "csv", tmp_path=tmp_path, db=scored_db, COLUMNS="80")
    assert result.returncode == 0, result.stderr
    assert not ANSI.search(result.stdout)
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    as_json = json.loads(simsa("score", "list", "k-ai-2026", "--json", tmp_path=tmp_path, db=scored_db).stdout)
    assert len(rows) == len(as_json["scores"]) == 10
    assert [r["id"] for r in rows] == [str(s["id"]) for s in as_json["scores"]]
    expert = next(r for r in rows if r["source"] == "panel:expert")
    assert expert["note"] == "'=HYPERLINK(\"http://evil.example\";\"click\")"
    assert expert["evidence"] == "'@SUM(A1:A9)" and expert["current"] == "true" and expert["value"] == "70.0"
    bench = next(r for r in rows if r["source"] == "bench:global-common")
    assert bench["note"] == "'-2+3" and bench["evidence"] == "'+1"
    assert not any(cell.startswith(("=", "+", "-", "@")) for r in rows for cell in r.values())


def test_format_json_equals_json_and_conflicts_are_refused(scored_db: Path, tmp_path: Path) -> None:
    a = simsa("score", "list", "k-ai-2026", "--json", tmp_path=tmp_path, db=scored_db)
    b = simsa("score", "list", "k-ai-2026", "--format", "json", tmp_path=tmp_path, db=scored_db)
    assert a.returncode == b.returncode == 0 and json.loads(a.stdout) == json.loads(b.stdout)
    both = simsa("score", "list", "k-ai-2026", "--json", "--format", "csv", tmp_path=tmp_path, db=scored_db)
    assert both.returncode == 2 and "--json and --format csv" in one_error_line(both)
    missing = simsa("score", "list", "nope", "--format", "json", tmp_path=tmp_path, db=scored_db)
    assert missing.returncode == 2 and "error" in json.loads(missing.stdout)  # JSON asked for: errors as JSON too


def test_appeal_list_formats(scored_db: Path, tmp_path: Path) -> None:
    table = simsa("stage", "appeal", "list", str(EXAMPLE), "stage-1", tmp_path=tmp_path, db=scored_db)
    assert table.returncode == 0 and "no appeals" in table.stdout
    listed = simsa("stage", "appeal", "list", str(EXAMPLE), "stage-1", "--format", "csv", tmp_path=tmp_path,
                   db=scored_db)
    assert listed.returncode == 0
    assert next(csv.reader(io.StringIO(listed.stdout))) == ["id", "decision_id", "team", "filed_at", "status",
                                                            "resolved_at", "new_decision_id", "grounds",
                                                            "resolution"]


# --------------------------------------------------------------------------- global options


def test_lang_option_is_validated_and_stored(tmp_path: Path) -> None:
    for value in ("ko", "en", "both"):
        assert simsa("--lang", value, "program", "check", str(EXAMPLE), "--json", tmp_path=tmp_path).returncode == 0
    bad = simsa("--lang", "de", "program", "check", str(EXAMPLE), tmp_path=tmp_path, COLUMNS="300")
    assert bad.returncode == 2 and "'de' is not one of 'ko', 'en', 'both'" in bad.stderr
    bad_env = simsa("program", "check", str(EXAMPLE), tmp_path=tmp_path, SIMSA_LANG="fr", COLUMNS="300")
    assert bad_env.returncode == 2 and "SIMSA_LANG" in bad_env.stderr and "'fr' is not one of" in bad_env.stderr

    code = ("import sys\nfrom simsa.cli.context import STATE\nfrom simsa.cli.main import app\n"
            "from typer.testing import CliRunner\n"
            "r = CliRunner().invoke(app, sys.argv[1:])\nprint(r.exit_code, STATE.lang)\n")
    for argv, env, expected in ((["--lang", "ko", "--version"], {}, "0 en"),  # --version exits first
                                (["--lang", "ko", "program", "check", str(EXAMPLE), "--json"], {}, "0 ko"),
                                (["program", "check", str(EXAMPLE), "--json"], {"SIMSA_LANG": "both"}, "0 both"),
                                (["program", "check", str(EXAMPLE), "--json"], {}, "0 en")):
        out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120,
                             env=env_for(tmp_path, **env), cwd=tmp_path)
        assert out.stdout.splitlines()[-1] == expected, out.stderr


# --------------------------------------------------------------------------- serve-model bind safety


def test_serve_model_refuses_an_open_api_beyond_loopback_before_loading(tmp_path: Path) -> None:
    no_model = tmp_path / "no-model"
    no_model.mkdir()
    for host in ("0.0.0.0", "::", "192.0.2.10", "example.org", ""):
        result = simsa("serve-model", str(no_model), "--host", host, "--port", "0", tmp_path=tmp_path)
        assert result.returncode == 2
        line = one_error_line(result)
        assert "no API key is set" in line and "--insecure" in line and "config.json" not in line
    # allowed: loopback, an API key, or --insecure (with a warning); each then fails on the missing model
    for extra, env in ((["--host", "127.0.0.2"], {}), (["--host", "::1"], {}), (["--host", "localhost"], {}),
                       (["--host", "0.0.0.0", "--api-key", "k"], {}),
                       (["--host", "0.0.0.0"], {"SIMSA_SERVE_API_KEY": "k"})):
        result = simsa("serve-model", str(no_model), *extra, "--port", "0", tmp_path=tmp_path, **env)
        assert result.returncode == 2 and "config.json" in one_error_line(result)
        assert "warning" not in result.stderr
    insecure = simsa("serve-model", str(no_model), "--host", "0.0.0.0", "--insecure", "--port", "0",
                     tmp_path=tmp_path)
    assert insecure.returncode == 2
    assert "warning: serving on 0.0.0.0 without an API key (--insecure)" in insecure.stderr
    assert "config.json" in insecure.stderr and "Traceback" not in insecure.stderr


# --------------------------------------------------------------------------- quick start


def loaded_heavy(tmp_path: Path, argv: list[str]) -> list[str]:
    code = ("import json, sys\n"
            f"sys.argv = ['simsa', *{argv!r}]\n"
            "from simsa.cli.main import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            f"heavy = {HEAVY!r}\n"
            "print(json.dumps(sorted({m for m in sys.modules for h in heavy if m == h or m.startswith(h + '.')})),"
            " file=sys.stderr)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=env_for(tmp_path), cwd=tmp_path)
    return json.loads(out.stderr.splitlines()[-1])


def test_help_and_version_load_no_heavy_library(tmp_path: Path) -> None:
    for argv in (["--help"], ["--version"], ["score", "--help"], ["bench", "--help"], ["lineage", "--help"]):
        assert loaded_heavy(tmp_path, argv) == [], argv


def test_everyday_commands_load_only_what_they_use(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'q.db'}"
    assert simsa("program", "load", str(EXAMPLE), tmp_path=tmp_path, db=tmp_path / "q.db").returncode == 0
    never = ("scipy", "matplotlib", "torch", "transformers", "lm_eval", "jinja2", "huggingface_hub", "simsa.bench",
             "simsa.report", "alembic")  # alembic: only when the database needs migrating
    for argv in (["--db", db, "score", "add", str(EXAMPLE), "--stage", "stage-1", "--team", "baekdu", "--source",
                  "panel:expert", "--value", "70", "--rater", "r1"],
                 ["--db", db, "gate", "record", str(EXAMPLE), "--stage", "stage-1", "--team", "baekdu", "--gate",
                  "originality", "--pass", "--evidence", "checked"],
                 ["program", "check", str(EXAMPLE)]):
        loaded = loaded_heavy(tmp_path, argv)
        assert "sqlalchemy" in loaded or argv[0] == "program"  # the command really ran
        assert [m for m in loaded if m.startswith(never)] == [], argv


def test_only_the_command_asked_for_is_built_and_root_options_are_known() -> None:
    import typer.main

    from simsa.cli.main import ROOT_OPTIONS_WITH_VALUES, app, app_for

    root = typer.main.get_command(app)
    taking_values = {name for p in root.params if not getattr(p, "is_flag", False) for name in p.opts}
    assert taking_values == set(ROOT_OPTIONS_WITH_VALUES)
    for argv, names in ((["score", "add"], ["score"]), (["--db", "x", "--lang=ko", "gate", "record"], ["gate"]),
                        (["--actor", "score", "serve-model", "m"], ["serve-model"])):
        assert sorted(typer.main.get_command(app_for(argv)).commands) == names, argv
    for argv in ([], ["--help"], ["--version"], ["scor", "add"], ["--unknown", "score"]):
        assert app_for(argv) is app, argv


# --------------------------------------------------------------------------- no stray output from libraries


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git: the stray line came from `git describe`")
def test_bench_run_outside_a_git_repository_prints_no_fatal_and_no_progress_bars(tmp_path: Path) -> None:
    pytest.importorskip("lm_eval")
    from simsa.bench.tinymodels import TinySpec, build_tiny_model

    model = build_tiny_model(tmp_path / "tiny", TinySpec(steps=10, seed=5))
    work = tmp_path / "not-a-repo"
    work.mkdir()
    assert subprocess.run(["git", "rev-parse"], cwd=work, capture_output=True,
                          env={**os.environ, "GIT_CEILING_DIRECTORIES": str(tmp_path)}).returncode != 0
    result = simsa("bench", "run", "--model", str(model), "--tasks", "simsa_kobest_copa", "--limit", "4", "--json",
                   "--runs-dir", str(work / "runs"), tmp_path=tmp_path, cwd=work, timeout=600,
                   GIT_CEILING_DIRECTORIES=str(tmp_path), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout)["items_computed"] == 8
    assert "fatal:" not in result.stderr
    assert "it/s" not in result.stderr and "%|" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.strip() == ""
