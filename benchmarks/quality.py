"""Model quality against the simulator's oracle: does hybrid memory keep the served model right
through storms a rolling window never saw? Multi-seed evidence, with every date pinned.

``python -m benchmarks.quality --seeds N`` (default 10; the committed run has 20, ``make bench``
runs 3 and says so). ``--jobs`` seeds run side by side, each in its own process (default: 2, or
1 on a one-core machine).

Each seed is a different simulated market (``market.sources.simulated`` with seed
``BASE_SEED + k``) on a smaller universe than the default (``PER_SECTOR`` names per sector), so
that twenty seeds, two at a time, fit in an hour on two cores. Nothing is built by hand: every training set comes
from the product's own steps (``flows.training``: ``window_samples``, ``label_regimes`` /
``with_regimes``, ``archive_samples`` (the real archive, built into a temporary home),
``replay_samples`` (the real buffer, filled by an earlier retrain), ``prepare_from_parts``,
``fit_member``, ``validate``), switched by the ablation flags of ``models.training``. Before any of
them, every part (window, archive, replay) is purged against the test set through
``models.validation.purge_training``.

Test sets (never used to choose anything: design choices are compared on other markets, the
development seeds of ``--development``, and on the retraining's own purged validation sets):

* **live**: the simulated storm after the pinned today (``TODAY``), scored on the sessions after
  it; the training window ends at today, so its labels end at today at the latest;
* **each crash and recovery event of the archive, held out in turn** (leave one event out): the
  event's rows are the test set, and every training row whose label window meets the event's
  span is purged, with an embargo of ``config.models.validation.embargo_sessions`` before it
  and ``EMBARGO_AFTER`` sessions after it (rows after a held-out crash carry its returns in
  their 20- to 312-session feature windows; 312 is the longest lookback, so no training
  feature reads a held-out bar).

Per test set and regime (the causal labeler's, and the simulator's true regime): the oracle's
accuracy, window only, each ablation step with one member (``ABLATION_MEMBER``), the hybrid
with archive rows regimed by the labeler instead of their event (issue 13, point 3), every zoo
member on the hybrid set, the window zoo's ensemble, the hybrid zoo's on every row, and the
served model (the hybrid zoo with calm rows served by the window zoo, as a retrain serves it): mean and
standard deviation over seeds, the paired difference to window only with a 95% interval (t),
and the share of the achievable edge ``(accuracy - 0.5) / (oracle - 0.5)``. The run writes
``benchmarks/results/quality.json`` and ``quality-edge.png`` (a run of fewer than ten seeds:
``quality-<N>-seeds.json`` and ``.png``, so it never overwrites the full run).
"""

from __future__ import annotations

import os

# Threads that spin while they wait are ruinous on a shared machine: at a load of 12 on 2 cores
# one LightGBM fit took 226 s with OpenMP's default policy and 11 s waiting passively, and an MLP
# fit 92 s on two OpenBLAS threads and 10 s on one. Set before numpy loads its BLAS, and only when
# run as a program (``python -m benchmarks`` sets them too): a test importing this module must
# not change the threads of every process started after it.
if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import hashlib
import json
import multiprocessing
import platform
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import date
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flows.config import LoadedConfig, Settings, StormwatchConfig, load_config
from flows.data import open_store
from flows.training import (
    ArchiveSamples,
    CalmRowsCheck,
    FittedMember,
    MarketData,
    PreparedRun,
    Validation,
    archive_samples,
    check_calm_rows,
    ensemble_weighting,
    fit_member,
    label_regimes,
    panel_snapshot,
    prepare_from_parts,
    replay_samples,
    validate,
    window_samples,
    window_zoo_gate,
    with_calm_rows_by_window,
    with_regimes,
)
from market.config import LiveStorm, SimulatorSettings
from market.panel import BarPanel
from market.samples import Samples
from market.sources.simulated import SimulatedMarket, SimulatedSource
from market.vocabulary import REGIMES, Regime
from memory.replay import ReplayBuffer
from models.config import TrainingConfig
from models.validation import purge_training
from models.zoo import CalmGate, CalmGatedEnsemble, SoftVotingEnsemble, StormGate, positive_class_proba
from monitors.regimes import label_samples

#: The "today" of every run: the training window ends here and the live storm comes after it.
TODAY = date(2026, 11, 20)
#: The simulated live period after today and where its storm sits in it (sessions after today): the
#: product's own (``market.sources.simulated``'s defaults, the period the monitor and the demo
#: walk), so the live test holds the calm after the storm as well as the storm (60 sessions, the
#: length until stop 23, ended 28 sessions after the storm, inside its shadow).
LIVE_SESSIONS = 120
LIVE_STORM = LiveStorm(starts_after_sessions=20, sessions=12, regime=Regime.CRASH)
#: The earlier retrain whose worst validation errors fill the replay buffer: a quarter before today.
PREVIOUS_RUN_SESSIONS = 63
BASE_SEED = 20080915
#: The evaluation's markets: seeds ``BASE_SEED .. BASE_SEED + EVALUATION_SEEDS - 1`` (the committed
#: run's; ten until stop 22, twenty since: two seeds run at a time on two cores, see ``--jobs``).
EVALUATION_SEEDS = 20
#: Development markets: design choices (a member's setup, the ensemble's weighting) are compared
#: on these, never on the evaluation seeds (:data:`EVALUATION_SEEDS` from ``BASE_SEED``) whose figures are
#: committed.
#: The storms of an evaluation seed are then test storms in the strict sense: nothing was tuned on
#: them, not even by a person reading a table. ``--development`` runs them.
DEVELOPMENT_SEED = 1
#: Names per sector: 11 sectors x 2 = 22 symbols instead of the default 76, so twenty seeds fit in
#: an hour on two cores. The archive's row budget is scaled by the same ratio.
PER_SECTOR = 2
#: The one member the ablation steps are measured with: the regime-aware linear member, because
#: it can express the sign flip the memory is meant to teach (so each step's effect shows) and
#: fits in about a second (LightGBM's 300 trees take ten: 30 ablation fits a seed would not fit
#: the hour); the full zoo and the served ensemble are measured on the hybrid set and the window.
ABLATION_MEMBER = "regime_aware"
#: Sessions embargoed after a held-out event: the longest feature lookback (idio_vol_60 reads
#: 253 + 59 sessions), so no training row's features read a bar of the held-out event.
EMBARGO_AFTER = 312
#: Regimes a held-out event is a test of: the storms. (Calm events stay in training.)
HELD_OUT_REGIMES = (Regime.CRASH, Regime.RECOVERY)
#: Fewer test rows than this behind a regime's number (summed over seeds): reported, not judged.
MIN_ROWS = 300
RESULTS = Path(__file__).resolve().parent / "results"
#: Seeds run side by side by default (``--jobs``): two cores take two seeds in about the time of one.
DEFAULT_JOBS = min(2, os.cpu_count() or 1)
#: sha256 of this file as it was imported: the code that produced a run's figures.
CODE_HASH = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
CALM = ("low_volatility", "normal", "high_volatility")
STORMS = ("crash", "recovery")

#: The ablation ladder: each step adds one switch of ``models.training`` to the one before.
STEPS: tuple[tuple[str, dict[str, bool]], ...] = (
    ("window only", {"archive": False, "balance": False, "weights": False, "replay": False}),
    ("+ archive", {"archive": True, "balance": False, "weights": False, "replay": False}),
    ("+ balance", {"archive": True, "balance": True, "weights": False, "replay": False}),
    ("+ weights", {"archive": True, "balance": True, "weights": True, "replay": False}),
    ("+ replay (hybrid)", {"archive": True, "balance": True, "weights": True, "replay": True}),
)
LABELER_VARIANT = "hybrid, archive regimed by labeler"
ENSEMBLE = "served ensemble"
WINDOW_ENSEMBLE = "window-only ensemble"
#: The served model without its calm gate: the hybrid zoo on every row, as served before stop 27
#: (``models.validation.ensemble_window_zoo_below_vix: null``); measured against the served one.
HYBRID_ZOO = "hybrid zoo on every row"
#: The served ensemble's members weighted otherwise (no refit: the same fitted members), measured
#: against the served one: without the storm members (every row by the validation-skill weights),
#: skill on all validation rows together (before issue 13), storm rows weighted among every member
#: on the storm validation rows (``StormGate``), skill in accuracy instead of log loss, and every
#: member alike.
NO_STORM_MEMBERS = "served, no storm members"
OVERALL_WEIGHTS = "served, skill on all rows"
STORM_WEIGHTS = "served, storm weights of all members"
ACCURACY_WEIGHTS = "served, accuracy skill"
EQUAL_WEIGHTS = "served, equal weights"
WEIGHTINGS = (NO_STORM_MEMBERS, OVERALL_WEIGHTS, STORM_WEIGHTS, ACCURACY_WEIGHTS, EQUAL_WEIGHTS)
WEIGHTING_TITLE = "The served ensemble's weights in storms (accuracy, edge share; Δ to the served ensemble [95%]):"
#: What each variant's own contribution is measured against (``diff_step``): the step before it
#: on the ladder; the labeler-regimed archive against the event-regimed hybrid (issue 13, point 3).
STEP_BEFORE: dict[str, str] = {
    **{step: before for (before, _), (step, _) in zip(STEPS, STEPS[1:], strict=False)},
    LABELER_VARIANT: STEPS[-1][0],
    ENSEMBLE: WINDOW_ENSEMBLE,
    HYBRID_ZOO: ENSEMBLE,
    **dict.fromkeys(WEIGHTINGS, ENSEMBLE),
}


# --------------------------------------------------------------------------------------------
# Configuration and market of one seed
# --------------------------------------------------------------------------------------------


def benchmark_config(base: StormwatchConfig, seed: int, *, per_sector: int = PER_SECTOR) -> StormwatchConfig:
    """The configuration a seed runs: the base one with a smaller universe, the seed, today and
    the live storm pinned, and the archive's row budget scaled with the universe."""
    counts: dict[str, int] = {}
    members = []
    for member in base.market.universe.members:
        if counts.get(member.sector.value, 0) < per_sector:
            counts[member.sector.value] = counts.get(member.sector.value, 0) + 1
            members.append(member)
    universe = base.market.universe.model_copy(update={"members": tuple(members)})
    simulated = base.market.sources.simulated.model_copy(update={
        "seed": seed, "end": TODAY, "live_sessions": LIVE_SESSIONS, "live_storm": LIVE_STORM})
    SimulatorSettings.model_validate(simulated.model_dump())  # the storm fits the live period
    sources = base.market.sources.model_copy(update={"simulated": simulated})
    market = base.market.model_copy(update={"universe": universe, "sources": sources})
    hybrid = base.memory.hybrid
    if isinstance(hybrid.archive_rows, int):
        scaled = round(hybrid.archive_rows * len(members) / len(base.market.universe.members))
        hybrid = hybrid.model_copy(update={"archive_rows": scaled})
    memory = base.memory.model_copy(update={"hybrid": hybrid})
    return base.model_copy(update={"market": market, "memory": memory})


def with_archive_regime(config: StormwatchConfig, how: str) -> StormwatchConfig:
    hybrid = config.memory.hybrid.model_copy(update={"archive_regime": how})
    return config.model_copy(update={"memory": config.memory.model_copy(update={"hybrid": hybrid})})


def simulate(config: StormwatchConfig) -> SimulatedMarket:
    universe = config.market.universe
    source = SimulatedSource(universe, config.market.sources.simulated, horizon=config.market.labels.horizon,
                             today=TODAY)
    return source.market()


def market_panel(config: StormwatchConfig, market: SimulatedMarket) -> BarPanel:
    """The bars as every source serves them: no regime, no oracle, only bars, proxy and VIX."""
    universe = config.market.universe
    return BarPanel.from_bars({s: market.bars[s] for s in universe.symbols}, market.bars[universe.market_proxy],
                              market.vix, {m.symbol: m.sector.value for m in universe.members})


def market_data(panel: BarPanel, as_of: pd.Timestamp) -> MarketData:
    cut = panel.truncate(as_of)
    return MarketData(source="simulated", panel=cut, as_of=cut.sessions[-1], snapshot=panel_snapshot(cut))


# --------------------------------------------------------------------------------------------
# Test sets and purging
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TestSet:
    """Rows a model is scored on and the span training must stay clear of."""

    name: str
    kind: str  # live | held-out crash | held-out recovery
    samples: Samples
    first: pd.Timestamp
    last_label_end: pd.Timestamp
    event: str = ""  # the held-out archive event


def live_samples(config: StormwatchConfig, panel: BarPanel, today: pd.Timestamp) -> Samples:
    """Labelled rows after today, built by the product's own window step on the whole panel."""
    after = int((panel.sessions > today).sum())
    validation = config.models.validation.model_copy(update={"rolling_window_sessions": after + 1})
    wide = config.model_copy(update={"models": config.models.model_copy(update={"validation": validation})})
    built = window_samples(wide, market_data(panel, panel.sessions[-1]))
    return built.where(built.dates > today)


def purge_against(samples: Samples | None, test: TestSet, *, embargo_before: int,
                  sessions: pd.DatetimeIndex) -> Samples | None:
    """``samples`` without any row whose label window meets the test's span, widened by
    ``embargo_before`` sessions before it and :data:`EMBARGO_AFTER` after it (the widening after
    is written into the span's end, since :func:`purge_training` widens both sides alike)."""
    if samples is None or not len(samples):
        return samples
    end_at = min(int(sessions.searchsorted(test.last_label_end)) + EMBARGO_AFTER - embargo_before,
                 len(sessions) - 1)
    end = max(sessions[end_at], test.last_label_end)
    span = pd.DataFrame({"label_end": [end]}, index=pd.Index([test.first], name="date"))
    rows = samples.rows.assign(_position=np.arange(len(samples)))
    kept = purge_training(rows, span, embargo_sessions=embargo_before, sessions=sessions)
    return samples.take(kept["_position"].to_numpy())


def without_event(archived: ArchiveSamples, event: str) -> ArchiveSamples:
    kept = archived.samples.where(archived.samples.rows["event"].astype(str) != event)
    return ArchiveSamples(samples=kept, version=archived.version, built=False)


# --------------------------------------------------------------------------------------------
# One seed
# --------------------------------------------------------------------------------------------


def training_config(config: StormwatchConfig, switches: Mapping[str, bool]) -> TrainingConfig:
    return config.models.training.model_copy(update=dict(switches))


class MemberCache:
    """Fitted members by (member, training-set hash): identical sets are fitted once."""

    def __init__(self, config: StormwatchConfig) -> None:
        self.zoo = config.models.zoo
        self.fitted: dict[tuple[str, str], FittedMember] = {}
        self.fit_seconds: dict[str, list[float]] = {}

    def members(self, names: Iterable[str], prepared: PreparedRun) -> list[FittedMember]:
        out = []
        for name in names:
            key = (name, prepared.training_set.content_hash)
            if key not in self.fitted:
                member = fit_member(name, self.zoo[name], prepared.training_set)  # type: ignore[index]
                self.fitted[key] = member
                self.fit_seconds.setdefault(name, []).append(member.fit_seconds)
            out.append(self.fitted[key])
        return out


def fill_replay_buffer(loaded: LoadedConfig, settings: Settings, panel: BarPanel, previous: pd.Timestamp,
                       cache: MemberCache, member: str = ABLATION_MEMBER) -> dict[str, Any]:
    """The retrain of a quarter earlier, as the product runs it (without replay: its buffer was
    empty), admitting its served model's worst validation errors to the buffer. Its served model
    is the ablation member alone: the full zoo there would double the benchmark's time."""
    config = loaded.config
    data = market_data(panel, previous)
    timeline = label_regimes(config, data)
    window = with_regimes(window_samples(config, data), timeline)
    archived = archive_samples(loaded, settings, data, timeline)
    prepared = prepare_from_parts(config, data, timeline, window, archived, None,
                                  training_config(config, dict(STEPS[3][1])))
    result = validate(cache.members([member], prepared), prepared, **ensemble_weighting(config))
    buffer = ReplayBuffer(open_store(settings), config.memory.replay)
    try:
        report = buffer.admit(result.rows, result.ensemble_proba, model_version=f"benchmark-{previous:%Y%m%d}",
                              as_of=data.as_of.date(), horizon=config.market.labels.horizon)
    finally:
        buffer.store.dispose()
    return {"as_of": str(data.as_of.date()), **{k: v for k, v in report.__dict__.items()
                                                 if isinstance(v, int | float | str)}}


def score_rows(test: TestSet, proba: np.ndarray, regimes: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    """Hits and counts per regime (by each regime source) of one model on one test set; ``up``
    and ``up_hits`` (rows labelled 1, and hits among them) give the balanced accuracy."""
    y = test.samples.target.to_numpy()
    hit = (proba > 0.5).astype(np.int64) == y
    out = []
    for source, values in regimes.items():
        for regime in [*(r.value for r in REGIMES), "overall"]:
            mask = np.ones(len(y), dtype=bool) if regime == "overall" else values == regime
            if mask.any():
                up = mask & (y == 1)
                out.append({"regime_source": source, "regime": regime, "n": int(mask.sum()),
                            "hits": int(hit[mask].sum()), "up": int(up.sum()), "up_hits": int(hit[up].sum())})
    return out


def served_predictions(fitted: list[FittedMember], prepared: PreparedRun, weighting: Mapping[str, Any] | None,
                       features: pd.DataFrame, window: Validation | None = None,
                       gate: CalmGate | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """The served model of ``fitted`` weighted as ``weighting`` says (``validate``'s keywords;
    ``None``: every member alike), with the rows ``gate`` calls calm served by ``window`` (the
    window zoo's validation) when both are given and it validates better there, as a retrain
    serves them: its probabilities on ``features`` and the weights it used, with how many rows
    each gate took and the calm rows' check."""
    check: CalmRowsCheck | None = None
    if weighting is None:  # nothing to validate: every member alike
        served: SoftVotingEnsemble | CalmGatedEnsemble = SoftVotingEnsemble(
            members={m.name: m.model for m in fitted}, weights={m.name: 1 / len(fitted) for m in fitted},
            feature_names=prepared.training_set.samples.feature_names)
        storm_validation_rows = 0
        if window is not None and gate is not None:  # the same check, on the same validation rows
            check = check_calm_rows(window, positive_class_proba(served, window.rows.features), gate)
            served = CalmGatedEnsemble(served, window.ensemble, gate) if check.window_serves else served
    else:
        validation = validate(fitted, prepared, **weighting)
        storm_validation_rows = int(validation.ensemble.storm_rows(validation.rows.features).sum())
        if window is not None and gate is not None:
            validation = with_calm_rows_by_window(validation, window, gate)
            check = validation.calm_check
        served = validation.served
    return positive_class_proba(served, features), {
        **serving(served, features), "storm_validation_rows": storm_validation_rows,
        "calm_check": None if check is None else check.to_dict()}


def serving(served: SoftVotingEnsemble | CalmGatedEnsemble, features: pd.DataFrame) -> dict[str, Any]:
    """The weights a served model serves with, and how many of ``features``' rows each gate takes
    (the storm weights; the window zoo's calm rows)."""
    pair = served if isinstance(served, CalmGatedEnsemble) else None
    ensemble = served if pair is None else pair.hybrid
    return {"weights": dict(ensemble.weights),
            "storm_weights": None if ensemble.storm_weights is None else dict(ensemble.storm_weights),
            "storm_test_rows": int(ensemble.storm_rows(features).sum()),
            "calm_weights": None if pair is None else dict(pair.calm.weights),
            "calm_test_rows": 0 if pair is None else int(pair.calm_rows(features).sum())}


def run_seed(
    base: StormwatchConfig,
    seed: int,
    *,
    home: Path,
    market: SimulatedMarket | None = None,
    shuffle_labels: bool = False,
    shuffle_seed: int = 0,
    members: Sequence[str] | None = None,
    held_out: Sequence[str] | None = None,
    per_sector: int = PER_SECTOR,
    ablation_member: str = ABLATION_MEMBER,
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Every variant on every test set of one seed: per-regime hits and counts, with the oracle's.

    ``market`` replaces the simulation (the leakage test passes one whose true regimes and oracle
    are noise); ``shuffle_labels`` permutes every training label in time within each part (a
    different permutation for each ``shuffle_seed``);
    ``members``, ``held_out``, ``per_sector`` and ``ablation_member`` narrow the zoo, the held-out
    events and the universe, or change the ablation's member (tests)."""
    started = time.perf_counter()
    config = benchmark_config(base, seed, per_sector=per_sector)
    loaded = LoadedConfig(config=config, path=Path("benchmarks/quality.py"), content_hash=config.content_hash())
    labeler_loaded = LoadedConfig(config=with_archive_regime(config, "labeler"), path=loaded.path,
                                  content_hash=with_archive_regime(config, "labeler").content_hash())
    settings = Settings(home=home, database_url=None)
    market = market or simulate(config)
    panel = market_panel(config, market)
    today = panel.sessions[panel.sessions <= pd.Timestamp(TODAY)][-1]
    sessions = panel.sessions
    previous = sessions[sessions.get_loc(today) - PREVIOUS_RUN_SESSIONS]
    zoo = list(members or config.models.zoo)
    cache = MemberCache(config)
    rng = np.random.default_rng([seed, shuffle_seed])

    def shuffled(samples: Samples | None) -> Samples | None:
        if not shuffle_labels or samples is None or not len(samples):
            return samples
        target = pd.Series(rng.permutation(samples.target.to_numpy()), index=samples.target.index)
        return Samples(samples.features, target, samples.rows)

    replay_report = ({} if shuffle_labels else
                     fill_replay_buffer(loaded, settings, panel, previous, cache, ablation_member))
    log(f"  seed {seed}: replay buffer filled by the retrain as of {previous.date()} "
        f"({time.perf_counter() - started:.0f} s)")

    data = market_data(panel, today)
    timeline = label_regimes(config, data)
    window = shuffled(with_regimes(window_samples(config, data), timeline))
    real_archive = archive_samples(loaded, settings, data, timeline)
    archived = ArchiveSamples(shuffled(real_archive.samples), real_archive.version, False)  # type: ignore[arg-type]
    labelled = archive_samples(labeler_loaded, settings, data, timeline)
    archived_labeler = ArchiveSamples(shuffled(labelled.samples), labelled.version, False)  # type: ignore[arg-type]
    replay = None if shuffle_labels else replay_samples(settings, config, data.as_of)

    full_timeline = label_regimes(config, market_data(panel, sessions[-1]))
    true_regime = market.regimes
    oracle = market.oracle.stack()

    tests = [TestSet("live storm after today", "live", live := live_samples(config, panel, today),
                     first=live.dates.min(), last_label_end=pd.Timestamp(live.rows["label_end"].max()))]
    for event in config.memory.archive.events:
        if event.regime not in HELD_OUT_REGIMES or (held_out is not None and event.name not in held_out):
            continue
        rows = real_archive.samples.where(real_archive.samples.rows["event"].astype(str) == event.name)
        tests.append(TestSet(f"held-out {event.name}", f"held-out {event.regime.value}", rows,
                             first=rows.dates.min(), last_label_end=pd.Timestamp(rows.rows["label_end"].max()),
                             event=event.name))

    embargo = config.models.validation.embargo_sessions
    records: list[dict[str, Any]] = []
    weights: list[dict[str, Any]] = []  # the served ensembles' weights, per test set
    for test in tests:
        at = test.samples.features.index
        regimes = {
            "labeler": pd.Series(label_samples(full_timeline, test.samples.dates)).fillna("normal")
            .astype(str).to_numpy(),
            "true": true_regime.reindex(test.samples.dates).astype(str).to_numpy(),
        }
        oracle_up = oracle.reindex(at).to_numpy(dtype=float) > 0
        for row in score_rows(test, oracle_up.astype(float), regimes):
            records.append({"test": test.name, "kind": test.kind, "variant": "oracle", **row})

        def purge(part: Samples | None, test: TestSet = test) -> Samples | None:
            return purge_against(part, test, embargo_before=embargo, sessions=sessions)

        def archive_part(source: ArchiveSamples, test: TestSet = test) -> ArchiveSamples:
            kept = without_event(source, test.event) if test.event else source
            return ArchiveSamples(purge(kept.samples), kept.version, False)  # type: ignore[arg-type]

        w, a, a_lab, r = purge(window), archive_part(archived), archive_part(archived_labeler), purge(replay)

        def prepared_for(switches: Mapping[str, bool], archive: ArchiveSamples = a,
                         window: Samples | None = w, replay: Samples | None = r) -> PreparedRun:
            training = training_config(config, switches)
            return prepare_from_parts(config, data, timeline, window, archive,  # type: ignore[arg-type]
                                      replay if training.replay else None, training)

        def add(variant: str, proba: np.ndarray) -> None:
            for row in score_rows(test, proba, regimes):  # noqa: B023 - used at once
                records.append({"test": test.name, "kind": test.kind, "variant": variant, **row})  # noqa: B023

        features = test.samples.features
        prepared_steps = {}
        for step, switches in STEPS:
            prepared = prepared_for(switches)
            prepared_steps[step] = prepared
            (member,) = cache.members([ablation_member], prepared)
            add(step, positive_class_proba(member.model, features))
        labeler_prepared = prepared_for(STEPS[-1][1], a_lab)
        (member,) = cache.members([ablation_member], labeler_prepared)
        add(LABELER_VARIANT, positive_class_proba(member.model, features))

        # The window zoo, as a retrain fits and validates it; it serves the calm rows of the served
        # model (``validate_run``'s steps), and alone it is what the served model is judged against.
        configured = ensemble_weighting(config)
        window_prepared = prepared_steps[STEPS[0][0]]
        window_zoo = validate(cache.members(zoo, window_prepared), window_prepared, **configured)
        calm_gate = window_zoo_gate(config, training_config(config, STEPS[-1][1]))
        add(WINDOW_ENSEMBLE, positive_class_proba(window_zoo.ensemble, features))
        weights.append({"test": test.name, "variant": WINDOW_ENSEMBLE, **serving(window_zoo.ensemble, features)})
        prepared = prepared_steps[STEPS[-1][0]]
        fitted = cache.members(zoo, prepared)
        for member in fitted:
            add(f"member: {member.name}", positive_class_proba(member.model, features))
        storm_gate = StormGate(above=config.monitors.regimes.vix_crash_above)
        for variant, weighting, calm_zoo in (
                (ENSEMBLE, configured, window_zoo),
                (HYBRID_ZOO, configured, None),
                (NO_STORM_MEMBERS, {**configured, "storm_gate": None, "storm_members": None}, window_zoo),
                (OVERALL_WEIGHTS, {**configured, "ensemble_skill": "overall"}, window_zoo),
                (STORM_WEIGHTS, {**configured, "storm_gate": configured["storm_gate"] or storm_gate,
                                 "storm_members": None}, window_zoo),
                (ACCURACY_WEIGHTS, {**configured, "skill_metric": "accuracy"}, window_zoo),
                (EQUAL_WEIGHTS, None, window_zoo)):
            proba, used = served_predictions(fitted, prepared, weighting, features, calm_zoo, calm_gate)
            add(variant, proba)
            weights.append({"test": test.name, "variant": variant, **used})
        log(f"  seed {seed}: {test.name} done ({time.perf_counter() - started:.0f} s)")
    hybrid = prepared_steps[STEPS[-1][0]].training_set  # of the last test set: sizes for the record
    return {
        "seed": seed, "config_hash": config.content_hash(), "seconds": time.perf_counter() - started,
        "today": str(today.date()), "previous_run": str(previous.date()),
        "live": {"first": str(tests[0].first.date()), "last_label_end": str(tests[0].last_label_end.date()),
                 "storm": [str(sessions[sessions.get_loc(today) + LIVE_STORM.starts_after_sessions + 1].date()),
                           str(sessions[sessions.get_loc(today) + LIVE_STORM.starts_after_sessions
                                        + LIVE_STORM.sessions].date())]},
        "window": {"first": str(window.dates.min().date()), "last": str(window.dates.max().date()),
                   "rows": len(window)},
        "archive_rows": len(archived.samples), "replay_rows": 0 if replay is None else len(replay),
        "replay_admission": replay_report, "hybrid_training_rows": len(hybrid.samples),
        "fit_seconds": {k: float(np.mean(v)) for k, v in cache.fit_seconds.items()},
        "records": records, "ensemble_weights": weights,
    }


# --------------------------------------------------------------------------------------------
# Across seeds
# --------------------------------------------------------------------------------------------


def _t95(n: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.975, n - 1)) if n > 1 else float("nan")


def summarise(seeds: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per (test, regime source, regime, variant): accuracy mean and sd over seeds, the
    oracle's, the paired difference to window only (and to the window-only ensemble for the served
    ensemble) with a 95% t interval, and the share of the achievable edge."""
    frame = pd.DataFrame([{"seed": s["seed"], **r} for s in seeds for r in s["records"]])
    frame["accuracy"] = frame["hits"] / frame["n"]
    keys = ["test", "kind", "regime_source", "regime"]
    wide = frame.pivot_table(index=[*keys, "seed"], columns="variant", values="accuracy")
    counts = frame.loc[frame["variant"] == "oracle"].groupby(keys)["n"].sum()
    rows = []
    for key, group in wide.groupby(level=keys):
        oracle = group["oracle"]
        for variant in group.columns:
            acc = group[variant].dropna()
            if acc.empty:
                continue
            n = len(acc)
            row = dict(zip(keys, key, strict=True))
            row.update({"variant": variant, "seeds": n, "rows": int(counts.loc[key]),
                        "accuracy": acc.mean(), "sd": acc.std(ddof=1) if n > 1 else float("nan"),
                        "oracle": oracle.mean()})
            edge = oracle.mean() - 0.5
            row["edge_share"] = (acc.mean() - 0.5) / edge if edge > 0 else float("nan")
            excess = acc - 0.5
            half = _t95(n) * excess.std(ddof=1) / np.sqrt(n) if n > 1 else float("nan")
            row["edge_share_low"] = (excess.mean() - half) / edge if edge > 0 else float("nan")
            row["edge_share_high"] = (excess.mean() + half) / edge if edge > 0 else float("nan")
            for name, against in (("window", "window only"), ("window_ensemble", WINDOW_ENSEMBLE),
                                  ("step", STEP_BEFORE.get(variant, ""))):
                if against not in group.columns or variant in ("oracle", against):
                    continue
                d = (group[variant] - group[against]).dropna()
                half = _t95(len(d)) * d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
                row[f"diff_{name}"] = d.mean()
                row[f"diff_{name}_low"] = d.mean() - half
                row[f"diff_{name}_high"] = d.mean() + half
            rows.append(row)
    return pd.DataFrame(rows)


def variant_order(variants: Iterable[str]) -> list[str]:
    fixed = ["oracle", *(s for s, _ in STEPS), LABELER_VARIANT, WINDOW_ENSEMBLE, ENSEMBLE, HYBRID_ZOO, *WEIGHTINGS]
    present = list(dict.fromkeys(variants))
    return [v for v in fixed if v in present] + sorted(v for v in present if v not in fixed)


def judge(table: pd.DataFrame, source: str = "labeler") -> tuple[list[str], list[str]]:
    """The acceptance claims of issue 13 on ``table``: (claims not met, 80%-goal shortfalls)."""
    missed, short = [], []
    own = table.loc[(table["regime_source"] == source) & (table["variant"] == ENSEMBLE)]
    for _, row in own.iterrows():
        where = f"{row['test']}, {row['regime']} ({source} regime, {row['rows']:,} rows)"
        if row["regime"] == "overall" or row["rows"] < MIN_ROWS:
            continue
        d, low, high = (row.get(f"diff_window_ensemble{x}", np.nan) for x in ("", "_low", "_high"))
        if row["regime"] in STORMS and not low > 0:
            missed.append(f"{where}: the served ensemble - the window-only ensemble = {d:+.3f} "
                          f"[{low:+.3f}, {high:+.3f}], not above zero")
        if row["regime"] in CALM and low < -0.01:
            missed.append(f"{where}: the served ensemble is worse than the window-only ensemble by more than "
                          f"a point at the interval's lower end ({low:+.3f})")
        if row["regime"] == "crash" and row["kind"] in ("live", "held-out crash") and row["edge_share"] < 0.6:
            missed.append(f"{where}: edge share {row['edge_share']:.1%} < 60%")
        if row["regime"] == "recovery" and row["kind"] == "held-out recovery" and not row["edge_share_low"] > 0:
            missed.append(f"{where}: the edge is not right-signed (edge share {row['edge_share']:.0%}, "
                          f"interval [{row['edge_share_low']:.0%}, {row['edge_share_high']:.0%}])")
        if row["edge_share"] < 0.8:
            short.append(f"{where}: edge share {row['edge_share']:.1%} (goal 80%)")
    return missed, short


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def markdown_table(table: pd.DataFrame, test: str, source: str = "labeler",
                   variants: Sequence[str] | None = None) -> str:
    """Rows: variants; for each regime: accuracy +- sd over seeds, edge share, and the paired
    difference [95%] to window only (the served ensemble: to the window-only ensemble)."""
    part = table.loc[(table["test"] == test) & (table["regime_source"] == source)]
    regimes = [r.value for r in REGIMES if r.value in set(part["regime"])]
    regimes = [r for r in regimes if int(part.loc[part["regime"] == r, "rows"].iloc[0]) >= MIN_ROWS]
    header = "| variant | " + " | ".join(
        f"{r} (n={int(part.loc[part['regime'] == r, 'rows'].iloc[0]):,})" for r in regimes) + " |"
    lines = [header, "|---|" + "---|" * len(regimes)]
    for variant in variants or variant_order(part["variant"]):
        cells = []
        for regime in regimes:
            hit = part.loc[(part["regime"] == regime) & (part["variant"] == variant)]
            if hit.empty:
                cells.append("")
                continue
            row = hit.iloc[0]
            text = f"{row['accuracy']:.3f} ± {row['sd']:.3f}"
            if variant != "oracle":
                text += f", edge {row['edge_share']:.0%}"
            against = "diff_window_ensemble" if variant == ENSEMBLE else "diff_window"
            if pd.notna(row.get(against)):
                text += f", Δ {row[against]:+.3f} [{row[f'{against}_low']:+.3f}, {row[f'{against}_high']:+.3f}]"
            cells.append(text)
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def interval_text(row: pd.Series, name: str) -> str:
    """``name`` of ``row`` with its 95% interval, as the tables print it (empty where it is missing)."""
    if pd.isna(row.get(name)):
        return ""
    return f"{row[name]:+.3f} [{row[f'{name}_low']:+.3f}, {row[f'{name}_high']:+.3f}]"


def summary_table(table: pd.DataFrame, source: str = "labeler") -> str:
    """The README's table: per test set and regime (enough rows), the oracle, window only, the
    window-only ensemble, the hybrid zoo alone, the served ensemble (the hybrid zoo with calm rows
    served by the window zoo), the paired difference of the two ensembles [95%], the
    served ensemble's edge share [95%], and the contributions of replay and of the labeler's
    archive regimes (the ablation member)."""
    part = table.loc[(table["regime_source"] == source) & (table["rows"] >= MIN_ROWS)]
    lines = ["| test set | regime | rows | oracle | window only | window-only ensemble | hybrid zoo on every row | "
             "served ensemble | served - window-only ensemble [95%] | edge share [95%] | replay's step [95%] | "
             "labeler's archive regimes [95%] |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for test in dict.fromkeys(part["test"]):
        for regime in [*(r.value for r in REGIMES), "overall"]:
            rows = part.loc[(part["test"] == test) & (part["regime"] == regime)].set_index("variant")
            if ENSEMBLE not in rows.index:
                continue
            served = rows.loc[ENSEMBLE]

            def acc(variant: str, rows: pd.DataFrame = rows) -> str:
                return f"{rows.loc[variant, 'accuracy']:.3f}" if variant in rows.index else ""

            share = (f"{served['edge_share']:.0%} [{served['edge_share_low']:.0%}, {served['edge_share_high']:.0%}]"
                     if pd.notna(served["edge_share_low"]) else f"{served['edge_share']:.0%}")
            replay = interval_text(rows.loc[STEPS[-1][0]], "diff_step") if STEPS[-1][0] in rows.index else ""
            labeler = interval_text(rows.loc[LABELER_VARIANT], "diff_step") if LABELER_VARIANT in rows.index else ""
            lines.append(f"| {test} | {regime} | {int(served['rows']):,} | {acc('oracle')} | {acc('window only')} | "
                         f"{acc(WINDOW_ENSEMBLE)} | {acc(HYBRID_ZOO)} | **{acc(ENSEMBLE)}** | {interval_text(served, 'diff_window_ensemble')} | "
                         f"{share} | {replay} | {labeler} |")
    return "\n".join(lines)


def weighting_table(table: pd.DataFrame, source: str = "labeler") -> str:
    """How the served ensemble's weighting does in storms: per test set, in crash and recovery
    (enough rows), the served ensemble (the configured weights), the same members weighted
    otherwise (:data:`WEIGHTINGS`, each against the served one [95%]), and the regime-aware
    member alone; edge shares in brackets."""
    part = table.loc[(table["regime_source"] == source) & (table["rows"] >= MIN_ROWS)
                     & table["regime"].isin(["crash", "recovery"])]
    member = f"member: {ABLATION_MEMBER}"
    lines = [f"| test set | regime | oracle | served ensemble | {' | '.join(f'{w} [95%]' for w in WEIGHTINGS)} | "
             f"{member} |", "|---|---|---|---|" + "---|" * len(WEIGHTINGS) + "---|"]
    for (test, regime), rows in part.groupby(["test", "regime"], sort=False):
        rows = rows.set_index("variant")
        if ENSEMBLE not in rows.index:
            continue

        def cell(variant: str, rows: pd.DataFrame = rows) -> str:
            if variant not in rows.index:
                return ""
            row = rows.loc[variant]
            diff = f" {interval_text(row, 'diff_step')}" if variant in WEIGHTINGS else ""
            return f"{row['accuracy']:.3f} ({row['edge_share']:.0%}){diff}"

        lines.append(f"| {test} | {regime} | {rows.loc['oracle', 'accuracy']:.3f} | {cell(ENSEMBLE)} | "
                     f"{' | '.join(cell(w) for w in WEIGHTINGS)} | {cell(member)} |")
    return "\n".join(lines)


def plot_edge(table: pd.DataFrame, path: Path, source: str = "labeler") -> Path:
    from market.figures import new_figure, save_png

    part = table.loc[(table["regime_source"] == source) & (table["variant"] != "oracle")
                     & (table["regime"] != "overall") & (table["rows"] >= MIN_ROWS)]
    tests = list(dict.fromkeys(part["test"]))
    variants = [v for v in variant_order(part["variant"]) if not v.startswith("member: ")]
    figure = new_figure(4.2 * len(tests), 4.6)
    axes = figure.subplots(1, len(tests), squeeze=False)[0]
    from matplotlib import colormaps

    colours = colormaps["tab10"]
    for ax, test in zip(axes, tests, strict=True):
        sub = part.loc[part["test"] == test]
        regimes = [r.value for r in REGIMES if r.value in set(sub["regime"])]
        width = 0.8 / max(1, len(variants))
        for k, variant in enumerate(variants):
            values = [sub.loc[(sub["regime"] == r) & (sub["variant"] == variant), "edge_share"] for r in regimes]
            heights = [float(v.iloc[0]) if len(v) else np.nan for v in values]
            ax.bar(np.arange(len(regimes)) + k * width - 0.4 + width / 2, heights, width, label=variant,
                   color=colours(k % 10))
        ax.axhline(0.8, color="grey", linestyle="--", linewidth=0.8)
        ax.axhline(0.0, color="black", linewidth=0.6)
        ax.set_xticks(np.arange(len(regimes)), [r.replace("_", "\n") for r in regimes], fontsize=8)
        ax.set_title(test, fontsize=9)
        ax.set_ylim(-1.0, 1.4)
    axes[0].set_ylabel(f"share of the achievable edge ({source} regime)")
    axes[-1].legend(fontsize=7, loc="lower right")
    return save_png(figure, path)


def package_versions() -> dict[str, str]:
    names = ("numpy", "pandas", "scikit-learn", "lightgbm", "xgboost", "scipy", "pydantic")
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def write_results(runs: Sequence[dict[str, Any]], table: pd.DataFrame, results: Path, stem: str, *,
                  label: str, base_hash: str, config: StormwatchConfig, seconds: float,
                  missed: Sequence[str], short: Sequence[str]) -> tuple[Path, Path]:
    """``<stem>.json`` (seeds, dates, versions, hashes, every figure) and ``<stem>-edge.png``."""
    events = [e for e in config.memory.archive.events if e.regime in HELD_OUT_REGIMES]
    fit = pd.DataFrame([r["fit_seconds"] for r in runs]).mean().sort_values(ascending=False)
    payload = {
        "label": label, "seeds": [r["seed"] for r in runs],
        "dates": {"today": str(TODAY), "live_sessions": LIVE_SESSIONS,
                  "live_storm": LIVE_STORM.model_dump(mode="json"),
                  "held_out": [{"name": e.name, "start": str(e.start), "end": str(e.end),
                                "regime": e.regime.value} for e in events],
                  "per_seed": [{k: r[k] for k in ("seed", "today", "previous_run", "live", "window")} for r in runs]},
        "embargo": {"before": config.models.validation.embargo_sessions, "after": EMBARGO_AFTER},
        "universe": {"symbols": list(config.market.universe.symbols), "per_sector": PER_SECTOR},
        "ablation_member": ABLATION_MEMBER, "packages": package_versions(),
        "config_hash": {"base": base_hash, "per_seed": {str(r["seed"]): r["config_hash"] for r in runs}},
        "code_hash": CODE_HASH,
        "seconds": seconds, "fit_seconds": fit.to_dict(),
        "claims_not_met": list(missed), "short_of_goal": list(short),
        "summary": json.loads(table.to_json(orient="records")),
        "per_seed": list(runs),
    }
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{stem}.json"
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(payload, indent=1, default=str))
    temporary.replace(path)
    return path, plot_edge(table, results / f"{stem}-edge.png")


def results_stem(seeds: int, *, development: bool = False) -> str:
    """The file name of a run's JSON and PNG: a short or a development run never overwrites the
    full evaluation's ``quality.json``."""
    if development:
        return f"quality-development-{seeds}-seeds"
    return "quality" if seeds >= 10 else f"quality-{seeds}-seeds"


def _print_now(message: str) -> None:
    print(message, flush=True)


def _quiet(_: str) -> None:
    pass


def _run_seed_in_home(base: StormwatchConfig, seed: int, kwargs: Mapping[str, Any], verbose: bool) -> dict[str, Any]:
    """One seed in a temporary home of its own (a worker process's job: nothing is shared)."""
    with tempfile.TemporaryDirectory(prefix=f"stormwatch-quality-{seed}-") as home:
        return run_seed(base, seed, home=Path(home), log=_print_now if verbose else _quiet, **kwargs)


def run_seeds(base: StormwatchConfig, seeds: Iterable[int], *, jobs: int = 1, verbose: bool = True,
              **kwargs: Any) -> Iterator[dict[str, Any]]:
    """:func:`run_seed` for each of ``seeds``, yielded as each finishes (in any order when ``jobs``
    is above 1). Seeds share nothing (each has its own market, home and member cache), so ``jobs``
    worker processes run them side by side; a seed's figures are the same either way. Half the
    zoo's fit time (the SVM, the MLP, gradient boosting, logistic regression) runs on one thread,
    so on two cores two seeds at a time take both (``--jobs``). ``verbose`` prints each test set's
    end; ``kwargs`` go to :func:`run_seed`."""
    seeds = list(seeds)
    if jobs <= 1:
        for seed in seeds:
            yield _run_seed_in_home(base, seed, kwargs, verbose)
        return
    # spawn, not fork: a forked child of a process whose OpenMP runtime (LightGBM's, XGBoost's)
    # has started can deadlock in its first parallel region.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(jobs, len(seeds)), mp_context=context,
                             initializer=warnings.filterwarnings, initargs=("ignore",)) as pool:
        pending = [pool.submit(_run_seed_in_home, base, seed, kwargs, verbose) for seed in seeds]
        try:
            for done in as_completed(pending):
                yield done.result()
        finally:
            for future in pending:
                future.cancel()


def main(seeds: int = 10, *, results: Path = RESULTS, label: str = "", first_seed: int = BASE_SEED,
         jobs: int = DEFAULT_JOBS) -> list[str]:
    """Run ``seeds`` seeds from ``first_seed``, print the report, write the JSON and the PNG;
    return unmet claims. A development run (``first_seed`` other than :data:`BASE_SEED`) writes
    ``quality-development-<N>-seeds.json``: it never replaces the evaluation's figures.

    After every seed the figures so far are written to ``quality-partial.json`` (and its PNG),
    labelled with the seeds done, so a run stopped early still leaves its evidence. ``jobs`` seeds
    run at a time (:func:`run_seeds`)."""
    warnings.filterwarnings("ignore")
    started = time.perf_counter()
    loaded = load_config()
    base = loaded.config
    config = benchmark_config(base, BASE_SEED)
    events = [e for e in config.memory.archive.events if e.regime in HELD_OUT_REGIMES]
    development = first_seed != BASE_SEED
    if development:
        label = f"{label}, development seeds: for design choices, not the evaluation"
    print(f"Model quality against the simulator's oracle: {seeds} seed(s){label}")
    print(f"  today pinned at {TODAY}; live storm: {LIVE_STORM.regime.value} for {LIVE_STORM.sessions} sessions "
          f"starting {LIVE_STORM.starts_after_sessions + 1} sessions after today, {LIVE_SESSIONS} live sessions")
    print(f"  universe: {len(config.market.universe.members)} symbols ({PER_SECTOR} per sector; the default has "
          f"{len(base.market.universe.members)}), archive rows per training set {config.memory.hybrid.archive_rows} "
          f"(scaled from {base.memory.hybrid.archive_rows}); seeds {first_seed}..{first_seed + seeds - 1}")
    print(f"  held out in turn: {', '.join(f'{e.name} ({e.start}..{e.end})' for e in events)}; embargo "
          f"{config.models.validation.embargo_sessions} sessions before a test span and {EMBARGO_AFTER} after it "
          "(the longest feature lookback: no training feature reads a held-out bar)")
    print(f"  ablation steps with one member, {ABLATION_MEMBER}: it can express the regime flip the memory "
          "should teach, and fits in about a second; the full zoo and the served ensemble are measured on "
          "the hybrid set and on the window alone, on every test set and seed")
    print(f"  replay: the buffer is filled by a retrain {PREVIOUS_RUN_SESSIONS} sessions before today "
          f"(its served model: {ABLATION_MEMBER} alone)")
    calm = config.models.validation.ensemble_window_zoo_below_vix
    print("  served model: " + ("the hybrid zoo on every row" if calm is None else
                               f"the hybrid zoo, with rows of a VIX below {calm:g} served by the window zoo "
                               f"(models.validation.ensemble_window_zoo_below_vix; '{HYBRID_ZOO}' without it)"),
          flush=True)
    if jobs > 1:
        print(f"  {jobs} seeds at a time, each in its own process", flush=True)
    runs: list[dict[str, Any]] = []
    for run in run_seeds(base, range(first_seed, first_seed + seeds), jobs=jobs):
        runs.append(run)
        print(f"  seed {run['seed']}: {run['seconds']:.0f} s; hybrid set {run['hybrid_training_rows']:,} rows, "
              f"window {run['window']['rows']:,}, replay {run['replay_rows']:,}", flush=True)
        write_results(runs, summarise(runs), results, "quality-partial",
                      label=f"partial: {len(runs)} of {seeds} seeds", base_hash=loaded.content_hash,
                      config=config, seconds=time.perf_counter() - started, missed=[], short=[])
    runs.sort(key=lambda run: run["seed"])
    table = summarise(runs)
    wall = time.perf_counter() - started
    tests = list(dict.fromkeys(table["test"]))
    for source in ("labeler", "true"):
        for test in tests:
            print(f"\n{test}, per {'causal labeler' if source == 'labeler' else 'true simulator'} regime "
                  "(accuracy ± sd over seeds, edge share, Δ to window only [95%]; the served ensemble's Δ is "
                  "to the window-only ensemble):")
            print(markdown_table(table, test, source))
    print(f"\nSummary ({seeds} seed(s), causal labeler's regimes):")
    print(summary_table(table))
    print(f"\n{WEIGHTING_TITLE}")
    print(weighting_table(table))
    missed, short = judge(table)
    fit = pd.DataFrame([r["fit_seconds"] for r in runs]).mean().sort_values(ascending=False)
    print(f"\nmember fit times (mean, s, hybrid sets of ~{np.mean([r['hybrid_training_rows'] for r in runs]):,.0f} "
          "rows): " + ", ".join(f"{k} {v:.1f}" for k, v in fit.items()))
    print(calm_rows_line(runs))
    print(f"total {wall / 60:.1f} min for {seeds} seed(s)")
    print("\nshort of the 80% goal: " + ("none" if not short else "\n  " + "\n  ".join(short)))
    print("claims: " + ("every acceptance claim of issue 13 holds" if not missed
                        else "NOT MET:\n  " + "\n  ".join(missed)))
    stem = results_stem(seeds, development=development)
    json_path, png_path = write_results(runs, table, results, stem, label=label.strip(" ,()") or f"{seeds} seeds",
                                        base_hash=loaded.content_hash, config=config, seconds=wall,
                                        missed=missed, short=short)
    (results / "quality-partial.json").unlink(missing_ok=True)
    (results / "quality-partial-edge.png").unlink(missing_ok=True)
    print(f"wrote {json_path} and {png_path}")
    return missed


def calm_rows_line(runs: Sequence[dict[str, Any]]) -> str:
    """How often the served ensemble's window zoo validated better on the calm validation rows
    (and so served them), over seeds and test sets, with both zoos' mean log loss there."""
    served = [w for run in runs for w in run["ensemble_weights"] if w["variant"] == ENSEMBLE]
    if not any("calm_check" in w for w in served):
        return "calm rows: which zoo validated better there is not recorded in this run"
    checks = pd.DataFrame([w["calm_check"] for w in served if w["calm_check"]])
    if checks.empty:
        return "calm rows: one zoo serves every row (no window zoo)"
    return (f"calm rows: the window zoo validated better there, and served them, in {int(checks['window_serves'].sum())} "
            f"of {len(checks)} training sets (seed x test set); mean validation log loss on "
            f"{checks['rows'].mean():,.0f} calm rows: window zoo {checks['window_log_loss'].mean():.4f}, "
            f"hybrid zoo {checks['hybrid_log_loss'].mean():.4f}")


def resummarise(path: Path) -> list[str]:
    """Rebuild the summary, the judgement and the PNG of a written run from its per-seed records
    (the figures of a run are its records; the summary is derived), and print them."""
    payload = json.loads(path.read_text())
    table = summarise(payload["per_seed"])
    missed, short = judge(table)
    for test in dict.fromkeys(table["test"]):
        print(f"\n{test}, per causal labeler regime:")
        print(markdown_table(table, test))
    print(f"\nSummary ({payload['label']}, causal labeler's regimes):")
    print(summary_table(table))
    print(f"\n{WEIGHTING_TITLE}")
    print(weighting_table(table))
    print(calm_rows_line(payload["per_seed"]))
    print("\nshort of the 80% goal: " + ("none" if not short else "\n  " + "\n  ".join(short)))
    print("claims: " + ("every acceptance claim of issue 13 holds" if not missed
                        else "NOT MET:\n  " + "\n  ".join(missed)))
    payload.update({"summary": json.loads(table.to_json(orient="records")), "claims_not_met": missed,
                    "short_of_goal": short})
    path.write_text(json.dumps(payload, indent=1, default=str))
    plot_edge(table, path.with_name(f"{path.stem}-edge.png"))
    return missed


def cli(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="simulated markets to run (default 10)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of quality.json and the PNG")
    parser.add_argument("--from-json", type=Path, default=None,
                        help="summarise the per-seed records of an earlier run's JSON again, without running")
    parser.add_argument("--development", action="store_true",
                        help=f"run the development markets (seeds from {DEVELOPMENT_SEED}) on which design choices "
                        f"are compared, instead of the evaluation's (from {BASE_SEED})")
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS,
                        help="seeds run at a time, each in its own process (default %(default)s; half the "
                        "zoo's fit time is single-threaded, so two on two cores); the figures are the same")
    args = parser.parse_args(argv)
    if args.from_json is not None:
        return 1 if resummarise(args.from_json) else 0
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, not {args.jobs}")
    first = DEVELOPMENT_SEED if args.development else BASE_SEED
    return 1 if main(args.seeds, results=args.results, first_seed=first, jobs=args.jobs) else 0


if __name__ == "__main__":
    sys.exit(cli())
