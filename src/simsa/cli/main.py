"""The `simsa` command line: one Typer app over the services; no logic lives here.

The command modules import their heavy dependencies (SQLAlchemy, numpy, torch, lm-eval, matplotlib…) inside the
commands, so `simsa --help` and the everyday commands start quickly. `main` is the edge where every exception
becomes one line on stderr and an exit code: 0 success, 1 a verification failed, 2 invalid input (usage errors
too), 70 an internal error (traceback in a crash log), 130 interrupted.
"""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Sequence
from typing import Annotated, Literal

import typer

from simsa import __version__
from simsa.cli import (
    arena_cmd,
    audit_cmd,
    bench_cmd,
    commit_cmd,
    corrections_cmd,  # noqa: F401 — registers `score void`, `gate void` on the score and gate apps
    demo_cmd,
    ecosystem_cmd,
    evidence_cmd,
    lineage_cmd,
    panel_cmd,
    program_cmd,
    report_cmd,
    score_cmd,
    serve_cmd,
    stage_cmd,
    web_cmd,
)
from simsa.cli.context import STATE
from simsa.cli.crash import report_crash, write_crash_log
from simsa.cli.output import fail
from simsa.errors import SimsaError

# Progress bars of tqdm-based libraries (lm-eval, transformers, huggingface_hub, datasets) write a line per update
# when stderr is a log file rather than a terminal; simsa's own Rich progress displays only draw on terminals.
QUIET_WHEN_LOGGED = ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS")

app = typer.Typer(
    name="simsa",
    help="simsa (심사) — open judging system for national foundation-model programmes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(program_cmd.app, name="program")
app.add_typer(score_cmd.app, name="score")
app.add_typer(score_cmd.gate_app, name="gate")
app.add_typer(stage_cmd.app, name="stage")
app.add_typer(audit_cmd.app, name="audit")
app.add_typer(lineage_cmd.app, name="lineage")
app.add_typer(bench_cmd.app, name="bench")
app.add_typer(web_cmd.app, name="web")
app.add_typer(panel_cmd.app, name="panel")
app.add_typer(arena_cmd.app, name="arena")
app.add_typer(commit_cmd.app, name="commitments")
app.add_typer(evidence_cmd.app, name="evidence")
app.add_typer(ecosystem_cmd.app, name="ecosystem")
app.command("commit")(commit_cmd.commit)
app.command("report")(report_cmd.report)
app.command("demo")(demo_cmd.demo)
app.command("serve-model")(serve_cmd.serve_model)


def _version(value: bool) -> None:
    if value:
        print(f"simsa {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    db: Annotated[str | None, typer.Option("--db", envvar="SIMSA_DATABASE_URL",
                                           help="Database URL (default sqlite:///simsa.db).")] = None,
    actor: Annotated[str | None, typer.Option("--actor", envvar="SIMSA_ACTOR",
                                              help="Who is acting, recorded in the audit log.")] = None,
    lang: Annotated[Literal["ko", "en", "both"], typer.Option(
        "--lang", envvar="SIMSA_LANG", help="Language of labels in output: Korean, English or both.")] = "en",
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version.")] = False,
) -> None:
    STATE.db_url = db
    STATE.actor = actor
    STATE.lang = lang
    STATE.json_errors = False  # each invocation chooses again (commands run in one process, e.g. in tests)


ROOT_OPTIONS_WITH_VALUES = ("--db", "--actor", "--lang")  # the root callback's options that take a value


def app_for(argv: Sequence[str]) -> typer.Typer:
    """The app to run: for `simsa [root options] NAME …`, the root with only NAME's group or command.

    Typer builds (and inspects the signature of) every command of an app before running one; building only the
    one asked for saves a tenth of a second per command. Anything else (no command, an unknown name, root --help)
    gets the whole app, so help and errors read as before.
    """
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ROOT_OPTIONS_WITH_VALUES:
            i += 2
            continue
        if arg.startswith("-"):
            if arg.split("=", 1)[0] not in ROOT_OPTIONS_WITH_VALUES:
                return app  # --help, --version, "--" or an unknown option: the whole app answers
            i += 1
            continue
        groups = [g for g in app.registered_groups if g.name == arg]
        commands = [c for c in app.registered_commands if c.name == arg]
        if not groups and not commands:
            return app
        pruned = copy.copy(app)
        pruned.registered_groups = groups
        pruned.registered_commands = commands
        return pruned
    return app


def quiet_libraries() -> None:
    """Turn off other libraries' progress bars when stderr is not a terminal (unless the user set them)."""
    try:
        interactive = sys.stderr.isatty()
    except (AttributeError, ValueError):
        interactive = False
    if not interactive:
        for var in QUIET_WHEN_LOGGED:
            os.environ.setdefault(var, "1")


def os_error_message(exc: OSError) -> str:
    """`strerror: file` for the usual file errors (no errno numbers, no quotes around the path)."""
    if exc.strerror and exc.filename:
        return f"{exc.strerror}: {exc.filename}"
    return exc.strerror or str(exc) or type(exc).__name__


def main() -> None:
    """Entry point: every exception becomes one line on stderr and an exit code, never a traceback.

    SimsaError carries its own code (2 input, 1 failed verification); OS and text-decoding errors are the
    environment's or the input's (2); recursion, overflow and memory errors mean an input too large or too deep
    for what reads it (2, with a crash log); anything else is simsa's bug (70, with a crash log).
    """
    quiet_libraries()
    try:
        app_for(sys.argv[1:])(prog_name="simsa")
    except SimsaError as exc:
        fail(str(exc), exc.exit_code, json_errors())
    except KeyboardInterrupt:
        fail("interrupted", 130, json_errors())
    except OSError as exc:
        fail(os_error_message(exc), 2, json_errors())
    except UnicodeError as exc:
        fail(f"text that is not valid in its encoding: {exc}", 2, json_errors())
    except (RecursionError, OverflowError, MemoryError) as exc:
        log = write_crash_log(exc, sys.argv, __version__)
        fail(f"input too large or too deeply nested to process ({type(exc).__name__}: {exc}"
             + (f"; details in {log})" if log else ")"), 2, json_errors())
    except Exception as exc:
        raise SystemExit(report_crash(exc, __version__, json_errors())) from None
    finally:
        if STATE._store is not None:
            STATE._store.dispose()


def json_errors() -> bool:
    """Errors are also printed as JSON on stdout when the command's output was asked for as JSON."""
    return "--json" in sys.argv[1:] or STATE.json_errors


if __name__ == "__main__":
    main()
