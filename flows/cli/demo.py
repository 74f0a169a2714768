"""``stormwatch demo``: the story so far, on the embedded simulated market."""

from __future__ import annotations

import math
from typing import Annotated

import typer
from rich.table import Table

from flows.cli.archive import archive_table
from flows.cli.common import ConfigOption, cli_errors, console, load, progress_bar, simulated_today


def _share(value: float, spec: str) -> str:
    """A share or a return formatted with ``spec``; "-" where there is nothing to measure (an
    event after the pretended today, a regime the market never entered)."""
    return "-" if math.isnan(value) else format(value, spec)


def demo(
    config: ConfigOption = None,
    today: Annotated[str | None, typer.Option(help="Pretend today is this date (YYYY-MM-DD).")] = None,
    story: Annotated[bool, typer.Option(help="Go on into the live period: train, monitor the storm, "
                                             "retrain on the rare event, gate (a few minutes).")] = True,
) -> None:
    """Simulate the market, summarise its storms, then train, monitor the storm and retrain on it.

    After the summary (the market cached, its regimes labelled, the archive built) comes the
    story: the first model, the monitor through the simulated live period and its storm, the
    retraining the rare event starts, and the gate's decision, as a timeline and a report.

    Runs on the embedded simulated market (no network); a second run only adds new sessions."""
    from flows.demo import run_demo

    loaded, settings = load(config)
    day = simulated_today(loaded, today)
    with cli_errors(), progress_bar() as progress:
        task = progress.add_task("simulate and cache", total=len(loaded.config.market.universe.symbols) + 1,
                                 symbol="")
        # Labelling regimes and building the archive follow the fetch; they take seconds.
        summary = run_demo(loaded, settings, today=day,
                           on_progress=lambda s: progress.update(task, advance=1, symbol=s))
    fetch = summary.fetch
    console.print(
        f"\n[bold]Simulated market[/bold] (seed {loaded.config.market.sources.simulated.seed}, "
        f"config v{loaded.version} {loaded.content_hash[:12]}): {len(fetch.results)} series, "
        f"{summary.sessions} NYSE sessions from {summary.first_session} to {summary.last_session}."
    )
    sectors = Table(title="Symbols per GICS sector")
    sectors.add_column("sector")
    sectors.add_column("symbols", justify="right")
    for sector, count in summary.symbols_per_sector.items():
        sectors.add_row(sector, str(count))
    console.print(sectors)
    regimes = Table(title="Sessions per regime: the simulator's truth and the causal labeler's reading")
    for column in ("regime", "true share", "labelled share", "true sessions labelled so"):
        regimes.add_column(column, justify="left" if column == "regime" else "right")
    for regime, share in summary.regime_shares.items():
        regimes.add_row(regime, _share(share, ".1%"), _share(summary.labelled_shares[regime], ".1%"),
                        _share(summary.labeller_recall[regime], ".0%"))
    console.print(regimes)
    events = Table(title="The eight archive events in the simulated market proxy")
    for column in ("event", "window", "regime", "sessions", "return", "max drawdown",
                   "worst 10-day fall", "peak VIX"):
        events.add_column(column, justify="left" if column in ("event", "window", "regime") else "right",
                          no_wrap=True)
    for name, regime, s in summary.events:
        events.add_row(name, f"{s.start}..{s.end}", regime, str(s.sessions), _share(s.total_return, "+.1%"),
                       _share(s.max_drawdown, ".1%"), _share(s.worst_10_session_fall, ".1%"),
                       _share(s.peak_vix, ".1f"))
    console.print(events)
    build = summary.archive
    state = "built" if build.built else "unchanged"
    title = (f"The rare-event archive {build.version} ({state}): "
             f"{build.samples:,} samples in {build.seconds:.1f} s")
    console.print(archive_table(build.counts, title))
    console.print(f"Bars cached under {settings.cache_dir}; archive at {build.path}.")
    if summary.regime_plot is not None:
        console.print(f"Regime plot: {summary.regime_plot}")
    if not story:
        console.print("Next: `stormwatch data show SPY`, `stormwatch regimes show`, "
                      "`stormwatch archive show`, `stormwatch features list`.")
        return
    _story(loaded, settings, day)


def _story(loaded, settings, day) -> None:  # noqa: ANN001 - the command's own values
    import os
    from datetime import date

    from flows.cli.retrain import prefect_defaults

    prefect_defaults(settings)
    from flows.demo import run_story

    where = os.environ.get("PREFECT_API_URL")
    console.print("\n[bold]The story[/bold]: " + (
        f"flows run on the Prefect server at {where}; its retraining trigger answers the rare event."
        if where else "no Prefect server configured: the flows run in Prefect's ephemeral mode and the "
        "monitor's events are delivered to the retraining flow in this process."))
    with cli_errors():
        story = run_story(loaded, settings, today=day or date.today(), on_step=lambda s: console.print(
            f"  {s.session}  [bold]{s.what}[/bold]: {s.detail}"))
    table = Table(title=f"Timeline ({len(story.symbols)} symbols, {story.seconds:.0f} s)")
    for column in ("session", "what", "detail"):
        table.add_column(column, overflow="fold")
    for s in story.timeline:
        table.add_row(str(s.session), s.what, s.detail)
    console.print(table)
    if story.report is not None:
        console.print(f"Report of the last retraining: {story.report}")
    console.print("Next: `stormwatch models list`, `stormwatch report`, "
                  "`make serve` to watch it in the Prefect UI.")
