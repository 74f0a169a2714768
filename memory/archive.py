"""The rare-event archive (SPEC.md module 1): labelled samples of every configured storm.

The archive holds, for every symbol and every session of each event's window, the same
features and labels as normal training, with the event's name and regime attached. It is built
once per (configured version, content) and kept: the samples as Parquet under
``<home>/archive/<version>/samples.parquet``, the versions, events and counts in the store.

Rows where only some features are undefined (a gap in a symbol's bars, a history shorter than
a feature's window) are kept (``partial``, see :func:`market.features.compute_features`): one
missing bar costs the rows whose label spans it, not the ~312 sessions of the longest lookback,
and a young symbol contributes rows with its long-window features undefined. The zoo's members
take the missing values natively or impute them inside their own pipeline.

Identity is the content hash of everything the samples depend on: the events, the label
settings, the VIX fallback, whether partial rows are kept, the feature catalogue and the code
that defines features and labels, the source, and a fingerprint of every input used (all bar
fields, the market proxy, the VIX, the sectors, up to the last session a label reaches).
Building an unchanged archive is a no-op. A changed archive
under an already-used configured version gets a new version ``<version>+<hash prefix>`` (semver
build metadata), and the old one stays readable.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import itertools
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from sqlmodel import select

from market.cache import stream_parquet_atomically
from market.config import LabelSettings
from market.features import DEFAULT_CHUNK_SYMBOLS, FEATURE_NAMES, ChunkMapper
from market.panel import BarPanel
from market.samples import SampleBlock, sample_block
from market.vix import VixFallback
from memory.config import ArchiveConfig, ArchiveEvent
from memory.store import Store
from memory.tables import ArchiveEventRecord, ArchiveVersion

ProgressCallback = Callable[[str], None]


class ArchiveNotBuilt(LookupError):
    """The archive (or the requested version of it) has not been built yet."""


@dataclass(frozen=True)
class ArchiveBuild:
    """The outcome of :meth:`RareEventArchive.build`."""

    version: str
    content_hash: str
    path: Path
    built: bool  # False when an identical archive already existed (no-op)
    counts: pd.DataFrame  # per event: regime, sessions, symbols, samples, unlabelled, dropped_lookback
    seconds: float

    @property
    def samples(self) -> int:
        return int(self.counts["samples"].sum())


#: The modules whose code defines the samples (features, labels, the VIX fallback, the rolling
#: statistics, the sample assembly): their source is part of the archive's identity, so a change
#: to a feature definition rebuilds the archive without anyone remembering to bump a version.
SAMPLE_DEFINITIONS: tuple[str, ...] = ("market.features", "market.labels", "market.rolling", "market.samples",
                                       "market.vix")


def definitions_fingerprint() -> str:
    """sha256 of the source code of :data:`SAMPLE_DEFINITIONS` (the version of the feature and
    label definitions)."""
    digest = hashlib.sha256()
    for name in SAMPLE_DEFINITIONS:
        digest.update(name.encode())
        digest.update(inspect.getsource(importlib.import_module(name)).encode())
    return digest.hexdigest()


def panel_fingerprint(panel: BarPanel, last: pd.Timestamp) -> str:
    """sha256 of every input a sample up to ``last`` can read: each field of every symbol's bars,
    the market proxy's bars and the VIX (missing values included, as missing), from the panel's
    first session (recursive indicators such as an EMA remember all of it) to ``last``, with
    the symbols and their sectors."""
    digest = hashlib.sha256()
    parts = {"open": panel.open, "high": panel.high, "low": panel.low, "close": panel.close,
             "volume": panel.volume, "proxy": panel.proxy, "vix": panel.vix}
    for name, values in parts.items():
        cut = values.loc[:last]
        digest.update(name.encode())
        columns = cut.columns if isinstance(cut, pd.DataFrame) else ["series"]
        digest.update(",".join(map(str, columns)).encode())
        digest.update(pd.util.hash_pandas_object(cut, index=True).to_numpy().tobytes())
    digest.update(json.dumps(sorted(panel.sectors.items())).encode())
    return digest.hexdigest()


def archive_content_hash(
    config: ArchiveConfig, labels: LabelSettings, source: str, panel: BarPanel, *,
    vix_fallback: VixFallback | None = None, partial: bool = True,
) -> str:
    """sha256 of everything the archive's samples depend on, and nothing else: the events, the
    label settings, the VIX fallback (``market.vix_fallback``; ``None``: its defaults), whether
    partial rows are kept (it changes which rows exist), the source, the definitions of features
    and labels (:func:`definitions_fingerprint`), and every bar, proxy bar, VIX value and sector
    up to the last session a label of the last event reaches (:func:`panel_fingerprint`). Bars
    appended after that session leave it unchanged."""
    last = pd.Timestamp(max(e.end for e in config.events))
    sessions = panel.sessions
    reach = min(int(sessions.searchsorted(last, side="right")) - 1 + labels.horizon, len(sessions) - 1)
    cut = sessions[reach] if reach >= 0 else last
    payload = {
        "events": [e.model_dump(mode="json") for e in config.events],
        "labels": labels.model_dump(mode="json"),
        "vix_fallback": (vix_fallback or VixFallback()).model_dump(mode="json"),
        "partial": partial,
        "features": list(FEATURE_NAMES),
        "definitions": definitions_fingerprint(),
        "source": source,
        "bars": panel_fingerprint(panel, cut),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class ArchiveGrowth:
    """The outcome of :meth:`RareEventArchive.add_events`.

    ``version`` holds the events: a new version when ``built``, else the one that already did
    (the base itself when it held them all, or an identical earlier growth).
    """

    version: str
    base: str
    built: bool
    added: tuple[str, ...]  # events added or extended by this version (empty when nothing was new)
    counts: pd.DataFrame
    path: Path
    empty: tuple[str, ...] = ()  # events left out: no symbol has a labelled sample in their window


def _held(counts: pd.DataFrame, event: ArchiveEvent) -> bool:
    """Whether the records already hold ``event`` with at least its window."""
    same = counts.loc[counts["event"] == event.name]
    return bool(((same["start"] == event.start) & (same["end"] >= event.end)).any())


def _events_block(
    events: Sequence[ArchiveEvent], panel: BarPanel, labels: LabelSettings, *, partial: bool,
    vix_fallback: VixFallback | None, chunk_symbols: int, mapper: ChunkMapper | None,
) -> SampleBlock:
    """Features and labels of every symbol on the sessions inside any of ``events``' windows."""
    sessions = panel.sessions
    inside = np.zeros(len(sessions), dtype=bool)
    for event in events:
        inside |= (sessions >= pd.Timestamp(event.start)) & (sessions <= pd.Timestamp(event.end))
    return sample_block(panel, sessions[inside], horizon=labels.horizon, kind=labels.kind,
                        beta_lookback=labels.beta_lookback, barrier=labels.triple_barrier, partial=partial,
                        vix_fallback=vix_fallback, chunk_symbols=chunk_symbols, mapper=mapper)


class _EventPart:
    """One event's labelled samples in a block (its frame made only when asked for) and its counts row."""

    def __init__(self, event: ArchiveEvent, block: SampleBlock) -> None:
        self.event, self.block = event, block
        dates = block.features.sessions
        self.window = (dates >= pd.Timestamp(event.start)) & (dates <= pd.Timestamp(event.end))
        inside = block.complete & self.window[:, None]
        self.keep = inside & block.labelled
        bars = block.features.has_bar[self.window]
        self.counts = {
            "event": event.name, "regime": event.regime.value, "start": event.start, "end": event.end,
            "weight": event.weight, "sessions": int(self.window.sum()),
            "symbols": int(bars.any(axis=0).sum()),
            "samples": int(self.keep.sum()), "unlabelled": int(inside.sum() - self.keep.sum()),
            "dropped_lookback": int(bars.sum() - inside.sum()),
        }

    def frame(self) -> pd.DataFrame:
        return self.block.frame(self.keep, "archive").assign(event=self.event.name,
                                                            regime=self.event.regime.value)


def _kept_parts(path: Path, replaced: Sequence[str]) -> Iterator[pd.DataFrame]:
    """The samples of the archive at ``path`` outside the ``replaced`` events, a row group at a time."""
    parquet = pq.ParquetFile(path)
    for group in range(parquet.num_row_groups):
        frame = parquet.read_row_group(group).to_pandas()
        yield frame.loc[~frame["event"].astype(str).isin(replaced)]


def _write_parts(path: Path, parts: Iterable[pd.DataFrame], counts: Sequence[Mapping[str, Any]],
                 sectors: Iterable[str]) -> int:
    """Write ``parts`` (frames made one at a time) as row groups of one Parquet file, with
    ``event``, ``regime`` and ``provenance`` as categoricals over the values the ``counts`` rows
    with samples hold, and ``sector`` over ``sectors``, in sorted order, in every part (an empty
    part, read back, has no categories at all): the file reads back as the parts' concatenation
    would, and memory holds one part."""
    held = [row for row in counts if row["samples"] > 0]
    categories = {"event": sorted({str(r["event"]) for r in held}),
                  "regime": sorted({str(r["regime"]) for r in held}), "provenance": ["archive"],
                  "sector": sorted(set(sectors))}

    def categorised(frame: pd.DataFrame) -> pd.DataFrame:
        for column, values in categories.items():
            frame[column] = pd.Categorical(frame[column].astype(str), categories=values)
        return frame

    return stream_parquet_atomically((categorised(part) for part in parts), path)


class RareEventArchive:
    """Builds, versions and reads the archive under ``root`` with its records in ``store``."""

    def __init__(self, root: Path, store: Store) -> None:
        self.root = Path(root)
        self.store = store

    def path_for(self, version: str) -> Path:
        return self.root / version / "samples.parquet"

    def build(
        self,
        config: ArchiveConfig,
        panel: BarPanel,
        labels: LabelSettings,
        source: str,
        *,
        on_progress: ProgressCallback | None = None,
        vix_fallback: VixFallback | None = None,
        partial: bool = True,
        chunk_symbols: int = DEFAULT_CHUNK_SYMBOLS,
        mapper: ChunkMapper | None = None,
    ) -> ArchiveBuild:
        """Build the archive's samples for every event, unless an identical build exists.

        ``vix_fallback`` is the configured ``market.vix_fallback`` (``None``: its defaults).
        ``partial`` keeps rows where only some features are undefined; ``False`` keeps only rows
        with every feature (the former behaviour, where one missing bar cost about a year).
        Features and labels are computed on the events' sessions only, ``chunk_symbols``
        symbols at a time (``market.feature_chunk_symbols``; ``mapper`` runs the chunks, e.g. as
        tasks on a Dask cluster), and written event by event: memory is the events' samples once
        plus one chunk's intermediates, never the whole history.
        """
        started = time.perf_counter()
        progress = on_progress or (lambda _: None)
        content_hash = archive_content_hash(config, labels, source, panel, vix_fallback=vix_fallback,
                                            partial=partial)
        existing = self._version_with_hash(content_hash)
        if existing is not None and self.path_for(existing.version).exists():
            progress("unchanged")
            return ArchiveBuild(existing.version, content_hash, self.path_for(existing.version), False,
                                self.counts(existing.version), time.perf_counter() - started)
        version = self._new_version_name(config.version, content_hash)

        progress("features and labels")
        block = _events_block(config.events, panel, labels, partial=partial, vix_fallback=vix_fallback,
                              chunk_symbols=chunk_symbols, mapper=mapper)
        parts = [_EventPart(event, block) for event in config.events]
        path = self.path_for(version)
        rows = [p.counts for p in parts]

        def frames() -> Iterator[pd.DataFrame]:
            for part in parts:  # each event's frame made, written and let go in turn
                progress(part.event.name)
                yield part.frame()

        _write_parts(path, frames(), rows, block.sectors.categories)
        counts = pd.DataFrame(rows)
        self._record(version, config.version, content_hash, source, counts)
        progress("written")
        return ArchiveBuild(version, content_hash, path, True, counts, time.perf_counter() - started)

    def add_events(
        self,
        events: Sequence[ArchiveEvent],
        panel: BarPanel,
        labels: LabelSettings,
        source: str,
        *,
        base: str | None = None,
        vix_fallback: VixFallback | None = None,
        partial: bool = True,
        chunk_symbols: int = DEFAULT_CHUNK_SYMBOLS,
        mapper: ChunkMapper | None = None,
    ) -> ArchiveGrowth:
        """Add discovered events to the archive as a new version, idempotently.

        The new version holds every event of ``base`` (default: the latest version built from
        ``source``) and the labelled samples of ``events``, whose ``weight`` is their share of
        the new version's weight (the others are scaled down to make room). An event the base
        already holds with at least the same window adds nothing; one it holds with a shorter
        window (the event has lasted longer) is replaced by its extended window. Adding the same
        events to the same base twice finds the version of the first time (content hash), so a
        replay adds nothing. Samples are built from ``panel`` as given: pass it truncated to the
        session the monitor is at, so no label past that session is used. ``vix_fallback`` and
        ``partial`` are as for :meth:`build` (and part of the new version's identity), and so are
        ``chunk_symbols`` and ``mapper`` (which are not: they never change a value).

        Raises
        ------
        ArchiveNotBuilt
            If ``source`` has no archive version to grow from.
        """
        base = base or self._latest_of(source)
        counts = self.counts(base)
        pending = [e for e in events if not _held(counts, e)]
        if not pending:
            return ArchiveGrowth(base, base, False, (), counts, self.path_for(base))
        with self.store.session() as session:
            record = session.get(ArchiveVersion, base)
        if record is None:
            raise ArchiveNotBuilt(f"archive version {base} is not recorded in the store")
        payload = {"base": record.content_hash, "source": source, "labels": labels.model_dump(mode="json"),
                   "vix_fallback": (vix_fallback or VixFallback()).model_dump(mode="json"),
                   "partial": partial,
                   "events": sorted((e.model_dump(mode="json") for e in pending), key=lambda e: e["name"])}
        content_hash = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
        existing = self._version_with_hash(content_hash)
        names = tuple(e.name for e in pending)
        if existing is not None and self.path_for(existing.version).exists():
            return ArchiveGrowth(existing.version, base, False, names, self.counts(existing.version),
                                 self.path_for(existing.version))

        block = _events_block(pending, panel, labels, partial=partial, vix_fallback=vix_fallback,
                              chunk_symbols=chunk_symbols, mapper=mapper)
        fresh = [_EventPart(event, block) for event in pending]
        empty = tuple(p.event.name for p in fresh if p.counts["samples"] == 0)
        fresh = [p for p in fresh if p.counts["samples"] > 0]
        names = tuple(p.event.name for p in fresh)
        if not fresh:
            return ArchiveGrowth(base, base, False, (), counts, self.path_for(base), empty)
        kept = counts.loc[~counts["event"].isin(names)].copy()
        kept["weight"] *= (1.0 - sum(p.event.weight for p in fresh)) / kept["weight"].sum()
        rows = kept.to_dict("records") + [p.counts for p in fresh]
        version = self._new_version_name(record.configured_version, content_hash)
        path = self.path_for(version)
        old = self.path_for(base)
        if not old.exists():
            raise ArchiveNotBuilt(f"archive version {base} has no samples at {old}")
        held = pq.read_table(old, columns=["sector"]).column("sector").to_pandas()
        _write_parts(path, itertools.chain(_kept_parts(old, names), (p.frame() for p in fresh)), rows,
                     [*block.sectors.categories, *held.astype(str).unique()])
        new_counts = pd.DataFrame(rows)
        self._record(version, record.configured_version, content_hash, source, new_counts)
        return ArchiveGrowth(version, base, True, names, new_counts, path, empty)

    def _latest_of(self, source: str) -> str:
        built = [v for v in self.versions() if v.source == source]
        if not built:
            raise ArchiveNotBuilt(f"no archive has been built from {source}: run "
                                  f"`stormwatch archive build --source {source}`")
        return built[-1].version

    def versions(self) -> list[ArchiveVersion]:
        with self.store.session() as session:
            return list(session.exec(select(ArchiveVersion).order_by(ArchiveVersion.built_at)).all())

    def latest_version(self) -> str:
        versions = self.versions()
        if not versions:
            raise ArchiveNotBuilt("no archive has been built yet: run `stormwatch archive build`")
        return versions[-1].version

    def load(self, version: str | None = None) -> pd.DataFrame:
        """The samples of ``version`` (default: the latest built)."""
        version = version or self.latest_version()
        path = self.path_for(version)
        if not path.exists():
            raise ArchiveNotBuilt(f"archive version {version} has no samples at {path}")
        return pd.read_parquet(path)

    def counts(self, version: str | None = None) -> pd.DataFrame:
        """Per-event records of ``version``: window, regime, weight and sample counts."""
        version = version or self.latest_version()
        with self.store.session() as session:
            records = session.exec(
                select(ArchiveEventRecord).where(ArchiveEventRecord.version == version)
                .order_by(ArchiveEventRecord.position)
            ).all()
            if not records:
                raise ArchiveNotBuilt(f"archive version {version} is not recorded in the store")
            return pd.DataFrame([r.model_dump(exclude={"id", "version", "position"}) for r in records])

    # -- internals -------------------------------------------------------------------------------

    def _version_with_hash(self, content_hash: str) -> ArchiveVersion | None:
        with self.store.session() as session:
            query = select(ArchiveVersion).where(ArchiveVersion.content_hash == content_hash)
            return session.exec(query).first()

    def _new_version_name(self, configured: str, content_hash: str) -> str:
        with self.store.session() as session:
            taken = session.get(ArchiveVersion, configured) is not None
        return f"{configured}+{content_hash[:8]}" if taken else configured

    def _record(
        self, version: str, configured: str, content_hash: str, source: str, counts: pd.DataFrame
    ) -> None:
        with self.store.session() as session:
            session.add(ArchiveVersion(
                version=version, configured_version=configured, content_hash=content_hash, source=source,
                samples=int(counts["samples"].sum()), events=len(counts),
            ))
            session.flush()  # the version row must exist before its events reference it
            for position, row in enumerate(counts.to_dict("records")):
                session.add(ArchiveEventRecord(version=version, position=position, **row))
