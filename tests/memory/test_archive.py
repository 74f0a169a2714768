"""The rare-event archive: every event's samples, versioned, idempotent, on both backends."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from flows.config import load_config
from market.config import LabelSettings
from market.features import FEATURE_NAMES
from market.panel import BarPanel
from market.samples import build_samples
from memory.archive import ArchiveNotBuilt, RareEventArchive
from memory.config import ArchiveConfig, ArchiveEvent
from memory.store import Store
from memory.watch_log import (
    DiscoveredEventRow,
    DriftEventRow,
    discovered_events,
    drift_events,
    mark_archived,
    record_discovered_events,
    record_drift_events,
)
from tests.panels import simulated_panel, small_universe

CONFIG = load_config().config
LABELS = LabelSettings()


def archive_of(version: str, events) -> ArchiveConfig:  # noqa: ANN001 - a list of ArchiveEvent
    """An archive of some events, their weights rescaled to sum to 1 as validation requires."""
    total = sum(e.weight for e in events)
    return ArchiveConfig(version=version, events=tuple(e.model_copy(update={"weight": e.weight / total})
                                                        for e in events))


@pytest.fixture(scope="module")
def full_panel() -> BarPanel:
    """The default 76-symbol universe through mid-2023: every archive window with its labels."""
    return simulated_panel(date(2023, 6, 30))


@pytest.fixture(scope="module")
def small_panel() -> BarPanel:
    return simulated_panel(date(2023, 6, 30), small_universe())


def test_the_default_archive_has_every_event_with_full_counts(full_panel: BarPanel, tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path / 'db.sqlite'}") as store:
        archive = RareEventArchive(tmp_path / "archive", store)
        build = archive.build(CONFIG.memory.archive, full_panel, LABELS, "simulated")
        samples = archive.load()
    assert build.built and build.version == "1.1.0"
    events = CONFIG.memory.archive.events
    assert list(build.counts["event"]) == [e.name for e in events]
    for event, row in zip(events, build.counts.to_dict("records"), strict=True):
        sessions = full_panel.sessions[(full_panel.sessions >= pd.Timestamp(event.start))
                                       & (full_panel.sessions <= pd.Timestamp(event.end))]
        assert row["sessions"] == len(sessions) and row["symbols"] == 76
        # The simulated history starts in 2005, long before any window: no row lacks its lookback
        # and every window ends more than a horizon before the data does.
        assert row["samples"] == len(sessions) * 76 - row["unlabelled"]
        assert row["unlabelled"] == 0 and row["dropped_lookback"] == 0
        rows = samples[samples["event"] == event.name]
        assert len(rows) == row["samples"]
        assert set(rows["regime"]) == {event.regime.value}
        dates = rows.index.get_level_values("date")
        assert dates.min() == sessions[0] and dates.max() == sessions[-1]
    assert list(samples.columns[: len(FEATURE_NAMES)]) == list(FEATURE_NAMES)
    assert samples["label"].isin([0.0, 1.0]).all()
    assert (samples["label_end"] > samples.index.get_level_values("date")).all()


def test_the_archive_is_the_whole_span_cut_to_each_event(small_panel: BarPanel, tmp_path: Path) -> None:
    """Only the events' sessions are computed, a few symbols at a time, and written event by event:
    the samples are those of one computation over the whole span from the first window to the
    last, cut to each window, in the same order and with the same types."""
    with Store(f"sqlite:///{tmp_path / 'db.sqlite'}") as store:
        archive = RareEventArchive(tmp_path / "archive", store)
        archive.build(CONFIG.memory.archive, small_panel, LABELS, "simulated", chunk_symbols=5)
        samples = archive.load()
    events = CONFIG.memory.archive.events
    span = build_samples(small_panel, min(e.start for e in events), max(e.end for e in events),
                         provenance="archive", require_label=False, partial=True,
                         chunk_symbols=len(small_panel.symbols)).frame
    dates = span.index.get_level_values("date")
    expected = pd.concat([
        span.loc[(dates >= pd.Timestamp(e.start)) & (dates <= pd.Timestamp(e.end)) & span["label"].notna()]
        .assign(event=e.name, regime=e.regime.value) for e in events])
    expected = expected.astype({"event": "category", "regime": "category",
                                "provenance": pd.CategoricalDtype(["archive"])})
    assert len(samples) > 10_000
    pd.testing.assert_frame_equal(samples, expected, check_exact=True)


def test_rebuild_is_a_no_op_and_a_change_makes_a_new_readable_version(store: Store, small_panel: BarPanel,
                                                                     tmp_path: Path) -> None:
    archive = RareEventArchive(tmp_path / "archive", store)
    with pytest.raises(ArchiveNotBuilt):
        archive.load()
    first = archive.build(CONFIG.memory.archive, small_panel, LABELS, "simulated")
    again = archive.build(CONFIG.memory.archive, small_panel, LABELS, "simulated")
    assert first.built and not again.built
    assert again.version == first.version == "1.1.0" and again.content_hash == first.content_hash
    assert len(archive.versions()) == 1

    events = list(CONFIG.memory.archive.events)
    events[1] = events[1].model_copy(update={"end": date(2011, 9, 30)})
    changed = ArchiveConfig(version="1.1.0", events=tuple(events))
    second = archive.build(changed, small_panel, LABELS, "simulated")
    assert second.built and second.version == f"1.1.0+{second.content_hash[:8]}"
    assert second.counts.loc[1, "sessions"] > first.counts.loc[1, "sessions"]
    # The old version stays readable, unchanged.
    pd.testing.assert_frame_equal(archive.load("1.1.0"), pd.read_parquet(first.path))
    assert archive.counts("1.1.0").loc[1, "samples"] == first.counts.loc[1, "samples"]

    bumped = archive.build(archive_of("1.2.0", events[:3]), small_panel, LABELS,
                           "simulated")
    assert bumped.version == "1.2.0" and len(bumped.counts) == 3
    assert [v.version for v in archive.versions()] == ["1.1.0", second.version, "1.2.0"]
    assert archive.latest_version() == "1.2.0"

    relabelled = archive.build(CONFIG.memory.archive, small_panel, LabelSettings(horizon=10), "simulated")
    assert relabelled.built and relabelled.content_hash != first.content_hash


def test_a_short_history_is_counted_not_hidden(store: Store, tmp_path: Path) -> None:
    """A symbol listed after an event began has fewer samples there, and the count says why: its
    rows are kept with their long-window features undefined (``partial``), and unlabelled where
    the excess-return label's 252-session beta does not exist yet; with every feature required
    (``partial=False``) they are dropped for their lookback instead, and the identity differs."""
    panel = simulated_panel(date(2009, 6, 30), small_universe(1))
    late = panel.close.copy()
    late.loc[:"2008-06-30", "XOM"] = float("nan")
    panel = BarPanel(panel.open, panel.high, panel.low, late, panel.volume, panel.proxy, panel.vix, panel.sectors)
    crisis = archive_of("1.1.0", CONFIG.memory.archive.events[:1])
    archive = RareEventArchive(tmp_path / "archive", store)
    excess = archive.build(crisis, panel, LABELS, "simulated")
    total = archive.build(crisis, panel, LabelSettings(kind="total"), "simulated")
    strict = archive.build(crisis, panel, LABELS, "simulated", partial=False)
    assert len({excess.content_hash, total.content_hash, strict.content_hash}) == 3
    assert all(build.built for build in (excess, total, strict))
    for build in (excess, total, strict):
        row = build.counts.iloc[0]
        assert row["samples"] + row["dropped_lookback"] + row["unlabelled"] == row["sessions"] * row["symbols"]
    assert excess.counts.iloc[0]["dropped_lookback"] == 0 and excess.counts.iloc[0]["unlabelled"] > 0
    assert strict.counts.iloc[0]["dropped_lookback"] > 0
    young = archive.load(total.version).xs("XOM", level="symbol")
    first_session = panel.sessions[panel.sessions >= pd.Timestamp(crisis.events[0].start)][0]
    assert young.index[0] == first_session and young["ret_1"].notna().all()
    assert young["ret_250"].isna().all() and young["vol_20"].notna().all()


# -- growth by discovered events ---------------------------------------------------------------

DISCOVERED = ArchiveEvent(name="storm of 2012-05-14", start=date(2012, 5, 14), end=date(2012, 5, 25),
                          regime="high_volatility", weight=0.05)


def test_a_discovered_event_is_added_once_as_a_new_version(store: Store, small_panel: BarPanel,
                                                            tmp_path: Path) -> None:
    archive = RareEventArchive(tmp_path / "archive", store)
    base = archive.build(CONFIG.memory.archive, small_panel, LABELS, "simulated")
    grown = archive.add_events([DISCOVERED], small_panel, LABELS, "simulated")
    assert grown.built and grown.base == "1.1.0" and grown.added == (DISCOVERED.name,)
    assert grown.version.startswith("1.1.0+") and archive.latest_version() == grown.version
    samples = archive.load(grown.version)
    mine = samples[samples["event"] == DISCOVERED.name]
    assert len(mine) == 10 * len(small_panel.symbols) and set(mine["regime"]) == {"high_volatility"}
    # Every configured event is still there, unchanged, and the weights still sum to one.
    old = archive.load("1.1.0")
    pd.testing.assert_frame_equal(samples[samples["event"] != DISCOVERED.name].reset_index(drop=True),
                                  old.astype({"event": str, "regime": str, "provenance": str})
                                  .astype({"event": "category", "regime": "category", "provenance": "category"})
                                  .reset_index(drop=True), check_categorical=False)
    assert grown.counts["weight"].sum() == pytest.approx(1.0)
    assert grown.counts.iloc[-1]["weight"] == 0.05 and len(grown.counts) == len(base.counts) + 1

    # Seeing the same event again adds nothing, from the grown version or from the base.
    again = archive.add_events([DISCOVERED], small_panel, LABELS, "simulated")
    from_base = archive.add_events([DISCOVERED], small_panel, LABELS, "simulated", base="1.1.0")
    assert not again.built and again.version == grown.version and again.added == ()
    assert not from_base.built and from_base.version == grown.version
    assert len(archive.versions()) == 2

    # The event lasted longer: its window is extended in one more version, its rows replaced.
    longer = DISCOVERED.model_copy(update={"end": date(2012, 6, 8)})
    extended = archive.add_events([longer], small_panel, LABELS, "simulated")
    assert extended.built and extended.base == grown.version
    rows = archive.load(extended.version)
    window = small_panel.sessions[(small_panel.sessions >= "2012-05-14") & (small_panel.sessions <= "2012-06-08")]
    assert len(window) == 19  # Memorial Day
    assert (rows["event"] == DISCOVERED.name).sum() == len(window) * len(small_panel.symbols)
    assert len(archive.versions()) == 3


def test_growth_needs_an_archive_of_the_same_source_and_skips_events_without_samples(
        store: Store, small_panel: BarPanel, tmp_path: Path) -> None:
    archive = RareEventArchive(tmp_path / "archive", store)
    with pytest.raises(ArchiveNotBuilt, match="no archive has been built from bundled"):
        archive.add_events([DISCOVERED], small_panel, LABELS, "bundled")
    archive.build(CONFIG.memory.archive, small_panel, LABELS, "simulated")
    beyond = DISCOVERED.model_copy(update={"name": "storm of 2030-01-02", "start": date(2030, 1, 2),
                                           "end": date(2030, 1, 9)})
    growth = archive.add_events([beyond], small_panel, LABELS, "simulated")
    assert not growth.built and growth.empty == ("storm of 2030-01-02",) and len(archive.versions()) == 1


# -- the watch log ------------------------------------------------------------------------------

def test_drift_and_discovered_events_are_recorded_once(store: Store) -> None:
    drift = DriftEventRow(detector="feature", session=date(2026, 12, 23), since=date(2026, 12, 22),
                          measure="share of features drifted", value=0.4, threshold=0.15,
                          drifted=({"name": "vol_5", "measure": "psi", "value": 2.1, "threshold": 0.3,
                                    "since": "2026-12-22"},), summary="feature drift")
    assert record_drift_events(store, source="simulated", rows=[drift]) == 1
    assert record_drift_events(store, source="simulated", rows=[drift, drift]) == 0
    assert record_drift_events(store, source="bundled", rows=[drift]) == 1
    (recorded,) = drift_events(store, source="simulated")
    assert recorded.since == date(2026, 12, 22) and "vol_5" in recorded.drifted

    event = DiscoveredEventRow(name="storm of 2026-12-22", regime="high_volatility", start=date(2026, 12, 22),
                               end=date(2026, 12, 24), sessions=3, proposed_on=date(2026, 12, 24),
                               closed_on=None, status="open", known_as=None, drawdown=-0.05, peak_vix=31.0,
                               evidence=("volatility change point (2026-12-23)",))
    assert record_discovered_events(store, source="simulated", rows=[event]) == 1
    assert record_discovered_events(store, source="simulated", rows=[event]) == 0
    closed = replace(event, end=date(2027, 1, 8), regime="crash", closed_on=date(2027, 1, 18), status="closed")
    assert record_discovered_events(store, source="simulated", rows=[closed]) == 1
    mark_archived(store, source="simulated", names=[event.name], version="1.1.0+abcd1234")
    (stored,) = discovered_events(store, source="simulated")
    assert (stored.end, stored.regime, stored.status, stored.archive_version) == (
        date(2027, 1, 8), "crash", "closed", "1.1.0+abcd1234")


def test_the_identity_covers_every_input_a_sample_reads_and_nothing_after(small_panel: BarPanel,
                                                                            tmp_path: Path) -> None:
    from memory.archive import archive_content_hash

    config = archive_of("9.0.0", [e for e in CONFIG.memory.archive.events if e.name == "2020 COVID crash"])
    end = pd.Timestamp("2020-03-23")
    sessions = small_panel.sessions
    after = sessions[sessions.searchsorted(end) + LABELS.horizon]  # the last close a label of the event reads
    beyond = sessions[sessions.searchsorted(end) + LABELS.horizon + 1]
    symbol = small_panel.symbols[0]

    def changed(field: str, day: pd.Timestamp, column: str | None = None) -> BarPanel:
        frame = getattr(small_panel, field).copy()
        if isinstance(frame, pd.Series):
            frame.loc[day] *= 1.01
        else:
            frame.loc[day, column or frame.columns[0]] *= 1.01
        return replace(small_panel, **{field: frame})

    base = archive_content_hash(config, LABELS, "simulated", small_panel)
    assert archive_content_hash(config, LABELS, "simulated", replace(small_panel)) == base
    for panel in (changed("proxy", pd.Timestamp("2019-06-03"), "close"), changed("vix", pd.Timestamp("2020-03-02")),
                  changed("volume", pd.Timestamp("2020-03-02")), changed("close", after),
                  changed("open", pd.Timestamp("2010-01-04")),
                  replace(small_panel, sectors={**small_panel.sectors, symbol: "Unknown"})):
        assert archive_content_hash(config, LABELS, "simulated", panel) != base
    assert archive_content_hash(config, LABELS.model_copy(update={"horizon": 10}), "simulated", small_panel) != base
    assert archive_content_hash(config, LABELS, "simulated", changed("close", beyond)) == base
    assert archive_content_hash(config, LABELS, "simulated", small_panel.truncate(beyond)) == base

    with Store(f"sqlite:///{tmp_path / 'db.sqlite'}") as store:
        archive = RareEventArchive(tmp_path / "archive", store)
        first = archive.build(config, small_panel, LABELS, "simulated")
        again = archive.build(config, small_panel.truncate(beyond), LABELS, "simulated")
        corrected = archive.build(config, changed("close", after), LABELS, "simulated")
    assert first.built and not again.built and again.version == first.version
    assert corrected.built and corrected.version != first.version


def test_growing_an_archive_with_an_empty_event_keeps_its_columns(small_panel: BarPanel, tmp_path: Path) -> None:
    """An event with no labelled sample yet (its window ends within a horizon of the data) is an
    empty row group, which reads back with no categories at all: growing that archive must still
    write every part with the same columns."""
    unlabelled = ArchiveEvent(name="too recent", start=date(2023, 6, 27), end=date(2023, 6, 30), regime="crash",
                              weight=0.5)
    events = [CONFIG.memory.archive.events[0], unlabelled]
    with Store(f"sqlite:///{tmp_path / 'db.sqlite'}") as store:
        archive = RareEventArchive(tmp_path / "archive", store)
        base = archive.build(archive_of("9.0.0", events), small_panel, LABELS, "simulated")
        assert base.counts.set_index("event").loc["too recent", "samples"] == 0
        grown = archive.add_events([DISCOVERED], small_panel, LABELS, "simulated")
        samples = archive.load(grown.version)
    assert grown.built and set(samples["event"]) == {events[0].name, DISCOVERED.name}
    assert list(samples["sector"].cat.categories) == sorted(set(small_panel.sectors.values()))
