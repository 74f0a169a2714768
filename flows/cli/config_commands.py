"""``stormwatch config``: which configuration file is used, checking it, and an editable copy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import ConfigOption, cli_errors, console, fail, load
from flows.config import DEFAULT_CONFIG_PATH, LOCAL_CONFIG_NAME, LoadedConfig

app = typer.Typer(help="The configuration file: show, validate, init.", no_args_is_help=True)


def _summary(loaded: LoadedConfig) -> str:
    config = loaded.config
    return (
        f"{len(config.market.universe.members)} symbols, "
        f"{len(config.memory.archive.events)} archive events (archive v{config.memory.archive.version}), "
        f"{len(config.models.zoo)} models, retraining '{config.flows.retrain_schedule.cron}' "
        f"{config.flows.retrain_schedule.timezone}"
    )


@app.command("validate")
def config_validate(
    file: Annotated[Path | None, typer.Argument(
        help="The file to check (default: the one commands use; see `stormwatch config show`).",
        show_default=False)] = None,
    config: ConfigOption = None,
) -> None:
    """Validate a configuration file and print its version and content hash."""
    loaded, _ = load(file or config, home=False)
    console.print(f"[green]valid[/green] {loaded.path}")
    console.print(f"version {loaded.version}, content hash {loaded.content_hash}")
    console.print(_summary(loaded))


@app.command("show")
def config_show(config: ConfigOption = None) -> None:
    """Which configuration file commands read and why, with its version and content hash.

    The first that exists wins: --config, $STORMWATCH_CONFIG, ./stormwatch.yaml, the packaged one."""
    loaded, settings = load(config, home=False)
    console.print(f"configuration {loaded.path}")
    console.print(f"chosen by: {loaded.origin} (order: --config, STORMWATCH_CONFIG, ./{LOCAL_CONFIG_NAME}, "
                  "packaged default)")
    console.print(f"version {loaded.version}, content hash {loaded.content_hash}")
    console.print(_summary(loaded))
    console.print(f"home {settings.home} (STORMWATCH_HOME); database "
                  f"{'STORMWATCH_DATABASE_URL' if settings.database_url else 'SQLite under the home'}")


@app.command("init")
def config_init(
    path: Annotated[Path, typer.Argument(help="Where to write the copy.")] = Path(LOCAL_CONFIG_NAME),
    force: Annotated[bool, typer.Option(help="Replace an existing file.")] = False,
) -> None:
    """Write an editable copy of the packaged default configuration (default: ./stormwatch.yaml).

    Commands run from that directory then read it."""
    target = path / LOCAL_CONFIG_NAME if path.is_dir() else path
    if target.exists() and not force:
        raise fail(FileExistsError(f"{target} already exists: edit it, or pass --force to replace it"))
    with cli_errors():
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.tmp")
        temporary.write_bytes(DEFAULT_CONFIG_PATH.read_bytes())
        temporary.replace(target)
    console.print(f"wrote {target} (a copy of the packaged default); check your edits with "
                  f"`stormwatch config validate {target}`")
