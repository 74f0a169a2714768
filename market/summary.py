"""Numbers a person reads first about a market history: drawdowns and VIX peaks per window."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd


def max_drawdown(close: pd.Series) -> float:
    """The largest fall from a running peak, as a positive fraction (0.25 = fell 25%).

    >>> max_drawdown(pd.Series([100.0, 120.0, 90.0, 130.0]))
    0.25
    """
    if close.empty:
        return float("nan")
    values = close.to_numpy(dtype="float64")
    return float(np.max(1.0 - values / np.maximum.accumulate(values)))


def worst_fall_within(close: pd.Series, sessions: int) -> float:
    """The largest fall from any close to the lowest close of the next ``sessions`` sessions,
    as a positive fraction: the quantity SPEC.md's crash rule tests (15% within 10 sessions).

    >>> round(worst_fall_within(pd.Series([100.0, 95.0, 80.0, 120.0, 100.0]), 2), 6)
    0.2
    """
    values = close.to_numpy(dtype="float64")
    if len(values) < 2:
        return 0.0
    future_min = (
        pd.Series(values[::-1]).rolling(sessions, min_periods=1).min().to_numpy()[::-1]
    )
    ahead = np.append(future_min[1:], np.inf)
    return float(max(0.0, np.max(1.0 - ahead / values)))


@dataclass(frozen=True)
class WindowStats:
    """How a named window looked in the data."""

    name: str
    start: date
    end: date
    sessions: int
    total_return: float
    max_drawdown: float
    worst_10_session_fall: float
    peak_vix: float


def window_stats(
    close: pd.Series, vix: pd.Series, windows: Iterable[tuple[str, date, date]]
) -> list[WindowStats]:
    """Drawdown and VIX figures of ``close`` inside each ``(name, start, end)`` window."""
    stats = []
    for name, start, end in windows:
        inside = close.loc[pd.Timestamp(start) : pd.Timestamp(end)]
        fear = vix.loc[pd.Timestamp(start) : pd.Timestamp(end)]
        stats.append(
            WindowStats(
                name=name,
                start=start,
                end=end,
                sessions=len(inside),
                total_return=float(inside.iloc[-1] / inside.iloc[0] - 1) if len(inside) > 1 else 0.0,
                max_drawdown=max_drawdown(inside),
                worst_10_session_fall=worst_fall_within(inside, 10),
                peak_vix=float(fear.max()) if len(fear) else float("nan"),
            )
        )
    return stats
