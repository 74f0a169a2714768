"""Gaps, short histories and point-in-time membership cost only what they must."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from market.cache import BarCache
from market.features import FEATURES
from market.panel import BarPanel, load_panel
from market.samples import build_samples
from market.universe import Universe, UniverseMember
from tests.panels import simulated_panel, small_universe

FIELDS = ("open", "high", "low", "close", "volume")
START, END = pd.Timestamp("2007-01-02"), pd.Timestamp("2008-12-31")


@pytest.fixture(scope="module")
def panel() -> BarPanel:
    return simulated_panel(date(2008, 12, 31), small_universe(1))


def without(panel: BarPanel, symbol: str, days: pd.DatetimeIndex) -> BarPanel:
    """``panel`` with ``symbol``'s bars on ``days`` missing."""
    frames = {f: getattr(panel, f).copy() for f in FIELDS}
    for frame in frames.values():
        frame.loc[days, symbol] = np.nan
    return replace(panel, **frames)


def rows_of(samples: pd.DataFrame, symbol: str) -> pd.DatetimeIndex:
    return samples.xs(symbol, level="symbol").index


def test_one_missing_bar_costs_its_own_row_and_the_label_that_spans_it(panel: BarPanel) -> None:
    symbol = panel.symbols[0]
    gap = panel.sessions[panel.sessions.searchsorted(pd.Timestamp("2007-06-01"))]
    gappy = without(panel, symbol, pd.DatetimeIndex([gap]))
    full = build_samples(panel, START, END, partial=True).frame
    kept = build_samples(gappy, START, END, partial=True).frame
    lost = rows_of(full, symbol).difference(rows_of(kept, symbol))
    before_gap = panel.sessions[panel.sessions.get_loc(gap) - 5]  # its label's close is the missing one
    assert list(lost) == [before_gap, gap]
    for other in panel.symbols[1:]:
        assert rows_of(kept, other).equals(rows_of(full, other))

    strict = build_samples(gappy, START, END).frame  # the default keeps only rows with every feature
    assert len(rows_of(full, symbol)) - len(rows_of(strict, symbol)) > 250
    row = kept.loc[(panel.sessions[panel.sessions.get_loc(gap) + 30], symbol)]
    names = {spec.name: spec.lookback for spec in FEATURES}
    assert np.isfinite(row["ret_1"]) and np.isnan(row[max(names, key=names.get)])


def test_a_short_history_yields_rows_with_its_long_window_features_undefined(panel: BarPanel) -> None:
    symbol = panel.symbols[1]
    young = without(panel, symbol, panel.sessions[panel.sessions < pd.Timestamp("2008-10-01")])
    held = int(young.close[symbol].notna().sum())
    assert 60 <= held <= 65
    # An excess-return label needs a beta over beta_lookback sessions, which a young symbol lacks;
    # the total-return label does not.
    assert symbol not in build_samples(young, START, END, partial=True).frame.index.get_level_values("symbol")
    mine = build_samples(young, START, END, partial=True, kind="total").frame.xs(symbol, level="symbol")
    assert len(mine) == held - 5 and mine.index[0] == pd.Timestamp("2008-10-01")
    for spec in FEATURES:
        if spec.lookback >= held and spec.family != "market" and spec.family != "macro":
            assert mine[spec.name].isna().all(), spec.name
    assert mine["ret_1"].iloc[1:].notna().all() and np.isnan(mine["ret_1"].iloc[0])


def test_no_sample_outside_a_members_membership(panel: BarPanel, tmp_path: Path) -> None:
    cache = BarCache(tmp_path, "simulated")
    universe = Universe(market_proxy="SPY", members=[
        UniverseMember(symbol=s, sector=panel.sectors[s]) for s in panel.symbols[:3]])
    for symbol in panel.symbols[:3]:
        cache.write(symbol, pd.DataFrame({f: getattr(panel, f)[symbol] for f in FIELDS}))
    cache.write("SPY", panel.proxy)
    first, second, third = universe.members
    dated = universe.model_copy(update={"members": (
        first.model_copy(update={"left": date(2008, 3, 31)}), second.model_copy(update={"entered": date(2007, 1, 2)}),
        third)})
    samples = build_samples(load_panel(cache, dated), START, END, partial=True).frame
    assert rows_of(samples, first.symbol).max() <= pd.Timestamp("2008-03-31")
    assert rows_of(samples, second.symbol).min() >= pd.Timestamp("2007-01-02")
    assert rows_of(samples, third.symbol).max() == pd.Timestamp("2008-12-23")  # the last with a 5-session label
    with pytest.raises(ValueError, match="left the universe"):
        UniverseMember(symbol="AAA", sector="Energy", entered=date(2010, 1, 4), left=date(2009, 1, 2))
