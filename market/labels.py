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
    barrier: float | None = None,
) -> Labels:
    """Label every (session, symbol) of ``panel`` with its forward return's direction.

    With ``barrier`` set, the label is a triple-barrier label (Lopez de Prado): the path of the
    (excess or total) log return after t is watched for ``horizon`` sessions; touching
    ``+barrier x sigma x sqrt(horizon)`` first gives 1, touching the lower barrier first gives 0,
    and touching neither gives the direction at the vertical barrier (t + horizon). ``sigma`` is
    the symbol's 20-session daily volatility known at t. ``forward_return`` stays the return at
    the vertical barrier, and ``label_end`` stays t + horizon: the conservative end for purging.
    """
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1 session, got {horizon}")
    if kind not in ("excess", "total"):
        raise ValueError(f"kind must be 'excess' or 'total', got {kind!r}")
    if barrier is not None and not barrier > 0:
        raise ValueError(f"barrier must be a positive number of volatilities, got {barrier!r}")
    log_close = np.log(panel.close.to_numpy(dtype="float64"))
    market = np.log(panel.proxy["close"].to_numpy(dtype="float64"))[:, None]
    beta = 0.0
    if kind == "excess":
        daily, market_daily = rolling.diff(log_close), rolling.diff(market)
        beta = rolling.ratio(
            rolling.cov(daily, np.broadcast_to(market_daily, daily.shape), beta_lookback),
            rolling.var(market_daily, beta_lookback),
        )
        beta = _across_gaps(beta, daily, market_daily, beta_lookback)

    def path(k: int) -> np.ndarray:
        """The (excess) log return from t to t + k, known only after t + k."""
        return (_lead(log_close, k) - log_close) - beta * (_lead(market, k) - market)

    forward = path(horizon)
    label = np.where(np.isnan(forward), np.nan, (forward > 0).astype("float64"))
    if barrier is not None:
        width = barrier * rolling.std(rolling.diff(log_close), 20) * np.sqrt(horizon)
        decided = np.zeros(label.shape, dtype=bool)
        for k in range(1, horizon + 1):
            step = path(k)
            up, down = ~decided & (step >= width), ~decided & (step <= -width)
            label[up], label[down] = 1.0, 0.0
            decided |= up | down
        label[np.isnan(forward) | np.isnan(width)] = np.nan
    sessions = panel.sessions
    end = pd.Series(pd.NaT, index=sessions, dtype="datetime64[ns]", name="label_end")
    end.iloc[: max(len(sessions) - horizon, 0)] = sessions[horizon:]
    frame = lambda values: pd.DataFrame(values, index=sessions, columns=panel.symbols)  # noqa: E731
    return Labels(frame(forward), frame(label), end, horizon, kind)


#: Share of a beta window's return pairs that must exist for a beta across missing bars.
GAP_TOLERANCE = 0.9


def _across_gaps(beta: np.ndarray, daily: np.ndarray, market_daily: np.ndarray, lookback: int) -> np.ndarray:
    """``beta`` where it is defined; where a missing bar inside the window left it undefined,
    the beta of the window's remaining return pairs (at least :data:`GAP_TOLERANCE` of them),
    so one missing bar does not leave a year of rows unlabelled. A window that reaches before the
    symbol's first bar stays undefined, and gap-free data is untouched. Causal like the beta:
    the window ends at t."""
    first = np.argmax(np.isfinite(daily), axis=0)
    warm = np.arange(len(daily))[:, None] >= first[None, :] + lookback - 1
    holes = np.isnan(beta) & warm
    if not holes.any():
        return beta
    x = pd.DataFrame(daily)
    y = pd.DataFrame(np.broadcast_to(market_daily, daily.shape)).where(x.notna())
    least = max(2, int(np.ceil(GAP_TOLERANCE * lookback)))
    tolerant = rolling.ratio(x.rolling(lookback, min_periods=least).cov(y).to_numpy(),
                             y.rolling(lookback, min_periods=least).var().to_numpy())
    return np.where(holes, tolerant, beta)


def _lead(x: np.ndarray, k: int) -> np.ndarray:
    """``x`` advanced by ``k`` sessions: row t holds row t + k, NaN for the last ``k`` rows."""
    out = np.full_like(x, np.nan, dtype="float64")
    if k < len(x):
        out[: len(x) - k] = x[k:]
    return out
