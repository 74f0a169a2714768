"""Market data sources behind one protocol (:class:`MarketSource`).

``simulated`` is the embedded default; ``bundled`` is real history shipped inside PyPI wheels;
``csv`` reads the user's own files; ``yfinance`` downloads from Yahoo Finance.
"""

from __future__ import annotations

from market.sources.base import (
    MarketDataError,
    MarketSource,
    SourceInfo,
    SourceUnavailable,
    SymbolNotAvailable,
)

SOURCE_NAMES: tuple[str, ...] = ("simulated", "bundled", "csv", "yfinance")

__all__ = [
    "SOURCE_NAMES",
    "MarketDataError",
    "MarketSource",
    "SourceInfo",
    "SourceUnavailable",
    "SymbolNotAvailable",
]
