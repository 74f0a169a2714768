"""The simulated market: deterministic, prefix-stable, market-like, with a calibrated oracle."""

from __future__ import annotations

import time
import warnings
from datetime import date, timedelta
from math import sqrt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from market.calendar import nyse_sessions
from market.config import LiveStorm, SimulatorSettings
from market.sources.base import MarketSource, RangeClipped, SymbolNotAvailable
from market.sources.simulated import (
    LIVE_STORM_FALL,
    SIGNAL_LOOKBACK,
    SIGNAL_STRENGTH,
    SimulatedMarket,
    SimulatedSource,
    excess_forward_return,
    simulate_market,
)
from market.universe import Universe
from market.validation import validate_bars
from market.vocabulary import BAR_COLUMNS, Regime

ROOT = Path(__file__).resolve().parents[2]
TODAY = date(2026, 11, 24)  # pinned, so the calibration numbers below do not move with the clock
CALM = ("low_volatility", "normal", "high_volatility")
STORMY = ("crash", "recovery")
SHORT = SimulatorSettings(
    start=date(2019, 1, 2),
    end=date(2020, 6, 30),
    live_sessions=30,
    live_storm=LiveStorm(starts_after_sessions=20, sessions=5, regime=Regime.CRASH),
)


@pytest.fixture(scope="module")
def universe() -> Universe:
    config = yaml.safe_load((ROOT / "flows" / "stormwatch.yaml").read_text())
    return Universe.model_validate(config["market"]["universe"])


@pytest.fixture(scope="module")
def source(universe: Universe) -> SimulatedSource:
    return SimulatedSource(universe, SimulatorSettings(), horizon=5, today=TODAY)


@pytest.fixture(scope="module")
def timed_market(source: SimulatedSource) -> tuple[SimulatedMarket, float]:
    began = time.perf_counter()
    market = source.market()
    return market, time.perf_counter() - began


@pytest.fixture(scope="module")
def market(timed_market: tuple[SimulatedMarket, float]) -> SimulatedMarket:
    return timed_market[0]


@pytest.fixture(scope="module")
def proxy_close(market: SimulatedMarket) -> pd.Series:
    return market.bars["SPY"]["close"]


@pytest.fixture(scope="module")
def stock_closes(market: SimulatedMarket) -> pd.DataFrame:
    return pd.DataFrame({s: market.bars[s]["close"] for s in market.oracle.columns})


def _worst_fall(close: pd.Series, first: str, last: str, sessions: int = 10) -> float:
    """Worst close-to-close fall over at most ``sessions`` sessions ending inside the window."""
    c = close.to_numpy()
    inside = np.flatnonzero((close.index >= first) & (close.index <= last))
    return min(c[i] / c[i - k] - 1.0 for i in inside for k in range(1, sessions + 1) if i >= k)


def test_is_a_market_source_that_says_it_is_simulated(source: SimulatedSource) -> None:
    assert isinstance(source, MarketSource)
    assert source.info.name == "simulated" and source.info.real is False
    assert "seed 20080915" in source.info.provenance
    assert source.available_symbols()[-1] == "SPY" and "AAPL" in source.available_symbols()


def test_same_seed_same_market_other_seed_other_market(universe: Universe) -> None:
    one = simulate_market(universe, SHORT)
    two = simulate_market(universe, SHORT)
    other = simulate_market(universe, SHORT.model_copy(update={"seed": 7}))
    for symbol in ("AAPL", "SPY"):
        pd.testing.assert_frame_equal(one.bars[symbol], two.bars[symbol])
        assert not np.allclose(one.bars[symbol]["close"], other.bars[symbol]["close"])
    pd.testing.assert_series_equal(one.vix, two.vix)
    pd.testing.assert_frame_equal(one.expected_excess_return, two.expected_excess_return)


def test_prefix_stable_across_end_dates(universe: Universe) -> None:
    # The shorter history ends on 2020-03-13, inside the scripted COVID collapse (03-09..03-20).
    short = simulate_market(universe, SHORT.model_copy(update={"end": date(2020, 3, 13)}))
    long = simulate_market(universe, SHORT)
    n_history = int((short.sessions <= short.last_historical_session).sum())
    common = short.sessions[: n_history + SHORT.live_storm.starts_after_sessions]
    assert common[-1] > pd.Timestamp("2020-03-20")
    for symbol in universe.symbols + ("SPY",):
        pd.testing.assert_frame_equal(short.bars[symbol].loc[common], long.bars[symbol].loc[common])
    pd.testing.assert_series_equal(short.vix.loc[common], long.vix.loc[common])
    pd.testing.assert_series_equal(short.regimes.loc[common], long.regimes.loc[common])
    pd.testing.assert_frame_equal(
        short.expected_excess_return.loc[common], long.expected_excess_return.loc[common]
    )
    # ... and after that the live storm (forced crash) is where the two histories part.
    storm_day = short.sessions[n_history + SHORT.live_storm.starts_after_sessions]
    assert short.regimes[storm_day] == "crash" != long.regimes[storm_day]


def test_per_regime_volatility_is_ordered_and_in_bands(market: SimulatedMarket) -> None:
    returns = market.market_returns
    vol = {r: returns[market.regimes == r].std() * sqrt(252) for r in CALM + STORMY}
    assert 0.06 <= vol["low_volatility"] <= 0.12
    assert 0.11 <= vol["normal"] <= 0.19
    assert 0.20 <= vol["high_volatility"] <= 0.33
    assert 0.45 <= vol["crash"] <= 0.85
    assert 0.22 <= vol["recovery"] <= 0.50
    assert vol["low_volatility"] < vol["normal"] < vol["high_volatility"] < vol["crash"]
    # The proxy's bars carry exactly the market factor.
    proxy_returns = np.log(market.bars["SPY"]["close"]).diff().iloc[1:]
    np.testing.assert_allclose(proxy_returns, returns.iloc[1:], atol=1e-10)


@pytest.mark.parametrize(("first", "last"), [("2008-09-01", "2009-03-31"),
                                             ("2020-02-20", "2020-03-23")])
def test_scripted_crashes_fall_hard_with_vix_above_35(
    market: SimulatedMarket, proxy_close: pd.Series, first: str, last: str
) -> None:
    assert (market.regimes.loc[first:last] == "crash").all()
    assert _worst_fall(proxy_close, first, last) <= -0.15
    vix = market.vix.loc[first:last]
    assert vix.max() > 35 and (vix > 35).mean() > 0.5


def test_scripted_windows_carry_their_regimes(market: SimulatedMarket) -> None:
    assert (market.regimes.loc["2020-03-24":"2020-06-30"] == "recovery").all()
    assert (market.regimes.loc["2022-01-01":"2022-12-31"] == "high_volatility").all()
    assert (market.regimes.loc["2018-02-01":"2018-02-28"] == "crash").all()


def test_vix_tracks_volatility_and_calm_spells_sit_under_15(
    market: SimulatedMarket, proxy_close: pd.Series
) -> None:
    vix, regimes = market.vix, market.regimes
    assert (vix > 0).all()
    assert (regimes == "low_volatility").sum() > 250  # calm spells exist outside the windows
    assert (vix[regimes == "low_volatility"] < 15).mean() > 0.6
    assert 15 <= vix[regimes == "normal"].median() < 25
    realised = np.log(proxy_close).diff().rolling(21).std() * sqrt(252) * 100
    assert vix.corr(realised) > 0.7


def test_stocks_move_more_with_their_sector_than_across(market: SimulatedMarket,
                                                        universe: Universe,
                                                        stock_closes: pd.DataFrame) -> None:
    corr = np.log(stock_closes).diff().corr().to_numpy()
    sectors = np.array([universe.sector_of(s) for s in stock_closes.columns])
    same = sectors[:, None] == sectors[None, :]
    off_diagonal = ~np.eye(len(sectors), dtype=bool)
    within, across = corr[same & off_diagonal].mean(), corr[~same].mean()
    assert 0.1 < across < within - 0.05


def test_volume_rises_in_crashes(market: SimulatedMarket) -> None:
    crash, calm = market.regimes == "crash", market.regimes == "low_volatility"
    ratios = [frame["volume"][crash].mean() / frame["volume"][calm].mean()
              for frame in market.bars.values()]
    assert min(ratios) > 1.5


def test_every_frame_passes_validation(source: SimulatedSource, market: SimulatedMarket) -> None:
    frames = source.fetch_bars(source.available_symbols(), date(2005, 1, 1),
                               market.sessions[-1].date())
    assert len(frames) == 77
    for symbol, frame in frames.items():
        report = validate_bars(symbol, frame)
        assert report.rows == len(market.sessions) and report.missing_sessions == ()
        assert list(frame.columns) == list(BAR_COLUMNS)
    # Intraday ranges are wider when volatility is.
    spy = frames["SPY"]
    spread = (spy["high"] - spy["low"]) / spy["close"]
    assert spread[market.regimes == "crash"].mean() > 3 * spread[
        market.regimes == "low_volatility"].mean()


def test_oracle_accuracy_is_between_53_and_60_percent_in_every_regime(
    market: SimulatedMarket, proxy_close: pd.Series, stock_closes: pd.DataFrame
) -> None:
    label = excess_forward_return(stock_closes, proxy_close, market.betas, 5)
    labelled = label.notna().to_numpy()
    hit = (np.sign(label) == market.oracle).to_numpy()
    for regime in CALM + STORMY:
        rows = (market.regimes == regime).to_numpy()[:, None] & labelled
        assert rows.sum() > 5000, regime
        assert 0.53 <= hit[rows].mean() <= 0.60, (regime, hit[rows].mean())
    # Unbiased in size too: regressing the realised label on the expectation gives a slope ~1.
    x = market.expected_excess_return.to_numpy()[labelled]
    y = label.to_numpy()[labelled]
    assert 0.85 < float(np.dot(x, y) / np.dot(x, x)) < 1.15


def test_oracle_follows_momentum_when_calm_and_reversal_in_storms(
    market: SimulatedMarket, proxy_close: pd.Series, stock_closes: pd.DataFrame
) -> None:
    past = excess_forward_return(stock_closes, proxy_close, market.betas,
                                 SIGNAL_LOOKBACK).shift(SIGNAL_LOOKBACK)
    agree = (np.sign(past) == market.oracle).to_numpy()
    known = past.notna().to_numpy()
    for regime in CALM + STORMY:
        share = agree[(market.regimes == regime).to_numpy()[:, None] & known].mean()
        assert (share > 0.75) if regime in CALM else (share < 0.25), (regime, share)


def test_expected_return_one_session_ahead_is_kappa_times_the_observable_signal(
    universe: Universe,
) -> None:
    market = simulate_market(universe, SHORT, horizon=1)
    closes = pd.DataFrame({s: market.bars[s]["close"] for s in market.oracle.columns})
    signal = excess_forward_return(closes, market.bars["SPY"]["close"], market.betas,
                                   SIGNAL_LOOKBACK).shift(SIGNAL_LOOKBACK)
    kappa = market.regimes.map({r.value: k for r, k in SIGNAL_STRENGTH.items()}).astype(float)
    expected = signal.mul(kappa / sqrt(SIGNAL_LOOKBACK), axis=0).iloc[SIGNAL_LOOKBACK:]
    pd.testing.assert_frame_equal(market.expected_excess_return.iloc[SIGNAL_LOOKBACK:], expected,
                                  check_names=False, atol=1e-12, rtol=0)


def test_live_period_follows_today_with_the_scripted_storm(market: SimulatedMarket,
                                                           proxy_close: pd.Series) -> None:
    assert market.last_historical_session == pd.Timestamp(TODAY)
    live = market.sessions[market.sessions > market.last_historical_session]
    assert len(live) == SimulatorSettings().live_sessions == 120 and live[0] > pd.Timestamp(TODAY)
    pd.testing.assert_index_equal(live, nyse_sessions(live[0], live[-1]), check_names=False)
    storm = live[20:32]
    assert (market.regimes.loc[storm] == "crash").all()
    before = proxy_close.loc[:storm[0]].iloc[-2]
    assert proxy_close.loc[storm[9]] / before == pytest.approx(np.exp(LIVE_STORM_FALL))


def test_unknown_symbols_are_refused_by_name(source: SimulatedSource) -> None:
    with pytest.raises(SymbolNotAvailable, match=r"NOPE, \^VIX"):
        source.fetch_bars(["AAPL", "NOPE", "^VIX"], date(2020, 1, 1), date(2020, 1, 31))


def test_fetch_filters_the_date_range(source: SimulatedSource) -> None:
    first, last = date(2010, 1, 1), date(2010, 1, 31)
    frames = source.fetch_bars(["AAPL", "SPY"], first, last)
    expected = nyse_sessions(first, last)
    for frame in frames.values():
        pd.testing.assert_index_equal(frame.index, expected)
    vix = source.fetch_vix(first, last)
    assert vix.name == "vix"
    pd.testing.assert_index_equal(vix.index, expected, check_names=False)
    frames["AAPL"].iloc[0, 0] = -1.0  # a caller's edit does not reach the shared panel
    assert source.fetch_bars(["AAPL"], first, last)["AAPL"].iloc[0, 0] > 0
    weekend = source.fetch_bars(["AAPL"], date(2010, 1, 2), date(2010, 1, 3))["AAPL"]
    assert weekend.empty and list(weekend.columns) == list(BAR_COLUMNS)


def test_impossible_ranges_are_refused_as_the_other_sources_refuse_them(source: SimulatedSource) -> None:
    with pytest.raises(ValueError, match=r"ends \(2019-01-01\) before it starts \(2020-01-01\)"):
        source.fetch_bars(["AAPL"], date(2020, 1, 1), date(2019, 1, 1))
    with pytest.raises(ValueError, match="before it starts"):
        source.fetch_vix(date(2020, 1, 1), date(2019, 1, 1))
    first, last = source.span()
    beyond = last.date() + timedelta(days=30)
    with pytest.raises(SymbolNotAvailable, match=rf"runs from 2005-01-03 to {last.date()} .*lies outside it"):
        source.fetch_bars(["AAPL"], beyond, beyond + timedelta(days=30))
    with pytest.raises(SymbolNotAvailable, match="lies outside it"):
        source.fetch_vix(date(2000, 1, 3), date(2004, 12, 31))


def test_a_range_cut_to_the_simulated_span_says_so(universe: Universe) -> None:
    source = SimulatedSource(universe, SHORT, horizon=5, today=TODAY)
    first, last = source.span()
    sessions = source.market().sessions
    assert (first, last) == (sessions[0], sessions[-1]) and first == pd.Timestamp("2019-01-02")
    with pytest.warns(RangeClipped, match=rf"ends on {last.date()}, 30 live sessions after 2020-06-30: "
                                          r"the range is cut there instead of ending on 2030-01-01"):
        frames = source.fetch_bars(["AAPL"], date(2020, 1, 2), date(2030, 1, 1))
    assert frames["AAPL"].index[-1] == last
    with pytest.warns(RangeClipped, match="starts on 2019-01-02 .*instead of starting on 2018-06-01"):
        vix = source.fetch_vix(date(2018, 6, 1), date(2019, 3, 29))
    assert vix.index[0] == first
    with warnings.catch_warnings():
        warnings.simplefilter("error", RangeClipped)  # a range inside the span, or off only by a
        source.fetch_bars(["AAPL"], date(2019, 1, 1), date(2020, 1, 5))  # holiday or weekend, is quiet


def test_a_today_before_the_simulation_starts_is_refused_by_name(universe: Universe) -> None:
    with pytest.raises(ValueError, match=r"starts on 2005-01-03 \(market.sources.simulated.start\)"):
        SimulatedSource(universe, SimulatorSettings(), today=date(2004, 6, 1))


def test_ground_truth_is_long_and_excludes_the_proxy(market: SimulatedMarket) -> None:
    truth = market.ground_truth()
    assert list(truth.columns) == ["date", "symbol", "regime", "expected_excess_return",
                                   "oracle_direction"]
    assert len(truth) == len(market.sessions) * 76 and "SPY" not in set(truth["symbol"])
    assert set(truth["oracle_direction"]) == {-1, 1}
    row = truth.iloc[76 * 1000 + 3]
    assert row["symbol"] == market.oracle.columns[3]
    assert row["oracle_direction"] == market.oracle.iloc[1000, 3]
    assert row["regime"] == market.regimes.iloc[1000]


def test_default_simulation_is_memoised(
    source: SimulatedSource, timed_market: tuple[SimulatedMarket, float], universe: Universe
) -> None:
    market, _ = timed_market  # its speed is measured by `make bench`, not asserted here
    again = SimulatedSource(universe, SimulatorSettings(), horizon=5, today=TODAY)
    assert again.market() is market
