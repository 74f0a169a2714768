"""``stormwatch retrain``: the twelve-step retraining flow, with progress and the per-regime table."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
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
)
from flows.config import Settings


def prefect_defaults(settings: Settings) -> None:
    """Prefect's state under ``STORMWATCH_HOME`` and quiet logs, unless the user chose otherwise.

    Set before Prefect is imported: it reads its settings once. Without ``PREFECT_API_URL`` a
    run uses a temporary local server (ephemeral mode) whose database lives in ``PREFECT_HOME``.
    """
    os.environ.setdefault("PREFECT_HOME", str((settings.home / "prefect").resolve()))
    Path(os.environ["PREFECT_HOME"]).expanduser().mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # offline: no telemetry lookups
    # A first ephemeral start migrates a fresh database: on 2 busy cores that can pass the 20 s default.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


class PrefectUnavailable(RuntimeError):
    """Prefect's API (the ephemeral server or ``PREFECT_API_URL``) could not be reached."""


@contextmanager
def _prefect_reachable() -> Iterator[None]:
    try:
        yield
    except RuntimeError as exc:
        if "Prefect API" not in str(exc):
            raise
        where = os.environ.get("PREFECT_API_URL") or "the ephemeral server"
        raise PrefectUnavailable(f"{exc} ({where}); start one with `prefect server start` and set "
                                 "PREFECT_API_URL, or retry") from exc


def accuracy_table(accuracy: object, title: str) -> Table:
    """Rows: the five regimes and overall; columns: the count, each member and the ensemble."""
    table = Table(title=title)
    table.add_column("regime")
    for column in accuracy.columns:  # type: ignore[attr-defined]
        table.add_column(column, justify="right", style="bold" if column == "ensemble" else None)
    for regime, row in accuracy.iterrows():  # type: ignore[attr-defined]
        table.add_row(str(regime), *(f"{int(v):,}" if k == "n" else f"{v:.3f}" for k, v in row.items()))
    return table


def retrain(
    source: SourceOption = None,
    csv_dir: CsvDirOption = None,
    symbols: SymbolsOption = None,
    start: StartOption = None,
    end: EndOption = None,
    baseline: Annotated[bool, typer.Option(
        "--baseline", help="Window only: no archive, no balancing, no weights, no replay.")] = False,
    config: ConfigOption = None,
) -> None:
    """Retrain the eight models and their ensemble from hybrid memory.

    Validates them per regime and records the run, as of --end (default today); builds the
    archive first if it is missing."""
    selection = market_selection(source, csv_dir, symbols, start, end)
    loaded, settings = load(config)
    prefect_defaults(settings)
    from flows.cli.common import progress_bar
    from flows.retrain import STEPS, observe_progress, run_retrain
    from flows.runners import configured_task_runner

    runner = configured_task_runner(loaded)  # flows.task_runner: threads, or a Dask cluster
    if loaded.config.flows.task_runner.kind == "dask":
        where = loaded.config.flows.task_runner.address or (
            f"a local cluster of {loaded.config.flows.task_runner.n_workers} workers")
        console.print(f"training members on Dask: {where}")

    with cli_errors(PrefectUnavailable), progress_bar() as progress:
        task = progress.add_task("retrain", total=len(STEPS), symbol="")
        with observe_progress(lambda step, done, _: progress.update(task, completed=done, symbol=step)), \
                _prefect_reachable():
            outcome = run_retrain(
                source=selection.source, symbols=list(selection.symbols) if selection.symbols else None,
                as_of=selection.end, baseline=baseline, config_path=str(loaded.path),
                csv_dir=str(selection.csv_dir) if selection.csv_dir else None, start=selection.start,
                task_runner=runner,
            )
    if outcome.archive_built:
        console.print(f"archive {outcome.archive_version} built first (it was missing or its inputs changed)")
    title = (f"Validation accuracy per regime, run {outcome.run_id} "
             f"({outcome.variant}, {outcome.source} as of {outcome.as_of})")
    console.print(accuracy_table(outcome.accuracy, title))
    fits = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in outcome.fit_seconds.items())
    weights = ", ".join(f"{name} {w:.2f}" for name, w in outcome.ensemble_weights.items() if w > 0)
    console.print(f"training set {outcome.training_set_hash[:12]}: {outcome.training_rows:,} rows "
                  f"({outcome.replay_rows:,} replayed); ensemble weights: {weights or 'equal'}")
    if outcome.storm_weights is not None:
        storm = ", ".join(f"{name} {w:.2f}" for name, w in outcome.storm_weights.items() if w > 0)
        console.print(f"in storms ({outcome.storm_gate}): {storm or 'equal'}")
    if outcome.calm_check is not None and outcome.window_weights is not None:
        calm = ", ".join(f"{name} {w:.2f}" for name, w in outcome.window_weights.items() if w > 0)
        console.print(f"{outcome.calm_check.describe()}; the window zoo's weights {calm or 'equal'}")
    console.print(f"fit: {fits}")
    subsampled = {name: rows for name, rows in outcome.member_rows.items() if rows.get("subsampled")}
    if subsampled:
        listed = ", ".join(f"{name} {rows['rows_after']:,} of {rows['rows_before']:,} rows"
                           for name, rows in subsampled.items())
        console.print(f"subsampled to max_rows: {listed}; `stormwatch runs show {outcome.run_id}` for how")
    admitted = outcome.replay_admission
    if admitted:
        console.print(f"replay buffer: {admitted['admitted']} new, {admitted['merged']} seen again, "
                      f"{admitted['aged_out'] + admitted['evicted']} dropped, {admitted['size']:,} held")
    gate = outcome.gate
    if gate.promoted:
        who = ("first model past the floors" if gate.decision.first_model
               else f"replaces {gate.champion_before}")
        console.print(f"[green]promoted[/green]: {outcome.run_id} is the champion ({who})")
    else:
        console.print(f"[yellow]not promoted[/yellow]: {gate.champion_before or 'no model'} keeps serving; "
                      f"{outcome.run_id} is the challenger. Reasons:")
        for reason in gate.decision.reasons:
            console.print(f"  - {reason}")
    untested = [c.name for c in gate.decision.criteria if c.verdict == "untested"]
    if untested:
        console.print(f"untested (too few rows): {', '.join(untested)}")
    if outcome.report is not None:
        console.print(f"report: {outcome.report}")
    console.print(f"done in {outcome.seconds:.0f} s, peak memory {outcome.peak_memory_mb:,.0f} MB; "
                  f"`stormwatch runs show {outcome.run_id}` for the record")
