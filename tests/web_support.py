"""A real simsa web server on loopback for tests: uvicorn in a background thread over a real store, accounts
made through the services, and HTTP clients that sign in as a person would (fetching the form's CSRF token)."""

from __future__ import annotations

import datetime as dt
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI

from helpers import EXAMPLE, write_bench_scores
from simsa import accounts
from simsa.demo import write_example_scores
from simsa.program.loader import load_program
from simsa.services import decisions as decision_service
from simsa.services import gates as gate_service
from simsa.services import programs, score_files
from simsa.services import scores as score_service
from simsa.store.db import Store
from simsa.web.app import create_app
from simsa.web.settings import WebSettings

PASSWORD = "correct horse battery staple"
STAGE = "stage-1"
PROGRAM = "k-ai-2026"
TEAMS = ("baekdu", "halla", "jiri", "seorak", "taebaek")
FAILING = "jiri"  # fails the originality gate in `record_example_stage`
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveSite:
    """`simsa web` serving `db_url` on 127.0.0.1 from a thread; `stop()` shuts it down cleanly."""

    db_url: str
    settings_changes: dict = field(default_factory=dict)
    port: int = 0
    store: Store | None = None
    app: FastAPI | None = None
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveSite:
        settings = WebSettings(**{"database_url": self.db_url, "access_log": False, **self.settings_changes})
        self.store = Store(self.db_url, pool_size=settings.pool_size)
        app = self.app = create_app(settings, store=self.store)
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False,
                                lifespan="off", server_header=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="simsa-web-test", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the test web server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.store is not None:
            self.store.dispose()

    # ------------------------------------------------------------------ accounts

    def account(self, username: str, role: str = "admin", *, team: str | None = None,
                program: str = PROGRAM, password: str = PASSWORD) -> accounts.AccountView:
        """An active account with `password`, made as the secretariat would (invitation, then activation)."""
        assert self.store is not None
        with self.store.session() as s:
            if role == "admin":
                return accounts.create_admin(s, username, password, actor="test")
            _, token = accounts.invite(s, username=username, display_name=username.title(), role=role,
                                       actor="test", program_key=program if role == "team" else None,
                                       team_id=team)
        with self.store.session() as s:
            return accounts.accept_invitation(s, token, password)

    def api_token(self, username: str) -> str:
        assert self.store is not None
        with self.store.session() as s:
            account = next(a for a in accounts.list_accounts(s) if a.username == username)
            _, token = accounts.create_api_token(s, account.id, "test", actor="test")
        return token

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, follow_redirects=False, timeout=30, **kwargs)  # type: ignore[arg-type]

    def signed_in(self, username: str, password: str = PASSWORD) -> httpx.Client:
        """A client that signed in through the form, as a browser does."""
        client = self.client()
        token = csrf_of(client.get("/login").text)
        response = client.post("/login", data={"username": username, "password": password, "csrf_token": token})
        if response.status_code != 303:
            raise AssertionError(f"sign-in as {username} failed: {response.status_code} {response.text[:300]}")
        return client


def csrf_of(page: str) -> str:
    """The CSRF token a page's forms carry."""
    found = CSRF_INPUT.search(page)
    if found is None:
        raise AssertionError("no CSRF token on the page")
    return found.group(1)


def record_example_stage(store: Store, work: Path, *, decide_at: dt.datetime | None = None) -> dict | None:
    """The example programme loaded, stage 1's scores and originality gates recorded, and (with `decide_at`)
    decided; returns the decision."""
    loaded = load_program(EXAMPLE)
    write_example_scores(work / "panel.csv")
    write_bench_scores(work / "bench.json")
    with store.session() as s:
        version, _ = programs.register(s, loaded, "test")
        for name in ("panel.csv", "bench.json"):
            score_service.add(s, version, loaded.program, score_files.parse_file(work / name), "test")
        for team in TEAMS:
            failed = team == FAILING
            gate_service.record(s, version, loaded.program, stage_id=STAGE, team_id=team, gate_id="originality",
                                passed=not failed, evidence="weights match a foreign base" if failed else
                                "independent of every registered reference", actor="test", example=True,
                                link="https://example.org/forensics/jiri" if failed else None)
    if decide_at is None:
        return None
    with store.session() as s:
        return decision_service.decide_and_store(s, loaded, STAGE, "test", at=decide_at)
