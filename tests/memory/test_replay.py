"""The error replay buffer on SQLite and PostgreSQL: the worst 5% within each regime, the noise
guard, bounded, merged, aged out, and capped where it meets a training set."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from market.samples import Samples
from memory.config import ReplayConfig
from memory.hybrid import cap_replay
from memory.replay import ReplayBuffer, log_loss_per_row, replay_weights, select_worst
from memory.store import Store

FEATURES = ["a", "b", "c"]


def scored(n_dates: int = 50, n_symbols: int = 20, seed: int = 0) -> tuple[Samples, np.ndarray]:
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2024-01-01", periods=n_dates)
    index = pd.MultiIndex.from_product([dates, [f"S{i:02d}" for i in range(n_symbols)]], names=["date", "symbol"])
    n = len(index)
    rows = pd.DataFrame({
        "forward_return": rng.normal(scale=0.02, size=n),
        "label_end": index.get_level_values("date") + pd.Timedelta(days=7),
        "sector": "Energy", "regime": rng.choice(["normal", "crash", "recovery"], size=n, p=[0.8, 0.15, 0.05]),
        "event": "",
    }, index=index)
    features = pd.DataFrame(rng.normal(size=(n, 3)), index=index, columns=FEATURES)
    target = pd.Series(rng.integers(0, 2, n), index=index)
    return Samples(features, target, rows), rng.uniform(0.01, 0.99, n)


def test_selects_the_worst_fraction_within_each_regime_above_the_noise_floor() -> None:
    samples, proba = scored()
    config = ReplayConfig(worst_fraction=0.05, noise_quantile=0.2)
    picked = select_worst(samples, proba, config)
    loss = log_loss_per_row(samples.target.to_numpy(), proba)
    regimes = samples.rows["regime"].to_numpy()
    size = np.abs(samples.rows["forward_return"].to_numpy())
    floor = np.quantile(size, 0.2)
    chosen = picked["position"].to_numpy()
    assert (size[chosen] > floor).all()  # no coin-flip label admitted
    for regime in ("normal", "crash", "recovery"):
        rows = np.flatnonzero(regimes == regime)
        mine = chosen[regimes[chosen] == regime]
        assert len(mine) == int(np.ceil(0.05 * len(rows)))  # stratified: every regime gets its 5%
        eligible = rows[size[rows] > floor]
        assert loss[mine].min() >= np.sort(loss[eligible])[::-1][len(mine) - 1] - 1e-12  # the worst ones


def test_admits_merges_ages_out_and_stays_bounded(store: Store) -> None:
    samples, proba = scored()
    buffer = ReplayBuffer(store, ReplayConfig(capacity=1000, max_age_days=30))
    first = buffer.admit(samples, proba, model_version="run1/ensemble", as_of=date(2024, 3, 15), horizon=5)
    assert first.admitted == first.offered == first.size > 0 and first.merged == 0
    again = buffer.admit(samples, proba, model_version="run2/ensemble", as_of=date(2024, 3, 22), horizon=5)
    assert again.admitted == 0 and again.merged == again.offered  # the same mistakes, merged
    entries = buffer.entries()
    assert not entries.duplicated(["symbol", "date", "horizon"]).any()
    assert (entries["times_seen"] == 2).all() and set(entries["model_version"]) == {"run2/ensemble"}

    bounded = ReplayBuffer(store, ReplayConfig(capacity=60, max_regime_share=0.5, max_age_days=30))
    bigger, p2 = scored(n_dates=200, seed=1)
    report = bounded.admit(bigger, p2, model_version="run3/ensemble", as_of=date(2024, 5, 1), horizon=5)
    assert report.aged_out == len(entries) - report.merged  # not seen again since 2024-03-22 (> 30 days)
    assert report.size == 60 and report.evicted == report.admitted + report.merged - 60  # lowest losses went
    assert bounded.entries()["regime"].value_counts().max() <= 30  # no regime above half the capacity
    loaded = bounded.load(FEATURES, as_of=date(2024, 12, 31))
    assert loaded is not None and len(loaded) == 60
    assert set(loaded.rows["model_version"]) == {"run3/ensemble"}
    assert list(loaded.features.columns) == FEATURES and "forward_return" in loaded.rows.columns


def test_only_matured_labels_are_replayed_and_the_catalogue_is_checked(store: Store) -> None:
    samples, proba = scored()
    buffer = ReplayBuffer(store, ReplayConfig())
    buffer.admit(samples, proba, model_version="run1", as_of=date(2024, 3, 15), horizon=5)
    early = buffer.load(FEATURES, as_of=date(2024, 1, 20))
    assert early is not None and (early.rows["label_end"] <= pd.Timestamp("2024-01-20")).all()
    with pytest.raises(ValueError, match="another feature catalogue"):
        buffer.load(["a", "b", "z"], as_of=date(2024, 12, 31))


def test_replay_share_and_row_weight_are_capped() -> None:
    samples, proba = scored()
    replay = samples.assign(loss=log_loss_per_row(samples.target.to_numpy(), proba))
    config = ReplayConfig(max_share_of_training=0.10, weight_multiplier=1.5, max_row_weight=3.0)
    capped = cap_replay(replay, other_rows=900, config=config)
    assert len(capped) == 100 and len(capped) / (900 + len(capped)) <= 0.10
    assert capped.rows["loss"].min() >= np.sort(replay.rows["loss"].to_numpy())[::-1][99]
    weights = replay_weights(np.array([2.0, 2.0, 1.0]), np.array([True, False, True]), config)
    np.testing.assert_allclose(weights, [3.0, 2.0, 1.5])
