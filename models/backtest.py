"""A walk-forward signal backtest of a model's predictions on its validation sessions: what the
direction calls would have earned as a daily long/short book, and how well they rank stocks.

Each session the book goes long the symbols predicted up and short those predicted down, equal
weight on each side (dollar-neutral), and earns each position's forward return spread over the
label horizon (``forward_return / horizon`` a day: the overlapping-portfolios reading of a
``horizon``-session hold). Costs are ``cost_bps`` per unit of turnover. Reported overall and per
regime (a session's regime is its rows' most common one): annualised return, Sharpe ratio,
maximum drawdown and hit rate (share of profitable sessions), plus daily IC and rank IC (the
cross-sectional Pearson and Spearman correlation of the probability with the forward return) and
their ratios to their spread, as Qlib's ``SigAnaRecord`` reports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

TRADING_DAYS = 252


@dataclass(frozen=True)
class BacktestResult:
    daily: pd.DataFrame  # per session: regime, gross, cost, net, ic, rank_ic, positions
    summary: pd.DataFrame  # index overall and each regime: sessions, annual_return, sharpe, max_drawdown, ...


def _summary(daily: pd.DataFrame) -> dict[str, float]:
    net = daily["net"].to_numpy()
    curve = np.cumsum(net)
    drawdown = curve - np.maximum.accumulate(np.concatenate([[0.0], curve]))[1:]
    std = net.std(ddof=1) if len(net) > 1 else float("nan")
    ic, rank_ic = daily["ic"].dropna(), daily["rank_ic"].dropna()
    return {
        "sessions": len(daily),
        "annual_return": float(net.mean() * TRADING_DAYS),
        "sharpe": float(net.mean() / std * np.sqrt(TRADING_DAYS)) if std and std > 0 else float("nan"),
        "max_drawdown": float(drawdown.min()) if len(drawdown) else float("nan"),
        "hit_rate": float((net > 0).mean()),
        "ic": float(ic.mean()) if len(ic) else float("nan"),
        "icir": float(ic.mean() / ic.std(ddof=1)) if len(ic) > 1 and ic.std(ddof=1) > 0 else float("nan"),
        "rank_ic": float(rank_ic.mean()) if len(rank_ic) else float("nan"),
        "rank_icir": (float(rank_ic.mean() / rank_ic.std(ddof=1))
                      if len(rank_ic) > 1 and rank_ic.std(ddof=1) > 0 else float("nan")),
    }


def signal_backtest(
    dates: Any,
    symbols: Any,
    proba: Any,
    forward_return: Any,
    regimes: Any,
    *,
    horizon: int = 5,
    cost_bps: float = 5.0,
) -> BacktestResult:
    """Backtest the direction calls ``proba > 0.5`` on the rows given (one per session and symbol)."""
    frame = pd.DataFrame({"date": pd.DatetimeIndex(dates), "symbol": np.asarray(symbols).astype(str),
                          "p": np.asarray(proba, dtype=np.float64),
                          "r": np.asarray(forward_return, dtype=np.float64),
                          "regime": np.asarray(regimes).astype(str)})
    frame = frame.dropna(subset=["r"]).drop_duplicates(["date", "symbol"]).sort_values(["date", "symbol"])
    if frame.empty:
        raise ValueError("no rows with a forward return to backtest")
    side = np.where(frame["p"] > 0.5, 1.0, -1.0)
    longs = frame.assign(side=side).groupby("date")["side"].transform(lambda s: (s > 0).sum())
    shorts = frame.assign(side=side).groupby("date")["side"].transform(lambda s: (s < 0).sum())
    weight = np.where(side > 0, 0.5 / longs.clip(lower=1), -0.5 / shorts.clip(lower=1))
    frame = frame.assign(weight=weight, pnl=weight * frame["r"] / horizon)
    wide = frame.pivot(index="date", columns="symbol", values="weight").fillna(0.0)
    turnover = wide.diff().abs().sum(axis=1)
    turnover.iloc[0] = wide.iloc[0].abs().sum()
    grouped = frame.groupby("date")
    daily = pd.DataFrame({
        "regime": grouped["regime"].agg(lambda s: s.value_counts().index[0]),
        "gross": grouped["pnl"].sum(),
        "positions": grouped.size(),
    })
    daily["cost"] = turnover.reindex(daily.index).to_numpy() * cost_bps / 1e4
    daily["net"] = daily["gross"] - daily["cost"]
    def correlation(method: str) -> pd.Series:
        return grouped.apply(lambda g: g["p"].corr(g["r"], method=method) if len(g) > 2 else np.nan,
                             include_groups=False)

    daily["ic"] = correlation("pearson")
    daily["rank_ic"] = correlation("spearman")
    rows = {"overall": _summary(daily)}
    for regime, part in daily.groupby("regime"):
        rows[str(regime)] = _summary(part)
    return BacktestResult(daily=daily, summary=pd.DataFrame.from_dict(rows, orient="index"))


__all__ = ["BacktestResult", "signal_backtest"]
