"""The Parquet cache of daily bars: one file per symbol, refreshed incrementally, written atomically.

Layout: ``<root>/<source>/<SYMBOL>.parquet`` for bars and ``<root>/<source>/series/<SYMBOL>.parquet``
for single series such as the VIX close. Each source has its own directory, so simulated and real
history can never be spliced into one file.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from market.sources.base import (
    MarketDataError,
    MarketSource,
    PartialFetch,
    SourceUnavailable,
    conform_bars,
    empty_bars,
)
from market.symbols import check_symbol
from market.validation import validate_bars

#: Relative change of an overlapping close beyond which the source has re-adjusted its history
#: (a split or dividend since the last refresh) and the whole file must be fetched again.
READJUSTMENT_TOLERANCE = 1e-6

ProgressCallback = Callable[[str], None]
_SOURCE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


class NotCached(KeyError):
    """The symbol has no file in the cache."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


@dataclass(frozen=True)
class RefreshResult:
    """What one symbol's refresh did."""

    symbol: str
    rows_before: int
    rows_after: int
    first: pd.Timestamp | None
    last: pd.Timestamp | None
    missing_sessions: int
    readjusted: bool

    @property
    def added(self) -> int:
        return self.rows_after - self.rows_before


def write_parquet_atomically(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` to ``path`` so that a crash at any moment leaves either the old file or the
    new one, never a torn file: write a temporary sibling, fsync it, then rename over."""
    _write_atomically(path, frame.to_parquet)


def stream_parquet_atomically(parts: Iterable[pd.DataFrame], path: Path) -> int:
    """Write ``parts`` to ``path`` one row group after another, atomically like
    :func:`write_parquet_atomically`, holding one part at a time; returns the rows written.

    Every part must have the same columns and dtypes (categoricals with the same categories), so
    that the file reads back as their concatenation."""
    written = 0

    def write(temporary: Path) -> None:
        nonlocal written
        writer: pq.ParquetWriter | None = None
        try:
            for part in parts:
                table = pa.Table.from_pandas(part, preserve_index=True)
                if writer is None:
                    writer = pq.ParquetWriter(temporary, table.schema)
                elif not table.schema.equals(writer.schema):
                    raise ValueError(f"a part's columns differ from the first part's: {table.schema} "
                                     f"against {writer.schema}")
                writer.write_table(table)
                written += len(part)
        finally:
            if writer is not None:
                writer.close()
        if writer is None:
            raise ValueError(f"no part to write to {path}")

    _write_atomically(path, write)
    return written


def _write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        write(temporary)
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class BarCache:
    """Cached bars of one source under ``root``.

    Parameters
    ----------
    root
        The cache directory (``$STORMWATCH_HOME/bars`` by default).
    source_name
        The source the files come from; each source has a directory of its own.
    """

    def __init__(self, root: Path, source_name: str) -> None:
        self.root = Path(root)
        if not _SOURCE_NAME.fullmatch(source_name):
            raise ValueError(f"source name {source_name!r} must match {_SOURCE_NAME.pattern}")
        self.source_name = source_name
        self.directory = self.root / self.source_name

    def path_for(self, symbol: str) -> Path:
        return self.directory / f"{check_symbol(symbol)}.parquet"

    def series_path_for(self, symbol: str) -> Path:
        return self.directory / "series" / f"{check_symbol(symbol)}.parquet"

    def symbols(self) -> list[str]:
        """Symbols with cached bars, sorted."""
        if not self.directory.is_dir():
            return []
        return sorted(p.stem for p in self.directory.glob("*.parquet"))

    def read(self, symbol: str, start: date | None = None, end: date | None = None) -> pd.DataFrame:
        path = self.path_for(symbol)
        if not path.exists():
            raise NotCached(f"{symbol} is not cached for source {self.source_name!r} ({path})")
        # pyarrow directly, on this thread: half of pandas.read_parquet's time on a small file, and
        # load_panel already reads the universe's files on threads of its own.
        frame = pq.read_table(path, use_threads=False).to_pandas()
        return frame.loc[pd.Timestamp(start) if start else None : pd.Timestamp(end) if end else None]

    def series_symbols(self) -> list[str]:
        """Symbols with a cached single series (the VIX), sorted."""
        folder = self.directory / "series"
        return sorted(p.stem for p in folder.glob("*.parquet")) if folder.is_dir() else []

    def read_series(self, symbol: str) -> pd.Series:
        path = self.series_path_for(symbol)
        if not path.exists():
            raise NotCached(f"series {symbol} is not cached for source {self.source_name!r} ({path})")
        return pd.read_parquet(path).iloc[:, 0]

    def checksum(self, symbol: str, *, series: bool = False) -> str:
        """sha256 of the cached file (of the single series when ``series``), recorded with data
        snapshots so runs can be traced."""
        path = self.series_path_for(symbol) if series else self.path_for(symbol)
        return hashlib.sha256(path.read_bytes()).hexdigest()

    def write(self, symbol: str, frame: pd.DataFrame) -> None:
        """Validate ``frame`` and replace the symbol's file with it. A frame that breaks a bar rule
        raises :class:`~market.validation.BarValidationError` and the cached file is untouched."""
        frame = conform_bars(frame)
        validate_bars(symbol, frame)
        write_parquet_atomically(frame, self.path_for(symbol))

    def refresh(
        self,
        source: MarketSource,
        symbols: Sequence[str],
        start: date,
        end: date,
        *,
        on_progress: ProgressCallback | None = None,
        refused: dict[str, str] | None = None,
    ) -> list[RefreshResult]:
        """Bring every symbol's file up to ``[start, end]``, fetching only what is not cached.

        Sessions after the last cached one (and before the first, if ``start`` moved earlier) are
        fetched, together with the last cached session: if the source now reports a different
        close for it, its history was re-adjusted and the symbol is fetched whole again. Symbols
        that need the same range are fetched in one call, so batched sources stay batched.

        Without ``refused`` the first symbol the source cannot serve raises (its
        :class:`~market.sources.base.MarketDataError`). With it, one bad symbol costs only
        itself: a batch that fails is fetched again symbol by symbol (a
        :class:`~market.sources.base.PartialFetch` keeps what arrived), every symbol that
        validates is cached, and each refused one is put in ``refused`` with its reason; its
        cached file, if any, is left as it was. A source that is down
        (:class:`~market.sources.base.SourceUnavailable`) still raises: no symbol would fare
        better, and what earlier batches brought stays cached.
        """
        for symbol in symbols:
            check_symbol(symbol)
        first_day, last_day = pd.Timestamp(start), pd.Timestamp(end)
        cached = {s: self._read_or_none(s) for s in symbols}
        plans: dict[tuple[pd.Timestamp, pd.Timestamp], list[str]] = defaultdict(list)
        for symbol, frame in cached.items():
            plans[self._missing_span(frame, first_day, last_day)].append(symbol)

        results: list[RefreshResult] = []
        for (fetch_start, fetch_end), group in plans.items():
            if fetch_start > fetch_end:
                fetched: dict[str, pd.DataFrame] = {}
            elif refused is None:
                fetched = source.fetch_bars(group, fetch_start.date(), fetch_end.date())
            else:
                fetched = self._fetch_each(source, group, fetch_start, fetch_end, refused)
            for symbol in group:
                if refused is None:
                    results.append(
                        self._merge(source, symbol, cached[symbol], fetched.get(symbol), first_day, last_day)
                    )
                elif symbol not in refused:
                    try:
                        results.append(self._merge(source, symbol, cached[symbol], fetched.get(symbol),
                                                   first_day, last_day))
                    except MarketDataError as exc:
                        refused[symbol] = str(exc)
                if on_progress is not None:
                    on_progress(symbol)
        order = {s: i for i, s in enumerate(symbols)}
        return sorted(results, key=lambda r: order[r.symbol])

    @staticmethod
    def _fetch_each(
        source: MarketSource, group: list[str], start: pd.Timestamp, end: pd.Timestamp,
        refused: dict[str, str],
    ) -> dict[str, pd.DataFrame]:
        """``group``'s bars in one call when it succeeds, else what can be had symbol by symbol,
        each failure recorded in ``refused``."""
        try:
            return source.fetch_bars(group, start.date(), end.date())
        except PartialFetch as partial:
            refused.update(partial.refused)
            return dict(partial.frames)
        except SourceUnavailable:
            raise  # the source is down (no network, no directory): no symbol would fare better
        except MarketDataError as exc:
            if len(group) == 1:
                refused[group[0]] = str(exc)
                return {}
        fetched: dict[str, pd.DataFrame] = {}
        for symbol in group:
            try:
                fetched.update(source.fetch_bars([symbol], start.date(), end.date()))
            except SourceUnavailable:
                raise
            except MarketDataError as exc:
                refused[symbol] = str(exc)
        return fetched

    def refresh_series(self, symbol: str, fetch: Callable[[date, date], pd.Series],
                       start: date, end: date) -> pd.Series:
        """Cache a single series (the VIX close), written atomically. When the cached series does
        not cover ``[start, end]`` the whole range is fetched again (one call, a small series) and
        merged over it, newer values winning; a non-positive value is refused before writing."""
        path = self.series_path_for(symbol)
        old = pd.read_parquet(path).iloc[:, 0] if path.exists() else None
        first_day, last_day = pd.Timestamp(start), pd.Timestamp(end)
        if old is not None and len(old) and old.index[-1] >= last_day and old.index[0] <= first_day:
            return old
        fresh = fetch(first_day.date(), last_day.date()).astype("float64")
        fresh.index = pd.DatetimeIndex(fresh.index).astype("datetime64[ns]").rename("date")
        merged = fresh if old is None else pd.concat([old, fresh])
        merged = merged[~merged.index.duplicated(keep="last")].sort_index()
        bad = merged[~(merged > 0)]
        if len(bad):
            raise ValueError(f"{symbol}: value {bad.iloc[0]!r} on {bad.index[0].date()} is not positive")
        write_parquet_atomically(merged.to_frame(name=merged.name or "value"), path)
        return merged

    # -- internals -------------------------------------------------------------------------------

    def _read_or_none(self, symbol: str) -> pd.DataFrame | None:
        path = self.path_for(symbol)
        return pd.read_parquet(path) if path.exists() else None

    @staticmethod
    def _missing_span(
        frame: pd.DataFrame | None, start: pd.Timestamp, end: pd.Timestamp
    ) -> tuple[pd.Timestamp, pd.Timestamp]:
        if frame is None or frame.empty:
            return start, end
        if start < frame.index[0]:
            return start, end  # earlier history requested: one fetch covers head and tail
        return frame.index[-1], end  # include the last cached session to detect re-adjustment

    def _merge(
        self,
        source: MarketSource,
        symbol: str,
        old: pd.DataFrame | None,
        new: pd.DataFrame | None,
        start: pd.Timestamp,
        end: pd.Timestamp,
    ) -> RefreshResult:
        rows_before = 0 if old is None else len(old)
        readjusted = False
        new = empty_bars() if new is None else conform_bars(new)
        if old is None or old.empty:
            merged = new
        elif new.empty:
            merged = old
        else:
            overlap = old.index.intersection(new.index)
            drift = (
                (new.loc[overlap, "close"] / old.loc[overlap, "close"] - 1.0).abs().max()
                if len(overlap)
                else 0.0
            )
            if drift > READJUSTMENT_TOLERANCE:
                readjusted = True
                merged = conform_bars(
                    source.fetch_bars([symbol], min(start, old.index[0]).date(), end.date())[symbol]
                )
            else:
                merged = pd.concat([old, new.drop(index=overlap)]).sort_index()
        if merged.empty:
            return RefreshResult(symbol, rows_before, 0, None, None, 0, readjusted)
        report = validate_bars(symbol, merged)
        if old is None or readjusted or not merged.equals(old):
            write_parquet_atomically(merged, self.path_for(symbol))
        return RefreshResult(
            symbol, rows_before, len(merged), report.first, report.last,
            len(report.missing_sessions), readjusted,
        )

