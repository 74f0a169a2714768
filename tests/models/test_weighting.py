"""Regime-weighted loss (SPEC.md module 5): weights, effective size, weighted metrics."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from market.vocabulary import Regime
from models.config import ModelsConfig
from models.weighting import RegimeWeighter, weighted_accuracy, weighted_mae

SPEC_WEIGHTS = {"crash": 2.0, "recovery": 1.5, "high_volatility": 1.3, "normal": 1.0, "low_volatility": 0.8}
BALANCED = np.repeat(["low_volatility", "normal", "high_volatility", "crash", "recovery"], [200, 400, 200, 100, 100])


def test_balanced_thousand_has_effective_size_1170_and_crash_holds_17_percent_of_the_weight() -> None:
    report = RegimeWeighter().report(BALANCED)
    assert report.n == 1000
    assert report.effective_size == pytest.approx(1170.0)
    crash = report["crash"]
    assert (crash.count, crash.weight) == (100, 2.0)
    assert crash.sample_share == pytest.approx(0.10)
    assert crash.weight_share == pytest.approx(0.2 / 1.17)
    assert round(crash.weight_share, 3) == 0.171
    assert report["low_volatility"].weight_share == pytest.approx(160 / 1170)
    frame = report.to_frame()
    assert frame["sample_share"].sum() == pytest.approx(1) and frame["weight_share"].sum() == pytest.approx(1)
    assert frame.loc["normal", "count"] == 400


def test_weights_for_gives_each_sample_its_regimes_weight() -> None:
    weights = RegimeWeighter().weights_for(["crash", Regime.RECOVERY, "high_volatility", "normal", "low_volatility"])
    np.testing.assert_allclose(weights, [2.0, 1.5, 1.3, 1.0, 0.8])
    assert RegimeWeighter().weights_for(BALANCED).sum() == pytest.approx(1170.0)
    custom = RegimeWeighter(weights=dict(SPEC_WEIGHTS, crash=5.0))
    np.testing.assert_allclose(custom.weights_for(["crash", "normal"]), [5.0, 1.0])


def test_unknown_regime_raises_naming_it() -> None:
    with pytest.raises(ValueError, match="meltdown"):
        RegimeWeighter().weights_for(["crash", "meltdown"])
    with pytest.raises(ValueError, match="meltdown"):
        RegimeWeighter().report(["meltdown"])
    with pytest.raises(ValueError, match="meltdown"):
        weighted_accuracy([1], [1], ["meltdown"])


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({k: v for k, v in SPEC_WEIGHTS.items() if k != "recovery"}, "lack a value for: recovery"),
        (dict(SPEC_WEIGHTS, crash=0.0), "positive.*crash"),
        (dict(SPEC_WEIGHTS, crash=-1.0), "positive"),
        (dict(SPEC_WEIGHTS, bubble=1.0), "unknown regime.*bubble"),
        (dict(SPEC_WEIGHTS, crash="heavy"), "finite number"),
    ],
)
def test_invalid_weights_raise_when_used_not_when_constructed(weights, message: str) -> None:
    weighter = RegimeWeighter(weights=weights)
    assert weighter.weights is weights
    with pytest.raises(ValueError, match=message):
        weighter.weights_for(["normal"])


def test_defaults_match_the_config_and_clone_round_trips() -> None:
    np.testing.assert_allclose(
        RegimeWeighter.from_config(ModelsConfig()).weights_for(list(SPEC_WEIGHTS)), list(SPEC_WEIGHTS.values())
    )
    weighter = RegimeWeighter(weights=SPEC_WEIGHTS)
    assert clone(weighter).get_params() == {"weights": SPEC_WEIGHTS}


def test_empty_report_has_no_weight_and_undefined_shares() -> None:
    report = RegimeWeighter().report([])
    assert report.n == 0 and report.effective_size == 0.0
    assert np.isnan(report["crash"].sample_share) and np.isnan(report["crash"].weight_share)


Y_TRUE = [1, 0, 1, 1]
Y_PRED = [1, 1, 1, 0]
PROBA = [0.9, 0.4, 0.3, 0.5]
REGIMES = ["crash", "normal", "low_volatility", "recovery"]  # weights 2.0, 1.0, 0.8, 1.5 -> total 5.3


def test_weighted_accuracy_by_hand() -> None:
    # Right on crash (2.0) and low_volatility (0.8), wrong on normal (1.0) and recovery (1.5).
    assert weighted_accuracy(Y_TRUE, Y_PRED, REGIMES) == pytest.approx(2.8 / 5.3)
    assert weighted_accuracy(Y_TRUE, Y_PRED, REGIMES, weights=dict.fromkeys(SPEC_WEIGHTS, 1.0)) == 0.5
    heavy = RegimeWeighter(weights=dict(SPEC_WEIGHTS, crash=10.0))
    assert weighted_accuracy(Y_TRUE, Y_PRED, REGIMES, weights=heavy) == pytest.approx(10.8 / 13.3)


def test_weighted_mae_by_hand() -> None:
    # Errors 0.1, 0.4, 0.7, 0.5 weighted 2.0, 1.0, 0.8, 1.5.
    expected = (0.2 + 0.4 + 0.56 + 0.75) / 5.3
    assert weighted_mae(Y_TRUE, PROBA, REGIMES) == pytest.approx(expected)
    two_columns = np.column_stack([1 - np.asarray(PROBA), PROBA])
    assert weighted_mae(Y_TRUE, two_columns, REGIMES) == pytest.approx(expected)
    assert weighted_mae(np.asarray(Y_TRUE, dtype=float), PROBA, REGIMES,
                        weights=dict.fromkeys(SPEC_WEIGHTS, 1.0)) == pytest.approx(1.7 / 4)


def test_weighted_metrics_equal_plain_metrics_on_the_rows_repeated_by_integer_weights() -> None:
    rng = np.random.default_rng(3)
    regimes = rng.choice(list(SPEC_WEIGHTS), size=300)
    y = rng.integers(0, 2, size=300)
    proba = rng.uniform(size=300)
    pred = (proba > 0.5).astype(int)
    weights = {"crash": 4, "recovery": 3, "high_volatility": 2, "normal": 1, "low_volatility": 1}
    repeat = np.array([weights[r] for r in regimes])
    assert weighted_accuracy(y, pred, regimes, weights=weights) == pytest.approx(
        np.mean(np.repeat(y == pred, repeat)))
    assert weighted_mae(y, proba, regimes, weights=weights) == pytest.approx(
        np.mean(np.abs(np.repeat(y - proba, repeat))))


def test_weighted_metrics_reject_bad_inputs() -> None:
    with pytest.raises(ValueError, match="inconsistent"):
        weighted_accuracy([1, 0], [1, 0, 1], ["crash", "normal", "normal"])
    with pytest.raises(ValueError, match="inconsistent"):
        weighted_mae(Y_TRUE, PROBA[:3], REGIMES)
    with pytest.raises(ValueError, match="0 or 1"):
        weighted_mae([1, 2, 0, 1], PROBA, REGIMES)
    with pytest.raises(ValueError, match="0 or 1"):
        weighted_mae([1, np.nan, 0, 1], PROBA, REGIMES)
    with pytest.raises(ValueError, match="between 0 and 1"):
        weighted_mae(Y_TRUE, [1.2, 0.4, 0.3, 0.5], REGIMES)
    with pytest.raises(ValueError, match="shape"):
        weighted_mae(Y_TRUE, np.ones((4, 3)) / 3, REGIMES)
    with pytest.raises(ValueError, match="empty"):
        weighted_accuracy([], [], [])
