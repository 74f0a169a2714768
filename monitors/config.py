"""The ``monitors`` section of ``stormwatch.yaml``: regime rules, drift thresholds and the
rare-event detector."""

from __future__ import annotations

from typing import Any, Literal

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
    #: A recovery also ends once the VIX has read below ``vix_high_volatility_from`` on this many
    #: sessions in a row (a calm market is not recovering); ``None``: it ends only on
    #: ``recovery_exit_sessions``. The shorter recoveries this leaves in some training windows are
    #: kept once, not oversampled (``models.sampling.min_regime_sessions``; README, Quality).
    recovery_calm_sessions: int | None = Field(3, ge=1)
    #: A rise of ``recovery_rise`` starts a recovery only while the VIX reads high volatility
    #: (``vix_high_volatility_from`` to ``vix_crash_above``); under a calm VIX the crash is over and
    #: the VIX rules label the session. ``False``: any VIX short of crash starts one.
    recovery_needs_storm_vix: bool = True

    @model_validator(mode="before")
    @classmethod
    def _fallback_moved(cls, data: Any) -> Any:
        """The VIX fallback's window moved to ``market.vix_fallback.sessions``, shared with the
        features: an old configuration that sets it here must not be silently ignored."""
        if isinstance(data, dict) and "fallback_vol_sessions" in data:
            raise ValueError(
                "fallback_vol_sessions has moved: set market.vix_fallback.sessions instead (one VIX "
                "fallback, shared by the features and the regime labeler) and delete it from monitors.regimes"
            )
        return data

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
    """Feature, regime and prediction drift (SPEC.md module 6; ``monitors.drift``).

    Feature drift compares each feature's last ``window_sessions`` sessions with the training
    reference. A feature drifts when its PSI or its Wasserstein distance (in reference standard
    deviations) exceeds its threshold and its KS test rejects at ``ks_pvalue`` after a Bonferroni
    correction over the features tested that session. A feature's thresholds are the configured
    floors or, if higher, the ``reference_quantile`` of the same statistic over
    ``calibration_windows`` windows of the reference itself: panel rows are neither independent
    nor identically distributed (a week of 76 symbols holds five values of every market-wide
    feature), so a narrow window differs from a long reference even in calm markets, and only
    what the reference's own windows never show is drift. The whole set drifts when at least
    ``drift_share`` of the tested features do. False alarms are controlled three ways: the
    correction, the calibrated effect sizes and the share rule.
    """

    reference_sessions: int = Field(756, ge=20)
    window_sessions: int = Field(3, ge=1)
    ks_pvalue: float = Field(0.01, gt=0, lt=1)
    psi: float = Field(0.2, gt=0)
    psi_bins: int = Field(10, ge=2)
    wasserstein: float = Field(0.1, gt=0)
    reference_quantile: float = Field(0.99, gt=0, le=1)
    calibration_windows: int = Field(40, ge=1)
    reference_points: int = Field(500, ge=20)
    min_reference_rows: int = Field(200, ge=2)
    min_live_rows: int = Field(20, ge=2)
    drift_share: float = Field(0.15, gt=0, le=1)
    regime_window_sessions: int = Field(21, ge=2)
    chi2_pvalue: float = Field(0.01, gt=0, lt=1)
    tvd: float = Field(0.25, gt=0, le=1)
    prediction_window_sessions: int = Field(5, ge=1)
    probability_bins: int = Field(10, ge=2)
    js_distance: float = Field(0.1, gt=0, le=1)
    error_detector: Literal["adwin", "ddm"] = "adwin"
    adwin_delta: float = Field(0.002, gt=0, lt=1)
    ddm_warm_start: int = Field(30, ge=1)
    ddm_drift_threshold: float = Field(3.0, gt=0)


class RareEventDetection(_Section):
    """When the live market becomes a proposed archive event (SPEC.md module 7;
    ``monitors.rare_events``).

    An event is proposed when the regime rules hold crash or recovery for ``min_sessions``
    sessions (high volatility alone: ``high_volatility_min_sessions``), or at once when the
    market's volatility has a
    change point: river's PageHinkley on the daily change of log VIX (observed, or the
    realised-volatility fallback) with ``change_point_threshold`` and ``change_point_delta``,
    counted once the VIX reaches ``change_point_min_vix`` within ``min_sessions``. The
    event extends while it lasts and closes after more than ``max_gap_sessions`` quiet sessions.
    A new event gets ``archive_weight`` of the archive's weight.
    """

    min_sessions: int = Field(3, ge=1)
    high_volatility_min_sessions: int = Field(5, ge=1)
    max_gap_sessions: int = Field(5, ge=0)
    change_point_threshold: float = Field(0.3, gt=0)
    change_point_delta: float = Field(0.05, ge=0)
    change_point_min_sessions: int = Field(30, ge=1)
    change_point_min_vix: float = Field(20.0, gt=0)
    drawdown_sessions: int = Field(252, ge=2)
    archive_weight: float = Field(0.05, gt=0, lt=1)


class MonitorsConfig(_Section):
    regimes: RegimeRules = RegimeRules()
    drift: DriftThresholds = DriftThresholds()
    rare_events: RareEventDetection = RareEventDetection()
