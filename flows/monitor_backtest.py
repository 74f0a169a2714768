"""Would Stormwatch have seen it coming? Replaying the monitor session by session over cached
history: the plain-Python core behind ``stormwatch monitor backtest`` (no Prefect).

The training reference is the window of ``monitors.drift.reference_sessions`` sessions before
``start``. From it come the feature reference, the regime mix and a reference model (a scaled
logistic regression on the 180 features, trained on labels that matured before ``start``),
whose probabilities on every later session feed prediction drift; its labels are handed to the
detector ``horizon`` sessions after each prediction, as they would mature live. Then every
session from ``start`` to ``end`` is one monitor cycle: :class:`monitors.drift.DriftMonitor`
and :class:`monitors.rare_events.RareEventDiscovery` are updated with that session only.

Features and regime labels are computed once over the whole panel rather than per session:
both are causal (the value at a session reads bars up to it; tested), so this equals what
:func:`market.features.newest_features` gives a live cycle, to 1e-9, at a fraction of the cost.
Discovery is warmed up on the reference window, as a monitor that was already running.

:func:`monitor_backtest` records what the replay raised (drift events, discovered events) in
the store, adds every closed new event to the archive as a new version built from the bars
known on the session it closed, and draws the statistics over time. Replaying the same period
again records nothing new and adds no version.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from flows.archive import build_archive, cached_panel, latest_archive_version, open_archive
from flows.config import LoadedConfig, Settings, StormwatchConfig
from flows.data import MarketSelection, fetch_market_data, open_selection, open_store
from market.features import MAX_LOOKBACK, compute_features
from market.figures import new_figure, save_png
from market.labels import make_labels
from market.panel import BarPanel
from memory.archive import ArchiveNotBuilt
from memory.config import ArchiveEvent
from memory.watch_log import (
    DiscoveredEventRow,
    DriftEventRow,
    mark_archived,
    record_discovered_events,
    record_drift_events,
)
from monitors.drift import (
    DriftMonitor,
    DriftReport,
    FeatureDriftDetector,
    PredictionDriftDetector,
    PredictionUpdate,
    RegimeDriftDetector,
    SessionInput,
)
from monitors.rare_events import EventChange, MarketSession, ProposedEvent, RareEventDiscovery
from monitors.regimes import RegimeLabeler

#: Fewest matured reference labels the reference model is trained on.
MIN_TRAINING_ROWS = 200


@dataclass(frozen=True, eq=False)
class Replay:
    """What the monitor would have raised, session by session.

    ``statistics`` has one row per replayed session: the market proxy's close, the VIX used,
    the regime, the share of features drifted, the regime mix's total variation distance, the
    predictions' Jensen-Shannon distance and matured error rate, whether a volatility change
    point fired, and which detectors alarmed. ``alarms`` are the drift reports that drifted,
    ``changes`` every event change with its session, ``events`` the events' final states.
    ``not_run`` names each detector that could not run and why.
    """

    start: pd.Timestamp
    end: pd.Timestamp
    reference: tuple[pd.Timestamp, pd.Timestamp]
    statistics: pd.DataFrame
    alarms: tuple[DriftReport, ...]
    changes: tuple[tuple[pd.Timestamp, EventChange], ...]
    events: tuple[ProposedEvent, ...]
    not_run: dict[str, str] = field(default_factory=dict)
    windows: dict[str, int] = field(default_factory=dict)

    @property
    def new_events(self) -> tuple[ProposedEvent, ...]:
        return tuple(e for e in self.events if e.known_as is None and e.end >= self.start)

    def timeline(self) -> pd.DataFrame:
        """Detections in time order: events proposed, found known and closed (not each session
        an event extends), and drift alarms grouped into spells: alarms of one detector at most
        its window plus 10 sessions apart (a detector resets after an alarm and needs its window
        again before the next)."""
        rows = [{"session": session, "what": f"event {change.kind}", "detail": change.event.describe()}
                for session, change in self.changes if change.kind != "extended"]
        sessions = self.statistics.index
        for detector in ("feature", "regime", "prediction"):
            mine = [a for a in self.alarms if a.detector == detector]
            spell: list[DriftReport] = []
            for alarm in [*mine, None]:
                gap = self.windows.get(detector, 0) + 10
                if alarm is not None and spell and (sessions.get_loc(alarm.session)
                                                    - sessions.get_loc(spell[-1].session) <= gap):
                    spell.append(alarm)
                    continue
                if spell:
                    first, last = spell[0], spell[-1]
                    span = "" if len(spell) == 1 else f" (until {last.session.date()}, {len(spell)} alarms)"
                    rows.append({"session": first.session, "what": f"{detector} drift",
                                 "detail": first.summary(items=2) + span})
                spell = [alarm] if alarm is not None else []
        frame = pd.DataFrame(rows, columns=["session", "what", "detail"])
        return frame.sort_values("session", kind="stable").reset_index(drop=True)


def _reference_model(features: pd.DataFrame, labels: pd.Series):  # noqa: ANN202 - a fitted Pipeline
    """A plain reference model for prediction drift (until the model zoo serves one)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=300))
    return model.fit(features.to_numpy(dtype="float64"), labels.to_numpy(dtype=int))


def replay_monitor(
    panel: BarPanel,
    config: StormwatchConfig,
    start: date | pd.Timestamp,
    end: date | pd.Timestamp | None = None,
    *,
    model: bool = True,
    on_session: Callable[[pd.Timestamp], None] | None = None,
) -> Replay:
    """Replay the drift detectors and rare-event discovery over ``panel``'s sessions in
    ``[start, end]``, the window before ``start`` as the training reference.

    Raises
    ------
    ValueError
        If no session of the panel lies in ``[start, end]``, or none before ``start``.
    """
    sessions = panel.sessions
    first_day, last_day = pd.Timestamp(start), pd.Timestamp(end) if end is not None else sessions[-1]
    replayed = sessions[(sessions >= first_day) & (sessions <= last_day)]
    if replayed.empty:
        raise ValueError(f"no cached session between {first_day.date()} and {last_day.date()} "
                         f"(the panel holds {sessions[0].date()} to {sessions[-1].date()})")
    begin = sessions.get_loc(replayed[0])
    if begin == 0:
        raise ValueError(f"nothing before {replayed[0].date()} to serve as the training reference: "
                         f"start later than the first cached session")
    drift, rare, labels_cfg = config.monitors.drift, config.monitors.rare_events, config.market.labels
    reference = sessions[max(0, begin - drift.reference_sessions):begin]
    not_run: dict[str, str] = {}

    fallback = config.market.vix_fallback
    timeline = RegimeLabeler(config.monitors.regimes, fallback).label(panel.proxy["close"], panel.vix)
    first = max(0, begin - drift.reference_sessions)
    features = compute_features(panel, sessions[first:begin + len(replayed)], vix_fallback=fallback,
                                chunk_symbols=config.market.feature_chunk_symbols)
    feature_frame = features.frame
    dates = feature_frame.index.get_level_values("date")
    in_reference = (dates >= reference[0]) & (dates <= reference[-1])

    monitor = DriftMonitor()
    try:
        monitor.features = FeatureDriftDetector.from_config(feature_frame.loc[in_reference], drift)
    except ValueError as exc:
        not_run["feature"] = f"{exc} (reference {reference[0].date()} to {reference[-1].date()})"
    try:
        monitor.regime = RegimeDriftDetector.from_config(timeline.regime.loc[reference], drift)
    except ValueError as exc:
        not_run["regime"] = str(exc)

    probabilities = None
    label_frame = None
    if not model:
        not_run["prediction"] = "no model asked for"
    else:
        made = make_labels(panel, labels_cfg.horizon, labels_cfg.kind, labels_cfg.beta_lookback,  # type: ignore[arg-type]
                           labels_cfg.triple_barrier)
        label_frame = made.label
        rows = feature_frame.loc[in_reference]
        row_dates = rows.index.get_level_values("date")
        matured = made.label_end.reindex(row_dates).to_numpy() < np.datetime64(replayed[0])
        y = pd.Series(made.label.to_numpy()[made.label.index.get_indexer(row_dates),
                                            made.label.columns.get_indexer(rows.index.get_level_values("symbol"))],
                      index=rows.index)
        train = matured & y.notna().to_numpy()
        if train.sum() < MIN_TRAINING_ROWS or y[train].nunique() < 2:
            not_run["prediction"] = (f"the reference has {int(train.sum())} matured labels, the reference "
                                     f"model needs {MIN_TRAINING_ROWS}")
        else:
            # Fitted on the reference's first four fifths; its probabilities on the last fifth (out of
            # sample, as live ones are) are the reference of prediction drift.
            train_dates = row_dates[train]
            cut = train_dates.unique().sort_values()[int(0.8 * train_dates.nunique())]
            early = train & (row_dates < cut)
            late = train & (row_dates >= cut)
            fitted = _reference_model(rows.loc[early], y[early])
            reference_p = fitted.predict_proba(rows.loc[late].to_numpy(dtype="float64"))[:, 1]
            monitor.prediction = PredictionDriftDetector.from_config(reference_p, drift, labels_cfg.horizon)
            live = feature_frame.loc[~in_reference]
            probabilities = pd.Series(fitted.predict_proba(live.to_numpy(dtype="float64"))[:, 1],
                                      index=live.index) if len(live) else None

    discovery = RareEventDiscovery.from_config(
        rare, known=[(e.name, e.start, e.end) for e in config.memory.archive.events])

    def market_session(day: pd.Timestamp) -> MarketSession:
        return MarketSession(
            session=day, close=float(panel.proxy["close"].loc[day]), vix=float(timeline.vix.loc[day]),
            regime=timeline.regime.loc[day] if isinstance(timeline.regime.loc[day], str) else None,
            rule=str(timeline.rule.loc[day]), vix_is_fallback=bool(timeline.fallback.loc[day]))

    for day in reference:
        discovery.update(market_session(day))

    by_day = dict(iter(feature_frame.loc[~in_reference].groupby(level="date")))
    p_by_day = ({day: p.droplevel("date") for day, p in probabilities.groupby(level="date")}
                if probabilities is not None else {})
    horizon = labels_cfg.horizon
    alarms: list[DriftReport] = []
    changes: list[tuple[pd.Timestamp, EventChange]] = []
    stats_rows = []
    predicted_days: list[pd.Timestamp] = []
    for day in replayed:
        prediction = None
        if monitor.prediction is not None and day in p_by_day:
            labels = None
            if len(predicted_days) >= horizon and label_frame is not None:
                made_on = predicted_days[-horizon]
                labels = label_frame.loc[made_on].dropna()
            prediction = PredictionUpdate(day, p_by_day[day], labels,
                                          predicted_days[-horizon] if labels is not None else None)
            predicted_days.append(day)
        regime = timeline.regime.loc[day]
        regime = regime if isinstance(regime, str) else None
        monitor.update(SessionInput(day, features=by_day.get(day), regime=regime, prediction=prediction))
        alarms += monitor.alarms
        discovery.update(market_session(day))
        changes += [(day, change) for change in discovery.changes]
        latest = monitor.latest
        stats_rows.append({
            "session": day, "close": float(panel.proxy["close"].loc[day]),
            "vix": float(timeline.vix.loc[day]), "regime": regime,
            "feature_share": _value(latest.get("feature"), day),
            "regime_tvd": _value(latest.get("regime"), day),
            "js_distance": _extra(latest.get("prediction"), day, "js_distance"),
            "error_rate": _extra(latest.get("prediction"), day, "error_rate"),
            "change_point": discovery.change_point,
            "alarms": ",".join(a.detector for a in monitor.alarms),
        })
        if on_session is not None:
            on_session(day)
    statistics = pd.DataFrame(stats_rows).set_index("session")
    return Replay(start=replayed[0], end=replayed[-1], reference=(reference[0], reference[-1]),
                  statistics=statistics, alarms=tuple(alarms), changes=tuple(changes),
                  events=discovery.events, not_run=not_run,
                  windows={"feature": drift.window_sessions, "regime": drift.regime_window_sessions,
                           "prediction": drift.prediction_window_sessions})


def _value(report: DriftReport | None, day: pd.Timestamp) -> float:
    return report.value if report is not None and report.session == day else float("nan")


def _extra(report: DriftReport | None, day: pd.Timestamp, key: str) -> float:
    if report is None or report.session != day:
        return float("nan")
    return report.extra.get(key, float("nan"))


@dataclass(frozen=True, eq=False)
class MonitorBacktest:
    """A replay and what was recorded of it: new drift events, new or changed discovered events
    in the store, and the archive versions that now hold the closed new events."""

    source: str
    replay: Replay
    drift_events_recorded: int = 0
    events_recorded: int = 0
    archive_versions: tuple[str, ...] = ()
    archived: tuple[str, ...] = ()
    plot: Path | None = None


def drift_rows(alarms: tuple[DriftReport, ...]) -> list[DriftEventRow]:
    """The store rows of drift reports."""
    return [DriftEventRow(
        detector=a.detector, session=a.session.date(), since=a.since.date() if a.since is not None else None,
        measure=a.measure, value=a.value, threshold=a.threshold,
        drifted=tuple({"name": i.name, "measure": i.measure, "value": i.value, "threshold": i.threshold,
                       "since": i.since.date().isoformat()} for i in a.items),
        summary=a.summary(items=5)) for a in alarms]


def event_rows(events: tuple[ProposedEvent, ...]) -> list[DiscoveredEventRow]:
    """The store rows of discovered events."""
    return [DiscoveredEventRow(
        name=e.name, regime=e.regime, start=e.start.date(), end=e.end.date(), sessions=e.sessions,
        proposed_on=e.proposed_on.date(), closed_on=e.closed_on.date() if e.closed_on is not None else None,
        status=e.status, known_as=e.known_as, drawdown=e.drawdown, peak_vix=e.peak_vix,
        evidence=tuple(x.describe() for x in e.evidence)) for e in events]


def monitor_backtest(
    loaded: LoadedConfig,
    settings: Settings,
    selection: MarketSelection,
    *,
    model: bool = True,
    record: bool = True,
    plot: bool = True,
    on_session: Callable[[pd.Timestamp], None] | None = None,
    on_fetch: Callable[[str], None] | None = None,
) -> MonitorBacktest:
    """Replay the monitor over the cached history of ``selection`` (fetching first if needed)
    from ``selection.start`` to ``selection.end``, record what it raised, grow the archive with
    the closed new events and draw ``reports/monitor-backtest-<source>.png``."""
    config = loaded.config
    start = selection.start or config.market.history_start
    # The training reference before --start and the features' lookback before it, in calendar days.
    sessions_before = config.monitors.drift.reference_sessions + MAX_LOOKBACK
    history_from = start - timedelta(days=int(sessions_before * 1.45) + 10)
    whole = replace(selection, start=history_from)
    source, panel = cached_panel(loaded, settings, on_fetch=on_fetch, selection=whole)
    if panel.sessions[0] > pd.Timestamp(history_from) + pd.Timedelta(days=10):
        # The cache starts later than the reference needs: bring the earlier history in, if any.
        market_source, universe = open_selection(loaded, whole)
        fetch_market_data(loaded, settings, market_source, universe, start=history_from, end=selection.end,
                          on_progress=on_fetch)
        source, panel = cached_panel(loaded, settings, on_fetch=on_fetch, selection=whole)
    replay = replay_monitor(panel, config, start, selection.end, model=model, on_session=on_session)
    outcome = MonitorBacktest(source=source, replay=replay)
    if record:
        outcome = _record(loaded, settings, source, panel, replay)
    if plot:
        windows = [(e.name, e.start, e.end) for e in config.memory.archive.events]
        path = plot_backtest(replay, windows, config.monitors.drift.drift_share,
                             settings.reports_dir / f"monitor-backtest-{source}.png",
                             title=f"Stormwatch monitor replayed on the {source} market")
        outcome = replace(outcome, plot=path)
    return outcome


def _record(loaded: LoadedConfig, settings: Settings, source: str, panel: BarPanel,
            replay: Replay) -> MonitorBacktest:
    config = loaded.config
    store = open_store(settings)
    try:
        drifts = record_drift_events(store, source=source, rows=drift_rows(replay.alarms))
        changed = record_discovered_events(store, source=source, rows=event_rows(replay.events))
    finally:
        store.dispose()
    closed = [e for e in replay.new_events if e.closed_on is not None]
    versions: list[str] = []
    archived: list[str] = []
    if closed:
        archive = open_archive(settings)
        try:
            try:
                latest_archive_version(archive, source)
            except ArchiveNotBuilt:  # grow from the configured events, built from the whole cache
                build_archive(loaded, settings, source)
            weight = config.monitors.rare_events.archive_weight
            for event in sorted(closed, key=lambda e: e.closed_on):  # type: ignore[arg-type, return-value]
                growth = archive.add_events(
                    [ArchiveEvent(name=event.name, start=event.start.date(), end=event.end.date(),
                                  regime=event.regime, weight=weight)],  # type: ignore[arg-type]
                    panel.truncate(event.closed_on), config.market.labels, source,  # type: ignore[arg-type]
                    vix_fallback=config.market.vix_fallback,
                    chunk_symbols=config.market.feature_chunk_symbols)
                if growth.built:
                    versions.append(growth.version)
                if event.name in growth.added:  # not when no symbol had bars in its window
                    mark_archived(archive.store, source=source, names=[event.name], version=growth.version)
                    archived.append(event.name)
        finally:
            archive.store.dispose()
    return MonitorBacktest(source=source, replay=replay, drift_events_recorded=drifts,
                           events_recorded=changed, archive_versions=tuple(versions),
                           archived=tuple(archived))


def plot_backtest(
    replay: Replay,
    windows: list[tuple[str, date, date]],
    drift_share: float,
    path: Path,
    title: str = "Monitor backtest",
) -> Path:
    """Draw the replay: the market proxy with the proposed events and the configured archive
    windows, the share of features drifted, the regime and prediction statistics, and the VIX
    with its change points; alarms are marked. Written as a PNG to ``path``."""

    s = replay.statistics
    x = s.index
    figure = new_figure(15, 10)
    price, features, others, vix = figure.subplots(4, 1, sharex=True, height_ratios=(2.2, 1, 1, 1))
    price.plot(x, s["close"], color="#222222", linewidth=0.9)
    price.set_yscale("log")
    price.set_ylabel("market proxy (log)")
    price.set_title(title)
    for number, (name, first, last) in enumerate(windows):
        a, b = pd.Timestamp(first), pd.Timestamp(last)
        if b < x[0] or a > x[-1]:
            continue
        for axis in (price, features, others, vix):
            axis.axvspan(a, b, color="#777777", alpha=0.15, linewidth=0)
        price.text(a, 0.98 - 0.06 * (number % 3), name, transform=price.get_xaxis_transform(), fontsize=7,
                   va="top")
    for event in replay.events:
        if event.end < x[0]:
            continue
        colour = "#e67e22" if event.known_as else "#c0392b"
        price.axvspan(max(event.start, x[0]), event.end, ymin=0.0, ymax=0.06, color=colour, linewidth=0)
    price.plot([], [], color="#c0392b", linewidth=6, label="proposed new event")
    price.plot([], [], color="#e67e22", linewidth=6, label="proposed, known archive event")
    price.plot([], [], color="#777777", alpha=0.3, linewidth=6, label="configured archive window")
    price.legend(loc="upper left", fontsize=8)

    features.plot(x, s["feature_share"], color="#3b6ea8", linewidth=0.8, label="share of features drifted")
    features.axhline(drift_share, color="#888888", linestyle=":", linewidth=0.8)
    _mark(features, s, "feature", "feature_share")
    features.set_ylabel("feature drift")
    features.set_ylim(0, 1)
    for axis, names in ((features, ("feature",)), (others, ("regime", "prediction"))):
        reasons = [f"{name} drift not run: {replay.not_run[name][:110]}"
                   for name in names if name in replay.not_run]
        if reasons:
            axis.text(0.5, 0.5, "\n".join(reasons), transform=axis.transAxes, ha="center", va="center",
                      fontsize=8, color="#555555")
    features.legend(loc="upper left", fontsize=8)

    others.plot(x, s["regime_tvd"], color="#8e44ad", linewidth=0.8, label="regime mix TVD")
    others.plot(x, s["js_distance"], color="#16a085", linewidth=0.8, label="predictions JS distance")
    others.plot(x, s["error_rate"], color="#7f8c8d", linewidth=0.8, label="matured error rate")
    _mark(others, s, "regime", "regime_tvd")
    _mark(others, s, "prediction", "js_distance")
    others.set_ylim(0, 1)
    others.set_ylabel("regime, predictions")
    others.legend(loc="upper left", fontsize=8)

    vix.plot(x, s["vix"], color="#d35400", linewidth=0.8, label="VIX (or fallback)")
    points = s.index[s["change_point"].to_numpy(dtype=bool)]
    vix.scatter(points, s.loc[points, "vix"], color="#c0392b", s=14, zorder=3,
                label="volatility change point")
    vix.set_ylabel("VIX")
    vix.legend(loc="upper left", fontsize=8)

    return save_png(figure, path)


def _mark(axis, statistics: pd.DataFrame, detector: str, column: str) -> None:  # noqa: ANN001 - an Axes
    alarmed = statistics.index[statistics["alarms"].str.contains(detector)]
    if len(alarmed):
        axis.scatter(alarmed, statistics.loc[alarmed, column].fillna(0.0), s=10, color="#c0392b", zorder=3)
