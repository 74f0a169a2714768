"""Fetching market data into the cache and recording what was fetched: the plain-Python core
that the CLI calls now and the Prefect flows wrap as tasks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from flows.config import LoadedConfig, Settings
from market.cache import BarCache, RefreshResult, write_parquet_atomically
from market.sources import MarketSource, SourceInfo, open_source
from market.symbols import check_symbol
from market.universe import Universe
from memory.store import Store, database_url


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
    cache = BarCache(settings.cache_dir, source.info.name)
    results = cache.refresh(source, wanted, first, last, on_progress=on_progress)
    vix = cache.refresh_series(universe.vix_symbol, source.fetch_vix, first, last)

    store = open_store(settings)
    try:
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
    return FetchOutcome(source.info, universe, tuple(results), len(vix), first, last)


def export_ground_truth(
    loaded: LoadedConfig, settings: Settings, path: Path | None = None, *, today: date | None = None
) -> tuple[Path, int]:
    """Write the simulated market's oracle (true regime, expected excess return, best direction
    per session and symbol) as Parquet for the quality benchmarks. Never a feature."""
    from market.sources.simulated import SimulatedSource

    market = loaded.config.market
    source = SimulatedSource(market.universe, market.sources.simulated, horizon=market.labels.horizon,
                             today=today)
    truth = source.market().ground_truth()
    target = path or settings.home / "ground_truth" / f"simulated-seed{market.sources.simulated.seed}.parquet"
    write_parquet_atomically(truth, target)
    return target, len(truth)
