"""``stormwatch replay``: what the error replay buffer holds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from flows.cli.common import ConfigOption, cli_errors, console, load
from memory.replay import ReplayBuffer

app = typer.Typer(help="The error replay buffer: the models' worst mistakes, replayed in training.",
                  no_args_is_help=True)


def _buffer(config: Path | None) -> ReplayBuffer:
    from flows.data import open_store

    loaded, settings = load(config)
    return ReplayBuffer(open_store(settings), loaded.config.memory.replay)


@app.command("show")
def replay_show(config: ConfigOption = None) -> None:
    """Entries per regime and model version, with their mean loss and how many were seen again."""
    with cli_errors():
        buffer = _buffer(config)
        try:
            summary = buffer.summary()
        finally:
            buffer.store.dispose()
    capacity = buffer.config.capacity
    if summary.empty:
        console.print(f"the replay buffer is empty (capacity {capacity:,}): a retraining run fills it")
        return
    table = Table(title=f"Replay buffer: {int(summary['entries'].sum()):,} of {capacity:,} entries")
    for column in ("regime", "model version", "entries", "mean log loss", "seen again"):
        table.add_column(column, justify="left" if column in ("regime", "model version") else "right")
    for row in summary.to_dict("records"):
        table.add_row(row["regime"], row["model_version"], f"{row['entries']:,}", f"{row['mean_loss']:.3f}",
                      f"{row['seen_again']:,}")
    console.print(table)


@app.command("clear")
def replay_clear(
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    config: ConfigOption = None,
) -> None:
    """Empty the buffer (for instance after changing the feature catalogue)."""
    if not yes:
        typer.confirm("Remove every replay entry?", abort=True)
    with cli_errors():
        buffer = _buffer(config)
        try:
            removed = buffer.clear()
        finally:
            buffer.store.dispose()
    console.print(f"removed {removed:,} replay entries")
