"""``stormwatch explain``: which features a model relies on, per regime (SHAP)."""

from __future__ import annotations

from typing import Annotated

import pandas as pd
import typer
from rich.table import Table

from flows.cli.common import ConfigOption, cli_errors, console, load


def explain(
    run: Annotated[str | None, typer.Argument(help="A run id (default: the champion).")] = None,
    top: Annotated[int, typer.Option(min=1, help="Features per regime.")] = 10,
    config: ConfigOption = None,
) -> None:
    """Show the features each regime's predictions rely on most (mean |SHAP|, tree members)."""
    from flows.data import open_store
    from flows.training import open_runs
    from memory.registry import Registry
    from models.explain import top_features

    _, settings = load(config)
    with cli_errors(LookupError):
        runs = open_runs(settings)
        registry = Registry(open_store(settings))
        try:
            chosen = run or registry.champion() or getattr(runs.latest_succeeded(), "run_id", None)
            if chosen is None:
                raise LookupError("no model yet: `stormwatch retrain` trains one")
            record = runs.get(chosen)
            path = runs.run_dir(record.run_id) / "shap.parquet"
            if not path.exists():
                raise LookupError(f"run {record.run_id} has no SHAP table ({path})")
            table = pd.read_parquet(path)
        finally:
            runs.store.dispose()
            registry.store.dispose()
    regimes = [r for r in ("crash", "recovery", "high_volatility", "normal", "low_volatility")
               if r in set(table["regime"])]
    out = Table(title=f"SHAP by regime, run {record.run_id}: rank score over "
                      f"{table['member'].nunique()} tree members (1 = most important)")
    for regime in regimes:
        out.add_column(regime)
    columns = [top_features(table, regime, top) for regime in regimes]
    for i in range(top):
        out.add_row(*(f"{c.index[i]} {c.iloc[i]:.2f}" if i < len(c) else "" for c in columns))
    console.print(out)
    plot = settings.reports_dir / record.run_id / "shap-by-regime.png"
    if plot.exists():
        console.print(f"plot: {plot}")
