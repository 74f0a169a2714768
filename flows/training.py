"""The retraining run's steps as plain Python: what the Prefect flow (``flows/retrain.py``) calls,
one task per step, and what rebuilding a past run's training set replays without Prefect.

The steps, as SPEC.md module 12 lists them: load config -> refresh market data -> features and
labels -> regimes -> archive -> replay buffer -> assemble the hybrid set -> balance -> weight
-> train the members -> validate per regime -> record. Everything is computed **as of** one
session ``T``: the panel is cut at ``T`` before anything is computed, so no feature, label,
regime, archive row, replay row or weight can depend on a bar after it. Labels need ``horizon``
sessions after their row, so the last ``horizon`` sessions before ``T`` have none and are not
trained on.

The five validation sets (``models.validation.regime_validation_sets``: the held-out tail of the
window for the calm regimes, of each archive event for crash and recovery) are cut first; the
window, the archive and the replay rows are purged against them (label windows plus the
embargo) before anything is assembled, so no training row, copy or replayed duplicate overlaps
a validation label.
"""

from __future__ import annotations

import hashlib
import json
import resource
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import numpy as np
import pandas as pd
from sklearn.metrics import log_loss

from flows.archive import build_archive, open_archive, with_discoveries
from flows.chunks import chunk_mapper
from flows.config import LoadedConfig, Settings, StormwatchConfig
from flows.data import MarketSelection, fetch_market_data, open_selection, open_store
from market.cache import BarCache
from market.features import FEATURE_NAMES
from market.panel import BarPanel, load_panel
from market.samples import Samples, build_samples
from market.sources import MarketDataError
from market.vocabulary import REGIMES, Regime
from memory.hybrid import HybridSet, assemble_hybrid
from memory.registry import CHALLENGER, Registry, gate_record
from memory.replay import ReplayBuffer, replay_version, replay_weights
from memory.runs import ModelFile, RunStore, new_run
from models.backtest import BacktestResult, signal_backtest
from models.config import MemberSpec, SubsampleConfig, TrainingConfig
from models.explain import explain_members, plot_regime_importance
from models.gate import GateDecision, PromotionGate
from models.sampling import RegimeBalancedSampler
from models.subsample import SessionBlockSubsampler
from models.validation import purge_training, regime_metrics, regime_validation_sets
from models.weighting import RegimeWeighter
from models.zoo import (
    TRUSTED_TYPE_PREFIXES,
    CalmGate,
    CalmGatedEnsemble,
    SoftVotingEnsemble,
    StormGate,
    ensemble_weights,
    fit_inputs,
    for_reproducible_prediction,
    positive_class_proba,
    regime_mean_skill,
    weights_from_skill,
)
from monitors.regimes import RegimeLabeler, RegimeTimeline, label_samples
from monitors.tracking import TrackingReport, plot_sector_regime, track

#: The regime a window row gets where the labeler has none yet (its first sessions).
UNLABELLED_REGIME = Regime.NORMAL.value


def open_runs(settings: Settings) -> RunStore:
    return RunStore(settings.home / "runs", open_store(settings), trusted=TRUSTED_TYPE_PREFIXES)


def variant_name(training: TrainingConfig) -> str:
    """``hybrid`` (every step on), ``baseline`` (window only) or the steps that are on."""
    steps = [name for name in ("archive", "balance", "weights", "replay") if getattr(training, name)]
    if len(steps) == 4:
        return "hybrid"
    return "+".join(["window", *steps]) if steps else "baseline"


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far (Linux reports kibibytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# --------------------------------------------------------------------------------------------
# Steps 1-2: configuration and market data as of T
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MarketData:
    """The bars a run saw: the selected universe's panel cut at the as-of session."""

    source: str
    panel: BarPanel
    as_of: pd.Timestamp
    snapshot: str  # sha256 of every bar, proxy close and VIX value up to as_of

    @property
    def symbols(self) -> list[str]:
        return self.panel.symbols


def panel_snapshot(panel: BarPanel) -> str:
    """sha256 of the panel's content: the data end of a run's lineage."""
    digest = hashlib.sha256()
    digest.update(np.asarray(panel.sessions.asi8, dtype=np.int64).tobytes())
    digest.update(",".join(panel.symbols).encode())
    for frame in (panel.open, panel.high, panel.low, panel.close, panel.volume, panel.proxy):
        digest.update(np.ascontiguousarray(frame.to_numpy(dtype=np.float64)).tobytes())
    digest.update(np.ascontiguousarray(panel.vix.to_numpy(dtype=np.float64)).tobytes())
    return digest.hexdigest()


def refresh_market_data(
    loaded: LoadedConfig, settings: Settings, selection: MarketSelection, as_of: date | None
) -> MarketData:
    """Bring the cache up to ``as_of`` (only what is missing) and cut the panel there."""
    source, universe = open_selection(loaded, selection)
    end = as_of or date.today()
    fetch_market_data(loaded, settings, source, universe, start=selection.start, end=end)
    panel = load_panel(BarCache(settings.cache_dir, source.info.name), universe)
    sessions = panel.sessions[panel.sessions <= pd.Timestamp(end)]
    if len(sessions) == 0:
        raise MarketDataError(f"no cached {source.info.name} session on or before {end}")
    cut = panel.truncate(sessions[-1])
    return MarketData(source=source.info.name, panel=cut, as_of=sessions[-1], snapshot=panel_snapshot(cut))


# --------------------------------------------------------------------------------------------
# Steps 3-6: window samples, regimes, archive, replay
# --------------------------------------------------------------------------------------------


def window_samples(config: StormwatchConfig, data: MarketData) -> Samples:
    """Labelled samples of the rolling window: the last ``rolling_window_sessions`` up to T.

    Rows where only some features are undefined (a gap, a short history) are kept
    (``partial``): a missing bar costs the rows whose features or label read it, not a year.
    """
    sessions = data.panel.sessions
    length = config.models.validation.rolling_window_sessions
    if len(sessions) <= config.market.labels.horizon + 1:
        raise MarketDataError(f"only {len(sessions)} sessions up to {data.as_of.date()}: too few to train")
    start = sessions[max(0, len(sessions) - length)]
    labels = config.market.labels
    built = build_samples(data.panel, start, data.as_of, horizon=labels.horizon, kind=labels.kind,
                          beta_lookback=labels.beta_lookback, barrier=labels.triple_barrier,
                          provenance="window", partial=True, vix_fallback=config.market.vix_fallback,
                          chunk_symbols=config.market.feature_chunk_symbols, mapper=chunk_mapper())
    if built.frame.empty:
        raise MarketDataError(f"no labelled window sample between {start.date()} and {data.as_of.date()} "
                              f"(histories too short for a label: an excess-return label needs "
                              f"{labels.beta_lookback} sessions of beta; kind: total needs none)")
    return Samples.from_frame(built.frame, FEATURE_NAMES).assign(event="")


def label_regimes(config: StormwatchConfig, data: MarketData) -> RegimeTimeline:
    """The causal regime timeline of the market proxy up to T."""
    labeler = RegimeLabeler(config.monitors.regimes, config.market.vix_fallback)
    return labeler.label(data.panel.proxy["close"], data.panel.vix)


def with_regimes(samples: Samples, timeline: RegimeTimeline) -> Samples:
    """``samples`` with the labeler's regime of each row's session (``normal`` before it has one)."""
    regimes = pd.Series(label_samples(timeline, samples.dates)).fillna(UNLABELLED_REGIME).astype(str)
    return samples.assign(regime=pd.Categorical(regimes.to_numpy()))


@dataclass(frozen=True)
class ArchiveSamples:
    samples: Samples
    version: str
    built: bool


def archive_samples(
    loaded: LoadedConfig,
    settings: Settings,
    data: MarketData,
    timeline: RegimeTimeline,
    *,
    version: str | None = None,
) -> ArchiveSamples:
    """The archive built from the bars up to T (built first if needed; a no-op when unchanged) and
    grown with the rare events the monitor discovered and saw close by T, or the given ``version``
    when rebuilding a past run. Rows are regimed by their event
    (``memory.hybrid.archive_regime: event``) or by the causal labeler (``labeler``)."""
    config = loaded.config
    built = False
    if version is None:  # the configured events, and the rare events the monitor found by T
        build = build_archive(loaded, settings, data.source, panel=data.panel)
        grown = with_discoveries(loaded, settings, data.source, build.version, data.panel)
        version, built = grown.version, build.built or bool(grown.built)
    archive = open_archive(settings)
    try:
        frame = archive.load(version)
    finally:
        archive.store.dispose()
    frame = frame.loc[pd.to_datetime(frame["label_end"]) <= data.as_of]
    frame = frame.loc[frame.index.get_level_values("date") <= data.as_of]
    samples = Samples.from_frame(frame, FEATURE_NAMES)
    if config.memory.hybrid.archive_regime == "labeler" and len(samples):
        samples = with_regimes(samples, timeline)
    return ArchiveSamples(samples=samples, version=version, built=built)


def replay_samples(settings: Settings, config: StormwatchConfig, as_of: pd.Timestamp) -> Samples | None:
    """The replay buffer's entries whose labels had matured by T."""
    buffer = ReplayBuffer(open_store(settings), config.memory.replay)
    try:
        return buffer.load(FEATURE_NAMES, as_of=as_of.date())
    finally:
        buffer.store.dispose()


# --------------------------------------------------------------------------------------------
# Steps 7-9: validation sets, purge, assemble, balance, weight
# --------------------------------------------------------------------------------------------


def validation_sets(window: Samples, archive: Samples) -> dict[Regime, Samples]:
    """The five per-regime validation sets (module 4), as samples."""
    w_rows = window.rows.assign(_position=np.arange(len(window)))
    a_rows = archive.rows.assign(_position=np.arange(len(archive)))
    sets = regime_validation_sets(w_rows, a_rows, window_regimes=window.rows["regime"].astype(str).to_numpy(),
                                  archive_regimes=archive.rows["regime"].astype(str).to_numpy())
    out = {}
    for regime, rows in sets.items():
        source = window if regime.value in ("low_volatility", "normal", "high_volatility") else archive
        out[regime] = source.take(rows["_position"].to_numpy()).assign(regime=regime.value)
    return out


def purged(samples: Samples | None, held_out: Mapping[Regime, Samples], *, embargo: int,
           sessions: pd.DatetimeIndex) -> Samples | None:
    """``samples`` without any row whose label window (plus the embargo) touches a validation
    label window."""
    if samples is None:
        return None
    frames = [s.rows for s in held_out.values() if len(s)]
    if not frames or not len(samples):
        return samples
    rows = samples.rows.assign(_position=np.arange(len(samples)))
    kept = purge_training(rows, frames, embargo_sessions=embargo, sessions=sessions)
    return samples.take(kept["_position"].to_numpy())


@dataclass(frozen=True)
class TrainingSet:
    """Exactly what every member is fitted on: the rows, their weights and the set's hash."""

    samples: Samples
    weights: np.ndarray
    content_hash: str
    hybrid: HybridSet
    sampling: dict[str, Any] = field(default_factory=dict)  # before/after shares per regime
    weighting: dict[str, Any] = field(default_factory=dict)  # share of rows and of weight per regime

    @property
    def effective_rows(self) -> float:
        return float(self.weights.sum())


def assemble_training_set(
    config: StormwatchConfig,
    window: Samples,
    archive: Samples | None,
    replay: Samples | None,
    training: TrainingConfig,
) -> TrainingSet:
    """Hybrid assembly, then regime balancing, then regime and replay weights, as switched."""
    hybrid = assemble_hybrid(window, archive if training.archive else None,
                             replay if training.replay else None, events=config.memory.archive.events,
                             hybrid=config.memory.hybrid, replay_config=config.memory.replay)
    samples = hybrid.samples
    regimes = samples.rows["regime"].astype(str).to_numpy()
    sampling: dict[str, Any] = {}
    if training.balance:
        sampler = RegimeBalancedSampler.from_config(config.models.sampling)
        samples = samples.take(sampler.sample_indices(regimes, sessions=samples.dates))
        report = sampler.report_
        note = " ".join(n for n in (report.empty_regime_note, report.sparse_regime_note) if n)
        sampling = {"n_before": report.n_before, "n_after": report.n_after,
                    "regimes": [r.__dict__ for r in report.regimes], "min_sessions": report.min_sessions,
                    "note": note}
        regimes = samples.rows["regime"].astype(str).to_numpy()
    if training.weights:
        weighter = RegimeWeighter.from_config(config.models)
        weights = weighter.weights_for(regimes)
        weighting = {"effective_size": weighter.report(regimes).effective_size}
    else:
        weights = np.ones(len(samples))
        weighting = {}
    is_replay = (samples.rows["provenance"].astype(str) == "replay").to_numpy()
    weights = replay_weights(weights, is_replay, config.memory.replay)
    return TrainingSet(samples=samples, weights=weights, content_hash=samples.content_hash(weights),
                       hybrid=hybrid, sampling=sampling, weighting=weighting)


@dataclass(frozen=True)
class PreparedRun:
    """Everything before training: the data, the validation sets and the training set."""

    data: MarketData
    timeline: RegimeTimeline
    validation: dict[Regime, Samples]
    training_set: TrainingSet
    archive_version: str
    archive_built: bool
    replay: Samples | None
    replay_version: str


def prepare_from_parts(
    config: StormwatchConfig,
    data: MarketData,
    timeline: RegimeTimeline,
    window: Samples,
    archived: ArchiveSamples,
    replay: Samples | None,
    training: TrainingConfig,
) -> PreparedRun:
    """Validation sets first, every part purged against them, then assemble, balance, weight."""
    held_out = validation_sets(window, archived.samples)
    embargo, sessions = config.models.validation.embargo_sessions, data.panel.sessions
    training_set = assemble_training_set(
        config, purged(window, held_out, embargo=embargo, sessions=sessions),  # type: ignore[arg-type]
        purged(archived.samples, held_out, embargo=embargo, sessions=sessions),
        purged(replay, held_out, embargo=embargo, sessions=sessions), training)
    hybrid_rows = training_set.hybrid.samples
    used = hybrid_rows.where(hybrid_rows.rows["provenance"].astype(str) == "replay")
    return PreparedRun(data=data, timeline=timeline, validation=held_out, training_set=training_set,
                       archive_version=archived.version, archive_built=archived.built,
                       replay=used if len(used) else None, replay_version=replay_version(used))


def prepare(
    loaded: LoadedConfig,
    settings: Settings,
    data: MarketData,
    training: TrainingConfig,
    *,
    archive_version: str | None = None,
    replay: Samples | None | str = "buffer",
) -> PreparedRun:
    """Steps 3-9 in one call (what :func:`rebuild_training_set` replays): ``replay="buffer"``
    reads the replay buffer; a past run passes the replay rows it recorded (or ``None``)."""
    config = loaded.config
    timeline = label_regimes(config, data)
    window = with_regimes(window_samples(config, data), timeline)
    archived = archive_samples(loaded, settings, data, timeline, version=archive_version)
    rows = replay_samples(settings, config, data.as_of) if isinstance(replay, str) else replay
    return prepare_from_parts(config, data, timeline, window, archived, rows if training.replay else None,
                              training)


# --------------------------------------------------------------------------------------------
# Steps 10-11: train, validate per regime
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FittedMember:
    name: str
    model: Any
    fit_seconds: float
    warnings: tuple[str, ...] = ()  # distinct warnings the fit raised (convergence, ...)
    rows: dict[str, Any] = field(default_factory=dict)  # member_rows: every row, or which subsample


def member_rows(spec: MemberSpec, training_set: TrainingSet,
                subsample: SubsampleConfig | None = None) -> tuple[np.ndarray | None, dict[str, Any]]:
    """Which rows of the training set a member fits on, and what the run record says of them.

    Every row (``None``, and the set is not even looked at) unless the member sets ``max_rows``
    and the set is larger; then the positions of a regime-stratified subsample of whole session
    blocks (:class:`models.subsample.SessionBlockSubsampler`, reproducible from ``subsample``'s
    seed) and its :meth:`~models.subsample.SubsampleReport.to_dict`."""
    n = len(training_set.samples)
    if spec.max_rows is None or n <= spec.max_rows:
        return None, {"subsampled": False, "max_rows": spec.max_rows, "rows_before": n, "rows_after": n}
    settings = subsample or SubsampleConfig()
    subsampler = SessionBlockSubsampler(max_rows=spec.max_rows, block_sessions=settings.block_sessions,
                                        random_state=settings.seed)
    samples = training_set.samples
    kept = subsampler.sample_indices(samples.dates, samples.rows["regime"].astype(str).to_numpy(),
                                     sample_weight=training_set.weights)
    return kept, subsampler.report_.to_dict()


def fit_member(name: str, spec: MemberSpec, training_set: TrainingSet,
               subsample: SubsampleConfig | None = None) -> FittedMember:
    """One zoo member fitted on the training set's feature columns with its weights: on every
    row, or on the subsample :func:`member_rows` draws for a member with ``max_rows`` (the
    kept rows' weights with them); ``rows`` says which.

    Warnings raised by the fit (an MLP that stops at ``max_iter``...) are collected and returned
    rather than printed once per iteration into the user's terminal."""
    estimator = spec.build(where=f"models.zoo.{name}")
    kept, rows = member_rows(spec, training_set, subsample)
    samples, weights = training_set.samples, training_set.weights
    if kept is not None:
        samples, weights = samples.take(kept), weights[kept]
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        estimator.fit(fit_inputs(estimator, samples.features), samples.target.to_numpy(),
                      sample_weight=weights)
    seen = tuple(dict.fromkeys(f"{w.category.__name__}: {str(w.message).splitlines()[0]}" for w in caught))
    for_reproducible_prediction(estimator)
    return FittedMember(name=name, model=estimator, fit_seconds=time.perf_counter() - started, warnings=seen,
                        rows=rows)


@dataclass(frozen=True)
class Validation:
    """Per-regime metrics of every member and of the ensemble on the five validation sets.

    ``ensemble`` is the zoo's soft vote; ``window``, when a run also fits the zoo on the window
    alone, is that zoo's own validation, and ``calm_check`` says whether it validated better on
    the calm rows; ``calm_gate`` is set only when it did, and it then serves them. ``served`` is
    the model a run records and the gate judges, and ``ensemble_proba`` and ``metrics["ensemble"]``
    are its."""

    rows: Samples
    metrics: dict[str, pd.DataFrame]  # member (and "ensemble") -> regime_metrics table
    ensemble: SoftVotingEnsemble
    ensemble_proba: np.ndarray
    reference_log_loss: float
    window: Validation | None = None
    calm_gate: CalmGate | None = None
    calm_check: CalmRowsCheck | None = None

    @property
    def served(self) -> SoftVotingEnsemble | CalmGatedEnsemble:
        if self.window is None or self.calm_gate is None:
            return self.ensemble
        return CalmGatedEnsemble(hybrid=self.ensemble, calm=self.window.ensemble, gate=self.calm_gate)


def ensemble_weighting(config: StormwatchConfig) -> dict[str, Any]:
    """The keywords of :func:`validate` that ``models.validation`` configures."""
    settings = config.models.validation
    above = settings.ensemble_storm_vix_above or config.monitors.regimes.vix_crash_above
    storm_members = settings.ensemble_storm_members
    gate = StormGate(above=above) if settings.ensemble_storm_weights or storm_members else None
    return {"ensemble_skill": settings.ensemble_skill, "min_regime_rows": settings.ensemble_min_regime_rows,
            "skill_metric": settings.ensemble_skill_metric, "storm_gate": gate,
            "min_storm_rows": settings.ensemble_min_storm_rows,
            "storm_members": None if storm_members is None else tuple(storm_members)}


def window_zoo_gate(config: StormwatchConfig, training: TrainingConfig) -> CalmGate | None:
    """The gate under which a run serves calm rows by a zoo fitted on the window alone: ``None``
    when ``models.validation.ensemble_window_zoo_below_vix`` is off, or when the run trains on
    the window alone anyway (its one zoo is that zoo)."""
    below = config.models.validation.ensemble_window_zoo_below_vix
    if below is None or variant_name(training) == "baseline":
        return None
    return CalmGate(below=below)


@dataclass(frozen=True)
class CalmRowsCheck:
    """The two zoos' validation log loss on the rows a gate calls calm. The window zoo serves
    them only where it is the lower: on a small universe or a short window it can be worse than
    a coin there, and a rule that serves it anyway would serve that."""

    rule: str  # the gate's, e.g. "vix_level < 25"
    rows: int  # validation rows the gate calls calm
    window_log_loss: float  # nan without such rows
    hybrid_log_loss: float

    @property
    def window_serves(self) -> bool:
        return self.rows > 0 and self.window_log_loss < self.hybrid_log_loss

    def describe(self) -> str:
        """One line for people: who serves the calm rows, and on what evidence."""
        if not self.rows:
            return f"calm rows ({self.rule}): none among the validation rows, so the hybrid zoo serves them"
        who = "the zoo fitted on the window alone" if self.window_serves else "the hybrid zoo"
        return (f"calm rows ({self.rule}): served by {who}; validation log loss on {self.rows:,} such rows: "
                f"window zoo {self.window_log_loss:.4f}, hybrid zoo {self.hybrid_log_loss:.4f}")

    def to_dict(self) -> dict[str, Any]:
        """For JSON: without calm rows the losses are ``None`` (JSON has no NaN)."""
        return {"rule": self.rule, "rows": self.rows, "window_serves": self.window_serves,
                "window_log_loss": self.window_log_loss if self.rows else None,
                "hybrid_log_loss": self.hybrid_log_loss if self.rows else None}


def check_calm_rows(window: Validation, hybrid_proba: np.ndarray, gate: CalmGate) -> CalmRowsCheck:
    """Compare the window zoo (``window``, its validation) with the hybrid zoo (``hybrid_proba``,
    its probabilities on the same validation rows) on the rows ``gate`` calls calm."""
    calm = gate.mask(window.rows.features)
    y = window.rows.target.to_numpy()[calm]

    def loss(p: np.ndarray) -> float:
        return float(log_loss(y, p[calm], labels=[0, 1])) if calm.any() else float("nan")

    return CalmRowsCheck(rule=gate.rule, rows=int(calm.sum()), window_log_loss=loss(window.ensemble_proba),
                         hybrid_log_loss=loss(np.asarray(hybrid_proba)))


def with_calm_rows_by_window(validation: Validation, window: Validation, gate: CalmGate) -> Validation:
    """``validation`` (the hybrid zoo's) with ``window`` (the window zoo's, validated on the same
    rows) serving the rows ``gate`` calls calm, where :func:`check_calm_rows` finds it the better
    of the two there: the served model is then the pair, else the hybrid zoo alone. The metrics
    keep both zoos' ensembles (``hybrid_ensemble``, ``window_ensemble``) beside the served one's."""
    if not validation.rows.features.index.equals(window.rows.features.index):
        raise ValueError("the hybrid and the window zoo were validated on different rows")
    check = check_calm_rows(window, validation.ensemble_proba, gate)
    members = {name: table for name, table in validation.metrics.items() if name != "ensemble"}
    metrics = {**members, "hybrid_ensemble": validation.metrics["ensemble"],
               "window_ensemble": window.metrics["ensemble"], "ensemble": validation.metrics["ensemble"]}
    if not check.window_serves:
        return replace(validation, window=window, calm_check=check, metrics=metrics)
    # what the pair predicts row by row, from what each zoo's validation already predicted
    proba = np.where(gate.mask(validation.rows.features), window.ensemble_proba, validation.ensemble_proba)
    y = validation.rows.target.to_numpy()
    metrics["ensemble"] = regime_metrics(y, proba, validation.rows.rows["regime"].astype(str).to_numpy())
    return replace(validation, window=window, calm_gate=gate, calm_check=check, metrics=metrics,
                   ensemble_proba=proba)


def storm_rule(ensemble: SoftVotingEnsemble) -> str | None:
    """The rule under which an ensemble serves its storm weights, for people; None without one."""
    gate = ensemble.storm_gate if ensemble.storm_weights is not None else None
    return None if gate is None else f"{gate.column} > {gate.above:g}"


def _loss(frame: pd.DataFrame, metric: str) -> pd.Series:
    """The ``metric`` column of a ``regime_metrics`` table as a loss (lower is better)."""
    return frame["log_loss"] if metric == "log_loss" else 1.0 - frame["accuracy"]


def _skill_weights(metrics: Mapping[str, pd.DataFrame], reference: pd.DataFrame, ensemble_skill: str,
                   min_regime_rows: int, metric: str) -> dict[str, float]:
    """Weights from validation skill in ``metric``: averaged over the regime sets with enough
    rows, or (for ``ensemble_skill="overall"``, or when no set has enough) on all rows together."""
    per_regime = [r for r in reference.index if r != "overall"]
    losses = {name: _loss(frame, metric) for name, frame in metrics.items()}
    reference_loss = _loss(reference, metric)
    skill = None if ensemble_skill == "overall" else regime_mean_skill(
        {name: loss[per_regime].to_dict() for name, loss in losses.items()},
        reference_loss[per_regime].to_dict(), reference.loc[per_regime, "n"].to_dict(),
        min_rows=min_regime_rows)
    if skill is None:
        return ensemble_weights({name: float(loss["overall"]) for name, loss in losses.items()},
                                float(reference_loss["overall"]))
    return weights_from_skill(skill)


def validate(members: list[FittedMember], prepared: PreparedRun, *, ensemble_skill: str = "regime_mean",
             min_regime_rows: int = 200, skill_metric: str = "log_loss", storm_gate: StormGate | None = None,
             min_storm_rows: int = 200, storm_members: Sequence[str] | None = None) -> Validation:
    """Score every member on the validation sets, weight the ensemble by validation skill (log
    loss against predicting the training base rate: averaged over the regime sets with at least
    ``min_regime_rows`` rows, or on all rows for ``ensemble_skill="overall"``; or accuracy above
    the base rate's constant prediction, for ``skill_metric="accuracy"``), and score the
    ensemble; :func:`ensemble_weighting` reads these keywords from ``models.validation``.

    With a ``storm_gate`` and at least ``min_storm_rows`` validation rows it calls a storm, those
    rows get weights of their own (skill on them alone) and the other weights are chosen on the
    rest. With ``storm_members`` (and a gate) only those members serve storm rows, however few
    storm rows validation has: weighted by their skill on the storm rows when there are enough,
    else alike."""
    held = [s for s in prepared.validation.values() if len(s)]
    if not held:
        raise ValueError("every validation set is empty: nothing to validate on")
    rows = Samples.concat(held)
    y = rows.target.to_numpy()
    regimes = rows.rows["regime"].astype(str).to_numpy()
    train = prepared.training_set
    base_rate = float(np.average(train.samples.target.to_numpy(), weights=train.weights))
    member_p = {m.name: positive_class_proba(m.model, rows.features) for m in members}
    metrics = {name: regime_metrics(y, p, regimes) for name, p in member_p.items()}
    reference = regime_metrics(y, np.full(len(y), base_rate), regimes)
    storm = np.zeros(len(y), dtype=bool) if storm_gate is None else storm_gate.mask(rows.features)
    storm_weights = None
    unknown = sorted(set(storm_members or ()) - set(member_p))
    if unknown:
        raise ValueError(f"storm_members {unknown} are not among the fitted members ({', '.join(member_p)})")
    enough = storm.sum() >= min_storm_rows
    if storm_gate is not None and (enough or storm_members):
        calm = ~storm

        def on(mask: np.ndarray, p: np.ndarray) -> pd.DataFrame:
            return regime_metrics(y[mask], p[mask], regimes[mask])

        constant = np.full(len(y), base_rate)
        serving = list(storm_members or member_p)
        chosen = (_skill_weights({n: on(storm, member_p[n]) for n in serving}, on(storm, constant),
                                 "overall", 1, skill_metric)
                  if enough else {n: 1.0 / len(serving) for n in serving})
        storm_weights = {n: chosen.get(n, 0.0) for n in member_p}
        weights = _skill_weights({n: on(calm, p) for n, p in member_p.items()}, on(calm, constant),
                                 ensemble_skill, min_regime_rows, skill_metric)
    else:
        weights = _skill_weights(metrics, reference, ensemble_skill, min_regime_rows, skill_metric)
    ensemble = SoftVotingEnsemble(members={m.name: m.model for m in members}, weights=weights,
                                  feature_names=train.samples.feature_names, storm_weights=storm_weights,
                                  storm_gate=storm_gate if storm_weights is not None else None)
    proba = ensemble.predict_proba(rows.features)[:, 1]
    metrics["ensemble"] = regime_metrics(y, proba, regimes)
    return Validation(rows=rows, metrics=metrics, ensemble=ensemble, ensemble_proba=proba,
                      reference_log_loss=float(reference.loc["overall", "log_loss"]))


def validate_run(config: StormwatchConfig, members: list[FittedMember], prepared: PreparedRun, *,
                 window: tuple[list[FittedMember], PreparedRun] | None = None,
                 gate: CalmGate | None = None) -> Validation:
    """Step 11 as a run takes it: the zoo validated and weighted as ``models.validation`` says,
    and, with a window zoo (its members and its prepared set) and the ``gate`` of
    :func:`window_zoo_gate`, that zoo validated the same way and serving the calm rows."""
    weighting = ensemble_weighting(config)
    validation = validate(members, prepared, **weighting)
    if window is None or gate is None:
        return validation
    window_members, window_prepared = window
    return with_calm_rows_by_window(validation, validate(window_members, window_prepared, **weighting), gate)


def accuracy_table(metrics: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Accuracy per regime (rows: the five regimes and overall) of every member and the
    ensemble, with the count behind each row."""
    ensemble = metrics["ensemble"]
    order = [r.value for r in REGIMES if r.value in ensemble.index] + ["overall"]
    table = pd.DataFrame({"n": ensemble.loc[order, "n"]})
    for name, frame in metrics.items():
        table[name] = frame.loc[order, "accuracy"]
    return table


# --------------------------------------------------------------------------------------------
# Step 12: record
# --------------------------------------------------------------------------------------------


def new_run_id(as_of: pd.Timestamp) -> str:
    return f"{as_of:%Y%m%d}-{datetime.now(UTC):%H%M%S}-{uuid4().hex[:6]}"


def start_run(loaded: LoadedConfig, settings: Settings, data: MarketData, training: TrainingConfig,
              *, flow_run_id: str = "") -> str:
    """Record the run as ``running`` (and its configuration), before any heavy work."""
    runs = open_runs(settings)
    try:
        runs.store.record_config(content_hash=loaded.content_hash, version=loaded.version,
                                 content=loaded.config.model_dump_json())
        run_id = new_run_id(data.as_of)
        runs.start(new_run(run_id=run_id, config_hash=loaded.content_hash, config_version=loaded.version,
                           as_of=data.as_of.date(), source=data.source, symbols=data.symbols,
                           variant=variant_name(training), flow_run_id=flow_run_id))
        runs.update(run_id, data_snapshot=data.snapshot)
        return run_id
    finally:
        runs.store.dispose()


def record_prepared(settings: Settings, run_id: str, prepared: PreparedRun) -> None:
    """Lineage known before training: archive, replay rows (kept with the run), the set's hash."""
    runs = open_runs(settings)
    try:
        if prepared.replay is not None:
            runs.write_file(run_id, "replay.parquet", prepared.replay.to_frame())
        ts = prepared.training_set
        details = {"provenance": ts.hybrid.counts.reset_index().to_dict("records"),
                   "archive_shares": ts.hybrid.archive_shares.to_dict("records"),
                   "sampling": ts.sampling, "weighting": ts.weighting,
                   "validation_rows": {r.value: len(s) for r, s in prepared.validation.items()}}
        runs.update(run_id, archive_version=prepared.archive_version, replay_version=prepared.replay_version,
                    replay_rows=0 if prepared.replay is None else len(prepared.replay),
                    training_set_hash=ts.content_hash, training_rows=len(ts.samples),
                    effective_rows=ts.effective_rows, details=json.dumps(details, default=str))
    finally:
        runs.store.dispose()


def record_success(
    loaded: LoadedConfig,
    settings: Settings,
    run_id: str,
    prepared: PreparedRun,
    members: list[FittedMember],
    validation: Validation,
    *,
    seconds: float,
    admit_replay: bool,
    window: tuple[Sequence[FittedMember], PreparedRun] | None = None,
) -> dict[str, Any]:
    """Write the models and metrics and mark the run succeeded; then admit the served model's
    worst validation errors to the replay buffer. Returns what the buffer did.

    The window zoo's members (``window``: its members and its prepared set) are kept inside the
    served model's file when they serve calm rows, never as files of their own; the run's details
    say whether they serve and why, how they were weighted, fitted and on which set."""
    config = loaded.config
    files = [ModelFile(member=m.name, model=m.model, fit_seconds=m.fit_seconds,
                       ensemble_weight=validation.ensemble.weights[m.name],
                       params=config.models.zoo[m.name].kwargs) for m in members]  # type: ignore[index]
    window_members = list(window[0]) if window is not None else []
    files.append(ModelFile(member="ensemble", model=validation.served,
                           fit_seconds=sum(m.fit_seconds for m in [*members, *window_members])))
    runs = open_runs(settings)
    try:
        details = json.loads(runs.get(run_id).details or "{}")
        details["member_rows"] = {m.name: m.rows for m in members}  # which members were subsampled, how
        storm, storm_weights = storm_rule(validation.ensemble), validation.ensemble.storm_weights
        if storm is not None:  # the weights that rows in storms are served with
            details["storm_weights"] = {"rule": storm, "weights": dict(storm_weights or {})}
        if window is not None and validation.window is not None:  # who serves calm rows, on what evidence
            details["window_zoo"] = window_zoo_details(validation, window_members, window[1].training_set)
        runs.succeed(run_id, files, validation.metrics, seconds=seconds, peak_memory_mb=peak_memory_mb(),
                     details=json.dumps(details, default=str))
    finally:
        runs.store.dispose()
    if not admit_replay:
        return {}
    buffer = ReplayBuffer(open_store(settings), config.memory.replay)
    try:
        report = buffer.admit(validation.rows, validation.ensemble_proba, model_version=f"{run_id}/ensemble",
                              as_of=prepared.data.as_of.date(), horizon=config.market.labels.horizon)
    finally:
        buffer.store.dispose()
    return report.__dict__


def window_zoo_details(validation: Validation, window_members: Sequence[FittedMember],
                       training_set: TrainingSet) -> dict[str, Any]:
    """What the run record keeps of the window zoo: the rule, whether it serves (both zoos' log
    loss on the calm validation rows), its weights, its set, fits and rows."""
    window, check = validation.window, validation.calm_check
    assert window is not None and check is not None
    return {"rule": check.rule, "served": check.window_serves, "weights": dict(window.ensemble.weights),
            "training_rows": len(training_set.samples), "training_set_hash": training_set.content_hash,
            "fit_seconds": {m.name: round(m.fit_seconds, 3) for m in window_members},
            "member_rows": {m.name: m.rows for m in window_members},
            "calm_validation_rows": check.rows, "window_log_loss": check.to_dict()["window_log_loss"],
            "hybrid_log_loss": check.to_dict()["hybrid_log_loss"]}


def record_failure(settings: Settings, run_id: str, exc: BaseException) -> None:
    runs = open_runs(settings)
    try:
        runs.fail(run_id, f"{type(exc).__name__}: {exc}")
    finally:
        runs.store.dispose()


# --------------------------------------------------------------------------------------------
# Rebuilding a past run's training set
# --------------------------------------------------------------------------------------------


def rebuild_training_set(settings: Settings, run_id: str) -> tuple[TrainingSet, str]:
    """The training set of a recorded run, rebuilt from its lineage: the configuration it used
    (by content hash), its source, symbols and as-of session, its archive version and the replay
    rows it trained on. Returns the set and the hash the run recorded, which must match."""
    from memory.tables import ConfigVersion

    runs = open_runs(settings)
    try:
        run = runs.get(run_id)
        with runs.store.session() as session:
            stored = session.get(ConfigVersion, run.config_hash)
    finally:
        runs.store.dispose()
    if stored is None:
        raise LookupError(f"run {run.run_id}: configuration {run.config_hash[:12]} is not in the store")
    config = parse_config_json(stored.content)
    loaded = LoadedConfig(config=config, path=settings.home, content_hash=config.content_hash())
    selection = MarketSelection(source=run.source, symbols=tuple(run.symbols.split(",")))
    source, universe = open_selection(loaded, selection)
    as_of = pd.Timestamp(run.as_of)
    panel = load_panel(BarCache(settings.cache_dir, source.info.name), universe).truncate(as_of)
    data = MarketData(source=run.source, panel=panel, as_of=as_of, snapshot=panel_snapshot(panel))
    replay = None
    if run.replay_rows:
        frame = pd.read_parquet(runs.run_dir(run.run_id) / "replay.parquet")
        replay = Samples.from_frame(frame, FEATURE_NAMES)
    training = TrainingConfig(**training_switches(run.variant), max_parallel_members=1)
    prepared = prepare(loaded, settings, data, training, archive_version=run.archive_version or None,
                       replay=replay)
    return prepared.training_set, run.training_set_hash


def parse_config_json(content: str) -> StormwatchConfig:
    return StormwatchConfig.model_validate_json(content)


def training_switches(variant: str) -> dict[str, bool]:
    """The ablation switches a variant name stands for (the inverse of :func:`variant_name`)."""
    if variant == "hybrid":
        return dict.fromkeys(("archive", "balance", "weights", "replay"), True)
    steps = set(variant.split("+")) if variant != "baseline" else set()
    return {name: name in steps for name in ("archive", "balance", "weights", "replay")}


# --------------------------------------------------------------------------------------------
# Step 13: the promotion gate
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GateOutcome:
    """What the gate decided for a run, and what the aliases did."""

    decision: GateDecision
    champion_before: str | None
    promoted: bool
    champion_metrics: pd.DataFrame | None = None  # the champion's regime_metrics on the same rows


def gate_rows(prepared: PreparedRun) -> dict[str, Any]:
    """Which rows the gate judged on: per validation set, its rows and sessions."""
    out = {}
    for regime, rows in prepared.validation.items():
        if len(rows):
            dates = rows.dates
            out[regime.value] = {"rows": len(rows), "first": str(dates.min().date()),
                                 "last": str(dates.max().date()), "sessions": int(dates.nunique())}
    return out


def promotion_gate(loaded: LoadedConfig, settings: Settings, run_id: str, prepared: PreparedRun,
                   validation: Validation) -> GateOutcome:
    """The challenger (this run's ensemble) against the serving champion on the same validation
    rows, which neither trained on; the decision is recorded and the aliases move only on a pass
    (a failed challenger becomes the ``challenger``, the champion keeps serving)."""
    config = loaded.config
    registry = Registry(open_store(settings))
    runs = open_runs(settings)
    try:
        champion = registry.champion()
        champion_proba = None
        if champion is not None:
            champion_proba = positive_class_proba(runs.load(champion), validation.rows.features)
        rows = validation.rows
        decision = PromotionGate(config.models.gate, horizon=config.market.labels.horizon).decide(
            validation.ensemble_proba, rows.target.to_numpy(), rows.rows["regime"].astype(str).to_numpy(),
            rows.dates, champion=champion_proba)
        registry.record_decision(gate_record(run_id, champion, decision, gate_rows(prepared)))
        if decision.promote:
            registry.promote(run_id, reason="passed the gate" if champion else "first model past the floors")
        else:
            registry.set_alias(CHALLENGER, run_id, reason="failed the gate: " + "; ".join(decision.reasons))
    finally:
        registry.store.dispose()
        runs.store.dispose()
    champion_metrics = None
    if champion_proba is not None:
        champion_metrics = regime_metrics(rows.target.to_numpy(), champion_proba,
                                          rows.rows["regime"].astype(str).to_numpy())
    return GateOutcome(decision=decision, champion_before=champion, promoted=decision.promote,
                       champion_metrics=champion_metrics)


# --------------------------------------------------------------------------------------------
# SHAP by regime
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Explanation:
    table: pd.DataFrame  # member, feature, regime, rows, mean_abs_shap, rank_score
    path: Path  # the Parquet kept with the run
    plot: Path | None


def explain_run(
    loaded: LoadedConfig, settings: Settings, run_id: str, validation: Validation
) -> Explanation:
    """Mean |SHAP| per feature and regime of every tree member on the validation rows, kept with
    the run (``runs/<run>/shap.parquet``) and drawn to ``reports/<run>/shap-by-regime.png``."""
    shap_config = loaded.config.models.shap
    rows = validation.rows
    regimes = rows.rows["regime"].astype(str).to_numpy()
    table = explain_members(validation.ensemble.members, rows.features, regimes,
                            samples_per_regime=shap_config.samples_per_regime)
    runs = open_runs(settings)
    try:
        path = runs.write_file(run_id, "shap.parquet", table)
    finally:
        runs.store.dispose()
    target = settings.reports_dir / run_id / "shap-by-regime.png"
    plot = plot_regime_importance(table, target) if len(table) else None
    return Explanation(table=table, path=path, plot=plot)


# --------------------------------------------------------------------------------------------
# Sector and symbol tracking, and the signal backtest
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Diagnostics:
    tracking: TrackingReport
    backtest: BacktestResult
    heatmap: Path


def diagnose(
    loaded: LoadedConfig, settings: Settings, run_id: str, validation: Validation
) -> Diagnostics:
    """The ensemble's validation predictions per sector and symbol, and as a long/short book;
    kept with the run (``runs/<run>/sectors.parquet``, ``symbols.parquet``, ``backtest.parquet``)."""
    config = loaded.config
    rows = validation.rows
    symbols = rows.features.index.get_level_values("symbol")
    regimes = rows.rows["regime"].astype(str).to_numpy()
    report = track(rows.target.to_numpy(), validation.ensemble_proba,
                   sectors=rows.rows["sector"].astype(str), symbols=symbols, regimes=regimes,
                   min_rows=config.models.backtest.min_rows)
    backtest = signal_backtest(rows.dates, symbols, validation.ensemble_proba, rows.rows["forward_return"],
                               regimes, horizon=config.market.labels.horizon,
                               cost_bps=config.models.backtest.cost_bps)
    runs = open_runs(settings)
    try:
        runs.write_file(run_id, "sectors.parquet", report.by_sector)
        runs.write_file(run_id, "symbols.parquet", report.by_symbol)
        runs.write_file(run_id, "backtest.parquet", backtest.summary)
    finally:
        runs.store.dispose()
    heatmap = plot_sector_regime(report, settings.reports_dir / run_id / "sector-by-regime.png")
    return Diagnostics(tracking=report, backtest=backtest, heatmap=heatmap)
