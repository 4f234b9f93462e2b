"""A snapshot of hub signals, and how it is parsed from the hub's raw answers.

The hub's numbers change every day and are never published as history, so simsa keeps the answers themselves:
each raw answer (the exact bytes, the URL asked, when, the status, which library asked) is stored once by its
sha256, and a snapshot lists the answers it was parsed from. Parsing is a pure function of those answers, so a
snapshot can be replayed offline — the stored bytes parsed again — and must come out identical, byte for byte.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from simsa.timeutil import as_utc

SCHEMA = "simsa.ecosystem.snapshot/1"
# Derivative kinds as the hub tags them: a model declaring `base_model: ORG/NAME` with a relation gets the tag
# `base_model:KIND:ORG/NAME`; the kinds are the hub's own.
KINDS = ("finetune", "adapter", "quantized", "merge")
INFO_QUERY = "model_info"
DERIVATIVE_QUERY = "derivatives:"  # + kind


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def utc_stamp(value: dt.datetime) -> str:
    """One text form for instants in snapshots: ISO 8601 UTC with microseconds and "Z"."""
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_stamp(text: str) -> dt.datetime:
    return as_utc(dt.datetime.fromisoformat(text.replace("Z", "+00:00")))


@dataclass(frozen=True)
class RawAnswer:
    """One HTTP answer of the hub as received: its bytes (by sha256), what was asked, when (UTC) and by what.

    `query` says what the answer is for (`model_info`, or `derivatives:KIND` with the page number after `#`),
    so parsing never has to guess from the URL. `content` travels with a fresh answer and is not part of the
    snapshot's JSON: the store keeps it once per sha256.
    """

    sha256: str
    url: str
    query: str
    fetched_at: dt.datetime
    status: int
    library_version: str
    content: bytes = field(default=b"", repr=False, compare=False)

    @classmethod
    def of(cls, content: bytes, *, url: str, query: str, fetched_at: dt.datetime, status: int,
           library_version: str) -> RawAnswer:
        return cls(sha256_hex(content), url, query, as_utc(fetched_at), status, library_version, content)

    def to_dict(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "url": self.url, "query": self.query,
                "fetched_at": utc_stamp(self.fetched_at), "status": self.status,
                "library_version": self.library_version}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> RawAnswer:
        return cls(str(doc["sha256"]), str(doc["url"]), str(doc["query"]), parse_stamp(str(doc["fetched_at"])),
                   int(doc["status"]), str(doc["library_version"]))


@dataclass(frozen=True)
class ModelSignals:
    """One hub model's numbers as the hub answered them, with the answers they were read from."""

    team: str
    repo_id: str
    downloads_30d: int | None
    downloads_all_time: int | None
    likes: int | None
    trending_score: float | None
    derivatives: dict[str, int]  # kind → number of hub models declaring this one as base with that relation
    declared_base_models: tuple[str, ...]  # the model card's own `base_model` (self-reported)
    last_modified: dt.datetime | None
    sha: str | None
    answers: tuple[RawAnswer, ...]

    @property
    def answer_sha256s(self) -> tuple[str, ...]:
        return tuple(a.sha256 for a in self.answers)

    def to_dict(self) -> dict[str, Any]:
        return {"team": self.team, "repo_id": self.repo_id, "downloads_30d": self.downloads_30d,
                "downloads_all_time": self.downloads_all_time, "likes": self.likes,
                "trending_score": self.trending_score, "derivatives": dict(sorted(self.derivatives.items())),
                "declared_base_models": list(self.declared_base_models),
                "last_modified": utc_stamp(self.last_modified) if self.last_modified else None, "sha": self.sha,
                "answers": [a.to_dict() for a in self.answers]}


@dataclass(frozen=True)
class ModelError:
    """A model whose signals could not be read: why, and the answers received (a 404's body is evidence too).

    `transport` marks a failure outside the answers (a timeout, the rate limit exhausted, a local directory):
    replaying cannot derive it from bytes, so it is carried over as recorded.
    """

    team: str
    ref: str
    message: str
    answers: tuple[RawAnswer, ...] = ()
    transport: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"team": self.team, "ref": self.ref, "message": self.message, "transport": self.transport,
                "answers": [a.to_dict() for a in self.answers]}


@dataclass(frozen=True)
class TeamSignals:
    team: str
    models: tuple[ModelSignals, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"team": self.team, "models": [m.to_dict() for m in self.models]}


@dataclass(frozen=True)
class Snapshot:
    """Every team's hub signals at one time, read from one endpoint; `errors` lists the models not read."""

    program: str
    taken_at: dt.datetime
    endpoint: str
    library_version: str
    teams: tuple[TeamSignals, ...]
    errors: tuple[ModelError, ...] = ()
    rate_limited: int = 0  # 429 answers waited out while taking it

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "program": self.program, "taken_at": utc_stamp(self.taken_at),
                "endpoint": self.endpoint, "library_version": self.library_version,
                "rate_limited": self.rate_limited, "teams": [t.to_dict() for t in self.teams],
                "errors": [e.to_dict() for e in self.errors]}

    def to_json(self) -> str:
        """The canonical text stored and hashed: sorted keys, no spaces, UTF-8."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def sha256(self) -> str:
        return sha256_hex(self.to_json().encode("utf-8"))

    def answers(self) -> tuple[RawAnswer, ...]:
        """Every answer the snapshot was parsed from, models then errors, in order."""
        out = [a for t in self.teams for m in t.models for a in m.answers]
        return tuple(out + [a for e in self.errors for a in e.answers])

    def team(self, team_id: str) -> TeamSignals | None:
        return next((t for t in self.teams if t.team == team_id), None)


# --------------------------------------------------------------------------- parsing (pure)


class AnswerError(ValueError):
    """An answer that cannot be read as what it was asked for."""


def _json(answer: RawAnswer) -> Any:
    try:
        return json.loads(answer.content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise AnswerError(f"the hub's answer to {answer.url} is not JSON ({exc})") from None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _base_models(card: Any) -> tuple[str, ...]:
    declared = card.get("base_model") if isinstance(card, dict) else None
    if isinstance(declared, str):
        declared = [declared]
    return tuple(str(b) for b in declared) if isinstance(declared, list) else ()


def _failure(answer: RawAnswer) -> str:
    """Why a non-200 answer failed, from its status and the hub's own error text (deterministic in the bytes)."""
    try:
        detail = json.loads(answer.content.decode("utf-8")).get("error")
    except (UnicodeDecodeError, ValueError, AttributeError):
        detail = None
    what = {401: "not authorised (private or gated; give a token)", 404: "not found on the hub",
            429: "rate limited"}.get(answer.status, "an error")
    return f"HTTP {answer.status}: {what}" + (f" ({detail})" if isinstance(detail, str) and detail else "")


def parse_model(team: str, repo_id: str, answers: Sequence[RawAnswer]) -> ModelSignals | ModelError:
    """A model's signals from its raw answers (`model_info` and the derivative pages), or why they are not there."""
    info = next((a for a in answers if a.query == INFO_QUERY), None)
    if info is None:
        return ModelError(team, repo_id, "no model_info answer", tuple(answers))
    failed = next((a for a in answers if a.status != 200), None)
    if failed is not None:
        return ModelError(team, repo_id, f"{repo_id}: {_failure(failed)}", tuple(answers))
    try:
        doc = _json(info)
        if not isinstance(doc, dict):
            raise AnswerError(f"the hub's model_info for {repo_id} is not an object")
        derivatives = {kind: 0 for kind in KINDS}
        for a in answers:
            if a.query.startswith(DERIVATIVE_QUERY):
                page = _json(a)
                if not isinstance(page, list):
                    raise AnswerError(f"the hub's model list for {a.query} of {repo_id} is not a list")
                kind = a.query[len(DERIVATIVE_QUERY):].partition("#")[0]
                derivatives[kind] = derivatives.get(kind, 0) + len(page)
    except AnswerError as exc:
        return ModelError(team, repo_id, str(exc), tuple(answers))
    modified = doc.get("lastModified")
    try:
        last_modified = parse_stamp(modified) if isinstance(modified, str) else None
    except ValueError:
        last_modified = None
    sha = doc.get("sha")
    return ModelSignals(team=team, repo_id=repo_id, downloads_30d=_int(doc.get("downloads")),
                        downloads_all_time=_int(doc.get("downloadsAllTime")), likes=_int(doc.get("likes")),
                        trending_score=_float(doc.get("trendingScore")), derivatives=derivatives,
                        declared_base_models=_base_models(doc.get("cardData")), last_modified=last_modified,
                        sha=sha if isinstance(sha, str) else None, answers=tuple(answers))


# --------------------------------------------------------------------------- reading a stored snapshot back


def _answers(items: Any) -> tuple[RawAnswer, ...]:
    return tuple(RawAnswer.from_dict(a) for a in items or [])


def answers_of(doc: Mapping[str, Any]) -> list[RawAnswer]:
    """The answers a stored snapshot's JSON lists (without their bytes)."""
    out = [a for t in doc.get("teams", []) for m in t.get("models", []) for a in _answers(m.get("answers"))]
    return out + [a for e in doc.get("errors", []) for a in _answers(e.get("answers"))]


def reparse(doc: Mapping[str, Any], contents: Mapping[str, bytes]) -> Snapshot:
    """The snapshot a stored JSON describes, parsed again from the answers' bytes (`contents`: sha256 → bytes).

    The header (programme, time, endpoint, library, 429s) is carried over; every number is read again. An error
    recorded without any answer (a timeout) can only be carried over as it was.
    """

    def fill(items: Any) -> list[RawAnswer]:
        return [replace(a, content=contents.get(a.sha256, b"")) for a in _answers(items)]

    teams: dict[str, list[ModelSignals]] = {t["team"]: [] for t in doc.get("teams", [])}
    errors: list[ModelError] = []

    def add(result: ModelSignals | ModelError) -> None:
        if isinstance(result, ModelError):
            errors.append(result)
        else:
            teams.setdefault(result.team, []).append(result)

    for t in doc.get("teams", []):
        for m in t.get("models", []):
            add(parse_model(t["team"], m["repo_id"], fill(m.get("answers"))))
    for e in doc.get("errors", []):
        if e.get("transport"):
            add(ModelError(e["team"], e["ref"], e["message"], tuple(fill(e.get("answers"))), True))
        else:
            add(parse_model(e["team"], e["ref"], fill(e.get("answers"))))
    return Snapshot(program=str(doc["program"]), taken_at=parse_stamp(str(doc["taken_at"])),
                    endpoint=str(doc["endpoint"]), library_version=str(doc["library_version"]),
                    teams=tuple(TeamSignals(t, tuple(ms)) for t, ms in teams.items()), errors=tuple(errors),
                    rate_limited=int(doc.get("rate_limited", 0)))


def assemble(program: str, taken_at: dt.datetime, endpoint: str, library_version: str, team_ids: Sequence[str],
             results: Sequence[ModelSignals | ModelError], rate_limited: int = 0) -> Snapshot:
    """A snapshot from per-model results, teams in programme order (a team without models is listed, empty)."""
    teams = {t: [r for r in results if isinstance(r, ModelSignals) and r.team == t] for t in team_ids}
    return Snapshot(program=program, taken_at=as_utc(taken_at), endpoint=endpoint, library_version=library_version,
                    teams=tuple(TeamSignals(t, tuple(ms)) for t, ms in teams.items()),
                    errors=tuple(r for r in results if isinstance(r, ModelError)), rate_limited=rate_limited)


def _signals_from_dict(team: str, m: Mapping[str, Any]) -> ModelSignals:
    modified = m.get("last_modified")
    return ModelSignals(team=team, repo_id=str(m["repo_id"]), downloads_30d=m.get("downloads_30d"),
                        downloads_all_time=m.get("downloads_all_time"), likes=m.get("likes"),
                        trending_score=m.get("trending_score"),
                        derivatives={str(k): int(v) for k, v in (m.get("derivatives") or {}).items()},
                        declared_base_models=tuple(m.get("declared_base_models") or ()),
                        last_modified=parse_stamp(modified) if modified else None, sha=m.get("sha"),
                        answers=_answers(m.get("answers")))


def snapshot_from_dict(doc: Mapping[str, Any]) -> Snapshot:
    """A stored snapshot as recorded (its numbers read from the JSON, not parsed again: see `reparse`)."""
    teams = tuple(TeamSignals(str(t["team"]), tuple(_signals_from_dict(str(t["team"]), m) for m in t["models"]))
                  for t in doc.get("teams", []))
    errors = tuple(ModelError(str(e["team"]), str(e["ref"]), str(e["message"]), _answers(e.get("answers")),
                              bool(e.get("transport"))) for e in doc.get("errors", []))
    return Snapshot(program=str(doc["program"]), taken_at=parse_stamp(str(doc["taken_at"])),
                    endpoint=str(doc["endpoint"]), library_version=str(doc["library_version"]), teams=teams,
                    errors=errors, rate_limited=int(doc.get("rate_limited", 0)))
