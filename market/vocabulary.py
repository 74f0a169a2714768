"""Words every room shares: regimes, GICS sectors and the shape of a bar frame.

They live in ``market`` because it is the one room every other room may import; keeping the
vocabulary here lets ``monitors``, ``models`` and ``memory`` agree without importing each other.
"""

from __future__ import annotations

from enum import StrEnum


class Regime(StrEnum):
    """The five market regimes of SPEC.md module 2."""

    NORMAL = "normal"
    CRASH = "crash"
    RECOVERY = "recovery"
    HIGH_VOLATILITY = "high_volatility"
    LOW_VOLATILITY = "low_volatility"


REGIMES: tuple[Regime, ...] = tuple(Regime)
#: Their string values, in the same order: the labels of a samples frame's ``regime`` column.
REGIME_NAMES: tuple[str, ...] = tuple(r.value for r in REGIMES)


class Sector(StrEnum):
    """The eleven GICS sectors."""

    INFORMATION_TECHNOLOGY = "Information Technology"
    COMMUNICATION_SERVICES = "Communication Services"
    CONSUMER_DISCRETIONARY = "Consumer Discretionary"
    CONSUMER_STAPLES = "Consumer Staples"
    HEALTH_CARE = "Health Care"
    FINANCIALS = "Financials"
    INDUSTRIALS = "Industrials"
    ENERGY = "Energy"
    UTILITIES = "Utilities"
    REAL_ESTATE = "Real Estate"
    MATERIALS = "Materials"


SECTORS: tuple[Sector, ...] = tuple(Sector)
#: The sector of a universe member nobody classified (a user's own file with no sector given).
UNKNOWN_SECTOR = "Unknown"

#: Columns of every bar frame, in this order. The index is a tz-naive ``DatetimeIndex`` named
#: ``date`` holding session dates at midnight; prices are split- and dividend-adjusted floats.
BAR_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
