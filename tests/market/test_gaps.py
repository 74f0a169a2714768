"""Gaps, short histories and point-in-time membership cost only what they must."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flows.config import load_config
from market.cache import BarCache
from market.calendar import nyse_sessions
from market.features import FEATURES
from market.panel import BarPanel, load_panel
from market.samples import build_samples
from market.universe import Universe, UniverseMember
from tests.conftest import DEFAULT_CONFIG
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


# -- through the training window and `archive build` -------------------------------------------

def _config_with(tmp_path: Path, kind: str) -> Path:
    """The packaged configuration with ``market.labels.kind`` set to ``kind``."""
    text = DEFAULT_CONFIG.read_text()
    assert text.count("    kind: excess ") == 1
    path = tmp_path / f"stormwatch-{kind}.yaml"
    path.write_text(text.replace("    kind: excess ", f"    kind: {kind} "))
    return path


def test_the_training_window_keeps_partial_rows(panel: BarPanel, tmp_path: Path) -> None:
    """One missing bar costs the window two rows (its own and the one whose label ends on it), a
    61-session symbol yields rows with its long-window features undefined (with a total-return
    label, which needs no 252-session beta; with the default excess label it yields none, and
    nothing fails)."""
    from flows.training import MarketData, window_samples

    gapped, young = panel.symbols[0], panel.symbols[1]
    gap = panel.sessions[-100]
    changed = without(without(panel, gapped, pd.DatetimeIndex([gap])), young, panel.sessions[:-61])
    full = MarketData(source="simulated", panel=panel, as_of=panel.sessions[-1], snapshot="")
    data = replace(full, panel=changed)
    excess = load_config().config
    total = load_config(_config_with(tmp_path, "total")).config

    before = window_samples(excess, full).features.xs(gapped, level="symbol").index
    after = window_samples(excess, data).features
    lost = before.difference(after.xs(gapped, level="symbol").index)
    assert list(lost) == [panel.sessions[-105], gap]
    assert young not in after.index.get_level_values("symbol")

    mine = window_samples(total, data).features.xs(young, level="symbol")
    assert len(mine) == 61 - 5 and mine.index[0] == panel.sessions[-61]
    lookbacks = {spec.name: spec.lookback for spec in FEATURES}
    for name in ("ret_250", "sharpe_250", "vol_60", "dist_high_252"):
        assert lookbacks[name] >= 61 and mine[name].isna().all(), name
    assert mine["ret_5"].iloc[5:].notna().all() and mine["mkt_ret_60"].notna().all()


def _folder(folder: Path, gap: pd.Timestamp, young_from: pd.Timestamp) -> Path:
    """A user's folder: the proxy, a stock, a stock with one missing bar and its twin without the
    gap, and a stock with 61 sessions; no VIX file."""
    folder.mkdir()
    sessions = nyse_sessions("2018-01-02", "2021-12-31")
    rng = np.random.default_rng(3)
    frames = {}
    for symbol in ("SPY", "AAA", "GAP"):
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.012, len(sessions))))
        frames[symbol] = pd.DataFrame({"Date": sessions, "Open": close, "High": close * 1.01, "Low": close * 0.99,
                                       "Close": close, "Volume": rng.integers(500_000, 2_000_000, len(sessions))})
    frames["TWIN"] = frames["GAP"]
    frames["GAP"] = frames["GAP"].loc[frames["GAP"]["Date"] != gap]
    first = int(np.searchsorted(sessions, young_from))
    frames["YNG"] = frames["AAA"].iloc[first:first + 61].assign(Close=lambda f: f["Close"] * 1.5,
                                                                 High=lambda f: f["High"] * 1.5,
                                                                 Low=lambda f: f["Low"] * 1.5,
                                                                 Open=lambda f: f["Open"] * 1.5)
    for symbol, frame in frames.items():
        frame.to_csv(folder / f"{symbol}.csv", index=False)
    return folder


def test_archive_build_keeps_partial_rows(tmp_path: Path) -> None:
    """``stormwatch archive build`` on a folder: the symbol with one missing bar loses exactly the
    rows its twin keeps and it cannot (the gap's own and the one whose label ends on it), not the
    ~312 sessions of the longest lookback; the 61-session symbol builds instead of failing, and
    with a total-return label yields samples with its long-window features undefined."""
    from typer.testing import CliRunner

    from flows.archive import open_archive
    from flows.cli import app
    from flows.config import Settings

    gap, young_from = pd.Timestamp("2020-05-01"), pd.Timestamp("2020-04-01")
    folder = _folder(tmp_path / "mine", gap, young_from)
    common = ["--csv-dir", str(folder), "--start", "2018-01-02"]
    runner = CliRunner()
    versions = {}
    for kind in ("excess", "total"):
        result = runner.invoke(app, ["archive", "build", *common, "-c", str(_config_with(tmp_path, kind))])
        assert result.exit_code == 0, result.output
        versions[kind] = re.search(r"Archive (\S+) \(built\)", " ".join(result.output.split())).group(1)
    archive = open_archive(Settings())
    try:
        excess, total = archive.load(versions["excess"]), archive.load(versions["total"])
    finally:
        archive.store.dispose()
    assert versions["excess"] != versions["total"]

    def rows(samples: pd.DataFrame, symbol: str) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(samples.xs(symbol, level="symbol").index)

    sessions = nyse_sessions("2018-01-02", "2021-12-31")
    label_start = sessions[sessions.get_loc(gap) - 5]  # its label's close is the missing one
    for samples in (excess, total):
        assert list(rows(samples, "TWIN").difference(rows(samples, "GAP"))) == [label_start, gap]
        assert rows(samples, "GAP").difference(rows(samples, "TWIN")).empty
    assert "YNG" not in excess.index.get_level_values("symbol")  # no 252-session beta, no excess label
    young = total.xs("YNG", level="symbol")
    assert len(young) == 61 - 5 and young.index[0] == young_from
    assert young["ret_250"].isna().all() and young["vol_60"].isna().all() and young["ret_20"].iloc[20:].notna().all()
    assert (young["vix_is_fallback"] == 1.0).all()
