"""Ecosystem signals as a use case: take a dated snapshot of every team's hub models, replay it offline, read the
series, and record a stage's `ecosystem:<metric>` scores from the latest snapshot.

Taking a snapshot is split in two so the network is never read while the store's write lock is held: `collect`
asks the hub (no database), `store_snapshot` writes the answers (each new sha256 once) and the snapshot, each with
its audit entry. `take_snapshot` does both, for callers that hold a session anyway.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from simsa.audit.log import Write, append_many, now_utc
from simsa.ecosystem import (
    LIBRARY_VERSION,
    EcosystemError,
    EcosystemView,
    HubReader,
    Metric,
    ModelError,
    ModelSignals,
    RateLimited,
    Series,
    Snapshot,
    answers_of,
    assemble,
    is_ecosystem_source,
    metric,
    parse_model,
    reparse,
    repo_of,
    series_of,
    snapshot_from_dict,
)
from simsa.ecosystem import METRICS as ALL_METRICS
from simsa.errors import InputError, NotFound
from simsa.program.schema import Program
from simsa.services import programs
from simsa.services import scores as score_service
from simsa.services.programs import ProgramRef
from simsa.store.models import EcosystemAnswer, EcosystemSnapshot
from simsa.timeutil import as_utc, utc_text

Clock = Callable[[], dt.datetime]
Progress = Callable[[str, str], None]  # (team, model reference) before each model is read


# --------------------------------------------------------------------------- taking a snapshot


def collect(program: Program, *, endpoint: str, token: str | None = None, reader: HubReader | None = None,
            clock: Clock | None = None, progress: Progress | None = None) -> Snapshot:
    """Read every team's listed hub models (no database). A model that fails is recorded as an error; once the
    hub's rate limit is exhausted the remaining models are not asked. Nothing read at all is an error."""
    reader = reader or HubReader(endpoint=endpoint, token=token)
    taken_at = (clock or now_utc)()
    refs = [(team.id, ref) for team in program.teams for ref in team.models]
    if not refs:
        raise InputError(f"no team of programme {program.program.id!r} lists models (`models` in [[teams]])")
    results: list[ModelSignals | ModelError] = []
    limited: str | None = None
    for team, ref in refs:
        if progress is not None:
            progress(team, ref)
        if limited is not None:
            results.append(ModelError(team, ref, f"{ref}: not asked: {limited}", transport=True))
            continue
        try:
            got = reader.read_model(team, ref)
        except RateLimited as exc:
            limited = "the hub's rate limit was exhausted earlier in this snapshot"
            results.append(ModelError(team, ref, str(exc), transport=True))
            continue
        results.append(got if isinstance(got, ModelError) else parse_model(team, repo_of(ref) or ref, got))
    snapshot = assemble(program.program.id, taken_at, reader.endpoint, LIBRARY_VERSION,
                        [t.id for t in program.teams], results, reader.rate_limited)
    if not snapshot.answers() and any(repo_of(ref) for _, ref in refs):
        first = next(e.message for e in snapshot.errors if repo_of(e.ref))
        raise EcosystemError(f"nothing was read from the hub, nothing stored: {first}")
    return snapshot


@dataclass(frozen=True)
class Taken:
    """A stored snapshot: its id and sha256, and how many answers were new to the store or already in it."""

    id: int
    sha256: str
    snapshot: Snapshot
    answers_stored: int
    answers_reused: int

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "sha256": self.sha256, "answers_stored": self.answers_stored,
                "answers_reused": self.answers_reused, "snapshot": self.snapshot.to_dict()}


def store_snapshot(session: Session, program_ref: ProgramRef, snapshot: Snapshot, actor: str,
                   at: dt.datetime | None = None) -> Taken:
    """Write the snapshot and every answer whose sha256 the store lacks, each with its audit entry."""
    writable = programs.for_writing(session, program_ref, actor)
    if writable.key != snapshot.program:
        raise InputError(f"the snapshot is of programme {snapshot.program!r}, not {writable.key!r}")
    fresh = {a.sha256: a for a in snapshot.answers()}
    known = set(session.execute(select(EcosystemAnswer.sha256).where(EcosystemAnswer.sha256.in_(list(fresh))))
                .scalars()) if fresh else set()
    writes: list[Write] = []
    for sha, answer in fresh.items():
        if sha in known:
            continue
        row = EcosystemAnswer(sha256=sha, url=answer.url, query=answer.query, fetched_at=answer.fetched_at,
                              status=answer.status, library_version=answer.library_version, content=answer.content)
        session.add(row)
        session.flush()
        writes.append(Write("ecosystem.answer", row=row))
    body = snapshot.to_json()
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
    snap_row = EcosystemSnapshot(program_key=snapshot.program, taken_at=snapshot.taken_at,
                                 endpoint=snapshot.endpoint, body=body, sha256=digest, taken_by=actor)
    session.add(snap_row)
    session.flush()
    writes.append(Write("ecosystem.snapshot", row=snap_row,
                        details={"models": sum(len(t.models) for t in snapshot.teams),
                                 "errors": len(snapshot.errors)}))
    append_many(session, actor=actor, writes=writes, at=at)
    return Taken(snap_row.id, digest, snapshot, len(writes) - 1, len(fresh) - (len(writes) - 1))


def take_snapshot(session: Session, program_ref: ProgramRef, *, endpoint: str, token: str | None, actor: str,
                  clock: Clock | None = None, reader: HubReader | None = None,
                  progress: Progress | None = None) -> Taken:
    """Read the programme's hub models and store the snapshot (see `collect` and `store_snapshot`)."""
    loaded = programs.resolve(session, program_ref)
    snapshot = collect(loaded.program, endpoint=endpoint, token=token, reader=reader, clock=clock,
                       progress=progress)
    return store_snapshot(session, loaded, snapshot, actor)


# --------------------------------------------------------------------------- replay


@dataclass(frozen=True)
class Replay:
    """A stored snapshot parsed again from its stored answers: `ok` when every answer's bytes still hash to their
    sha256 and the result is byte-identical to the stored body."""

    snapshot_id: int
    program: str
    stored_sha256: str
    replayed_sha256: str
    problems: tuple[str, ...]
    differences: tuple[str, ...]
    replayed: Snapshot

    @property
    def ok(self) -> bool:
        return not self.problems and not self.differences

    def to_dict(self) -> dict[str, Any]:
        return {"snapshot_id": self.snapshot_id, "program": self.program, "ok": self.ok,
                "stored_sha256": self.stored_sha256, "replayed_sha256": self.replayed_sha256,
                "problems": list(self.problems), "differences": list(self.differences)}


def _snapshot_row(session: Session, snapshot_id: int, program_key: str | None = None) -> EcosystemSnapshot:
    row = session.get(EcosystemSnapshot, snapshot_id)
    if row is None or (program_key is not None and row.program_key != program_key):
        raise NotFound(f"no ecosystem snapshot #{snapshot_id}" + (f" of programme {program_key!r}"
                                                                  if program_key else ""))
    return row


def _differences(stored: Any, replayed: Any, path: str = "$", limit: int = 20) -> list[str]:
    """Where two JSON values differ, as `path: stored → replayed` (at most `limit`)."""
    if isinstance(stored, dict) and isinstance(replayed, dict):
        out: list[str] = []
        for key in sorted(set(stored) | set(replayed)):
            out += _differences(stored.get(key), replayed.get(key), f"{path}.{key}", limit - len(out))
            if len(out) >= limit:
                break
        return out
    if isinstance(stored, list) and isinstance(replayed, list) and len(stored) == len(replayed):
        out = []
        for i, (a, b) in enumerate(zip(stored, replayed, strict=True)):
            out += _differences(a, b, f"{path}[{i}]", limit - len(out))
            if len(out) >= limit:
                break
        return out
    if stored == replayed:
        return []
    before, after = (json.dumps(v, ensure_ascii=False)[:120] for v in (stored, replayed))
    return [f"{path}: {before} → {after}"]


def replay(session: Session, snapshot_id: int, program_key: str | None = None) -> Replay:
    """Parse a stored snapshot again from the stored answers (no network) and compare with the stored body."""
    row = _snapshot_row(session, snapshot_id, program_key)
    doc = json.loads(row.body)
    shas = sorted({a.sha256 for a in answers_of(doc)})
    contents = {r.sha256: bytes(r.content) for r in session.execute(
        select(EcosystemAnswer).where(EcosystemAnswer.sha256.in_(shas))).scalars()} if shas else {}
    problems: list[str] = []
    if hashlib.sha256(row.body.encode("utf-8")).hexdigest() != row.sha256:
        problems.append(f"the stored body no longer hashes to the snapshot's sha256 {row.sha256}")
    for sha in shas:
        if sha not in contents:
            problems.append(f"answer {sha} is not in the store")
        elif (actual := hashlib.sha256(contents[sha]).hexdigest()) != sha:
            problems.append(f"answer {sha}: its stored bytes hash to {actual} (changed since it was fetched)")
    replayed = reparse(doc, contents)
    text = replayed.to_json()
    differences = [] if text == row.body else _differences(doc, json.loads(text))
    return Replay(row.id, row.program_key, row.sha256, hashlib.sha256(text.encode("utf-8")).hexdigest(),
                  tuple(problems), tuple(differences), replayed)


# --------------------------------------------------------------------------- reading snapshots


@dataclass(frozen=True)
class StoredSnapshot:
    id: int
    sha256: str
    taken_by: str
    snapshot: Snapshot

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "sha256": self.sha256, "taken_by": self.taken_by, "snapshot": self.snapshot.to_dict()}


def _stored(row: EcosystemSnapshot) -> StoredSnapshot:
    return StoredSnapshot(row.id, row.sha256, row.taken_by, snapshot_from_dict(json.loads(row.body)))


def snapshots(session: Session, program_key: str, at: dt.datetime | None = None) -> list[StoredSnapshot]:
    """The programme's snapshots taken at or before `at` (default: all), oldest first."""
    query = select(EcosystemSnapshot).where(EcosystemSnapshot.program_key == program_key)
    if at is not None:
        query = query.where(EcosystemSnapshot.taken_at <= as_utc(at))
    rows = session.execute(query.order_by(EcosystemSnapshot.taken_at, EcosystemSnapshot.id)).scalars()
    return [_stored(r) for r in rows]


def latest(session: Session, program_key: str, at: dt.datetime | None = None) -> StoredSnapshot | None:
    """The newest snapshot taken at or before `at` (default: now)."""
    query = select(EcosystemSnapshot).where(EcosystemSnapshot.program_key == program_key,
                                            EcosystemSnapshot.taken_at <= as_utc(at or now_utc()))
    row = session.execute(query.order_by(EcosystemSnapshot.taken_at.desc(), EcosystemSnapshot.id.desc())
                          .limit(1)).scalar_one_or_none()
    return _stored(row) if row is not None else None


def series(session: Session, program_ref: ProgramRef, metric_name: str) -> Series:
    """One metric per team at every snapshot of the programme, oldest first."""
    chosen = metric(metric_name)
    program = programs.resolve(session, program_ref).program
    stored = snapshots(session, program.program.id)
    return series_of(chosen, [(s.id, s.snapshot) for s in stored], [t.id for t in program.teams])


def report_view(session: Session, program_ref: ProgramRef, metrics: list[str] | None = None) -> EcosystemView:
    """Series of the given metrics (default: all) and the latest snapshot, for the report section."""
    program = programs.resolve(session, program_ref).program
    key = program.program.id
    stored = snapshots(session, key)
    chosen = [metric(m) for m in metrics] if metrics else list(ALL_METRICS.values())
    teams = [t.id for t in program.teams]
    last = stored[-1] if stored else None
    return EcosystemView(key, program.program.name, {t.id: t.name for t in program.teams},
                         tuple(series_of(m, [(s.id, s.snapshot) for s in stored], teams) for m in chosen),
                         last.snapshot if last else None, last.id if last else None, last.sha256 if last else None,
                         program.program.timezone)


# --------------------------------------------------------------------------- scores


@dataclass(frozen=True)
class EcosystemScores:
    """The scores recorded from one snapshot, and the teams left without a value (no model read)."""

    program: str
    stage: str
    snapshot_id: int
    snapshot_sha256: str
    taken_at: dt.datetime
    recorded: tuple[score_service.RecordedScore, ...]
    missing: tuple[tuple[str, str], ...]  # (team, source)

    def to_dict(self) -> dict[str, Any]:
        return {"program": self.program, "stage": self.stage, "snapshot_id": self.snapshot_id,
                "snapshot_sha256": self.snapshot_sha256, "taken_at": utc_text(self.taken_at),
                "recorded": [r.to_dict() for r in self.recorded],
                "missing": [{"team": t, "source": s} for t, s in self.missing]}


def _evidence(stored: StoredSnapshot, chosen: Metric, models: tuple[ModelSignals, ...]) -> str:
    """Names the snapshot (id, UTC time, sha256), what the number is, and each model's part of the sum."""
    parts = "; ".join(f"{m.repo_id} = {_plain(chosen.read(m))}" for m in models)
    return (f"ecosystem snapshot #{stored.id} taken {utc_text(stored.snapshot.taken_at)} from "
            f"{stored.snapshot.endpoint} (sha256 {stored.sha256}): {chosen.label('en')}. Sum over the team's "
            f"models: {parts}")


def _plain(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:g}" if value != int(value) else str(int(value))


def record_scores(session: Session, program_ref: ProgramRef, stage_id: str, actor: str, *,
                  at: dt.datetime | None = None) -> EcosystemScores:
    """One score per team for every `ecosystem:<metric>` source of the stage, from the latest snapshot taken at or
    before `at` (default: now); a team none of whose models was read gets no score (listed as missing)."""
    loaded = programs.resolve(session, program_ref)
    program = loaded.program
    key = program.program.id
    try:
        stage = program.stage(stage_id)
    except KeyError:
        raise InputError(f"unknown stage {stage_id!r} (stages: {', '.join(s.id for s in program.stages)})"
                         ) from None
    sources = [s for s in stage.score_sources() if is_ecosystem_source(s)]
    if not sources:
        raise InputError(f"stage {stage.id!r} has no criterion or min_score gate with an ecosystem:<metric> source")
    chosen = [(s, metric(s)) for s in sources]
    when = as_utc(at) if at else now_utc()
    stored = latest(session, key, when)
    if stored is None:
        raise InputError(f"no ecosystem snapshot of programme {key!r} taken at or before {utc_text(when)}; take "
                         f"one with `simsa ecosystem snapshot {key}`")
    order = [s.id for s in program.stages]
    items: list[score_service.ScoreInput] = []
    missing: list[tuple[str, str]] = []
    for team in program.teams:
        if team.joins_at and team.joins_at in order and order.index(team.joins_at) > order.index(stage.id):
            continue
        signals = stored.snapshot.team(team.id)
        models = signals.models if signals else ()
        for source, m in chosen:
            value = m.team_value(models)
            if value is None:
                missing.append((team.id, source))
                continue
            items.append(score_service.ScoreInput(stage=stage.id, team=team.id, source=source, value=value,
                                                  run_id=f"ecosystem-snapshot-{stored.id}",
                                                  evidence=_evidence(stored, m, models), note=m.label("en")))
    recorded = score_service.record(session, loaded, items, actor).rows if items else ()
    return EcosystemScores(key, stage.id, stored.id, stored.sha256, stored.snapshot.taken_at, tuple(recorded),
                           tuple(missing))
