"""Market data sources behind one protocol (:class:`MarketSource`).

``simulated`` is the embedded default; ``bundled`` is real history shipped inside PyPI wheels;
``csv`` reads the user's own files; ``yfinance`` downloads from Yahoo Finance.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from market.config import SourcesSettings
from market.sources.base import (
    MarketDataError,
    MarketSource,
    NoVix,
    PartialFetch,
    RangeClipped,
    SourceInfo,
    SourceUnavailable,
    SymbolNotAvailable,
)
from market.universe import Universe

SOURCE_NAMES: tuple[str, ...] = ("simulated", "bundled", "csv", "yfinance")

__all__ = [
    "SOURCE_NAMES",
    "MarketDataError",
    "MarketSource",
    "NoVix",
    "PartialFetch",
    "RangeClipped",
    "SourceInfo",
    "SourceUnavailable",
    "SymbolNotAvailable",
    "open_source",
]


def open_source(
    name: str,
    universe: Universe,
    settings: SourcesSettings,
    *,
    horizon: int = 5,
    csv_directory: Path | None = None,
    today: date | None = None,
) -> tuple[MarketSource, Universe]:
    """Build the named source and the universe it serves.

    The configured universe is used for every source except ``bundled``, whose few real series
    come with their own universe (four stocks and the S&P 500 as the market proxy), and ``csv``,
    whose folder of files is the universe (:func:`market.sources.csv_source.folder_universe`).
    """
    if name == "simulated":
        from market.sources.simulated import SimulatedSource

        return SimulatedSource(universe, settings.simulated, horizon=horizon, today=today), universe
    if name == "bundled":
        from market.sources.bundled import BundledSource, bundled_universe

        return BundledSource(), bundled_universe()
    if name == "csv":
        from market.sources.csv_source import CsvSource, folder_universe

        directory = csv_directory or settings.csv.directory
        if directory is None:
            raise ValueError(
                "the csv source needs a directory: pass --csv-dir or set market.sources.csv.directory"
            )
        source = CsvSource(Path(directory), universe.vix_symbol)
        return source, folder_universe(source, universe, settings.csv.market_proxy)
    if name == "yfinance":
        from market.sources.yfinance_source import YFinanceSource

        return YFinanceSource(settings.yfinance), universe
    raise ValueError(f"unknown source {name!r}: choose one of {', '.join(SOURCE_NAMES)}")
