"""Labels: the direction of a symbol's forward return over a horizon, free of look-ahead.

By default the label is the sign of the *excess* forward return, the symbol's forward log return
minus its beta times the market proxy's, because that is what a long/short book trades and what
stays learnable in a crash, when every stock falls together (SPEC.md). Beta at session t is
estimated from daily returns up to t only. The raw total-return direction is ``kind="total"``.

The label of session t depends only on closes at t and t + horizon (and beta, known at t); the
last ``horizon`` sessions of a series have no label and are left empty, never filled in. Each
label keeps its end date (the session t + horizon) so validation can purge overlapping labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from market import rolling
from market.panel import BarPanel


@dataclass(frozen=True)
class Labels:
    """Forward returns and labels of every (session, symbol) of a panel.

    ``label`` is 1.0 for a positive forward (excess) return, 0.0 otherwise, NaN where unknown.
    ``label_end`` is the session each label's horizon ends on (NaT for the last ``horizon``).
    """

    forward_return: pd.DataFrame
    label: pd.DataFrame
    label_end: pd.Series
    horizon: int
    kind: str


def make_labels(
    panel: BarPanel,
    horizon: int = 5,
    kind: Literal["excess", "total"] = "excess",
    beta_lookback: int = 252,
) -> Labels:
    """Label every (session, symbol) of ``panel`` with its forward return's direction."""
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1 session, got {horizon}")
    if kind not in ("excess", "total"):
        raise ValueError(f"kind must be 'excess' or 'total', got {kind!r}")
    log_close = np.log(panel.close.to_numpy(dtype="float64"))
    forward = _lead(log_close, horizon) - log_close
    if kind == "excess":
        market = np.log(panel.proxy["close"].to_numpy(dtype="float64"))[:, None]
        daily, market_daily = rolling.diff(log_close), rolling.diff(market)
        beta = rolling.ratio(
            rolling.cov(daily, np.broadcast_to(market_daily, daily.shape), beta_lookback),
            rolling.var(market_daily, beta_lookback),
        )
        forward = forward - beta * (_lead(market, horizon) - market)
    label = np.where(np.isnan(forward), np.nan, (forward > 0).astype("float64"))
    sessions = panel.sessions
    end = pd.Series(pd.NaT, index=sessions, dtype="datetime64[ns]", name="label_end")
    end.iloc[: max(len(sessions) - horizon, 0)] = sessions[horizon:]
    frame = lambda values: pd.DataFrame(values, index=sessions, columns=panel.symbols)  # noqa: E731
    return Labels(frame(forward), frame(label), end, horizon, kind)


def _lead(x: np.ndarray, k: int) -> np.ndarray:
    """``x`` advanced by ``k`` sessions: row t holds row t + k, NaN for the last ``k`` rows."""
    out = np.full_like(x, np.nan, dtype="float64")
    if k < len(x):
        out[: len(x) - k] = x[k:]
    return out
