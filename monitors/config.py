"""The ``monitors`` section of ``stormwatch.yaml``: regime rules, drift thresholds and the
rare-event detector."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegimeRules(_Section):
    """VIX thresholds and the price rules that override them (SPEC.md module 2)."""

    vix_crash_above: float = Field(35.0, gt=0)
    vix_high_volatility_from: float = Field(25.0, gt=0)
    vix_normal_from: float = Field(15.0, gt=0)
    crash_drop: float = Field(0.15, gt=0, lt=1)
    crash_drop_sessions: int = Field(10, ge=1)
    recovery_rise: float = Field(0.10, gt=0)
    recovery_exit_sessions: int = Field(63, ge=1)
    fallback_vol_sessions: int = Field(21, ge=2)

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> RegimeRules:
        if not self.vix_normal_from < self.vix_high_volatility_from <= self.vix_crash_above:
            raise ValueError(
                "VIX thresholds must satisfy vix_normal_from < vix_high_volatility_from <= "
                f"vix_crash_above (got {self.vix_normal_from}, {self.vix_high_volatility_from}, "
                f"{self.vix_crash_above})"
            )
        return self


class DriftThresholds(_Section):
    """Thresholds of the batch tests and streaming detectors (SPEC.md module 6)."""

    ks_pvalue: float = Field(0.01, gt=0, lt=1)
    chi2_pvalue: float = Field(0.01, gt=0, lt=1)
    psi: float = Field(0.2, gt=0)
    wasserstein: float = Field(0.1, gt=0)
    drift_share: float = Field(0.3, gt=0, le=1)
    adwin_delta: float = Field(0.002, gt=0, lt=1)
    page_hinkley_threshold: float = Field(50.0, gt=0)


class RareEventDetection(_Section):
    """When a run of rare-regime sessions in live data becomes a proposed archive event."""

    min_sessions: int = Field(3, ge=1)
    max_gap_sessions: int = Field(5, ge=0)


class MonitorsConfig(_Section):
    regimes: RegimeRules = RegimeRules()
    drift: DriftThresholds = DriftThresholds()
    rare_events: RareEventDetection = RareEventDetection()
