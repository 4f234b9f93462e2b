"""Ecosystem signals: a programme's hub models read as dated, replayable snapshots (downloads, likes, trending,
derivatives, declared base models), and the metrics a criterion can take from them (`ecosystem:<metric>`).

`client` talks to the hub (the only module with network access); `snapshot` parses raw answers into typed signals
and back; `metrics` names and labels the numbers; `series` turns snapshots into time series and derivative trees.
"""

from simsa.ecosystem.client import (
    DEFAULT_ENDPOINT,
    LIBRARY_VERSION,
    EcosystemError,
    HubReader,
    Limits,
    RateLimited,
    repo_of,
)
from simsa.ecosystem.metrics import BASE_NOTE, KIND_LABELS, METRICS, Metric, is_ecosystem_source, metric
from simsa.ecosystem.series import DerivativeNode, EcosystemView, Series, SeriesPoint, derivative_tree, series_of
from simsa.ecosystem.snapshot import (
    KINDS,
    ModelError,
    ModelSignals,
    RawAnswer,
    Snapshot,
    TeamSignals,
    answers_of,
    assemble,
    parse_model,
    reparse,
    snapshot_from_dict,
)

__all__ = [
    "BASE_NOTE",
    "DEFAULT_ENDPOINT",
    "KINDS",
    "KIND_LABELS",
    "LIBRARY_VERSION",
    "METRICS",
    "DerivativeNode",
    "EcosystemError",
    "EcosystemView",
    "HubReader",
    "Limits",
    "Metric",
    "ModelError",
    "ModelSignals",
    "RateLimited",
    "RawAnswer",
    "Series",
    "SeriesPoint",
    "Snapshot",
    "TeamSignals",
    "answers_of",
    "assemble",
    "derivative_tree",
    "is_ecosystem_source",
    "metric",
    "parse_model",
    "reparse",
    "repo_of",
    "series_of",
    "snapshot_from_dict",
]
