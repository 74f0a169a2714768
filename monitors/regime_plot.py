"""A picture of a regime timeline: the market proxy coloured by regime over the archive windows,
and the VIX it was read from.

Drawn with matplotlib's object API on an Agg canvas (no ``pyplot``, so no global figure state and
no display needed), written to a temporary file beside the target and renamed into place.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from market.figures import new_figure, save_png
from market.vocabulary import REGIMES, Regime
from monitors.regimes import RegimeTimeline

#: One colour per regime (calm blues and greens, storms red and orange).
REGIME_COLOURS: dict[Regime, str] = {
    Regime.LOW_VOLATILITY: "#4c9f70",
    Regime.NORMAL: "#3b6ea8",
    Regime.HIGH_VOLATILITY: "#e0a030",
    Regime.CRASH: "#c0392b",
    Regime.RECOVERY: "#8e44ad",
}
UNLABELLED_COLOUR = "#9a9a9a"


def plot_regimes(
    close: pd.Series,
    timeline: RegimeTimeline,
    windows: Sequence[tuple[str, date, date]],
    path: Path,
    title: str = "Market regimes",
) -> Path:
    """Draw ``close`` (log scale) coloured by ``timeline``'s regimes, with ``windows`` (name, first
    day, last day) as labelled shaded spans, over a panel of the VIX (observed solid, fallback
    dashed) with the rules' thresholds; write it as a PNG to ``path`` and return ``path``.
    """
    from matplotlib.collections import LineCollection
    from matplotlib.dates import date2num
    from matplotlib.lines import Line2D

    close = close.reindex(timeline.regime.index).astype("float64")
    x = date2num(pd.DatetimeIndex(close.index).to_pydatetime())
    y = close.to_numpy()
    regimes = timeline.regime.to_numpy(dtype=object, na_value=None)

    figure = new_figure(14, 8)
    price, vix = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1.3))

    # Price: one segment per session, from the previous close, in the colour of the session's regime.
    points = np.column_stack([x, y])
    segments = np.stack([points[:-1], points[1:]], axis=1)
    colours = [REGIME_COLOURS.get(r, UNLABELLED_COLOUR) if r else UNLABELLED_COLOUR for r in regimes[1:]]
    keep = np.isfinite(segments).all(axis=(1, 2)) & (segments[:, :, 1] > 0).all(axis=1)
    price.add_collection(LineCollection(segments[keep], colors=np.asarray(colours, dtype=object)[keep],
                                        linewidths=1.2))
    price.set_yscale("log")
    finite = y[np.isfinite(y) & (y > 0)]
    if finite.size:
        price.set_ylim(finite.min() * 0.95, finite.max() * 1.05)
    if x.size:
        price.set_xlim(x[0], x[-1] if x.size > 1 else x[0] + 1)
    price.set_ylabel("market proxy close (log)")
    price.set_title(title)
    shown = [r for r in REGIMES if (regimes == r.value).any()]
    handles = [Line2D([], [], color=REGIME_COLOURS[r], linewidth=3, label=r.value) for r in shown]
    if any(r is None for r in regimes):
        handles.append(Line2D([], [], color=UNLABELLED_COLOUR, linewidth=3, label="unlabelled"))
    price.legend(handles=handles, loc="upper left", fontsize=9, title="regime")

    # Archive windows: shaded on both panels, named on the price panel.
    for number, (name, first, last) in enumerate(windows):
        start = date2num(pd.Timestamp(first).to_pydatetime())
        end = date2num(pd.Timestamp(last).to_pydatetime()) + 1.0  # through the whole last day
        for axis in (price, vix):
            axis.axvspan(start, end, color="#777777", alpha=0.15, linewidth=0)
        # Three staggered heights keep the names of neighbouring windows apart.
        price.text(start, 0.985 - 0.045 * (number % 3), name, transform=price.get_xaxis_transform(),
                   fontsize=7, va="top", ha="left", clip_on=True)

    # VIX: observed and fallback as separate lines, and the thresholds of the rules.
    level = timeline.vix.reindex(close.index).to_numpy()
    used_fallback = timeline.fallback.reindex(close.index, fill_value=True).to_numpy(dtype=bool)
    vix.plot(x, np.where(used_fallback, np.nan, level), color="#222222", linewidth=0.8, label="VIX observed")
    vix.plot(x, np.where(used_fallback, level, np.nan), color="#d35400", linewidth=0.8, linestyle="--",
             label="fallback: realised volatility")
    rules = timeline.rules
    for value in (rules.vix_normal_from, rules.vix_high_volatility_from, rules.vix_crash_above):
        vix.axhline(value, color="#888888", linewidth=0.7, linestyle=":")
        vix.annotate(f"{value:g}", (1.0, value), xycoords=("axes fraction", "data"), fontsize=7,
                     xytext=(2, 0), textcoords="offset points", va="center")
    vix.set_ylabel("VIX")
    vix.xaxis_date()
    vix.legend(loc="upper left", fontsize=8)

    return save_png(figure, path)
