"""Real daily history shipped inside PyPI wheels: no network, no files of our own.

What is bundled, and where it comes from:

* ``^GSPC`` and ``^IXIC``: the S&P 500 and NASDAQ Composite indices, daily OHLCV,
  1999-01-04 to 2018-12-31 (5,031 sessions each), from ``arch.data.sp500`` and
  ``arch.data.nasdaq`` (package ``arch``, NCSA licence). The package does not name its vendor.
  Index levels need no adjustment (their ``Adj Close`` equals ``Close``).
* VIX close: 2014-01-03 to 2019-01-03 from ``arch.data.vix``. The file is on a business-day
  index with 46 empty (NaN) rows, every one on an NYSE holiday; those rows are dropped, which
  leaves 1,259 values, exactly the NYSE sessions of that span. There is **no VIX before 2014**
  here, so it does not overlap the bundled stocks (2000-2013): :meth:`BundledSource.fetch_vix`
  returns what exists (possibly nothing) and the regime labeler falls back.
* ``AAPL``, ``IBM``, ``MSFT`` (2000-03-01 to 2013-03-01, 3,270 sessions) and ``GOOG``
  (2004-08-19 to 2013-03-01, 2,148 sessions; Alphabet class A, filed as GOOGL by the source)
  from ``bokeh_sampledata.stocks`` (package ``bokeh-sampledata``, BSD-3), sourced from the
  Quandl WIKI prices, which Quandl declared public domain.

Adjustment of the stocks: the WIKI open/high/low/close are **unadjusted** (as traded) and
``adj_close`` is the split- and dividend-adjusted close, including corporate actions after
2013. All four prices are multiplied by that day's ``adj_close / close``, so the frames are
adjusted like every other source's. Volume is left as the package gives it (described there as
unadjusted) because ``adj_close / close`` mixes splits with dividends and cannot rescale it, so
its level may shift at the three 2-for-1 splits inside the range (AAPL 2000-06-21 and
2005-02-28, MSFT 2003-02-18). The adjusted close keeps the real moves: AAPL's -52 % on
2000-09-29 (a profit warning, not a split) is still there.

What validation found (arch 8.0.0, bokeh-sampledata 2026.1): every series, before and after
adjustment, passes :func:`market.validation.validate_bars` with no rule broken (no high below
the open or close, no low above them, no non-positive price, no NaN), so nothing is repaired.
Every series is validated when first loaded and a future package version that broke a rule
would raise :class:`market.validation.BarValidationError` instead of being fixed silently.
Their dates are exactly the NYSE sessions of their spans: no session is missing
(:func:`market.calendar.missing_sessions` is empty, including around 2001-09-11 and Sandy in
2012) and no date is a non-session. :meth:`BundledSource.reports` returns the validation
reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from functools import lru_cache

import pandas as pd

from market.sources.base import SourceInfo, SymbolNotAvailable, conform_bars, date_range
from market.symbols import check_symbol
from market.universe import Universe, UniverseMember
from market.validation import BarReport, validate_bars
from market.vocabulary import BAR_COLUMNS, PRICE_COLUMNS, Sector

PROVENANCE = (
    "real daily history bundled in PyPI wheels: ^GSPC and ^IXIC (S&P 500 and NASDAQ Composite "
    "daily OHLCV, 1999-2018) and the VIX close (2014-2019) from the arch package's example "
    "data (arch.data; vendor not stated by the package); AAPL, IBM, MSFT (2000-2013) and GOOG "
    "(2004-2013) from the bokeh-sampledata package, originally Quandl WIKI prices (public "
    "domain), adjusted here by adj_close/close"
)

#: The stocks and their GICS sectors (GOOG: Alphabet, Communication Services since 2018).
STOCK_SECTORS: dict[str, Sector] = {
    "AAPL": Sector.INFORMATION_TECHNOLOGY,
    "IBM": Sector.INFORMATION_TECHNOLOGY,
    "MSFT": Sector.INFORMATION_TECHNOLOGY,
    "GOOG": Sector.COMMUNICATION_SERVICES,
}
INDEX_SYMBOLS: tuple[str, ...] = ("^GSPC", "^IXIC")
VIX_SYMBOL = "^VIX"


def bundled_universe() -> Universe:
    """The four bundled stocks with their GICS sectors, ``^GSPC`` as the market proxy.

    >>> [m.symbol for m in bundled_universe().members]
    ['AAPL', 'IBM', 'MSFT', 'GOOG']
    >>> bundled_universe().market_proxy
    '^GSPC'
    """
    return Universe(
        market_proxy="^GSPC",
        vix_symbol=VIX_SYMBOL,
        members=tuple(
            UniverseMember(symbol=symbol, sector=sector) for symbol, sector in STOCK_SECTORS.items()
        ),
    )


def _arch_index(name: str) -> pd.DataFrame:
    from arch.data import nasdaq, sp500  # imported lazily: the package data is read on call

    raw = sp500.load() if name == "sp500" else nasdaq.load()
    return conform_bars(raw.rename(columns=str.lower))


def _wiki_stock(symbol: str) -> pd.DataFrame:
    from bokeh_sampledata import stocks  # parses the bundled csv.gz on first import (~0.1 s)

    raw = pd.DataFrame(getattr(stocks, symbol))
    raw.index = pd.to_datetime(raw.pop("date"))
    factor = raw["adj_close"] / raw["close"]
    adjusted = raw.loc[:, list(PRICE_COLUMNS)].mul(factor, axis=0)
    adjusted["volume"] = raw["volume"]
    return conform_bars(adjusted)


@lru_cache(maxsize=1)
def _load_bars() -> dict[str, tuple[pd.DataFrame, BarReport]]:
    frames = {"^GSPC": _arch_index("sp500"), "^IXIC": _arch_index("nasdaq")}
    frames.update({symbol: _wiki_stock(symbol) for symbol in STOCK_SECTORS})
    return {symbol: (frame, validate_bars(symbol, frame)) for symbol, frame in frames.items()}


@lru_cache(maxsize=1)
def _load_vix() -> pd.Series:
    from arch.data import vix

    series = vix.load()["vix"].dropna().astype("float64")
    series.index = pd.DatetimeIndex(series.index).normalize().astype("datetime64[ns]")
    return series.rename_axis("date").rename("vix")


class BundledSource:
    """Real daily bars and VIX that ship inside installed packages (arch, bokeh-sampledata).

    Works with no network by construction. Serves ``^GSPC`` and ``^IXIC`` (1999-2018),
    ``AAPL``, ``IBM``, ``MSFT`` (2000-03 to 2013-03) and ``GOOG`` (2004-08 to 2013-03), stock
    prices adjusted for splits and dividends by ``adj_close / close`` (volume as traded), and
    the VIX close from 2014-01-03 to 2019-01-03. See the module docstring for provenance and
    what validation found.

    A requested range is clipped to what exists: a symbol whose history does not overlap the
    range at all raises :class:`SymbolNotAvailable`; ``fetch_vix`` returns the VIX values in
    the range, which is empty before 2014 (real missing data, not an error).

    Examples
    --------
    >>> from datetime import date
    >>> source = BundledSource()
    >>> week = source.fetch_bars(["AAPL", "^GSPC"], date(2008, 9, 15), date(2008, 9, 19))
    >>> [len(frame) for frame in week.values()]
    [5, 5]
    >>> round(float(week["^GSPC"]["close"].iloc[0]), 2)  # Lehman Brothers' bankruptcy
    1192.7
    >>> len(source.fetch_vix(date(2008, 1, 1), date(2008, 12, 31)))  # no VIX before 2014
    0
    >>> source.fetch_bars(["TSLA"], date(2010, 1, 4), date(2010, 1, 8))
    Traceback (most recent call last):
    ...
    market.sources.base.SymbolNotAvailable: TSLA is not bundled; available: ^GSPC, ^IXIC, ...
    """

    def __init__(self) -> None:
        self.info = SourceInfo(name="bundled", real=True, provenance=PROVENANCE)

    def available_symbols(self) -> tuple[str, ...]:
        return (*INDEX_SYMBOLS, *STOCK_SECTORS)

    def reports(self) -> dict[str, BarReport]:
        """The validation report of each bundled bar series (rows, first and last date, NYSE
        sessions missing: none in the packaged data)."""
        return {symbol: report for symbol, (_, report) in _load_bars().items()}

    def fetch_bars(
        self, symbols: Sequence[str], start: date, end: date
    ) -> dict[str, pd.DataFrame]:
        wanted = list(dict.fromkeys(check_symbol(symbol) for symbol in symbols))
        first, last = date_range(start, end)
        available = self.available_symbols()
        unknown = [symbol for symbol in wanted if symbol not in available]
        if unknown:
            hint = " (the VIX is served by fetch_vix)" if VIX_SYMBOL in unknown else ""
            raise SymbolNotAvailable(
                f"{', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not bundled; "
                f"available: {', '.join(available)}{hint}"
            )
        loaded = _load_bars()
        out: dict[str, pd.DataFrame] = {}
        for symbol in wanted:
            frame = loaded[symbol][0]
            held_first, held_last = frame.index[0], frame.index[-1]
            if last < held_first or first > held_last:
                raise SymbolNotAvailable(
                    f"{symbol} is bundled only from {held_first.date()} to {held_last.date()}; "
                    f"the requested range {first.date()} to {last.date()} lies outside it"
                )
            out[symbol] = frame.loc[first:last, list(BAR_COLUMNS)].copy()
        return out

    def fetch_vix(self, start: date, end: date) -> pd.Series:
        """The VIX close in ``[start, end]``: only 2014-01-03 to 2019-01-03 is bundled, so the
        result may be shorter than the range or empty."""
        first, last = date_range(start, end)
        return _load_vix().loc[first:last].copy()
