"""``stormwatch config``: the configuration file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import console, load

app = typer.Typer(help="The configuration file.", no_args_is_help=True)


@app.command("validate")
def config_validate(
    file: Annotated[Path | None, typer.Argument(help="The file to check (default: stormwatch.yaml).")] = None,
) -> None:
    """Validate a configuration file and print its version and content hash."""
    loaded, _ = load(file)
    config = loaded.config
    console.print(f"[green]valid[/green] {loaded.path}")
    console.print(f"version {loaded.version}, content hash {loaded.content_hash}")
    console.print(
        f"{len(config.market.universe.members)} symbols, "
        f"{len(config.memory.archive.events)} archive events (archive v{config.memory.archive.version}), "
        f"{len(config.models.zoo)} models, retraining '{config.flows.retrain_schedule.cron}' "
        f"{config.flows.retrain_schedule.timezone}"
    )
