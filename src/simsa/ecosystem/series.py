"""Snapshots over time: one metric's value per team at each snapshot, and each team's derivative tree.

A single snapshot says little (downloads jump with one CI job); the reports show the series, and beside the
derivative counts the base models each model declares, so a reader sees what the numbers rest on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from simsa.ecosystem.metrics import Metric
from simsa.ecosystem.snapshot import KINDS, Snapshot, utc_stamp


@dataclass(frozen=True)
class SeriesPoint:
    """One snapshot's value of a metric for each team (None: no model of the team was read)."""

    snapshot_id: int
    taken_at: dt.datetime
    values: dict[str, float | None]

    def to_dict(self) -> dict[str, Any]:
        return {"snapshot_id": self.snapshot_id, "taken_at": utc_stamp(self.taken_at), "values": self.values}


@dataclass(frozen=True)
class Series:
    metric: Metric
    teams: tuple[str, ...]
    points: tuple[SeriesPoint, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric.name, "source": self.metric.source, "label_en": self.metric.label("en"),
                "label_ko": self.metric.label("ko"), "teams": list(self.teams),
                "points": [p.to_dict() for p in self.points]}


def series_of(metric: Metric, snapshots: Sequence[tuple[int, Snapshot]], teams: Sequence[str]) -> Series:
    """The metric per team over snapshots (given as (id, snapshot), any order), oldest first."""
    points = []
    for sid, snap in sorted(snapshots, key=lambda s: (s[1].taken_at, s[0])):
        values: dict[str, float | None] = {}
        for team in teams:
            signals = snap.team(team)
            values[team] = metric.team_value(signals.models) if signals else None
        points.append(SeriesPoint(sid, snap.taken_at, values))
    return Series(metric, tuple(teams), tuple(points))


@dataclass(frozen=True)
class DerivativeNode:
    """One model in a team's tree: the bases it declares (self-reported) and its derivatives by kind."""

    team: str
    repo_id: str
    declared_base_models: tuple[str, ...]
    derivatives: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {"team": self.team, "repo_id": self.repo_id,
                "declared_base_models": list(self.declared_base_models), "derivatives": self.derivatives}


def derivative_tree(snapshot: Snapshot) -> list[DerivativeNode]:
    """Team → model → kind → count, with each model's declared base models, in programme order."""
    return [DerivativeNode(t.team, m.repo_id, m.declared_base_models,
                           {k: m.derivatives.get(k, 0) for k in KINDS})
            for t in snapshot.teams for m in t.models]


@dataclass(frozen=True)
class EcosystemView:
    """What an ecosystem report shows: every chosen metric's series, and the latest snapshot (id, sha256) whose
    derivative tree is drawn."""

    program: str
    program_name: str
    team_names: dict[str, str]
    series: tuple[Series, ...]
    latest: Snapshot | None = None
    latest_id: int | None = None
    latest_sha256: str | None = None
    timezone: str = "UTC"  # the programme's display zone (times are stored and exported in UTC)

    def to_dict(self) -> dict[str, Any]:
        return {"program": self.program, "series": [s.to_dict() for s in self.series],
                "latest": None if self.latest is None else {"id": self.latest_id, "sha256": self.latest_sha256,
                                                            "snapshot": self.latest.to_dict()}}
