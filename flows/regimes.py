"""Labelling the market proxy's history with regimes: the plain-Python core behind
``stormwatch regimes show`` and, later, the monitor's regime step."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flows.archive import cached_panel
from flows.config import LoadedConfig, Settings
from flows.data import MarketSelection
from market.panel import BarPanel
from monitors.regime_plot import plot_regimes
from monitors.regimes import RegimeLabeler, RegimeTimeline


@dataclass(frozen=True, eq=False)
class RegimeReport:
    """The regime timeline of a source's market proxy and where its picture was written."""

    source: str
    timeline: RegimeTimeline
    plot: Path | None


def regime_timeline(
    loaded: LoadedConfig,
    settings: Settings,
    source_name: str | None = None,
    *,
    plot: bool = True,
    on_fetch: Callable[[str], None] | None = None,
    panel: BarPanel | None = None,
    selection: MarketSelection | None = None,
    on_start: Callable[[int], None] | None = None,
) -> RegimeReport:
    """Label the cached market proxy (fetching first if needed) with the configured rules and,
    unless ``plot`` is False, draw it with the archive windows to ``reports/regimes-<source>.png``.
    ``panel`` is the source's cached panel when the caller already loaded it; see
    :func:`flows.archive.cached_panel` for ``selection`` and ``on_start``."""
    if panel is None:
        source_name, panel = cached_panel(loaded, settings, source_name, on_fetch, selection=selection,
                                          on_start=on_start)
    name = source_name or loaded.config.market.sources.default
    close = panel.proxy["close"]
    labeler = RegimeLabeler(loaded.config.monitors.regimes, loaded.config.market.vix_fallback)
    timeline = labeler.label(close, panel.vix)
    path = None
    if plot:
        windows = [(e.name, e.start, e.end) for e in loaded.config.memory.archive.events]
        path = plot_regimes(close, timeline, windows, settings.reports_dir / f"regimes-{name}.png",
                            title=f"Market regimes of the {name} market proxy")
    return RegimeReport(source=name, timeline=timeline, plot=path)
