"""A panel of bars: one wide frame per field (sessions x symbols), the market proxy and the VIX.

Features and labels are computed on wide frames so that every rolling statistic runs once over
all symbols in C, not once per sample (the original system's 12-20 hour bottleneck).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from market.vocabulary import BAR_COLUMNS

if TYPE_CHECKING:
    from market.cache import BarCache
    from market.universe import Universe


@dataclass(frozen=True)
class BarPanel:
    """Bars of many symbols aligned on the market proxy's sessions.

    A symbol without a bar on a session holds NaN there: it is never filled, so any statistic
    whose window covers the gap is NaN and the row is dropped, not invented.
    """

    open: pd.DataFrame
    high: pd.DataFrame
    low: pd.DataFrame
    close: pd.DataFrame
    volume: pd.DataFrame
    proxy: pd.DataFrame
    vix: pd.Series
    sectors: Mapping[str, str]

    @classmethod
    def from_bars(
        cls,
        bars: Mapping[str, pd.DataFrame],
        proxy: pd.DataFrame,
        vix: pd.Series,
        sectors: Mapping[str, str],
    ) -> BarPanel:
        """Align per-symbol bar frames on the proxy's sessions.

        ``vix`` may be shorter than the proxy or empty (real VIX history starts later than most
        price histories); it is reindexed with NaN where missing and the features fall back.
        """
        missing = sorted(set(bars) - set(sectors))
        if missing:
            raise ValueError(f"no sector for: {', '.join(missing)}")
        sessions = pd.DatetimeIndex(proxy.index, name="date")
        symbols = list(bars)
        # One array (field, session, symbol) filled a symbol at a time: a reindex per symbol and
        # field, then a frame built from a dict of Series, cost a second a cycle at 500 symbols.
        cube = np.full((len(BAR_COLUMNS), len(sessions), len(symbols)), np.nan)
        for j, symbol in enumerate(symbols):
            frame = bars[symbol]
            if not frame.index.is_unique:
                raise ValueError(f"{symbol}: bars hold a date more than once")
            at = sessions.get_indexer(frame.index)
            on = at >= 0  # a bar off the proxy's sessions has no row, as a reindex would drop it
            values = np.stack([frame[field].to_numpy(dtype="float64") for field in BAR_COLUMNS])
            cube[:, at[on], j] = values[:, on]
        columns = pd.Index(symbols)
        fields = {field: pd.DataFrame(cube[k], index=sessions, columns=columns, copy=False)
                  for k, field in enumerate(BAR_COLUMNS)}
        return cls(
            **fields,
            proxy=proxy.loc[:, list(BAR_COLUMNS)].astype("float64"),
            vix=vix.reindex(sessions).astype("float64").rename("vix"),
            sectors={s: str(sectors[s]) for s in symbols},
        )

    @property
    def sessions(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.close.index)

    @property
    def symbols(self) -> list[str]:
        return list(self.close.columns)

    def select(self, symbols: Sequence[str]) -> BarPanel:
        """The panel of ``symbols`` only, on the same sessions with the same proxy and VIX."""
        columns = list(symbols)
        return BarPanel(
            open=self.open[columns], high=self.high[columns], low=self.low[columns],
            close=self.close[columns], volume=self.volume[columns], proxy=self.proxy, vix=self.vix,
            sectors={s: self.sectors[s] for s in columns},
        )

    def truncate(self, last: pd.Timestamp) -> BarPanel:
        """The panel as it was known at the close of ``last`` (for look-ahead tests)."""
        cut = slice(None, last)
        return BarPanel(
            open=self.open.loc[cut], high=self.high.loc[cut], low=self.low.loc[cut],
            close=self.close.loc[cut], volume=self.volume.loc[cut], proxy=self.proxy.loc[cut],
            vix=self.vix.loc[cut], sectors=self.sectors,
        )


def load_panel(cache: BarCache, universe: Universe) -> BarPanel:
    """The universe's cached bars, proxy and VIX as a panel (what every feature build starts from).

    A member's bars are cut to the sessions it was a member (``entered`` to ``left``), so no
    feature reads, and no sample exists, outside its membership."""
    # Threads: pyarrow reads without the GIL, and a cycle reads every member's file.
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        read = pool.map(lambda m: cache.read(m.symbol, m.entered, m.left), universe.members)
        bars = {m.symbol: frame for m, frame in zip(universe.members, read, strict=True)}
    try:
        vix = cache.read_series(universe.vix_symbol)
    except KeyError:  # no VIX cached: the features fall back to realised volatility
        vix = pd.Series(dtype="float64")
    return BarPanel.from_bars(bars, cache.read(universe.market_proxy), vix,
                              {m.symbol: str(m.sector) for m in universe.members})
