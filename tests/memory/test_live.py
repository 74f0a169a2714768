"""The monitor's live record on SQLite and PostgreSQL: a session committed all or nothing, a
compare-and-swap that lets exactly one of two racing writers through, state that refuses a
changed checksum, labels matured in place, events kept until delivered."""

from __future__ import annotations

import threading
from datetime import date

import pandas as pd
import pytest
from sqlalchemy import update

from memory.live import LiveLog, MonitorStateRecord, SessionAlreadyProcessed, SessionWrite
from memory.store import Store

DAY1, DAY2 = date(2026, 6, 2), date(2026, 6, 3)


def write(day: date, state: object, *, events: tuple = ()) -> SessionWrite:
    predictions = pd.DataFrame({"symbol": ["AAA", "BBB"], "run_id": "r1", "role": "champion",
                                "probability": [0.6, 0.3]})
    return SessionWrite(session=day, detectors=state, champion="r1", predictions=predictions,
                        summary={"n": 2}, events=list(events))


def test_sessions_advance_state_and_predictions_together(store: Store) -> None:
    live = LiveLog(store)
    assert live.state("sim") is None
    live.commit_session("sim", None, write(DAY1, {"count": 1}))
    live.commit_session("sim", DAY1, write(DAY2, {"count": 2}))
    state = live.state("sim")
    assert state.session == DAY2 and state.detectors == {"count": 2} and state.champion == "r1"
    assert [r.session for r in live.sessions("sim")] == [DAY1, DAY2]
    assert len(live.predictions("sim")) == 4


def test_a_writer_whose_state_moved_writes_nothing(store: Store) -> None:
    live = LiveLog(store)
    live.commit_session("sim", None, write(DAY1, "a"))
    live.commit_session("sim", DAY1, write(DAY2, "b"))
    with pytest.raises(SessionAlreadyProcessed, match="moved past 2026-06-02"):
        live.commit_session("sim", DAY1, write(DAY2, "stale"))
    with pytest.raises(SessionAlreadyProcessed):
        live.commit_session("sim", None, write(DAY1, "first again"))
    assert live.state("sim").detectors == "b"
    assert len(live.predictions("sim")) == 4 and len(live.sessions("sim")) == 2


def test_a_crash_before_the_commit_leaves_nothing(store: Store) -> None:
    live = LiveLog(store)
    live.commit_session("sim", None, write(DAY1, "a"))

    def crash() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        live.commit_session("sim", DAY1, write(DAY2, "b", events=({"event": "x", "id": "1"},)),
                            before_commit=crash)
    assert live.state("sim").session == DAY1
    assert [r.session for r in live.sessions("sim")] == [DAY1]
    assert len(live.predictions("sim")) == 2 and live.undelivered("sim") == []


def test_two_racing_writers_exactly_one_wins(store: Store) -> None:
    live = LiveLog(store)
    live.commit_session("sim", None, write(DAY1, "a"))
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def race(name: str) -> None:
        barrier.wait()
        try:
            LiveLog(store).commit_session("sim", DAY1, write(DAY2, name))
            outcomes.append("won")
        except SessionAlreadyProcessed:
            outcomes.append("lost")

    threads = [threading.Thread(target=race, args=(name,)) for name in ("x", "y")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["lost", "won"]
    assert [r.session for r in live.sessions("sim")] == [DAY1, DAY2]
    assert len(live.predictions("sim")) == 4


def test_labels_mature_in_place_and_make_the_live_record(store: Store) -> None:
    live = LiveLog(store)
    live.commit_session("sim", None, write(DAY1, "a"))
    matured = pd.DataFrame({"session": [DAY1, DAY1], "symbol": ["AAA", "BBB"], "run_id": "r1",
                            "label": [1, 1], "loss": [0.51, 1.2]})
    live.commit_session("sim", DAY1, SessionWrite(session=DAY2, detectors="b", matured=matured))
    record = live.live_record("sim", "r1")
    assert record["label"].tolist() == [1, 1] and record["loss"].tolist() == [0.51, 1.2]
    assert live.live_record("sim", "other").empty
    n, loss = live.live_summary()["r1"]
    assert n == 2 and loss == pytest.approx(0.855)


def test_events_are_kept_until_delivered(store: Store) -> None:
    live = LiveLog(store)
    events = ({"event": "stormwatch.drift.detected", "id": "e1"},
              {"event": "stormwatch.drift.detected", "id": "e2"})
    live.commit_session("sim", None, write(DAY1, "a", events=events))
    live.commit_session("sim", DAY1, write(DAY2, "b"))
    waiting = live.undelivered("sim")
    assert [[e["id"] for e in batch] for _, batch in waiting] == [["e1", "e2"]]
    live.mark_delivered(waiting[0][0])
    assert live.undelivered("sim") == []


def test_a_state_whose_checksum_changed_is_refused(store: Store) -> None:
    live = LiveLog(store)
    live.commit_session("sim", None, write(DAY1, "a"))
    with store.session() as session:
        session.exec(update(MonitorStateRecord).values(state=b"not what was written"))  # type: ignore[call-overload]
    with pytest.raises(RuntimeError, match="does not match its checksum"):
        live.state("sim")
