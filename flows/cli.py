"""The ``stormwatch`` command line: Typer sub-apps per area, rich output, progress bars."""

from __future__ import annotations

import sys
from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from flows.config import ConfigError, LoadedConfig, Settings, load_config
from market.sources import SOURCE_NAMES, MarketDataError
from market.symbols import UnsafeSymbolError

app = typer.Typer(help="Stormwatch: keep trading models honest through market storms.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
data_app = typer.Typer(help="Market data: fetch into the cache, show what is cached.", no_args_is_help=True)
config_app = typer.Typer(help="The configuration file.", no_args_is_help=True)
archive_app = typer.Typer(help="The rare-event archive.", no_args_is_help=True)
features_app = typer.Typer(help="The feature catalogue.", no_args_is_help=True)
regimes_app = typer.Typer(help="Market regimes.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(config_app, name="config")
app.add_typer(archive_app, name="archive")
app.add_typer(features_app, name="features")
app.add_typer(regimes_app, name="regimes")

# Piped output (CI logs, `make demo | tee`) gets a width that fits the event table unwrapped.
console = Console(width=None if sys.stdout.isatty() else 160)
errors = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="Configuration file (default: stormwatch.yaml).")
]
SourceOption = Annotated[
    str | None, typer.Option("--source", "-s", help=f"One of: {', '.join(SOURCE_NAMES)}.")
]


def _parse_day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date like 2020-03-23", param_hint=option) from None


def _load(path: Path | None) -> tuple[LoadedConfig, Settings]:
    settings = Settings()
    try:
        return load_config(path or settings.config), settings
    except ConfigError as exc:
        errors.print(f"[red]invalid configuration[/red] {exc}", markup=True, highlight=False)
        raise typer.Exit(2) from None


def _fail(exc: Exception) -> typer.Exit:
    errors.print(f"[red]error:[/red] {exc}", highlight=False)
    return typer.Exit(1)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[symbol]}"), TimeElapsedColumn(), console=console, transient=False,
    )


@config_app.command("validate")
def config_validate(
    file: Annotated[Path | None, typer.Argument(help="The file to check (default: stormwatch.yaml).")] = None,
) -> None:
    """Validate a configuration file and print its version and content hash."""
    loaded, _ = _load(file)
    config = loaded.config
    console.print(f"[green]valid[/green] {loaded.path}")
    console.print(f"version {loaded.version}, content hash {loaded.content_hash}")
    console.print(
        f"{len(config.market.universe.members)} symbols, "
        f"{len(config.memory.archive.events)} archive events (archive v{config.memory.archive.version}), "
        f"{len(config.models.zoo)} models, retraining '{config.flows.retrain_schedule.cron}' "
        f"{config.flows.retrain_schedule.timezone}"
    )


@data_app.command("fetch")
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

    loaded, settings = _load(config)
    first, last = _parse_day(start, "--start"), _parse_day(end, "--end")
    try:
        market_source, universe = resolve_source(loaded, source, csv_directory=csv_dir)
        wanted = [s.strip().upper() for s in symbols.split(",")] if symbols else None
        total = len(wanted) if wanted else len(universe.symbols) + 1
        with _progress() as progress:
            task = progress.add_task(f"fetch {market_source.info.name}", total=total, symbol="")
            outcome = fetch_market_data(
                loaded, settings, market_source, universe, symbols=wanted, start=first, end=last,
                on_progress=lambda s: progress.update(task, advance=1, symbol=s),
            )
    except (MarketDataError, UnsafeSymbolError, ValueError) as exc:
        raise _fail(exc) from None
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


@data_app.command("show")
def data_show(
    symbol: Annotated[str, typer.Argument(help="The symbol, e.g. AAPL.")],
    source: SourceOption = None,
    rows: Annotated[int, typer.Option(min=1, help="How many of the latest bars to print.")] = 5,
    config: ConfigOption = None,
) -> None:
    """Show what the cache holds for a symbol."""
    from market.cache import BarCache, NotCached
    from market.calendar import missing_sessions

    loaded, settings = _load(config)
    name = source or loaded.config.market.sources.default
    try:
        cache = BarCache(settings.cache_dir, name)
        bars = cache.read(symbol.upper())
    except (NotCached, UnsafeSymbolError, ValueError) as exc:
        raise _fail(exc) from None
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


@data_app.command("ground-truth")
def data_ground_truth(
    out: Annotated[Path | None, typer.Option(help="Parquet file to write.")] = None,
    today: Annotated[str | None, typer.Option(help="Pretend today is this date (YYYY-MM-DD).")] = None,
    config: ConfigOption = None,
) -> None:
    """Export the simulated market's ground truth: the true regime and the best achievable
    direction per session and symbol (for quality benchmarks, never a feature)."""
    from flows.data import export_ground_truth

    loaded, settings = _load(config)
    path, rows = export_ground_truth(loaded, settings, out, today=_parse_day(today, "--today"))
    console.print(f"{rows:,} rows of ground truth written to {path}")


@features_app.command("list")
def features_list(
    family: Annotated[str | None, typer.Option(help="Only this family (e.g. volatility).")] = None,
) -> None:
    """List every feature with its family, lookback and definition."""
    from market.features import FEATURES

    chosen = [f for f in FEATURES if family is None or f.family == family]
    if not chosen:
        families = sorted({f.family for f in FEATURES})
        raise _fail(ValueError(f"no feature family {family!r}; families: {', '.join(families)}"))
    table = Table(title=f"{len(chosen)} features")
    for column in ("name", "family", "lookback", "definition"):
        table.add_column(column, justify="right" if column == "lookback" else "left")
    for spec in chosen:
        table.add_row(spec.name, spec.family, str(spec.lookback), spec.definition)
    console.print(table)


def _archive_table(counts, title: str) -> Table:  # noqa: ANN001 - a DataFrame of event records
    table = Table(title=title)
    for column in ("event", "window", "regime", "weight", "sessions", "symbols", "samples"):
        table.add_column(column, justify="left" if column in ("event", "window", "regime") else "right")
    for row in counts.to_dict("records"):
        table.add_row(row["event"], f"{row['start']}..{row['end']}", row["regime"], f"{row['weight']:.0%}",
                      str(row["sessions"]), str(row["symbols"]), f"{row['samples']:,}")
    return table


@archive_app.command("build")
def archive_build(source: SourceOption = None, config: ConfigOption = None) -> None:
    """Build the archive's labelled samples of every configured event (a no-op when unchanged)."""
    from flows.archive import build_archive

    loaded, settings = _load(config)
    steps = len(loaded.config.memory.archive.events) + 2
    try:
        with _progress() as progress:
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
        raise _fail(exc) from None
    state = "built" if build.built else "unchanged, nothing rebuilt"
    console.print(_archive_table(build.counts, f"Archive {build.version} ({state})"))
    console.print(f"{build.samples:,} samples in {build.seconds:.1f} s, stored at {build.path}")
    empty = build.counts.loc[build.counts["samples"] == 0, "event"].tolist()
    if empty:
        console.print(f"[yellow]No samples for {len(empty)} event(s) outside this source's history:[/yellow] "
                      + ", ".join(empty))


@archive_app.command("show")
def archive_show(
    version: Annotated[str | None, typer.Option(help="Archive version (default: the latest).")] = None,
) -> None:
    """Show the archive's events, windows, regimes, weights and sample counts."""
    from flows.archive import open_archive
    from memory.archive import ArchiveNotBuilt

    _, settings = _load(None)
    archive = open_archive(settings)
    try:
        versions = archive.versions()
        chosen = version or (versions[-1].version if versions else None)
        if chosen is None:
            raise ArchiveNotBuilt("no archive has been built yet: run `stormwatch archive build`")
        counts = archive.counts(chosen)
        samples = archive.load(chosen)
    except ArchiveNotBuilt as exc:
        raise _fail(exc) from None
    finally:
        archive.store.dispose()
    console.print(_archive_table(counts, f"Archive {chosen}"))
    by_regime = samples.groupby("regime", observed=True).size()
    console.print("samples per regime: " + ", ".join(f"{r} {n:,}" for r, n in by_regime.items()))
    listed = ", ".join(f"{v.version} ({v.samples:,} samples, {v.source})" for v in versions)
    console.print(f"versions: {listed}")


@regimes_app.command("show")
def regimes_show(
    source: SourceOption = None,
    spells: Annotated[int, typer.Option(min=0, help="How many of the latest regime spells to list.")] = 12,
    plot: Annotated[bool, typer.Option(help="Draw the price coloured by regime as a PNG.")] = True,
    config: ConfigOption = None,
) -> None:
    """The regime timeline of the market proxy: sessions per regime, the rules that fired, the
    latest spells, and a PNG of the price coloured by regime with the archive windows marked."""
    from flows.regimes import regime_timeline

    loaded, settings = _load(config)
    try:
        report = regime_timeline(loaded, settings, source, plot=plot)
    except (MarketDataError, ValueError) as exc:
        raise _fail(exc) from None
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


@app.command()
def demo(
    config: ConfigOption = None,
    today: Annotated[str | None, typer.Option(help="Pretend today is this date (YYYY-MM-DD).")] = None,
) -> None:
    """Fetch the simulated universe and summarise the storms it went through."""
    from flows.demo import run_demo

    loaded, settings = _load(config)
    day = _parse_day(today, "--today")
    with _progress() as progress:
        task = progress.add_task("simulate and cache", total=len(loaded.config.market.universe.symbols) + 1,
                                 symbol="")
        # Labelling regimes and building the archive follow the fetch; they take seconds.
        summary = run_demo(loaded, settings, today=day,
                           on_progress=lambda s: progress.update(task, advance=1, symbol=s))
    fetch = summary.fetch
    console.print(
        f"\n[bold]Simulated market[/bold] (seed {loaded.config.market.sources.simulated.seed}, "
        f"config v{loaded.version} {loaded.content_hash[:12]}): {len(fetch.results)} series, "
        f"{summary.sessions} NYSE sessions from {summary.first_session} to {summary.last_session}."
    )
    sectors = Table(title="Symbols per GICS sector")
    sectors.add_column("sector")
    sectors.add_column("symbols", justify="right")
    for sector, count in summary.symbols_per_sector.items():
        sectors.add_row(sector, str(count))
    console.print(sectors)
    regimes = Table(title="Sessions per regime: the simulator's truth and the causal labeler's reading")
    for column in ("regime", "true share", "labelled share", "true sessions labelled so"):
        regimes.add_column(column, justify="left" if column == "regime" else "right")
    for regime, share in summary.regime_shares.items():
        regimes.add_row(regime, f"{share:.1%}", f"{summary.labelled_shares[regime]:.1%}",
                        f"{summary.labeller_recall[regime]:.0%}")
    console.print(regimes)
    events = Table(title="The eight archive events in the simulated market proxy")
    for column in ("event", "window", "regime", "sessions", "return", "max drawdown",
                   "worst 10-day fall", "peak VIX"):
        events.add_column(column, justify="left" if column in ("event", "window", "regime") else "right",
                          no_wrap=True)
    for name, regime, s in summary.events:
        events.add_row(name, f"{s.start}..{s.end}", regime, str(s.sessions), f"{s.total_return:+.1%}",
                       f"{s.max_drawdown:.1%}", f"{s.worst_10_session_fall:.1%}", f"{s.peak_vix:.1f}")
    console.print(events)
    build = summary.archive
    state = "built" if build.built else "unchanged"
    title = (f"The rare-event archive {build.version} ({state}): "
             f"{build.samples:,} samples in {build.seconds:.1f} s")
    console.print(_archive_table(build.counts, title))
    console.print(f"Bars cached under {settings.cache_dir}; archive at {build.path}.")
    if summary.regime_plot is not None:
        console.print(f"Regime plot: {summary.regime_plot}")
    console.print("Next: `stormwatch data show SPY`, `stormwatch regimes show`, `stormwatch archive show`, "
                  "`stormwatch features list`.")


if __name__ == "__main__":
    app()
