"""One monitor cycle in plain Python: the steps behind the Prefect monitor flow (``flows.monitor``).

A cycle refreshes the bars, finds the NYSE sessions the monitor has not processed yet, and for
each of them, in order: computes the newest features, scores them with the champion (and the
challenger, in the shadow, so that its live record exists when the gate asks), reads the
session's regime, matures the predictions made ``horizon`` sessions earlier (their labels are
known now), updates the drift detectors and rare-event discovery, offers the champion's matured
errors to the replay buffer, and commits all of it with the detectors' new state in one
transaction (:meth:`memory.live.LiveLog.commit_session`). Then it grows the archive with the
new events detected or closed in the cycle (before the events are delivered, so that the
retraining an event starts reads the grown archive) and delivers the session's Prefect events.

Why this shape:

* **Exactly once.** A session is processed in one transaction that moves the monitor's state
  with a compare-and-swap: a crash before the commit leaves nothing (the next cycle starts from
  the state before it), and a second monitor processing the same session at the same time rolls
  back. What lies outside the database is idempotent and catches up: archive growth is
  content-hashed and driven by the stored discovered events, events are stored with their
  session and delivered (with stable ids) until marked delivered.
* **A failing source costs a cycle, not the monitor.** The refresh is retried with backoff;
  then the cycle is skipped, saying why, with nothing written. A symbol the source refused or
  that has no bar on a session is set aside for that session with its reason; the others are
  processed, and the next cycle fetches it again.
* **Causal by construction.** Session ``d`` is processed from bars up to ``d`` only: features,
  regimes and labels are causal (tested in ``market``), and a label reaches the detectors and
  the buffer only once its horizon has ended.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from flows.archive import (
    ARCHIVE_MILESTONE_SESSIONS,
    ARCHIVE_MILESTONES,
    ArchiveStep,
    build_archive,
    cached_panel,
    discovered_stages,
    with_discoveries,
)
from flows.config import LoadedConfig, Settings
from flows.data import FetchOutcome, MarketSelection, fetch_market_data, open_selection, open_store
from flows.monitor_backtest import drift_rows, event_rows
from flows.training import open_runs
from market.features import newest_features
from market.labels import make_labels
from market.panel import BarPanel
from market.samples import Samples
from market.sources.base import MarketDataError, MarketSource
from memory.live import LiveLog, SessionAlreadyProcessed, SessionWrite
from memory.registry import CHALLENGER, CHAMPION, Registry
from memory.replay import ReplayBuffer, log_loss_per_row
from memory.watch_log import (
    open_stage,
    record_discovered_events,
    record_drift_events,
    record_event_stage,
)
from models.zoo import positive_class_proba
from monitors.drift import (
    DriftMonitor,
    DriftReport,
    FeatureDriftDetector,
    PredictionDriftDetector,
    PredictionUpdate,
    RegimeDriftDetector,
    SessionInput,
)
from monitors.rare_events import MarketSession, ProposedEvent, RareEventDiscovery
from monitors.regimes import RegimeLabeler, RegimeTimeline

log = logging.getLogger(__name__)

#: Most sessions one cycle processes; a monitor far behind catches up over several cycles.
MAX_SESSIONS_PER_CYCLE = 260
#: The share of the training window's newest sessions that retraining holds out for validation
#: (``models.validation.regime_validation_sets``): the champion never trained on them.
HELD_OUT_TAIL = 0.2
#: Namespace of the stable ids of the monitor's Prefect events (one id per session and event).
EVENT_NAMESPACE = uuid.UUID("6f1d3c52-8a0e-4a7c-9d0b-5b7d2e0c9a11")


@dataclass
class Detectors:
    """The monitor's state between cycles (pickled with the session that produced it)."""

    drift: DriftMonitor
    discovery: RareEventDiscovery
    #: Sessions the champion scored, newest last (a label matures ``horizon`` sessions later).
    predicted: list[pd.Timestamp] = field(default_factory=list)
    #: The first session the monitor processed: events that ended before it were seen while
    #: warming up on history, and are neither reported nor archived.
    started: pd.Timestamp | None = None


@dataclass(frozen=True)
class CycleReport:
    """What one cycle did."""

    source: str
    processed: tuple[date, ...] = ()
    skipped: str | None = None  # why the whole cycle was skipped (the source failed)
    stopped: str | None = None  # another monitor got to a session first
    set_aside: Mapping[str, str] = field(default_factory=dict)  # symbol -> reason, this cycle
    champion: str | None = None
    challenger: str | None = None
    alarms: tuple[str, ...] = ()
    proposed: tuple[str, ...] = ()
    archived: tuple[str, ...] = ()  # discovered events the archive took in this cycle
    archive_versions: tuple[str, ...] = ()  # the versions built this cycle, in order
    archive_steps: tuple[ArchiveStep, ...] = ()  # the event stages taken in (some add nothing)
    replay_admitted: int = 0
    delivered: tuple[dict[str, Any], ...] = ()
    not_run: Mapping[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def describe(self) -> str:
        if self.skipped:
            return f"{self.source}: cycle skipped: {self.skipped}"
        if not self.processed:
            return f"{self.source}: nothing new to process" + (f" ({self.stopped})" if self.stopped else "")
        span = (f"{self.processed[0]}" if len(self.processed) == 1
                else f"{self.processed[0]} to {self.processed[-1]} ({len(self.processed)} sessions)")
        parts = [f"{self.source}: processed {span}"]
        if self.champion is None:
            parts.append("no champion to score with")
        if self.alarms:
            parts.append(f"{len(self.alarms)} drift alarm(s)")
        if self.proposed:
            parts.append("rare event(s): " + ", ".join(self.proposed))
        if self.archive_steps:
            parts.append("archive grew: " + ", ".join(f"{step.name} ({step.stage} {step.session})"
                                                      for step in self.archive_steps))
        if self.set_aside:
            parts.append("set aside: " + "; ".join(f"{s} ({why})" for s, why in self.set_aside.items()))
        if self.stopped:
            parts.append(self.stopped)
        return "; ".join(parts)


# --------------------------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------------------------


def refresh_bars(loaded: LoadedConfig, settings: Settings, selection: MarketSelection, through: date | None,
                 market_source: MarketSource | None = None) -> FetchOutcome:
    """Bring the cache up to ``through`` (default: today); a refused symbol is named, not fatal.

    Raises
    ------
    MarketDataError
        When the source fails as a whole (unreachable, every call refused).
    """
    source, universe = open_selection(loaded, selection)
    outcome = fetch_market_data(loaded, settings, market_source or source, universe,
                                symbols=selection.symbols, start=selection.start, end=through,
                                allow_refused=True)
    if len(outcome.refused) == len(outcome.results) and outcome.results:
        reasons = "; ".join(f"{symbol}: {why}" for symbol, why in outcome.refused)
        raise MarketDataError(f"every symbol was refused: {reasons}")
    return outcome


def refresh_with_retries(loaded: LoadedConfig, settings: Settings, selection: MarketSelection,
                         through: date | None, *, market_source: MarketSource | None = None,
                         delays: Sequence[float] = (1.0, 5.0)) -> FetchOutcome:
    """:func:`refresh_bars`, tried again after each of ``delays`` seconds (the Prefect flow uses
    its task's retries instead)."""
    for attempt, delay in enumerate(delays, start=1):
        try:
            return refresh_bars(loaded, settings, selection, through, market_source)
        except MarketDataError as exc:
            log.warning("refresh failed (attempt %d): %s; retrying in %.1f s", attempt, exc, delay)
            time.sleep(delay)
    return refresh_bars(loaded, settings, selection, through, market_source)  # the last attempt raises


def _event_id(source: str, session: date, kind: str, key: str) -> str:
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{source}/{session}/{kind}/{key}"))


def drift_event(source: str, alarm: DriftReport) -> dict[str, Any]:
    """``stormwatch.drift.detected`` for one alarm, with a stable id."""
    session = alarm.session.date()
    return {
        "event": "stormwatch.drift.detected",
        "resource": {"prefect.resource.id": f"stormwatch.market.{source}", "prefect.resource.name": source},
        "payload": {"source": source, "session": session.isoformat(), "detector": alarm.detector,
                    "statistic": float(alarm.value), "summary": alarm.summary(items=3)},
        "id": _event_id(source, session, "drift", alarm.detector),
    }


def rare_event_event(source: str, session: date, event: ProposedEvent) -> dict[str, Any]:
    """``stormwatch.rare-event.detected`` for a newly proposed event, with a stable id."""
    return {
        "event": "stormwatch.rare-event.detected",
        "resource": {"prefect.resource.id": f"stormwatch.rare-event.{source}.{event.name}",
                     "prefect.resource.name": event.name},
        "payload": {"source": source, "name": event.name, "regime": event.regime,
                    "start": event.start.date().isoformat(), "end": event.end.date().isoformat(),
                    "session": session.isoformat(), "summary": event.describe()},
        "id": _event_id(source, session, "rare-event", event.name),
    }


@dataclass(frozen=True)
class Models:
    """The served models of this cycle, loaded and verified once."""

    champion: str | None
    challenger: str | None
    loaded: Mapping[str, Any]  # run id -> model
    champion_as_of: date | None = None


#: Models this process has read, by (file, SHA-256): a model file never changes once written,
#: so a long-running monitor (``serve()``, the demo) reads and verifies each once, not every
#: cycle (reading a 9-member ensemble takes about a second).
_READ: dict[tuple[str, str], Any] = {}


def forget_models() -> None:
    """Forget the models read so far (the next cycle reads its files again, as a new process)."""
    _READ.clear()


def load_models(settings: Settings, *, read: bool = True) -> Models:
    """The champion and challenger; their models read (and verified) only when ``read``."""
    runs = open_runs(settings)
    try:
        registry = Registry(runs.store)
        champion, challenger = registry.alias(CHAMPION), registry.alias(CHALLENGER)
        loaded = {}
        for run in (champion, challenger):
            if run is None or not read:
                continue
            record = next((m for m in runs.models(run) if m.member == "ensemble"), None)
            key = (record.path, record.sha256) if record is not None else (run, "")
            if key not in _READ or record is None:
                _READ[key] = runs.load(run)  # verified against its checksum and trusted types
            loaded[run] = _READ[key]
        as_of = runs.get(champion).as_of if champion is not None else None
    finally:
        runs.store.dispose()
    return Models(champion, challenger, loaded, as_of)


def first_session(sessions: pd.DatetimeIndex, models: Models, through: pd.Timestamp) -> pd.Timestamp:
    """Where a monitor with no state starts: after the champion's as-of session (its live period),
    or at the newest session when there is no champion or its as-of is not cached."""
    if models.champion_as_of is not None:
        after = sessions[sessions > pd.Timestamp(models.champion_as_of)]
        if len(after) and after[0] <= through:
            return after[0]
    return sessions[sessions <= through][-1]


def _proba(model: Any, frame: pd.DataFrame) -> pd.Series:
    """The model's probabilities on one session's rows, in one thread: on a few dozen rows the
    OpenMP pools of the boosters cost more to wake (seconds on a busy machine) than they save."""
    symbols = frame.index.get_level_values("symbol")
    with threadpool_limits(limits=1):
        return pd.Series(positive_class_proba(model, frame), index=symbols, dtype=float)


def build_detectors(loaded: LoadedConfig, panel: BarPanel, timeline: RegimeTimeline, start: pd.Timestamp,
                    models: Models, not_run: dict[str, str]) -> Detectors:
    """Fresh detectors for a monitor starting at ``start``: the reference is the
    ``monitors.drift.reference_sessions`` sessions before it; discovery is warmed up on them."""
    config = loaded.config
    drift = config.monitors.drift
    before = panel.truncate(panel.sessions[panel.sessions < start][-1])
    reference = newest_features(before, sessions=min(drift.reference_sessions, len(before.sessions)),
                                vix_fallback=config.market.vix_fallback, partial=True,
                                chunk_symbols=config.market.feature_chunk_symbols).frame
    days = reference.index.get_level_values("date").unique()
    monitor = DriftMonitor()
    try:
        monitor.features = FeatureDriftDetector.from_config(reference, drift)
    except ValueError as exc:
        not_run["feature"] = str(exc)
    try:
        monitor.regime = RegimeDriftDetector.from_config(timeline.regime.loc[days], drift)
    except ValueError as exc:
        not_run["regime"] = str(exc)
    detectors = Detectors(drift=monitor, discovery=RareEventDiscovery.from_config(
        config.monitors.rare_events, known=[(e.name, e.start, e.end) for e in config.memory.archive.events]),
        started=start)
    for day in days:
        detectors.discovery.update(_market_session(panel, timeline, day))
    _reference_predictions(loaded, detectors, reference, models, not_run)
    return detectors


def _reference_predictions(loaded: LoadedConfig, detectors: Detectors, reference: pd.DataFrame,
                           models: Models, not_run: dict[str, str]) -> None:
    """Prediction drift's reference: the champion's probabilities on the reference window's last
    :data:`HELD_OUT_TAIL` (the window tail its training held out as a validation set)."""
    config = loaded.config
    detectors.predicted = []
    if models.champion is None:
        detectors.drift.prediction = None
        not_run["prediction"] = "no champion yet"
        return
    days = reference.index.get_level_values("date").unique()
    tail = days[-max(int(len(days) * HELD_OUT_TAIL), 5):]
    rows = reference.loc[reference.index.get_level_values("date").isin(tail)]
    p = positive_class_proba(models.loaded[models.champion], rows)
    try:
        detectors.drift.prediction = PredictionDriftDetector.from_config(p, config.monitors.drift,
                                                                         config.market.labels.horizon)
    except ValueError as exc:
        detectors.drift.prediction = None
        not_run["prediction"] = str(exc)


def _market_session(panel: BarPanel, timeline: RegimeTimeline, day: pd.Timestamp) -> MarketSession:
    regime = timeline.regime.loc[day]
    return MarketSession(session=day, close=float(panel.proxy["close"].loc[day]),
                         vix=float(timeline.vix.loc[day]), regime=regime if isinstance(regime, str) else None,
                         rule=str(timeline.rule.loc[day]), vix_is_fallback=bool(timeline.fallback.loc[day]))


# --------------------------------------------------------------------------------------------
# The cycle
# --------------------------------------------------------------------------------------------


def process_sessions(
    loaded: LoadedConfig,
    settings: Settings,
    selection: MarketSelection,
    through: date | None = None,
    *,
    refused: Mapping[str, str] | None = None,
    flow_run_id: str = "",
    before_commit: Callable[[date], None] | None = None,
    max_sessions: int = MAX_SESSIONS_PER_CYCLE,
) -> CycleReport:
    """Process every cached session after the monitor's state, up to ``through``, each exactly
    once (see the module docstring); ``refused`` are the symbols the refresh could not bring.
    ``before_commit(session)`` runs inside each session's transaction (tests crash it there)."""
    started = time.perf_counter()
    config = loaded.config
    horizon = config.market.labels.horizon
    source, panel = cached_panel(loaded, settings, selection=replace(selection, end=through))
    sessions = panel.sessions
    last = sessions[-1] if through is None else sessions[sessions <= pd.Timestamp(through)][-1]
    store = open_store(settings)
    live = LiveLog(store)
    not_run: dict[str, str] = {}
    try:
        state = live.state(source)
        models = load_models(settings, read=False)
        if state is None:
            start: pd.Timestamp | None = first_session(sessions, models, last)
        else:
            after = sessions[sessions > pd.Timestamp(state.session)]
            start = after[0] if len(after) else None
        if start is None or start > last:
            return CycleReport(source=source, champion=models.champion, challenger=models.challenger,
                               seconds=time.perf_counter() - started)
        pending = sessions[(sessions >= start) & (sessions <= last)][:max_sessions]
        models = load_models(settings)
        panel = panel.truncate(pending[-1])
        timeline = RegimeLabeler(config.monitors.regimes, config.market.vix_fallback).label(
            panel.proxy["close"], panel.vix)
        if state is None:
            detectors = build_detectors(loaded, panel, timeline, pending[0], models, not_run)
        else:
            detectors = state.detectors
            if state.champion != models.champion:  # a new champion: its own prediction reference
                first = pending[0]
                ref = newest_features(panel.truncate(sessions[sessions < first][-1]),
                                      sessions=config.monitors.drift.reference_sessions,
                                      vix_fallback=config.market.vix_fallback, partial=True,
                                      chunk_symbols=config.market.feature_chunk_symbols).frame
                _reference_predictions(loaded, detectors, ref, models, not_run)
        extra = horizon + 1
        position = sessions.get_loc(pending[0])
        wanted = len(pending) + min(extra, position)
        # partial, as the training window: a gap costs its rows only
        features = newest_features(panel, sessions=wanted, vix_fallback=config.market.vix_fallback,
                                   partial=True, chunk_symbols=config.market.feature_chunk_symbols).frame
        by_day = dict(iter(features.groupby(level="date")))
        labels = make_labels(panel, horizon, config.market.labels.kind,  # type: ignore[arg-type]
                             config.market.labels.beta_lookback, config.market.labels.triple_barrier)
        universe = open_selection(loaded, selection)[1]
        sectors = {m.symbol: str(m.sector) for m in universe.members}
        buffer = ReplayBuffer(store, config.memory.replay)
        report = _Accumulator(source=source, champion=models.champion, challenger=models.challenger)
        previous = state.session if state is not None else None
        for day in pending:
            hook = None if before_commit is None else _bound(before_commit, day.date())
            write, admitted = _process_one(
                source, day, panel, by_day, timeline, labels, detectors, models, live, buffer, sectors,
                refused or {}, report, horizon, flow_run_id, store)
            try:
                live.commit_session(source, previous, write, before_commit=hook)
            except SessionAlreadyProcessed as exc:
                report.stopped = str(exc)
                break
            report.processed.append(day.date())
            report.replay_admitted += admitted[0] if admitted else 0
            previous = day.date()
    finally:
        store.dispose()
    grown = grow_archive(loaded, settings, source, panel)
    return CycleReport(
        source=source, processed=tuple(report.processed), stopped=report.stopped,
        set_aside=dict(report.set_aside), champion=models.champion, challenger=models.challenger,
        alarms=tuple(report.alarms), proposed=tuple(report.proposed),
        archived=tuple(dict.fromkeys(step.name for step in grown if step.built)),
        archive_versions=tuple(step.version for step in grown if step.built), archive_steps=grown,
        replay_admitted=report.replay_admitted, not_run=not_run,
        seconds=time.perf_counter() - started)


def _bound(hook: Callable[[date], None], day: date) -> Callable[[], None]:
    return lambda: hook(day)


@dataclass
class _Accumulator:
    source: str
    champion: str | None
    challenger: str | None
    processed: list[date] = field(default_factory=list)
    stopped: str | None = None
    set_aside: dict[str, str] = field(default_factory=dict)
    alarms: list[str] = field(default_factory=list)
    proposed: list[str] = field(default_factory=list)
    replay_admitted: int = 0


def _process_one(source: str, day: pd.Timestamp, panel: BarPanel, by_day: dict, timeline: RegimeTimeline,
                 labels: Any, detectors: Detectors, models: Models, live: LiveLog, buffer: ReplayBuffer,
                 sectors: Mapping[str, str], refused: Mapping[str, str], report: _Accumulator,
                 horizon: int, flow_run_id: str, store: Any) -> tuple[SessionWrite, list[int]]:
    """Everything session ``day`` writes (not yet committed)."""
    frame = by_day.get(day)
    if frame is not None:
        frame = frame.dropna(how="all")
        symbols = frame.index.get_level_values("symbol")
        keep = ~symbols.isin(list(refused))
        frame = frame[keep]
    present = set() if frame is None else set(frame.index.get_level_values("symbol"))
    for symbol, why in refused.items():
        if symbol in sectors:
            report.set_aside[symbol] = why
    for symbol in sectors:
        if symbol not in present and symbol not in refused:
            report.set_aside.setdefault(symbol, f"no bar or no features on {day.date()}")
    regime = timeline.regime.loc[day]
    regime = regime if isinstance(regime, str) else None

    predictions = []
    champion_p = None
    if frame is not None and len(frame):
        for run_id, role in ((models.champion, "champion"), (models.challenger, "challenger")):
            if run_id is None or (role == "challenger" and run_id == models.champion):
                continue
            p = _proba(models.loaded[run_id], frame)
            if role == "champion":
                champion_p = p
            predictions.append(pd.DataFrame({"symbol": p.index, "run_id": run_id, "role": role,
                                             "probability": p.to_numpy()}))
    predicted = pd.concat(predictions, ignore_index=True) if predictions else None

    # Labels that mature today: those of the predictions made `horizon` sessions ago.
    sessions = panel.sessions
    at = sessions.get_loc(day)
    made_on = sessions[at - horizon] if at >= horizon else None
    matured = None
    update = None
    admitted: list[int] = []
    extra = None
    if made_on is not None:
        earlier = live.predictions(source, since=made_on.date())
        earlier = earlier[earlier["session"] == made_on]
        y = labels.label.loc[made_on]
        if len(earlier):
            earlier = earlier[earlier["symbol"].map(y).notna()]
            truth = earlier["symbol"].map(y).to_numpy(dtype=int)
            loss = log_loss_per_row(truth, earlier["probability"].to_numpy(dtype=float))
            matured = pd.DataFrame({"session": made_on.date(), "symbol": earlier["symbol"].to_numpy(),
                                    "run_id": earlier["run_id"].to_numpy(), "label": truth, "loss": loss})
            champs = earlier[earlier["run_id"] == models.champion]
            if len(champs) and made_on in by_day:
                samples = _matured_samples(by_day[made_on], champs, labels, timeline, sectors, made_on)
                if samples is not None:
                    proba = champs.set_index("symbol")["probability"].reindex(
                        samples.features.index.get_level_values("symbol")).to_numpy()

                    def extra(session: Any, samples: Samples = samples, proba: np.ndarray = proba) -> None:
                        admission = buffer.admit(samples, proba, model_version=str(models.champion),
                                                 as_of=day.date(), horizon=horizon, session=session)
                        admitted.append(admission.admitted)
        if made_on in detectors.predicted and champion_p is not None:
            update = PredictionUpdate(day, champion_p, labels=y.dropna(), labels_of=made_on)
    if champion_p is not None and detectors.drift.prediction is not None:
        if update is None:
            update = PredictionUpdate(day, champion_p)
        detectors.predicted = [*detectors.predicted[-horizon:], day]
    detectors.drift.update(SessionInput(day, features=frame, regime=regime, prediction=update))
    alarms = list(detectors.drift.alarms)
    detectors.discovery.update(_market_session(panel, timeline, day))
    events = [drift_event(source, a) for a in alarms]
    for change in detectors.discovery.changes:
        if change.kind == "proposed" and change.event.known_as is None:
            events.append(rare_event_event(source, day.date(), change.event))
            report.proposed.append(change.event.name)
    report.alarms += [a.summary(items=2) for a in alarms]
    # Idempotent per key: recorded before the commit, equal whoever commits the session.
    record_drift_events(store, source=source, rows=drift_rows(tuple(alarms)))
    live_events = tuple(e for e in detectors.discovery.events
                        if detectors.started is None or e.end >= detectors.started)
    record_discovered_events(store, source=source, rows=event_rows(live_events))
    for event in live_events:  # the archive's milestones while a new event lasts
        if event.known_as is not None or event.closed_on is not None:
            continue
        elapsed = at - int(sessions.searchsorted(event.proposed_on))
        if (elapsed > 0 and elapsed % ARCHIVE_MILESTONE_SESSIONS == 0
                and elapsed // ARCHIVE_MILESTONE_SESSIONS <= ARCHIVE_MILESTONES):
            record_event_stage(store, source=source, name=event.name, stage=open_stage(elapsed),
                               session=day.date(), start=event.start.date(), end=event.end.date(),
                               regime=event.regime)
    summary = {"regime": regime, "scored": 0 if predicted is None else len(predicted),
               "alarms": [a.detector for a in alarms], "matured": 0 if matured is None else len(matured)}
    return SessionWrite(session=day.date(), detectors=detectors, champion=models.champion,
                        challenger=models.challenger, regime=regime, predictions=predicted, matured=matured,
                        summary=summary, events=events, flow_run_id=flow_run_id, extra=extra), admitted


def _matured_samples(frame: pd.DataFrame, champs: pd.DataFrame, labels: Any, timeline: RegimeTimeline,
                     sectors: Mapping[str, str], made_on: pd.Timestamp) -> Samples | None:
    """The champion's matured rows of ``made_on`` as replay candidates."""
    symbols = frame.index.get_level_values("symbol")
    rows = frame[symbols.isin(champs["symbol"])]
    if rows.empty:
        return None
    syms = rows.index.get_level_values("symbol")
    y = labels.label.loc[made_on].reindex(syms)
    keep = y.notna().to_numpy()
    rows, y, syms = rows[keep], y[keep], syms[keep]
    if rows.empty:
        return None
    regime = timeline.regime.loc[made_on]
    meta = pd.DataFrame({
        "regime": regime if isinstance(regime, str) else "normal",
        "sector": [sectors.get(s, "Unknown") for s in syms],
        "forward_return": labels.forward_return.loc[made_on].reindex(syms).to_numpy(dtype=float),
        "label_end": labels.label_end.loc[made_on],
        "event": "live",
    }, index=rows.index)
    return Samples(features=rows, target=pd.Series(y.to_numpy(dtype=int), index=rows.index, name="label"),
                   rows=meta)


def grow_archive(loaded: LoadedConfig, settings: Settings, source: str,
                 panel: BarPanel) -> tuple[ArchiveStep, ...]:
    """Grow the archive with every new discovered event, when it is detected, at its milestones
    while it lasts and when it closes (see :func:`flows.archive.with_discoveries`), by
    ``panel``'s last session; returns the stages taken in just now, built or not (a stage
    without a labelled row adds nothing), and an empty tuple when none was waiting."""
    if all(s.archive_version is not None for s in discovered_stages(settings, source, panel.sessions[-1])):
        return ()
    base = build_archive(loaded, settings, source, panel=panel).version
    grown = with_discoveries(loaded, settings, source, base, panel)
    return tuple(step for step in grown.steps if step.new or step.built)


def deliver_events(settings: Settings, source: str,
                   emit: Callable[[dict[str, Any]], None]) -> list[dict[str, Any]]:
    """Emit every stored, undelivered event of ``source`` (oldest session first) and mark each
    session's delivered once all of its events went out. Returns what was emitted."""
    store = open_store(settings)
    sent: list[dict[str, Any]] = []
    try:
        live = LiveLog(store)
        for record_id, events in live.undelivered(source):
            for event in events:
                emit(event)
                sent.append(event)
            live.mark_delivered(record_id)
    finally:
        store.dispose()
    return sent


def run_cycle(
    loaded: LoadedConfig,
    settings: Settings,
    selection: MarketSelection,
    through: date | None = None,
    *,
    market_source: MarketSource | None = None,
    emit: Callable[[dict[str, Any]], None] | None = None,
    retry_delays: Sequence[float] = (1.0, 5.0),
    before_commit: Callable[[date], None] | None = None,
) -> CycleReport:
    """One whole cycle without Prefect: refresh (with retries; a source that keeps failing skips
    the cycle, writing nothing), process the pending sessions, deliver their events to ``emit``."""
    source_name = selection.source or loaded.config.market.sources.default
    try:
        fetched = refresh_with_retries(loaded, settings, selection, through, market_source=market_source,
                                       delays=retry_delays)
    except MarketDataError as exc:
        log.warning("monitor cycle skipped: %s", exc)
        return CycleReport(source=source_name, skipped=f"the source failed after {len(retry_delays) + 1} "
                                                       f"attempts: {exc}")
    report = process_sessions(loaded, settings, selection, through, refused=dict(fetched.refused),
                              before_commit=before_commit)
    if emit is not None:
        report = replace(report, delivered=tuple(deliver_events(settings, report.source, emit)))
    return report


__all__ = [
    "CycleReport", "Detectors", "deliver_events", "drift_event", "forget_models", "grow_archive",
    "process_sessions", "rare_event_event", "refresh_bars", "refresh_with_retries", "run_cycle",
]
