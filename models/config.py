"""The ``models`` section of ``stormwatch.yaml``: sampling targets, regime weights, validation,
the promotion gate, the model zoo and SHAP."""

from __future__ import annotations

import typing
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from market.checks import check_shares_sum_to_one
from market.vocabulary import REGIMES, Regime

#: The eight slots of the zoo (SPEC.md, "Models"); the configuration fills each with a class.
ModelName = Literal[
    "random_forest", "xgboost", "lightgbm", "extra_trees",
    "gradient_boosting", "mlp", "logistic_regression", "svm",
    "regime_aware",  # models.regime_aware: return signals x causal market state (issue 13)
]
MODEL_NAMES: tuple[str, ...] = typing.get_args(ModelName)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _require_every_regime(values: dict[Regime, float], what: str) -> None:
    missing = [r.value for r in REGIMES if r not in values]
    if missing:
        raise ValueError(f"{what} lack a value for: {', '.join(missing)}")


class SamplingConfig(_Section):
    """Target regime shares of a balanced training set (SPEC.md module 3)."""

    targets: dict[Regime, float] = {
        Regime.LOW_VOLATILITY: 0.20, Regime.NORMAL: 0.40, Regime.HIGH_VOLATILITY: 0.20,
        Regime.CRASH: 0.10, Regime.RECOVERY: 0.10,
    }
    empty_regime_policy: Literal["redistribute", "fail"] = "redistribute"
    #: A regime seen on fewer sessions than this is kept once, not balanced; its share goes to the
    #: others (``RegimeBalancedSampler.min_sessions``). 0: every regime with rows is balanced. Why
    #: 10: on 400 simulated markets every labeler recovery of fewer than 10 sessions in a training
    #: window was truly not recovering (README, Quality).
    min_regime_sessions: int = Field(10, ge=0)
    seed: int = 0

    @model_validator(mode="after")
    def _targets_complete(self) -> SamplingConfig:
        _require_every_regime(self.targets, "sampling targets")
        check_shares_sum_to_one({k.value: v for k, v in self.targets.items()}, "sampling targets")
        return self


class ValidationConfig(_Section):
    """Walk-forward validation with purging and an embargo (SPEC.md module 4)."""

    n_splits: int = Field(5, ge=2)
    embargo_sessions: int = Field(5, ge=0)
    rolling_window_sessions: int = Field(756, ge=20)
    #: How validation skill weights the served ensemble: ``regime_mean`` averages each member's
    #: skill over the regime sets (a storm set counts as much as a calm one, which is the
    #: mission), ``overall`` takes it on all validation rows together (the largest set decides).
    ensemble_skill: Literal["regime_mean", "overall"] = "regime_mean"
    #: Regime sets with fewer rows are left out of ``regime_mean``: their skill is noise.
    ensemble_min_regime_rows: int = Field(200, ge=1)
    #: What skill is measured in: ``log_loss`` (below the training base rate's) rewards
    #: calibrated probabilities, ``accuracy`` (above the base rate's constant prediction) the
    #: direction the served model is scored on.
    ensemble_skill_metric: Literal["log_loss", "accuracy"] = "log_loss"
    #: Serve storm rows (VIX above the labeler's crash threshold, ``monitors.regimes.vix_crash_above``)
    #: with their own weights, chosen on the validation rows of storms (``models.zoo.StormGate``).
    #: Off until measured: a retrain's storm validation rows are a handful of sessions, and on one
    #: benchmark seed the weights they chose helped in one held-out storm and hurt in two.
    ensemble_storm_weights: bool = False
    #: Fewer validation rows in storms than this: no storm weights (one set of weights serves all).
    ensemble_min_storm_rows: int = Field(200, ge=1)
    #: Members that alone serve storm rows (zoo names), whatever validation says: a member that can
    #: express the sign flip (``regime_aware``) is then not outvoted in a storm by members that
    #: cannot. Among several, their storm weights come from their skill on the storm validation rows
    #: when there are ``ensemble_min_storm_rows`` of them, else they share alike. ``None``: off.
    ensemble_storm_members: list[str] | None = ["regime_aware"]
    #: The VIX above which a row is a storm for the storm weights and members; ``None``: the
    #: labeler's crash threshold, ``monitors.regimes.vix_crash_above``.
    ensemble_storm_vix_above: float | None = Field(30.0, gt=0)
    #: Rows with a VIX below this are served by a second zoo, fitted on the rolling window alone
    #: (``models.zoo.CalmGatedEnsemble``): the hybrid set's members pay for storms with accuracy in
    #: calm markets. 25 is the labeler's high-volatility threshold. A run serves them so only where
    #: the window zoo's validation log loss on such rows is below the hybrid zoo's
    #: (``flows.training.check_calm_rows``). ``None``: one zoo serves every row (a retrain fits half
    #: the rows fewer).
    ensemble_window_zoo_below_vix: float | None = Field(25.0, gt=0)


class GateConfig(_Section):
    """Criteria a challenger must pass to replace the champion (SPEC.md module 10)."""

    overall_margin: float = Field(0.0, ge=0)
    regime_margin: float = Field(0.02, ge=0)
    crash_margin: float = Field(0.01, ge=0)
    min_regime_samples: int = Field(200, ge=1)
    max_calibration_worsening: float = Field(0.01, ge=0)
    max_seed_std: float = Field(0.02, ge=0)
    significance_alpha: float = Field(0.05, gt=0, lt=1)
    # The first model, with no champion to beat, must clear these absolute floors.
    floor_log_loss: float = Field(0.6931, gt=0)      # no worse than a coin (ln 2)
    floor_accuracy: float = Field(0.51, ge=0, le=1)
    floor_crash_accuracy: float = Field(0.50, ge=0, le=1)
    floor_calibration_error: float = Field(0.05, ge=0, le=1)


class MemberSpec(_Section):
    """One zoo member as Qlib writes components: ``class`` + ``module_path`` + ``kwargs``.

    ``preprocess`` puts a step in front of it: ``standardize`` (median imputation and weighted
    standardisation, for the MLP, the logistic regression and the SVM) or ``quantile_bins``
    (unweighted bin codes, which spare scikit-learn's histogram booster its slow weighted
    binning). The class must be on :data:`models.zoo.ALLOWED_CLASSES`
    and every keyword must be one of its parameters, of the right type: checked on load.

    ``max_rows`` is the most training rows the member fits on: a larger training set is cut to a
    regime-stratified subsample of whole session blocks (:mod:`models.subsample`, settings in
    ``models.training.subsample``), and the run record says so. ``None`` (the default) keeps
    every row: the members that scale (LightGBM, XGBoost, the logistic regression) and the cheap
    ones per row (the extra trees, the regime-aware member) set none.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    class_name: str = Field(alias="class", min_length=1)
    module_path: str = Field(min_length=1)
    kwargs: dict[str, Any] = {}
    preprocess: Literal["none", "standardize", "quantile_bins"] = "none"
    max_rows: int | None = Field(None, ge=1)

    def build(self, where: str = "models.zoo") -> Any:
        """A fresh unfitted estimator (checked as on load)."""
        from models.zoo import build_estimator

        return build_estimator(self.module_path, self.class_name, self.kwargs, preprocess=self.preprocess,
                               where=where)


def _default_zoo() -> dict[str, MemberSpec]:
    def spec(module_path: str, class_name: str, preprocess: str = "none", max_rows: int | None = None,
             **kwargs: Any) -> MemberSpec:
        return MemberSpec(class_name=class_name, module_path=module_path, kwargs=kwargs,
                          preprocess=preprocess, max_rows=max_rows)  # type: ignore[arg-type]

    return {
        "random_forest": spec("sklearn.ensemble", "RandomForestClassifier", n_estimators=60, max_depth=10,
                              min_samples_leaf=50, max_samples=0.25, n_jobs=2, random_state=0,
                              max_rows=600_000),
        "xgboost": spec("xgboost", "XGBClassifier", n_estimators=300, learning_rate=0.03, max_depth=4,
                        subsample=0.8, colsample_bytree=0.5, min_child_weight=50.0, tree_method="hist",
                        n_jobs=2, random_state=0),
        "lightgbm": spec("lightgbm", "LGBMClassifier", n_estimators=300, learning_rate=0.03, num_leaves=15,
                         min_child_samples=200, subsample=0.8, subsample_freq=1, colsample_bytree=0.5,
                         deterministic=True, force_row_wise=True, n_jobs=2, random_state=0, verbose=-1),
        "extra_trees": spec("sklearn.ensemble", "ExtraTreesClassifier", n_estimators=100, max_depth=10,
                            min_samples_leaf=50, max_samples=0.25, bootstrap=True, n_jobs=2, random_state=0),
        "gradient_boosting": spec("sklearn.ensemble", "HistGradientBoostingClassifier",
                                  preprocess="quantile_bins", max_iter=200,
                                  learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=200,
                                  early_stopping=False, random_state=0, max_rows=600_000),
        "mlp": spec("sklearn.neural_network", "MLPClassifier", preprocess="standardize",
                    hidden_layer_sizes=[64, 32], alpha=0.001, early_stopping=True, max_iter=50,
                    random_state=0, max_rows=250_000),
        "logistic_regression": spec("sklearn.linear_model", "LogisticRegression", preprocess="standardize",
                                    C=0.05, max_iter=500),
        "svm": spec("models.zoo", "NystroemSVC", preprocess="standardize", n_components=300, C=0.1,
                    random_state=0, max_rows=200_000),
        "regime_aware": spec("models.regime_aware", "RegimeInteractionClassifier",
                             signal_columns=["excess_ret_5"],
                             knots={"vix_level": [20.0, 30.0], "storm_vix_63": [25.0]}, basis="step",
                             state_effects=False, C=0.1, max_iter=300),
    }


class SubsampleConfig(_Section):
    """How a member with ``max_rows`` subsamples a larger training set (:mod:`models.subsample`):
    blocks of ``block_sessions`` consecutive sessions, drawn per regime with ``seed``."""

    block_sessions: int = Field(5, ge=1)  # the label horizon: one trading week
    seed: int = 0


class TrainingConfig(_Section):
    """What the retraining run mixes in and how it trains: each hybrid-memory step is a switch,
    so that ``--baseline`` (all off: the rolling window alone) and every ablation is one
    setting away."""

    archive: bool = True      # mix the rare-event archive into the window
    balance: bool = True      # regime-balanced sampling (module 3)
    weights: bool = True      # regime weights (module 5)
    replay: bool = True       # the error replay buffer (module 8)
    max_parallel_members: int = Field(2, ge=1)
    subsample: SubsampleConfig = SubsampleConfig()

    def baseline(self) -> TrainingConfig:
        """The window-only baseline: no archive, no balancing, no weights, no replay."""
        return self.model_copy(update={"archive": False, "balance": False, "weights": False, "replay": False})


class BacktestConfig(_Section):
    """The signal backtest of a run's validation predictions (``models/backtest.py``)."""

    cost_bps: float = Field(5.0, ge=0)  # per unit of turnover
    min_rows: int = Field(200, ge=1)  # sector and symbol tracking: fewer rows are never called weak


class ShapConfig(_Section):
    background_samples: int = Field(200, ge=10)
    samples_per_regime: int = Field(500, ge=10)


class ModelsConfig(_Section):
    sampling: SamplingConfig = SamplingConfig()
    weights: dict[Regime, float] = {
        Regime.CRASH: 2.0, Regime.RECOVERY: 1.5, Regime.HIGH_VOLATILITY: 1.3,
        Regime.NORMAL: 1.0, Regime.LOW_VOLATILITY: 0.8,
    }
    validation: ValidationConfig = ValidationConfig()
    gate: GateConfig = GateConfig()
    zoo: dict[ModelName, MemberSpec] = Field(default_factory=_default_zoo)
    training: TrainingConfig = TrainingConfig()
    shap: ShapConfig = ShapConfig()
    backtest: BacktestConfig = BacktestConfig()

    @field_validator("weights")
    @classmethod
    def _weights_complete(cls, weights: dict[Regime, float]) -> dict[Regime, float]:
        _require_every_regime(weights, "regime weights")
        bad = {k.value: v for k, v in weights.items() if v <= 0}
        if bad:
            raise ValueError(f"regime weights must be positive: {bad}")
        return weights

    @model_validator(mode="after")
    def _storm_members_in_the_zoo(self) -> ModelsConfig:
        members = self.validation.ensemble_storm_members
        if members is not None:
            unknown = [m for m in members if m not in self.zoo]
            if unknown or not members:
                given = "ensemble_storm_members" in self.validation.model_fields_set
                raise ValueError(f"validation.ensemble_storm_members names {unknown or 'no member'}"
                                 f"{'' if given else ' (its default)'}: list members of the zoo "
                                 f"({', '.join(self.zoo)}), or null for no storm members")
        return self

    @field_validator("zoo")
    @classmethod
    def _zoo_buildable(cls, zoo: dict[str, MemberSpec]) -> dict[str, MemberSpec]:
        """Every member is built once on load, so a bad class or hyperparameter fails here,
        naming its key, before any data is fetched or anything is trained."""
        if not zoo:
            raise ValueError("zoo must list at least one model")
        for name, spec in zoo.items():
            spec.build(where=f"models.zoo.{name}")
        return zoo
