"""The one protocol every market data source implements, and the errors they raise."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Protocol, runtime_checkable

import pandas as pd

from market.vocabulary import BAR_COLUMNS


class MarketDataError(Exception):
    """Base class of every market-data error."""


class SourceUnavailable(MarketDataError):
    """The source cannot be reached or answered nothing usable (no network, a deadline passed,
    an empty download). Never swallowed into an empty result."""


class SymbolNotAvailable(MarketDataError):
    """The source has no data for the symbol (it is not in the source's universe)."""


class NoVix(SymbolNotAvailable):
    """The source holds no VIX (a folder of files without one): the features and the regime
    labeler read the market proxy's realised-volatility fallback instead (``market.vix``)."""


class PartialFetch(SourceUnavailable):
    """Some of the requested symbols came back and some did not (Yahoo answering for part of a
    batch). ``frames`` holds the usable bars, ``refused`` each missing symbol's reason, so a
    caller can keep what arrived instead of losing the whole batch."""

    def __init__(self, message: str, frames: dict[str, pd.DataFrame], refused: dict[str, str]) -> None:
        super().__init__(message)
        self.frames, self.refused = frames, refused


class RangeClipped(UserWarning):
    """A source served less than the requested range because it holds no more (the simulated
    market's span, for one): a warning, not an error, so that callers can say so to the user."""


@dataclass(frozen=True)
class SourceInfo:
    """What a report says about where its data came from."""

    name: str
    real: bool
    provenance: str


@runtime_checkable
class MarketSource(Protocol):
    """Daily OHLCV bars per symbol for a date range, and the VIX series.

    ``fetch_bars`` returns one frame per requested symbol: a tz-naive ``DatetimeIndex`` named
    ``date`` of session dates (inclusive range), the columns of :data:`BAR_COLUMNS` as floats,
    prices adjusted for splits and dividends. ``fetch_vix`` returns the VIX close as a float
    ``Series`` named ``vix`` on the same kind of index. A source that cannot deliver raises
    :class:`SourceUnavailable` or :class:`SymbolNotAvailable`; it never returns an empty frame
    in place of an error (an empty frame is allowed only when the range holds no session).
    """

    info: SourceInfo

    def fetch_bars(
        self, symbols: Sequence[str], start: date, end: date
    ) -> dict[str, pd.DataFrame]: ...

    def fetch_vix(self, start: date, end: date) -> pd.Series: ...

    def available_symbols(self) -> tuple[str, ...] | None:
        """The symbols this source can serve, or ``None`` when it can serve any symbol."""
        ...


def empty_bars() -> pd.DataFrame:
    """A bar frame with no rows, the right columns and index."""
    index = pd.DatetimeIndex([], name="date", dtype="datetime64[ns]")
    return pd.DataFrame({c: pd.Series(dtype="float64") for c in BAR_COLUMNS}, index=index)


def conform_bars(frame: pd.DataFrame) -> pd.DataFrame:
    """Coerce a frame that already has the bar columns to the canonical layout (column order,
    float dtype, tz-naive nanosecond ``date`` index at midnight). Does not validate values."""
    index = pd.DatetimeIndex(frame.index)
    if index.tz is not None:
        index = index.tz_localize(None)
    out = frame.loc[:, list(BAR_COLUMNS)].astype("float64")
    out.index = index.normalize().astype("datetime64[ns]").rename("date")
    out.columns.name = None
    return out


def session_day(value: date | pd.Timestamp) -> pd.Timestamp:
    """A date as the tz-naive midnight timestamp bar indexes use."""
    return pd.Timestamp(value).tz_localize(None).normalize()


def date_range(start: date, end: date) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``(start, end)`` as session days; a reversed range is an error, not an empty result."""
    first, last = session_day(start), session_day(end)
    if last < first:
        raise ValueError(f"the range ends ({last.date()}) before it starts ({first.date()})")
    return first, last
