"""NYSE trading sessions, from pandas_market_calendars (holidays, special closures such as
Hurricane Sandy and national days of mourning, future sessions included)."""

from __future__ import annotations

from datetime import date
from functools import lru_cache

import pandas as pd


def _as_timestamp(day: date | str | pd.Timestamp) -> pd.Timestamp:
    return pd.Timestamp(day).tz_localize(None).normalize()


@lru_cache(maxsize=64)
def _sessions(start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    import pandas_market_calendars as mcal  # imported lazily: ~0.3 s

    days = mcal.get_calendar("NYSE").valid_days(start, end)
    index = pd.DatetimeIndex(days.tz_localize(None).normalize().astype("datetime64[ns]"))
    return index.rename("date")


def nyse_sessions(start: date | str | pd.Timestamp, end: date | str | pd.Timestamp) -> pd.DatetimeIndex:
    """NYSE sessions in ``[start, end]`` as a tz-naive ``DatetimeIndex`` named ``date``.

    >>> list(nyse_sessions("2012-10-26", "2012-11-01").strftime("%m-%d"))  # Sandy closed Oct 29-30
    ['10-26', '10-31', '11-01']
    """
    first, last = _as_timestamp(start), _as_timestamp(end)
    if last < first:
        raise ValueError(f"calendar range ends ({last.date()}) before it starts ({first.date()})")
    return _sessions(first, last)


def missing_sessions(index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """NYSE sessions between the first and last date of ``index`` that ``index`` lacks."""
    if len(index) == 0:
        return pd.DatetimeIndex([], name="date", dtype="datetime64[ns]")
    expected = nyse_sessions(index.min(), index.max())
    return expected.difference(pd.DatetimeIndex(index).normalize()).rename("date")
