"""The regime-aware member: scikit-learn's contract, weights honoured, columns named, and the
sign flip it exists for learned on the simulated market where a plain linear model cannot."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.utils.estimator_checks import parametrize_with_checks

from flows.config import load_config
from models.regime_aware import RegimeInteractionClassifier
from models.zoo import ALLOWED_CLASSES, ZooConfigError, build_estimator
from tests.conftest import DEFAULT_CONFIG


@parametrize_with_checks([RegimeInteractionClassifier(),
                          RegimeInteractionClassifier(signal_columns=[0], state_columns=[1], knots=[0.5]),
                          RegimeInteractionClassifier(basis="step", knots=[-1.0, 0.0, 1.0])],
                         expected_failed_checks=lambda est: {
    # the solver runs in single precision (a retrain's design matrix is bound by memory): a
    # weight of 2 and a repeated row agree to 1e-5, not to the check's 1e-7 (tested below)
    "check_sample_weight_equivalence_on_dense_data": "single-precision solver",
    # this instance names column 1 as its state: an input of one column has none, and says so
    **({"check_fit2d_1feature": "names a second column"} if est.state_columns is not None else {}),
})
def test_follows_scikit_learns_contract(estimator, check) -> None:
    check(estimator)


def _flip(n: int = 4000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    vix = rng.choice([14.0, 20.0, 28.0, 45.0, 70.0], size=n) + rng.normal(scale=2.0, size=n)
    signal = rng.normal(size=n)
    kappa = np.where(vix > 35, -1.0, 1.0)  # momentum when calm, reversal in a storm
    y = (kappa * signal + rng.normal(scale=1.0, size=n) > 0).astype(int)
    X = pd.DataFrame({"excess_ret_5": signal, "vix_level": vix, "noise": rng.normal(size=n)})
    return X, y


def test_learns_a_sign_that_flips_past_a_vix_threshold() -> None:
    X, y = _flip()
    model = RegimeInteractionClassifier(signal_columns=["excess_ret_5"], state_columns=["vix_level"]).fit(X, y)
    test_X, test_y = _flip(seed=1)
    storm = test_X["vix_level"].to_numpy() > 35
    ours = model.predict(test_X) == test_y
    plain = LogisticRegression().fit(X, y).predict(test_X) == test_y
    assert ours[storm].mean() > 0.7 and ours[~storm].mean() > 0.7, (ours[storm].mean(), ours[~storm].mean())
    assert plain[storm].mean() < 0.5  # the calm majority sets its sign: wrong in the storm


def _storm_beyond_training(n: int = 6000, seed: int = 0, *, deepest: float) -> tuple[pd.DataFrame, np.ndarray]:
    """Reversal above a VIX of 35, of the same strength however deep the storm; the VIX runs up
    to ``deepest``."""
    rng = np.random.default_rng(seed)
    vix = np.concatenate([rng.uniform(10, 30, size=n - n // 4), rng.uniform(38, deepest, size=n // 4)])
    signal = rng.normal(size=n)
    y = (np.where(vix > 35, -1.0, 1.0) * signal + rng.normal(scale=1.0, size=n) > 0).astype(int)
    return pd.DataFrame({"excess_ret_5": signal, "vix_level": vix}), y


def test_steps_hold_a_flipped_sign_in_a_storm_deeper_than_training() -> None:
    """A held-out crash is often deeper than any storm in training (2008's VIX of 60-80 with only
    2018 and 2020 to learn from): a step basis keeps the learned reversal constant there."""
    X, y = _storm_beyond_training(deepest=45.0)
    test_X, test_y = _storm_beyond_training(seed=1, deepest=90.0)
    deep = test_X["vix_level"].to_numpy() > 45
    step = RegimeInteractionClassifier(signal_columns=["excess_ret_5"], state_columns=["vix_level"],
                                       knots=[-1.0, 0.0, 1.0, 2.0], basis="step").fit(X, y)
    hits = step.predict(test_X) == test_y
    assert hits[deep].mean() > 0.7 and hits[~deep].mean() > 0.7, (hits[deep].mean(), hits[~deep].mean())
    with pytest.raises(ValueError, match="basis"):
        RegimeInteractionClassifier(basis="spline").fit(X, y)


def test_honours_sample_weight() -> None:
    X, y = _flip()
    storm = X["vix_level"].to_numpy() > 35
    # nearly all weight on the calm rows: the storm's reversal is no longer learned
    calm_only = RegimeInteractionClassifier(signal_columns=["excess_ret_5"], state_columns=["vix_level"],
                                            knots=[]).fit(X, y, sample_weight=np.where(storm, 1e-4, 1.0))
    both = RegimeInteractionClassifier(signal_columns=["excess_ret_5"], state_columns=["vix_level"],
                                       knots=[]).fit(X, y)
    hit = lambda m: (m.predict(X)[storm] == y[storm]).mean()  # noqa: E731
    assert hit(both) > hit(calm_only) + 0.1, (hit(both), hit(calm_only))


def test_a_weight_of_two_is_a_repeated_row() -> None:
    X, y = _flip(600)
    weights = np.random.default_rng(2).integers(0, 3, size=len(y)).astype(float)
    model = RegimeInteractionClassifier(signal_columns=["excess_ret_5"], state_columns=["vix_level"])
    weighted = model.fit(X, y, sample_weight=weights).predict_proba(X)
    repeated = np.repeat(np.arange(len(y)), weights.astype(int))
    copied = RegimeInteractionClassifier(signal_columns=["excess_ret_5"], state_columns=["vix_level"]).fit(
        X.iloc[repeated], y[repeated]).predict_proba(X)
    np.testing.assert_allclose(weighted, copied, atol=1e-4)


def test_columns_are_named_and_refused_clearly() -> None:
    X, y = _flip(500)
    with pytest.raises(ValueError, match="signal_columns: X has no column 'ret_5'"):
        RegimeInteractionClassifier(signal_columns=["ret_5"]).fit(X, y)
    with pytest.raises(ValueError, match="state_columns: 'vix_level' is a column name, but X has no column names"):
        RegimeInteractionClassifier(signal_columns=[0], state_columns=["vix_level"]).fit(X.to_numpy(), y)
    with pytest.raises(ValueError, match="state_columns: 7 is neither a column name nor a position"):
        RegimeInteractionClassifier(state_columns=[7]).fit(X, y)


def test_missing_values_sit_at_the_mean() -> None:
    X, y = _flip(500)
    holed = X.copy()
    holed.iloc[::7, 0] = np.nan
    model = RegimeInteractionClassifier(signal_columns=["excess_ret_5"], state_columns=["vix_level"]).fit(holed, y)
    assert np.isfinite(model.predict_proba(holed)).all()


def test_configured_in_the_zoo_from_the_allow_list_with_causal_columns_only() -> None:
    from market.features import FEATURE_NAMES

    assert ("models.regime_aware", "RegimeInteractionClassifier") in ALLOWED_CLASSES
    spec = load_config(DEFAULT_CONFIG).config.models.zoo["regime_aware"]  # type: ignore[index]
    model = spec.build(where="models.zoo.regime_aware")
    assert isinstance(model, RegimeInteractionClassifier)
    columns = [*model.signal_columns, *model.state_columns]
    assert set(columns) <= set(FEATURE_NAMES), sorted(set(columns) - set(FEATURE_NAMES))
    assert {"vix_level", "mkt_drawdown_252"} <= set(model.state_columns)
    assert model.basis == "step"
    with pytest.raises(ZooConfigError, match="models.zoo.regime_aware.kwargs.signal"):
        build_estimator("models.regime_aware", "RegimeInteractionClassifier", {"signal": ["ret_5"]},
                        where="models.zoo.regime_aware")
