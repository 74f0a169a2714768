"""Session-block subsampling (issue 12, point 2): reproducible, within the budget, whole
sessions, regime shares kept, a set within the budget untouched."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from models.subsample import SessionBlockSubsampler

REGIMES = np.array(["low_volatility", "normal", "high_volatility", "crash", "recovery"])


def panel(n_sessions: int = 600, n_symbols: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of a balanced-looking set: persistent regimes (a Markov chain over sessions), every
    symbol of a session in its regime, storm sessions drawn twice (oversampled), some symbols
    missing on some sessions, and the rows not in time order (window, then archive)."""
    rng = np.random.default_rng(seed)
    sessions = pd.bdate_range("2010-01-04", periods=n_sessions)
    regime, state = [], 1
    for _ in range(n_sessions):
        if rng.random() < 0.05:
            state = int(rng.integers(len(REGIMES)))
        regime.append(state)
    dates, regimes = [], []
    for day, code in zip(sessions, regime, strict=True):
        symbols = n_symbols - int(rng.integers(0, 5))
        copies = 2 if REGIMES[code] in ("crash", "recovery") else 1
        dates += [day] * symbols * copies
        regimes += [REGIMES[code]] * symbols * copies
    order = rng.permutation(len(dates))
    dates_arr = np.array(dates, dtype="datetime64[ns]")[order]
    regimes_arr = np.array(regimes)[order]
    weights = np.where(np.isin(regimes_arr, ["crash", "recovery"]), 2.0, 1.0)
    return dates_arr, regimes_arr, weights


def blocks_of(dates: np.ndarray, block_sessions: int) -> np.ndarray:
    _, session = np.unique(dates, return_inverse=True)
    return session // block_sessions


def test_the_same_inputs_and_seed_give_the_same_rows_and_another_seed_others() -> None:
    dates, regimes, weights = panel()
    first = SessionBlockSubsampler(max_rows=5000, random_state=3).sample_indices(dates, regimes)
    again = SessionBlockSubsampler(max_rows=5000, random_state=3).sample_indices(dates, regimes, sample_weight=weights)
    other = SessionBlockSubsampler(max_rows=5000, random_state=4).sample_indices(dates, regimes)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert (np.diff(first) > 0).all()  # ascending positions: the set's order is kept


@pytest.mark.parametrize("max_rows", [700, 5000, 12000])
def test_the_budget_is_never_exceeded_and_missed_by_less_than_a_block(max_rows: int) -> None:
    dates, regimes, _ = panel()
    subsampler = SessionBlockSubsampler(max_rows=max_rows, block_sessions=5, random_state=0)
    kept = subsampler.sample_indices(dates, regimes)
    block = blocks_of(dates, 5)
    sizes = np.bincount(block)
    left_out = np.setdiff1d(np.arange(sizes.size), np.unique(block[kept]))
    assert kept.size <= max_rows
    assert max_rows - kept.size < sizes[left_out].min()  # not even the smallest block left out fits
    report = subsampler.report_
    assert report.subsampled and report.rows_after == kept.size and report.rows_before == len(dates)
    assert report.blocks_before == sizes.size and report.blocks_after == sizes.size - left_out.size


def test_whole_sessions_are_kept_or_left_out_with_every_symbol_and_copy() -> None:
    dates, regimes, _ = panel()
    kept = SessionBlockSubsampler(max_rows=4000, block_sessions=3, random_state=1).sample_indices(dates, regimes)
    per_session = pd.Series(1, index=dates).groupby(level=0).size()
    kept_per_session = pd.Series(1, index=dates[kept]).groupby(level=0).size()
    assert (kept_per_session == per_session.loc[kept_per_session.index]).all()
    # and whole blocks: a block is kept with all of its sessions
    block = blocks_of(dates, 3)
    kept_blocks = np.unique(block[kept])
    assert np.isin(block, kept_blocks).sum() == kept.size


def test_each_regime_keeps_its_share_of_rows_and_of_weight() -> None:
    dates, regimes, weights = panel(n_sessions=1500, n_symbols=30)
    subsampler = SessionBlockSubsampler(max_rows=10_000, block_sessions=5, random_state=0)
    kept = subsampler.sample_indices(dates, regimes, sample_weight=weights)
    for regime in REGIMES:
        before = (regimes == regime).mean()
        after = (regimes[kept] == regime).mean()
        assert after == pytest.approx(before, abs=0.02), regime
        row = subsampler.report_[regime]
        assert row.share_before == pytest.approx(before) and row.share_after == pytest.approx(after)
        w_after = weights[kept][regimes[kept] == regime].sum() / weights[kept].sum()
        assert row.weight_share_after == pytest.approx(w_after)
        assert row.weight_share_after == pytest.approx(row.weight_share_before, abs=0.03), regime


def test_a_set_within_the_budget_is_kept_whole() -> None:
    dates, regimes, _ = panel(n_sessions=100)
    for max_rows in (None, len(dates), len(dates) + 1):
        subsampler = SessionBlockSubsampler(max_rows=max_rows, random_state=0)
        kept = subsampler.sample_indices(dates, regimes)
        np.testing.assert_array_equal(kept, np.arange(len(dates)))
        assert not subsampler.report_.subsampled and subsampler.report_.rows_after == len(dates)


def test_a_rare_regime_of_a_few_blocks_keeps_rows() -> None:
    """A regime whose quota is smaller than its blocks still keeps one (the top-up gives what
    the others leave to the regime furthest below its quota)."""
    sessions = pd.bdate_range("2020-01-01", periods=400)
    dates = np.repeat(sessions, 10)
    regimes = np.where(dates < sessions[12], "crash", "normal")  # 3% of rows: 120 of 4,000
    subsampler = SessionBlockSubsampler(max_rows=1000, block_sessions=5, random_state=0)
    kept = subsampler.sample_indices(dates, regimes)
    assert kept.size == 1000
    # its two whole blocks hold 100 rows (the third is mostly normal): quota 25, smaller than a
    # block, yet the top-up gives it one
    assert subsampler.report_["crash"].rows_after >= 50


def test_parameters_are_checked_when_used_and_the_estimator_clones() -> None:
    dates, regimes, _ = panel(n_sessions=50)
    with pytest.raises(ValueError, match="max_rows"):
        SessionBlockSubsampler(max_rows=0).sample_indices(dates, regimes)
    with pytest.raises(ValueError, match="block_sessions"):
        SessionBlockSubsampler(max_rows=10, block_sessions=0).sample_indices(dates, regimes)
    with pytest.raises(ValueError, match="rows"):
        SessionBlockSubsampler(max_rows=10).sample_indices(dates[:-1], regimes)
    subsampler = SessionBlockSubsampler(max_rows=100, block_sessions=4, random_state=2)
    assert clone(subsampler).get_params() == {"max_rows": 100, "block_sessions": 4, "random_state": 2}
    subsampler.sample_indices(dates, regimes)
    report = subsampler.report_.to_dict()
    assert report["seed"] == 2 and report["block_sessions"] == 4 and report["max_rows"] == 100
    assert {r["regime"] for r in report["regimes"]} == set(regimes)
