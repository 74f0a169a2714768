"""The store on SQLite and PostgreSQL: lazy tables, idempotent records, transactions, concurrency,
UTC timestamps, SQLite pragmas, and a clear error when the database does not answer."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, inspect
from sqlalchemy.exc import StatementError
from sqlmodel import Field, SQLModel, select

import memory.store
from memory.store import (
    SQLITE_BUSY_TIMEOUT_S,
    Store,
    StoreUnavailable,
    database_url,
    open_engine,
)
from memory.tables import ConfigVersion, DataSnapshot

SW_TABLES = {"sw_config_version", "sw_data_snapshot"}


def sha(n: int) -> str:
    """A well-formed sha256 hex digest, distinct for each ``n``."""
    return f"{n:064x}"


def snapshot(store: Store, *, symbol: str = "AAPL", checksum: int = 1, source: str = "simulated"):
    return store.record_snapshot(
        source=source,
        symbol=symbol,
        first_session=date(2020, 1, 2),
        last_session=date(2020, 3, 31),
        rows=61,
        checksum=sha(checksum),
    )


def count(store: Store, model: type[SQLModel]) -> int:
    with store.session() as session:
        return session.exec(select(func.count()).select_from(model)).one()


def table_names(url: str) -> set[str]:
    engine = open_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


# --- tables -------------------------------------------------------------------------------------


def test_tables_are_created_on_first_use(store_url: str) -> None:
    store = Store(store_url)
    try:
        if store.backend == "sqlite":
            # Constructing a store touches nothing, not even the file.
            assert not Path(store_url.removeprefix("sqlite:///")).exists()
        assert not SW_TABLES & table_names(store_url)
        store.record_config(content_hash=sha(1), version="1", content="{}")
        assert SW_TABLES <= table_names(store_url)
    finally:
        store.dispose()


def test_tables_declared_after_first_use_are_created_too(store: Store, store_url: str) -> None:
    store.record_config(content_hash=sha(1), version="1", content="{}")
    name = f"sw_late_{uuid.uuid4().hex[:8]}"
    late = type(
        f"Late{name}",
        (SQLModel,),
        {
            "__tablename__": name,
            "__annotations__": {"id": int | None},
            "id": Field(default=None, primary_key=True),
        },
        table=True,
    )
    try:
        assert count(store, late) == 0
        assert name in table_names(store_url)
    finally:
        SQLModel.metadata.remove(late.__table__)


# --- idempotent records -------------------------------------------------------------------------


def test_record_config_is_idempotent(store: Store) -> None:
    first = store.record_config(content_hash=sha(7), version="1", content='{"a": 1}')
    again = store.record_config(content_hash=sha(7).upper(), version="1", content='{"a": 1}')
    assert again.content_hash == first.content_hash == sha(7)
    assert again.first_seen_at == first.first_seen_at
    assert count(store, ConfigVersion) == 1

    other = store.record_config(content_hash=sha(8), version="2", content='{"a": 2}')
    assert (other.version, other.content) == ("2", '{"a": 2}')
    assert count(store, ConfigVersion) == 2


def test_record_snapshot_is_idempotent_on_source_symbol_checksum(store: Store) -> None:
    first = snapshot(store)
    again = snapshot(store)
    assert again.id == first.id
    assert again.recorded_at == first.recorded_at
    assert (again.first_session, again.last_session, again.rows) == (
        date(2020, 1, 2),
        date(2020, 3, 31),
        61,
    )
    assert count(store, DataSnapshot) == 1

    distinct = [
        snapshot(store, checksum=2),
        snapshot(store, symbol="MSFT"),
        snapshot(store, source="yfinance"),
    ]
    assert len({row.id for row in [first, *distinct]}) == 4
    assert count(store, DataSnapshot) == 4


def test_latest_snapshots_is_the_newest_per_symbol(store: Store) -> None:
    snapshot(store, symbol="AAPL", checksum=1)
    newest_aapl = snapshot(store, symbol="AAPL", checksum=2)
    only_msft = snapshot(store, symbol="MSFT", checksum=3)
    yahoo_aapl = snapshot(store, symbol="AAPL", checksum=4, source="yfinance")

    simulated = store.latest_snapshots("simulated")
    assert [(row.symbol, row.id) for row in simulated] == [
        ("AAPL", newest_aapl.id),
        ("MSFT", only_msft.id),
    ]
    everywhere = store.latest_snapshots()
    assert [(row.symbol, row.id) for row in everywhere] == [
        ("AAPL", yahoo_aapl.id),
        ("MSFT", only_msft.id),
    ]
    assert store.latest_snapshots("nowhere") == []


def test_malformed_records_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="content_hash"):
        store.record_config(content_hash="not-a-hash", version="1", content="{}")
    with pytest.raises(ValueError, match="JSON"):
        store.record_config(content_hash=sha(1), version="1", content="{not json")
    with pytest.raises(ValueError, match="before it starts"):
        store.record_snapshot(
            source="simulated",
            symbol="AAPL",
            first_session=date(2020, 2, 1),
            last_session=date(2020, 1, 1),
            rows=1,
            checksum=sha(1),
        )
    with pytest.raises(ValueError, match="checksum"):
        store.record_snapshot(
            source="simulated",
            symbol="AAPL",
            first_session=date(2020, 1, 1),
            last_session=date(2020, 1, 1),
            rows=1,
            checksum="abc",
        )
    assert count(store, ConfigVersion) == count(store, DataSnapshot) == 0


# --- transactions -------------------------------------------------------------------------------


def test_a_failed_transaction_leaves_nothing_behind(store: Store) -> None:
    with pytest.raises(RuntimeError, match="boom"), store.session() as session:
        session.add(ConfigVersion(content_hash=sha(1), version="1", content="{}"))
        session.add(
            DataSnapshot(
                source="simulated",
                symbol="AAPL",
                first_session=date(2020, 1, 2),
                last_session=date(2020, 1, 3),
                rows=2,
                checksum=sha(2),
            )
        )
        session.flush()  # the rows reach the database inside the transaction
        raise RuntimeError("boom")
    assert count(store, ConfigVersion) == 0
    assert count(store, DataSnapshot) == 0

    with store.session() as session:
        session.add(ConfigVersion(content_hash=sha(3), version="1", content="{}"))
    assert count(store, ConfigVersion) == 1


# --- concurrency --------------------------------------------------------------------------------


@pytest.mark.parametrize("shared", [True, False], ids=["one-store", "store-per-thread"])
def test_concurrent_writers_end_with_exactly_the_expected_rows(store_url: str, shared: bool) -> None:
    """4 threads record the same config and snapshot plus their own, at the same moment.

    ``store-per-thread`` gives every thread its own engine, as separate processes would have,
    so the threads also race to create the tables.
    """
    threads, rounds = 4, 5
    stores = [Store(store_url)] * threads if shared else [Store(store_url) for _ in range(threads)]
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            mine = stores[index]
            barrier.wait(timeout=30)
            for round_ in range(rounds):
                mine.record_config(content_hash=sha(1), version="1", content="{}")
                snapshot(mine, symbol="SPY", checksum=1)
                snapshot(mine, symbol=f"T{index}", checksum=100 + round_)
        except BaseException as exc:  # reported below, in the main thread
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=120)
        assert not errors, errors
        assert count(stores[0], ConfigVersion) == 1
        assert count(stores[0], DataSnapshot) == 1 + threads * rounds
        latest = {row.symbol: row.checksum for row in stores[0].latest_snapshots()}
        assert latest == {"SPY": sha(1)} | {f"T{i}": sha(100 + rounds - 1) for i in range(threads)}
    finally:
        for each in set(stores):
            each.dispose()


# --- timestamps ---------------------------------------------------------------------------------


def test_timestamps_round_trip_as_timezone_aware_utc(store: Store) -> None:
    before = datetime.now(UTC)
    store.record_config(content_hash=sha(1), version="1", content="{}")
    snapshot(store)
    after = datetime.now(UTC)

    new_york = timezone(timedelta(hours=-5))
    written = datetime(2020, 3, 16, 9, 30, 0, 123456, tzinfo=new_york)
    with store.session() as session:
        session.add(ConfigVersion(content_hash=sha(2), version="2", content="{}", first_seen_at=written))

    store.dispose()  # read back through new connections: nothing cached
    with store.session() as session:
        config = session.get(ConfigVersion, sha(1))
        row = session.exec(select(DataSnapshot)).one()
        explicit = session.get(ConfigVersion, sha(2))
    for stamp in (config.first_seen_at, row.recorded_at, explicit.first_seen_at):
        assert stamp.tzinfo is not None and stamp.utcoffset() == timedelta(0)
    assert before <= config.first_seen_at <= row.recorded_at <= after
    assert explicit.first_seen_at == written
    assert explicit.first_seen_at.hour == 14  # 09:30 at UTC-5 is 14:30 UTC


def test_naive_timestamps_are_refused(store: Store) -> None:
    with pytest.raises(StatementError, match="naive"), store.session() as session:
        session.add(
            ConfigVersion(content_hash=sha(1), version="1", content="{}", first_seen_at=datetime(2020, 1, 1))
        )
    assert count(store, ConfigVersion) == 0


# --- SQLite only --------------------------------------------------------------------------------


def test_sqlite_connections_use_wal_and_a_busy_timeout(tmp_path: Path) -> None:
    with Store(database_url(tmp_path)) as store, store.session() as session:
        connection = session.connection()
        pragma = {
            name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "busy_timeout", "synchronous", "foreign_keys")
        }
    assert pragma == {
        "journal_mode": "wal",
        "busy_timeout": SQLITE_BUSY_TIMEOUT_S * 1000,
        "synchronous": 1,  # NORMAL
        "foreign_keys": 1,
    }


def test_database_url_places_the_sqlite_file_under_home(tmp_path: Path) -> None:
    home = tmp_path / "a" / "stormwatch home"
    url = database_url(home)
    assert home.is_dir()
    with Store(url) as store:
        assert store.backend == "sqlite"
        store.record_config(content_hash=sha(1), version="1", content="{}")
    assert (home / "stormwatch.db").is_file()

    given = "postgresql+psycopg://root@db.example:5432/stormwatch"
    assert database_url(home, given) == given
    assert database_url(home, "  ") == url  # an empty variable means "not set"


def test_in_memory_sqlite_keeps_one_database(tmp_path: Path) -> None:
    with Store("sqlite://") as store:
        snapshot(store)
        assert count(store, DataSnapshot) == 1


# --- unreachable and unsupported databases ------------------------------------------------------


def test_an_unreachable_database_is_reported_quickly_with_the_password_masked() -> None:
    url = "postgresql+psycopg://root:s3cret-pw@127.0.0.1:1/test"
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as raised:
        open_engine(url)
    assert time.monotonic() - started < 5
    message = str(raised.value)
    assert "127.0.0.1:1/test" in message and "root:***@" in message
    assert "s3cret-pw" not in message
    assert "s3cret-pw" not in raised.value.url

    store = Store(url)  # constructing does not connect
    assert "s3cret-pw" not in store.url and "s3cret-pw" not in repr(store)
    with pytest.raises(StoreUnavailable, match=r"127\.0\.0\.1:1/test"):
        store.record_config(content_hash=sha(1), version="1", content="{}")


def test_a_server_that_never_answers_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    timeout = 2  # libpq's minimum; the default (PG_CONNECT_TIMEOUT_S) works the same, slower
    monkeypatch.setattr(memory.store, "PG_CONNECT_TIMEOUT_S", timeout)
    # A socket that accepts TCP connections and then says nothing: the way a hung server or a
    # firewall that swallows packets looks to a client. Without a connect timeout this hangs.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{port}"):
            open_engine(f"postgresql://root:pw@127.0.0.1:{port}/test")
        elapsed = time.monotonic() - started
    assert timeout - 1 <= elapsed < timeout + 3


def test_a_sqlite_file_that_cannot_be_opened_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match="missing"):
        open_engine(f"sqlite:///{tmp_path / 'missing' / 'stormwatch.db'}")


def test_postgresql_urls_use_psycopg_3() -> None:
    for url in ("postgresql://root@127.0.0.1:1/test", "postgres://root@127.0.0.1:1/test"):
        engine = open_engine(url, check=False)
        try:
            assert engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg"
        finally:
            engine.dispose()
        store = Store(url)
        assert store.backend == "postgresql"
        assert store.url.startswith("postgresql+psycopg://")


@pytest.mark.parametrize("url", ["", "mysql://root@localhost/test", "not a url"])
def test_unsupported_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        Store(url)
