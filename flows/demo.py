"""The demo's story so far: fetch the simulated universe and summarise what the market went
through. Later issues extend it into the whole train-guard-promote story."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from flows.archive import build_archive
from flows.config import LoadedConfig, Settings
from flows.data import FetchOutcome, fetch_market_data
from flows.regimes import regime_timeline
from market.cache import BarCache
from market.panel import load_panel
from market.sources.simulated import SimulatedSource
from market.summary import WindowStats, window_stats
from market.vocabulary import REGIMES
from memory.archive import ArchiveBuild


@dataclass(frozen=True)
class DemoSummary:
    fetch: FetchOutcome
    symbols_per_sector: dict[str, int]
    sessions: int
    first_session: date
    last_session: date
    regime_shares: dict[str, float]  # the simulator's true regime
    labelled_shares: dict[str, float]  # what the causal regime labeler says
    labeller_recall: dict[str, float]  # share of each true regime's sessions labelled as such
    regime_plot: Path | None
    events: list[tuple[str, str, WindowStats]]  # (event, configured regime, stats)
    archive: ArchiveBuild


def run_demo(
    loaded: LoadedConfig,
    settings: Settings,
    *,
    today: date | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> DemoSummary:
    """Fetch the simulated universe into the cache, label its regimes, build the archive, and
    summarise what the market went through."""
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
    # The cached bars, loaded once for the summary, the regimes and the archive.
    panel = load_panel(BarCache(settings.cache_dir, source.info.name), config.market.universe)
    proxy = panel.proxy["close"]
    simulated_regimes = source.market().regimes.loc[proxy.index]
    counts = Counter(simulated_regimes)
    regimes = regime_timeline(loaded, settings, source.info.name, panel=panel)
    labelled = regimes.timeline.regime.reindex(proxy.index)
    events = config.memory.archive.events
    stats = window_stats(proxy, panel.vix, [(e.name, e.start, e.end) for e in events])
    archive = build_archive(loaded, settings, source.info.name, panel=panel)
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
        labelled_shares={r.value: float((labelled == r.value).mean()) for r in REGIMES},
        labeller_recall={
            r.value: float((labelled[simulated_regimes == r.value] == r.value).mean())
            if counts.get(r.value) else float("nan")
            for r in REGIMES
        },
        regime_plot=regimes.plot,
        events=[(e.name, e.regime.value, s) for e, s in zip(events, stats, strict=True)],
        archive=archive,
    )
