"""Features of the newest sessions from a trailing window equal the full-history computation."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from market.features import (
    FEATURE_NAMES,
    MAX_LOOKBACK,
    UNSTABLE_SESSIONS,
    _compute,
    compute_features,
    newest_features,
)
from market.panel import BarPanel
from tests.panels import simulated_panel, small_universe


@pytest.fixture(scope="module")
def panel() -> BarPanel:
    """One symbol per sector, 2005 to late 2026: long enough for KAMA's worst-case warm-up."""
    return simulated_panel(date(2026, 11, 20), small_universe(1))


@pytest.fixture(scope="module")
def full(panel: BarPanel):  # noqa: ANN201 - a DataFrame
    """The last five sessions computed over the whole history, in float64."""
    return _compute(panel, panel.sessions[-5:], None, np.float64).frame


def test_the_default_window_equals_the_full_history_within_1e_9(panel: BarPanel, full) -> None:  # noqa: ANN001
    newest = newest_features(panel, 5, dtype=np.float64).frame
    assert newest.index.equals(full.index) and list(newest.columns) == list(FEATURE_NAMES)
    np.testing.assert_allclose(newest.to_numpy(), full.to_numpy(), rtol=1e-9, atol=1e-9)


def test_without_warm_up_only_the_recursive_indicators_differ(panel: BarPanel, full) -> None:  # noqa: ANN001
    """From exactly the lookback, every feature that reads only its lookback is already equal;
    what differs is TA-Lib's recursive indicators, seeded where the window starts."""
    newest = newest_features(panel, 5, warmup=0, dtype=np.float64).frame
    steady = [name for name in FEATURE_NAMES if name not in UNSTABLE_SESSIONS]
    np.testing.assert_allclose(newest[steady].to_numpy(), full[steady].to_numpy(), rtol=1e-9, atol=1e-9)
    gap = ((newest - full).abs() / np.maximum(1.0, full.abs())).max()
    assert set(gap.index[gap > 1e-9]) <= set(UNSTABLE_SESSIONS)
    assert gap["rsi_28"] > 1e-9  # the slowest Wilder smoothing has not settled yet: the test can fail


def test_a_warm_up_covering_every_unstable_period_is_equal_too(panel: BarPanel, full) -> None:  # noqa: ANN001
    warmup = max(UNSTABLE_SESSIONS.values())
    assert len(panel.sessions) > 5 + MAX_LOOKBACK + warmup  # a real trailing window, not the whole panel
    newest = newest_features(panel, 5, warmup=warmup, dtype=np.float64).frame
    np.testing.assert_allclose(newest.to_numpy(), full.to_numpy(), rtol=1e-9, atol=1e-9)


def test_float32_by_default_like_compute_features(panel: BarPanel) -> None:
    newest = newest_features(panel, 2)
    stored = compute_features(panel, panel.sessions[-2:])
    assert (newest.frame.dtypes == np.float32).all()
    assert newest.frame.index.equals(stored.frame.index)
    np.testing.assert_allclose(newest.frame.to_numpy(), stored.frame.to_numpy(), rtol=1e-6)


def test_bad_arguments_are_refused(panel: BarPanel) -> None:
    with pytest.raises(ValueError, match="sessions must be at least 1"):
        newest_features(panel, 0)
    with pytest.raises(ValueError, match="warmup"):
        newest_features(panel, 1, warmup=-1)
    with pytest.raises(KeyError, match="no_such_feature"):
        newest_features(panel, 1, features=["ret_1", "no_such_feature"])
