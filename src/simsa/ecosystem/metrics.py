"""The numbers a criterion can take from the hub (`source = "ecosystem:<metric>"`), each labelled with what it is.

Hub numbers are easy to misread, so every metric carries, in English and Korean, what the number counts: downloads
are the hub's count of file requests over 30 days (CI and mirrors included, not people), trending is an opaque
score the hub computes mostly from recent likes, and derivatives rest on base-model declarations that their authors
wrote themselves. A team's value is the sum over its models that were read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from simsa.ecosystem.snapshot import ModelSignals
from simsa.errors import InputError
from simsa.program.schema import near_names

SOURCE_PREFIX = "ecosystem:"

DOWNLOADS_NOTE = ("file requests counted by the hub over the last 30 days; CI jobs, mirrors and repeated pulls "
                  "count too, so it is not a number of users",
                  "허브가 집계한 최근 30일 파일 요청 수; CI·미러·반복 다운로드 포함, 사용자 수가 아님")
ALL_TIME_NOTE = ("file requests counted by the hub since the model was published; CI traffic included",
                 "모델 공개 이후 허브가 집계한 파일 요청 수; CI 트래픽 포함")
LIKES_NOTE = ("hub accounts that liked the model; one per account, easy to solicit",
              "모델에 좋아요를 누른 허브 계정 수; 계정당 1회, 요청으로 늘리기 쉬움")
TRENDING_NOTE = ("the hub's trending score: opaque, computed by the hub mostly from recent likes; not a count",
                 "허브의 트렌딩 점수: 산식 비공개, 주로 최근 좋아요로 계산; 개수가 아님")
DERIVED_NOTE = ("hub models whose cards declare this model as their base ({kinds}); declarations are "
                "self-reported by their authors and not verified",
                "이 모델을 기반 모델로 선언한 허브 모델 수({kinds}); 선언은 작성자 자기 신고이며 검증되지 않음")
BASE_NOTE = ("declared in the model card by its authors (self-reported, not verified)",
             "모델 카드에 작성자가 선언(자기 신고, 검증되지 않음)")


@dataclass(frozen=True)
class Metric:
    """One metric: its name, its labels (what the number is) in English and Korean, and how a model gives it."""

    name: str
    name_en: str
    name_ko: str
    note_en: str
    note_ko: str
    read: Callable[[ModelSignals], float | None]

    @property
    def source(self) -> str:
        return SOURCE_PREFIX + self.name

    def label(self, lang: str = "en") -> str:
        """"name — what it is", in `lang` (`en`, `ko` or `both`)."""
        en, ko = f"{self.name_en} — {self.note_en}", f"{self.name_ko} — {self.note_ko}"
        return {"en": en, "ko": ko}.get(lang, f"{en} / {ko}")

    def team_value(self, models: Sequence[ModelSignals]) -> float | None:
        """The sum over the team's models that carry the number; None when none does."""
        values = [v for v in (self.read(m) for m in models) if v is not None]
        return float(sum(values)) if values else None


def _derived(*kinds: str) -> Callable[[ModelSignals], float | None]:
    return lambda m: float(sum(m.derivatives.get(k, 0) for k in kinds))


def _field(name: str) -> Callable[[ModelSignals], float | None]:
    def read(m: ModelSignals) -> float | None:
        value = getattr(m, name)
        return None if value is None else float(value)

    return read


def _derived_metric(name: str, en: str, ko: str, *kinds: str) -> Metric:
    listed = ", ".join(kinds)
    return Metric(name, en, ko, DERIVED_NOTE[0].format(kinds=listed), DERIVED_NOTE[1].format(kinds=listed),
                  _derived(*kinds))


_ALL = (
    Metric("downloads_30d", "Downloads (30 days)", "다운로드(30일)", *DOWNLOADS_NOTE, _field("downloads_30d")),
    Metric("downloads_all_time", "Downloads (all time)", "누적 다운로드", *ALL_TIME_NOTE,
           _field("downloads_all_time")),
    Metric("likes", "Likes", "좋아요", *LIKES_NOTE, _field("likes")),
    Metric("trending_score", "Trending score", "트렌딩 점수", *TRENDING_NOTE, _field("trending_score")),
    _derived_metric("derivatives", "Derivative models", "파생 모델", "finetune", "adapter", "quantized", "merge"),
    _derived_metric("finetunes", "Fine-tunes", "파인튜닝 모델", "finetune"),
    _derived_metric("adapters", "Adapters", "어댑터", "adapter"),
    _derived_metric("quantizations", "Quantisations", "양자화 모델", "quantized"),
    _derived_metric("merges", "Merges", "병합 모델", "merge"),
)
METRICS: dict[str, Metric] = {m.name: m for m in _ALL}
KIND_LABELS: dict[str, tuple[str, str]] = {"finetune": ("fine-tunes", "파인튜닝"), "adapter": ("adapters", "어댑터"),
                                           "quantized": ("quantisations", "양자화"), "merge": ("merges", "병합")}


def metric(name: str) -> Metric:
    """The metric called `name` (with or without the `ecosystem:` prefix); an unknown one is an input error."""
    bare = name.removeprefix(SOURCE_PREFIX)
    found = METRICS.get(bare)
    if found is None:
        raise InputError(f"unknown ecosystem metric {bare!r}{near_names(bare, list(METRICS))} "
                         f"(metrics: {', '.join(METRICS)})")
    return found


def is_ecosystem_source(source: str | None) -> bool:
    return bool(source) and str(source).startswith(SOURCE_PREFIX)
