"""The watch log's archive stages: each recorded once, as known on its session, on both backends."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from memory.store import Store
from memory.watch_log import (
    DiscoveredEventRow,
    event_stages,
    mark_stage_archived,
    open_stage,
    record_discovered_events,
    record_event_stage,
)

EVENT = DiscoveredEventRow(name="storm of 2026-12-22", regime="high_volatility", start=date(2026, 12, 22),
                           end=date(2026, 12, 24), sessions=3, proposed_on=date(2026, 12, 24), closed_on=None,
                           status="open", known_as=None, drawdown=-0.05, peak_vix=31.0, evidence=())


def stages(store: Store) -> list[tuple]:
    return [(s.stage, s.session, s.start, s.end, s.regime, s.archive_version)
            for s in event_stages(store, source="simulated")]


def test_an_events_stages_keep_what_was_known_on_their_session(store: Store) -> None:
    assert record_discovered_events(store, source="simulated", rows=[EVENT]) == 1
    detected = ("detected", date(2026, 12, 24), date(2026, 12, 22), date(2026, 12, 24), "high_volatility", None)
    assert stages(store) == [detected]
    # The event goes on and worsens: its row changes, its detection stage does not.
    grown = replace(EVENT, end=date(2027, 1, 20), sessions=20, regime="crash")
    assert record_discovered_events(store, source="simulated", rows=[grown]) == 1
    assert record_event_stage(store, source="simulated", name=EVENT.name, stage=open_stage(20),
                              session=date(2027, 1, 25), start=EVENT.start, end=date(2027, 1, 20), regime="crash")
    assert not record_event_stage(store, source="simulated", name=EVENT.name, stage=open_stage(20),
                                  session=date(2027, 1, 26), start=EVENT.start, end=date(2027, 1, 26),
                                  regime="recovery")
    closed = replace(grown, end=date(2027, 2, 8), closed_on=date(2027, 2, 17), status="closed")
    assert record_discovered_events(store, source="simulated", rows=[closed]) == 1
    assert record_discovered_events(store, source="simulated", rows=[closed]) == 0  # nothing new, stages neither
    milestone = ("open+20", date(2027, 1, 25), EVENT.start, date(2027, 1, 20), "crash", None)
    final = ("closed", date(2027, 2, 17), EVENT.start, date(2027, 2, 8), "crash", None)
    assert stages(store) == [detected, milestone, final]
    mark_stage_archived(store, source="simulated", name=EVENT.name, stage="open+20", version="1.1.0+abcd1234")
    assert [s[-1] for s in stages(store)] == [None, "1.1.0+abcd1234", None]
    assert event_stages(store, source="bundled") == []


def test_a_known_event_has_no_stage_and_stages_sort_by_session(store: Store) -> None:
    known = replace(EVENT, name="storm of 2020-02-24", start=date(2020, 2, 24), proposed_on=date(2020, 2, 26),
                    status="known", known_as="2020 COVID crash")
    later = replace(EVENT, name="storm of 2026-12-23", start=date(2026, 12, 23), proposed_on=date(2026, 12, 23))
    record_discovered_events(store, source="simulated", rows=[known, EVENT, later])
    assert [(s.name, s.session) for s in event_stages(store, source="simulated")] == [
        ("storm of 2026-12-23", date(2026, 12, 23)), (EVENT.name, date(2026, 12, 24))]
