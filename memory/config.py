"""The ``memory`` section of ``stormwatch.yaml``: the rare-event archive and the replay buffer."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from market.checks import SemVer, check_shares_sum_to_one
from market.vocabulary import Regime


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ArchiveEvent(_Section):
    """One rare event: its window, the regime it stands for and its share of archive weight."""

    name: str = Field(min_length=1)
    start: date
    end: date
    regime: Regime
    weight: float = Field(gt=0, le=1)

    @model_validator(mode="after")
    def _window_in_order(self) -> ArchiveEvent:
        if self.end < self.start:
            raise ValueError(f"event {self.name!r}: end {self.end} precedes start {self.start}")
        return self


class ArchiveConfig(_Section):
    """The archive's events, versioned: a changed event list must come with a new version."""

    version: SemVer = "1.1.0"
    events: tuple[ArchiveEvent, ...]

    @model_validator(mode="after")
    def _events_consistent(self) -> ArchiveConfig:
        names = [e.name for e in self.events]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"event names listed more than once: {repeated}")
        check_shares_sum_to_one({e.name: e.weight for e in self.events}, "event weights")
        return self


class ReplayConfig(_Section):
    """The bounded buffer of the model's worst mistakes (SPEC.md module 8).

    ``noise_quantile``: a row whose absolute forward return lies in the lowest share of the
    scored rows is never admitted: its label is a coin flip, so a confident miss on it teaches
    nothing (the worst 5% by loss alone is mostly such noise, ``notes/methods.md`` section 5).
    ``max_regime_share``: no regime holds more than this share of the capacity, so that one
    storm's errors cannot crowd out the rest. ``weight_multiplier``: a replayed row's regime
    weight is multiplied by it, and the product capped at ``max_row_weight``.
    """

    worst_fraction: float = Field(0.05, gt=0, le=1)
    capacity: int = Field(20_000, ge=1)
    max_age_days: int = Field(730, ge=1)
    max_share_of_training: float = Field(0.10, gt=0, le=1)
    max_row_weight: float = Field(3.0, ge=1)
    weight_multiplier: float = Field(1.5, ge=1)
    noise_quantile: float = Field(0.2, ge=0, lt=1)
    max_regime_share: float = Field(0.5, gt=0, le=1)


class HybridConfig(_Section):
    """How the hybrid training set is assembled from the window, the archive and the replay
    buffer (``memory/hybrid.py``).

    ``archive_rows``: at most how many archive rows a training set takes (fewer when the archive
    holds fewer), redistributed so that each event's share of them follows its configured weight
    (events short of their share are drawn with replacement, long ones without); ``all`` takes
    as many as the archive holds. The
    default bounds the set: regime balancing keeps every crash row at its 10% target, so the
    balanced set grows with the archive's crash rows (about 120,000 rows at 24,000).
    ``archive_regime``: the regime of an archive row, either its event's configured regime
    (``event``, a hindsight judgement) or what the causal labeler said that day (``labeler``).
    """

    archive_rows: Literal["all"] | int = 24_000
    archive_regime: Literal["event", "labeler"] = "event"
    seed: int = 0

    @model_validator(mode="after")
    def _positive_rows(self) -> HybridConfig:
        if isinstance(self.archive_rows, int) and self.archive_rows < 1:
            raise ValueError(f"archive_rows must be 'all' or a positive count, got {self.archive_rows}")
        return self


class MemoryConfig(_Section):
    archive: ArchiveConfig
    replay: ReplayConfig = ReplayConfig()
    hybrid: HybridConfig = HybridConfig()
