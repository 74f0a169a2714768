"""Sector and symbol tracking (SPEC.md module 9): where a model is weak.

Accuracy, log loss, hit rate of its long calls and the row count, per GICS sector, per symbol
and per sector and regime, for one model version's predictions. The weakest sectors and symbols
are named only when enough rows stand behind them (``min_rows``): a symbol that was wrong on 12
rows is noise, not news.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from market.vocabulary import REGIMES


@dataclass(frozen=True)
class TrackingReport:
    """Per-sector, per-symbol and sector x regime figures of one model version."""

    by_sector: pd.DataFrame  # index sector: n, accuracy, log_loss, hit_rate
    by_symbol: pd.DataFrame  # index symbol: sector, n, accuracy, log_loss, hit_rate
    sector_regime: pd.DataFrame  # accuracy, sectors x regimes (NaN where no rows)
    weakest_sectors: pd.DataFrame  # the lowest accuracies with at least min_rows rows
    weakest_symbols: pd.DataFrame
    min_rows: int


def _figures(frame: pd.DataFrame) -> pd.Series:
    y, p = frame["y"].to_numpy(), frame["p"].to_numpy()
    q = np.clip(p, 1e-15, 1 - 1e-15)
    long = p > 0.5
    return pd.Series({
        "n": len(frame),
        "accuracy": float(((p > 0.5) == y).mean()),
        "log_loss": float(-(y * np.log(q) + (1 - y) * np.log(1 - q)).mean()),
        "hit_rate": float(y[long].mean()) if long.any() else float("nan"),  # of the long calls, how many rose
    })


def track(
    y_true: Any,
    proba: Any,
    *,
    sectors: Any,
    symbols: Any,
    regimes: Any,
    min_rows: int = 200,
    weakest: int = 3,
) -> TrackingReport:
    """The tracking report of predictions ``proba`` (probability of class 1) on labels ``y_true``.

    Examples
    --------
    >>> report = track([1, 0, 1, 1], [0.9, 0.2, 0.4, 0.8],
    ...                sectors=["Energy", "Energy", "Utilities", "Utilities"],
    ...                symbols=["XOM", "CVX", "NEE", "DUK"], regimes=["crash"] * 4, min_rows=1)
    >>> report.by_sector["accuracy"].to_dict()
    {'Energy': 1.0, 'Utilities': 0.5}
    >>> report.weakest_symbols.index[0]
    'NEE'
    """
    frame = pd.DataFrame({
        "y": np.asarray(y_true, dtype=np.int64), "p": np.asarray(proba, dtype=np.float64),
        "sector": np.asarray(sectors).astype(str), "symbol": np.asarray(symbols).astype(str),
        "regime": np.asarray(regimes).astype(str),
    })
    if frame.empty:
        raise ValueError("no predictions to track")
    by_sector = frame.groupby("sector").apply(_figures, include_groups=False)
    by_symbol = frame.groupby("symbol").apply(_figures, include_groups=False)
    by_symbol.insert(0, "sector", frame.groupby("symbol")["sector"].first())
    accuracy = frame.assign(hit=((frame["p"] > 0.5) == frame["y"]).astype(float))
    sector_regime = accuracy.pivot_table(index="sector", columns="regime", values="hit", aggfunc="mean")
    order = [r.value for r in REGIMES if r.value in sector_regime.columns]
    sector_regime = sector_regime[order]

    def weakest_of(table: pd.DataFrame) -> pd.DataFrame:
        return table[table["n"] >= min_rows].sort_values("accuracy").head(weakest)

    return TrackingReport(by_sector=by_sector, by_symbol=by_symbol, sector_regime=sector_regime,
                          weakest_sectors=weakest_of(by_sector), weakest_symbols=weakest_of(by_symbol),
                          min_rows=min_rows)


def plot_sector_regime(report: TrackingReport, path: Path | str) -> Path:
    """A heatmap of accuracy per sector and regime, each cell annotated with its value."""
    from market.figures import new_figure, save_png

    table = report.sector_regime
    figure = new_figure(1.6 * len(table.columns) + 3.5, 0.42 * len(table) + 1.6)
    axis = figure.subplots()
    image = axis.imshow(table.to_numpy(dtype=float), cmap="RdBu", vmin=0.4, vmax=0.6, aspect="auto")
    axis.set_xticks(range(len(table.columns)), table.columns, fontsize=8)
    axis.set_yticks(range(len(table.index)), table.index, fontsize=8)
    for (i, j), value in np.ndenumerate(table.to_numpy(dtype=float)):
        if not np.isnan(value):
            axis.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7)
    figure.colorbar(image, ax=axis, label="accuracy")
    axis.set_title("Accuracy by sector and regime (validation rows)", fontsize=10)
    return save_png(figure, path)


__all__ = ["TrackingReport", "plot_sector_regime", "track"]
