"""SQLModel tables of the store: what configuration and which market data each run used.

Every table name starts with ``sw_`` so that Stormwatch can share a PostgreSQL database (or
schema) with other applications without name clashes. Timestamps are stored as UTC and always
come back timezone-aware, on SQLite as on PostgreSQL, so that lineage can be compared across
machines and backends without guessing the zone.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import DateTime, Dialect, LargeBinary, Text, UniqueConstraint
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

__all__ = [
    "AliasChange", "ArchiveEventRecord", "ArchiveVersion", "ConfigVersion", "DataSnapshot", "GateRecord",
    "ModelAlias", "ReplayEntry", "RunMetric", "TrainedModel", "TrainingRun", "UTCDateTime", "utc_now",
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


class ReplayEntry(SQLModel, table=True):
    """One of the model's worst mistakes, kept to be mixed into the next training runs.

    Keyed by ``(symbol, date, horizon)``: the same mistake seen again is merged into its entry
    (``times_seen`` grows, ``loss`` keeps the worst), never stored twice. The features are
    stored as float64 bytes in catalogue order, with ``feature_hash`` naming the catalogue, so
    that a changed feature catalogue never feeds old columns to a new model. ``first_seen`` and
    ``last_seen`` are the as-of sessions of the runs that admitted it: entries age out by the
    market's calendar, not the wall clock, so that a rerun as of the same date replays the same.
    """

    __tablename__ = "sw_replay_entry"
    __table_args__ = (UniqueConstraint("symbol", "date", "horizon", name="uq_sw_replay_entry_key"),)

    id: int | None = Field(default=None, primary_key=True)
    symbol: str = Field(index=True)
    date: date
    horizon: int
    label_end: date
    label: int
    regime: str = Field(index=True)
    sector: str
    event: str = ""
    forward_return: float
    loss: float
    model_version: str = Field(index=True)
    times_seen: int = 1
    first_seen: date
    last_seen: date
    feature_hash: str = Field(max_length=64)
    features: bytes = Field(sa_type=LargeBinary)


class TrainingRun(SQLModel, table=True):
    """One retraining run and everything needed to trace it and rebuild its training set.

    ``status`` is ``running`` while it works, then ``succeeded`` or ``failed`` (with
    ``reason``). Lineage: the configuration (by content hash, its content in
    :class:`ConfigVersion`), the as-of session, the source and symbols, a hash of the bars up to
    the as-of session (``data_snapshot``), the archive version, the replay snapshot's hash, and
    the hash of the exact training set (rows, features, labels and weights in order).
    """

    __tablename__ = "sw_training_run"

    run_id: str = Field(primary_key=True)
    status: str = Field(index=True)
    reason: str = Field(default="", sa_type=Text)
    started_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    flow_run_id: str = ""
    config_hash: str = Field(max_length=64)
    config_version: str
    as_of: date
    source: str
    symbols: str = Field(sa_type=Text)  # comma-separated, in training order
    variant: str  # "hybrid", "baseline" or the switches that differ, e.g. "archive+balance"
    data_snapshot: str = ""
    archive_version: str = ""
    replay_version: str = ""
    replay_rows: int = 0
    training_set_hash: str = ""
    training_rows: int = 0
    effective_rows: float = 0.0
    seconds: float = 0.0
    peak_memory_mb: float = 0.0
    details: str = Field(default="{}", sa_type=Text)  # JSON: provenance counts, sampling report, ...


class TrainedModel(SQLModel, table=True):
    """A model file a succeeded run wrote: one per zoo member and one for the ensemble.

    Only recorded when the whole run succeeds, in the same transaction as its status, so that a
    run failing midway leaves no model counted as trained. ``sha256`` is verified on every load.
    """

    __tablename__ = "sw_trained_model"
    __table_args__ = (UniqueConstraint("run_id", "member", name="uq_sw_trained_model_key"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="sw_training_run.run_id", index=True)
    member: str  # a zoo slot, or "ensemble"
    model_class: str
    path: str
    sha256: str = Field(max_length=64)
    fit_seconds: float = 0.0
    ensemble_weight: float | None = None
    params: str = Field(default="{}", sa_type=Text)  # JSON of the configured kwargs


class RunMetric(SQLModel, table=True):
    """One per-regime validation figure of one member (or the ensemble) of one run."""

    __tablename__ = "sw_run_metric"
    __table_args__ = (UniqueConstraint("run_id", "member", "regime", name="uq_sw_run_metric_key"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="sw_training_run.run_id", index=True)
    member: str
    regime: str  # one of the five regimes, or "overall"
    n: int
    accuracy: float
    balanced_accuracy: float
    log_loss: float
    brier: float
    roc_auc: float | None = None


class ModelAlias(SQLModel, table=True):
    """Which run's ensemble an alias (``champion``, ``challenger``) points at: one row per alias,
    so moving it is one statement in one transaction and there is never a second champion."""

    __tablename__ = "sw_model_alias"

    alias: str = Field(primary_key=True)
    run_id: str = Field(foreign_key="sw_training_run.run_id")
    set_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)


class AliasChange(SQLModel, table=True):
    """Every move of an alias, with the run it left and why: rollback reads it back."""

    __tablename__ = "sw_alias_change"

    id: int | None = Field(default=None, primary_key=True)
    alias: str = Field(index=True)
    run_id: str
    previous_run_id: str | None = None
    reason: str = Field(default="", sa_type=Text)
    changed_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)


class GateRecord(SQLModel, table=True):
    """One promotion-gate decision: the challenger, the champion it faced, the verdict and every
    criterion (JSON), and which rows the gate judged on."""

    __tablename__ = "sw_gate_decision"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="sw_training_run.run_id", index=True)
    champion_run_id: str | None = None
    promoted: bool
    first_model: bool
    criteria: str = Field(sa_type=Text)
    reasons: str = Field(default="", sa_type=Text)
    rows: int
    sessions: int
    gate_rows: str = Field(default="", sa_type=Text)  # what the rows are (sets, sessions)
    decided_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
