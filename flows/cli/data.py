"""``stormwatch data``: fetch bars into the cache, show them, export the simulator's ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.table import Table

from flows.cli.common import (
    ConfigOption,
    CsvDirOption,
    EndOption,
    SourceOption,
    StartOption,
    SymbolsOption,
    cli_errors,
    console,
    fail,
    load,
    market_selection,
    progress_bar,
    simulated_today,
)
from flows.config import LoadedConfig, Settings
from flows.data import GROUND_TRUTH_SUFFIXES, MarketSelection
from market.sources import MarketDataError

app = typer.Typer(help="Market data: fetch into the cache, show what is cached.", no_args_is_help=True)

#: How many cached symbols a "not cached" message lists before "and N more".
_LISTED = 12


@app.command("fetch")
def data_fetch(
    source: SourceOption = None,
    csv_dir: CsvDirOption = None,
    symbols: SymbolsOption = None,
    start: StartOption = None,
    end: EndOption = None,
    config: ConfigOption = None,
) -> None:
    """Fetch bars (and the VIX) into the cache, only what is not cached yet.

    Every symbol that validates is cached; each refused one is named with its reason and the
    command then exits with status 1. A csv folder is the universe; without a VIX file the
    realised-volatility fallback stands in (said once, flagged vix_is_fallback)."""
    from flows.data import fetch_market_data, open_selection

    selection = market_selection(source, csv_dir, symbols, start, end)
    loaded, settings = load(config)
    with cli_errors():
        market_source, universe = open_selection(loaded, selection)
        wanted = list(selection.symbols) if selection.symbols else None
        total = len(wanted) if wanted else len(universe.symbols) + 1
        with progress_bar() as progress:
            task = progress.add_task(f"fetch {market_source.info.name}", total=total, symbol="")
            outcome = fetch_market_data(
                loaded, settings, market_source, universe, symbols=wanted, start=selection.start,
                end=selection.end, on_progress=lambda s: progress.update(task, advance=1, symbol=s),
                allow_refused=True,
            )
    table = Table(title=f"{outcome.source.name} bars in {settings.cache_dir}")
    for column in ("symbol", "rows", "added", "first", "last", "missing sessions"):
        table.add_column(column, justify="left" if column == "symbol" else "right")
    for r in outcome.results:
        table.add_row(r.symbol, str(r.rows_after), str(r.added),
                      str(r.first.date()) if r.first is not None else "-",
                      str(r.last.date()) if r.last is not None else "-", str(r.missing_sessions))
    console.print(table)
    for note in outcome.notes:
        console.print(f"[yellow]Note:[/yellow] {note}.")
    kind = "real" if outcome.source.real else "simulated"
    vix = (f"{outcome.vix_sessions} sessions" if not outcome.vix_is_fallback
           else "none, the realised-volatility fallback")
    console.print(f"VIX: {vix}. Data is {kind}: {outcome.source.provenance}")
    if outcome.refused:
        refused = Table(title=f"{len(outcome.refused)} refused, nothing of theirs cached")
        refused.add_column("symbol")
        refused.add_column("reason", overflow="fold")
        for symbol, reason in outcome.refused:
            refused.add_row(symbol, reason)
        console.print(refused)
        names = ", ".join(symbol for symbol, _ in outcome.refused)
        raise fail(MarketDataError(f"{len(outcome.refused)} of {len(outcome.results) + len(outcome.refused)} "
                                   f"symbols refused ({names}); the rest are cached"),
                   "fix what the table says about each, or leave them out with --symbols")


def _not_cached(loaded: LoadedConfig, settings: Settings, selection: MarketSelection, symbol: str) -> str:
    """What the cache of the selected source holds instead of ``symbol``, and how to fetch it."""
    from flows.data import resolve_source
    from market.cache import BarCache

    name = selection.source or loaded.config.market.sources.default
    cache = BarCache(settings.cache_dir, name)
    held = cache.symbols()
    series = cache.series_symbols()
    if not held and not series:
        return (f"nothing is cached for source {name!r} in {settings.cache_dir}: "
                f"run `stormwatch data fetch --source {name}`")
    listed = ", ".join(held[:_LISTED]) + (f" and {len(held) - _LISTED} more" if len(held) > _LISTED else "")
    text = f"{symbol} is not cached for source {name!r}; cached: {listed or 'no bars'}"
    if series:
        text += f" (series: {', '.join(series)})"
    try:
        source, universe = resolve_source(loaded, name, csv_directory=selection.csv_dir)
        available = source.available_symbols()
    except (ValueError, OSError, LookupError, RuntimeError, MarketDataError):  # a folder without its proxy
        available, universe = None, None
    if available is not None and symbol not in available and symbol != getattr(universe, "vix_symbol", None):
        proxy = f"; its market proxy is {universe.market_proxy}" if universe is not None else ""
        return f"{text}. The {name} source has no {symbol}{proxy}"
    return f"{text}. Fetch it with `stormwatch data fetch --source {name} --symbols {symbol}`"


@app.command("show")
def data_show(
    symbol: Annotated[str, typer.Argument(help="The symbol, e.g. AAPL, or ^VIX for the VIX series.")],
    source: SourceOption = None,
    csv_dir: CsvDirOption = None,
    start: StartOption = None,
    end: EndOption = None,
    rows: Annotated[int, typer.Option(min=1, help="How many of the latest bars to print.")] = 5,
    config: ConfigOption = None,
) -> None:
    """Show what the cache holds for a symbol or a series (the VIX) of any source."""
    from market.cache import BarCache
    from market.calendar import missing_sessions

    wanted = symbol.strip().upper()
    selection = market_selection(source, csv_dir, wanted, start, end)
    loaded, settings = load(config)
    name = selection.source or loaded.config.market.sources.default
    with cli_errors():
        cache = BarCache(settings.cache_dir, name)
        if cache.path_for(wanted).exists():
            frame = cache.read(wanted, selection.start, selection.end)
            checksum, kind = cache.checksum(wanted), "sessions"
        elif cache.series_path_for(wanted).exists():
            series = cache.read_series(wanted)
            first, last = (pd.Timestamp(d) if d else None for d in (selection.start, selection.end))
            frame = series.loc[first:last].to_frame()
            checksum, kind = cache.checksum(wanted, series=True), "values"
        else:
            raise fail(LookupError(_not_cached(loaded, settings, selection, wanted)))
    if frame.empty:
        raise fail(LookupError(f"{wanted} ({name}) has no cached value between "
                               f"{selection.start or 'the first'} and {selection.end or 'the last'} session"))
    gaps = missing_sessions(frame.index)
    console.print(
        f"[bold]{wanted}[/bold] ({name}): {len(frame)} {kind}, "
        f"{frame.index[0].date()} to {frame.index[-1].date()}, {len(gaps)} missing sessions, "
        f"sha256 {checksum[:12]}"
    )
    table = Table()
    table.add_column("date")
    for column in frame.columns:
        table.add_column(str(column), justify="right")
    for day, row in frame.tail(rows).iterrows():
        table.add_row(str(day.date()), *(f"{v:,.2f}" if c != "volume" else f"{v:,.0f}"
                                         for c, v in row.items()))
    console.print(table)


@app.command("ground-truth")
def data_ground_truth(
    out: Annotated[Path | None, typer.Option(
        help=f"File to write, {' or '.join(GROUND_TRUTH_SUFFIXES)} (the suffix chooses the format; "
             "default: $STORMWATCH_HOME/ground_truth/simulated-seed<seed>.parquet).",
        show_default=False)] = None,
    today: Annotated[str | None, typer.Option(help="Pretend today is this date (YYYY-MM-DD).")] = None,
    config: ConfigOption = None,
) -> None:
    """Export the simulated market's ground truth, for quality benchmarks.

    The true regime and the best achievable direction per session and symbol: never a feature."""
    from flows.data import export_ground_truth, ground_truth_path

    loaded, settings = load(config)
    day = simulated_today(loaded, today)
    with cli_errors():
        ground_truth_path(settings, loaded, out)  # refuse a bad --out before simulating
        path, count = export_ground_truth(loaded, settings, out, today=day)
    console.print(f"{count:,} rows of ground truth written to {path}")

