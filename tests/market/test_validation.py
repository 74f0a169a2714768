"""Every bar rule rejects its bad case, naming the symbol, date, column and rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from market.validation import BarValidationError, validate_bars


def good_bars() -> pd.DataFrame:
    index = pd.DatetimeIndex(pd.to_datetime(["2024-03-04", "2024-03-05", "2024-03-06", "2024-03-07"]),
                             name="date")
    return pd.DataFrame(
        {"open": [10.0, 10.5, 10.2, 10.8], "high": [10.9, 10.8, 10.9, 11.0],
         "low": [9.8, 10.1, 10.0, 10.5], "close": [10.4, 10.3, 10.7, 10.9],
         "volume": [1e6, 1.2e6, 0.0, 9e5]},
        index=index,
    )


def test_good_bars_pass_with_a_report() -> None:
    report = validate_bars("ACME", good_bars())
    assert (report.rows, report.first, report.last) == (4, pd.Timestamp("2024-03-04"), pd.Timestamp("2024-03-07"))
    assert report.missing_sessions == ()


def test_missing_sessions_are_reported_not_refused() -> None:
    bars = good_bars().drop(pd.Timestamp("2024-03-05"))
    assert validate_bars("ACME", bars).missing_sessions == (pd.Timestamp("2024-03-05"),)


def _break(column: str, row: int, value: float) -> pd.DataFrame:
    bars = good_bars()
    bars.iloc[row, bars.columns.get_loc(column)] = value
    return bars


@pytest.mark.parametrize(
    ("bars", "date", "column", "rule"),
    [
        (_break("close", 2, -1.0), "2024-03-06", "close", "prices must be positive"),
        (_break("open", 1, 0.0), "2024-03-05", "open", "prices must be positive"),
        (_break("high", 3, 10.85), "2024-03-07", "high", "high >= max(open, close)"),
        (_break("low", 0, 10.45), "2024-03-04", "low", "low <= min(open, close)"),
        (_break("volume", 1, -5.0), "2024-03-05", "volume", "volume >= 0"),
        (_break("close", 2, np.nan), "2024-03-06", "close", "values must be finite numbers"),
        (_break("volume", 3, np.inf), "2024-03-07", "volume", "values must be finite numbers"),
        (good_bars().iloc[[0, 2, 1, 3]], "2024-03-05", "date", "dates must be sorted ascending"),
        (good_bars().iloc[[0, 1, 1, 2]], "2024-03-05", "date", "dates must be unique"),
    ],
)
def test_each_rule_names_symbol_date_column_and_rule(bars: pd.DataFrame, date: str, column: str,
                                                      rule: str) -> None:
    with pytest.raises(BarValidationError) as error:
        validate_bars("ACME", bars)
    assert (error.value.symbol, error.value.date, error.value.column, error.value.rule) == (
        "ACME", pd.Timestamp(date), column, rule)
    assert str(error.value) == f"ACME: {column} on {date} breaks the rule: {rule}"


def test_the_earliest_violation_is_reported() -> None:
    bars = good_bars()
    bars.loc[pd.Timestamp("2024-03-07"), "close"] = -2.0
    bars.loc[pd.Timestamp("2024-03-05"), "close"] = -1.0
    with pytest.raises(BarValidationError, match="2024-03-05"):
        validate_bars("ACME", bars)


def test_missing_columns_and_non_date_index_are_refused() -> None:
    with pytest.raises(BarValidationError, match="volume .*the bar columns must be present"):
        validate_bars("ACME", good_bars().drop(columns="volume"))
    with pytest.raises(BarValidationError, match="the index must hold dates"):
        validate_bars("ACME", good_bars().reset_index(drop=True))
