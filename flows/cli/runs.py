"""``stormwatch runs``: the retraining runs' records, read back from the store."""

from __future__ import annotations

import json
from typing import Annotated

import pandas as pd
import typer
from rich.table import Table

from flows.cli.common import ConfigOption, cli_errors, console, load

app = typer.Typer(help="Retraining runs: what each one used and produced.", no_args_is_help=True)


@app.command("list")
def runs_list(config: ConfigOption = None) -> None:
    """Every retraining run: status, as-of session, variant, rows, ensemble accuracy."""
    from flows.training import open_runs

    _, settings = load(config)
    with cli_errors():
        runs = open_runs(settings)
        try:
            records = runs.runs()
            accuracy = {r.run_id: runs.metrics(r.run_id) for r in records if r.status == "succeeded"}
        finally:
            runs.store.dispose()
    if not records:
        console.print("no retraining run yet: `stormwatch retrain` starts one")
        return
    table = Table(title=f"Retraining runs in {settings.home}")
    for column in ("run", "status", "as of", "source", "variant", "rows", "ensemble accuracy", "seconds"):
        numeric = column in ("rows", "ensemble accuracy", "seconds")
        table.add_column(column, justify="right" if numeric else "left")
    for run in records:
        metrics = accuracy.get(run.run_id)
        overall = "-"
        if metrics is not None and not metrics.empty:
            row = metrics[(metrics["member"] == "ensemble") & (metrics["regime"] == "overall")]
            overall = f"{row['accuracy'].iloc[0]:.3f}" if len(row) else "-"
        status = run.status if run.status != "failed" else f"[red]failed[/red]: {run.reason[:60]}"
        table.add_row(run.run_id, status, str(run.as_of), run.source, run.variant, f"{run.training_rows:,}",
                      overall, f"{run.seconds:.0f}")
    console.print(table)


@app.command("show")
def runs_show(
    run: Annotated[str, typer.Argument(help="A run id, or the start of one.")],
    config: ConfigOption = None,
) -> None:
    """One run's lineage, its models with their checksums and fit times, and its per-regime metrics."""
    from flows.training import open_runs

    _, settings = load(config)
    with cli_errors(LookupError):
        runs = open_runs(settings)
        try:
            record = runs.get(run)
            models = runs.models(record.run_id)
            metrics = runs.metrics(record.run_id)
        finally:
            runs.store.dispose()
    console.print(f"[bold]run {record.run_id}[/bold]: {record.status}"
                  + (f" ({record.reason})" if record.reason else ""))
    lineage = [
        ("started", f"{record.started_at:%Y-%m-%d %H:%M:%S} UTC"), ("as of", str(record.as_of)),
        ("source", f"{record.source}, {len(record.symbols.split(','))} symbols"), ("variant", record.variant),
        ("configuration", f"{record.config_version}, sha256 {record.config_hash[:16]}"),
        ("data snapshot", record.data_snapshot[:16] or "-"), ("archive", record.archive_version or "-"),
        ("replay", f"{record.replay_rows:,} rows, {record.replay_version or '-'}"),
        ("training set", f"{record.training_rows:,} rows (effective {record.effective_rows:,.0f}), "
                         f"sha256 {record.training_set_hash[:16] or '-'}"),
        ("time", f"{record.seconds:.0f} s, peak memory {record.peak_memory_mb:,.0f} MB"),
        ("flow run", record.flow_run_id or "-"),
    ]
    for key, value in lineage:
        console.print(f"  {key:>14}: {value}")
    details = json.loads(record.details or "{}")
    if details.get("provenance"):
        provenance = pd.DataFrame(details["provenance"]).set_index("source")
        table = Table(title="Hybrid set before balancing: rows per source and regime")
        table.add_column("source")
        for column in provenance.columns:
            table.add_column(column, justify="right")
        for source, row in provenance.iterrows():
            table.add_row(str(source), *(f"{int(v):,}" for v in row))
        console.print(table)
    sampling = details.get("sampling") or {}
    if sampling.get("regimes"):
        console.print(balancing_table(sampling))
        if sampling.get("min_sessions"):
            floor = sampling["min_sessions"]
            console.print(f"  balancing: a regime seen on fewer than {floor} sessions is kept once, neither "
                          "oversampled nor dropped (models.sampling.min_regime_sessions)")
        if sampling.get("note"):
            console.print(f"  balancing: {sampling['note']}")
    for rows_table in member_rows_tables(details):
        console.print(rows_table)
    if details.get("window_zoo"):
        zoo = details["window_zoo"]
        weights = ", ".join(f"{name} {w:.2f}" for name, w in zoo["weights"].items() if w > 0) or "equal"
        who = ("the zoo fitted on the window alone" if zoo.get("served", True)
               else "the hybrid zoo, not by the zoo fitted on the window alone")
        evidence = ("" if zoo.get("window_log_loss") is None else
                    f" (validation log loss on {zoo['calm_validation_rows']:,} calm rows: window zoo "
                    f"{zoo['window_log_loss']:.4f}, hybrid zoo {zoo['hybrid_log_loss']:.4f})")
        console.print(f"  calm rows ({zoo['rule']}): served by {who}{evidence}; the window zoo: "
                      f"{zoo['training_rows']:,} rows, sha256 {zoo['training_set_hash'][:16]}, "
                      f"weights {weights}")
    if models:
        table = Table(title="Models")
        for column in ("member", "class", "ensemble weight", "fit seconds", "sha256"):
            numeric = column in ("ensemble weight", "fit seconds")
            table.add_column(column, justify="right" if numeric else "left")
        for m in models:
            weight = "-" if m.ensemble_weight is None else f"{m.ensemble_weight:.3f}"
            table.add_row(m.member, m.model_class, weight, f"{m.fit_seconds:.1f}", m.sha256[:16])
        console.print(table)
    if not metrics.empty:
        from flows.cli.retrain import accuracy_table

        pivot = metrics.pivot(index="regime", columns="member", values="accuracy")
        counts = metrics[metrics["member"] == "ensemble"].set_index("regime")["n"]
        order = [r for r in ("normal", "crash", "recovery", "high_volatility", "low_volatility", "overall")
                 if r in pivot.index]
        members = [m.member for m in models if m.member in pivot.columns and m.member != "ensemble"]
        members += [m for m in ("hybrid_ensemble", "window_ensemble", "ensemble") if m in pivot.columns]
        console.print(accuracy_table(pd.concat([counts.rename("n"), pivot[members]], axis=1).loc[order],
                                     "Validation accuracy per regime"))


def balancing_table(sampling: dict) -> Table:
    """Each regime's rows before and after balancing (``details["sampling"]`` of a run record)."""
    table = Table(title=f"Balancing: {sampling['n_before']:,} rows to {sampling['n_after']:,}, per regime")
    for column in ("regime", "rows before", "share", "target", "rows after", "share after", "oversampled",
                   "dropped"):
        table.add_column(column, justify="left" if column == "regime" else "right")
    for row in sampling["regimes"]:
        table.add_row(row["regime"], f"{row['count_before']:,}", f"{row['share_before']:.1%}",
                      f"{row['effective_target']:.1%}", f"{row['count_after']:,}",
                      f"{row['share_after']:.1%}", f"{row['oversampled']:,}", f"{row['dropped']:,}")
    return table


def member_rows_tables(details: dict) -> list[Table]:
    """The rows each member fitted on (``details["member_rows"]`` of a run record): every row, or
    a session-block subsample (``max_rows``) with its blocks and seed; then, when a member was
    subsampled, each regime's share of the set and of each subsample. Nothing for a run recorded
    before members' rows were."""
    member_rows = details.get("member_rows")
    if not member_rows:
        return []
    table = Table(title="Rows each member fitted on (over max_rows: whole session blocks, drawn per regime)")
    for column in ("member", "rows", "max_rows", "how"):
        table.add_column(column, justify="right" if column in ("rows", "max_rows") else "left")
    for member, rows in member_rows.items():
        limit = "-" if rows.get("max_rows") is None else f"{rows['max_rows']:,}"
        how = "every row"
        if rows.get("subsampled"):
            how = (f"{rows['rows_after']:,} of {rows['rows_before']:,} rows: {rows['blocks_after']:,} "
                   f"of {rows['blocks_before']:,} blocks of {rows['block_sessions']} sessions, "
                   f"seed {rows['seed']}")
        table.add_row(member, f"{rows['rows_after']:,}", limit, how)
    tables = [table]
    subsampled = {m: {r["regime"]: r for r in rows["regimes"]} for m, rows in member_rows.items()
                  if rows.get("subsampled")}
    if subsampled:
        shares = Table(title="Regime shares of the training set and of each subsample")
        shares.add_column("regime")
        shares.add_column("training set", justify="right")
        for member in subsampled:
            shares.add_column(member, justify="right")
        first = next(iter(subsampled.values()))
        for regime, row in first.items():
            cells = [f"{by[regime]['share_after']:.1%}" if regime in by else "-"
                     for by in subsampled.values()]
            shares.add_row(regime, f"{row['share_before']:.1%}", *cells)
        tables.append(shares)
    return tables
