"""The hybrid set: window, archive rows at their events' configured shares, capped replay."""

from __future__ import annotations

import numpy as np
import pandas as pd

from market.samples import Samples
from memory.config import ArchiveEvent, HybridConfig, ReplayConfig
from memory.hybrid import archive_by_event_weight, assemble_hybrid

EVENTS = (
    ArchiveEvent(name="long bear", start="2022-01-03", end="2022-12-30", regime="high_volatility", weight=0.2),
    ArchiveEvent(name="short crash", start="2018-02-01", end="2018-02-28", regime="crash", weight=0.5),
    ArchiveEvent(name="recovery", start="2020-03-24", end="2020-06-30", regime="recovery", weight=0.3),
)


def samples(days: pd.DatetimeIndex, regime: str, event: str = "", symbols: int = 5) -> Samples:
    index = pd.MultiIndex.from_product([days, [f"S{i}" for i in range(symbols)]], names=["date", "symbol"])
    rng = np.random.default_rng(len(index))
    rows = pd.DataFrame({"label_end": index.get_level_values("date") + pd.Timedelta(days=7), "regime": regime,
                         "event": event, "forward_return": 0.01, "sector": "Energy"}, index=index)
    return Samples(pd.DataFrame(rng.normal(size=(len(index), 2)), index=index, columns=["x", "y"]),
                   pd.Series(rng.integers(0, 2, len(index)), index=index), rows)


def archive() -> Samples:
    return Samples.concat([
        samples(pd.bdate_range("2022-01-03", "2022-12-30"), "high_volatility", "long bear"),
        samples(pd.bdate_range("2018-02-01", "2018-02-28"), "crash", "short crash"),
        samples(pd.bdate_range("2020-03-24", "2020-06-30"), "recovery", "recovery"),
    ])


def test_each_events_share_of_archive_rows_follows_its_weight() -> None:
    held = archive()
    drawn, table = archive_by_event_weight(held, EVENTS, rows="all", seed=0)
    assert len(drawn) == len(held)
    shares = drawn.rows["event"].value_counts(normalize=True)
    for event in EVENTS:
        assert abs(shares[event.name] - event.weight) <= 1 / len(held)
    short = table.set_index("event").loc["short crash"]
    assert short["taken"] > short["available"]  # a short event is drawn with replacement
    kept = drawn.rows[drawn.rows["event"] == "short crash"].index.unique()
    assert len(kept) == short["available"]  # ... keeping every original row


def test_assembly_tags_provenance_and_caps_replay() -> None:
    window = samples(pd.bdate_range("2025-01-02", periods=200), "normal")
    replay = samples(pd.bdate_range("2024-06-03", periods=100), "crash").assign(loss=1.0)
    hybrid = assemble_hybrid(window, archive(), replay, events=EVENTS, hybrid=HybridConfig(),
                             replay_config=ReplayConfig(max_share_of_training=0.1))
    provenance = hybrid.samples.rows["provenance"].astype(str)
    assert set(provenance) == {"window", "archive", "replay"}
    assert (provenance == "replay").mean() <= 0.10
    assert hybrid.counts.loc["window", "total"] == len(window)
    assert hybrid.counts.loc["total", "total"] == len(hybrid.samples)
    assert "archive · short crash" in hybrid.counts.index
    assert list(hybrid.samples.features.columns) == ["x", "y"]  # metadata never becomes a feature


def test_a_small_archive_is_not_inflated_to_the_configured_row_count() -> None:
    held = archive()
    drawn, table = archive_by_event_weight(held, EVENTS, rows=10 * len(held), seed=0)
    assert len(drawn) == len(held) and table["taken"].sum() == len(held)
    fewer, _ = archive_by_event_weight(held, EVENTS, rows=len(held) // 2, seed=0)
    assert len(fewer) == len(held) // 2
