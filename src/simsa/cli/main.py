"""The `simsa` command line: one Typer app over the services; no logic lives here."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from simsa import __version__
from simsa.cli import (
    audit_cmd,
    bench_cmd,
    demo_cmd,
    lineage_cmd,
    program_cmd,
    report_cmd,
    score_cmd,
    serve_cmd,
    stage_cmd,
)
from simsa.cli.context import STATE
from simsa.cli.output import fail
from simsa.errors import SimsaError

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
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version.")] = False,
) -> None:
    STATE.db_url = db
    STATE.actor = actor


def main() -> None:
    """Entry point: user errors become one line on stderr and an exit code, never a traceback."""
    as_json = "--json" in sys.argv[1:]
    try:
        app()
    except SimsaError as exc:
        fail(str(exc), exc.exit_code, as_json)
    except KeyboardInterrupt:
        fail("interrupted", 130, as_json)
    finally:
        if STATE._store is not None:
            STATE._store.dispose()


if __name__ == "__main__":
    main()
