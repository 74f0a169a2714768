"""Drift detectors: exact alarm indices on seeded streams, bad input named, state that survives a
pickle, and labels never scored before they mature."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from flows.config import load_config
from monitors.drift import (
    DriftMonitor,
    FeatureDriftDetector,
    FeatureReference,
    PredictionDriftDetector,
    PredictionUpdate,
    RegimeDriftDetector,
    SessionInput,
)

SYMBOLS = [f"S{i:02d}" for i in range(20)]
MANY = [f"M{i:02d}" for i in range(80)]
FEATURES = ["calm_a", "calm_b", "jumpy", "steady"]


def feature_sessions(rng: np.random.Generator, first: str, n: int, shift: float = 0.0) -> pd.DataFrame:
    """``n`` sessions x 20 symbols; ``shift`` moves the first three features (of four)."""
    dates = pd.bdate_range(first, periods=n)
    index = pd.MultiIndex.from_product([dates, SYMBOLS], names=["date", "symbol"])
    values = rng.standard_normal((len(index), len(FEATURES))) + np.array([shift, shift, shift, 0.0])
    return pd.DataFrame(values, index=index, columns=FEATURES)


RNG = np.random.default_rng(12345)
REFERENCE = feature_sessions(RNG, "2020-01-01", 150)
STREAM = pd.concat([feature_sessions(RNG, "2021-01-01", 60), feature_sessions(RNG, "2021-03-26", 30, 1.0),
                    feature_sessions(RNG, "2021-05-07", 30)])


def perform_test(detector, stream) -> list[int]:  # noqa: ANN001 - any detector and its inputs
    detections = []
    for i, x in enumerate(stream):
        detector.update(x)
        if detector.drift_detected:
            detections.append(i)
    return detections


def sessions_of(frame: pd.DataFrame) -> list[pd.DataFrame]:
    return [part for _, part in frame.groupby(level="date")]


def test_feature_drift_alarms_on_the_shift_and_resets_after_each_alarm() -> None:
    reference = FeatureReference.from_frame(REFERENCE, min_reference_rows=100)
    detector = FeatureDriftDetector(reference, drift_share=0.5)
    assert perform_test(detector, sessions_of(STREAM)) == [61, 64, 67, 70, 73, 76, 79, 82, 85, 88]


def test_a_feature_drift_report_names_the_features_the_thresholds_and_since_when() -> None:
    detector = FeatureDriftDetector(FeatureReference.from_frame(REFERENCE, min_reference_rows=100),
                                    drift_share=0.5)
    for frame in sessions_of(STREAM)[:62]:
        detector.update(frame)
    report = detector.report
    assert report.drifted and report.tested == 4
    assert {item.name for item in report.items} == {"calm_a", "calm_b", "jumpy"}
    for item in report.items:
        assert item.value > item.threshold and item.pvalue < 0.01
        assert pd.Timestamp("2021-03-26") <= item.since <= report.session  # 03-26: the first shifted one
    assert report.since == pd.Timestamp("2021-03-26") and report.value == 0.75


def test_calibrated_thresholds_are_at_least_the_floors() -> None:
    reference = FeatureReference.from_frame(REFERENCE, min_reference_rows=100, psi=0.2, wasserstein=0.1)
    assert (reference.psi_threshold >= 0.2).all() and (reference.wasserstein_threshold >= 0.1).all()
    # A window of 60 rows against its own reference varies more than the floor allows.
    assert (reference.psi_threshold > 0.2).any()


def test_a_short_reference_is_refused_naming_the_count() -> None:
    with pytest.raises(ValueError, match="the feature reference has 60 rows; feature drift needs at least 200"):
        FeatureReference.from_frame(REFERENCE.iloc[:60])
    with pytest.raises(ValueError, match="indexed by"):
        FeatureReference.from_frame(REFERENCE.reset_index(drop=True))


def test_nan_only_and_constant_reference_columns_are_skipped_by_name() -> None:
    frame = REFERENCE.assign(empty=np.nan, flat=1.0)
    reference = FeatureReference.from_frame(frame, min_reference_rows=100)
    assert dict(reference.skipped) == {"empty": "the reference has 0 finite rows, needs 100",
                                       "flat": "constant in the reference"}
    detector = FeatureDriftDetector(reference, drift_share=0.5)
    for frame_ in sessions_of(STREAM.assign(empty=1.0, flat=1.0))[:3]:
        detector.update(frame_)
    assert detector.report.tested == 4 and {"empty", "flat"} <= {name for name, _ in detector.report.skipped}
    with pytest.raises(ValueError, match="no feature of the reference can be tested: empty"):
        FeatureReference.from_frame(frame[["empty"]], min_reference_rows=100)


def test_a_nan_only_live_column_is_skipped_by_name_not_passed() -> None:
    detector = FeatureDriftDetector(FeatureReference.from_frame(REFERENCE, min_reference_rows=100))
    for frame in sessions_of(STREAM.assign(jumpy=np.nan))[:3]:
        detector.update(frame)
    assert detector.report.tested == 3
    assert ("jumpy", "the live window has 0 finite rows, needs 20") in detector.report.skipped


def test_a_feature_missing_from_the_live_frame_is_named() -> None:
    detector = FeatureDriftDetector(FeatureReference.from_frame(REFERENCE, min_reference_rows=100))
    with pytest.raises(ValueError, match=r"lacks 1 reference feature\(s\): steady"):
        detector.update(sessions_of(STREAM)[0].drop(columns="steady"))
    with pytest.raises(ValueError, match="exactly one session"):
        detector.update(STREAM.iloc[:60])


def test_state_survives_a_pickle_mid_stream() -> None:
    stream = sessions_of(STREAM)
    detector = FeatureDriftDetector(FeatureReference.from_frame(REFERENCE, min_reference_rows=100),
                                    drift_share=0.5)
    first = perform_test(detector, stream[:63])
    restored = pickle.loads(pickle.dumps(detector))
    assert first == [61] and perform_test(restored, stream[63:]) == [i - 63 for i in [64, 67, 70, 73, 76, 79, 82,
                                                                                       85, 88]]


REGIMES_REFERENCE = ["low_volatility"] * 120 + ["normal"] * 80
REGIME_STREAM_DAYS = pd.bdate_range("2024-01-01", periods=90)
REGIME_STREAM = (["normal", "low_volatility"] * 15 + ["crash"] * 10 + ["recovery"] * 20 + ["normal"] * 30)


def test_regime_drift_alarms_exactly_where_the_mix_leaves_the_training_mix() -> None:
    detector = RegimeDriftDetector(REGIMES_REFERENCE, window_sessions=21)
    stream = [pd.Series([r], index=[d]) for d, r in zip(REGIME_STREAM_DAYS, REGIME_STREAM, strict=True)]
    assert perform_test(detector, stream) == [35, 56, 77]
    detector = RegimeDriftDetector(REGIMES_REFERENCE, window_sessions=21)
    perform_test(detector, stream[:36])
    assert detector.report.items[0].name == "crash" and detector.report.items[0].since == REGIME_STREAM_DAYS[30]


def test_regime_drift_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown regime.*bear"):
        RegimeDriftDetector(["bear"] * 30)
    with pytest.raises(ValueError, match="10 labelled sessions, fewer than the 21"):
        RegimeDriftDetector(["normal"] * 10)
    detector = RegimeDriftDetector(REGIMES_REFERENCE)
    detector.update(pd.Series([None], index=[REGIME_STREAM_DAYS[0]], dtype=object))
    assert detector.report.skipped == (("regime", "no regime label on 2024-01-01"),)


def prediction_stream(rng: np.random.Generator, accuracy_after: float, n: int = 160, change: int = 80):
    """Probabilities per session and, from session 5 on, the labels of session t - 5."""
    days = pd.bdate_range("2024-01-01", periods=n)
    made, updates = {}, []
    for i, day in enumerate(days):
        p = pd.Series(rng.uniform(0.3, 0.7, len(MANY)), index=MANY)
        made[i] = p
        labels = None
        if i >= 5:
            right = rng.random(len(p)) < (0.6 if i - 5 < change else accuracy_after)
            labels = pd.Series(np.where(right, made[i - 5] >= 0.5, made[i - 5] < 0.5).astype(int), index=p.index)
        updates.append(PredictionUpdate(day, p, labels, days[i - 5] if i >= 5 else None))
    return updates


@pytest.mark.parametrize(("error_detector", "expected"), [("adwin", [86]), ("ddm", [92])])
def test_prediction_drift_sees_the_errors_rise(error_detector: str, expected: list[int]) -> None:
    rng = np.random.default_rng(7)
    detector = PredictionDriftDetector(rng.uniform(0.3, 0.7, 4000), error_detector=error_detector)
    detections = perform_test(detector, prediction_stream(rng, 0.3))
    assert detections[:1] == expected
    assert all(d >= 85 for d in detections)  # errors of predictions made from session 80 on


def test_prediction_drift_sees_the_output_distribution_move() -> None:
    rng = np.random.default_rng(7)
    detector = PredictionDriftDetector(rng.uniform(0.3, 0.7, 4000))
    days = pd.bdate_range("2024-01-01", periods=40)
    stream = [PredictionUpdate(day, pd.Series(rng.uniform(0.3, 0.7, 80) if i < 20 else rng.uniform(0.6, 0.9, 80),
                                              index=MANY)) for i, day in enumerate(days)]
    assert perform_test(detector, stream)[:2] == [20, 25]


def test_labels_are_never_scored_before_they_mature() -> None:
    rng = np.random.default_rng(7)
    detector = PredictionDriftDetector(rng.uniform(0.3, 0.7, 1000), horizon=5)
    updates = prediction_stream(rng, 0.6, n=12)
    for update in updates[:5]:
        detector.update(update)
        assert detector.scored == 0
    early = PredictionUpdate(updates[5].session, updates[5].probabilities, updates[5].labels, updates[2].session)
    with pytest.raises(ValueError, match="mature 5 sessions after the prediction; on 2024-01-08 only 3 have passed"):
        detector.update(early)
    fresh = PredictionDriftDetector(rng.uniform(0.3, 0.7, 1000), horizon=5)
    for update in updates:
        fresh.update(update)
    assert fresh.scored == 7 * len(MANY)  # the predictions of sessions 0..6 matured by session 11


def test_prediction_drift_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="invalid error_detector 'kswin'; valid values: adwin, ddm"):
        PredictionDriftDetector([0.5] * 100, error_detector="kswin")
    with pytest.raises(ValueError, match=r"hold 1 value\(s\) that are missing or outside \[0, 1\]"):
        PredictionDriftDetector([0.5] * 100 + [1.5])
    detector = PredictionDriftDetector([0.5] * 100)
    bad = pd.Series([0.5, np.nan], index=["A", "B"])
    with pytest.raises(ValueError, match=r"2024-01-01 hold 1 value\(s\).*\(B\)"):
        detector.update(PredictionUpdate(pd.Timestamp("2024-01-01"), bad))


def test_the_monitor_runs_what_it_has_and_names_what_it_lacks() -> None:
    drift = load_config().config.monitors.drift
    monitor = DriftMonitor(features=FeatureDriftDetector.from_config(REFERENCE, drift),
                           regime=RegimeDriftDetector.from_config(REGIMES_REFERENCE, drift))
    assert monitor.not_run == ("prediction",)
    frames = sessions_of(STREAM)
    raised = []
    for frame, day, regime in zip(frames, REGIME_STREAM_DAYS, REGIME_STREAM, strict=False):
        monitor.update(SessionInput(frame.index[0][0], features=frame, regime=regime))
        raised += [(day, a.detector) for a in monitor.alarms]
    restored = pickle.loads(pickle.dumps(monitor))
    assert restored.latest.keys() == {"feature", "regime"}
    assert {detector for _, detector in raised} == {"feature", "regime"}


def test_features_undefined_for_some_symbols_are_tested_on_the_rest() -> None:
    """A young symbol's long-window features and a gap's rows are NaN (samples built with
    ``partial``): those rows are left out of the feature's test, the others still find the shift,
    and a feature no symbol defines in the live window is skipped by name."""
    young = ["S00", "S01", "S02", "S03"]

    def undefined(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        symbols = frame.index.get_level_values("symbol")
        frame.loc[symbols.isin(young), "calm_a"] = np.nan
        frame.loc[np.random.default_rng(3).random(len(frame)) < 0.1, "jumpy"] = np.nan
        return frame

    reference = FeatureReference.from_frame(undefined(REFERENCE), min_reference_rows=100)
    assert reference.skipped == () and reference.rows == len(REFERENCE)
    detector = FeatureDriftDetector(reference, drift_share=0.5)
    live = sessions_of(undefined(STREAM))
    assert perform_test(detector, live) == [61, 64, 67, 70, 73, 76, 79, 82, 85, 88]

    detector = FeatureDriftDetector(reference, drift_share=0.5)
    for frame in live[:62]:
        detector.update(frame)
    assert detector.report.tested == 4 and {"calm_a", "jumpy"} <= {i.name for i in detector.report.items}
    gone = STREAM.assign(calm_a=np.nan)  # nobody defines it any more: skipped, named, not a crash
    for frame in sessions_of(gone)[:3]:
        detector.update(frame)
    assert ("calm_a", "the live window has 0 finite rows, needs 20") in detector.report.skipped
