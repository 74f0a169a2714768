"""``stormwatch report``: where a run's training report is, and what it says in brief."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from flows.cli.common import ConfigOption, cli_errors, console, load


def report(
    run: Annotated[str | None, typer.Argument(help="A run id (default: the latest succeeded run).")] = None,
    config: ConfigOption = None,
) -> None:
    """Print the path of a run's HTML report and a summary: gate decision, accuracy, backtest."""
    from flows.data import open_store
    from flows.training import open_runs
    from memory.registry import Registry

    _, settings = load(config)
    with cli_errors(LookupError):
        runs = open_runs(settings)
        registry = Registry(open_store(settings))
        try:
            record = runs.get(run) if run else runs.latest_succeeded()
            if record is None:
                raise LookupError("no succeeded run yet: `stormwatch retrain` trains one")
            metrics = runs.metrics(record.run_id)
            decisions = registry.decisions(record.run_id)
        finally:
            runs.store.dispose()
            registry.store.dispose()
    path = settings.reports_dir / record.run_id / "index.html"
    if not path.exists():
        raise typer.Exit(_missing(record.run_id, path))
    console.print(f"[bold]{path}[/bold]")
    overall = metrics[(metrics["member"] == "ensemble")].set_index("regime")["accuracy"]
    console.print("ensemble accuracy: " + ", ".join(f"{r} {a:.3f}" for r, a in overall.items()))
    if decisions:
        decision = decisions[-1]
        verdict = "promoted" if decision.promoted else "not promoted"
        console.print(f"gate: {verdict}" + (f" ({decision.reasons.replace(chr(10), '; ')})"
                                             if decision.reasons else ""))
        failed = [c["name"] for c in json.loads(decision.criteria) if c["verdict"] == "fail"]
        if failed:
            console.print(f"failed criteria: {', '.join(failed)}")
    backtest = runs.run_dir(record.run_id) / "backtest.parquet"
    if backtest.exists():
        import pandas as pd

        row = pd.read_parquet(backtest).loc["overall"]
        console.print(f"backtest: Sharpe {row['sharpe']:.2f}, annual return {row['annual_return']:.2%}, "
                      f"max drawdown {row['max_drawdown']:.2%}, rank IC {row['rank_ic']:.3f}")


def _missing(run_id: str, path: object) -> int:
    console.print(f"run {run_id} has no report at {path} (it was recorded before reports existed)")
    return 1
