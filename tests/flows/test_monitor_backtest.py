"""The monitor replayed over history: the simulator's planted storms are seen in time, false
alarms in calm years stay rare, a replay repeated changes nothing, and on real history the known
storms are found."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from benchmarks.monitor import rare_false_alarms, storm_detection
from flows.cli import app
from flows.config import LoadedConfig, Settings, load_config
from flows.data import MarketSelection, open_store
from flows.monitor_backtest import monitor_backtest, replay_monitor
from market.panel import BarPanel
from market.sources.bundled import BundledSource, bundled_universe
from memory.watch_log import discovered_events, drift_events
from tests.panels import small_universe

CONFIG = load_config().config
SMALL = CONFIG.model_copy(update={"market": CONFIG.market.model_copy(update={"universe": small_universe(1)})})
STRETCH = (date(2013, 5, 1), date(2013, 8, 30))  # one new simulated storm: 2013-06-07, closed 2013-07-16


def loaded(tmp_path: Path) -> LoadedConfig:
    return LoadedConfig(config=SMALL, path=tmp_path / "stormwatch.yaml", content_hash=SMALL.content_hash())


def test_the_live_storm_is_raised_within_three_sessions_and_calm_years_stay_quiet() -> None:
    """Three seeds here (the benchmark runs ten): the median storm session of the first feature
    drift and of the first proposed event is at most 3, and proposed events calm in truth stay
    at most one per ten calm years."""
    universe = small_universe(1)
    detections = pd.DataFrame([storm_detection(CONFIG, universe, seed) for seed in range(3)])
    assert detections["feature_drift_session"].notna().all() and detections["event_session"].notna().all()
    assert detections["feature_drift_session"].median() <= 3
    assert detections["event_session"].median() <= 3
    calm = pd.DataFrame([rare_false_alarms(CONFIG, universe, seed) for seed in range(3)])
    assert calm["events"].sum() > 0  # the history has storms to find: the bound below can fail
    assert calm["false_events"].sum() / calm["calm_years"].sum() * 10 <= 1.0


def test_replaying_the_same_period_twice_changes_nothing(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    selection = MarketSelection(source="simulated", start=STRETCH[0], end=STRETCH[1])
    first = monitor_backtest(loaded(tmp_path), settings, selection, model=False, plot=False)
    closed = [e for e in first.replay.new_events if e.closed_on is not None]
    assert [e.name for e in closed] == ["storm of 2013-06-07"]
    assert len(first.archive_versions) == len(closed) == 1 and first.archived == ("storm of 2013-06-07",)
    assert first.drift_events_recorded == len(first.replay.alarms) > 0
    second = monitor_backtest(loaded(tmp_path), settings, selection, model=False, plot=False)
    assert (second.drift_events_recorded, second.events_recorded, second.archive_versions) == (0, 0, ())
    with open_store(settings) as store:
        assert len(drift_events(store, source="simulated")) == len(first.replay.alarms)
        stored = discovered_events(store, source="simulated")
    names = [e.name for e in stored]
    assert len(names) == len(set(names)) and "storm of 2013-06-07" in names
    assert next(e for e in stored if e.name == "storm of 2013-06-07").archive_version == first.archive_versions[0]


def test_bad_periods_are_refused_naming_them() -> None:
    from tests.panels import simulated_panel

    panel = simulated_panel(date(2006, 6, 30), small_universe(1))
    with pytest.raises(ValueError, match="no cached session between 2030-01-02 and 2030-02-01"):
        replay_monitor(panel, SMALL, date(2030, 1, 2), date(2030, 2, 1))
    with pytest.raises(ValueError, match="nothing before 2005-01-03 to serve as the training reference"):
        replay_monitor(panel, SMALL, date(2005, 1, 3), date(2005, 2, 1))
    short = replay_monitor(panel, SMALL, date(2005, 6, 1), date(2005, 6, 30), model=False)
    assert "feature" in short.not_run and "needs at least 200" in short.not_run["feature"]


def test_on_real_history_the_known_storms_are_found() -> None:
    """The bundled S&P 500 1999-2018 (VIX from 2014, the realised-volatility fallback before):
    events cover the 2008 crisis and at least two of 2011, 2015 and 2018."""
    source, universe = BundledSource(), bundled_universe()
    bars = source.fetch_bars([*universe.symbols, universe.market_proxy], date(1999, 1, 1), date(2018, 12, 31))
    panel = BarPanel.from_bars({s: bars[s] for s in universe.symbols}, bars[universe.market_proxy],
                               source.fetch_vix(date(1999, 1, 1), date(2018, 12, 31)),
                               {m.symbol: m.sector.value for m in universe.members})
    replay = replay_monitor(panel, CONFIG, date(2000, 1, 3), date(2018, 12, 31), model=False)

    def covered(first: str, last: str) -> bool:
        return any(e.start <= pd.Timestamp(last) and e.end >= pd.Timestamp(first) for e in replay.events)

    assert covered("2008-09-01", "2009-03-31")
    assert sum([covered("2011-07-01", "2011-08-31"), covered("2015-08-01", "2015-09-30"),
                covered("2018-02-01", "2018-02-28")]) >= 2
    assert not covered("2017-01-01", "2017-12-31") or all(e.peak_vix < 20 for e in replay.events
                                                          if e.start.year == 2017)
    # No stock has features before 2001: feature drift says so rather than passing.
    assert "0 rows" in replay.not_run["feature"]


def test_the_command_prints_the_timeline_and_draws_the_plot(tmp_path: Path) -> None:
    config = tmp_path / "small.yaml"
    config.write_text(yaml.safe_dump(SMALL.model_dump(mode="json"), sort_keys=False))
    runner = CliRunner()
    result = runner.invoke(app, ["monitor", "backtest", "--source", "simulated", "--start", "2013-05-01",
                                 "--end", "2013-08-30", "--no-model", "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert "training reference 2010-04-" in result.output and "Timeline" in result.output
    assert "event proposed" in result.output and "storm of 2013-06-07" in result.output
    assert "prediction drift not run: no model asked for" in result.output
    home = Path(__import__("os").environ["STORMWATCH_HOME"])
    picture = home / "reports" / "monitor-backtest-simulated.png"
    assert picture.exists() and picture.stat().st_size > 10_000
    missing = runner.invoke(app, ["monitor", "backtest", "-c", str(config)])
    assert missing.exit_code == 2 and "--start" in missing.output
    assert np.isfinite(1.0)
