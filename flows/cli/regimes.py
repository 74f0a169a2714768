"""``stormwatch regimes``: the market proxy's regime timeline."""

from __future__ import annotations

from typing import Annotated

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
    load,
    market_selection,
)

app = typer.Typer(help="Market regimes.", no_args_is_help=True)


@app.command("show")
def regimes_show(
    source: SourceOption = None,
    csv_dir: CsvDirOption = None,
    symbols: SymbolsOption = None,
    start: StartOption = None,
    end: EndOption = None,
    spells: Annotated[int, typer.Option(min=0, help="How many of the latest regime spells to list.")] = 12,
    plot: Annotated[bool, typer.Option(help="Draw the price coloured by regime as a PNG.")] = True,
    config: ConfigOption = None,
) -> None:
    """The regime timeline of the market proxy: sessions per regime and the rules that fired.

    Also the latest spells, and a PNG of the price coloured by regime with the archive windows."""
    from flows.regimes import regime_timeline

    selection = market_selection(source, csv_dir, symbols, start, end)
    loaded, settings = load(config)
    with cli_errors():
        report = regime_timeline(loaded, settings, plot=plot, selection=selection)
    timeline = report.timeline
    counts = timeline.counts()
    table = Table(title=f"Regimes of the {report.source} market proxy, "
                        f"{timeline.regime.index[0].date()} to {timeline.regime.index[-1].date()}")
    table.add_column("regime")
    for column in counts.columns:
        table.add_column(str(column), justify="left" if column == "rules" else "right")
    for regime, row in counts.iterrows():
        table.add_row(str(regime), *(f"{v:.1%}" if c == "share" else str(v) for c, v in row.items()))
    console.print(table)
    fallback = int(timeline.fallback.sum())
    if fallback:
        console.print(f"The VIX was missing on {fallback:,} sessions: the realised-volatility fallback "
                      "labelled them (rules marked 'fallback').")
    if spells:
        recent = timeline.spells().tail(spells)
        listing = Table(title=f"The latest {len(recent)} spells")
        for column in recent.columns:
            listing.add_column(str(column))
        for _, row in recent.iterrows():
            listing.add_row(*(str(v.date()) if hasattr(v, "date") else str(v) for v in row))
        console.print(listing)
    if report.plot is not None:
        console.print(f"Plot: {report.plot}")
