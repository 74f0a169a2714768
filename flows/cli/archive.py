"""``stormwatch archive``: build and show the rare-event archive."""

from __future__ import annotations

from typing import Annotated

import pandas as pd
import typer
from rich.table import Table

from flows.cli.common import ConfigOption, SourceOption, console, fail, load, progress_bar
from market.sources import MarketDataError

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
def archive_build(source: SourceOption = None, config: ConfigOption = None) -> None:
    """Build the archive's labelled samples of every configured event (a no-op when unchanged)."""
    from flows.archive import build_archive

    loaded, settings = load(config)
    steps = len(loaded.config.memory.archive.events) + 2
    try:
        with progress_bar() as progress:
            fetching = progress.add_task("fetch bars", total=len(loaded.config.market.universe.symbols) + 1,
                                         symbol="", visible=False)
            task = progress.add_task("build archive", total=steps, symbol="")
            build = build_archive(
                loaded, settings, source,
                on_fetch=lambda s: progress.update(fetching, advance=1, symbol=s, visible=True),
                on_progress=lambda step: progress.update(task, advance=1, symbol=step),
            )
            progress.update(task, completed=steps)
    except (MarketDataError, ValueError) as exc:
        raise fail(exc) from None
    state = "built" if build.built else "unchanged, nothing rebuilt"
    console.print(archive_table(build.counts, f"Archive {build.version} ({state})"))
    console.print(f"{build.samples:,} samples in {build.seconds:.1f} s, stored at {build.path}")
    empty = build.counts.loc[build.counts["samples"] == 0, "event"].tolist()
    if empty:
        console.print(f"[yellow]No samples for {len(empty)} event(s) outside this source's history:[/yellow] "
                      + ", ".join(empty))


@app.command("show")
def archive_show(
    version: Annotated[str | None, typer.Option(help="Archive version (default: the latest).")] = None,
) -> None:
    """Show the archive's events, windows, regimes, weights and sample counts."""
    from flows.archive import open_archive
    from memory.archive import ArchiveNotBuilt

    _, settings = load(None)
    archive = open_archive(settings)
    try:
        versions = archive.versions()
        chosen = version or (versions[-1].version if versions else None)
        if chosen is None:
            raise ArchiveNotBuilt("no archive has been built yet: run `stormwatch archive build`")
        counts = archive.counts(chosen)
        samples = archive.load(chosen)
    except ArchiveNotBuilt as exc:
        raise fail(exc) from None
    finally:
        archive.store.dispose()
    console.print(archive_table(counts, f"Archive {chosen}"))
    by_regime = samples.groupby("regime", observed=True).size()
    console.print("samples per regime: " + ", ".join(f"{r} {n:,}" for r, n in by_regime.items()))
    listed = ", ".join(f"{v.version} ({v.samples:,} samples, {v.source})" for v in versions)
    console.print(f"versions: {listed}")
