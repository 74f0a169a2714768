"""Building and reading the rare-event archive from cached bars: the plain-Python core behind
``stormwatch archive`` and, later, the archive job."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date

import pandas as pd

from flows.chunks import chunk_mapper
from flows.config import LoadedConfig, Settings
from flows.data import MarketSelection, fetch_market_data, open_selection, open_store
from market.cache import BarCache, NotCached
from market.panel import BarPanel, load_panel
from market.sources import MarketDataError
from memory.archive import ArchiveBuild, ArchiveNotBuilt, RareEventArchive
from memory.tables import ArchiveVersion
from memory.watch_log import EventStageRecord, discovered_events, event_stages


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
                             on_progress=on_progress, vix_fallback=loaded.config.market.vix_fallback,
                             chunk_symbols=loaded.config.market.feature_chunk_symbols, mapper=chunk_mapper())
    finally:
        archive.store.dispose()


#: While a discovered event lasts, the monitor grows the archive with it every this many sessions
#: after its detection (its labelled rows so far), at most :data:`ARCHIVE_MILESTONES` times.
ARCHIVE_MILESTONE_SESSIONS = 20
ARCHIVE_MILESTONES = 5


def stage_words(stage: str) -> str:
    """What an archive stage holds of its event, in words."""
    from memory.watch_log import CLOSED, DETECTED

    if stage == DETECTED:
        return "its window so far, at its detection"
    if stage == CLOSED:
        return "its whole window, now closed"
    return f"its window so far, {stage.partition('+')[2]} sessions after its detection"


@dataclass(frozen=True)
class ArchiveStep:
    """One discovered event's stage taken into the archive: ``detected`` (its window from its
    start to ``session``, the session it was proposed on), ``open+N`` (a milestone N sessions
    later) or ``closed`` (its whole window, ``session`` being the one it closed on), built from
    the bars known on ``session``."""

    name: str
    stage: str
    session: date
    start: date
    end: date
    version: str  # the archive's version once this stage was added
    built: bool  # built just now (else found: an earlier growth, or nothing labelled to add)
    samples: int  # the event's labelled samples in ``version``
    new: bool = True  # taken in by this call (the stage was not marked archived before)

    def describe(self) -> str:
        held = (f"{self.samples:,} labelled samples in {self.version}" if self.samples
                else f"no label matured yet: the archive stays {self.version}")
        return f"{self.name}, {stage_words(self.stage)} ({self.start}..{self.end}): {held}"


@dataclass(frozen=True)
class ArchiveWithDiscoveries:
    """The archive version that holds the configured events and every discovered one."""

    version: str
    added: tuple[str, ...]  # the discovered event of each version built just now
    built: tuple[str, ...]  # the versions built just now
    steps: tuple[ArchiveStep, ...] = ()  # every stage the version holds, in order (built or found)


def discovered_stages(settings: Settings, source: str, last: pd.Timestamp) -> list[EventStageRecord]:
    """The archive stages of ``source``'s new (not configured) discovered events recorded by
    session ``last``, in the order the archive takes them."""
    store = open_store(settings)
    try:
        new = {e.name for e in discovered_events(store, source=source) if e.known_as is None}
        stages = event_stages(store, source=source)
        return [s for s in stages if s.name in new and pd.Timestamp(s.session) <= last]
    finally:
        store.dispose()


def with_discoveries(loaded: LoadedConfig, settings: Settings, source: str, base: str,
                     panel: BarPanel) -> ArchiveWithDiscoveries:
    """``base`` (the configured events' version) grown with every new rare event the monitor
    discovered by ``panel``'s last session, at each stage of the event: when it was detected
    (its window from its start to the session it was proposed on), every
    :data:`ARCHIVE_MILESTONE_SESSIONS` sessions while it lasts (at most
    :data:`ARCHIVE_MILESTONES` times; its window by then), and when it closed (its whole
    window). Each stage replaces the event's shorter window of the one before. The stages are
    taken in the order they happened, one version each, each built from the bars known on its
    session (the panel truncated there, so a row whose label needs a later bar is unlabelled
    and left out: an event detected on its first session has no labelled row yet, and that
    stage adds nothing).

    This is the archive both the monitor grows and retraining reads: the stages are recorded
    once, as known on their session (:class:`memory.watch_log.EventStageRecord`), and growing
    the same base with the same stages finds the same versions (content hash), so a retraining
    as of session T reads the version the monitor built with the stages up to T, paying only
    lookups."""
    from memory.config import ArchiveEvent
    from memory.watch_log import mark_archived, mark_stage_archived

    config = loaded.config
    stages = discovered_stages(settings, source, panel.sessions[-1])
    version, added, built, steps = base, [], [], []
    if not stages:
        return ArchiveWithDiscoveries(version, (), ())
    archive = open_archive(settings)
    try:
        for stage in stages:
            growth = archive.add_events(
                [ArchiveEvent(name=stage.name, start=stage.start, end=stage.end, regime=stage.regime,  # type: ignore[arg-type]
                              weight=config.monitors.rare_events.archive_weight)],
                panel.truncate(pd.Timestamp(stage.session)), config.market.labels, source, base=version,
                vix_fallback=config.market.vix_fallback, chunk_symbols=config.market.feature_chunk_symbols,
                mapper=chunk_mapper())
            if growth.built:
                built.append(growth.version)
                added.append(stage.name)
            if growth.version != version or stage.name in growth.added:
                mark_archived(archive.store, source=source, names=[stage.name], version=growth.version)
            if stage.archive_version != growth.version:
                mark_stage_archived(archive.store, source=source, name=stage.name, stage=stage.stage,
                                    version=growth.version)
            held = growth.counts.loc[growth.counts["event"] == stage.name, "samples"]
            steps.append(ArchiveStep(stage.name, stage.stage, stage.session, stage.start, stage.end,
                                     growth.version, growth.built, int(held.sum()),
                                     new=stage.archive_version is None))
            version = growth.version
    finally:
        archive.store.dispose()
    return ArchiveWithDiscoveries(version, tuple(added), tuple(built), tuple(steps))
