"""BundledSource: the real history inside arch and bokeh-sampledata, adjusted, validated, offline."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from market.calendar import nyse_sessions
from market.sources.base import MarketSource, SymbolNotAvailable
from market.sources.bundled import BundledSource, bundled_universe
from market.symbols import UnsafeSymbolError
from market.validation import validate_bars
from market.vocabulary import BAR_COLUMNS, Sector

ROOT = Path(__file__).resolve().parents[2]
EVERYTHING = (date(1990, 1, 1), date(2030, 1, 1))

#: symbol -> (first date, last date, rows)
SPANS = {
    "^GSPC": ("1999-01-04", "2018-12-31", 5031),
    "^IXIC": ("1999-01-04", "2018-12-31", 5031),
    "AAPL": ("2000-03-01", "2013-03-01", 3270),
    "IBM": ("2000-03-01", "2013-03-01", 3270),
    "MSFT": ("2000-03-01", "2013-03-01", 3270),
    "GOOG": ("2004-08-19", "2013-03-01", 2148),
}


@pytest.fixture(scope="module")
def source() -> BundledSource:
    return BundledSource()


def raw_wiki(symbol: str) -> pd.DataFrame:
    """The unadjusted WIKI rows as the package ships them."""
    from bokeh_sampledata import stocks

    frame = pd.DataFrame(getattr(stocks, symbol))
    frame.index = pd.to_datetime(frame.pop("date"))
    return frame


@pytest.mark.parametrize("symbol", list(SPANS))
def test_each_series_has_its_range_passes_validation_and_matches_nyse_sessions(
    source: BundledSource, symbol: str
) -> None:
    bars = source.fetch_bars([symbol], *EVERYTHING)[symbol]
    first, last, rows = SPANS[symbol]
    assert (bars.index[0], bars.index[-1], len(bars)) == (pd.Timestamp(first), pd.Timestamp(last), rows)
    assert list(bars.columns) == list(BAR_COLUMNS) and (bars.dtypes == "float64").all()
    assert bars.index.name == "date" and bars.index.dtype == "datetime64[ns]"
    report = validate_bars(symbol, bars)
    assert report.missing_sessions == ()
    assert bars.index.equals(nyse_sessions(first, last))  # no gap and no non-session date
    assert source.reports()[symbol].rows == rows


def test_the_source_satisfies_the_protocol_and_says_it_is_real(source: BundledSource) -> None:
    assert isinstance(source, MarketSource)
    assert source.info.real is True
    for name in ("arch", "bokeh-sampledata", "Quandl WIKI", "public domain"):
        assert name in source.info.provenance
    assert source.available_symbols() == ("^GSPC", "^IXIC", "AAPL", "IBM", "MSFT", "GOOG")


@pytest.mark.parametrize(("symbol", "split_day"), [
    ("AAPL", "2000-06-21"),  # 2-for-1
    ("AAPL", "2005-02-28"),  # 2-for-1
    ("MSFT", "2003-02-18"),  # 2-for-1
])
def test_splits_inside_the_range_are_adjusted_away(
    source: BundledSource, symbol: str, split_day: str
) -> None:
    raw = raw_wiki(symbol)["close"].pct_change()
    assert raw.loc[split_day] < -0.4  # the package's prices are unadjusted: the split halves them
    adjusted = source.fetch_bars([symbol], *EVERYTHING)[symbol]
    for column in ("open", "high", "low", "close"):
        # What is left is the day's real move (AAPL closed +9.9 % on 2000-06-21).
        assert abs(adjusted[column].pct_change().loc[split_day]) < 0.11


def test_a_real_crash_survives_the_adjustment(source: BundledSource) -> None:
    # 2000-09-29: Apple's profit warning, -52 % in a day. Not a split: it must stay.
    adjusted = source.fetch_bars(["AAPL"], *EVERYTHING)["AAPL"]["close"].pct_change()
    assert adjusted.loc["2000-09-29"] == pytest.approx(-0.5187, abs=1e-3)


def test_all_four_prices_are_scaled_by_adj_close_over_close(source: BundledSource) -> None:
    raw = raw_wiki("IBM").loc["2008-10-10"]
    bars = source.fetch_bars(["IBM"], date(2008, 10, 10), date(2008, 10, 10))["IBM"].iloc[0]
    factor = raw["adj_close"] / raw["close"]
    assert factor < 1.0  # dividends paid since then
    for column in ("open", "high", "low", "close"):
        assert bars[column] == pytest.approx(raw[column] * factor, rel=1e-12)
    assert bars["close"] == pytest.approx(raw["adj_close"], rel=1e-12)
    assert bars["volume"] == raw["volume"]  # volume as traded


def test_a_range_is_inclusive_and_clipped_to_what_exists(source: BundledSource) -> None:
    week = source.fetch_bars(["GOOG", "^IXIC"], date(2008, 10, 6), date(2008, 10, 10))
    assert [len(frame) for frame in week.values()] == [5, 5]
    early = source.fetch_bars(["GOOG"], date(2004, 1, 1), date(2004, 8, 31))["GOOG"]
    assert early.index[0] == pd.Timestamp("2004-08-19")  # the IPO: real missing history
    weekend = source.fetch_bars(["AAPL"], date(2008, 10, 11), date(2008, 10, 12))["AAPL"]
    assert weekend.empty and list(weekend.columns) == list(BAR_COLUMNS)


def test_returned_frames_are_copies(source: BundledSource) -> None:
    first = source.fetch_bars(["MSFT"], date(2010, 1, 4), date(2010, 1, 8))["MSFT"]
    first.loc[:, "close"] = -1.0
    again = source.fetch_bars(["MSFT"], date(2010, 1, 4), date(2010, 1, 8))["MSFT"]
    assert (again["close"] > 0).all()


def test_the_vix_range_and_its_dropped_holiday_rows(source: BundledSource) -> None:
    vix = source.fetch_vix(*EVERYTHING)
    assert vix.name == "vix" and vix.index.name == "date" and vix.dtype == "float64"
    assert (vix.index[0], vix.index[-1], len(vix)) == (
        pd.Timestamp("2014-01-03"), pd.Timestamp("2019-01-03"), 1259)
    assert not vix.isna().any() and (vix > 0).all()
    assert vix.index.equals(nyse_sessions("2014-01-03", "2019-01-03"))
    assert vix.loc["2018-02-05"] == pytest.approx(37.32)  # "Volmageddon"


def test_the_vix_is_what_exists_in_the_range(source: BundledSource) -> None:
    assert source.fetch_vix(date(2008, 1, 1), date(2008, 12, 31)).empty  # before 2014: none
    partial = source.fetch_vix(date(2013, 12, 1), date(2014, 1, 10))
    assert list(partial.index.strftime("%m-%d")) == ["01-03", "01-06", "01-07", "01-08", "01-09", "01-10"]


def test_a_symbol_not_bundled_is_refused_with_what_is_available(source: BundledSource) -> None:
    with pytest.raises(SymbolNotAvailable, match=r"TSLA is not bundled; available: \^GSPC, \^IXIC, "
                                                 r"AAPL, IBM, MSFT, GOOG"):
        source.fetch_bars(["AAPL", "TSLA"], date(2010, 1, 4), date(2010, 1, 8))
    with pytest.raises(SymbolNotAvailable, match="the VIX is served by fetch_vix"):
        source.fetch_bars(["^VIX"], date(2015, 1, 5), date(2015, 1, 9))
    with pytest.raises(UnsafeSymbolError):
        source.fetch_bars(["../AAPL"], date(2010, 1, 4), date(2010, 1, 8))


def test_a_range_outside_a_series_is_refused(source: BundledSource) -> None:
    with pytest.raises(SymbolNotAvailable, match=r"AAPL is bundled only from 2000-03-01 to 2013-03-01"):
        source.fetch_bars(["AAPL"], date(2015, 1, 5), date(2015, 1, 9))
    with pytest.raises(ValueError, match="ends"):
        source.fetch_bars(["AAPL"], date(2010, 1, 8), date(2010, 1, 4))


def test_the_bundled_universe() -> None:
    universe = bundled_universe()
    assert universe.symbols == ("AAPL", "IBM", "MSFT", "GOOG")
    assert universe.sector_of("GOOG") is Sector.COMMUNICATION_SERVICES
    assert {universe.sector_of(s) for s in ("AAPL", "IBM", "MSFT")} == {Sector.INFORMATION_TECHNOLOGY}
    assert (universe.market_proxy, universe.vix_symbol) == ("^GSPC", "^VIX")
    assert set(universe.symbols) | {universe.market_proxy} <= set(BundledSource().available_symbols())


def test_loading_needs_no_network() -> None:
    """A fresh interpreter in which every socket operation fails still loads everything."""
    script = textwrap.dedent("""
        import socket

        def refuse(*args, **kwargs):
            raise OSError("network used")

        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse

        from datetime import date
        from market.sources.bundled import BundledSource

        source = BundledSource()
        bars = source.fetch_bars(list(source.available_symbols()), date(1990, 1, 1), date(2030, 1, 1))
        vix = source.fetch_vix(date(1990, 1, 1), date(2030, 1, 1))
        print(sum(len(frame) for frame in bars.values()), len(vix))
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(sum(span[2] for span in SPANS.values())), "1259"]
