"""The ``market`` section of ``stormwatch.yaml``: universe, labels and data sources."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from market.symbols import check_symbol
from market.universe import Universe
from market.vix import VixFallback
from market.vocabulary import Regime


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LiveStorm(_Section):
    """A storm scripted into the simulated live period (after today), for the monitor and demo."""

    starts_after_sessions: int = Field(20, ge=0)
    sessions: int = Field(12, ge=1)
    regime: Regime = Regime.CRASH


class SimulatorSettings(_Section):
    """The embedded simulated market (see ``market.sources.simulated``)."""

    seed: int = 20080915
    start: date = date(2005, 1, 3)
    #: Last historical session; ``None`` means today.
    end: date | None = None
    #: Simulated sessions after ``end`` (the "live" period the monitor walks through).
    live_sessions: int = Field(120, ge=0)
    live_storm: LiveStorm | None = LiveStorm()

    @model_validator(mode="after")
    def _storm_fits(self) -> SimulatorSettings:
        if self.end is not None and self.end < self.start:
            raise ValueError(f"end ({self.end}) precedes start ({self.start})")
        storm = self.live_storm
        if storm is not None and storm.starts_after_sessions + storm.sessions > self.live_sessions:
            raise ValueError(
                f"live_storm ends after session {storm.starts_after_sessions + storm.sessions} "
                f"but live_sessions is {self.live_sessions}"
            )
        return self


class YFinanceSettings(_Section):
    """Yahoo Finance through yfinance: batching, retries and the overall deadline."""

    batch_size: int = Field(25, ge=1)
    max_retries: int = Field(4, ge=0)
    backoff_seconds: float = Field(2.0, gt=0)
    #: Whole-call deadline. yfinance's own ``timeout`` does not bound a call (offline it can
    #: wait 130 s per symbol), so the adapter enforces this itself.
    deadline_seconds: float = Field(90.0, gt=0)


class CsvSettings(_Section):
    """A directory of per-symbol ``SYMBOL.csv`` or ``SYMBOL.parquet`` files: the folder is the
    universe (``market.sources.csv_source``)."""

    directory: Path | None = None
    #: The file (symbol) of the market proxy; ``None``: ``market.universe.market_proxy``.
    market_proxy: str | None = None

    @field_validator("market_proxy")
    @classmethod
    def _safe_proxy(cls, value: str | None) -> str | None:
        return None if value is None else check_symbol(value)


class SourcesSettings(_Section):
    default: Literal["simulated", "bundled", "csv", "yfinance"] = "simulated"
    simulated: SimulatorSettings = SimulatorSettings()
    yfinance: YFinanceSettings = YFinanceSettings()
    csv: CsvSettings = CsvSettings()


class LabelSettings(_Section):
    """Forward-return direction labels (see SPEC.md, Features and labels)."""

    horizon: int = Field(5, ge=1, le=60)
    #: ``excess``: forward return minus beta times the market's; ``total``: raw forward return.
    kind: Literal["excess", "total"] = "excess"
    beta_lookback: int = Field(252, ge=20)
    #: ``null``: the direction at t + horizon. A number: a triple-barrier label with barriers at
    #: that many volatilities (20-session daily vol x sqrt(horizon)) above and below.
    triple_barrier: float | None = Field(None, gt=0)


class MarketConfig(_Section):
    """Everything ``market`` needs: where bars come from, which symbols, how they are labelled."""

    history_start: date = date(2005, 1, 3)
    universe: Universe
    labels: LabelSettings = LabelSettings()
    sources: SourcesSettings = SourcesSettings()
    #: The VIX where it is missing, for the features and the regime labeler alike (one setting,
    #: so both read the same VIX); the defaults are the map fitted on real history.
    vix_fallback: VixFallback = VixFallback()
    #: Symbols whose features and labels are computed together: memory is one chunk's
    #: intermediates plus the output, whatever the universe's size; values never depend on it.
    feature_chunk_symbols: int = Field(64, ge=1)
