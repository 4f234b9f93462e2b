"""`[stages.arena]`: the user-review arena of a stage, as the program file declares it.

Everything that could favour one entrant is declared once for all of them — one system prompt, one set of decoding
settings, one endpoint per team — and frozen into the audit chain before voting opens, so a team cannot test many
private variants and keep the best one.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

ARENA_SOURCE = "panel:user"
RATING_KINDS = ("usefulness", "cost_efficiency")
RATING_SOURCE_RE = re.compile(r"^manual(:[A-Za-z0-9_.\-]+)?$")
ID_RE = r"^[a-z0-9][a-z0-9_\-]{0,62}$"
URL_RE = re.compile(r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
ENV_RE = r"^[A-Z_][A-Z0-9_]{0,127}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def _aware(v: dt.datetime) -> dt.datetime:
    if v.tzinfo is None or v.utcoffset() is None:
        raise ValueError(f"{v.isoformat()} has no UTC offset; write it with one, e.g. 2026-01-05T18:00:00+09:00")
    return v.astimezone(dt.UTC)


def _endpoint(v: str) -> str:
    if not URL_RE.match(v):
        raise ValueError(f"endpoint {v!r} is not an http(s) URL of an OpenAI-compatible API, e.g. "
                         "http://127.0.0.1:8101/v1")
    return v.rstrip("/")


class Entrant(_Strict):
    """One team's single variant: an OpenAI-compatible `endpoint` serving `model` (e.g. `simsa serve-model`), or a
    local `model_dir` answered in-process by transformers. `price_per_million_tokens` is the team's declared price
    of output tokens, shown to raters beside measured speed when they rate cost efficiency."""

    team: str = Field(pattern=ID_RE)
    endpoint: Annotated[str, AfterValidator(_endpoint)] | None = None
    model: str | None = Field(default=None, min_length=1, max_length=200)
    model_dir: str | None = Field(default=None, min_length=1, max_length=1000)
    api_key_env: str | None = Field(default=None, pattern=ENV_RE)
    price_per_million_tokens: float = Field(ge=0, le=1e6, allow_inf_nan=False)

    @model_validator(mode="after")
    def _one_source(self) -> Entrant:
        if (self.endpoint is None) == (self.model_dir is None):
            raise ValueError(f"entrant {self.team!r}: give exactly one of endpoint (with model) or model_dir")
        if self.endpoint is not None and self.model is None:
            raise ValueError(f"entrant {self.team!r}: an endpoint needs the model name it serves (model = \"…\")")
        return self


class Decoding(_Strict):
    """The decoding settings every entrant answers with."""

    max_tokens: int = Field(default=512, ge=1, le=32768)
    temperature: float = Field(default=0.7, ge=0, le=2, allow_inf_nan=False)
    top_p: float = Field(default=1.0, gt=0, le=1, allow_inf_nan=False)
    seed: int = Field(default=1234, ge=0, le=2**31 - 1)
    timeout_seconds: float = Field(default=120, gt=0, le=3600, allow_inf_nan=False)


class CuratedPrompt(_Strict):
    id: str = Field(pattern=ID_RE)
    category: str = Field(pattern=ID_RE)
    text: str = Field(min_length=1, max_length=8000)


class GoldItem(_Strict):
    """An attention check: a prompt with a clearly good and a clearly bad answer. A rater who prefers the bad one
    fails it; gold battles never count towards the ranking."""

    id: str = Field(pattern=ID_RE)
    prompt: str = Field(min_length=1, max_length=8000)
    good: str = Field(min_length=1, max_length=20000)
    bad: str = Field(min_length=1, max_length=20000)


class Anchor(_Strict):
    team: str = Field(pattern=ID_RE)
    rating: float = Field(ge=-1e5, le=1e5, allow_inf_nan=False)


class Arena(_Strict):
    """`[stages.arena]`: blind pairwise battles between the teams' entrants, judged by invited raters.

    `score` is what becomes `panel:user`: `expected_win_rate` (0–100, each entrant's expected share of wins against
    the field under the fitted model) or `rating` (the Elo-like 400-scale rating); `ranking` says whether the raw or
    the style-controlled fit counts (both are reported). Votes per pair are a quota the schedule fills evenly.
    `rating_sources` lets the raters' optional 1–5 ratings of each answer feed criteria of their own: each team's
    mean rating, put on 0–100, becomes that source's score at the decision.
    """

    opens: Annotated[dt.datetime, AfterValidator(_aware)]
    closes: Annotated[dt.datetime, AfterValidator(_aware)]
    system_prompt: str = Field(min_length=1, max_length=8000)
    decoding: Decoding = Field(default_factory=Decoding)
    categories: list[Annotated[str, Field(pattern=ID_RE)]] = Field(min_length=1, max_length=50)
    votes_per_pair: int = Field(default=30, ge=1, le=100000)
    daily_cap: int = Field(default=50, ge=1, le=10000)
    min_dwell_seconds: float = Field(default=5.0, ge=0, le=3600, allow_inf_nan=False)
    max_turns: int = Field(default=3, ge=1, le=20)
    near_duplicate: float = Field(default=0.8, gt=0, le=1, allow_inf_nan=False)
    gold_every: int = Field(default=10, ge=0, le=1000)
    leak_terms: list[Annotated[str, Field(min_length=3, max_length=200)]] = Field(default_factory=list,
                                                                                   max_length=500)
    score: Literal["expected_win_rate", "rating"] = "expected_win_rate"
    ranking: Literal["style_controlled", "raw"] = "style_controlled"
    bootstrap: int = Field(default=1000, ge=100, le=100000)
    seed: int = Field(default=20260101, ge=0, le=2**31 - 1)
    anchor: Anchor | None = None
    rating_sources: dict[Literal["usefulness", "cost_efficiency"], str] = Field(default_factory=dict)
    entrants: list[Entrant] = Field(min_length=2, max_length=100)
    prompts: list[CuratedPrompt] = Field(default_factory=list, max_length=10000)
    gold: list[GoldItem] = Field(default_factory=list, max_length=1000)

    @model_validator(mode="after")
    def _consistent(self) -> Arena:
        if self.closes <= self.opens:
            raise ValueError("the arena closes before it opens")
        teams = [e.team for e in self.entrants]
        dup = sorted({t for t in teams if teams.count(t) > 1})
        if dup:
            raise ValueError(f"team {dup[0]!r} has two entrants; one variant per team per stage")
        for kind, ids in (("category", self.categories), ("prompt", [p.id for p in self.prompts]),
                          ("gold item", [g.id for g in self.gold])):
            dup = sorted({i for i in ids if ids.count(i) > 1})
            if dup:
                raise ValueError(f"{kind} {dup[0]!r} is listed twice")
        for p in self.prompts:
            if p.category not in self.categories:
                raise ValueError(f"prompt {p.id!r} has category {p.category!r}, which is not in categories "
                                 f"{self.categories}")
        for kind, source in self.rating_sources.items():
            if not RATING_SOURCE_RE.match(source) or source == ARENA_SOURCE:
                raise ValueError(f"rating_sources.{kind} = {source!r}: a rating feeds a manual:<name> source (the "
                                 f"arena's ranking feeds {ARENA_SOURCE})")
        if len(set(self.rating_sources.values())) < len(self.rating_sources):
            raise ValueError("usefulness and cost_efficiency ratings cannot feed the same source")
        if self.anchor is not None and self.anchor.team not in teams:
            raise ValueError(f"anchor team {self.anchor.team!r} has no entrant")
        return self

    def entrant(self, team: str) -> Entrant:
        for e in self.entrants:
            if e.team == team:
                return e
        raise KeyError(team)

    @property
    def teams(self) -> list[str]:
        return [e.team for e in self.entrants]
