"""SHAP by regime finds the feature each regime's signal lives in, for every tree member."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.config import ModelsConfig
from models.explain import explain_members, top_features


@pytest.fixture(scope="module")
def planted() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Calm rows follow ``momentum``, crash rows follow ``reversal``: the signal moves with the regime."""
    rng = np.random.default_rng(0)
    n = 4000
    X = pd.DataFrame(rng.normal(size=(n, 5)), columns=["momentum", "reversal", "noise_a", "noise_b", "noise_c"])
    regimes = np.where(np.arange(n) % 2 == 0, "crash", "normal")
    X["stress"] = (regimes == "crash") * 30.0 + rng.normal(scale=1.0, size=n)  # what a VIX tells the trees
    driver = np.where(regimes == "crash", X["reversal"], X["momentum"])
    y = (driver + rng.normal(scale=0.5, size=n) > 0).astype(int)
    return X, y, regimes


def test_each_tree_member_relies_on_the_regimes_own_feature(planted) -> None:
    X, y, regimes = planted
    zoo = ModelsConfig().zoo
    members = {}
    for name in ("random_forest", "extra_trees", "xgboost", "lightgbm", "gradient_boosting", "logistic_regression"):
        spec = zoo[name]  # type: ignore[index]
        kwargs = {k: (min(v, 40) if k in ("n_estimators", "max_iter") else v) for k, v in spec.kwargs.items()}
        members[name] = spec.model_copy(update={"kwargs": kwargs}).build().fit(X, y)
    table = explain_members(members, X, regimes, samples_per_regime=300)
    assert set(table["member"]) == {"random_forest", "extra_trees", "xgboost", "lightgbm", "gradient_boosting"}
    for member, rows in table.groupby("member"):
        crash = rows[rows["regime"] == "crash"].set_index("feature")
        calm = rows[rows["regime"] == "normal"].set_index("feature")
        assert crash["rank_score"].idxmax() == "reversal", member
        assert calm["rank_score"].idxmax() == "momentum", member
        assert crash["rows"].iloc[0] == 300 and rows["rank_score"].between(0, 1).all()
    assert list(top_features(table, "crash", 2).index)[0] == "reversal"
