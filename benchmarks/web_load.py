"""`simsa web` under load: many public readers at once, then many API writers at once, against a real server (a
performance script, not a test; tests/test_web_load.py runs a small version of it).

    .venv/bin/python benchmarks/web_load.py [--readers 200] [--seconds 30] [--writers 50] [--writes-per-writer 20]
                                       [--db URL] [--workers 1] [--json]

The server is `simsa web` in a subprocess on 127.0.0.1 (uvicorn, as a user starts it, access log on, written to
a file), over a database holding the example programme with stage 1 scored, gated and decided.

Readers: `--readers` clients at once (asyncio, one connection each) request a mix of public pages for `--seconds`
seconds: the programme list, the programme, the stage page, the audit page, one audit entry, the API's stage
status and the decision JSON. Reported: requests/s, latency p50/p95/p99 (overall and per page) and errors (any
status other than 200, or no answer).

Writers: `--writers` clients at once each post `--writes-per-writer` scores, one request each, through
`POST /api/v1/programs/{key}/scores` with an admin's API token; every score carries a unique marker (its rater and
note). Then the database is checked: every acknowledged score is there exactly once (none lost, none duplicated),
and `audit verify` passes.

`--db`: omitted, a fresh SQLite file; a PostgreSQL URL, a fresh database created on that server (and dropped
after; e.g. the URL `scripts/pg-test-server start` prints); a SQLite URL, that file, which must not exist yet.
Clients and server share this machine's cores: the figures are what one machine serves to itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

PROGRAM = "k-ai-2026"
STAGE = "stage-1"
TEAMS = ("baekdu", "halla", "jiri", "seorak", "taebaek")
FAILING = "jiri"
ADMIN = "load-admin"
MARK = "simsa-load"  # every benchmark score's note starts with it: `simsa-load <run> w<writer> i<write>`


# --------------------------------------------------------------------------- database


@dataclass(frozen=True)
class Prepared:
    """What the load needs to know about the database it runs on."""

    db_url: str
    program: str
    stage: str
    token: str
    entry_id: int
    decision_id: int


def prepare(db_url: str, work: Path, *, decided_at: dt.datetime | None = None) -> Prepared:
    """The example programme loaded, stage 1's panel and benchmark scores and originality gates recorded and the
    stage decided, with an admin account holding an API token (through the services, as the CLI records them)."""
    from simsa import accounts
    from simsa.audit.log import iter_entries
    from simsa.demo import example_program_path, write_example_scores
    from simsa.program.loader import load_program
    from simsa.services import decisions, gates, programs, score_files, scores
    from simsa.store.db import Store

    loaded = load_program(example_program_path())
    panel = work / "panel.csv"
    write_example_scores(panel)
    bench = [scores.ScoreInput(stage=STAGE, team=team, source=f"bench:{suite}", value=0.5 + 0.05 * i - 0.01 * j,
                               stderr=0.02, run_id=f"run-{team}-{suite}")
             for i, team in enumerate(TEAMS) for j, suite in enumerate(("nia", "global-common", "team-chosen"))]
    store = Store(db_url)
    try:
        with store.session() as s:
            version, _ = programs.register(s, loaded, "bench")
            scores.add(s, version, loaded.program, score_files.parse_file(panel), "bench")
            scores.add(s, version, loaded.program, bench, "bench")
            for team in TEAMS:
                gates.record(s, version, loaded.program, stage_id=STAGE, team_id=team, gate_id="originality",
                             passed=team != FAILING, evidence="example evidence", actor="bench", example=True,
                             link=None)
        with store.session() as s:
            decision = decisions.decide_and_store(s, loaded, STAGE, "bench",
                                                  at=decided_at or dt.datetime.now(dt.UTC))
        with store.session() as s:
            admin = accounts.create_admin(s, ADMIN, uuid.uuid4().hex + "Aa1!", actor="bench")
            _, token = accounts.create_api_token(s, admin.id, "load", actor="bench")
        with store.session(readonly=True) as s:
            entry_id = max(e.seq for e in iter_entries(s))
    finally:
        store.dispose()
    return Prepared(db_url=db_url, program=loaded.program.program.id, stage=STAGE, token=token, entry_id=entry_id,
                    decision_id=int(decision["decision_id"]))


@contextlib.contextmanager
def fresh_database(db: str | None, folder: Path) -> Iterator[str]:
    """A database URL to run on: a new SQLite file, the SQLite file named, or a new database on a PostgreSQL
    server (dropped afterwards)."""
    if db is None:
        yield f"sqlite:///{folder / 'simsa.db'}"
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    url = make_url(db)
    if url.get_backend_name() == "sqlite":
        if url.database and Path(url.database).exists():
            raise SystemExit(f"{url.database} exists; the benchmark records into a new database only")
        yield db
        return
    name = f"simsa_load_{uuid.uuid4().hex[:10]}"
    admin = create_engine(db, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# --------------------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(db_url: str, log_path: Path, *, workers: int = 1, timeout: float = 60.0) -> Iterator[str]:
    """`simsa web` on a free loopback port in a subprocess (its own process group); yields its base URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIMSA_WEB_", "SIMSA_DATABASE_URL"))}
    env.update({"NO_COLOR": "1", "SIMSA_WEB_ACCESS_LOG": "1"})
    argv = [sys.executable, "-m", "simsa.cli.main", "web", "--db", db_url, "--host", "127.0.0.1",
            "--port", str(port), "--workers", str(workers)]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"simsa web exited ({proc.returncode}):\n{_tail(log_path)}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"simsa web did not answer /healthz within {timeout:.0f} s:\n{_tail(log_path)}")
            time.sleep(0.1)
        yield base
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# --------------------------------------------------------------------------- readers


def reader_paths(p: Prepared) -> dict[str, str]:
    """The public pages the readers request, by a short name."""
    stage = f"/programs/{p.program}/stages/{p.stage}"
    return {
        "home": "/",
        "programme": f"/programs/{p.program}",
        "stage": stage,
        "audit": "/audit",
        "audit entry": f"/audit/{p.entry_id}",
        "api status": f"/api/v1/programs/{p.program}/stages/{p.stage}/status",
        "decision.json": f"{stage}/decision.json",
    }


def check_paths(base: str, paths: dict[str, str]) -> None:
    """Each page answers 200 before the load starts (a load of 404s would measure nothing)."""
    bad: dict[str, tuple[str, object]] = {}
    with httpx.Client(base_url=base, timeout=30) as client:
        for name, path in paths.items():
            try:
                status: object = client.get(path).status_code
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            if status != 200:
                bad[name] = (path, status)
    if bad:
        raise SystemExit("pages that do not answer 200: " +
                         "; ".join(f"{name} {path} → {status}" for name, (path, status) in bad.items()))


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of `values`, 0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary(latencies: list[float]) -> dict:
    return {"requests": len(latencies), "p50_ms": round(percentile(latencies, 50) * 1000, 1),
            "p95_ms": round(percentile(latencies, 95) * 1000, 1),
            "p99_ms": round(percentile(latencies, 99) * 1000, 1)}


@dataclass
class ReadResult:
    readers: int
    seconds: float
    requests: int
    errors: int
    requests_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    by_page: dict[str, dict] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


async def read_load(base: str, paths: dict[str, str], readers: int, seconds: float) -> ReadResult:
    """`readers` clients at once, each requesting the pages in turn (each from another starting page) until
    `seconds` have passed."""
    names = list(paths)
    latencies: dict[str, list[float]] = {name: [] for name in names}
    errors: list[str] = []
    limits = httpx.Limits(max_connections=readers, max_keepalive_connections=readers)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        start = time.perf_counter()
        deadline = start + seconds

        async def reader(i: int) -> None:
            k = i
            while time.perf_counter() < deadline:
                name = names[k % len(names)]
                k += 1
                t0 = time.perf_counter()
                try:
                    response = await client.get(paths[name])
                    await response.aread()
                except httpx.HTTPError as exc:
                    errors.append(f"{name}: {type(exc).__name__}")
                    continue
                if response.status_code != 200:
                    errors.append(f"{name}: HTTP {response.status_code}")
                    continue
                latencies[name].append(time.perf_counter() - t0)

        await asyncio.gather(*(reader(i) for i in range(readers)))
        elapsed = time.perf_counter() - start
    every = [x for values in latencies.values() for x in values]
    overall = summary(every)
    return ReadResult(readers=readers, seconds=round(elapsed, 2), requests=len(every) + len(errors),
                      errors=len(errors), requests_per_s=round(len(every) / elapsed, 1), p50_ms=overall["p50_ms"],
                      p95_ms=overall["p95_ms"], p99_ms=overall["p99_ms"],
                      by_page={name: summary(values) for name, values in latencies.items()},
                      error_samples=sorted(set(errors))[:10])


# --------------------------------------------------------------------------- writers


def marker(run: str, writer: int, write: int) -> str:
    return f"{MARK} {run} w{writer:03d} i{write:04d}"


def score_body(p: Prepared, run: str, writer: int, write: int) -> dict:
    """One panel score under a rater no one else uses, so every write is its own row (never a supersession)."""
    return {"scores": [{"stage": p.stage, "team": TEAMS[(writer + write) % len(TEAMS)], "source": "panel:expert",
                        "value": 40 + (writer * 7 + write * 13) % 60, "rater": f"load-{run}-{writer:03d}-{write:04d}",
                        "note": marker(run, writer, write)}]}


@dataclass
class WriteResult:
    writers: int
    writes_per_writer: int
    seconds: float
    acknowledged: int
    errors: int
    writes_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    acked: list[str] = field(default_factory=list, repr=False)
    error_samples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("acked")
        return out


async def write_load(base: str, p: Prepared, writers: int, per_writer: int, run: str) -> WriteResult:
    """`writers` clients at once, each posting `per_writer` scores one after another."""
    acked: list[str] = []
    errors: list[str] = []
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {p.token}"}
    limits = httpx.Limits(max_connections=writers, max_keepalive_connections=writers)
    url = f"/api/v1/programs/{p.program}/scores"
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120, headers=headers) as client:
        start = time.perf_counter()

        async def writer(w: int) -> None:
            for i in range(per_writer):
                t0 = time.perf_counter()
                try:
                    response = await client.post(url, json=score_body(p, run, w, i))
                except httpx.HTTPError as exc:
                    errors.append(f"{type(exc).__name__}")
                    continue
                if response.status_code not in (200, 201):
                    errors.append(f"HTTP {response.status_code}: {response.text[:200]}")
                    continue
                latencies.append(time.perf_counter() - t0)
                acked.append(marker(run, w, i))

        await asyncio.gather(*(writer(w) for w in range(writers)))
        elapsed = time.perf_counter() - start
    overall = summary(latencies)
    return WriteResult(writers=writers, writes_per_writer=per_writer, seconds=round(elapsed, 2),
                       acknowledged=len(acked), errors=len(errors), writes_per_s=round(len(acked) / elapsed, 1),
                       p50_ms=overall["p50_ms"], p95_ms=overall["p95_ms"], p99_ms=overall["p99_ms"], acked=acked,
                       error_samples=sorted(set(errors))[:10])


@dataclass(frozen=True)
class WriteCheck:
    """The database after the writers: what was acknowledged against what is there."""

    acknowledged: int
    stored: int
    lost: list[str]
    duplicated: list[str]
    unacknowledged_stored: list[str]
    audit_ok: bool
    audit_entries: int
    audit_problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.lost and not self.duplicated and self.audit_ok

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def check_writes(db_url: str, run: str, acked: list[str]) -> WriteCheck:
    """Count the benchmark's rows by marker, and verify the audit log."""
    from sqlalchemy import text

    from simsa.audit.log import verify
    from simsa.store.db import Store

    store = Store(db_url)
    try:
        with store.session(readonly=True) as s:
            counts = dict(s.execute(text("SELECT note, count(*) FROM scores WHERE note LIKE :m GROUP BY note"),
                                    {"m": f"{MARK} {run} %"}).all())
            verification = verify(s)
    finally:
        store.dispose()
    wanted = set(acked)
    return WriteCheck(acknowledged=len(acked), stored=sum(counts.values()),
                      lost=sorted(m for m in wanted if m not in counts),
                      duplicated=sorted(m for m, n in counts.items() if n > 1),
                      unacknowledged_stored=sorted(m for m in counts if m not in wanted),
                      audit_ok=verification.ok, audit_entries=verification.entries,
                      audit_problems=[str(p.to_dict()) for p in verification.problems[:10]])


# --------------------------------------------------------------------------- the whole run


def server_errors(log_path: Path, limit: int = 5) -> list[str]:
    """The exceptions the server logged (the last line of each traceback), most frequent first, with counts."""
    counts: dict[str, int] = {}
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    for line in lines:
        if line[:1] not in ("", " ", "{") and re.match(r"^[\w.]+(Error|Exception|Timeout)\b.*?: ", line):
            text = line[:300]
            counts[text] = counts.get(text, 0) + 1
    return [f"{n} × {text}" for text, n in sorted(counts.items(), key=lambda kv: -kv[1])[:limit]]


def backend_name(db_url: str) -> str:
    return "postgresql" if db_url.startswith("postgresql") else "sqlite"


def run_async(coroutine):  # type: ignore[no-untyped-def]
    """Run a coroutine to its end on a fresh event loop in a thread of its own, so that a caller whose thread
    already runs a loop (a test session driving a browser through Playwright does) can run the load too."""
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(coroutine)
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="simsa-web-load")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def run_load(db_url: str, work: Path, *, readers: int, seconds: float, writers: int, per_writer: int,
             workers: int = 1) -> dict:
    """Prepare `db_url`, serve it, run the readers then the writers, check the writes; the figures as a dict."""
    prepared = prepare(db_url, work)
    run = uuid.uuid4().hex[:8]
    with serve(db_url, work / "server.log", workers=workers) as base:
        paths = reader_paths(prepared)
        check_paths(base, paths)
        reads = run_async(read_load(base, paths, readers, seconds)) if readers else None
        writes = run_async(write_load(base, prepared, writers, per_writer, run)) if writers else None
    check = check_writes(db_url, run, writes.acked if writes else [])
    return {"backend": backend_name(db_url), "workers": workers, "cores": os.cpu_count(),
            "reads": reads.to_dict() if reads else None, "writes": writes.to_dict() if writes else None,
            "check": check.to_dict(), "server_errors": server_errors(work / "server.log")}


def show(result: dict) -> None:
    print(f"simsa web on {result['backend']}, {result['workers']} worker(s), {result['cores']} cores "
          f"(clients on the same machine)")
    reads = result["reads"]
    if reads:
        print(f"readers {reads['readers']:>4} × {reads['seconds']:.0f} s: {reads['requests_per_s']:8.1f} req/s, "
              f"p50 {reads['p50_ms']:.0f} ms, p95 {reads['p95_ms']:.0f} ms, p99 {reads['p99_ms']:.0f} ms, "
              f"{reads['errors']} errors of {reads['requests']}")
        for name, page in reads["by_page"].items():
            print(f"    {name:<14} {page['requests']:>7} requests, p50 {page['p50_ms']:7.1f} ms, "
                  f"p95 {page['p95_ms']:7.1f} ms, p99 {page['p99_ms']:7.1f} ms")
        for sample in reads["error_samples"]:
            print(f"    error: {sample}")
    writes = result["writes"]
    if writes:
        print(f"writers {writes['writers']:>4} × {writes['writes_per_writer']} writes: "
              f"{writes['writes_per_s']:8.1f} writes/s, p50 {writes['p50_ms']:.0f} ms, "
              f"p95 {writes['p95_ms']:.0f} ms, p99 {writes['p99_ms']:.0f} ms, {writes['errors']} errors, "
              f"{writes['seconds']:.1f} s")
        for sample in writes["error_samples"]:
            print(f"    error: {sample}")
    for line in result.get("server_errors", []):
        print(f"server logged: {line}")
    check = result["check"]
    print(f"check: {check['acknowledged']} acknowledged, {check['stored']} stored, {len(check['lost'])} lost, "
          f"{len(check['duplicated'])} duplicated, {len(check['unacknowledged_stored'])} stored unacknowledged; "
          f"audit verify {'OK' if check['audit_ok'] else 'FAILED'} ({check['audit_entries']} entries)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readers", type=int, default=200, help="concurrent public readers (0: none)")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the readers read")
    parser.add_argument("--writers", type=int, default=50, help="concurrent API writers (0: none)")
    parser.add_argument("--writes-per-writer", type=int, default=20, help="scores each writer posts")
    parser.add_argument("--db", default=None, help="PostgreSQL server URL (a fresh database is made on it) or a "
                                                   "new SQLite URL (default: a fresh SQLite file)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    opts = parser.parse_args()
    if min(opts.readers, opts.writers, opts.writes_per_writer) < 0 or opts.workers < 1 or opts.seconds <= 0:
        parser.error("counts must be ≥ 0, --workers ≥ 1 and --seconds > 0")
    with tempfile.TemporaryDirectory(prefix="simsa-load-") as tmp, fresh_database(opts.db, Path(tmp)) as db_url:
        result = run_load(db_url, Path(tmp), readers=opts.readers, seconds=opts.seconds, writers=opts.writers,
                          per_writer=opts.writes_per_writer, workers=opts.workers)
    if opts.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        show(result)
    if not result["check"]["ok"] or (result["reads"] or {}).get("errors") or (result["writes"] or {}).get("errors"):
        sys.exit(1)


if __name__ == "__main__":
    main()
