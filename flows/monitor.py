"""The monitor as a Prefect flow: one cycle per run, on NYSE sessions (SPEC.md modules 6, 7, 8).

Each run is a cycle of :mod:`flows.watch` written as Prefect tasks: refresh the bars (retried
with exponential backoff; a source that keeps failing skips the cycle with a warning, writing
nothing), process every session not processed yet (each committed exactly once), grow the
archive and the replay buffer (asset materializations, like the retraining flow's), and deliver
the cycle's events to Prefect: ``stormwatch.drift.detected`` and
``stormwatch.rare-event.detected``, with stable resource ids and payloads that a deployment
trigger templates into the retraining flow's parameters (see ``prefect.yaml``).

The deployment runs it every ``flows.monitor_interval_minutes`` with a concurrency limit of one
whose collision strategy cancels the newcomer; even without that limit, two cycles that overlap
cannot both process a session (the commit is a compare-and-swap).

:func:`update_archive` is the archive job: the configured events' version, built or found, plus
the closed discovered events that no version holds yet.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.assets import Asset, materialize
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from prefect.runtime import flow_run
from prefect.tasks import exponential_backoff

from flows import watch
from flows.archive import build_archive, cached_panel
from flows.config import LoadedConfig, Settings, load_config, resolve_config_path
from flows.data import FetchOutcome, MarketSelection
from market.calendar import nyse_sessions
from market.sources.base import MarketDataError

#: Attempts of the refresh after the first, and the backoff between them (2 s, 4 s, 8 s, jittered).
REFRESH_RETRIES = 3
REFRESH_BACKOFF_SECONDS = 2.0

_task = {"cache_policy": NO_CACHE, "persist_result": False}


def _selection(source: str | None, symbols: list[str] | None, csv_dir: str | None) -> MarketSelection:
    return MarketSelection(source="csv" if csv_dir and not source else source,
                           csv_dir=Path(csv_dir) if csv_dir else None,
                           symbols=tuple(symbols) if symbols else None)


def _load(config_path: str | None) -> LoadedConfig:
    path, origin = resolve_config_path(Path(config_path) if config_path else None, Settings().config)
    return load_config(path, origin=origin)


@task(name="refresh-bars", retries=REFRESH_RETRIES,
      retry_delay_seconds=exponential_backoff(backoff_factor=REFRESH_BACKOFF_SECONDS),
      retry_jitter_factor=0.2, **_task)
def refresh_bars(loaded: LoadedConfig, selection: MarketSelection, through: date | None) -> FetchOutcome:
    return watch.refresh_bars(loaded, Settings(), selection, through)


@task(name="process-sessions", **_task)
def process_sessions(loaded: LoadedConfig, selection: MarketSelection, through: date | None,
                     refused: dict[str, str]) -> watch.CycleReport:
    run_id = str(flow_run.id or "")
    return watch.process_sessions(loaded, Settings(), selection, through, refused=refused, flow_run_id=run_id)


def emit(event: dict[str, Any]) -> None:
    """Deliver one stored event to Prefect (its id is stable, so a re-delivery is the same event)."""
    emit_event(event=event["event"], resource=event["resource"], payload=event["payload"],
               id=uuid.UUID(event["id"]))


@task(name="deliver-events", **_task)
def deliver_events(source: str, sink: Callable[[dict[str, Any]], None]) -> list[dict[str, Any]]:
    return watch.deliver_events(Settings(), source, sink)


def _record_assets(report: watch.CycleReport) -> None:
    """The archive and replay buffer as assets, materialized when this cycle changed them."""
    bars = Asset(key=f"stormwatch://bars/{report.source}")
    if report.archive_versions:
        archive = Asset(key=f"stormwatch://archive/{report.source}")
        grown = materialize(archive, asset_deps=[bars], name="grow-archive", **_task)
        grown(lambda: report.archive_versions)()
    if report.replay_admitted:
        model = Asset(key=f"stormwatch://model/{report.source}/ensemble")
        materialize(Asset(key=f"stormwatch://replay/{report.source}"), asset_deps=[bars, model],
                    name="grow-replay-buffer", **_task)(lambda: report.replay_admitted)()


def _run_name() -> str:
    parameters = flow_run.parameters
    return f"monitor-{parameters.get('source') or 'default'}-{parameters.get('through') or 'today'}"


@flow(name="monitor", flow_run_name=_run_name, log_prints=True)
def monitor(
    source: str | None = None,
    symbols: list[str] | None = None,
    config_path: str | None = None,
    csv_dir: str | None = None,
    through: date | None = None,
    sink: Callable[[dict[str, Any]], None] | None = None,
) -> watch.CycleReport:
    """One monitor cycle: every NYSE session after the last processed one, up to ``through``
    (default: the latest closed session the source serves). ``sink`` receives each event
    instead of Prefect's event stream (the demo uses it to deliver events in process)."""
    logger = get_run_logger()
    loaded = _load(config_path)
    selection = _selection(source, symbols, csv_dir)
    name = source or loaded.config.market.sources.default
    if through is None and len(nyse_sessions(date.today(), date.today())) == 0:
        logger.info("%s is not an NYSE session: nothing to monitor", date.today())
        return watch.CycleReport(source=name, skipped=f"{date.today()} is not an NYSE session")
    try:
        fetched = refresh_bars(loaded, selection, through)
    except MarketDataError as exc:
        why = f"the source failed after {REFRESH_RETRIES} retries: {exc}"
        logger.warning("cycle skipped: %s", why)
        return watch.CycleReport(source=name, skipped=why)
    for symbol, why in fetched.refused:
        logger.warning("%s set aside this cycle: %s", symbol, why)
    report = process_sessions(loaded, selection, through, dict(fetched.refused))
    _record_assets(report)
    delivered = deliver_events(report.source, sink or emit)
    logger.info("%s", report.describe())
    create_markdown_artifact(key=f"monitor-{report.source}", markdown=_markdown(report, delivered),
                             description=f"Monitor cycle on {report.source}")
    return replace(report, delivered=tuple(delivered))


def _markdown(report: watch.CycleReport, delivered: list[dict[str, Any]]) -> str:
    lines = [f"# Monitor: {report.source}", "", report.describe(), ""]
    if delivered:
        lines += ["| event | resource | session |", "|---|---|---|"]
        for e in delivered:
            resource, session = e["resource"]["prefect.resource.id"], e["payload"].get("session", "")
            lines.append(f"| {e['event']} | {resource} | {session} |")
    if report.not_run:
        lines += ["", "Not run: " + "; ".join(f"{k}: {v}" for k, v in report.not_run.items())]
    return "\n".join(lines) + "\n"


@flow(name="update-archive", log_prints=True)
def update_archive(source: str | None = None, config_path: str | None = None,
                   csv_dir: str | None = None) -> dict[str, Any]:
    """The archive job: build (or find) the configured events' version, then add the stages of
    the discovered events (detected, closed) no version holds yet."""
    loaded = _load(config_path)
    settings = Settings()
    selection = _selection(source, None, csv_dir)
    name, panel = cached_panel(loaded, settings, selection=selection)
    base = materialize(Asset(key=f"stormwatch://archive/{name}"), name="build-archive", **_task)(
        lambda: build_archive(loaded, settings, name, selection=selection))()
    steps = watch.grow_archive(loaded, settings, name, panel)
    get_run_logger().info("archive %s: %s; added %s", name, getattr(base, "version", base),
                          ", ".join(f"{s.name} ({s.stage})" for s in steps) or "no new event")
    return {"source": name, "archived": list(dict.fromkeys(s.name for s in steps)),
            "versions": [s.version for s in steps]}


__all__ = ["monitor", "update_archive"]
