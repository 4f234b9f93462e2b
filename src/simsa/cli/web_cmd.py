"""`simsa web`: serve the web platform; `simsa web create-admin`, `invite`, `token`: accounts from a terminal."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from simsa.cli.context import STATE
from simsa.cli.output import console, emit_json, err_console, notice
from simsa.errors import InputError

app = typer.Typer(help="The web platform: public pages, accounts and roles, JSON API.", invoke_without_command=True,
                  no_args_is_help=False)


def _database(db: str | None) -> None:
    if db:
        STATE.db_url = db


@app.callback()
def web(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Address to listen on (default 127.0.0.1, or $SIMSA_WEB_HOST).",
                                             show_default=False)] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Port (default 8080, or $SIMSA_WEB_PORT).",
                                             show_default=False)] = None,
    db: Annotated[str | None, typer.Option("--db", help="Database URL (default: the global --db, "
                                                        "$SIMSA_DATABASE_URL, else sqlite:///simsa.db).",
                                           show_default=False)] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes (use PostgreSQL when > 1).")] = 1,
    proxy: Annotated[str | None, typer.Option(
        "--trust-proxy", help="Address(es) of the reverse proxy whose X-Forwarded-For/-Proto headers to trust "
                              "(comma-separated; default: none).", show_default=False)] = None,
) -> None:
    """Start the web app (FastAPI under uvicorn) on the store the CLI uses."""
    _database(db)
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from simsa.cli.serve_cmd import is_loopback
    from simsa.store.db import Store, resolve_url
    from simsa.web.settings import WebSettings

    settings = WebSettings.from_env().with_overrides(host=host, port=port, database_url=resolve_url(STATE.db_url))
    if workers > 1 and settings.database_url and settings.database_url.startswith("sqlite"):
        notice("several workers on SQLite serialise every write on one file; use PostgreSQL in production")
    Store(settings.database_url).dispose()  # migrate (and fail clearly) before the server starts
    if not is_loopback(settings.host):
        notice(f"listening on {settings.host}: reachable from other machines. Put it behind a reverse proxy "
               "with HTTPS (docs/web.md)")
    # Worker processes build the app from the environment, so the settings travel there.
    os.environ["SIMSA_DATABASE_URL"] = settings.database_url or ""
    os.environ["SIMSA_WEB_HOST"] = settings.host
    os.environ["SIMSA_WEB_PORT"] = str(settings.port)
    shown = settings.host if ":" not in settings.host else f"[{settings.host}]"
    err_console.print(f"simsa web on http://{shown}:{settings.port}/  (database {_safe(settings.database_url)})")
    uvicorn.run("simsa.web.app:create_app", factory=True, host=settings.host, port=settings.port, workers=workers,
                proxy_headers=proxy is not None, forwarded_allow_ips=proxy or "", access_log=False,
                log_level="warning", server_header=False)


def _safe(url: str | None) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url or "").render_as_string(hide_password=True)
    except Exception:
        return "(unparsable URL)"


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise InputError("no terminal to ask for the password; pass --password-stdin and pipe it in")
    first = typer.prompt("Password", hide_input=True)
    if typer.prompt("Password again", hide_input=True) != first:
        raise InputError("the two passwords differ")
    return first


@app.command("create-admin")
def create_admin(
    username: Annotated[str, typer.Argument(help="Login name of the first secretariat account.")],
    display_name: Annotated[str | None, typer.Option("--name", help="Name shown on pages.")] = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from the first line "
                                                                          "of standard input.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the account as JSON.")] = False,
) -> None:
    """Create an active admin account (the secretariat) with a password; later accounts are invited from the web."""
    from simsa import accounts

    password = _read_password(password_stdin)
    with STATE.store().session() as session:
        account = accounts.create_admin(session, username, password, display_name, actor=STATE.who())
    if as_json:
        emit_json({"account": account.to_dict()})
    else:
        console.print(f"[green]✓[/] admin account {account.username!r} created; sign in at /login")


@app.command("invite")
def invite(
    username: Annotated[str, typer.Argument(help="Login name of the new account.")],
    role: Annotated[str, typer.Option(help="admin, expert, rater or team.")],
    display_name: Annotated[str | None, typer.Option("--name", help="Name shown on pages.")] = None,
    program: Annotated[str | None, typer.Option(help="Programme id (team accounts).")] = None,
    team: Annotated[str | None, typer.Option(help="Team id (team accounts).")] = None,
    base_url: Annotated[str | None, typer.Option(help="Public address of the site, for the link "
                                                      "(default $SIMSA_WEB_PUBLIC_URL).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the account and link as JSON.")] = False,
) -> None:
    """Create an account and print its one-time invitation link (valid 7 days)."""
    from simsa.services import account_admin

    with STATE.store().session() as session:
        account, token = account_admin.invite(session, username=username, display_name=display_name or username,
                                               role=role, program_ref=program, team_id=team, actor=STATE.who())
    base = (base_url or os.environ.get("SIMSA_WEB_PUBLIC_URL") or "http://127.0.0.1:8080").rstrip("/")
    link = f"{base}/invite/{token}"
    if as_json:
        emit_json({"account": account.to_dict(), "invitation_url": link})
    else:
        console.print(f"[green]✓[/] invited {account.username!r} as {account.role}; send them this link "
                      f"(valid 7 days, usable once):\n{link}", soft_wrap=True)
