"""``stormwatch features``: the feature catalogue."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from flows.cli.common import console, fail

app = typer.Typer(help="The feature catalogue.", no_args_is_help=True)


@app.command("list")
def features_list(
    family: Annotated[str | None, typer.Option(help="Only this family (e.g. volatility).")] = None,
) -> None:
    """List every feature with its family, lookback and definition."""
    from market.features import FEATURES

    chosen = [f for f in FEATURES if family is None or f.family == family]
    if not chosen:
        families = sorted({f.family for f in FEATURES})
        raise fail(ValueError(f"no feature family {family!r}; families: {', '.join(families)}"))
    table = Table(title=f"{len(chosen)} features")
    for column in ("name", "family", "lookback", "definition"):
        table.add_column(column, justify="right" if column == "lookback" else "left")
    for spec in chosen:
        table.add_row(spec.name, spec.family, str(spec.lookback), spec.definition)
    console.print(table)
