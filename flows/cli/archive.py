"""``stormwatch archive``: build and show the rare-event archive."""

from __future__ import annotations

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
    load,
    market_selection,
    progress_bar,
)

app = typer.Typer(help="The rare-event archive.", no_args_is_help=True)


def archive_table(counts: pd.DataFrame, title: str) -> Table:
    """Per-event records of an archive version as a table."""
    table = Table(title=title)
    for column in ("event", "window", "regime", "weight", "sessions", "symbols", "samples"):
        table.add_column(column, justify="left" if column in ("event", "window", "regime") else "right")
    for row in counts.to_dict("records"):
        table.add_row(row["event"], f"{row['start']}..{row['end']}", row["regime"], f"{row['weight']:.0%}",
                      str(row["sessions"]), str(row["symbols"]), f"{row['samples']:,}")
    return table


@app.command("build")
def archive_build(
    source: SourceOption = None,
    csv_dir: CsvDirOption = None,
    symbols: SymbolsOption = None,
    start: StartOption = None,
    end: EndOption = None,
    config: ConfigOption = None,
) -> None:
    """Build the archive's labelled samples of every configured event (a no-op when unchanged)."""
    from flows.archive import build_archive

    selection = market_selection(source, csv_dir, symbols, start, end)
    loaded, settings = load(config)
    steps = len(loaded.config.memory.archive.events) + 2
    with cli_errors(), progress_bar() as progress:
        fetching = progress.add_task("fetch bars", total=None, symbol="", visible=False)
        task = progress.add_task("build archive", total=steps, symbol="")
        build = build_archive(
            loaded, settings, selection=selection,
            on_start=lambda total: progress.update(fetching, total=total, visible=True),
            on_fetch=lambda s: progress.update(fetching, advance=1, symbol=s),
            on_progress=lambda step: progress.update(task, advance=1, symbol=step),
        )
        progress.update(task, completed=steps)
    state = "built" if build.built else "unchanged, nothing rebuilt"
    console.print(archive_table(build.counts, f"Archive {build.version} ({state})"))
    console.print(f"{build.samples:,} samples in {build.seconds:.1f} s, stored at {build.path}")
    empty = build.counts.loc[build.counts["samples"] == 0, "event"].tolist()
    if empty:
        console.print(f"[yellow]No samples for {len(empty)} event(s) outside this source's history:[/yellow] "
                      + ", ".join(empty))


@app.command("show")
def archive_show(
    source: SourceOption = None,
    version: Annotated[str | None, typer.Option(
        help="Archive version (default: the latest built from the source).", show_default=False)] = None,
    config: ConfigOption = None,
) -> None:
    """Show the archive of a source: its events, windows, regimes, weights and sample counts."""
    from flows.archive import latest_archive_version, open_archive

    selection = market_selection(source, None, None, None, None)
    loaded, settings = load(config)
    name = selection.source or loaded.config.market.sources.default
    with cli_errors():
        archive = open_archive(settings)
        try:
            versions = [v for v in archive.versions() if v.source == name]
            chosen = version or latest_archive_version(archive, name).version
            counts = archive.counts(chosen)
            samples = archive.load(chosen)
        finally:
            archive.store.dispose()
    console.print(archive_table(counts, f"Archive {chosen} ({name})"))
    by_regime = samples.groupby("regime", observed=True).size()
    console.print("samples per regime: " + ", ".join(f"{r} {n:,}" for r, n in by_regime.items()))
    listed = ", ".join(f"{v.version} ({v.samples:,} samples)" for v in versions)
    console.print(f"versions from {name}: {listed or 'none'}")
