"""Safe symbols and the NYSE calendar."""

from __future__ import annotations

import pandas as pd
import pytest

from market.calendar import missing_sessions, nyse_sessions
from market.symbols import UnsafeSymbolError, check_symbol


@pytest.mark.parametrize("symbol", ["AAPL", "BRK-B", "BRK.B", "^VIX", "^GSPC", "EURUSD=X", "T", "GOOGL"])
def test_ordinary_symbols_are_accepted(symbol: str) -> None:
    assert check_symbol(symbol) == symbol


@pytest.mark.parametrize(
    "symbol",
    ["../x", "a/b", "A/B", "..", ".", "", "AAPL/../../etc", "aapl", "AAPL ", "A\\B", "-AAPL",
     "AAPL.", "TOO_LONG_SYMBOL_NAME", "A\x00B", "CON:", None, 42],
)
def test_unsafe_symbols_are_refused(symbol: object) -> None:
    with pytest.raises(UnsafeSymbolError, match="unsafe symbol"):
        check_symbol(symbol)


def test_sessions_follow_the_real_nyse_calendar() -> None:
    sessions = nyse_sessions("2008-01-01", "2026-12-31")
    assert len(sessions) == 4780  # as counted by exchange_calendars too
    assert sessions.name == "date" and sessions.tz is None
    assert pd.Timestamp("2012-10-29") not in sessions  # Hurricane Sandy
    assert pd.Timestamp("2018-12-05") not in sessions  # President Bush's funeral
    assert pd.Timestamp("2026-11-26") not in sessions  # Thanksgiving
    assert pd.Timestamp("2026-11-27") in sessions  # early close, still a session


def test_missing_sessions_between_first_and_last() -> None:
    index = pd.DatetimeIndex(["2020-03-02", "2020-03-03", "2020-03-06"])
    assert list(missing_sessions(index)) == [pd.Timestamp("2020-03-04"), pd.Timestamp("2020-03-05")]


def test_a_reversed_range_is_an_error() -> None:
    with pytest.raises(ValueError, match="ends .* before it starts"):
        nyse_sessions("2020-02-01", "2020-01-01")
