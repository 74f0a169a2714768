"""``stormwatch models``: the model versions, their aliases, promotion and rollback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from flows.cli.common import ConfigOption, cli_errors, console, load
from memory.registry import Registry, RegistryError

app = typer.Typer(help="Model versions: the champion, the challenger, the gate's decisions.",
                  no_args_is_help=True)


def _registry(config: Path | None) -> Registry:
    from flows.data import open_store

    _, settings = load(config)
    return Registry(open_store(settings))


@app.command("list")
def models_list(config: ConfigOption = None) -> None:
    """Every model version (a succeeded run's ensemble) with its aliases, gate decision and live
    record (the monitor scores the champion and the challenger; a label matures after the horizon)."""
    from memory.live import LiveLog

    with cli_errors():
        registry = _registry(config)
        try:
            versions = registry.versions()
            decisions = {d.run_id: d for d in registry.decisions()}
            live = LiveLog(registry.store).live_summary()
        finally:
            registry.store.dispose()
    if not versions:
        console.print("no model yet: `stormwatch retrain` trains one")
        return
    table = Table(title="Model versions")
    for column in ("run", "aliases", "as of", "source", "variant", "gate", "live: matured, log loss"):
        table.add_column(column)
    for v in versions:
        decision = decisions.get(v.run_id)
        gate = "-" if decision is None else ("promoted" if decision.promoted else "refused")
        n, loss = live.get(v.run_id, (0, float("nan")))
        record = f"{n:,}, {loss:.4f}" if n else "-"
        table.add_row(v.run_id, ", ".join(v.aliases) or "-", v.as_of, v.source, v.variant, gate, record)
    console.print(table)


@app.command("show")
def models_show(
    run: Annotated[str | None, typer.Argument(help="A run id (default: the champion).")] = None,
    config: ConfigOption = None,
) -> None:
    """A version's gate decision: every criterion's value, threshold and verdict; and the rows
    each member fitted on (which were subsampled to their ``max_rows``, and how)."""
    from flows.cli.runs import member_rows_tables
    from flows.data import open_store
    from flows.training import open_runs

    with cli_errors(RegistryError, LookupError):
        _, settings = load(config)
        registry = Registry(open_store(settings))
        try:
            chosen = run or registry.champion()
            if chosen is None:
                raise RegistryError("no champion yet: `stormwatch retrain` trains one")
            decisions = registry.decisions(chosen)
        finally:
            registry.store.dispose()
        runs = open_runs(settings)
        try:
            record = runs.get(chosen)
        finally:
            runs.store.dispose()
    rows_tables = member_rows_tables(json.loads(record.details or "{}"))
    if not decisions:
        console.print(f"{chosen} has no gate decision (promoted or recorded by hand)")
        for table in rows_tables:
            console.print(table)
        return
    decision = decisions[-1]
    verdict = "promoted" if decision.promoted else "refused"
    against = decision.champion_run_id or "the first-model floors"
    console.print(f"[bold]{chosen}[/bold]: {verdict} against {against}, on {decision.rows:,} rows over "
                  f"{decision.sessions} sessions")
    table = Table(title="Promotion gate")
    for column in ("criterion", "value", "threshold", "verdict", "detail"):
        table.add_column(column, justify="right" if column in ("value", "threshold") else "left")
    for c in json.loads(decision.criteria):
        style = {"pass": "green", "fail": "red"}.get(c["verdict"], "yellow")
        table.add_row(c["name"], f"{c['value']:.4f}", f"{c['threshold']:.4f}",
                      f"[{style}]{c['verdict']}[/{style}]", c["detail"])
    console.print(table)
    rows = json.loads(decision.gate_rows or "{}")
    console.print("gate rows: " + "; ".join(f"{k} {v['rows']:,} rows {v['first']}..{v['last']}"
                                            for k, v in rows.items()))
    for rows_table in rows_tables:
        console.print(rows_table)


@app.command("promote")
def models_promote(
    run: Annotated[str, typer.Argument(help="The run whose ensemble becomes the champion.")],
    reason: Annotated[str, typer.Option(help="Why, for the history.")] = "promoted by hand",
    config: ConfigOption = None,
) -> None:
    """Make a run's ensemble the champion by hand (the gate is not asked; the history says so)."""
    with cli_errors(RegistryError):
        registry = _registry(config)
        try:
            previous = registry.promote(run, reason=reason)
        finally:
            registry.store.dispose()
    console.print(f"{run} is the champion (was: {previous or 'none'})")


@app.command("rollback")
def models_rollback(
    reason: Annotated[str, typer.Option(help="Why, for the history.")] = "rolled back by hand",
    config: ConfigOption = None,
) -> None:
    """Put the previous champion back in service."""
    with cli_errors(RegistryError):
        registry = _registry(config)
        try:
            restored = registry.rollback(reason=reason)
        finally:
            registry.store.dispose()
    console.print(f"{restored} is the champion again")
