"""The Stormwatch database: where runs record which configuration and which market data they used.

One :class:`Store` wraps one SQLAlchemy engine. SQLite (a file under ``STORMWATCH_HOME``) is the
default so that everything runs on a fresh machine; PostgreSQL is used when a URL names it, so
that many machines (a Prefect work pool, a Dask cluster) can share one database. The code in this
module is written once for both: the same tables, the same idempotent inserts, the same
timezone-aware UTC timestamps.

The URL is handed in by the caller (the settings root in ``flows`` reads ``STORMWATCH_HOME`` and
``STORMWATCH_DATABASE_URL``); nothing here reads the environment.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from sqlalchemy import Engine, create_engine, event, func, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, SQLModel, col, select

from memory.tables import ConfigVersion, DataSnapshot, utc_now

__all__ = [
    "PG_CONNECT_TIMEOUT_S",
    "SQLITE_BUSY_TIMEOUT_S",
    "Backend",
    "Store",
    "StoreUnavailable",
    "database_url",
    "open_engine",
]

Backend = Literal["sqlite", "postgresql"]

SQLITE_BUSY_TIMEOUT_S = 30
"""How long a SQLite writer waits for another writer's lock before giving up.

The monitor and the retraining flow may write at the same time; waiting is correct, failing at
once with "database is locked" is not."""

PG_CONNECT_TIMEOUT_S = 5
"""How long to wait for a PostgreSQL server to accept a connection before reporting it as down
(libpq's ``connect_timeout``; an explicit ``connect_timeout`` in the URL wins)."""

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_CREATE_ATTEMPTS = 3


class StoreUnavailable(RuntimeError):
    """The database named by a URL cannot be reached or opened.

    Raised instead of the driver's own error so that callers (the CLI, a flow) can tell "the
    database is down or misconfigured" from a bug, and so that the message always names the
    database, with its password masked, without the caller having to dig it out.

    Parameters
    ----------
    url : str
        The database URL with its password masked.
    reason : str
        What the driver said, with the password scrubbed.

    Attributes
    ----------
    url : str
        As above; safe to log.
    reason : str
        As above.
    """

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"database {url} is unavailable: {reason}")


def database_url(home: Path, url: str | None = None) -> str:
    """Return the database URL to use: ``url`` when given, else a SQLite file under ``home``.

    Parameters
    ----------
    home : Path
        The Stormwatch home directory (``STORMWATCH_HOME``); created if missing, because SQLite
        cannot create the file of a database in a directory that does not exist.
    url : str | None
        An explicit URL (``STORMWATCH_DATABASE_URL``). ``None`` or a blank string means "not
        set", since an empty environment variable is the usual way of unsetting it.

    Returns
    -------
    str
        ``url`` (stripped) or ``sqlite:///<absolute home>/stormwatch.db``. The path is made
        absolute so that the URL keeps naming the same file if the working directory changes.
    """
    if url is not None and url.strip():
        return url.strip()
    folder = Path(home).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    # URL.create escapes characters such as '?' or '#' that would otherwise end the path.
    return URL.create("sqlite", database=str(folder / "stormwatch.db")).render_as_string(hide_password=False)


def _parse_url(url: str) -> URL:
    """Parse ``url``, normalise PostgreSQL to the psycopg 3 driver, and refuse other backends."""
    if not isinstance(url, str) or not url.strip():
        raise ValueError("the database URL is empty")
    try:
        parsed = make_url(url.strip())
    except ArgumentError as exc:
        # The message of ArgumentError does not repeat the URL, so no password can leak here.
        raise ValueError(f"not a database URL: {exc}") from None
    if parsed.drivername in ("postgres", "postgresql"):
        # Plain "postgresql://" would pick psycopg2, which is not installed; "postgres://" is the
        # spelling of Heroku and many hosted services, which SQLAlchemy does not accept.
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        shown = parsed.render_as_string(hide_password=True)
        raise ValueError(f"unsupported database {shown}: Stormwatch supports SQLite and PostgreSQL")
    return parsed


def _reason(exc: DBAPIError, password: str | None) -> str:
    """The driver's message, on one line, with the password removed in case the driver echoed it."""
    message = " ".join(str(exc.orig if exc.orig is not None else exc).split())
    if password:
        message = message.replace(password, "***")
    return message or type(exc).__name__


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    """Configure every new SQLite connection.

    - ``isolation_level = None`` turns off the sqlite3 module's own transaction handling, which
      starts no transaction for SELECT and breaks SAVEPOINT; :func:`_sqlite_on_begin` emits
      ``BEGIN IMMEDIATE`` instead (the recipe of the SQLAlchemy SQLite dialect documentation).
    - ``busy_timeout`` makes a writer wait for another writer instead of failing at once.
    - WAL lets readers go on while one writer writes; ``synchronous=NORMAL`` is safe with WAL
      (a power cut may lose the last commits, never corrupt the file) and much faster than FULL.
    - ``foreign_keys`` is off by default in SQLite; PostgreSQL always enforces them, and tables
      that reference others (the registry's lineage) must behave the same on both.
    """
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_S * 1000}")
        _sqlite_use_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _sqlite_use_wal(cursor: Any) -> None:
    """Switch the database file to WAL unless it already is, waiting out concurrent switches.

    The switch is stored in the file, so only the first connection to a new database changes
    anything. That change needs an exclusive lock, and SQLite reports a conflicting switch by
    another connection at once ("database is locked") without consulting the busy timeout: two
    processes opening a new database together would fail. So look first, and retry until the
    busy timeout has passed.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    while True:
        if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
            return
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _sqlite_on_begin(connection: Any) -> None:
    """Start every SQLite transaction with ``BEGIN IMMEDIATE``.

    A deferred transaction that reads and then writes cannot wait for a concurrent writer: SQLite
    fails it at once with "database is locked" (the busy timeout does not apply, to avoid a
    deadlock). Taking the write lock up front makes every transaction wait its turn under the
    busy timeout instead. Readers outside a transaction are not blocked (WAL); the cost is that
    transactions of this engine run one at a time, which is fine for one machine.
    """
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def open_engine(url: str, *, check: bool = True) -> Engine:
    """Create an engine for ``url`` configured for Stormwatch, and check that the database answers.

    SQLite gets WAL journaling, ``synchronous=NORMAL``, foreign keys, a busy timeout of
    :data:`SQLITE_BUSY_TIMEOUT_S` seconds and ``BEGIN IMMEDIATE`` transactions on every
    connection, and may be used from several threads (Prefect runs tasks in threads). PostgreSQL
    uses psycopg 3, checks pooled connections before use (a restarted server or a dropped idle
    connection must not fail a run) and gives up connecting after :data:`PG_CONNECT_TIMEOUT_S`.

    Parameters
    ----------
    url : str
        ``sqlite:///path``, ``sqlite://`` (in memory), ``postgresql://...``,
        ``postgresql+psycopg://...`` or ``postgres://...``.
    check : bool
        Connect once before returning, so that a database that is down is reported here, with a
        clear message, rather than deep inside the first query.

    Returns
    -------
    Engine
        The configured engine.

    Raises
    ------
    ValueError
        If ``url`` is not a SQLite or PostgreSQL URL.
    StoreUnavailable
        If ``check`` is true and the database cannot be reached or opened.
    """
    parsed = _parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        options: dict[str, Any] = {
            # Prefect tasks run in worker threads; the pool hands each thread its own
            # connection, so sharing across threads is safe here.
            "connect_args": {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S},
        }
        if parsed.database in (None, "", ":memory:"):
            # Each new connection to ":memory:" is a new, empty database: keep exactly one.
            options["poolclass"] = StaticPool
        engine = create_engine(parsed, **options)
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
    else:
        connect_args: dict[str, Any] = {}
        if "connect_timeout" not in parsed.query:
            connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
        engine = create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
    if check:
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except DBAPIError as exc:
            engine.dispose()
            shown = parsed.render_as_string(hide_password=True)
            raise StoreUnavailable(shown, _reason(exc, parsed.password)) from exc
    return engine


def _sha256_hex(name: str, value: str) -> str:
    """Return ``value`` as a lowercase sha256 hex digest, or raise naming the argument."""
    digest = value.strip().lower() if isinstance(value, str) else value
    if not isinstance(digest, str) or not _SHA256_HEX.fullmatch(digest):
        raise ValueError(f"{name} must be a sha256 hex digest (64 hex characters), got {value!r}")
    return digest


def _as_date(name: str, value: date) -> date:
    """Return ``value`` as a ``date`` (a ``datetime`` or ``pandas.Timestamp`` is cut to its day)."""
    if isinstance(value, datetime):
        return value.date()
    if not isinstance(value, date):
        raise TypeError(f"{name} must be a date, got {type(value).__name__}")
    return value


def _text(name: str, value: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value.strip()


class Store:
    """The Stormwatch database behind one URL.

    Creating a ``Store`` touches nothing: the engine is opened and the tables are created on
    first use, so that building the settings of a run never fails because the database is
    briefly unreachable, and the first real use reports it with :class:`StoreUnavailable`.
    Tables are created with ``SQLModel.metadata.create_all`` (which skips existing ones) once
    per ``Store``, and again only if more tables have been declared (imported) since.

    A ``Store`` may be shared between threads. Use it as a context manager, or call
    :meth:`dispose`, to close its connections.

    Parameters
    ----------
    url : str
        A SQLite or PostgreSQL URL, as accepted by :func:`open_engine`; see :func:`database_url`.

    Raises
    ------
    ValueError
        If ``url`` is not a SQLite or PostgreSQL URL.
    """

    def __init__(self, url: str) -> None:
        self._parsed = _parse_url(url)
        self._lock = threading.Lock()
        self._engine: Engine | None = None
        self._created: frozenset[str] = frozenset()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.dispose()

    @property
    def url(self) -> str:
        """The database URL with its password masked: safe for logs, reports and errors."""
        return self._parsed.render_as_string(hide_password=True)

    @property
    def backend(self) -> Backend:
        """``"sqlite"`` or ``"postgresql"``, for the few places that must know."""
        return "sqlite" if self._parsed.get_backend_name() == "sqlite" else "postgresql"

    @property
    def engine(self) -> Engine:
        """The engine, opened and with every declared table created.

        Raises
        ------
        StoreUnavailable
            If the database cannot be reached.
        """
        return self._ready()

    def _ready(self) -> Engine:
        """Open the engine and create the tables, once, under a lock (double-checked)."""
        engine = self._engine
        if engine is not None and self._created.issuperset(SQLModel.metadata.tables):
            return engine
        with self._lock:
            if self._engine is None:
                self._engine = open_engine(self._parsed.render_as_string(hide_password=False))
            wanted = frozenset(SQLModel.metadata.tables)
            if not self._created.issuperset(wanted):
                self._create_tables(self._engine)
                self._created = wanted
            return self._engine

    def _create_tables(self, engine: Engine) -> None:
        """Create missing tables, retrying when another process creates them at the same time.

        ``create_all`` checks then creates; on PostgreSQL two processes starting together can
        both see a table missing, and the second ``CREATE TABLE`` then fails. Checking again
        finds the table and succeeds. (On SQLite ``BEGIN IMMEDIATE`` serialises the two.)
        """
        for attempt in range(1, _CREATE_ATTEMPTS + 1):
            try:
                SQLModel.metadata.create_all(engine)
                return
            except DBAPIError as exc:
                if exc.connection_invalidated:
                    raise StoreUnavailable(self.url, _reason(exc, self._parsed.password)) from exc
                if attempt == _CREATE_ATTEMPTS:
                    raise
                time.sleep(0.05 * attempt)

    def dispose(self) -> None:
        """Close every pooled connection; a later use opens the engine again.

        Call it when done (or before dropping a PostgreSQL schema or deleting a SQLite file), so
        that no idle connection keeps a lock or a file handle.
        """
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
            self._engine = None
            self._created = frozenset()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """Yield a session that commits when the block ends and rolls back if it raises.

        Objects stay readable after the block (``expire_on_commit=False``), so that records can
        be returned to callers without a session.

        Yields
        ------
        Session
            A ``sqlmodel.Session`` bound to this store's engine.

        Raises
        ------
        StoreUnavailable
            If the database cannot be reached when the store is first used.
        """
        with Session(self._ready(), expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def _insert_if_absent(
        self,
        session: Session,
        model: type[SQLModel],
        values: Mapping[str, Any],
        key: Sequence[str],
    ) -> None:
        """``INSERT ... ON CONFLICT (key) DO NOTHING`` in the session's dialect.

        An upsert rather than "select, then insert" or "insert, catch IntegrityError": with
        concurrent writers the conflicting insert neither fails nor aborts the transaction (on
        PostgreSQL it waits for the other writer to commit), and both SQLite (3.24+) and
        PostgreSQL support the same statement.
        """
        insert = postgresql_insert if self.backend == "postgresql" else sqlite_insert
        table = model.__table__  # type: ignore[attr-defined]
        statement = insert(table).values(**values).on_conflict_do_nothing(index_elements=key)
        session.exec(statement)

    def record_config(self, *, content_hash: str, version: str, content: str) -> ConfigVersion:
        """Record a validated configuration, once per content hash.

        Every run and every model refers to the configuration it used; recording it here lets
        the configuration be recovered from the hash later. Recording the same hash again (every
        run does) returns the row already there.

        Parameters
        ----------
        content_hash : str
            sha256 hex digest of ``content`` (case-insensitive; stored lowercase).
        version : str
            The configuration's declared version.
        content : str
            The validated configuration as JSON text.

        Returns
        -------
        ConfigVersion
            The stored row: the new one, or the existing one with its original
            ``first_seen_at``.

        Raises
        ------
        ValueError
            If ``content_hash`` is not a sha256 hex digest or ``content`` is not JSON.
        StoreUnavailable
            If the database cannot be reached.
        """
        key = _sha256_hex("content_hash", content_hash)
        if not isinstance(content, str):
            raise TypeError(f"content must be JSON text (str), got {type(content).__name__}")
        try:
            json.loads(content)
        except ValueError as exc:
            raise ValueError(f"content is not valid JSON: {exc}") from None
        values = {
            "content_hash": key,
            "version": _text("version", version),
            "content": content,
            "first_seen_at": utc_now(),
        }
        with self.session() as session:
            self._insert_if_absent(session, ConfigVersion, values, ("content_hash",))
            query = select(ConfigVersion).where(ConfigVersion.content_hash == key)
            return session.exec(query).one()

    def record_snapshot(
        self,
        *,
        source: str,
        symbol: str,
        first_session: date,
        last_session: date,
        rows: int,
        checksum: str,
    ) -> DataSnapshot:
        """Record a cached Parquet file of bars, once per ``(source, symbol, checksum)``.

        The same bytes are the same data, so recording them again returns the existing row
        (with its original ``recorded_at``) rather than a duplicate.

        Parameters
        ----------
        source : str
            The market-data source.
        symbol : str
            The ticker symbol.
        first_session, last_session : date
            The first and last session in the file (a ``datetime`` is cut to its day).
        rows : int
            Number of bars, zero or more.
        checksum : str
            sha256 hex digest of the Parquet bytes (case-insensitive; stored lowercase).

        Returns
        -------
        DataSnapshot
            The stored row, new or existing.

        Raises
        ------
        ValueError
            If an argument is malformed: an empty name, a range that ends before it starts,
            negative ``rows`` or a checksum that is not a sha256 hex digest.
        StoreUnavailable
            If the database cannot be reached.
        """
        first = _as_date("first_session", first_session)
        last = _as_date("last_session", last_session)
        if last < first:
            raise ValueError(f"snapshot ends ({last}) before it starts ({first})")
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
            raise ValueError(f"rows must be a non-negative integer, got {rows!r}")
        values = {
            "source": _text("source", source),
            "symbol": _text("symbol", symbol),
            "first_session": first,
            "last_session": last,
            "rows": int(rows),
            "checksum": _sha256_hex("checksum", checksum),
            "recorded_at": utc_now(),
        }
        key = ("source", "symbol", "checksum")
        with self.session() as session:
            self._insert_if_absent(session, DataSnapshot, values, key)
            query = select(DataSnapshot).where(
                DataSnapshot.source == values["source"],
                DataSnapshot.symbol == values["symbol"],
                DataSnapshot.checksum == values["checksum"],
            )
            return session.exec(query).one()

    def latest_snapshots(self, source: str | None = None) -> list[DataSnapshot]:
        """Return the most recently recorded snapshot of each symbol.

        "Most recent" is by ``recorded_at`` (ties broken by ``id``), i.e. the data a symbol was
        last seen with, which is what a run report or a lineage check wants.

        Parameters
        ----------
        source : str | None
            Only snapshots from this source; ``None`` considers every source, and still returns
            one snapshot per symbol.

        Returns
        -------
        list[DataSnapshot]
            One row per symbol, sorted by symbol.
        """
        rank = (
            func.row_number()
            .over(
                partition_by=col(DataSnapshot.symbol),
                order_by=(col(DataSnapshot.recorded_at).desc(), col(DataSnapshot.id).desc()),
            )
            .label("rank")
        )
        inner = select(col(DataSnapshot.id), rank)
        if source is not None:
            inner = inner.where(DataSnapshot.source == source)
        ranked = inner.subquery("ranked")
        query = (
            select(DataSnapshot)
            .join(ranked, ranked.c.id == DataSnapshot.id)
            .where(ranked.c.rank == 1)
            .order_by(col(DataSnapshot.symbol))
        )
        with self.session() as session:
            return list(session.exec(query).all())
