"""Fetching market data into the cache and recording what was fetched: the plain-Python core
that the CLI calls now and the Prefect flows wrap as tasks."""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from flows.config import LoadedConfig, Settings
from market.cache import BarCache, RefreshResult, write_parquet_atomically
from market.sources import MarketSource, RangeClipped, SourceInfo, SymbolNotAvailable, open_source
from market.symbols import check_symbol
from market.universe import Universe
from memory.store import Store, database_url

#: The file types ``stormwatch data ground-truth --out`` writes, by suffix.
GROUND_TRUTH_SUFFIXES = (".parquet", ".csv")


@dataclass(frozen=True)
class MarketSelection:
    """Which market data a command reads: the seam between the command line and the flows.

    Every field ``None`` means "as configured": the configured default source, its csv
    directory, the whole universe, ``market.history_start`` to today. Built and validated from
    the shared options by :func:`flows.cli.common.market_selection`.
    """

    source: str | None = None
    csv_dir: Path | None = None
    symbols: tuple[str, ...] | None = None
    start: date | None = None
    end: date | None = None


@dataclass(frozen=True)
class FetchOutcome:
    """What a fetch brought into the cache."""

    source: SourceInfo
    universe: Universe
    results: tuple[RefreshResult, ...]
    vix_sessions: int
    start: date
    end: date
    #: What the source said about the range it served (a simulated range cut to its span).
    notes: tuple[str, ...] = ()


def open_store(settings: Settings) -> Store:
    """The store named by the settings: PostgreSQL when a URL is set, else SQLite under home."""
    return Store(database_url(settings.home, settings.database_url))


def resolve_source(
    loaded: LoadedConfig,
    source_name: str | None,
    *,
    csv_directory: Path | None = None,
    today: date | None = None,
) -> tuple[MarketSource, Universe]:
    market = loaded.config.market
    return open_source(
        source_name or market.sources.default,
        market.universe,
        market.sources,
        horizon=market.labels.horizon,
        csv_directory=csv_directory,
        today=today,
    )


def open_selection(
    loaded: LoadedConfig, selection: MarketSelection, *, today: date | None = None
) -> tuple[MarketSource, Universe]:
    """The selected source and the universe it serves, restricted to ``selection.symbols``."""
    source, universe = resolve_source(loaded, selection.source, csv_directory=selection.csv_dir,
                                      today=today)
    return source, selected_universe(universe, selection.symbols, source.info.name)


def selected_universe(universe: Universe, symbols: Sequence[str] | None, source_name: str) -> Universe:
    """``universe`` with only the members in ``symbols`` (the market proxy and VIX always stay);
    a symbol outside the universe is refused, naming the universe's members."""
    if not symbols:
        return universe
    outside = [s for s in symbols if s not in universe.symbols and s not in (universe.market_proxy,
                                                                              universe.vix_symbol)]
    if outside:
        raise SymbolNotAvailable(
            f"{', '.join(outside)} {'is' if len(outside) == 1 else 'are'} not in the {source_name} "
            f"universe ({len(universe.symbols)} symbols: {', '.join(universe.symbols[:8])}"
            f"{', ...' if len(universe.symbols) > 8 else ''})"
        )
    members = tuple(m for m in universe.members if m.symbol in symbols)
    if not members:  # only the proxy or the VIX asked for: keep the universe's shape valid
        return universe
    return universe.model_copy(update={"members": members})


def fetch_market_data(
    loaded: LoadedConfig,
    settings: Settings,
    source: MarketSource,
    universe: Universe,
    *,
    symbols: Sequence[str] | None = None,
    start: date | None = None,
    end: date | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> FetchOutcome:
    """Refresh the cache for ``symbols`` (default: the universe and its market proxy) and the VIX,
    then record the configuration and a data snapshot per symbol in the store."""
    wanted = list(symbols) if symbols else [universe.market_proxy, *universe.symbols]
    for symbol in wanted:
        check_symbol(symbol)
    first = start or loaded.config.market.history_start
    last = end or date.today()
    if last < first:
        raise ValueError(f"the range ends ({last}) before it starts ({first}): "
                         "give --start and --end in order")
    cache = BarCache(settings.cache_dir, source.info.name)
    store = open_store(settings)
    try:
        # Reach the store before the first bar is written: a database that refuses us must not
        # leave bars cached with no snapshot recorded.
        store.engine  # noqa: B018 - opens the engine and creates the tables, or raises
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RangeClipped)
            results = cache.refresh(source, wanted, first, last, on_progress=on_progress)
            vix = cache.refresh_series(universe.vix_symbol, source.fetch_vix, first, last)
        notes = tuple(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, RangeClipped)))
        for w in caught:
            if not issubclass(w.category, RangeClipped):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        store.record_config(
            content_hash=loaded.content_hash,
            version=loaded.version,
            content=loaded.config.model_dump_json(),
        )
        for result in results:
            if result.first is None or result.last is None:
                continue
            store.record_snapshot(
                source=source.info.name,
                symbol=result.symbol,
                first_session=result.first.date(),
                last_session=result.last.date(),
                rows=result.rows_after,
                checksum=cache.checksum(result.symbol),
            )
    finally:
        store.dispose()
    return FetchOutcome(source.info, universe, tuple(results), len(vix), first, last, notes)


def ground_truth_path(settings: Settings, loaded: LoadedConfig, path: Path | None = None) -> Path:
    """Where the ground truth goes: ``path`` (a ``.parquet`` or ``.csv`` file, not a directory) or
    ``$STORMWATCH_HOME/ground_truth/simulated-seed<seed>.parquet``; checked before any work."""
    if path is None:
        seed = loaded.config.market.sources.simulated.seed
        return settings.home / "ground_truth" / f"simulated-seed{seed}.parquet"
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory: give a file such as {path / 'ground-truth.parquet'}")
    if path.suffix.lower() not in GROUND_TRUTH_SUFFIXES:
        raise ValueError(f"{path}: write a {' or a '.join(GROUND_TRUTH_SUFFIXES)} file "
                         f"(the suffix chooses the format), not {path.suffix or 'a file without suffix'}")
    return path


def write_csv_atomically(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` as CSV so that a failure leaves the old file or none, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        frame.to_csv(temporary, index=False)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def export_ground_truth(
    loaded: LoadedConfig, settings: Settings, path: Path | None = None, *, today: date | None = None
) -> tuple[Path, int]:
    """Write the simulated market's oracle (true regime, expected excess return, best direction
    per session and symbol) for the quality benchmarks, as Parquet, or CSV for a ``.csv`` path.
    Never a feature."""
    from market.sources.simulated import SimulatedSource

    target = ground_truth_path(settings, loaded, path)
    market = loaded.config.market
    source = SimulatedSource(market.universe, market.sources.simulated, horizon=market.labels.horizon,
                             today=today)
    truth = source.market().ground_truth()
    if target.suffix.lower() == ".csv":
        write_csv_atomically(truth, target)
    else:
        write_parquet_atomically(truth, target)
    return target, len(truth)
