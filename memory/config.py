"""The ``memory`` section of ``stormwatch.yaml``: the rare-event archive and the replay buffer."""

from __future__ import annotations

from datetime import date

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
    """The bounded buffer of the model's worst mistakes (SPEC.md module 8)."""

    worst_fraction: float = Field(0.05, gt=0, le=1)
    capacity: int = Field(20_000, ge=1)
    max_age_days: int = Field(730, ge=1)
    max_share_of_training: float = Field(0.10, gt=0, le=1)
    max_row_weight: float = Field(3.0, ge=1)


class MemoryConfig(_Section):
    archive: ArchiveConfig
    replay: ReplayConfig = ReplayConfig()
