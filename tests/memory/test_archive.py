"""The rare-event archive: every event's samples, versioned, idempotent, on both backends."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from flows.config import load_config
from market.config import LabelSettings
from market.features import FEATURE_NAMES
from market.panel import BarPanel
from memory.archive import ArchiveNotBuilt, RareEventArchive
from memory.config import ArchiveConfig
from memory.store import Store
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
    """A symbol listed after an event began has fewer samples there, and the count says why."""
    panel = simulated_panel(date(2009, 6, 30), small_universe(1))
    late = panel.close.copy()
    late.loc[:"2008-06-30", "XOM"] = float("nan")
    panel = BarPanel(panel.open, panel.high, panel.low, late, panel.volume, panel.proxy, panel.vix, panel.sectors)
    crisis = archive_of("1.1.0", CONFIG.memory.archive.events[:1])
    build = RareEventArchive(tmp_path / "archive", store).build(crisis, panel, LABELS, "simulated")
    row = build.counts.iloc[0]
    assert row["dropped_lookback"] > 0
    assert row["samples"] + row["dropped_lookback"] + row["unlabelled"] == row["sessions"] * row["symbols"]
