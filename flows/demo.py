"""The demo's story so far: fetch the simulated universe and summarise what the market went
through. Later issues extend it into the whole train-guard-promote story."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from flows.config import LoadedConfig, Settings
from flows.data import FetchOutcome, fetch_market_data
from market.cache import BarCache
from market.sources.simulated import SimulatedSource
from market.summary import WindowStats, window_stats
from market.vocabulary import REGIMES


@dataclass(frozen=True)
class DemoSummary:
    fetch: FetchOutcome
    symbols_per_sector: dict[str, int]
    sessions: int
    first_session: date
    last_session: date
    regime_shares: dict[str, float]
    events: list[tuple[str, str, WindowStats]]  # (event, configured regime, stats)


def run_demo(
    loaded: LoadedConfig,
    settings: Settings,
    *,
    today: date | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> DemoSummary:
    """Fetch the simulated universe into the cache and compute the demo's summary."""
    config = loaded.config
    source = SimulatedSource(
        config.market.universe,
        config.market.sources.simulated,
        horizon=config.market.labels.horizon,
        today=today,
    )
    end = today or date.today()
    fetch = fetch_market_data(
        loaded, settings, source, config.market.universe, end=end, on_progress=on_progress
    )
    cache = BarCache(settings.cache_dir, source.info.name)
    proxy = cache.read(config.market.universe.market_proxy)["close"]
    vix = cache.read_series(config.market.universe.vix_symbol)
    simulated_regimes = source.market().regimes.loc[proxy.index]
    counts = Counter(simulated_regimes)
    events = config.memory.archive.events
    stats = window_stats(proxy, vix, [(e.name, e.start, e.end) for e in events])
    return DemoSummary(
        fetch=fetch,
        symbols_per_sector={
            sector.value: len(symbols)
            for sector, symbols in config.market.universe.by_sector().items()
        },
        sessions=len(proxy),
        first_session=proxy.index[0].date(),
        last_session=proxy.index[-1].date(),
        regime_shares={r.value: counts.get(r.value, 0) / len(proxy) for r in REGIMES},
        events=[(e.name, e.regime.value, s) for e, s in zip(events, stats, strict=True)],
    )
