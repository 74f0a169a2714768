"""SQLModel tables of the store: what configuration and which market data each run used.

Every table name starts with ``sw_`` so that Stormwatch can share a PostgreSQL database (or
schema) with other applications without name clashes. Timestamps are stored as UTC and always
come back timezone-aware, on SQLite as on PostgreSQL, so that lineage can be compared across
machines and backends without guessing the zone.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import DateTime, Dialect, Text, UniqueConstraint
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

__all__ = [
    "ArchiveEventRecord", "ArchiveVersion", "ConfigVersion", "DataSnapshot", "UTCDateTime", "utc_now",
]


def utc_now() -> datetime:
    """Return the current time as a timezone-aware UTC ``datetime``.

    Returns
    -------
    datetime
        ``datetime.now(UTC)``; one place so every row is stamped the same way.
    """
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A ``DateTime`` column that only accepts and only returns timezone-aware UTC values.

    SQLite has no timezone-aware timestamp type: SQLAlchemy writes the wall-clock digits and
    drops the offset, so an aware value written in one zone would come back naive and silently
    shifted. PostgreSQL's ``timestamptz`` returns values in the session's ``TimeZone``. This
    type converts every value to UTC before it is written (on SQLite the stored digits are UTC,
    which keeps them sortable as text) and marks every value read back as UTC, so both backends
    behave the same. Naive values are refused rather than assumed to be UTC, because a naive
    local time would be recorded hours off without any error.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert an aware ``datetime`` to UTC (naive UTC digits on SQLite).

        Raises
        ------
        ValueError
            If ``value`` is naive: its zone is unknown, so it cannot be stored correctly.
        """
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"timestamp {value.isoformat()} is naive; pass a timezone-aware value")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Return the stored value as an aware UTC ``datetime``."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class ConfigVersion(SQLModel, table=True):
    """One validated configuration, keyed by the sha256 of its content.

    Runs and models refer to the configuration by ``content_hash``; keeping the content itself
    lets a past run be reproduced or explained even after ``stormwatch.yaml`` has changed.

    Attributes
    ----------
    content_hash : str
        sha256 hex digest (64 lowercase characters) of ``content``; the primary key, so the
        same configuration is stored once however many runs use it.
    version : str
        The ``version`` declared in the configuration file, for humans.
    content : str
        The validated configuration as JSON text.
    first_seen_at : datetime
        When this configuration was first recorded (aware, UTC).
    """

    __tablename__ = "sw_config_version"

    content_hash: str = Field(primary_key=True, max_length=64)
    version: str
    content: str = Field(sa_type=Text)
    first_seen_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)


class DataSnapshot(SQLModel, table=True):
    """One cached Parquet file of bars for a symbol, identified by the checksum of its bytes.

    Recording the checksum and session range of the data a run used makes the market-data end
    of the lineage verifiable: the same ``(source, symbol, checksum)`` is the same data.

    Attributes
    ----------
    id : int | None
        Surrogate key, assigned by the database.
    source : str
        The market-data source the bars came from (for example ``yfinance`` or ``simulated``).
    symbol : str
        The ticker symbol.
    first_session, last_session : date
        The first and last NYSE session covered by the file.
    rows : int
        Number of bars in the file.
    checksum : str
        sha256 hex digest of the cached Parquet bytes.
    recorded_at : datetime
        When this snapshot was first recorded (aware, UTC).
    """

    __tablename__ = "sw_data_snapshot"
    __table_args__ = (UniqueConstraint("source", "symbol", "checksum", name="uq_sw_data_snapshot_key"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str
    symbol: str = Field(index=True)
    first_session: date
    last_session: date
    rows: int
    checksum: str = Field(max_length=64)
    recorded_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)


class ArchiveVersion(SQLModel, table=True):
    """One built version of the rare-event archive.

    ``content_hash`` covers everything the samples depend on (events, labels, features, source,
    bars), so an identical rebuild is found and skipped; ``configured_version`` is the version
    written in ``stormwatch.yaml`` and ``version`` the one stored (with a hash suffix when the
    configured version was already used for other content).
    """

    __tablename__ = "sw_archive_version"

    version: str = Field(primary_key=True)
    configured_version: str
    content_hash: str = Field(max_length=64, unique=True)
    source: str
    samples: int
    events: int
    built_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)


class ArchiveEventRecord(SQLModel, table=True):
    """One event of one archive version: its window, regime, weight and sample counts."""

    __tablename__ = "sw_archive_event"

    id: int | None = Field(default=None, primary_key=True)
    version: str = Field(foreign_key="sw_archive_version.version", index=True)
    position: int
    event: str
    regime: str
    start: date
    end: date
    weight: float
    sessions: int
    symbols: int
    samples: int
    unlabelled: int
    dropped_lookback: int
