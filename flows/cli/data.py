"""``stormwatch data``: fetch bars into the cache, show them, export the simulator's ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from flows.cli.common import ConfigOption, SourceOption, console, fail, load, parse_day, progress_bar
from market.sources import MarketDataError
from market.symbols import UnsafeSymbolError

app = typer.Typer(help="Market data: fetch into the cache, show what is cached.", no_args_is_help=True)


@app.command("fetch")
def data_fetch(
    source: SourceOption = None,
    symbols: Annotated[str | None, typer.Option(help="Comma-separated symbols (default: universe).")] = None,
    start: Annotated[str | None, typer.Option(help="First date, YYYY-MM-DD.")] = None,
    end: Annotated[str | None, typer.Option(help="Last date, YYYY-MM-DD (default: today).")] = None,
    csv_dir: Annotated[Path | None, typer.Option(help="Directory of SYMBOL.csv/.parquet files.")] = None,
    config: ConfigOption = None,
) -> None:
    """Fetch bars (and the VIX) into the cache, only what is not cached yet."""
    from flows.data import fetch_market_data, resolve_source

    loaded, settings = load(config)
    first, last = parse_day(start, "--start"), parse_day(end, "--end")
    try:
        market_source, universe = resolve_source(loaded, source, csv_directory=csv_dir)
        wanted = [s.strip().upper() for s in symbols.split(",")] if symbols else None
        total = len(wanted) if wanted else len(universe.symbols) + 1
        with progress_bar() as progress:
            task = progress.add_task(f"fetch {market_source.info.name}", total=total, symbol="")
            outcome = fetch_market_data(
                loaded, settings, market_source, universe, symbols=wanted, start=first, end=last,
                on_progress=lambda s: progress.update(task, advance=1, symbol=s),
            )
    except (MarketDataError, UnsafeSymbolError, ValueError) as exc:
        raise fail(exc) from None
    table = Table(title=f"{outcome.source.name} bars in {settings.cache_dir}")
    for column in ("symbol", "rows", "added", "first", "last", "missing sessions"):
        table.add_column(column, justify="left" if column == "symbol" else "right")
    for r in outcome.results:
        table.add_row(r.symbol, str(r.rows_after), str(r.added),
                      str(r.first.date()) if r.first is not None else "-",
                      str(r.last.date()) if r.last is not None else "-", str(r.missing_sessions))
    console.print(table)
    kind = "real" if outcome.source.real else "simulated"
    console.print(f"VIX: {outcome.vix_sessions} sessions. Data is {kind}: {outcome.source.provenance}")


@app.command("show")
def data_show(
    symbol: Annotated[str, typer.Argument(help="The symbol, e.g. AAPL.")],
    source: SourceOption = None,
    rows: Annotated[int, typer.Option(min=1, help="How many of the latest bars to print.")] = 5,
    config: ConfigOption = None,
) -> None:
    """Show what the cache holds for a symbol."""
    from market.cache import BarCache, NotCached
    from market.calendar import missing_sessions

    loaded, settings = load(config)
    name = source or loaded.config.market.sources.default
    try:
        cache = BarCache(settings.cache_dir, name)
        bars = cache.read(symbol.upper())
    except (NotCached, UnsafeSymbolError, ValueError) as exc:
        raise fail(exc) from None
    gaps = missing_sessions(bars.index)
    console.print(
        f"[bold]{symbol.upper()}[/bold] ({name}): {len(bars)} sessions, "
        f"{bars.index[0].date()} to {bars.index[-1].date()}, {len(gaps)} missing sessions, "
        f"sha256 {cache.checksum(symbol.upper())[:12]}"
    )
    table = Table()
    table.add_column("date")
    for column in bars.columns:
        table.add_column(column, justify="right")
    for day, row in bars.tail(rows).iterrows():
        table.add_row(str(day.date()), *(f"{v:,.2f}" if c != "volume" else f"{v:,.0f}"
                                         for c, v in row.items()))
    console.print(table)


@app.command("ground-truth")
def data_ground_truth(
    out: Annotated[Path | None, typer.Option(help="Parquet file to write.")] = None,
    today: Annotated[str | None, typer.Option(help="Pretend today is this date (YYYY-MM-DD).")] = None,
    config: ConfigOption = None,
) -> None:
    """Export the simulated market's ground truth: the true regime and the best achievable
    direction per session and symbol (for quality benchmarks, never a feature)."""
    from flows.data import export_ground_truth

    loaded, settings = load(config)
    path, rows = export_ground_truth(loaded, settings, out, today=parse_day(today, "--today"))
    console.print(f"{rows:,} rows of ground truth written to {path}")
