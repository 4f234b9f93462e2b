"""The typed shape of a ``simsa.lineage.compare/1`` result (documented in docs/lineage.md).

The result leaves simsa as JSON (``--json``, the report, the originality gate, the web upload), so its type is a set
of ``TypedDict``s: the JSON stays exactly what it was, and the type checker sees every key a reader asks for.
Sub-objects that belong to one module and are only passed through (the validity card, the naive statistics, the
tokenizer and config priors) are typed as plain JSON objects here; their shape is that module's business.
"""

# No ``from __future__ import annotations`` here: TypedDict reads ``NotRequired`` from evaluated annotations.
from typing import Any, Literal, NotRequired, TypedDict

JSONObject = dict[str, Any]
Verdict = str  # "identical", "derived", "independent" or "inconclusive" (``simsa.lineage.stats.verdict``)


class SideSummary(TypedDict):
    """One model as the result describes it."""

    path: str
    model_type: str | None
    adapter: str
    parameters: int
    tensors: int
    stacks: dict[str, JSONObject]


class ComponentIdentity(TypedDict):
    tensors: int
    identical: int
    bit_identical: int


class ComponentResult(TypedDict):
    """One component (``text.attention``, ``vision.mlp``, ...): its verdict and the evidence behind it."""

    name: str
    verdict: Verdict
    rule: str
    log10_p: float | None
    layer_map: list[list[Any]]
    unmapped_layers: list[Any]
    identity: ComponentIdentity
    tested: bool
    reuse: JSONObject
    reason: NotRequired[str | None]
    units: NotRequired[int]
    matched_fraction: NotRequired[float]
    pair_threshold_log10: NotRequired[float]
    candidate_layers: NotRequired[list[Any]]
    reference_layers: NotRequired[list[Any]]
    evidence: NotRequired[list[list[float | None]]]
    pairs_tested: NotRequired[int]
    pairs: NotRequired[list[JSONObject]]
    segments: NotRequired[list[JSONObject]]
    reused_reference_layers: NotRequired[list[Any]]
    parent_component: NotRequired[str]
    experts: NotRequired[JSONObject]


class IdentitySummary(TypedDict):
    candidate_tensors: int
    reference_tensors: int
    identical: int
    identical_informative: int
    bit_identical: int
    level: Literal["bit", "bf16"] | None


class SideIO(TypedDict):
    """What a side's reader fetched (``remote``: over HTTP range requests)."""

    remote: bool
    bytes_read: int
    bytes_total: int
    requests: int


class IOSummary(TypedDict):
    candidate: SideIO | None
    reference: SideIO | None


class CompareResult(TypedDict):
    """A whole ``simsa.lineage.compare/1`` result, in the key order the JSON has."""

    schema: str
    candidate: SideSummary
    reference: SideSummary
    verdict: Verdict
    rule: str
    log10_p: float
    components: list[ComponentResult]
    identity: IdentitySummary
    reuse: dict[str, JSONObject]
    alignment: dict[str, JSONObject]
    io: IOSummary
    tokenizer: JSONObject
    architecture: JSONObject
    naive: JSONObject
    thresholds: JSONObject
    settings: JSONObject
    unmapped: JSONObject
    validity: JSONObject
    summary: str
    seconds: float


__all__ = ["CompareResult", "ComponentIdentity", "ComponentResult", "IOSummary", "IdentitySummary", "JSONObject",
           "SideIO", "SideSummary", "Verdict"]
