"""Fetching market data into the cache and recording what was fetched: the plain-Python core
that the CLI calls now and the Prefect flows wrap as tasks."""

from __future__ import annotations

import hashlib
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
from market.sources import (
    MarketDataError,
    MarketSource,
    NoVix,
    RangeClipped,
    SourceInfo,
    SymbolNotAvailable,
    open_source,
)
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
    #: What the source said about the range it served (a simulated range cut to its span), the
    #: members of a folder without a sector, a missing VIX.
    notes: tuple[str, ...] = ()
    #: Symbols the source could not serve, each with its reason (nothing of theirs was cached).
    refused: tuple[tuple[str, str], ...] = ()
    #: True when the source has no VIX, so features and regimes use the realised fallback.
    vix_is_fallback: bool = False


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
    allow_refused: bool = False,
) -> FetchOutcome:
    """Refresh the cache for ``symbols`` (default: the universe and its market proxy) and the VIX,
    then record the configuration and a data snapshot per symbol in the store.

    Every symbol that validates is cached, whatever happens to the others. A symbol the source
    cannot serve (no file, a malformed one, one Yahoo did not return) is listed in
    ``refused`` when ``allow_refused``; otherwise, after caching the rest, the fetch raises
    :class:`~market.sources.MarketDataError` naming each refused symbol and its reason. A source
    without a VIX (:class:`~market.sources.NoVix`) is not an error: the outcome says
    ``vix_is_fallback`` and a snapshot of the VIX symbol with no rows records the fallback used.
    """
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
    refused: dict[str, str] = {}
    notes = list(getattr(source, "notes", ()))
    fallback_description = loaded.config.market.vix_fallback.describe()
    try:
        # Reach the store before the first bar is written: a database that refuses us must not
        # leave bars cached with no snapshot recorded.
        store.engine  # noqa: B018 - opens the engine and creates the tables, or raises
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RangeClipped)
            results = cache.refresh(source, wanted, first, last, on_progress=on_progress, refused=refused)
            try:
                vix_sessions = len(cache.refresh_series(universe.vix_symbol, source.fetch_vix, first, last))
                fallback = False
            except NoVix as exc:
                vix_sessions, fallback = 0, True
                notes.append(f"{exc}: features and regimes use the VIX fallback, {fallback_description} "
                             "(flagged vix_is_fallback)")
        notes += dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, RangeClipped))
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
        spans = [r for r in results if r.first is not None and r.last is not None]
        if fallback and spans:
            store.record_snapshot(
                source=source.info.name, symbol=universe.vix_symbol,
                first_session=min(r.first for r in spans).date(),
                last_session=max(r.last for r in spans).date(),
                rows=0, checksum=hashlib.sha256(f"vix fallback: {fallback_description}".encode()).hexdigest(),
            )
    finally:
        store.dispose()
    if refused and not allow_refused:
        raise MarketDataError(
            f"{len(refused)} of {len(wanted)} symbols refused (the other {len(wanted) - len(refused)} "
            "are cached): " + "; ".join(f"{s}: {why}" for s, why in refused.items()))
    return FetchOutcome(source.info, universe, tuple(results), vix_sessions, first, last, tuple(notes),
                        tuple(refused.items()), fallback)


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
