"""``stormwatch features``: the feature catalogue."""

from __future__ import annotations

import re
from typing import Annotated

import typer
from rich.table import Table

from flows.cli.common import ConfigOption, console, fail, load

app = typer.Typer(help="The feature catalogue.", no_args_is_help=True)


@app.command("list")
def features_list(
    family: Annotated[str | None, typer.Option(
        help="Only this family, in any case (e.g. volatility, macro).", show_default=False)] = None,
    config: ConfigOption = None,
) -> None:
    """List every feature with its family, lookback and definition."""
    from market.features import feature_specs

    loaded, _ = load(config, home=False)
    # The VIX features' lookbacks include the configured fallback's warm-up (market.vix_fallback).
    FEATURES = feature_specs(loaded.config.market.vix_fallback)  # noqa: N806 - the catalogue, as in market

    wanted = family.strip().lower().replace(" ", "_").replace("-", "_") if family is not None else None
    chosen = [f for f in FEATURES if wanted is None or f.family == wanted]
    if not chosen:
        families = sorted({f.family for f in FEATURES})
        raise fail(ValueError(f"no feature family {family!r}; families: {', '.join(families)}"))
    table = Table(title=f"{len(chosen)} features")
    for column in ("name", "family", "lookback", "definition"):
        table.add_column(column, justify="right" if column == "lookback" else "left")
    for spec in chosen:
        table.add_row(spec.name, spec.family, str(spec.lookback), singular(spec.definition))
    console.print(table)


def singular(definition: str) -> str:
    """"over the last 1 sessions" read as "over the last 1 session".

    >>> singular("the daily log return 1 sessions ago")
    'the daily log return 1 session ago'
    >>> singular("log return over the last 21 sessions")
    'log return over the last 21 sessions'
    """
    return re.sub(r"(?<![\d.])1 sessions\b", "1 session", definition)
