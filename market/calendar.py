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


def last_closed_session(now: pd.Timestamp | None = None) -> pd.Timestamp:
    """The latest NYSE session whose close (early closes included) is at or before ``now``.

    ``now`` is a moment in time (UTC when tz-naive; default: the clock). A bar of a session
    still trading is partial: its close changes until 16:00 New York time (13:00 on an early
    close), so a source that serves live data must not go past this day.

    >>> str(last_closed_session(pd.Timestamp("2026-11-27 17:59", tz="UTC")).date())  # closes 18:00 UTC
    '2026-11-25'
    >>> str(last_closed_session(pd.Timestamp("2026-11-27 18:00", tz="UTC")).date())
    '2026-11-27'
    """
    import pandas_market_calendars as mcal  # imported lazily: ~0.3 s

    moment = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    moment = moment.tz_localize("UTC") if moment.tz is None else moment.tz_convert("UTC")
    day = moment.tz_localize(None).normalize()
    schedule = mcal.get_calendar("NYSE").schedule(day - pd.Timedelta(days=14), day)
    closed = schedule.index[schedule["market_close"] <= moment]
    return pd.Timestamp(closed[-1]).tz_localize(None).normalize()
