"""Validation of daily bars, whatever their source.

Every frame that enters the cache passes through :func:`validate_bars` first, so a bad bar is
refused before it can overwrite good data. An error names the symbol, the date, the column and
the rule, because "invalid data" alone sends a user bisecting a 5,000-row file by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from market.calendar import missing_sessions
from market.sources.base import MarketDataError
from market.vocabulary import BAR_COLUMNS, PRICE_COLUMNS


class BarValidationError(MarketDataError):
    """A bar breaks a rule. ``date`` is ``None`` for a rule about the whole frame."""

    def __init__(self, symbol: str, date: pd.Timestamp | None, column: str, rule: str) -> None:
        self.symbol, self.date, self.column, self.rule = symbol, date, column, rule
        where = f"on {date.date()}" if date is not None else "in the frame"
        super().__init__(f"{symbol}: {column} {where} breaks the rule: {rule}")


@dataclass(frozen=True)
class BarReport:
    """What validation found that is worth saying but is not an error."""

    symbol: str
    rows: int
    first: pd.Timestamp | None
    last: pd.Timestamp | None
    missing_sessions: tuple[pd.Timestamp, ...]


def _first_bad(symbol: str, frame: pd.DataFrame, bad: pd.Series, column: str, rule: str) -> None:
    if bad.any():
        raise BarValidationError(symbol, frame.index[bad.to_numpy().argmax()], column, rule)


def validate_bars(symbol: str, frame: pd.DataFrame) -> BarReport:
    """Check ``frame`` against the bar rules and return a report, or raise
    :class:`BarValidationError` at the first (earliest) violation.

    Rules: the bar columns are present; dates are a sorted, unique ``DatetimeIndex``; every
    value is a finite number; prices are positive; ``high >= max(open, close)``;
    ``low <= min(open, close)``; ``volume >= 0``. NYSE sessions absent between the first and last
    date are reported, not refused: real histories have halts and the caller decides.

    >>> frame = pd.DataFrame({"open": [10.0], "high": [9.0], "low": [8.0], "close": [9.5],
    ...                       "volume": [100.0]}, index=pd.to_datetime(["2020-01-02"]))
    >>> validate_bars("XYZ", frame)
    Traceback (most recent call last):
    ...
    market.validation.BarValidationError: XYZ: high on 2020-01-02 breaks the rule: high >= max(open, close)
    """
    absent = [c for c in BAR_COLUMNS if c not in frame.columns]
    if absent:
        raise BarValidationError(symbol, None, ", ".join(absent), "the bar columns must be present")
    if not isinstance(frame.index, pd.DatetimeIndex):
        raise BarValidationError(symbol, None, "date", "the index must hold dates")
    dates = frame.index
    duplicated = dates.duplicated()
    if duplicated.any():
        raise BarValidationError(symbol, dates[duplicated.argmax()], "date", "dates must be unique")
    steps = np.diff(dates.asi8)
    if (steps < 0).any():
        raise BarValidationError(symbol, dates[int((steps < 0).argmax()) + 1], "date",
                                 "dates must be sorted ascending")
    for column in BAR_COLUMNS:
        values = pd.to_numeric(frame[column], errors="coerce")
        _first_bad(symbol, frame, ~np.isfinite(values.astype("float64")), column,
                   "values must be finite numbers")
    for column in PRICE_COLUMNS:
        _first_bad(symbol, frame, frame[column] <= 0, column, "prices must be positive")
    top = np.maximum(frame["open"], frame["close"])
    bottom = np.minimum(frame["open"], frame["close"])
    _first_bad(symbol, frame, frame["high"] < top, "high", "high >= max(open, close)")
    _first_bad(symbol, frame, frame["low"] > bottom, "low", "low <= min(open, close)")
    _first_bad(symbol, frame, frame["volume"] < 0, "volume", "volume >= 0")
    gaps = missing_sessions(dates)
    return BarReport(
        symbol=symbol,
        rows=len(frame),
        first=dates[0] if len(dates) else None,
        last=dates[-1] if len(dates) else None,
        missing_sessions=tuple(gaps),
    )
