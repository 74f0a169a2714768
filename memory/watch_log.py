"""What the monitor saw, stored: drift events and discovered rare events (SPEC.md modules 6, 7).

Three tables, written idempotently so that replaying the same sessions (a restarted monitor, a
second backtest) changes nothing:

* ``sw_drift_event``: one row per (source, detector, session) that raised drift, with the
  headline statistic, its threshold, the session the drift has lasted since, and what drifted;
* ``sw_discovered_event``: one row per (source, event name) proposed by rare-event discovery,
  its window, regime, status (open, closed, known), evidence and the archive version that holds
  it. Seeing the event again updates its window and status in place;
* ``sw_discovered_event_stage``: the stages at which a new (not known) discovered event grows
  the archive, each written once and never changed: ``detected`` (its window from its start to
  the session it was proposed on, with the regime it had then), the monitor's milestones while
  it lasts (``open+N``, N sessions after its detection) and ``closed`` (its whole window and
  final regime, on the session it closed), with the archive version that took it in. The
  event's row above changes as the event goes on; a stage keeps what was known at that session,
  so growing the archive with it gives the same version whenever it is done.

The rows arrive as the small frozen dataclasses below, built by a flow from the monitors' own
results, because ``memory`` does not import ``monitors``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Text, UniqueConstraint
from sqlmodel import Field, SQLModel, select

from memory.store import Store
from memory.tables import UTCDateTime, utc_now

__all__ = [
    "CLOSED", "DETECTED", "OPEN", "DiscoveredEventRecord", "DiscoveredEventRow", "DriftEventRecord",
    "DriftEventRow", "EventStageRecord", "discovered_events", "drift_events", "event_stages", "mark_archived",
    "mark_stage_archived", "open_stage", "record_discovered_events", "record_drift_events",
    "record_event_stage", "stage_rank",
]

#: The stages at which a discovered event grows the archive: when it is detected, then (the
#: monitor's milestones, ``open+N``) every so many sessions while it lasts, then when it closes.
DETECTED, OPEN, CLOSED = "detected", "open", "closed"


def open_stage(sessions: int) -> str:
    """The name of the milestone ``sessions`` sessions after an event's detection."""
    return f"{OPEN}+{sessions}"


def stage_rank(stage: str) -> tuple[int, int]:
    """Where ``stage`` comes among one event's stages (detected, open+N by N, closed)."""
    if stage == DETECTED:
        return (0, 0)
    if stage == CLOSED:
        return (2, 0)
    return (1, int(stage.partition("+")[2] or 0))


class DriftEventRecord(SQLModel, table=True):
    """One drift alarm: which detector, on which session, how strong, since when, what drifted.

    ``drifted`` is JSON: a list of ``{"name", "measure", "value", "threshold", "since"}``.
    """

    __tablename__ = "sw_drift_event"
    __table_args__ = (UniqueConstraint("source", "detector", "session", name="uq_sw_drift_event_key"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str
    detector: str
    session: date = Field(index=True)
    since: date | None = None
    measure: str
    value: float
    threshold: float
    drifted: str = Field(sa_type=Text)
    summary: str = Field(sa_type=Text)
    recorded_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)


class DiscoveredEventRecord(SQLModel, table=True):
    """One rare event discovered in live data, as it stands now.

    ``status`` is ``open`` while the event lasts, ``closed`` once it ended, ``known`` when its
    window overlaps a configured archive event (``known_as``), which is never added.
    ``evidence`` is JSON: a list of strings. ``archive_version`` is the version that holds it.
    """

    __tablename__ = "sw_discovered_event"
    __table_args__ = (UniqueConstraint("source", "name", name="uq_sw_discovered_event_key"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str
    name: str
    regime: str
    start: date
    end: date
    sessions: int
    proposed_on: date
    closed_on: date | None = None
    status: str
    known_as: str | None = None
    drawdown: float
    peak_vix: float
    evidence: str = Field(sa_type=Text)
    archive_version: str | None = None
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)


class EventStageRecord(SQLModel, table=True):
    """One stage at which a new discovered event grows the archive, as known on its session.

    ``stage`` is ``detected`` (``session`` is the proposal's, ``end`` equals it: the window so
    far), ``open+N`` (a milestone ``N`` sessions later, while the event lasts: ``end`` is its
    last stormy session by then) or ``closed`` (``session`` is the one it closed on, ``end`` its
    last stormy session).
    Written once, when the stage is first recorded, and never changed but for
    ``archive_version``: the version the archive had once this stage was added (the same as
    before it when the window held no labelled sample).
    """

    __tablename__ = "sw_discovered_event_stage"
    __table_args__ = (UniqueConstraint("source", "name", "stage", name="uq_sw_discovered_event_stage_key"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str
    name: str
    stage: str
    session: date = Field(index=True)
    start: date
    end: date
    regime: str
    archive_version: str | None = None
    recorded_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)


@dataclass(frozen=True)
class DriftEventRow:
    """A drift alarm to record (see :class:`DriftEventRecord`)."""

    detector: str
    session: date
    since: date | None
    measure: str
    value: float
    threshold: float
    drifted: tuple[dict[str, object], ...]
    summary: str


@dataclass(frozen=True)
class DiscoveredEventRow:
    """A discovered event's current state to record (see :class:`DiscoveredEventRecord`)."""

    name: str
    regime: str
    start: date
    end: date
    sessions: int
    proposed_on: date
    closed_on: date | None
    status: str
    known_as: str | None
    drawdown: float
    peak_vix: float
    evidence: tuple[str, ...]


def _finite(value: float) -> float:
    """NaN is not portable across backends' float columns: store it as -1 (never a statistic)."""
    return float(value) if value == value else -1.0


def record_drift_events(store: Store, *, source: str, rows: Sequence[DriftEventRow]) -> int:
    """Record drift alarms once per (source, detector, session); return how many were new."""
    added = 0
    with store.session() as session:
        for row in rows:
            values = {
                "source": source, "detector": row.detector, "session": row.session, "since": row.since,
                "measure": row.measure, "value": _finite(row.value), "threshold": _finite(row.threshold),
                "drifted": json.dumps(list(row.drifted), default=str), "summary": row.summary,
                "recorded_at": utc_now(),
            }
            exists = session.exec(select(DriftEventRecord.id).where(
                DriftEventRecord.source == source, DriftEventRecord.detector == row.detector,
                DriftEventRecord.session == row.session)).first()
            if exists is None:
                store._insert_if_absent(session, DriftEventRecord, values, ("source", "detector", "session"))
                added += 1
    return added


def drift_events(store: Store, *, source: str | None = None) -> list[DriftEventRecord]:
    """Recorded drift alarms, by session then detector."""
    query = select(DriftEventRecord)
    if source is not None:
        query = query.where(DriftEventRecord.source == source)
    with store.session() as session:
        return list(session.exec(query.order_by(DriftEventRecord.session, DriftEventRecord.detector)).all())


def _stages(row: DiscoveredEventRow) -> list[dict[str, object]]:
    """The archive stages ``row``'s state has reached (none for an event overlapping a configured one)."""
    if row.known_as is not None or row.status == "known":
        return []
    stages: list[dict[str, object]] = [
        {"stage": DETECTED, "session": row.proposed_on, "start": row.start, "end": row.proposed_on,
         "regime": row.regime}]
    if row.status == "closed" and row.closed_on is not None:
        stages.append({"stage": CLOSED, "session": row.closed_on, "start": row.start, "end": row.end,
                       "regime": row.regime})
    return stages


def _insert_stage(store: Store, db: Any, *, source: str, name: str, stage: str, **values: Any) -> bool:
    """Insert one archive stage unless it is recorded already; whether it was new."""
    exists = db.exec(select(EventStageRecord.id).where(
        EventStageRecord.source == source, EventStageRecord.name == name,
        EventStageRecord.stage == stage)).first()
    if exists is not None:
        return False
    store._insert_if_absent(db, EventStageRecord, {"source": source, "name": name, "stage": stage,
                                                   "recorded_at": utc_now(), **values},
                            ("source", "name", "stage"))
    return True


def record_event_stage(store: Store, *, source: str, name: str, stage: str, session: date, start: date,
                       end: date, regime: str) -> bool:
    """Record an archive stage of a discovered event once (a milestone the monitor reached);
    return whether it was new. Recording it again, with whatever values, changes nothing."""
    with store.session() as db:
        return _insert_stage(store, db, source=source, name=name, stage=stage, session=session, start=start,
                             end=end, regime=regime)


def record_discovered_events(store: Store, *, source: str, rows: Sequence[DiscoveredEventRow]) -> int:
    """Insert new events and bring known ones up to date (window, status, evidence); return how
    many rows were inserted or changed. Recording the same state again changes nothing.

    The archive stages the event has reached are recorded too, each the first time it is seen
    (the monitor records every session, so the ``detected`` stage keeps the regime of the
    proposal's session); they are not counted."""
    changed = 0
    with store.session() as session:
        for row in rows:
            for stage in _stages(row):
                _insert_stage(store, session, source=source, name=row.name, **stage)  # type: ignore[arg-type]
            values = {
                "regime": row.regime, "start": row.start, "end": row.end, "sessions": row.sessions,
                "proposed_on": row.proposed_on, "closed_on": row.closed_on, "status": row.status,
                "known_as": row.known_as, "drawdown": _finite(row.drawdown),
                "peak_vix": _finite(row.peak_vix),
                "evidence": json.dumps(list(row.evidence)),
            }
            record = session.exec(select(DiscoveredEventRecord).where(
                DiscoveredEventRecord.source == source, DiscoveredEventRecord.name == row.name)).first()
            if record is None:
                fresh = {"source": source, "name": row.name, "updated_at": utc_now(), **values}
                store._insert_if_absent(session, DiscoveredEventRecord, fresh, ("source", "name"))
                changed += 1
            elif any(getattr(record, key) != value for key, value in values.items()):
                for key, value in values.items():
                    setattr(record, key, value)
                record.updated_at = utc_now()
                session.add(record)
                changed += 1
    return changed


def discovered_events(store: Store, *, source: str | None = None) -> list[DiscoveredEventRecord]:
    """Recorded discovered events, by start."""
    query = select(DiscoveredEventRecord)
    if source is not None:
        query = query.where(DiscoveredEventRecord.source == source)
    with store.session() as session:
        return list(session.exec(query.order_by(DiscoveredEventRecord.start)).all())


def mark_archived(store: Store, *, source: str, names: Sequence[str], version: str) -> None:
    """Note that archive ``version`` holds the discovered events ``names``."""
    with store.session() as session:
        for name in names:
            record = session.exec(select(DiscoveredEventRecord).where(
                DiscoveredEventRecord.source == source, DiscoveredEventRecord.name == name)).first()
            if record is not None and record.archive_version != version:
                record.archive_version = version
                record.updated_at = utc_now()
                session.add(record)


def event_stages(store: Store, *, source: str) -> list[EventStageRecord]:
    """The archive stages of ``source``'s new discovered events, in the order the archive takes
    them: by session, a detection before a close on the same session, then by name."""
    with store.session() as session:
        records = list(session.exec(select(EventStageRecord).where(EventStageRecord.source == source)).all())
    return sorted(records, key=lambda r: (r.session, stage_rank(r.stage), r.name))


def mark_stage_archived(store: Store, *, source: str, name: str, stage: str, version: str) -> None:
    """Note that archive ``version`` is where the archive stood once stage ``stage`` of ``name`` was added."""
    with store.session() as session:
        record = session.exec(select(EventStageRecord).where(
            EventStageRecord.source == source, EventStageRecord.name == name,
            EventStageRecord.stage == stage)).first()
        if record is not None and record.archive_version != version:
            record.archive_version = version
            session.add(record)
