"""The demo's story so far: fetch the simulated universe and summarise what the market went
through. Later issues extend it into the whole train-guard-promote story."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from flows.archive import build_archive
from flows.config import LoadedConfig, Settings
from flows.data import FetchOutcome, fetch_market_data
from flows.regimes import regime_timeline
from market.cache import BarCache
from market.panel import load_panel
from market.sources.simulated import SimulatedSource
from market.summary import WindowStats, window_stats
from market.vocabulary import REGIMES
from memory.archive import ArchiveBuild


@dataclass(frozen=True)
class DemoSummary:
    fetch: FetchOutcome
    symbols_per_sector: dict[str, int]
    sessions: int
    first_session: date
    last_session: date
    regime_shares: dict[str, float]  # the simulator's true regime
    labelled_shares: dict[str, float]  # what the causal regime labeler says
    labeller_recall: dict[str, float]  # share of each true regime's sessions labelled as such
    regime_plot: Path | None
    events: list[tuple[str, str, WindowStats]]  # (event, configured regime, stats)
    archive: ArchiveBuild


def run_demo(
    loaded: LoadedConfig,
    settings: Settings,
    *,
    today: date | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> DemoSummary:
    """Fetch the simulated universe into the cache, label its regimes, build the archive, and
    summarise what the market went through."""
    config = loaded.config
    source = SimulatedSource(
        config.market.universe,
        config.market.sources.simulated,
        horizon=config.market.labels.horizon,
        today=today,
    )
    end = today or date.today()
    fetch = fetch_market_data(
        loaded, settings, source, config.market.universe, end=end, on_progress=on_progress
    )
    # The cached bars, loaded once for the summary, the regimes and the archive.
    panel = load_panel(BarCache(settings.cache_dir, source.info.name), config.market.universe)
    proxy = panel.proxy["close"]
    simulated_regimes = source.market().regimes.loc[proxy.index]
    counts = Counter(simulated_regimes)
    regimes = regime_timeline(loaded, settings, source.info.name, panel=panel)
    labelled = regimes.timeline.regime.reindex(proxy.index)
    events = config.memory.archive.events
    stats = window_stats(proxy, panel.vix, [(e.name, e.start, e.end) for e in events])
    archive = build_archive(loaded, settings, source.info.name, panel=panel)
    return DemoSummary(
        fetch=fetch,
        symbols_per_sector={
            sector.value: len(symbols)
            for sector, symbols in config.market.universe.by_sector().items()
        },
        sessions=len(proxy),
        first_session=proxy.index[0].date(),
        last_session=proxy.index[-1].date(),
        regime_shares={r.value: counts.get(r.value, 0) / len(proxy) for r in REGIMES},
        labelled_shares={r.value: float((labelled == r.value).mean()) for r in REGIMES},
        labeller_recall={
            r.value: float((labelled[simulated_regimes == r.value] == r.value).mean())
            if counts.get(r.value) else float("nan")
            for r in REGIMES
        },
        regime_plot=regimes.plot,
        events=[(e.name, e.regime.value, s) for e, s in zip(events, stats, strict=True)],
        archive=archive,
    )


# --------------------------------------------------------------------------------------------
# The whole story: train, watch the live period, retrain on the storm, gate
# --------------------------------------------------------------------------------------------

#: Symbols per sector in the story's universe: two retrainings of the whole zoo fit in minutes.
STORY_SYMBOLS_PER_SECTOR = 1
#: Sessions per monitor cycle in the story (a week of the live period per cycle).
STORY_SESSIONS_PER_CYCLE = 5
#: A detector's alarms less than this many days apart are one spell on the story's timeline.
DRIFT_SPELL_DAYS = 21


@dataclass(frozen=True)
class StoryStep:
    """One line of the demo's timeline."""

    session: date
    what: str
    detail: str


@dataclass(frozen=True)
class Story:
    config_path: Path
    symbols: tuple[str, ...]
    timeline: tuple[StoryStep, ...]
    runs: tuple[str, ...]  # retraining runs, in order
    report: Path | None
    in_process: bool  # events delivered to retraining in this process (no Prefect server)
    seconds: float


def story_config(loaded: LoadedConfig, settings: Settings, today: date,
                 per_sector: int = STORY_SYMBOLS_PER_SECTOR) -> tuple[Path, tuple[str, ...]]:
    """The story's configuration: the user's, with today pinned and a smaller universe
    (``per_sector`` symbols of each sector), written under ``STORMWATCH_HOME/demo``."""
    import yaml

    raw = loaded.config.model_dump(mode="json", by_alias=True)
    raw["market"]["sources"]["simulated"]["end"] = today.isoformat()
    counts: Counter[str] = Counter()
    members = []
    for member in raw["market"]["universe"]["members"]:
        if counts[member["sector"]] < per_sector:
            counts[member["sector"]] += 1
            members.append(member)
    raw["market"]["universe"]["members"] = members
    path = settings.home / "demo" / "stormwatch.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# Written by `stormwatch demo`: the configuration of its story.\n"
                    + yaml.safe_dump(raw, sort_keys=False))
    return path, tuple(m["symbol"] for m in members)


def run_story(
    loaded: LoadedConfig,
    settings: Settings,
    *,
    today: date,
    per_sector: int = STORY_SYMBOLS_PER_SECTOR,
    on_step: Callable[[StoryStep], None] | None = None,
) -> Story:
    """Train the first model as of ``today``, then walk the simulated live period a week per
    monitor cycle; the first rare event the monitor raises starts a retraining as of its session,
    whose gate decides. Prefect's ephemeral mode runs the flows when no server is configured, and
    the events then reach the retraining in this process; with ``PREFECT_API_URL`` set they go
    to that server, whose deployment trigger starts the retraining."""
    import os
    import time

    from flows.monitor import monitor
    from flows.retrain import run_retrain
    from market.calendar import nyse_sessions

    started = time.perf_counter()
    path, symbols = story_config(loaded, settings, today, per_sector)
    in_process = not os.environ.get("PREFECT_API_URL")
    timeline: list[StoryStep] = []
    runs: list[str] = []

    def step(session: date, what: str, detail: str) -> None:
        timeline.append(StoryStep(session, what, detail))
        if on_step is not None:
            on_step(timeline[-1])

    grown: dict[str, str] = {}  # archive version -> what the monitor grew it with

    def retrain(as_of: date, reason: str) -> Path | None:
        outcome = run_retrain(config_path=str(path), as_of=as_of, reason=reason)
        runs.append(outcome.run_id)
        gate = outcome.gate
        verdict = "promoted to champion" if gate.promoted else "refused by the gate: " + "; ".join(
            gate.decision.reasons[:2])
        crash = outcome.accuracy["ensemble"].get("crash", float("nan"))
        archive = outcome.archive_version + (f" (with {grown[outcome.archive_version]})"
                                             if outcome.archive_version in grown else "")
        step(outcome.as_of, "retrained", f"run {outcome.run_id} ({reason}): {outcome.training_rows:,} rows, "
                                         f"archive {archive}, crash accuracy {crash:.3f}; {verdict}")
        return outcome.report

    report = retrain(today, "the first model")
    live = nyse_sessions(today + timedelta(days=1), today + timedelta(days=200))
    live = live[:loaded.config.market.sources.simulated.live_sessions]
    received: list[dict] = []
    triggered = False
    spells: dict[str, date] = {}  # each detector's latest alarm
    for first in range(0, len(live), STORY_SESSIONS_PER_CYCLE):
        through = live[min(first + STORY_SESSIONS_PER_CYCLE, len(live)) - 1].date()
        cycle = monitor(config_path=str(path), through=through, sink=received.append if in_process else None)
        seen: list[tuple[date, int, str, str]] = []  # (session, order, what, detail) of this cycle
        drift: dict[date, set[str]] = {}
        names: dict[date, str] = {}
        for event in cycle.delivered:
            session = date.fromisoformat(event["payload"]["session"])
            if event["event"] == "stormwatch.drift.detected":
                drift.setdefault(session, set()).add(event["payload"]["detector"])
            elif event["event"] == "stormwatch.rare-event.detected":
                seen.append((session, 1, "rare event", event["payload"]["summary"]))
                names.setdefault(session, event["payload"]["name"])
        for day, kinds in sorted(drift.items()):  # a detector's alarms are one spell until it is quiet
            fresh = sorted(k for k in kinds if (day - spells.get(k, date.min)).days > DRIFT_SPELL_DAYS)
            spells.update(dict.fromkeys(kinds, day))
            if fresh:
                seen.append((day, 0, "drift", f"{', '.join(fresh)} drift"))
        for grew in cycle.archive_steps:  # grown by the cycle before its events went out
            if grew.samples:
                grown[grew.version] = f"{grew.name} to {grew.end}, {grew.samples:,} samples"
            seen.append((grew.session, 2, "archive grew" if grew.built else "archive", grew.describe()))
        pending: tuple[date, str] | None = None  # the retraining a rare event starts, after its growth
        for session, _, what, detail in sorted(seen):
            if pending is not None and session > pending[0]:
                report = retrain(*pending)
                pending = None
            step(session, what, detail)
            if what == "rare event" and in_process and not triggered:
                triggered = True
                pending = (session, f"stormwatch.rare-event.detected: {names[session]}")
        if pending is not None:
            report = retrain(*pending)
    for event in _still_open(settings):
        detail = (f"{event.name} ({event.sessions} sessions so far) had not closed by the live period's end: "
                  "the archive holds its window so far, and takes its whole window once it closes")
        step(live[-1].date(), "still open", detail)
    return Story(config_path=path, symbols=symbols, timeline=tuple(timeline), runs=tuple(runs), report=report,
                 in_process=in_process, seconds=time.perf_counter() - started)


def _still_open(settings: Settings) -> list:  # noqa: ANN202 - the store's records
    """New rare events the monitor is still watching (not closed, not a known archive event)."""
    from flows.data import open_store
    from memory.watch_log import discovered_events

    store = open_store(settings)
    try:
        events = discovered_events(store, source="simulated")
        return [e for e in events if e.status == "open" and e.known_as is None]
    finally:
        store.dispose()
