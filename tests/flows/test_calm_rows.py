"""Who serves the calm rows (``flows.training.with_calm_rows_by_window``): the zoo fitted on the
window alone serves rows with a VIX below the gate's threshold only where its validation log loss
on those rows is below the hybrid zoo's; elsewhere, and without such rows, the hybrid zoo serves
every row. Either way both zoos' figures and losses are kept."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from flows.training import Validation, check_calm_rows, with_calm_rows_by_window
from market.samples import Samples
from models.validation import regime_metrics
from models.zoo import CalmGate, CalmGatedEnsemble, SoftVotingEnsemble

GATE = CalmGate(column="vix_level", below=25.0)


def validation_rows(vix: np.ndarray, y: np.ndarray) -> Samples:
    index = pd.MultiIndex.from_arrays([pd.bdate_range("2024-01-02", periods=len(y)), ["S"] * len(y)],
                                      names=["date", "symbol"])
    regime = np.where(vix < 25, "normal", "crash")
    frame = pd.DataFrame({"vix_level": vix, "ret_1": np.zeros(len(y)), "label": y, "forward_return": 0.0,
                          "label_end": index.get_level_values("date") + pd.Timedelta(days=7),
                          "regime": regime}, index=index)
    return Samples.from_frame(frame, ["vix_level", "ret_1"])


def zoo_validation(rows: Samples, proba: np.ndarray) -> Validation:
    """A zoo's validation with these probabilities on ``rows`` (one fitted member, for the model)."""
    member = LogisticRegression().fit(rows.features, rows.target)
    ensemble = SoftVotingEnsemble(members={"logistic_regression": member}, weights={"logistic_regression": 1.0},
                                  feature_names=list(rows.features.columns))
    regimes = rows.rows["regime"].astype(str).to_numpy()
    table = regime_metrics(rows.target.to_numpy(), proba, regimes)
    return Validation(rows=rows, metrics={"logistic_regression": table, "ensemble": table}, ensemble=ensemble,
                      ensemble_proba=proba, reference_log_loss=float(np.log(2)))


@pytest.fixture
def market() -> tuple[Samples, np.ndarray, np.ndarray]:
    """400 validation rows, the first 240 calm (VIX 15), the rest a storm (VIX 40)."""
    rng = np.random.default_rng(7)
    vix = np.r_[np.full(240, 15.0), np.full(160, 40.0)]
    y = rng.integers(0, 2, vix.size)
    return validation_rows(vix, y), vix < 25, y


def knowing(y: np.ndarray, mask: np.ndarray, sure: float) -> np.ndarray:
    """0.5 everywhere but on ``mask``, where it leans ``sure`` towards the true label."""
    return np.where(mask, np.where(y == 1, sure, 1 - sure), 0.5)


def test_the_window_zoo_serves_the_calm_rows_where_it_validates_better_there(market) -> None:
    rows, calm, y = market
    hybrid = zoo_validation(rows, knowing(y, ~calm, 0.7))  # right in the storm, a coin when calm
    window = zoo_validation(rows, knowing(y, calm, 0.6))  # right when calm
    served = with_calm_rows_by_window(hybrid, window, GATE)

    check = served.calm_check
    assert check is not None and check.window_serves and check.rows == 240 and check.rule == "vix_level < 25"
    assert check.window_log_loss == pytest.approx(log_loss(y[calm], window.ensemble_proba[calm]))
    assert check.hybrid_log_loss == pytest.approx(np.log(2))
    assert served.calm_gate == GATE and isinstance(served.served, CalmGatedEnsemble)
    np.testing.assert_array_equal(served.ensemble_proba, np.where(calm, window.ensemble_proba, hybrid.ensemble_proba))
    assert served.metrics["ensemble"].loc["overall", "accuracy"] == 1.0  # each zoo on the rows it knows
    assert served.metrics["hybrid_ensemble"] is hybrid.metrics["ensemble"]
    assert served.metrics["window_ensemble"] is window.metrics["ensemble"]
    assert "served by the zoo fitted on the window alone" in check.describe()


def test_a_window_zoo_worse_on_the_calm_rows_serves_none_however_good_elsewhere(market) -> None:
    rows, calm, y = market
    hybrid = zoo_validation(rows, knowing(y, calm, 0.55))  # a little right when calm
    window = zoo_validation(rows, np.where(calm, np.where(y == 1, 0.45, 0.55), knowing(y, ~calm, 0.9)))
    served = with_calm_rows_by_window(hybrid, window, GATE)

    check = served.calm_check
    assert check is not None and not check.window_serves
    assert check.window_log_loss > check.hybrid_log_loss == pytest.approx(log_loss(y[calm], hybrid.ensemble_proba[calm]))
    assert served.calm_gate is None and served.served is hybrid.ensemble  # the hybrid zoo on every row
    np.testing.assert_array_equal(served.ensemble_proba, hybrid.ensemble_proba)
    assert served.metrics["ensemble"] is hybrid.metrics["ensemble"]
    assert served.window is window and served.metrics["window_ensemble"] is window.metrics["ensemble"]
    assert check.to_dict()["window_serves"] is False
    assert "served by the hybrid zoo; validation log loss on 240 such rows" in check.describe()


def test_without_calm_validation_rows_the_hybrid_zoo_serves_them(market) -> None:
    rows, calm, y = market
    stormy = validation_rows(np.full(len(y), 40.0), y)
    check = check_calm_rows(zoo_validation(stormy, knowing(y, calm, 0.9)), np.full(len(y), 0.5), GATE)
    assert check.rows == 0 and not check.window_serves and np.isnan(check.window_log_loss)
    assert "none among the validation rows" in check.describe()
    assert check.to_dict()["window_log_loss"] is None  # JSON has no NaN


def test_zoos_validated_on_different_rows_are_refused(market) -> None:
    rows, calm, y = market
    hybrid = zoo_validation(rows, np.full(len(y), 0.5))
    other = zoo_validation(rows.take(np.arange(len(y) - 1)), np.full(len(y) - 1, 0.5))
    with pytest.raises(ValueError, match="validated on different rows"):
        with_calm_rows_by_window(hybrid, other, GATE)
