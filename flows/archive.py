"""Building and reading the rare-event archive from cached bars: the plain-Python core behind
``stormwatch archive`` and, later, the archive job."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date

import pandas as pd

from flows.config import LoadedConfig, Settings
from flows.data import MarketSelection, fetch_market_data, open_selection, open_store
from market.cache import BarCache, NotCached
from market.panel import BarPanel, load_panel
from market.sources import MarketDataError
from memory.archive import ArchiveBuild, ArchiveNotBuilt, RareEventArchive
from memory.tables import ArchiveVersion


def open_archive(settings: Settings) -> RareEventArchive:
    return RareEventArchive(settings.home / "archive", open_store(settings))


def cached_panel(
    loaded: LoadedConfig,
    settings: Settings,
    source_name: str | None = None,
    on_fetch: Callable[[str], None] | None = None,
    *,
    selection: MarketSelection | None = None,
    on_start: Callable[[int], None] | None = None,
) -> tuple[str, BarPanel]:
    """The selected universe's panel from the cache, fetching first what is not cached yet.

    ``selection`` (source, csv directory, symbols, dates) wins over ``source_name``; its dates
    cut the panel (and bound the fetch). ``on_start`` is told how many series a fetch will bring
    (the source's universe, which for ``bundled`` is not the configured one) before it starts."""
    selection = selection or MarketSelection(source=source_name)
    source, universe = open_selection(loaded, selection)
    cache = BarCache(settings.cache_dir, source.info.name)
    try:
        panel = load_panel(cache, universe)
    except NotCached:
        if on_start is not None:
            on_start(len(universe.symbols) + 1)
        fetch_market_data(loaded, settings, source, universe, start=selection.start, end=selection.end,
                          on_progress=on_fetch)
        panel = load_panel(cache, universe)
    return source.info.name, window(panel, selection.start, selection.end)


def window(panel: BarPanel, start: date | None, end: date | None) -> BarPanel:
    """``panel`` cut to the sessions in ``[start, end]`` (either end open when ``None``)."""
    if start is None and end is None:
        return panel
    cut = slice(pd.Timestamp(start) if start else None, pd.Timestamp(end) if end else None)
    proxy = panel.proxy.loc[cut]
    if proxy.empty:
        held = panel.proxy.index
        raise MarketDataError(f"no cached session between {start or 'the first'} and {end or 'the last'} "
                              f"(the cache holds {held[0].date()} to {held[-1].date()})")
    return replace(panel, open=panel.open.loc[cut], high=panel.high.loc[cut], low=panel.low.loc[cut],
                   close=panel.close.loc[cut], volume=panel.volume.loc[cut], proxy=proxy,
                   vix=panel.vix.loc[cut])


def require_feature_history(panel: BarPanel, source: str) -> None:
    """Refuse a panel too short for the longest feature lookback, naming what would do (the
    feature library would otherwise fail deep inside with a window-size message)."""
    from market.features import FEATURES

    longest = max(spec.lookback for spec in FEATURES)
    sessions = panel.proxy.index
    if len(sessions) <= longest:
        span = f"{sessions[0].date()} to {sessions[-1].date()}" if len(sessions) else "nothing"
        raise MarketDataError(
            f"the {source} bars hold {len(sessions)} sessions ({span}); the features need more than "
            f"{longest}: fetch a longer history (an earlier --start)"
        )


def latest_archive_version(archive: RareEventArchive, source: str) -> ArchiveVersion:
    """The latest archive version built from ``source``'s bars; refused naming what was built."""
    versions = archive.versions()
    mine = [v for v in versions if v.source == source]
    if mine:
        return mine[-1]
    if not versions:
        raise ArchiveNotBuilt("no archive has been built yet: run `stormwatch archive build`")
    built = sorted({v.source for v in versions})
    raise ArchiveNotBuilt(f"no archive has been built from the {source} source (built from: "
                          f"{', '.join(built)}): run `stormwatch archive build --source {source}`, "
                          f"or show one with --source {built[0]}")


def build_archive(
    loaded: LoadedConfig,
    settings: Settings,
    source_name: str | None = None,
    *,
    on_fetch: Callable[[str], None] | None = None,
    on_progress: Callable[[str], None] | None = None,
    panel: BarPanel | None = None,
    selection: MarketSelection | None = None,
    on_start: Callable[[int], None] | None = None,
) -> ArchiveBuild:
    """Build (or find unchanged) the archive of the configured events from cached bars (or from
    ``panel``, the source's cached panel a caller already loaded); see :func:`cached_panel` for
    ``selection`` and ``on_start``."""
    if panel is None:
        source_name, panel = cached_panel(loaded, settings, source_name, on_fetch, selection=selection,
                                          on_start=on_start)
    name = source_name or loaded.config.market.sources.default
    require_feature_history(panel, name)
    archive = open_archive(settings)
    try:
        return archive.build(loaded.config.memory.archive, panel, loaded.config.market.labels, name,
                             on_progress=on_progress, vix_fallback=loaded.config.market.vix_fallback)
    finally:
        archive.store.dispose()


@dataclass(frozen=True)
class ArchiveWithDiscoveries:
    """The archive version that holds the configured events and every discovered one."""

    version: str
    added: tuple[str, ...]  # discovered events a version was built for just now
    built: tuple[str, ...]  # the versions built just now


def with_discoveries(loaded: LoadedConfig, settings: Settings, source: str, base: str,
                     panel: BarPanel) -> ArchiveWithDiscoveries:
    """``base`` (the configured events' version) grown with every closed, new rare event the
    monitor discovered by ``panel``'s last session, one version per event in the order they
    closed, each built from the bars known on the session it closed.

    This is the archive both the monitor grows and retraining reads: growing the same base with
    the same events finds the same versions (content hash), so retraining pays only lookups."""
    from memory.config import ArchiveEvent
    from memory.watch_log import discovered_events, mark_archived

    config = loaded.config
    last = panel.sessions[-1]
    store = open_store(settings)
    try:
        closed = sorted((e for e in discovered_events(store, source=source)
                         if e.status == "closed" and e.known_as is None and e.closed_on is not None
                         and pd.Timestamp(e.closed_on) <= last), key=lambda e: (e.closed_on, e.name))
    finally:
        store.dispose()
    version, added, built = base, [], []
    if not closed:
        return ArchiveWithDiscoveries(version, (), ())
    archive = open_archive(settings)
    try:
        for event in closed:
            growth = archive.add_events(
                [ArchiveEvent(name=event.name, start=event.start, end=event.end, regime=event.regime,  # type: ignore[arg-type]
                              weight=config.monitors.rare_events.archive_weight)],
                panel.truncate(pd.Timestamp(event.closed_on)), config.market.labels, source, base=version,
                vix_fallback=config.market.vix_fallback)
            if growth.built:
                built.append(growth.version)
                added.append(event.name)
            if growth.version != version or event.name in growth.added:
                mark_archived(archive.store, source=source, names=[event.name], version=growth.version)
            version = growth.version
    finally:
        archive.store.dispose()
    return ArchiveWithDiscoveries(version, tuple(added), tuple(built))
