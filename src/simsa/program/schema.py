"""The program file's schema: teams, stages, the criteria tree, gates and the elimination rule.

Everything a decision depends on is declared here, so that a decision can be re-derived from the file and the
recorded scores alone. Validation is strict (unknown keys are errors) because a typo in a programme's rules must
never silently change who is cut.
"""

from __future__ import annotations

import datetime as dt
import difflib
import itertools
import math
import re
from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from simsa.program.arena_schema import ARENA_SOURCE, Arena
from simsa.program.grades import Grade, refusal, source_grade
from simsa.program.originality import check_component_pattern

ID_PATTERN = r"^[a-z0-9][a-z0-9_\-]{0,62}$"
SOURCE_RE = re.compile(
    r"^(bench:[A-Za-z0-9_.\-]+|panel:(expert|user)|ecosystem:[A-Za-z0-9_.\-]+|manual(:[A-Za-z0-9_.\-]+)?)$"
)
SOURCE_HELP = "bench:<suite>, panel:expert, panel:user, ecosystem:<metric>, manual or manual:<name>"
SHA256_PATTERN = r"^[0-9a-fA-F]{64}$"

# Bounds on every number a program file may hold. Points and weights far beyond these are typos (or attempts to
# make a total overflow to infinity, which JSON cannot carry); MAX_ABS_VALUE also bounds raw scores and thresholds,
# and score imports refuse values beyond it.
MAX_POINTS = 1e6
MAX_WEIGHT = 1e6
MAX_ABS_VALUE = 1e12

Normalisation = Literal["absolute", "relative_to_best", "minmax", "rank"]


def close_name(name: str, known: list[str] | tuple[str, ...], cutoff: float = 0.6) -> str | None:
    """The known name closest to `name`, if one is close: most typos are a letter or two off."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=cutoff)
    return close[0] if close else None


def near_names(name: str, known: list[str] | tuple[str, ...], cutoff: float = 0.6) -> str:
    """" (did you mean 'x'?)" when a known name is close to `name`, else ""."""
    close = close_name(name, known, cutoff)
    return f" (did you mean {close!r}?)" if close else ""


_SOURCE_KINDS = ("bench:", "panel:expert", "panel:user", "ecosystem:", "manual")


def _check_source(v: str | None) -> str | None:
    if v is not None and not SOURCE_RE.match(v):
        kind, _, rest = v.partition(":")
        guesses = [k + rest if k.endswith(":") else k for k in _SOURCE_KINDS]
        hint = near_names(v, guesses) or near_names(kind, [k.rstrip(":") for k in _SOURCE_KINDS])
        raise ValueError(f"unknown score source {v!r}{hint}; expected {SOURCE_HELP}")
    return v


ScoreSource = Annotated[str | None, AfterValidator(_check_source)]
# A stack or component of a lineage comparison: "vision", "vision.attention", "text.embedding".
LineageComponent = Annotated[str, AfterValidator(check_component_pattern)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def _check_timezone(v: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {v!r}; use an IANA name such as \"Asia/Seoul\" or \"UTC\"") from None
    return v


class ProgramInfo(_Strict):
    """`[program]`. `timezone` is for display only: every stored and hashed time is UTC."""

    id: str = Field(pattern=ID_PATTERN)
    name: str = Field(min_length=1)
    name_ko: str | None = None
    organiser: str | None = None
    description: str | None = None
    timezone: Annotated[str, AfterValidator(_check_timezone)] = "UTC"


class Borrowed(_Strict):
    """An open-source component a team declares it used (credit and licence compliance).

    `covers` ties the declaration to what a lineage comparison reports (stacks or STACK.GROUP components), so the
    originality gate can check that every reuse the weights show is declared, licensed and credited.
    """

    component: str = Field(min_length=1)
    source: str = Field(min_length=1)
    licence: str | None = None
    credited: bool = False
    attribution: str | None = Field(default=None, min_length=1)
    weights: Literal["none", "reinitialised", "reused_frozen", "reused_tuned"] = "none"
    covers: list[LineageComponent] = Field(default_factory=list)

    @model_validator(mode="after")
    def _covers_need_weights(self) -> Borrowed:
        if self.covers and self.weights == "none":
            raise ValueError(f"borrowed {self.component!r} covers lineage components but declares weights = "
                             '"none"; declare "reinitialised", "reused_frozen" or "reused_tuned"')
        return self


class Team(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    name: str = Field(min_length=1)
    name_ko: str | None = None
    members: list[str] = Field(default_factory=list)
    models: list[str] = Field(default_factory=list)
    licence: str | None = None
    borrowed: list[Borrowed] = Field(default_factory=list)
    joins_at: str | None = None

    def label(self) -> str:
        return self.name


class Criterion(_Strict):
    """A node of the criteria tree. Leaves carry a score source and a normalisation; inner nodes sum children."""

    id: str = Field(pattern=ID_PATTERN)
    name: str = Field(min_length=1)
    name_ko: str | None = None
    points: float = Field(gt=0, le=MAX_POINTS, allow_inf_nan=False)
    source: ScoreSource = None
    normalisation: Normalisation | None = None
    raw_range: tuple[float, float] | None = None
    higher_is_better: bool = True
    missing: Literal["error", "zero"] = "error"
    children: list[Criterion] = Field(default_factory=list)

    @field_validator("raw_range")
    @classmethod
    def _range_order(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and not (math.isfinite(v[0]) and math.isfinite(v[1])):
            raise ValueError(f"raw_range bounds must be finite numbers, got {list(v)}")
        if v is not None and max(abs(v[0]), abs(v[1])) > MAX_ABS_VALUE:
            raise ValueError(f"raw_range bounds must lie within ±{MAX_ABS_VALUE:g}, got {list(v)}")
        if v is not None and not v[0] < v[1]:
            raise ValueError(f"raw_range must be [low, high] with low < high, got {list(v)}")
        return v

    @model_validator(mode="after")
    def _leaf_or_inner(self) -> Criterion:
        if self.children:
            if self.source is not None or self.normalisation is not None or self.raw_range is not None:
                raise ValueError(
                    f"criterion {self.id!r} has children, so it cannot also have source, normalisation or raw_range"
                )
            total = sum(c.points for c in self.children)
            if abs(total - self.points) > 1e-9 * max(1.0, self.points):
                parts = " + ".join(f"{c.id} {c.points:g}" for c in self.children)
                raise ValueError(f"criterion {self.id!r} has {self.points:g} points but its children sum to "
                                 f"{total:g} ({parts})")
        elif self.source is None:
            raise ValueError(f"leaf criterion {self.id!r} needs a source ({SOURCE_HELP})")
        return self

    @property
    def is_leaf(self) -> bool:
        return not self.children

    @property
    def norm(self) -> Normalisation:
        return self.normalisation or "absolute"

    def walk(self, depth: int = 0, parent: str | None = None) -> Iterator[tuple[Criterion, int, str | None]]:
        """Depth-first (criterion, depth, parent id) triples, the order reports list them in."""
        yield self, depth, parent
        for child in self.children:
            yield from child.walk(depth + 1, self.id)


class OriginalitySettings(_Strict):
    """`[stages.gates.originality]`: what an originality gate accepts when it is decided from a lineage comparison.

    The default is the 2026 rule: every component trained from re-initialised weights, no reuse at all.
    """

    allow_reuse: list[LineageComponent] = Field(default_factory=list)
    allow_frozen: bool = False
    allowed_licences: list[str] | None = None
    require_credit: bool = True


class Gate(_Strict):
    """A pass/fail condition that eliminates regardless of points.

    kinds: `recorded` (a result with evidence is recorded per team, e.g. originality from a lineage check; its
    optional `originality` table sets what `simsa gate from-lineage` accepts), `min_score` (a score source must reach
    `threshold`), `licence` (computed from the teams' declarations).

    `min_grade` is the weakest evidence grade a result may rest on (a recorded result below it, or a recorded
    failure on heuristic evidence only, needs an admin's reason on the record). A computed gate's grade is known
    from the file (licence: declared; min_score: its source's), so a computed gate that could eliminate on weaker
    evidence is refused here unless `weak_evidence_reason` records why the programme accepts it.
    """

    id: str = Field(pattern=ID_PATTERN)
    name: str = Field(min_length=1)
    name_ko: str | None = None
    kind: Literal["recorded", "min_score", "licence"]
    description: str | None = None
    source: ScoreSource = None
    threshold: float | None = Field(default=None, ge=-MAX_ABS_VALUE, le=MAX_ABS_VALUE, allow_inf_nan=False)
    allowed_licences: list[str] | None = None
    require_credit: bool = True
    originality: OriginalitySettings | None = None
    min_grade: Grade | None = None
    weak_evidence_reason: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _fields_for_kind(self) -> Gate:
        if self.kind == "min_score":
            if self.source is None or self.threshold is None:
                raise ValueError(f"gate {self.id!r} of kind min_score needs both source and threshold")
        elif self.source is not None or self.threshold is not None:
            raise ValueError(f"gate {self.id!r} of kind {self.kind} takes no source or threshold")
        if self.kind != "licence" and self.allowed_licences is not None:
            raise ValueError(f"gate {self.id!r}: allowed_licences applies only to kind licence")
        if self.kind != "recorded" and self.originality is not None:
            raise ValueError(f"gate {self.id!r}: originality applies only to kind recorded")
        if self.kind == "recorded" and self.weak_evidence_reason is not None:
            raise ValueError(f"gate {self.id!r}: weak_evidence_reason applies only to computed gates; a recorded "
                             "result below the bar carries its own reason (--override-reason)")
        return self

    def computed_grade(self, imported_suites: frozenset[str] = frozenset()) -> Grade | None:
        """The grade of a computed gate's evidence (None for a recorded gate: each result has its own)."""
        if self.kind == "licence":
            return "declared"
        if self.kind == "min_score" and self.source is not None:
            return source_grade(self.source, imported_suites=imported_suites)
        return None


class Elimination(_Strict):
    """Who is cut on points. Gate failures are eliminated in any case.

    `ranking_pool = "all"` ranks every team, gate failures included, before applying advance_best/cut_lowest
    (a gate failure does not hand its slot to the next team, as in the 2026 stage 1); `"eligible"` ranks only
    the teams that passed every gate.
    """

    ranking_pool: Literal["all", "eligible"] = "all"
    advance_best: int | None = Field(default=None, ge=0, le=1_000_000)
    cut_lowest: int | None = Field(default=None, ge=0, le=1_000_000)
    min_total: float | None = Field(default=None, ge=0, le=MAX_POINTS, allow_inf_nan=False)
    tie_at_cut: Literal["advance_all", "eliminate_all"] = "advance_all"


class Robustness(_Strict):
    """`fragile_above`: a decision whose P(change under score uncertainty) exceeds this share is flagged fragile."""

    draws: int = Field(default=2000, ge=0, le=200_000)
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
    max_weight_change_pct: float = Field(default=100.0, gt=0, le=1000)
    fragile_above: float = Field(default=0.2, ge=0, le=1)


class PreviousDecision(_Strict):
    """`[stages.previous_decision]`: the previous stage's published decision, made elsewhere, that this stage
    continues from. `file` is relative to the program file's directory; `sha256` pins its exact bytes, so the
    programme says which decision it accepts and nobody can swap it. Reading the file is I/O and happens in
    `simsa.program.previous`, not here.
    """

    file: str = Field(min_length=1, max_length=1024)
    sha256: str = Field(pattern=SHA256_PATTERN)

    @field_validator("file")
    @classmethod
    def _relative(cls, v: str) -> str:
        if "\x00" in v or "\n" in v:
            raise ValueError("file must be a plain relative path")
        if v.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:[\\/]", v):
            raise ValueError(f"file {v!r} must be relative to the program file's directory, so that the programme "
                             "and its decision travel together")
        return v

    @field_validator("sha256")
    @classmethod
    def _lower(cls, v: str) -> str:
        return v.lower()


PANEL_SOURCE = "panel:expert"


class RubricLevel(_Strict):
    """One anchored point of a criterion's scale: the value an expert gives and what it means."""

    value: int = Field(ge=0, le=100)
    label: str = Field(min_length=1, max_length=80)
    label_ko: str | None = Field(default=None, max_length=80)
    description: str = Field(min_length=1, max_length=2000)
    description_ko: str | None = Field(default=None, max_length=2000)


class RubricCriterion(_Strict):
    """A rubric criterion with an anchored scale, so experts score against described levels rather than a bare
    1–5 (`justification`: whether a written reason is required with each score)."""

    id: str = Field(pattern=ID_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    name_ko: str | None = Field(default=None, max_length=200)
    weight: float = Field(gt=0, le=MAX_WEIGHT, allow_inf_nan=False)
    justification: Literal["required", "optional"] = "required"
    levels: list[RubricLevel] = Field(min_length=2, max_length=11)

    @model_validator(mode="after")
    def _levels_ascend(self) -> RubricCriterion:
        values = [lv.value for lv in self.levels]
        if any(b <= a for a, b in itertools.pairwise(values)):
            raise ValueError(f"rubric criterion {self.id!r}: level values must be distinct and ascending, got "
                             f"{values}")
        return self

    @property
    def low(self) -> int:
        return self.levels[0].value

    @property
    def high(self) -> int:
        return self.levels[-1].value

    def level(self, value: int) -> RubricLevel | None:
        return next((lv for lv in self.levels if lv.value == value), None)


class Calibration(_Strict):
    """`[stages.expert_panel.calibration]`: anchor documents every expert scores before live scoring, which opens
    only when their agreement reaches `threshold` (Krippendorff's α at the panel's level)."""

    anchors: list[Annotated[str, Field(pattern=ID_PATTERN)]] = Field(min_length=1, max_length=20)
    threshold: float = Field(default=0.667, ge=-1, le=1, allow_inf_nan=False)


def _aware(v: dt.datetime) -> dt.datetime:
    if v.tzinfo is None or v.utcoffset() is None:
        raise ValueError(f"submission_deadline {v.isoformat()} has no UTC offset; write it with one, e.g. "
                         "2026-01-05T18:00:00+09:00")
    return v.astimezone(dt.UTC)


class ExpertPanel(_Strict):
    """`[stages.expert_panel]`: the rubric and rules by which experts score the teams' documents; the panel's
    aggregate per team becomes the stage's `panel:expert` score when the stage is decided.

    `aggregation` combines the non-conflicted experts' totals (0–100); `counts` says whether the raw or the
    severity-adjusted aggregate is the score (both are reported); `trim` is the share cut from each end by
    `trimmed_mean`.
    """

    criteria: list[RubricCriterion] = Field(min_length=1, max_length=30)
    submission_deadline: Annotated[dt.datetime, AfterValidator(_aware)]
    min_experts: int = Field(default=5, ge=1, le=100)
    aggregation: Literal["mean", "trimmed_mean", "median"] = "mean"
    trim: float = Field(default=0.2, ge=0, lt=0.5, allow_inf_nan=False)
    counts: Literal["raw", "severity_adjusted"] = "raw"
    blinding: bool = True
    consensus_round: bool = True
    agreement_level: Literal["interval", "ordinal"] = "interval"
    calibration: Calibration | None = None
    publish_expert_names: bool = False

    @model_validator(mode="after")
    def _unique(self) -> ExpertPanel:
        ids = [c.id for c in self.criteria]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"rubric criterion id {dup[0]!r} is used twice")
        if self.calibration is not None:
            anchors = self.calibration.anchors
            dup = sorted({a for a in anchors if anchors.count(a) > 1})
            if dup:
                raise ValueError(f"calibration anchor {dup[0]!r} is listed twice")
        return self

    def criterion(self, cid: str) -> RubricCriterion:
        for c in self.criteria:
            if c.id == cid:
                return c
        raise KeyError(cid)


TIE_BREAKER_RE = re.compile(r"^(criterion:[a-z0-9][a-z0-9_\-]*|team_order|lot)$")


class Stage(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    name: str = Field(min_length=1)
    name_ko: str | None = None
    start: dt.date
    end: dt.date
    appeal_days: int = Field(default=10, ge=0, le=365)
    total_points: float | None = Field(default=None, gt=0, le=MAX_POINTS, allow_inf_nan=False)
    precision: int = Field(default=2, ge=0, le=6)
    criteria: list[Criterion] = Field(min_length=1)
    gates: list[Gate] = Field(default_factory=list)
    elimination: Elimination = Field(default_factory=Elimination)
    tie_breakers: list[str] = Field(default_factory=list)
    robustness: Robustness = Field(default_factory=Robustness)
    participants: list[Annotated[str, Field(pattern=ID_PATTERN)]] | None = Field(default=None, min_length=1)
    previous_decision: PreviousDecision | None = None
    expert_panel: ExpertPanel | None = None
    arena: Arena | None = None

    @field_validator("tie_breakers")
    @classmethod
    def _tie_breaker_syntax(cls, v: list[str]) -> list[str]:
        for item in v:
            if not TIE_BREAKER_RE.match(item):
                raise ValueError(f"unknown tie-breaker {item!r}; expected criterion:<id>, team_order or lot")
        return v

    @model_validator(mode="after")
    def _consistency(self) -> Stage:
        if self.end < self.start:
            raise ValueError(f"stage {self.id!r} ends ({self.end}) before it starts ({self.start})")
        seen: dict[str, str] = {}
        sources: dict[str, str] = {}
        for crit, _, _ in self.walk():
            if crit.id in seen:
                raise ValueError(f"criterion id {crit.id!r} is used twice in stage {self.id!r}")
            seen[crit.id] = crit.id
            if crit.source is not None:
                if crit.source in sources:
                    raise ValueError(f"source {crit.source!r} feeds both {sources[crit.source]!r} and {crit.id!r}; "
                                     "give each criterion its own source")
                sources[crit.source] = crit.id
        for tb in self.tie_breakers:
            if tb.startswith("criterion:") and tb.split(":", 1)[1] not in seen:
                raise ValueError(f"tie-breaker {tb!r} names no criterion of stage {self.id!r}"
                                 + near_names(tb, [f"criterion:{c}" for c in seen]))
        gate_ids = [g.id for g in self.gates]
        dup = {g for g in gate_ids if gate_ids.count(g) > 1}
        if dup:
            raise ValueError(f"gate id {sorted(dup)[0]!r} is used twice in stage {self.id!r}")
        if self.participants is not None:
            dup_teams = sorted({t for t in self.participants if self.participants.count(t) > 1})
            if dup_teams:
                raise ValueError(f"participant {dup_teams[0]!r} is listed twice in stage {self.id!r}")
            if self.previous_decision is not None:
                raise ValueError(f"stage {self.id!r} has both participants and previous_decision; declare who "
                                 "takes part in one way only")
        if self.expert_panel is not None and PANEL_SOURCE not in sources:
            raise ValueError(f"stage {self.id!r} has an expert_panel but no criterion with source "
                             f"{PANEL_SOURCE!r} for its scores to feed")
        if self.arena is not None and ARENA_SOURCE not in sources:
            raise ValueError(f"stage {self.id!r} has an arena but no criterion with source {ARENA_SOURCE!r} for its "
                             "scores to feed")
        if self.arena is not None:
            for kind, source in self.arena.rating_sources.items():
                if source not in sources:
                    raise ValueError(f"the arena's rating_sources.{kind} = {source!r} feeds no criterion of stage "
                                     f"{self.id!r}" + near_names(source, list(sources)))
        if self.max_points > MAX_POINTS:
            raise ValueError(f"stage {self.id!r}'s criteria sum to {self.max_points:g} points; a stage may have "
                             f"at most {MAX_POINTS:g}")
        if self.total_points is not None:
            total = sum(c.points for c in self.criteria)
            if abs(total - self.total_points) > 1e-9 * self.total_points:
                raise ValueError(f"stage {self.id!r} declares total_points {self.total_points:g} but its criteria "
                                 f"sum to {total:g}")
        return self

    def walk(self) -> Iterator[tuple[Criterion, int, str | None]]:
        for top in self.criteria:
            yield from top.walk()

    def leaves(self) -> list[Criterion]:
        return [c for c, _, _ in self.walk() if c.is_leaf]

    def criterion(self, cid: str) -> Criterion:
        for c, _, _ in self.walk():
            if c.id == cid:
                return c
        raise KeyError(cid)

    def score_sources(self) -> list[str]:
        """Every source a score may be recorded under for this stage (leaves and min_score gates)."""
        out = [c.source for c in self.leaves() if c.source]
        out += [g.source for g in self.gates if g.source and g.source not in out]
        return out

    @property
    def max_points(self) -> float:
        return float(sum(c.points for c in self.criteria))


TaskNormalisation = Literal["raw", "chance_rescaled", "one_minus", "one_minus_abs"]


class SuiteTask(_Strict):
    """One task of a benchmark suite: which metric counts, how it is put on 0–1, and its weight in the suite.

    `chance_rescaled` maps chance to 0 and a perfect score to 1, (v − chance)/(1 − chance), clipped below at 0, so
    guessing earns nothing; `one_minus` is for lower-is-better metrics on 0–1; `one_minus_abs` for signed scores
    on −1…1 where 0 is best (e.g. KoBBQ's bias scores).
    """

    task: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    metric: str = Field(default="acc", min_length=1)
    normalisation: TaskNormalisation = "raw"
    chance: float | None = Field(default=None, ge=0, lt=1, allow_inf_nan=False)
    weight: float = Field(default=1.0, gt=0, le=MAX_WEIGHT, allow_inf_nan=False)

    @model_validator(mode="after")
    def _chance_needed(self) -> SuiteTask:
        if self.normalisation == "chance_rescaled" and self.chance is None:
            raise ValueError(f"task {self.task!r}: normalisation chance_rescaled needs chance (e.g. 0.5 for two "
                             "choices)")
        return self


class Suite(_Strict):
    """A named set of benchmark tasks whose weighted, normalised metrics make one 0–1 score (source bench:<id>).

    `imported = true` declares a benchmark score computed elsewhere and brought in with `simsa score import` (no
    tasks): the source is still declared, so a misspelt `bench:` source is an error rather than a new score.
    """

    id: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    name: str = Field(min_length=1)
    name_ko: str | None = None
    imported: bool = False
    tasks: list[SuiteTask] = Field(default_factory=list)
    num_fewshot: int | None = Field(default=None, ge=0, le=1_000)
    apply_chat_template: bool = False
    limit: int | None = Field(default=None, ge=1, le=100_000_000)

    @model_validator(mode="after")
    def _unique_tasks(self) -> Suite:
        if self.imported and self.tasks:
            raise ValueError(f"suite {self.id!r} is imported (its scores come from `simsa score import`), so it "
                             "lists no tasks")
        if not self.imported and not self.tasks:
            raise ValueError(f"suite {self.id!r} lists no tasks; add [[suites.tasks]], or set imported = true for "
                             "a benchmark score brought in with `simsa score import`")
        seen = [(t.task, t.metric) for t in self.tasks]
        dup = sorted({x for x in seen if seen.count(x) > 1})
        if dup:
            raise ValueError(f"suite {self.id!r} lists task {dup[0][0]!r} metric {dup[0][1]!r} twice")
        return self


class Program(_Strict):
    program: ProgramInfo
    teams: list[Team] = Field(min_length=1)
    stages: list[Stage] = Field(min_length=1)
    suites: list[Suite] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> Program:
        for kind, items in (("team", self.teams), ("stage", self.stages), ("suite", self.suites)):
            ids = [i.id for i in items]
            dup = sorted({i for i in ids if ids.count(i) > 1})
            if dup:
                raise ValueError(f"{kind} id {dup[0]!r} is used twice")
        stage_ids = [s.id for s in self.stages]
        for team in self.teams:
            if team.joins_at is not None and team.joins_at not in stage_ids:
                raise ValueError(f"team {team.id!r} joins_at {team.joins_at!r}, which is not a stage "
                                 f"(stages: {', '.join(stage_ids)}){near_names(team.joins_at, stage_ids)}")
        for earlier, later in zip(self.stages, self.stages[1:], strict=False):
            if later.start < earlier.start:
                raise ValueError(f"stage {later.id!r} starts before the stage listed before it ({earlier.id!r})")
        self._check_gate_grades()
        return self

    @property
    def imported_suites(self) -> frozenset[str]:
        """Suites whose scores come from an outside harness (their scores are declared, not measured here)."""
        return frozenset(s.id for s in self.suites if s.imported)

    def _check_gate_grades(self) -> None:
        """A computed gate that could eliminate on evidence below its bar needs the programme's recorded reason."""
        for stage in self.stages:
            for gate in stage.gates:
                grade = gate.computed_grade(self.imported_suites)
                if grade is None or gate.weak_evidence_reason is not None:
                    continue
                why = refusal(passed=False, grade=grade, minimum=gate.min_grade,
                              what=f"gate {gate.id!r} of stage {stage.id!r}")
                if why is not None:
                    raise ValueError(f"{why}; raise the evidence (another source) or record why the programme "
                                     "accepts it in the gate's weak_evidence_reason")

    def stage(self, stage_id: str) -> Stage:
        for s in self.stages:
            if s.id == stage_id:
                return s
        raise KeyError(stage_id)

    def suite(self, suite_id: str) -> Suite:
        for s in self.suites:
            if s.id == suite_id:
                return s
        raise KeyError(suite_id)

    def team(self, team_id: str) -> Team:
        for t in self.teams:
            if t.id == team_id:
                return t
        raise KeyError(team_id)

    def stage_index(self, stage_id: str) -> int:
        return [s.id for s in self.stages].index(stage_id)
