"""The monitor's live record: which sessions it processed, its detectors' state, its predictions.

A monitor cycle may crash, be killed, or overlap another cycle; each session must still be
processed exactly once. So everything a session changes in the database is written in one
transaction (:meth:`LiveLog.commit_session`) that also moves the monitor's state forward with
a compare-and-swap on the last processed session: a second writer that read the same state
finds it moved and rolls back everything it would have written (:class:`SessionAlreadyProcessed`);
a crash before the commit leaves nothing, and the next cycle processes the session again from
the state before it.

Three tables:

* ``sw_monitor_state``: per source, the last processed session, the run ids the detectors were
  built for, and the detectors' state (a pickle of the monitors' own objects, whose SHA-256 is
  checked before it is read; it is written and read only by Stormwatch's monitor);
* ``sw_monitor_session``: one row per (source, session) processed, with what the cycle saw and
  the Prefect events it raised (kept until they are delivered, so none is lost to a crash
  between the commit and the emission);
* ``sw_live_prediction``: each model's probability per (source, session, symbol, run), the
  label and log loss filled in once the label has matured. Champion and challenger are both
  scored, so a challenger arrives at the gate with a live record.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import pandas as pd
from sqlalchemy import LargeBinary, Text, UniqueConstraint, insert, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, func, select

from memory.store import Store
from memory.tables import UTCDateTime, utc_now

__all__ = [
    "LiveLog", "LivePrediction", "MonitorSessionRecord", "MonitorState", "MonitorStateRecord",
    "SessionAlreadyProcessed", "SessionWrite",
]


class SessionAlreadyProcessed(RuntimeError):
    """Another monitor processed this session (or moved the state) first: nothing was written."""


class MonitorStateRecord(SQLModel, table=True):
    """The monitor's position and detectors for one source."""

    __tablename__ = "sw_monitor_state"

    source: str = Field(primary_key=True)
    session: date
    champion: str | None = None
    challenger: str | None = None
    state: bytes = Field(sa_type=LargeBinary)
    sha256: str
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)


class MonitorSessionRecord(SQLModel, table=True):
    """One processed session. ``summary`` and ``events`` are JSON; ``delivered`` turns true once
    every event of the session was emitted."""

    __tablename__ = "sw_monitor_session"
    __table_args__ = (UniqueConstraint("source", "session", name="uq_sw_monitor_session_key"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str
    session: date = Field(index=True)
    champion: str | None = None
    challenger: str | None = None
    scored: int = 0
    regime: str | None = None
    summary: str = Field(default="{}", sa_type=Text)
    events: str = Field(default="[]", sa_type=Text)
    delivered: bool = False
    flow_run_id: str = ""
    processed_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)


class LivePrediction(SQLModel, table=True):
    """A model's live probability that ``symbol`` beats the market over the label horizon."""

    __tablename__ = "sw_live_prediction"
    __table_args__ = (
        UniqueConstraint("source", "session", "symbol", "run_id", name="uq_sw_live_prediction_key"),
    )

    id: int | None = Field(default=None, primary_key=True)
    source: str
    session: date = Field(index=True)
    symbol: str
    run_id: str = Field(index=True)
    role: str  # champion or challenger when it was scored
    probability: float
    label: int | None = None
    loss: float | None = None


@dataclass(frozen=True)
class MonitorState:
    """The monitor's position: the last session it processed and its detectors, restored."""

    session: date
    champion: str | None
    challenger: str | None
    detectors: Any


@dataclass(frozen=True)
class SessionWrite:
    """Everything one processed session writes, committed together.

    ``predictions`` has columns symbol, run_id, role, probability; ``matured`` has session,
    symbol, run_id, label, loss (predictions of earlier sessions whose labels are now known).
    ``events`` are the Prefect events to deliver (dicts with ``event``, ``resource``, ``payload``
    and ``id``). ``extra`` runs inside the transaction with its session (a replay admission).
    """

    session: date
    detectors: Any
    champion: str | None = None
    challenger: str | None = None
    regime: str | None = None
    predictions: pd.DataFrame | None = None
    matured: pd.DataFrame | None = None
    summary: Mapping[str, Any] = field(default_factory=dict)
    events: Sequence[Mapping[str, Any]] = ()
    flow_run_id: str = ""
    extra: Callable[[Session], Any] | None = None


def _digest(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


class LiveLog:
    """The monitor's record in ``store``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- state -----------------------------------------------------------------------------------

    def state(self, source: str) -> MonitorState | None:
        """The last committed state of ``source``'s monitor, or ``None`` before its first session.

        Raises
        ------
        RuntimeError
            If the stored state does not match its SHA-256 (it is then not unpickled).
        """
        with self.store.session() as session:
            row = session.get(MonitorStateRecord, source)
        if row is None:
            return None
        if _digest(row.state) != row.sha256:
            raise RuntimeError(f"the monitor state of {source} in sw_monitor_state does not match its "
                               "checksum: refusing to read it (delete the row to start the monitor afresh)")
        return MonitorState(session=row.session, champion=row.champion, challenger=row.challenger,
                            detectors=pickle.loads(row.state))  # noqa: S301 - our own state, checksum verified

    def commit_session(self, source: str, previous: date | None, write: SessionWrite,
                       *, before_commit: Callable[[], None] | None = None) -> None:
        """Record ``write`` as ``source``'s processing of ``write.session``, all or nothing.

        ``previous`` is the session the caller's state was at (``None`` for the first). If the
        stored state has moved since, or the session was already recorded, nothing is written
        and :class:`SessionAlreadyProcessed` is raised. ``before_commit`` runs last inside the
        transaction (tests use it to crash a cycle at its worst moment).
        """
        blob = pickle.dumps(write.detectors, protocol=pickle.HIGHEST_PROTOCOL)
        values = {"session": write.session, "champion": write.champion, "challenger": write.challenger,
                  "state": blob, "sha256": _digest(blob), "updated_at": utc_now()}
        try:
            with self.store.session() as session:
                if previous is None:
                    session.add(MonitorStateRecord(source=source, **values))
                else:
                    moved = session.exec(update(MonitorStateRecord)  # type: ignore[call-overload]
                                         .where(MonitorStateRecord.source == source,  # type: ignore[arg-type]
                                                MonitorStateRecord.session == previous)  # type: ignore[arg-type]
                                         .values(**values))
                    if moved.rowcount != 1:
                        raise SessionAlreadyProcessed(
                            f"the {source} monitor's state moved past {previous} while this cycle ran: "
                            f"{write.session} was processed by another monitor")
                session.add(MonitorSessionRecord(
                    source=source, session=write.session, champion=write.champion,
                    challenger=write.challenger,
                    scored=0 if write.predictions is None else len(write.predictions), regime=write.regime,
                    summary=json.dumps(dict(write.summary), default=str),
                    events=json.dumps(list(write.events), default=str), delivered=not write.events,
                    flow_run_id=write.flow_run_id))
                session.flush()
                if write.predictions is not None and len(write.predictions):
                    # One executemany of plain rows: ORM objects cost ~0.1 ms each, 0.3 s at 500 symbols.
                    session.execute(insert(LivePrediction), [
                        {"source": source, "session": write.session, "symbol": str(r.symbol),
                         "run_id": str(r.run_id), "role": str(r.role), "probability": float(r.probability)}
                        for r in write.predictions.itertuples(index=False)])
                if write.matured is not None and len(write.matured):
                    self._mature(session, source, write.matured)
                if write.extra is not None:
                    write.extra(session)
                if before_commit is not None:
                    before_commit()
        except IntegrityError as exc:
            raise SessionAlreadyProcessed(f"{source} {write.session} was processed by another monitor "
                                          f"({type(exc.orig).__name__})") from None

    @staticmethod
    def _mature(session: Session, source: str, matured: pd.DataFrame) -> None:
        """Fill in labels and losses in one bulk update by primary key."""
        days = sorted({pd.Timestamp(d).date() for d in matured["session"]})
        rows = session.exec(select(LivePrediction.id, LivePrediction.session, LivePrediction.symbol,
                                   LivePrediction.run_id)
                            .where(LivePrediction.source == source,
                                   LivePrediction.session.in_(days))).all()  # type: ignore[attr-defined]
        ids = {(day, symbol, run): key for key, day, symbol, run in rows}
        values = [{"id": ids[key], "label": int(r.label), "loss": float(r.loss)}
                  for r in matured.itertuples(index=False)
                  if (key := (pd.Timestamp(r.session).date(), str(r.symbol), str(r.run_id))) in ids]
        if values:
            session.execute(update(LivePrediction), values)

    # -- reading ---------------------------------------------------------------------------------

    def sessions(self, source: str) -> list[MonitorSessionRecord]:
        """Processed sessions, oldest first."""
        with self.store.session() as session:
            return list(session.exec(select(MonitorSessionRecord).where(MonitorSessionRecord.source == source)
                                     .order_by(MonitorSessionRecord.session)).all())

    def predictions(self, source: str, *, run_id: str | None = None, since: date | None = None,
                    unmatured: bool = False) -> pd.DataFrame:
        """Live predictions (session, symbol, run_id, role, probability, label, loss)."""
        columns = ["session", "symbol", "run_id", "role", "probability", "label", "loss"]
        query = select(*(getattr(LivePrediction, c) for c in columns)).where(LivePrediction.source == source)
        if run_id is not None:
            query = query.where(LivePrediction.run_id == run_id)
        if since is not None:
            query = query.where(LivePrediction.session >= since)
        if unmatured:
            query = query.where(LivePrediction.label == None)  # noqa: E711 - SQL IS NULL
        with self.store.session() as session:  # rows as tuples, not ORM objects (thousands a cycle)
            rows = session.exec(query.order_by(LivePrediction.session, LivePrediction.symbol)).all()
        frame = pd.DataFrame([tuple(r) for r in rows], columns=columns)
        frame["session"] = pd.to_datetime(frame["session"])
        return frame

    def live_record(self, source: str, run_id: str) -> pd.DataFrame:
        """A model's matured live predictions: its record for the gate."""
        frame = self.predictions(source, run_id=run_id)
        return frame[frame["label"].notna()].reset_index(drop=True)

    def live_summary(self) -> dict[str, tuple[int, float]]:
        """Per run id: how many of its live predictions have matured, and their mean log loss."""
        query = (select(LivePrediction.run_id, func.count(LivePrediction.loss), func.avg(LivePrediction.loss))
                 .where(LivePrediction.loss != None)  # noqa: E711 - SQL IS NOT NULL
                 .group_by(LivePrediction.run_id))
        with self.store.session() as session:
            return {run: (int(n), float(loss)) for run, n, loss in session.exec(query).all()}

    def undelivered(self, source: str) -> list[tuple[int, list[dict[str, Any]]]]:
        """Events of committed sessions not yet emitted, by session: ``(record id, events)``."""
        with self.store.session() as session:
            rows = session.exec(select(MonitorSessionRecord).where(
                MonitorSessionRecord.source == source, MonitorSessionRecord.delivered == False)  # noqa: E712
                .order_by(MonitorSessionRecord.session)).all()
        return [(int(r.id), json.loads(r.events)) for r in rows]  # type: ignore[arg-type]

    def mark_delivered(self, record_id: int) -> None:
        with self.store.session() as session:
            record = session.get(MonitorSessionRecord, record_id)
            if record is not None:
                record.delivered = True
                session.add(record)

