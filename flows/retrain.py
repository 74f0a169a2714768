"""The retraining flow (SPEC.md module 12) on Prefect: twelve steps, one task each.

The flow body reads like the steps; each task is one call into ``flows.training`` (plain
Python, tested without Prefect). What it produces is declared as Prefect assets, so the UI
shows the lineage ``bars -> archive -> training set -> model``:

* ``stormwatch://bars/<source>``: the cache refresh (version: the data snapshot hash);
* ``stormwatch://archive/<source>``: the archive version used;
* ``stormwatch://training-set/<source>``: the balanced, weighted set (its hash, row counts);
* ``stormwatch://model/<source>/ensemble``: the served ensemble of the run.

Retries only where I/O can fail (the market-data refresh). Nothing is cached by Prefect: the
steps that repeat their inputs are idempotent in the rooms already (the cache fetches only
missing sessions, an unchanged archive is not rebuilt), and hashing 100,000-row frames to make
a cache key would cost more than it saves. Training and recording are never retried.

A progress artifact (``retrain-progress``) follows the steps; a table artifact
(``retrain-regime-metrics``) shows accuracy per regime of every member and the ensemble. A run
that fails at any step is recorded as failed with its reason, and no model is counted as
trained. SHAP and the promotion gate are steps of the same flow once they exist (issue 14).

Run it with :func:`run_retrain` (what ``stormwatch retrain`` does): without ``PREFECT_API_URL``
Prefect runs it against a temporary local server (ephemeral mode).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.assets import Asset, add_asset_metadata, materialize
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from prefect.runtime import flow_run
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from flows import training as steps
from flows.config import LoadedConfig, Settings, load_config, resolve_config_path
from flows.data import MarketSelection
from flows.report import write_report
from models.config import TrainingConfig

#: The steps as the progress artifact and the command line show them.
STEPS: tuple[str, ...] = (
    "load config", "refresh market data", "features and labels", "regimes", "archive", "replay buffer",
    "assemble", "balance", "weight", "train", "validate per regime", "SHAP by regime", "record",
    "promotion gate", "sectors and backtest", "report",
)

_progress_listener: ContextVar[Callable[[str, int, int], None] | None] = ContextVar(
    "stormwatch_retrain_progress", default=None)


@contextmanager
def observe_progress(listener: Callable[[str, int, int], None]) -> Iterator[None]:
    """Call ``listener(step, done, total)`` as the flow advances (the CLI's progress bar)."""
    token = _progress_listener.set(listener)
    try:
        yield
    finally:
        _progress_listener.reset(token)


class _Progress:
    """The progress artifact plus the in-process listener, advanced once per step."""

    def __init__(self) -> None:
        self.done = 0
        self.artifact_id = create_progress_artifact(progress=0.0, key="retrain-progress",
                                                    description="Retraining: the twelve steps")

    def step(self, name: str) -> None:
        self.done += 1
        update_progress_artifact(artifact_id=self.artifact_id, progress=100.0 * self.done / len(STEPS),
                                 description=f"done: {name}")
        listener = _progress_listener.get()
        if listener is not None:
            listener(name, self.done, len(STEPS))


def _asset(kind: str, source: str) -> Asset:
    return Asset(key=f"stormwatch://{kind}/{source}")


def _materializing(fn: Callable[..., Any], asset: Asset, *deps: Asset, **options: Any) -> Any:
    """``fn`` as a task that materializes ``asset`` (keys name the source, known only at run
    time), downstream of ``deps``."""
    return materialize(asset, asset_deps=list(deps), name=fn.__name__.replace("_", "-"),
                       cache_policy=NO_CACHE, persist_result=False, **options)(fn)


# --------------------------------------------------------------------------------------------
# Tasks: each one call into flows.training
# --------------------------------------------------------------------------------------------

_task = {"cache_policy": NO_CACHE, "persist_result": False}


@task(name="load-config", **_task)
def load_configuration(config_path: str | None) -> LoadedConfig:
    """Load and validate the configuration (its hash and version go into the run record)."""
    settings = Settings()
    path, origin = resolve_config_path(config_path, settings.config)
    return load_config(path, origin=origin)


def refresh_market_data(
    loaded: LoadedConfig, selection: MarketSelection, as_of: date | None
) -> steps.MarketData:
    """Fetch what the cache lacks up to the as-of session; cut the panel there."""
    data = steps.refresh_market_data(loaded, Settings(), selection, as_of)
    add_asset_metadata(f"stormwatch://bars/{data.source}", {
        "snapshot": data.snapshot[:16], "symbols": len(data.symbols), "sessions": len(data.panel.sessions),
        "as_of": str(data.as_of.date())})
    return data


@task(name="start-run", **_task)
def start_run(loaded: LoadedConfig, data: steps.MarketData, training: TrainingConfig) -> str:
    return steps.start_run(loaded, Settings(), data, training, flow_run_id=str(flow_run.get_id() or ""))


@task(name="features-and-labels", **_task)
def features_and_labels(loaded: LoadedConfig, data: steps.MarketData) -> steps.Samples:
    """The rolling window's labelled samples up to the as-of session."""
    return steps.window_samples(loaded.config, data)


@task(name="label-regimes", **_task)
def label_regimes(loaded: LoadedConfig, data: steps.MarketData, window: steps.Samples) -> tuple[Any, Any]:
    """The causal regime timeline, and the window's rows regimed by it."""
    timeline = steps.label_regimes(loaded.config, data)
    return timeline, steps.with_regimes(window, timeline)


def load_archive(loaded: LoadedConfig, data: steps.MarketData, timeline: Any) -> steps.ArchiveSamples:
    """The rare-event archive from the bars up to T, built first when missing or changed."""
    archived = steps.archive_samples(loaded, Settings(), data, timeline)
    add_asset_metadata(f"stormwatch://archive/{data.source}", {
        "version": archived.version, "rows": len(archived.samples), "built_now": archived.built})
    return archived


@task(name="load-replay-buffer", **_task)
def load_replay(loaded: LoadedConfig, data: steps.MarketData) -> steps.Samples | None:
    """The replay buffer's matured entries."""
    return steps.replay_samples(Settings(), loaded.config, data.as_of)


@task(name="assemble-balance-weight", **_task)
def prepare_training_set(loaded: LoadedConfig, data: steps.MarketData, window: steps.Samples,
                         archived: steps.ArchiveSamples, replay: steps.Samples | None, timeline: Any,
                         training: TrainingConfig) -> steps.PreparedRun:
    """Validation sets first, everything purged against them, then assemble, balance, weight."""
    return steps.prepare_from_parts(loaded.config, data, timeline, window, archived, replay, training)


def record_training_set(run_id: str, prepared: steps.PreparedRun) -> str:
    """The exact training set's lineage in the run record (and the replay rows it used)."""
    steps.record_prepared(Settings(), run_id, prepared)
    ts = prepared.training_set
    add_asset_metadata(f"stormwatch://training-set/{prepared.data.source}", {
        "hash": ts.content_hash[:16], "rows": len(ts.samples), "effective_rows": round(ts.effective_rows, 1),
        "archive_version": prepared.archive_version, "replay_rows": 0 if prepared.replay is None
        else len(prepared.replay), "run_id": run_id})
    return ts.content_hash


@task(name="train-member", task_run_name="train-{name}", **_task)
def train_member(name: str, loaded: LoadedConfig, training_set: steps.TrainingSet) -> steps.FittedMember:
    """One zoo member, fitted with the training set's weights (on a session-block subsample when
    the set exceeds the member's ``max_rows``)."""
    models = loaded.config.models
    return steps.fit_member(name, models.zoo[name], training_set, models.training.subsample)  # type: ignore[index]


@task(name="train-window-member", task_run_name="train-{name}-on-window", **_task)
def train_window_member(name: str, loaded: LoadedConfig,
                        training_set: steps.TrainingSet) -> steps.FittedMember:
    """One member of the window zoo (``models.validation.ensemble_window_zoo_below_vix``): fitted
    on the rolling window alone, it serves the calm rows."""
    models = loaded.config.models
    return steps.fit_member(name, models.zoo[name], training_set, models.training.subsample)  # type: ignore[index]


@task(name="validate-per-regime", **_task)
def validate_per_regime(loaded: LoadedConfig, members: list[steps.FittedMember], prepared: steps.PreparedRun,
                        window: tuple[list[steps.FittedMember], steps.PreparedRun] | None = None,
                        gate: steps.CalmGate | None = None) -> steps.Validation:
    """Every member and the ensemble on the five per-regime validation sets (and the window zoo,
    which serves the rows ``gate`` calls calm)."""
    return steps.validate_run(loaded.config, members, prepared, window=window, gate=gate)


def record_run(loaded: LoadedConfig, run_id: str, prepared: steps.PreparedRun,
               members: list[steps.FittedMember], validation: steps.Validation, seconds: float,
               admit_replay: bool,
               window: tuple[list[steps.FittedMember], steps.PreparedRun] | None) -> dict[str, Any]:
    """Models, checksums and metrics in the store; the worst validation errors into replay."""
    replay = steps.record_success(loaded, Settings(), run_id, prepared, members, validation,
                                  seconds=seconds, admit_replay=admit_replay, window=window)
    add_asset_metadata(f"stormwatch://model/{prepared.data.source}/ensemble", {
        "run_id": run_id, "members": len(members), "training_set": prepared.training_set.content_hash[:16],
        "weights": {k: round(v, 4) for k, v in validation.ensemble.weights.items()},
        "storm_weights": {k: round(v, 4) for k, v in (validation.ensemble.storm_weights or {}).items()},
        "calm_rows": None if validation.calm_gate is None else validation.calm_gate.rule,
        "window_zoo_weights": {k: round(v, 4) for k, v in (validation.window.ensemble.weights.items()
                                                            if validation.window is not None else ())}})
    return replay


@task(name="shap-by-regime", **_task)
def shap_by_regime(loaded: LoadedConfig, run_id: str, validation: steps.Validation) -> steps.Explanation:
    """Per-regime mean |SHAP| of the tree members, kept with the run and drawn."""
    return steps.explain_run(loaded, Settings(), run_id, validation)


@task(name="sectors-and-backtest", **_task)
def sectors_and_backtest(
    loaded: LoadedConfig, run_id: str, validation: steps.Validation
) -> steps.Diagnostics:
    """Where the ensemble is weak (sector, symbol) and what its calls earn as a long/short book."""
    return steps.diagnose(loaded, Settings(), run_id, validation)


@task(name="training-report", **_task)
def training_report(outcome: RetrainOutcome, validation: steps.Validation,
                    diagnostics: steps.Diagnostics) -> Path:
    """The run's HTML report, and its essentials as Prefect artifacts."""
    settings = Settings()
    runs = steps.open_runs(settings)
    try:
        record = runs.get(outcome.run_id)
    finally:
        runs.store.dispose()
    report = write_report(settings, outcome, run=record, validation=validation, diagnostics=diagnostics)
    markdown = _report_markdown(outcome, diagnostics, report.path)
    create_markdown_artifact(key="training-report", markdown=markdown,
                             description=f"Training report of run {outcome.run_id}")
    return report.path


@task(name="promotion-gate", **_task)
def promotion_gate(loaded: LoadedConfig, run_id: str, prepared: steps.PreparedRun,
                   validation: steps.Validation) -> steps.GateOutcome:
    """The challenger against the champion on rows neither trained on; aliases move on a pass."""
    return steps.promotion_gate(loaded, Settings(), run_id, prepared, validation)


def emit_gate_failed(source: str, run_id: str, outcome: steps.GateOutcome) -> None:
    """``stormwatch.gate.failed``: the champion keeps serving; the reasons travel in the payload
    for an automation to template into an alert."""
    emit_event(
        event="stormwatch.gate.failed",
        resource={"prefect.resource.id": f"stormwatch.model.{source}", "prefect.resource.name": source},
        payload={"run_id": run_id, "champion": outcome.champion_before or "",
                 "reasons": outcome.decision.reasons},
    )


# --------------------------------------------------------------------------------------------
# The flow
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetrainOutcome:
    """What a run produced, for the command line and the tests."""

    run_id: str
    source: str
    as_of: date
    variant: str
    accuracy: pd.DataFrame  # rows: regimes and overall; columns: n, each member, ensemble
    provenance: pd.DataFrame  # rows per source x regime of the hybrid set (before balancing)
    training_rows: int
    training_set_hash: str
    fit_seconds: dict[str, float]
    ensemble_weights: dict[str, float]
    storm_weights: dict[str, float] | None  # rows the storm gate calls a storm; None: no gate
    storm_gate: str | None  # the gate's rule, e.g. "vix_level > 35"
    archive_version: str
    archive_built: bool
    replay_rows: int
    replay_admission: dict[str, Any]
    gate: steps.GateOutcome
    explanation: steps.Explanation
    seconds: float
    peak_memory_mb: float
    backtest: pd.DataFrame | None = None  # the signal backtest's summary, overall and per regime
    report: Path | None = None
    member_rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # per member: rows fitted, subsample
    window_weights: dict[str, float] | None = None  # the window zoo's; None: one zoo
    window_fit_seconds: dict[str, float] = field(default_factory=dict)  # its members' fits
    calm_gate: str | None = None  # the rule of the rows it serves, e.g. "vix_level < 25"; None: none
    calm_check: steps.CalmRowsCheck | None = None  # both zoos on the calm validation rows


def _table_artifact(accuracy: pd.DataFrame, run_id: str) -> None:
    rows = [{"regime": regime, **{k: (round(float(v), 4) if k != "n" else int(v)) for k, v in row.items()}}
            for regime, row in accuracy.iterrows()]
    create_table_artifact(key="retrain-regime-metrics", table=rows,
                          description=f"Validation accuracy per regime, run {run_id}")


def _run_name() -> str:
    """``retrain-<source>-<as of>``, naming the defaults instead of printing ``None``."""
    parameters = flow_run.parameters
    return f"retrain-{parameters.get('source') or 'default'}-{parameters.get('as_of') or 'today'}"


@flow(name="retrain", flow_run_name=_run_name, log_prints=True,
      task_runner=ThreadPoolTaskRunner(max_workers=2))
def retrain(
    source: str | None = None,
    symbols: list[str] | None = None,
    as_of: date | None = None,
    baseline: bool = False,
    config_path: str | None = None,
    csv_dir: str | None = None,
    start: date | None = None,
    reason: str = "manual",
) -> RetrainOutcome:
    """Retrain the zoo from hybrid memory as of ``as_of`` (default: the latest cached session up
    to today) and record the run. ``baseline`` switches every hybrid-memory step off (the
    rolling window alone); ``csv_dir`` and ``start`` select data as every command does;
    ``reason`` says what started it (a schedule, an event, a person)."""
    started = time.perf_counter()
    logger = get_run_logger()
    progress = _Progress()
    loaded = load_configuration(config_path)
    progress.step(STEPS[0])
    training = loaded.config.models.training.baseline() if baseline else loaded.config.models.training
    selection = MarketSelection(source="csv" if csv_dir and not source else source,
                                csv_dir=Path(csv_dir) if csv_dir else None,
                                symbols=tuple(symbols) if symbols else None, start=start)
    name = source or loaded.config.market.sources.default
    refresh = _materializing(refresh_market_data, _asset("bars", name), retries=2,
                             retry_delay_seconds=[2, 10])
    data = refresh(loaded, selection, as_of)
    progress.step(STEPS[1])
    run_id = start_run(loaded, data, training)
    logger.info("run %s: %s as of %s, %s (%s)", run_id, data.source, data.as_of.date(),
                steps.variant_name(training), reason)
    try:
        window = features_and_labels(loaded, data)
        progress.step(STEPS[2])
        timeline, window = label_regimes(loaded, data, window)
        progress.step(STEPS[3])
        bars, archive = _asset("bars", data.source), _asset("archive", data.source)
        archived = _materializing(load_archive, archive, bars)(loaded, data, timeline)
        progress.step(STEPS[4])
        replay = load_replay(loaded, data) if training.replay else None
        progress.step(STEPS[5])
        prepared = prepare_training_set(loaded, data, window, archived, replay, timeline, training)
        for step in STEPS[6:9]:
            progress.step(step)
        training_set = _asset("training-set", data.source)
        _materializing(record_training_set, training_set, bars, archive)(run_id, prepared)
        calm_gate = steps.window_zoo_gate(loaded.config, training)
        zoo = list(loaded.config.models.zoo)
        futures = [train_member.submit(member, loaded, prepared.training_set) for member in zoo]
        window_zoo = None
        if calm_gate is not None:  # the calm rows' zoo: the same members on the window alone
            on_window = prepare_training_set(loaded, data, window, archived, None, timeline,
                                             training.baseline())
            futures += [train_window_member.submit(member, loaded, on_window.training_set) for member in zoo]
        fitted = [future.result() for future in futures]
        members = fitted[:len(zoo)]
        if calm_gate is not None:
            window_zoo = (fitted[len(zoo):], on_window)
        for member in fitted:
            for warning in member.warnings:
                logger.warning("%s: %s", member.name, warning)
        progress.step(STEPS[9])
        validation = validate_per_regime(loaded, members, prepared, window_zoo, calm_gate)
        progress.step(STEPS[10])
        explanation = shap_by_regime(loaded, run_id, validation)
        progress.step(STEPS[11])
        seconds = time.perf_counter() - started
        model = Asset(key=f"stormwatch://model/{data.source}/ensemble")
        admission = _materializing(record_run, model, training_set)(
            loaded, run_id, prepared, members, validation, seconds, training.replay, window_zoo)
        progress.step(STEPS[12])
        gate = promotion_gate(loaded, run_id, prepared, validation)
        if not gate.promoted:
            emit_gate_failed(data.source, run_id, gate)
            logger.warning("run %s failed the gate; %s keeps serving: %s", run_id, gate.champion_before,
                           "; ".join(gate.decision.reasons))
        progress.step(STEPS[13])
        diagnostics = sectors_and_backtest(loaded, run_id, validation)
        progress.step(STEPS[14])
    except BaseException as exc:
        steps.record_failure(Settings(), run_id, exc)
        raise
    accuracy = steps.accuracy_table(validation.metrics)
    _table_artifact(accuracy, run_id)
    create_markdown_artifact(key="retrain-summary", markdown=_summary_markdown(run_id, prepared, validation))
    ts = prepared.training_set
    outcome = RetrainOutcome(
        run_id=run_id, source=data.source, as_of=data.as_of.date(), variant=steps.variant_name(training),
        accuracy=accuracy, provenance=ts.hybrid.counts, training_rows=len(ts.samples),
        training_set_hash=ts.content_hash, fit_seconds={m.name: m.fit_seconds for m in members},
        ensemble_weights=dict(validation.ensemble.weights),
        storm_weights=None if (storm := validation.ensemble.storm_weights) is None else dict(storm),
        storm_gate=steps.storm_rule(validation.ensemble),
        window_weights=None if validation.window is None else dict(validation.window.ensemble.weights),
        window_fit_seconds={m.name: m.fit_seconds for m in (window_zoo[0] if window_zoo else [])},
        calm_gate=None if validation.calm_gate is None else validation.calm_gate.rule,
        calm_check=validation.calm_check,
        archive_version=prepared.archive_version, archive_built=prepared.archive_built,
        replay_rows=0 if prepared.replay is None else len(prepared.replay), replay_admission=admission,
        gate=gate, explanation=explanation,
        seconds=time.perf_counter() - started, peak_memory_mb=steps.peak_memory_mb(),
        backtest=diagnostics.backtest.summary, member_rows={m.name: m.rows for m in members},
    )
    path = training_report(outcome, validation, diagnostics)
    progress.step(STEPS[15])
    return replace(outcome, report=path)


def _report_markdown(outcome: RetrainOutcome, diagnostics: steps.Diagnostics, path: Path) -> str:
    gate = outcome.gate
    verdict = "promoted" if gate.promoted else "not promoted"
    reasons = "\n".join(f"- {r}" for r in gate.decision.reasons) or "- every criterion passed"
    summary = diagnostics.backtest.summary.loc["overall"]
    weakest = ", ".join(f"{s} ({r.accuracy:.3f} on {int(r.n)} rows)"
                        for s, r in diagnostics.tracking.weakest_sectors.iterrows()) or "none called weak"
    return (
        f"# Run {outcome.run_id}: {verdict}\n\n{reasons}\n\n"
        f"- ensemble accuracy: " + ", ".join(f"{k} {v:.3f}" for k, v in outcome.accuracy["ensemble"].items())
        + f"\n- weakest sectors: {weakest}\n"
        f"- backtest: Sharpe {summary['sharpe']:.2f}, annual return {summary['annual_return']:.2%}, "
        f"max drawdown {summary['max_drawdown']:.2%}, rank IC {summary['rank_ic']:.3f}\n"
        f"- report: `{path}`\n"
    )


def _summary_markdown(run_id: str, prepared: steps.PreparedRun, validation: steps.Validation) -> str:
    ts = prepared.training_set
    replay_rows = 0 if prepared.replay is None else len(prepared.replay)
    ensemble = validation.ensemble
    columns = {"ensemble weight": dict(ensemble.weights)}
    if (storm := steps.storm_rule(ensemble)) is not None:
        columns[f"in storms ({storm})"] = dict(ensemble.storm_weights or {})
    if validation.window is not None and validation.calm_check is not None:
        check = validation.calm_check
        columns[f"window zoo, {check.rule}{'' if check.window_serves else ': not served'}"] = dict(
            validation.window.ensemble.weights)
    cells = {name: [f"{c.get(name, 0.0):.3f}" for c in columns.values()] for name in ensemble.weights}
    weights = "\n".join("| " + " | ".join([name, *values]) + " |" for name, values in cells.items())
    header = "| member | " + " | ".join(columns) + " |\n|---" + "|---" * len(columns) + "|"
    return (
        f"# Retraining run {run_id}\n\n"
        f"- as of **{prepared.data.as_of.date()}**, source `{prepared.data.source}`, "
        f"{len(prepared.data.symbols)} symbols\n"
        f"- archive `{prepared.archive_version}`, replay rows {replay_rows}\n"
        f"- training set `{ts.content_hash[:16]}`: {len(ts.samples):,} rows, "
        f"effective {ts.effective_rows:,.0f}\n"
        + ("" if validation.calm_check is None else f"- {validation.calm_check.describe()}\n")
        + f"\n{header}\n{weights}\n"
    )


def run_retrain(*, max_parallel_members: int = 2, task_runner: TaskRunner | None = None,
                **parameters: Any) -> RetrainOutcome:
    """Run the flow (parameters as :func:`retrain`'s) with ``max_parallel_members`` members
    training at once, in threads, or on ``task_runner`` when given (a Dask cluster, say)."""
    runner = task_runner or ThreadPoolTaskRunner(max_workers=max_parallel_members)
    return retrain.with_options(task_runner=runner)(**parameters)


__all__ = ["STEPS", "RetrainOutcome", "observe_progress", "retrain", "run_retrain"]
