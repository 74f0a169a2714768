"""What every command shares: consoles, the common options, configuration loading, errors, progress.

How a command is written (every ``stormwatch`` command follows this, so options and errors are
the same everywhere)::

    from flows.cli.common import (ConfigOption, CsvDirOption, EndOption, SourceOption, StartOption,
                                  SymbolsOption, cli_errors, console, load, market_selection)

    @app.command("show")
    def thing_show(source: SourceOption = None, csv_dir: CsvDirOption = None,
                   symbols: SymbolsOption = None, start: StartOption = None, end: EndOption = None,
                   config: ConfigOption = None) -> None:
        \"\"\"One line that says what it does.\"\"\"
        selection = market_selection(source, csv_dir, symbols, start, end)  # usage errors: exit 2
        loaded, settings = load(config)                                  # bad config: exit 2
        with cli_errors():                                               # expected failures: exit 1
            result = some_flow(loaded, settings, selection)
        console.print(...)

Options. A command that reads market data takes all five market options (``--source``,
``--csv-dir``, ``--symbols``, ``--start``, ``--end``) and ``-c/--config``; other commands take
``-c/--config`` when they read the configuration. :func:`market_selection` turns the five into
a :class:`MarketSelection` (``flows.data``), refusing bad values with a usage error (exit 2)
that names the option: an unknown source, a ``--csv-dir`` that is not a directory or given with
another source, an unsafe symbol, a date not like 2020-03-23, ``--end`` before ``--start``.
``--csv-dir`` alone implies ``--source csv``.

Configuration. :func:`load` reads the file chosen by ``--config`` > ``STORMWATCH_CONFIG`` >
``./stormwatch.yaml`` > the packaged default (:func:`flows.config.resolve_config_path`) and the
settings from the environment, and checks ``STORMWATCH_HOME`` (without creating it). An invalid
file exits with status 2, like a bad option; a home that cannot hold state (a file, a directory
that cannot be created or written) with status 1, naming ``STORMWATCH_HOME``.

Errors. Wrap the work in ``with cli_errors():``. An expected failure (:data:`EXPECTED_ERRORS`:
bad paths, unwritable homes, unavailable databases, impossible ranges, unknown or unreachable
sources, uncached data, an archive not built) then ends in one line ``error: <what>`` on stderr
with exit status 1, and no traceback. ``stormwatch --debug <command>`` re-raises instead, with
the traceback. Anything else is a bug and keeps its traceback. A command that must refuse on its
own raises ``fail(exc)`` (exit 1) or ``typer.BadParameter`` (exit 2). A long-running command
checks what it can (paths, the store) before writing anything, so a failure leaves nothing
half-written.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from flows.config import (
    ConfigError,
    HomeUnavailable,
    LoadedConfig,
    Settings,
    load_config,
    resolve_config_path,
)
from flows.data import MarketSelection
from market.cache import NotCached
from market.sources import SOURCE_NAMES, MarketDataError
from market.symbols import UnsafeSymbolError, check_symbol
from memory.archive import ArchiveNotBuilt
from memory.store import StoreUnavailable

__all__ = [
    "EXPECTED_ERRORS", "ConfigOption", "CsvDirOption", "EndOption", "MarketSelection", "SourceOption",
    "StartOption", "SymbolsOption", "cli_errors", "console", "errors", "fail", "load", "market_selection",
    "parse_day", "progress_bar", "simulated_today",
]

# Piped output (CI logs, `make demo | tee`) gets a width that fits the event table unwrapped.
console = Console(width=None if sys.stdout.isatty() else 160)
errors = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

ConfigOption = Annotated[Path | None, typer.Option(
    "--config", "-c", show_default=False,
    help="Configuration file (default: $STORMWATCH_CONFIG, else ./stormwatch.yaml, else the packaged one).",
)]
SourceOption = Annotated[str | None, typer.Option(
    "--source", "-s", show_default=False,
    help=f"Market data source, one of: {', '.join(SOURCE_NAMES)} (default: market.sources.default).",
)]
CsvDirOption = Annotated[Path | None, typer.Option(
    "--csv-dir", show_default=False,
    help="Directory of SYMBOL.csv or SYMBOL.parquet files (implies --source csv).",
)]
SymbolsOption = Annotated[str | None, typer.Option(
    "--symbols", show_default=False, help="Comma-separated symbols, e.g. AAPL,MSFT (default: the universe).",
)]
StartOption = Annotated[str | None, typer.Option(
    "--start", show_default=False, help="First date, YYYY-MM-DD (default: market.history_start).",
)]
EndOption = Annotated[str | None, typer.Option(
    "--end", show_default=False, help="Last date, YYYY-MM-DD (default: today).",
)]

#: The failures a user can cause or fix, shown as one line (exit 1) unless ``--debug`` is given.
#: ``ValueError`` is here because the rooms refuse bad input with it (impossible ranges, bad
#: values), always with a message naming what is wrong; a bug raising it still shows its
#: traceback with ``--debug``.
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError, HomeUnavailable, MarketDataError, StoreUnavailable, ArchiveNotBuilt, NotCached,
    UnsafeSymbolError, OSError, ValueError,
)


def parse_day(value: str | None, option: str) -> date | None:
    """A ``YYYY-MM-DD`` option as a date, or a usage error naming the option."""
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date like 2020-03-23", param_hint=option) from None


def market_selection(
    source: str | None,
    csv_dir: Path | None,
    symbols: str | None,
    start: str | None,
    end: str | None,
) -> MarketSelection:
    """The five market options parsed and checked; a bad one is a usage error (exit 2) naming it."""
    if source is not None and source not in SOURCE_NAMES:
        raise typer.BadParameter(f"unknown source {source!r}: choose one of {', '.join(SOURCE_NAMES)}",
                                 param_hint="--source")
    if csv_dir is not None:
        if source not in (None, "csv"):
            raise typer.BadParameter(f"--csv-dir is for --source csv, not --source {source}",
                                     param_hint="--csv-dir")
        if not csv_dir.is_dir():
            raise typer.BadParameter(f"{csv_dir} is not a directory", param_hint="--csv-dir")
        source = "csv"
    wanted = None
    if symbols is not None:
        wanted = tuple(dict.fromkeys(s.strip().upper() for s in symbols.split(",") if s.strip()))
        if not wanted:
            raise typer.BadParameter("no symbol given", param_hint="--symbols")
        for symbol in wanted:
            try:
                check_symbol(symbol)
            except UnsafeSymbolError as exc:
                raise typer.BadParameter(str(exc), param_hint="--symbols") from None
    first, last = parse_day(start, "--start"), parse_day(end, "--end")
    if first is not None and last is not None and last < first:
        raise typer.BadParameter(f"{last} is before --start {first}", param_hint="--end")
    return MarketSelection(source=source, csv_dir=csv_dir, symbols=wanted, start=first, end=last)


def simulated_today(loaded: LoadedConfig, today: str | None) -> date | None:
    """``--today`` for the simulated market as a date; a usage error before the market starts."""
    day = parse_day(today, "--today")
    first = loaded.config.market.sources.simulated.start
    if day is not None and day < first:
        raise typer.BadParameter(
            f"{day} is before the simulated market starts ({first}, market.sources.simulated.start)",
            param_hint="--today")
    return day


def load(path: Path | None, *, home: bool = True) -> tuple[LoadedConfig, Settings]:
    """The validated configuration (see :func:`flows.config.resolve_config_path`) and the settings.

    An invalid file exits with status 2; unless ``home`` is False, a ``STORMWATCH_HOME`` that
    cannot hold state exits with status 1; each with one message."""
    settings = Settings()
    file, origin = resolve_config_path(path, settings.config)
    try:
        loaded = load_config(file, origin=origin)
    except ConfigError as exc:
        errors.print(f"[red]invalid configuration[/red] {exc}", markup=True, highlight=False)
        raise typer.Exit(2) from None
    if home:
        try:
            settings.check_home()
        except HomeUnavailable as exc:
            raise fail(exc) from None
    return loaded, settings


def describe(exc: BaseException) -> str:
    """``exc`` as one line: an OS error names its file, a database error its (masked) URL."""
    if isinstance(exc, OSError) and not isinstance(exc, HomeUnavailable) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename is not None else ""
        return f"{where}{exc.strerror}"
    text = str(exc).strip() or type(exc).__name__
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def fail(exc: BaseException, hint: str | None = None) -> typer.Exit:
    """Print ``exc`` as a one-line error (and ``hint``, what to do) and return the exit (status 1)."""
    message = describe(exc) + (f"; {hint}" if hint else "")
    errors.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(1)


_debug = False


def set_debug(debug: bool) -> None:
    """Record ``stormwatch --debug`` (the root command's callback calls this on every run)."""
    global _debug
    _debug = debug


def debug_requested() -> bool:
    """Whether this run was started with ``stormwatch --debug``."""
    return _debug


@contextmanager
def cli_errors(*also: type[BaseException]) -> Iterator[None]:
    """Turn :data:`EXPECTED_ERRORS` (and ``also``) raised in the block into a one-line error with
    exit status 1; with ``stormwatch --debug`` let them through with their traceback."""
    try:
        yield
    except (typer.Exit, typer.Abort, typer.TyperException):
        raise
    except EXPECTED_ERRORS + also as exc:
        if debug_requested():
            raise
        raise fail(exc) from None


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[symbol]}"), TimeElapsedColumn(), console=console, transient=False,
    )
