"""What every command shares: consoles, common options, configuration loading, errors, progress."""

from __future__ import annotations

import sys
from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from flows.config import ConfigError, LoadedConfig, Settings, load_config
from market.sources import SOURCE_NAMES

# Piped output (CI logs, `make demo | tee`) gets a width that fits the event table unwrapped.
console = Console(width=None if sys.stdout.isatty() else 160)
errors = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="Configuration file (default: stormwatch.yaml).")
]
SourceOption = Annotated[
    str | None, typer.Option("--source", "-s", help=f"One of: {', '.join(SOURCE_NAMES)}.")
]


def parse_day(value: str | None, option: str) -> date | None:
    """A ``YYYY-MM-DD`` option as a date, or a usage error naming the option."""
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date like 2020-03-23", param_hint=option) from None


def load(path: Path | None) -> tuple[LoadedConfig, Settings]:
    """The validated configuration and the settings; an invalid file exits with status 2."""
    settings = Settings()
    try:
        return load_config(path or settings.config), settings
    except ConfigError as exc:
        errors.print(f"[red]invalid configuration[/red] {exc}", markup=True, highlight=False)
        raise typer.Exit(2) from None


def fail(exc: Exception) -> typer.Exit:
    """Print ``exc`` as an error and return the exit (status 1) to raise."""
    errors.print(f"[red]error:[/red] {exc}", highlight=False)
    return typer.Exit(1)


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[symbol]}"), TimeElapsedColumn(), console=console, transient=False,
    )
