"""The monitor cycle: every session processed exactly once through a flaky source, a crash
and a restart, overlapping cycles; a bad symbol set aside while the others are processed;
champion and challenger scored live, their labels matured, the champion's worst errors in the
replay buffer; events stored and delivered once, with stable ids; the Prefect flow end to end.

The market is the simulated one (11 symbols, history from 2018, "today" pinned at 2026-06-01
and its 120 live sessions after it, the live storm from the 21st); the champion and challenger
are small scaled logistic regressions trained here on bars before today, recorded and promoted
through the real run store and registry."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from flows.config import LoadedConfig, Settings, load_config
from flows.data import MarketSelection, open_selection, open_store
from flows.training import open_runs
from flows.watch import process_sessions, refresh_bars, run_cycle
from market.calendar import nyse_sessions
from market.features import FEATURE_NAMES, compute_features
from market.labels import make_labels
from market.sources.base import SourceUnavailable, SymbolNotAvailable
from memory.live import LiveLog
from memory.registry import CHALLENGER, Registry
from memory.replay import ReplayBuffer
from memory.runs import ModelFile, new_run
from models.zoo import SoftVotingEnsemble, build_estimator
from tests.flows.test_retrain import small_config

TODAY = date(2026, 6, 1)
LIVE = nyse_sessions(date(2026, 6, 2), date(2027, 1, 31))[:120]


def monitor_config(path: Path) -> Path:
    small_config(path)
    raw = yaml.safe_load(path.read_text())
    raw["market"]["sources"]["simulated"]["end"] = TODAY.isoformat()
    raw["market"]["history_start"] = "2019-01-02"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def train_and_promote(loaded: LoadedConfig, settings: Settings, *, alias: str = "champion", seed: int = 0) -> str:
    """A small real model on sessions before TODAY, recorded and given ``alias``."""
    from flows.archive import cached_panel

    _, panel = cached_panel(loaded, settings, selection=MarketSelection(end=TODAY))
    features = compute_features(panel, panel.sessions[-400:]).frame
    labels = make_labels(panel, loaded.config.market.labels.horizon)
    y = labels.label.stack().rename("label")
    y.index.names = ["date", "symbol"]
    rows = features.join(y, how="inner").dropna(subset=["label"])
    rows = rows[rows.index.get_level_values("date") < panel.sessions[-10]]
    member = build_estimator("sklearn.linear_model", "LogisticRegression", {"C": 0.05 * (seed + 1), "max_iter": 500},
                             preprocess="standardize")
    member.fit(rows[list(FEATURE_NAMES)], rows["label"].astype(int))
    ensemble = SoftVotingEnsemble(members={"logistic_regression": member}, weights={"logistic_regression": 1.0},
                                  feature_names=tuple(FEATURE_NAMES))
    runs = open_runs(settings)
    try:
        run_id = f"test-{alias}-{seed}"
        runs.start(new_run(run_id=run_id, config_hash=loaded.content_hash, config_version=loaded.version,
                           as_of=TODAY, source="simulated", symbols=[], variant="test"))
        runs.succeed(run_id, [ModelFile("ensemble", ensemble, 0.0)], {})
        registry = Registry(runs.store)
        if alias == "champion":
            registry.promote(run_id, reason="test")
        else:
            registry.set_alias(CHALLENGER, run_id, reason="test")
    finally:
        runs.store.dispose()
    return run_id


class FlakySource:
    """The real simulated source, failing every other call as a whole (a provider outage)."""

    def __init__(self, inner, fail_every: int = 2) -> None:
        self.inner, self.info, self.calls, self.fail_every = inner, inner.info, 0, fail_every

    def _tick(self) -> None:
        self.calls += 1
        if self.calls % self.fail_every == 0:
            raise SourceUnavailable(f"simulated outage on call {self.calls}")

    def fetch_bars(self, symbols: Sequence[str], start: date, end: date) -> dict[str, pd.DataFrame]:
        self._tick()
        return self.inner.fetch_bars(symbols, start, end)

    def fetch_vix(self, start: date, end: date) -> pd.Series:
        return self.inner.fetch_vix(start, end)

    def available_symbols(self) -> tuple[str, ...]:
        return self.inner.available_symbols()


class OneBadSymbol(FlakySource):
    """The real simulated source, refusing one symbol."""

    def __init__(self, inner, bad: str) -> None:
        super().__init__(inner, fail_every=10**9)
        self.bad = bad

    def fetch_bars(self, symbols: Sequence[str], start: date, end: date) -> dict[str, pd.DataFrame]:
        if self.bad in symbols:
            raise SymbolNotAvailable(f"{self.bad}: the provider returned a malformed file")
        return self.inner.fetch_bars(symbols, start, end)


@pytest.fixture()
def world(tmp_path: Path) -> tuple[LoadedConfig, Settings]:
    loaded = load_config(monitor_config(tmp_path / "monitor.yaml"))
    settings = Settings()
    run_cycle(loaded, settings, MarketSelection(), TODAY, retry_delays=())  # fetch history; first session
    return loaded, settings


def ledger(settings: Settings, source: str = "simulated") -> list[date]:
    store = open_store(settings)
    try:
        return [r.session for r in LiveLog(store).sessions(source)]
    finally:
        store.dispose()


def test_a_source_failing_half_its_calls_loses_no_session_and_repeats_none(world) -> None:
    loaded, settings = world
    source, _ = open_selection(loaded, MarketSelection())
    flaky = FlakySource(source)
    reports = [run_cycle(loaded, settings, MarketSelection(), day.date(), market_source=flaky, retry_delays=())
               for day in LIVE[:50]]
    skipped = [r for r in reports if r.skipped]
    assert 15 <= len(skipped) <= 35, len(skipped)  # the outage really happened, often
    assert all("simulated outage" in r.skipped for r in skipped)
    processed = [d for r in reports for d in r.processed]
    last_ok = max(i for i, r in enumerate(reports) if not r.skipped)
    assert processed == [d.date() for d in LIVE[:last_ok + 1]]  # each once, in order
    assert ledger(settings) == [TODAY, *processed]


def test_one_bad_symbol_is_set_aside_with_its_reason_and_the_others_are_processed(world) -> None:
    loaded, settings = world
    champion = train_and_promote(loaded, settings)
    source, universe = open_selection(loaded, MarketSelection())
    bad = universe.symbols[3]
    report = run_cycle(loaded, settings, MarketSelection(), LIVE[2].date(), market_source=OneBadSymbol(source, bad),
                       retry_delays=())
    assert report.processed == tuple(d.date() for d in LIVE[:3])
    assert "malformed file" in report.set_aside[bad]
    assert set(report.set_aside) == {bad}
    store = open_store(settings)
    try:
        scored = LiveLog(store).predictions("simulated", run_id=champion)
    finally:
        store.dispose()
    assert bad not in set(scored["symbol"])
    assert set(scored["symbol"]) == set(universe.symbols) - {bad}
    # Next cycle, the symbol is back (its cached bars end before the others'; fetched again).
    again = run_cycle(loaded, settings, MarketSelection(), LIVE[3].date(), retry_delays=())
    assert again.processed == (LIVE[3].date(),) and not again.set_aside


def test_a_cycle_killed_mid_way_leaves_the_rest_to_the_next_which_processes_it_once(world) -> None:
    loaded, settings = world
    train_and_promote(loaded, settings)

    def crash(day: date) -> None:
        if day == LIVE[4].date():
            raise KeyboardInterrupt("killed")

    with pytest.raises(KeyboardInterrupt):
        run_cycle(loaded, settings, MarketSelection(), LIVE[9].date(), retry_delays=(), before_commit=crash)
    assert ledger(settings) == [TODAY, *(d.date() for d in LIVE[:4])]
    restarted = run_cycle(loaded, settings, MarketSelection(), LIVE[9].date(), retry_delays=())
    assert restarted.processed == tuple(d.date() for d in LIVE[4:10])
    store = open_store(settings)
    try:
        rows = LiveLog(store).predictions("simulated")
    finally:
        store.dispose()
    assert not rows.duplicated(["session", "symbol", "run_id"]).any()
    assert sorted(rows["session"].dt.date.unique()) == [d.date() for d in LIVE[:10]]


def test_two_overlapping_cycles_never_both_process_a_session(world) -> None:
    loaded, settings = world
    train_and_promote(loaded, settings)
    run_cycle(loaded, settings, MarketSelection(), LIVE[11].date(), retry_delays=())
    refresh_bars(loaded, settings, MarketSelection(), LIVE[20].date())  # bars cached; nothing processed
    # Two cycles race over the same nine pending sessions.
    reports: list = []
    barrier = threading.Barrier(2)

    def one() -> None:
        barrier.wait()
        reports.append(process_sessions(loaded, settings, MarketSelection(), LIVE[20].date()))

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    processed = sorted(d for r in reports for d in r.processed)
    assert processed == [d.date() for d in LIVE[12:21]]  # every session once, whoever did it
    assert ledger(settings) == [TODAY, *(d.date() for d in LIVE[:21])]
    assert any(r.stopped for r in reports) or any(not r.processed for r in reports)


def test_live_scoring_matures_labels_feeds_replay_and_delivers_events_once(world) -> None:
    loaded, settings = world
    champion = train_and_promote(loaded, settings)
    challenger = train_and_promote(loaded, settings, alias="challenger", seed=1)
    delivered: list[dict] = []
    report = run_cycle(loaded, settings, MarketSelection(), LIVE[39].date(), emit=delivered.append,
                       retry_delays=())
    assert report.champion == champion and report.challenger == challenger
    store = open_store(settings)
    try:
        live = LiveLog(store)
        record = live.live_record("simulated", challenger)
        everything = live.predictions("simulated")
        summary = live.live_summary()
        buffer = ReplayBuffer(store, loaded.config.memory.replay).entries()
    finally:
        store.dispose()
    horizon = loaded.config.market.labels.horizon
    # The challenger has a live record; labels matured only `horizon` sessions after each prediction.
    assert len(record) > 0 and set(everything["role"]) == {"champion", "challenger"}
    matured_days = sorted(record["session"].dt.date.unique())
    assert matured_days == [d.date() for d in LIVE[:40 - horizon]]
    assert everything[everything["session"] > LIVE[39 - horizon]]["label"].isna().all()
    assert np.isfinite(record["loss"]).all()
    assert summary[challenger] == (len(record), pytest.approx(record["loss"].mean()))
    # The champion's worst matured errors reached the buffer, marked live.
    assert len(buffer) > 0 and set(buffer["event"]) == {"live"}
    assert set(buffer["model_version"]) == {champion}
    # The live storm (from the 21st live session) raised a rare event and drift, delivered once.
    kinds = {e["event"] for e in delivered}
    assert "stormwatch.rare-event.detected" in kinds and "stormwatch.drift.detected" in kinds
    storm = next(e for e in delivered if e["event"] == "stormwatch.rare-event.detected")
    assert date.fromisoformat(storm["payload"]["session"]) >= LIVE[20].date()
    assert storm["resource"]["prefect.resource.id"].startswith("stormwatch.rare-event.simulated.")
    assert len({e["id"] for e in delivered}) == len(delivered)
    again: list[dict] = []
    run_cycle(loaded, settings, MarketSelection(), LIVE[39].date(), emit=again.append, retry_delays=())
    assert again == []


@pytest.fixture(scope="module")
def harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


def test_the_prefect_flow_runs_a_cycle_and_a_second_finds_nothing_new(world, harness, tmp_path: Path) -> None:
    from flows.monitor import monitor

    loaded, settings = world
    config = str(monitor_config(tmp_path / "flow.yaml"))
    events: list[dict] = []
    report = monitor(config_path=config, through=LIVE[24].date(), sink=events.append)
    assert report.processed == tuple(d.date() for d in LIVE[:25])
    assert [e["event"] for e in report.delivered] == [e["event"] for e in events]
    again = monitor(config_path=config, through=LIVE[24].date(), sink=events.append)
    assert again.processed == () and again.delivered == ()


def test_the_command_runs_one_cycle_in_plain_python(world, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    loaded, settings = world
    config = monitor_config(tmp_path / "cli.yaml")
    result = CliRunner().invoke(app, ["monitor", "run", "--no-prefect", "--end", LIVE[1].date().isoformat(),
                                      "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert f"processed {LIVE[0].date()} to {LIVE[1].date()} (2 sessions)" in result.output


def test_the_live_storm_grows_the_archive_while_open_and_each_retraining_reads_the_monitors_version(
        world) -> None:
    from flows.archive import ARCHIVE_MILESTONE_SESSIONS, build_archive, cached_panel, with_discoveries
    from flows.training import archive_samples, label_regimes, refresh_market_data
    from flows.watch import grow_archive

    loaded, settings = world
    report = run_cycle(loaded, settings, MarketSelection(), LIVE[119].date(), retry_delays=())
    assert report.proposed and report.archived, report.describe()
    assert report.archive_versions and set(report.archived) <= set(report.proposed)
    steps = report.archive_steps
    (storm,) = {s.name for s in steps}
    assert steps[0].stage == "detected" and steps[0].end == steps[0].session  # the window so far
    assert f"open+{ARCHIVE_MILESTONE_SESSIONS}" in [s.stage for s in steps]  # grown while still open
    assert [s.session for s in steps] == sorted(s.session for s in steps)
    built = [s for s in steps if s.built]
    assert [s.version for s in built] == list(report.archive_versions) and built[0].samples > 0
    assert [s.samples for s in built] == sorted(s.samples for s in built)  # each stage a longer window
    # A retraining as of a stage's session (the event trigger's as-of) reads the version the monitor
    # built, with the storm's rows labelled by that session only; as of the last session, the latest.
    for step in (steps[0], built[0], steps[-1]):
        data = refresh_market_data(loaded, settings, MarketSelection(), step.session)
        archived = archive_samples(loaded, settings, data, label_regimes(loaded.config, data))
        assert archived.version == step.version and not archived.built
        rows = archived.samples.rows
        mine = rows[rows["event"].astype(str) == storm]
        assert len(mine) == step.samples
        assert (pd.to_datetime(mine["label_end"]) <= pd.Timestamp(step.session)).all()
        assert (mine.index.get_level_values("date") <= pd.Timestamp(step.end)).all()
    assert "2020 COVID crash" in set(archived.samples.rows["event"].astype(str))
    # Replay-safe: growing again builds nothing and finds the same version.
    _, panel = cached_panel(loaded, settings, selection=MarketSelection(end=LIVE[119].date()))
    assert grow_archive(loaded, settings, "simulated", panel) == ()
    base = build_archive(loaded, settings, "simulated", panel=panel)
    assert not base.built
    again = with_discoveries(loaded, settings, "simulated", base.version, panel)
    assert again.built == () and again.version == steps[-1].version
    # A retraining as of today (before the storm) reads the configured events only.
    before = refresh_market_data(loaded, settings, MarketSelection(), TODAY)
    assert archive_samples(loaded, settings, before, label_regimes(loaded.config, before)).version not in \
        report.archive_versions


def test_a_symbol_with_a_gap_in_its_bars_is_still_scored(world) -> None:
    from market.cache import BarCache

    loaded, settings = world
    champion = train_and_promote(loaded, settings)
    _, universe = open_selection(loaded, MarketSelection())
    holed = universe.symbols[5]
    path = BarCache(settings.cache_dir, "simulated").path_for(holed)
    bars = pd.read_parquet(path)
    gap = bars.index[-40:-37]  # three sessions missing, weeks before today
    bars.drop(index=gap).to_parquet(path)
    run_cycle(loaded, settings, MarketSelection(), LIVE[1].date(), retry_delays=())
    store = open_store(settings)
    try:
        scored = LiveLog(store).predictions("simulated", run_id=champion)
    finally:
        store.dispose()
    mine = scored[scored["symbol"] == holed]
    assert len(mine) == 2 and mine["probability"].between(0, 1).all()


def test_the_archive_job_holds_the_monitors_storm_and_a_second_run_changes_nothing(world, harness,
                                                                                   tmp_path: Path) -> None:
    from flows.archive import open_archive
    from flows.monitor import update_archive

    loaded, settings = world
    grown = run_cycle(loaded, settings, MarketSelection(), LIVE[119].date(), retry_delays=())
    config = str(monitor_config(tmp_path / "job.yaml"))
    first = update_archive(config_path=config)
    again = update_archive(config_path=config)
    assert first["source"] == "simulated" and first["versions"] == [] and again["versions"] == []
    archive = open_archive(settings)
    try:
        latest = archive.versions()[-1].version
        events = set(archive.counts(latest)["event"])
    finally:
        archive.store.dispose()
    assert latest == grown.archive_versions[-1] and set(grown.archived) <= events
