"""The ``models`` section of ``stormwatch.yaml``: sampling targets, regime weights, validation,
the promotion gate, the model zoo and SHAP."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from market.checks import check_shares_sum_to_one
from market.vocabulary import REGIMES, Regime

ModelName = Literal[
    "random_forest", "xgboost", "lightgbm", "extra_trees",
    "gradient_boosting", "mlp", "logistic_regression", "svm",
]


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


class GateConfig(_Section):
    """Criteria a challenger must pass to replace the champion (SPEC.md module 10)."""

    overall_margin: float = Field(0.0, ge=0)
    regime_margin: float = Field(0.02, ge=0)
    crash_margin: float = Field(0.01, ge=0)
    min_regime_samples: int = Field(200, ge=1)
    max_calibration_worsening: float = Field(0.01, ge=0)
    max_seed_std: float = Field(0.02, ge=0)
    significance_alpha: float = Field(0.05, gt=0, lt=1)


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
    zoo: tuple[ModelName, ...] = (
        "random_forest", "xgboost", "lightgbm", "extra_trees",
        "gradient_boosting", "mlp", "logistic_regression", "svm",
    )
    shap: ShapConfig = ShapConfig()

    @field_validator("weights")
    @classmethod
    def _weights_complete(cls, weights: dict[Regime, float]) -> dict[Regime, float]:
        _require_every_regime(weights, "regime weights")
        bad = {k.value: v for k, v in weights.items() if v <= 0}
        if bad:
            raise ValueError(f"regime weights must be positive: {bad}")
        return weights

    @field_validator("zoo")
    @classmethod
    def _zoo_unique(cls, zoo: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(zoo)) != len(zoo) or not zoo:
            raise ValueError("zoo must list at least one model, each once")
        return zoo
