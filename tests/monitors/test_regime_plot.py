"""The regime picture, and the flow that labels the cached market proxy and draws it."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from flows.config import DEFAULT_CONFIG_PATH, LoadedConfig, Settings, parse_config
from flows.regimes import RegimeReport, regime_timeline
from monitors.regime_plot import plot_regimes
from monitors.regimes import RegimeLabeler, RegimeTimeline

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
WINDOWS = [
    ("2008 financial crisis", date(2008, 9, 1), date(2009, 3, 31)),
    ("2020 COVID crash", date(2020, 2, 20), date(2020, 3, 23)),  # outside the data: clipped
]


def a_timeline() -> tuple[pd.Series, RegimeTimeline]:
    """Two calm years, a crash and a recovery; the VIX observed only in the second half, and
    at 30 (high volatility, where a rise from the crash low starts a recovery) through the storm."""
    rng = np.random.default_rng(3)
    index = pd.bdate_range("2007-06-01", "2009-12-31", name="date")
    returns = rng.normal(0.0003, 0.01, len(index))
    returns[(index >= "2008-09-15") & (index < "2008-10-15")] = -0.02
    returns[(index >= "2008-10-15") & (index < "2008-12-15")] = 0.005
    close = pd.Series(1000.0 * np.exp(np.cumsum(returns)), index=index)
    vix = pd.Series(20 + 12 * np.sin(np.arange(len(index)) / 40), index=index).loc["2008-06-01":]
    vix.loc["2008-09-15":"2008-12-15"] = 30.0
    return close, RegimeLabeler().label(close, vix)


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 20_000  # a drawn figure, not an empty canvas
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary file left


def test_plot_writes_a_png_atomically_and_returns_its_path(tmp_path: Path) -> None:
    close, timeline = a_timeline()
    assert set(timeline.regime.dropna()) >= {"crash", "recovery"} and timeline.fallback.any()
    target = tmp_path / "reports" / "regimes.png"  # the folder does not exist yet
    assert plot_regimes(close, timeline, WINDOWS, target, title="test") == target
    assert_png(target)
    first = target.read_bytes()
    plot_regimes(close, timeline, [], target)  # overwrites in place, still no temporary left
    assert_png(target)
    assert target.read_bytes() != first


def small_simulated_config() -> LoadedConfig:
    """The default configuration on one symbol per sector, simulated to mid-2021, no live period."""
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["market"]["sources"]["simulated"].update(end="2021-06-30", live_sessions=0, live_storm=None)
    members, sectors = [], set()
    for member in raw["market"]["universe"]["members"]:
        if member["sector"] not in sectors:
            sectors.add(member["sector"])
            members.append(member)
    raw["market"]["universe"]["members"] = members
    config = parse_config(yaml.safe_dump(raw))
    return LoadedConfig(config=config, path=DEFAULT_CONFIG_PATH, content_hash=config.content_hash())


def test_the_flow_labels_the_cached_proxy_and_draws_it_under_reports(_isolated_home: Path) -> None:
    loaded, settings = small_simulated_config(), Settings()
    assert settings.home == _isolated_home
    report = regime_timeline(loaded, settings)
    assert isinstance(report, RegimeReport) and report.source == "simulated"
    timeline = report.timeline
    assert timeline.regime.index[0] == pd.Timestamp("2005-01-03")
    assert timeline.regime.index[-1] == pd.Timestamp("2021-06-30")
    assert not timeline.fallback.any()  # the simulated source has a VIX every session
    assert (timeline.regime.loc["2020-02-20":"2020-03-23"] == "crash").all()
    assert timeline.rules == loaded.config.monitors.regimes
    assert report.plot == settings.reports_dir / "regimes-simulated.png"
    assert_png(report.plot)
    # Second run: from the cache, and without a picture when none is asked for.
    again = regime_timeline(loaded, settings, plot=False)
    assert again.plot is None
    pd.testing.assert_series_equal(again.timeline.regime, timeline.regime)
