"""SHAP by regime (SPEC.md module 11): which features a tree member relies on in a crash versus
a calm market.

For each tree member, ``shap.TreeExplainer`` (path-dependent, so no background sample is
needed and a 60-tree forest explains 500 rows in seconds) gives per-row attributions on up to
``samples_per_regime`` rows of each regime; their mean absolute value per feature is that
regime's importance. Members explain on different scales (a forest in probability, the
boosters in log-odds) and in different shapes (installed shap 0.51: an ``(n, features, 2)``
array for scikit-learn forests, ``(n, features)`` for XGBoost, LightGBM and the histogram
booster), so importances are also **rank-normalised** within each member and regime (1 = the
most important feature, 0 = the least), which is what lets members be compared and averaged.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

#: Members TreeExplainer can explain exactly (the linear, kernel and neural members are not).
TREE_CLASSES: frozenset[str] = frozenset({
    "RandomForestClassifier", "ExtraTreesClassifier", "XGBClassifier", "LGBMClassifier",
    "HistGradientBoostingClassifier",
})


def _unwrap(model: Any, features: pd.DataFrame) -> tuple[Any, Any] | None:
    """The tree model to explain and the inputs it sees (bin codes behind a binning wrapper)."""
    name = type(model).__name__
    if name in TREE_CLASSES:
        return model, features
    inner = getattr(model, "estimator_", None)
    if inner is not None and type(inner).__name__ in TREE_CLASSES and hasattr(model, "_transform"):
        return inner, pd.DataFrame(model._transform(features), index=features.index, columns=features.columns)
    return None


def _positive_class(values: Any) -> np.ndarray:
    if isinstance(values, list):  # older shap: one array per class
        values = values[1]
    values = np.asarray(values)
    if values.ndim == 3:  # (rows, features, classes)
        values = values[:, :, 1]
    return values


def regime_importance(
    model: Any,
    features: pd.DataFrame,
    regimes: Sequence[str] | np.ndarray,
    *,
    samples_per_regime: int = 500,
    seed: int = 0,
) -> pd.DataFrame | None:
    """Mean |SHAP| and its rank-normalised form per feature and regime, or ``None`` for a member
    TreeExplainer cannot explain.

    Returns a long frame: ``feature``, ``regime``, ``rows``, ``mean_abs_shap``, ``rank_score``.
    """
    import shap

    unwrapped = _unwrap(model, features)
    if unwrapped is None:
        return None
    tree, inputs = unwrapped
    explainer = shap.TreeExplainer(tree, feature_perturbation="tree_path_dependent")
    reg = np.asarray(regimes).astype(str)
    rng = np.random.default_rng(seed)
    parts = []
    for regime in pd.unique(reg):
        rows = np.flatnonzero(reg == regime)
        if len(rows) > samples_per_regime:
            rows = np.sort(rng.choice(rows, samples_per_regime, replace=False))
        # shap notes that LightGBM's output became a list; _positive_class reads either form.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="LightGBM binary classifier with TreeExplainer")
            values = _positive_class(explainer.shap_values(inputs.iloc[rows]))
        mean_abs = np.abs(values).mean(axis=0)
        order = pd.Series(mean_abs).rank(method="average").to_numpy()
        rank_score = (order - 1) / max(len(order) - 1, 1)
        parts.append(pd.DataFrame({"feature": features.columns, "regime": regime, "rows": len(rows),
                                   "mean_abs_shap": mean_abs, "rank_score": rank_score}))
    return pd.concat(parts, ignore_index=True)


def explain_members(
    members: Mapping[str, Any],
    features: pd.DataFrame,
    regimes: Sequence[str] | np.ndarray,
    *,
    samples_per_regime: int = 500,
    seed: int = 0,
) -> pd.DataFrame:
    """:func:`regime_importance` of every tree member, with a ``member`` column."""
    frames = []
    for name, model in members.items():
        table = regime_importance(model, features, regimes, samples_per_regime=samples_per_regime, seed=seed)
        if table is not None:
            frames.append(table.assign(member=name))
    if not frames:
        return pd.DataFrame(columns=["member", "feature", "regime", "rows", "mean_abs_shap", "rank_score"])
    return pd.concat(frames, ignore_index=True)[["member", "feature", "regime", "rows", "mean_abs_shap",
                                                 "rank_score"]]


def top_features(importance: pd.DataFrame, regime: str, count: int = 10) -> pd.Series:
    """The features with the highest rank score in ``regime``, averaged over the tree members."""
    rows = importance[importance["regime"] == regime]
    return rows.groupby("feature")["rank_score"].mean().sort_values(ascending=False).head(count)


__all__ = ["TREE_CLASSES", "explain_members", "plot_regime_importance", "regime_importance", "top_features"]


def plot_regime_importance(importance: pd.DataFrame, path: Any, *, count: int = 12) -> Any:
    """One horizontal bar chart per regime: the ``count`` features with the highest rank score,
    averaged over the tree members, so a reader sees at a glance what a crash model looks at."""
    from market.figures import new_figure, save_png
    from market.vocabulary import REGIMES

    regimes = [r.value for r in REGIMES if r.value in set(importance["regime"])]
    figure = new_figure(4.2 * max(len(regimes), 1), 0.32 * count + 1.4)
    axes = figure.subplots(1, max(len(regimes), 1), squeeze=False)[0]
    for axis, regime in zip(axes, regimes, strict=False):
        top = top_features(importance, regime, count)[::-1]
        rows = int(importance.loc[importance["regime"] == regime, "rows"].max())
        axis.barh(top.index, top.to_numpy(), color="#c0392b" if regime == "crash" else "#3b6ea8")
        axis.set_xlim(0, 1)
        axis.set_title(f"{regime} ({rows} rows)", fontsize=10)
        axis.tick_params(axis="y", labelsize=7)
        axis.set_xlabel("rank score (1 = most important)", fontsize=8)
    figure.suptitle("SHAP by regime: mean |SHAP| rank over the tree members", fontsize=11)
    return save_png(figure, path)
