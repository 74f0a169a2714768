"""The signal backtest earns what a known signal should, pays for its turnover, and no more."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.backtest import signal_backtest
from tests.panels import prediction_book


@pytest.fixture(scope="module")
def book() -> pd.DataFrame:
    return prediction_book()


def test_a_signal_that_knows_the_sign_earns_and_a_coin_does_not(book: pd.DataFrame) -> None:
    dates, symbols = book.index.get_level_values("date"), book.index.get_level_values("symbol")
    clairvoyant = 0.5 + 0.1 * np.sign(book["r"].to_numpy())
    coin = np.random.default_rng(2).uniform(0.4, 0.6, len(book))
    good = signal_backtest(dates, symbols, clairvoyant, book["r"], book["regime"], cost_bps=0.0).summary
    bad = signal_backtest(dates, symbols, coin, book["r"], book["regime"], cost_bps=0.0).summary
    assert good.loc["overall", "sharpe"] > 10 and good.loc["overall", "hit_rate"] > 0.95
    assert good.loc["overall", "rank_ic"] > 0.5 and abs(bad.loc["overall", "rank_ic"]) < 0.05
    assert abs(bad.loc["overall", "sharpe"]) < 2.5
    assert {"normal", "crash"} <= set(good.index)


def test_costs_are_charged_on_turnover(book: pd.DataFrame) -> None:
    dates, symbols = book.index.get_level_values("date"), book.index.get_level_values("symbol")
    flipping = np.random.default_rng(3).uniform(0.4, 0.6, len(book))
    free = signal_backtest(dates, symbols, flipping, book["r"], book["regime"], cost_bps=0.0)
    costly = signal_backtest(dates, symbols, flipping, book["r"], book["regime"], cost_bps=10.0)
    assert (costly.daily["cost"] > 0).all()
    np.testing.assert_allclose(costly.daily["net"], free.daily["gross"] - costly.daily["cost"])
    assert costly.summary.loc["overall", "annual_return"] < free.summary.loc["overall", "annual_return"]
