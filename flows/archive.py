"""Building and reading the rare-event archive from cached bars: the plain-Python core behind
``stormwatch archive`` and, later, the archive job."""

from __future__ import annotations

from collections.abc import Callable

from flows.config import LoadedConfig, Settings
from flows.data import fetch_market_data, open_store, resolve_source
from market.cache import BarCache, NotCached
from market.panel import BarPanel, load_panel
from memory.archive import ArchiveBuild, RareEventArchive


def open_archive(settings: Settings) -> RareEventArchive:
    return RareEventArchive(settings.home / "archive", open_store(settings))


def cached_panel(
    loaded: LoadedConfig,
    settings: Settings,
    source_name: str | None = None,
    on_fetch: Callable[[str], None] | None = None,
) -> tuple[str, BarPanel]:
    """The universe's panel from the cache, fetching first what is not cached yet."""
    source, universe = resolve_source(loaded, source_name)
    cache = BarCache(settings.cache_dir, source.info.name)
    try:
        return source.info.name, load_panel(cache, universe)
    except NotCached:
        fetch_market_data(loaded, settings, source, universe, on_progress=on_fetch)
        return source.info.name, load_panel(cache, universe)


def build_archive(
    loaded: LoadedConfig,
    settings: Settings,
    source_name: str | None = None,
    *,
    on_fetch: Callable[[str], None] | None = None,
    on_progress: Callable[[str], None] | None = None,
    panel: BarPanel | None = None,
) -> ArchiveBuild:
    """Build (or find unchanged) the archive of the configured events from cached bars (or from
    ``panel``, the source's cached panel a caller already loaded)."""
    if panel is None:
        source_name, panel = cached_panel(loaded, settings, source_name, on_fetch)
    name = source_name or loaded.config.market.sources.default
    archive = open_archive(settings)
    try:
        return archive.build(loaded.config.memory.archive, panel, loaded.config.market.labels, name,
                             on_progress=on_progress)
    finally:
        archive.store.dispose()
