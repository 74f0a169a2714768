"""``stormwatch monitor``: would Stormwatch have seen it coming? Replaying the monitor over history."""

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
    progress_bar,
)

app = typer.Typer(help="The monitor: drift detection and rare-event discovery.", no_args_is_help=True)


@app.command("backtest")
def monitor_backtest(
    source: SourceOption = None,
    csv_dir: CsvDirOption = None,
    symbols: SymbolsOption = None,
    start: StartOption = None,
    end: EndOption = None,
    model: Annotated[bool, typer.Option(help="Train a reference model for prediction drift.")] = True,
    record: Annotated[bool, typer.Option(help="Record drift and new events; grow the archive.")] = True,
    plot: Annotated[bool, typer.Option(help="Draw the drift statistics over time as a PNG.")] = True,
    config: ConfigOption = None,
) -> None:
    """Replay the drift detectors and rare-event discovery session by session from --start.

    The window before --start is the training reference. Prints the timeline of detections and
    proposed events, records them, adds closed new events to the archive and draws a PNG."""
    from flows.monitor_backtest import monitor_backtest as run

    selection = market_selection(source, csv_dir, symbols, start, end)
    if selection.start is None:
        raise typer.BadParameter("give the first session to replay, e.g. --start 2000-01-03; the window "
                                 "before it is the training reference", param_hint="--start")
    loaded, settings = load(config)
    with cli_errors(), progress_bar() as progress:
        task = progress.add_task("replay", total=None, symbol="")
        outcome = run(loaded, settings, selection, model=model, record=record, plot=plot,
                      on_session=lambda day: progress.update(task, advance=1, symbol=str(day.date())))
    replay = outcome.replay
    console.print(f"{outcome.source}: replayed {len(replay.statistics):,} sessions, {replay.start.date()} to "
                  f"{replay.end.date()}; training reference {replay.reference[0].date()} to "
                  f"{replay.reference[1].date()}")
    for detector, reason in replay.not_run.items():
        console.print(f"[yellow]{detector} drift not run:[/yellow] {reason}")
    timeline = replay.timeline()
    table = Table(title="Timeline: what the monitor would have raised")
    for column in ("session", "what", "detail"):
        table.add_column(column, overflow="fold")
    for row in timeline.itertuples(index=False):
        table.add_row(str(row.session.date()), row.what, row.detail)
    console.print(table)
    new = replay.new_events
    known = [e for e in replay.events if e.known_as is not None and e.end >= replay.start]
    console.print(f"events: {len(new)} new, {len(known)} known ("
                  + ", ".join(sorted({e.known_as for e in known if e.known_as})) + ")")
    if record:
        console.print(f"recorded: {outcome.drift_events_recorded} new drift events, "
                      f"{outcome.events_recorded} new or changed discovered events; archive versions added: "
                      f"{', '.join(outcome.archive_versions) or 'none'}")
    if outcome.plot is not None:
        console.print(f"Plot: {outcome.plot}")


@app.command("run")
def monitor_run(
    source: SourceOption = None,
    csv_dir: CsvDirOption = None,
    symbols: SymbolsOption = None,
    end: EndOption = None,
    prefect: Annotated[bool, typer.Option(help="Run as the Prefect flow (events to Prefect); "
                                                "--no-prefect runs the same cycle in plain Python.")] = True,
    config: ConfigOption = None,
) -> None:
    """One monitor cycle: every session not processed yet, up to --end (default: the latest).

    Each session is scored by the champion (and the challenger, in the shadow), its matured
    labels feed the drift detectors and the replay buffer, rare-event discovery grows the
    archive, and the cycle's events go to Prefect (drift, rare event)."""
    from flows.cli.retrain import prefect_defaults

    selection = market_selection(source, csv_dir, symbols, None, end)
    loaded, settings = load(config)
    with cli_errors():
        if prefect:
            prefect_defaults(settings)
            from flows.monitor import monitor

            report = monitor(source=selection.source, symbols=list(selection.symbols or []) or None,
                             config_path=str(config) if config else None,
                             csv_dir=str(selection.csv_dir) if selection.csv_dir else None,
                             through=selection.end)
        else:
            from flows.watch import run_cycle

            report = run_cycle(loaded, settings, selection, selection.end)
    console.print(report.describe())
    for detector, reason in report.not_run.items():
        console.print(f"[yellow]{detector} drift not run:[/yellow] {reason}")
    for event in report.delivered:
        console.print(f"event {event['event']}: {event['payload'].get('summary', '')}")
    if report.skipped:
        raise typer.Exit(1)
