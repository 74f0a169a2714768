"""The ``stormwatch`` command line: one Typer sub-app per area, joined here; rich output and
progress bars. Each area's commands live in their own module."""

from __future__ import annotations

import os

# Before any library loads OpenMP: members train two at a time, and OpenMP threads that spin
# while they wait (the default policy) take the cores the other member needs; on a busy 2-core
# machine LightGBM's fit went from 11 s to 226 s. Passive waiting changes no result.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from typing import Annotated  # noqa: E402

import typer

from flows.cli import (
    alerts,
    archive,
    common,
    config_commands,
    data,
    demo,
    explain,
    features,
    models,
    monitor,
    regimes,
    replay,
    report,
    retrain,
    runs,
    serve,
)

app = typer.Typer(help="Stormwatch: keep trading models honest through market storms.",
                  no_args_is_help=True, pretty_exceptions_enable=False)


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show an error's traceback, not one line.")] = False,
) -> None:
    """Stormwatch: keep trading models honest through market storms."""
    common.set_debug(debug)


app.add_typer(data.app, name="data")
app.add_typer(config_commands.app, name="config")
app.add_typer(archive.app, name="archive")
app.add_typer(features.app, name="features")
app.add_typer(regimes.app, name="regimes")
app.add_typer(monitor.app, name="monitor")
app.command()(retrain.retrain)
app.add_typer(runs.app, name="runs")
app.add_typer(replay.app, name="replay")
app.add_typer(models.app, name="models")
app.command()(explain.explain)
app.command()(report.report)
app.command()(demo.demo)
app.add_typer(alerts.app, name="alerts")
app.command()(serve.serve)

__all__ = ["app"]
