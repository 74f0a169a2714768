"""Regime-balanced sampling (SPEC.md module 3): exact targets, reproducibility, no rare row lost."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone

from market.vocabulary import REGIMES, Regime
from models.config import SamplingConfig
from models.sampling import RegimeBalancedSampler, encode_regimes, largest_remainder

NAMES = [r.value for r in REGIMES]
TARGETS = {"low_volatility": 0.2, "normal": 0.4, "high_volatility": 0.2, "crash": 0.1, "recovery": 0.1}
# An imbalanced input like a rolling window plus a small archive: 70% normal, 2% crash.
IMBALANCED = {"normal": 1400, "low_volatility": 300, "high_volatility": 220, "crash": 40, "recovery": 40}


def make_regimes(counts: dict[str, int], seed: int = 0) -> np.ndarray:
    """Regime labels with the given counts, shuffled so that regimes interleave like real dates."""
    labels = np.repeat(list(counts), list(counts.values()))
    return np.random.default_rng(seed).permutation(labels)


def per_regime_counts(labels) -> dict[str, int]:
    labels = np.asarray(labels, dtype=object)
    return {name: int((labels == name).sum()) for name in NAMES}


@pytest.mark.parametrize("size", [997, 1000, 1003, 5000])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_counts_hit_the_targets_to_within_one_sample(size: int, seed: int) -> None:
    regimes = make_regimes(IMBALANCED)
    sampler = RegimeBalancedSampler(size=size, random_state=seed)
    indices = sampler.sample_indices(regimes)
    assert len(indices) == size
    counts = per_regime_counts(regimes[indices])
    for name, target in TARGETS.items():
        assert abs(counts[name] - target * size) < 1, (name, counts[name], target * size)
    # 997 * 0.4 = 398.8 and 997 * 0.1 = 99.7: the largest remainders get the two rows floors leave.
    if size == 997:
        assert counts == {"low_volatility": 199, "normal": 399, "high_volatility": 199, "crash": 100,
                          "recovery": 100}


def test_largest_remainder_sums_exactly_and_gives_nothing_to_a_zero_share() -> None:
    shares = np.array([0.5, 0.0, 1 / 3, 1 / 6, 0.0])
    for total in range(1, 200):
        counts = largest_remainder(shares, total)
        assert counts.sum() == total
        assert np.all(np.abs(counts - shares * total) < 1)
        assert counts[1] == counts[4] == 0


def test_same_seed_same_rows_other_seed_other_rows() -> None:
    regimes = make_regimes(IMBALANCED)
    first = RegimeBalancedSampler(size=1000, random_state=7).sample_indices(regimes)
    again = RegimeBalancedSampler(size=1000, random_state=7).sample_indices(regimes)
    other = RegimeBalancedSampler(size=1000, random_state=8).sample_indices(regimes)
    np.testing.assert_array_equal(first, again)
    assert len(other) == len(first)
    assert not np.array_equal(first, other)


def test_random_state_of_the_call_overrides_the_samplers() -> None:
    regimes = make_regimes(IMBALANCED)
    sampler = RegimeBalancedSampler(size=1000, random_state=7)
    np.testing.assert_array_equal(
        sampler.sample_indices(regimes, random_state=8),
        RegimeBalancedSampler(size=1000, random_state=8).sample_indices(regimes),
    )


def test_oversampling_keeps_every_original_row_of_a_minority_regime() -> None:
    regimes = make_regimes(IMBALANCED)
    indices = RegimeBalancedSampler(size=5000, random_state=0).sample_indices(regimes)
    for name in ["crash", "recovery", "low_volatility", "high_volatility"]:
        originals = np.flatnonzero(regimes == name)
        drawn = indices[regimes[indices] == name]
        assert len(drawn) > len(originals)  # really oversampled
        assert set(originals) <= set(drawn), name
        # Every original appears at least once; the extra draws come from the same rows.
        assert set(drawn) == set(originals)


def test_undersampling_repeats_no_row() -> None:
    regimes = make_regimes(IMBALANCED)
    indices = RegimeBalancedSampler(size=1000, random_state=0).sample_indices(regimes)
    normal = indices[regimes[indices] == "normal"]
    assert len(normal) == 400 < IMBALANCED["normal"]
    assert len(np.unique(normal)) == len(normal)


def test_indices_are_sorted_so_time_order_survives() -> None:
    indices = RegimeBalancedSampler(random_state=0).sample_indices(make_regimes(IMBALANCED))
    assert np.all(np.diff(indices) >= 0)


def test_keep_rare_keeps_every_crash_and_recovery_row_and_is_the_smallest_such_size() -> None:
    regimes = make_regimes(IMBALANCED)
    sampler = RegimeBalancedSampler(random_state=0)
    indices = sampler.sample_indices(regimes)
    for name in ["crash", "recovery", "low_volatility", "high_volatility"]:  # target >= current share
        assert set(np.flatnonzero(regimes == name)) <= set(indices), name
    # low_volatility needs the most room: 300 rows at 20% -> 1,500 rows, or 1,499 where 299.8 rounds up.
    assert sampler.size_ == len(indices) == 1499
    assert sampler.report_["low_volatility"].count_after == 300
    assert sampler.report_["normal"].dropped == 1400 - 599
    # One row fewer and a kept regime would lose a row.
    smaller = RegimeBalancedSampler(size=sampler.size_ - 1, random_state=0).sample_indices(regimes)
    assert not set(np.flatnonzero(regimes == "low_volatility")) <= set(smaller)


def test_keep_rare_keeps_a_large_archive_of_crash_rows_that_a_fixed_size_would_cut() -> None:
    # The prototype's case: thousands of crash rows; a fixed size cut 6,760 of them to 2,992.
    counts = {"normal": 60000, "low_volatility": 10000, "high_volatility": 8000, "crash": 6760, "recovery": 1500}
    regimes = make_regimes(counts)
    fixed = RegimeBalancedSampler(size=29920, random_state=0).fit_resample(
        np.zeros((len(regimes), 1)), np.zeros(len(regimes)), regimes=regimes)[2]
    assert per_regime_counts(fixed)["crash"] == 2992
    sampler = RegimeBalancedSampler(random_state=0)
    indices = sampler.sample_indices(regimes)
    assert set(np.flatnonzero(regimes == "crash")) <= set(indices)
    assert sampler.report_["crash"].dropped == 0
    # 6,760 crash rows at 10%: 67,600 rows, or 67,595 where crash's quota 6,759.5 rounds up.
    assert sampler.size_ == 67595
    assert sampler.report_["crash"].count_after == 6760


def test_keep_rare_keeps_storm_rows_even_above_their_target_share() -> None:
    # An archive big enough to put crash above its 10% target still keeps every crash row: the
    # size grows to 67,595 (6,760 at 10%) and the calm regimes fill the rest.
    counts = {"normal": 30000, "low_volatility": 8000, "high_volatility": 6000, "crash": 6760, "recovery": 1500}
    regimes = make_regimes(counts)
    sampler = RegimeBalancedSampler(random_state=0)
    indices = sampler.sample_indices(regimes)
    assert sampler.size_ == 67595
    assert set(np.flatnonzero(regimes == "crash")) <= set(indices)
    assert sampler.report_["crash"].dropped == 0 and sampler.report_["recovery"].dropped == 0
    assert sampler.report_["normal"].dropped == 30000 - 27038


def test_keep_rare_size_is_minimal_where_rounding_up_helps() -> None:
    # low_volatility's 150 rows at 20% fit at 749 rows (149.8 rounds up), not only at 750.
    regimes = make_regimes({"normal": 700, "low_volatility": 150, "high_volatility": 100, "crash": 30,
                            "recovery": 20})
    sampler = RegimeBalancedSampler(random_state=0)
    sampler.sample_indices(regimes)
    assert sampler.size_ == 749
    assert sampler.report_["low_volatility"].count_after == 150
    assert largest_remainder(np.array([0.4, 0.1, 0.1, 0.2, 0.2]), 748)[4] == 149


def test_same_keeps_the_input_size() -> None:
    regimes = make_regimes(IMBALANCED)
    assert len(RegimeBalancedSampler(size="same", random_state=0).sample_indices(regimes)) == len(regimes)


def test_an_empty_regime_is_reported_and_its_share_redistributed() -> None:
    counts = dict(IMBALANCED, recovery=0)
    regimes = make_regimes(counts)
    sampler = RegimeBalancedSampler(size=1000, random_state=0)
    indices = sampler.sample_indices(regimes)
    report = sampler.report_
    assert report.empty_regimes == ("recovery",)
    assert report.empty_regime_policy == "redistribute"
    assert "recovery" in report.empty_regime_note and "spread" in report.empty_regime_note
    assert report["recovery"].count_before == report["recovery"].count_after == 0
    assert report["recovery"].target == 0.1 and report["recovery"].effective_target == 0
    # Shares sum to 1 over the non-empty regimes, in proportion to their targets.
    assert sum(sampler.targets_.values()) == pytest.approx(1.0)
    for name in ["low_volatility", "normal", "high_volatility", "crash"]:
        assert sampler.targets_[name] == pytest.approx(TARGETS[name] / 0.9)
        assert abs(report[name].count_after - 1000 * TARGETS[name] / 0.9) < 1
    assert "recovery" not in set(regimes[indices])  # nothing invented


def sessions_of(regimes: np.ndarray, per_session: int) -> np.ndarray:
    """Dates putting ``per_session`` rows of a regime on each session, like a panel's symbols."""
    sessions = np.empty(regimes.size, dtype="datetime64[ns]")
    start = np.datetime64("2020-01-01", "ns")
    for offset, name in enumerate(NAMES):
        at = np.flatnonzero(regimes == name)
        sessions[at] = start + (np.arange(at.size) // per_session + 1000 * offset).astype("timedelta64[D]")
    return sessions


#: On sessions of 8 rows: recovery on 5 sessions, every other regime on at least 20.
RECOVERY_SPELL = dict(IMBALANCED, crash=160)


def test_a_regime_on_a_handful_of_sessions_is_kept_once_and_its_share_redistributed() -> None:
    # 40 recovery rows on 5 sessions of 8 symbols: below min_sessions=10, so not drawn up to a tenth.
    regimes = make_regimes(RECOVERY_SPELL)
    sessions = sessions_of(regimes, per_session=8)
    sampler = RegimeBalancedSampler(min_sessions=10, random_state=0)
    indices = sampler.sample_indices(regimes, sessions=sessions)
    report = sampler.report_
    assert report.sparse_regimes == ("recovery",) and report.empty_regimes == ()
    assert "recovery (5 session(s), 40 rows)" in report.sparse_regime_note
    kept = np.flatnonzero(regimes == "recovery")
    np.testing.assert_array_equal(np.intersect1d(indices, kept), kept)  # every row, once
    assert report["recovery"].count_after == 40 and report["recovery"].oversampled == 0
    assert report["crash"].dropped == 0  # keep_rare still keeps every crash row
    # The other regimes share the rest in proportion to their targets, to within a row.
    rest = report.n_after - 40
    for name in ["low_volatility", "normal", "high_volatility", "crash"]:
        assert abs(report[name].count_after - rest * TARGETS[name] / 0.9) < 1
    assert sum(sampler.targets_.values()) == pytest.approx(1.0)
    assert sampler.targets_["recovery"] == pytest.approx(40 / report.n_after)


def test_min_sessions_counts_sessions_not_rows() -> None:
    regimes = make_regimes(IMBALANCED)
    on_sessions = RegimeBalancedSampler(min_sessions=10, random_state=0)
    on_sessions.sample_indices(regimes, sessions=sessions_of(regimes, per_session=2))  # 20 sessions
    assert on_sessions.report_.sparse_regimes == ()
    assert on_sessions.report_["recovery"].count_after == on_sessions.report_["crash"].count_after
    on_rows = RegimeBalancedSampler(min_sessions=41, random_state=0)
    on_rows.sample_indices(regimes)  # no sessions: each row its own, and 40 < 41
    assert on_rows.report_.sparse_regimes == ("crash", "recovery")


def test_an_int_size_counts_the_sparse_rows_and_without_sparse_regimes_nothing_changes() -> None:
    regimes = make_regimes(RECOVERY_SPELL)
    sessions = sessions_of(regimes, per_session=8)
    sampler = RegimeBalancedSampler(size=1000, min_sessions=10, random_state=0)
    indices = sampler.sample_indices(regimes, sessions=sessions)
    assert indices.size == 1000 and sampler.report_["recovery"].count_after == 40
    plain = RegimeBalancedSampler(size=1000, random_state=0).sample_indices(regimes)
    np.testing.assert_array_equal(
        RegimeBalancedSampler(size=1000, min_sessions=5, random_state=0).sample_indices(regimes, sessions=sessions),
        plain)


def test_when_every_regime_is_sparse_the_rows_are_kept_as_they_are() -> None:
    regimes = make_regimes({"normal": 6, "crash": 3})
    sampler = RegimeBalancedSampler(min_sessions=10, random_state=0)
    np.testing.assert_array_equal(sampler.sample_indices(regimes), np.arange(9))
    assert sampler.report_.sparse_regimes == ("normal", "crash")


@pytest.mark.parametrize("bad", [-1, 2.5, True, "3"])
def test_invalid_min_sessions_raises_naming_it(bad) -> None:
    with pytest.raises(ValueError, match="min_sessions"):
        RegimeBalancedSampler(min_sessions=bad).sample_indices(make_regimes(IMBALANCED))


def test_an_empty_regime_fails_under_policy_fail_naming_it() -> None:
    regimes = make_regimes(dict(IMBALANCED, crash=0, recovery=0))
    sampler = RegimeBalancedSampler(empty_regime_policy="fail")
    with pytest.raises(ValueError, match="crash.*recovery"):
        sampler.sample_indices(regimes)


def test_a_regime_with_zero_target_and_no_rows_is_not_empty_and_one_with_rows_is_dropped() -> None:
    targets = dict(TARGETS, recovery=0.0, crash=0.2)
    regimes = make_regimes(dict(IMBALANCED, recovery=0))
    sampler = RegimeBalancedSampler(targets=targets, size=1000, empty_regime_policy="fail", random_state=0)
    sampler.sample_indices(regimes)
    assert sampler.report_.empty_regimes == ()
    regimes = make_regimes(IMBALANCED)
    sampler.sample_indices(regimes)
    assert sampler.report_["recovery"].count_after == 0
    assert sampler.report_["recovery"].dropped == 40


def test_nothing_to_balance_raises() -> None:
    with pytest.raises(ValueError, match="empty"):
        RegimeBalancedSampler().sample_indices([])
    only_target = {name: 1.0 if name == "crash" else 0.0 for name in NAMES}
    with pytest.raises(ValueError, match="no regime with rows has a positive target"):
        RegimeBalancedSampler(targets=only_target).sample_indices(["normal", "normal"])


def test_unknown_regime_labels_raise_naming_them() -> None:
    with pytest.raises(ValueError, match="meltdown") as info:
        RegimeBalancedSampler().sample_indices(["normal", "meltdown", "crash", "bubble"])
    assert "bubble" in str(info.value)
    with pytest.raises(ValueError, match="unknown regime"):
        RegimeBalancedSampler().sample_indices(["normal", None])


def test_regime_members_and_categorical_series_are_accepted() -> None:
    labels = make_regimes(IMBALANCED)
    as_members = [Regime(v) for v in labels]
    as_category = pd.Series(labels, dtype="category")
    expected = RegimeBalancedSampler(random_state=3).sample_indices(labels)
    np.testing.assert_array_equal(RegimeBalancedSampler(random_state=3).sample_indices(as_members), expected)
    np.testing.assert_array_equal(RegimeBalancedSampler(random_state=3).sample_indices(as_category), expected)
    np.testing.assert_array_equal(encode_regimes(["crash", Regime.NORMAL]), [1, 0])


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        ({k: v for k, v in TARGETS.items() if k != "crash"}, "lack a value for: crash"),
        (dict(TARGETS, panic=0.0), "unknown regime.*panic"),
        (dict(TARGETS, normal=0.5), "sum to 1"),
        (dict(TARGETS, normal=0.6, crash=-0.1), "negative"),
        (dict(TARGETS, normal=float("nan")), "finite"),
        ([0.2, 0.4, 0.2, 0.1, 0.1], "mapping"),
    ],
)
def test_invalid_targets_raise_when_sampling_not_when_constructed(targets, message: str) -> None:
    sampler = RegimeBalancedSampler(targets=targets)  # __init__ stores, never validates
    assert sampler.targets is targets
    with pytest.raises(ValueError, match=message):
        sampler.sample_indices(make_regimes(IMBALANCED))


@pytest.mark.parametrize("size", [0, -5, "all", 1.5, True])
def test_invalid_size_raises(size) -> None:
    with pytest.raises(ValueError, match="size"):
        RegimeBalancedSampler(size=size).sample_indices(make_regimes(IMBALANCED))


def test_invalid_policy_raises_listing_the_choices() -> None:
    with pytest.raises(ValueError, match="redistribute"):
        RegimeBalancedSampler(empty_regime_policy="ignore").sample_indices(make_regimes(IMBALANCED))


def test_params_are_stored_unchanged_and_clone_round_trips() -> None:
    targets = dict(TARGETS)
    sampler = RegimeBalancedSampler(targets=targets, size=1234, empty_regime_policy="fail", min_sessions=3,
                                    random_state=5)
    assert sampler.get_params() == {"targets": targets, "size": 1234, "empty_regime_policy": "fail",
                                    "min_sessions": 3, "random_state": 5}
    sampler.sample_indices(make_regimes(IMBALANCED))
    assert sampler.targets is targets and sampler.size == 1234  # fitting overwrites no parameter
    copy = clone(sampler)
    assert copy.get_params() == sampler.get_params()
    assert not hasattr(copy, "report_")


def test_from_config_takes_targets_policy_and_seed() -> None:
    config = SamplingConfig(empty_regime_policy="fail", seed=11)
    sampler = RegimeBalancedSampler.from_config(config, size=500)
    assert sampler.targets == TARGETS
    assert (sampler.empty_regime_policy, sampler.random_state, sampler.size) == ("fail", 11, 500)
    regimes = make_regimes(IMBALANCED)
    np.testing.assert_array_equal(
        sampler.sample_indices(regimes),
        RegimeBalancedSampler(size=500, random_state=11).sample_indices(regimes),
    )


def test_dataframe_index_labels_survive_so_duplicates_keep_their_provenance() -> None:
    regimes = make_regimes(IMBALANCED)
    n = len(regimes)
    index = pd.Index([f"AAPL-{i:05d}" for i in range(n)], name="sample")
    X = pd.DataFrame({"f0": np.arange(n, dtype=float), "f1": np.arange(n) * 2.0}, index=index)
    y = pd.Series(np.arange(n) % 2, index=index, name="label")
    regime_series = pd.Series(regimes, index=index, name="regime")
    weight = pd.Series(np.linspace(0.5, 1.5, n), index=index)
    sampler = RegimeBalancedSampler(size=3000, random_state=0)
    X_res, y_res, regimes_res, weight_res = sampler.fit_resample(
        X, y, regimes=regime_series, sample_weight=weight)
    assert isinstance(X_res, pd.DataFrame) and isinstance(y_res, pd.Series)
    assert len(X_res) == len(y_res) == len(regimes_res) == len(weight_res) == 3000
    assert X_res.index.has_duplicates  # oversampled rows
    assert set(X_res.index) <= set(index)
    # Each row, duplicated or not, is the original row under its original label.
    pd.testing.assert_frame_equal(X_res, X.loc[X_res.index])
    pd.testing.assert_series_equal(y_res, y.loc[X_res.index])
    pd.testing.assert_series_equal(regimes_res, regime_series.loc[X_res.index])
    pd.testing.assert_series_equal(weight_res, weight.loc[X_res.index])  # weights carried unchanged


def test_numpy_inputs_follow_sample_indices() -> None:
    regimes = make_regimes(IMBALANCED)
    n = len(regimes)
    X, y, w = np.arange(2 * n).reshape(n, 2), np.arange(n) % 2, np.arange(n) / n
    out = RegimeBalancedSampler(random_state=4).fit_resample(X, y, regimes=list(regimes))
    indices = RegimeBalancedSampler(random_state=4).sample_indices(regimes)
    assert len(out) == 3
    np.testing.assert_array_equal(out[0], X[indices])
    np.testing.assert_array_equal(out[1], y[indices])
    np.testing.assert_array_equal(out[2], regimes[indices])
    with_weight = RegimeBalancedSampler(random_state=4).fit_resample(X, y, regimes=regimes, sample_weight=w)
    np.testing.assert_array_equal(with_weight[3], w[indices])


def test_mismatched_lengths_raise() -> None:
    regimes = make_regimes(IMBALANCED)
    with pytest.raises(ValueError, match="inconsistent"):
        RegimeBalancedSampler().fit_resample(np.zeros((10, 2)), np.zeros(10), regimes=regimes)


def test_report_shares_before_and_after() -> None:
    regimes = make_regimes(IMBALANCED)
    sampler = RegimeBalancedSampler(size=1000, random_state=0)
    sampler.sample_indices(regimes)
    report = sampler.report_
    n = sum(IMBALANCED.values())
    assert (report.n_before, report.n_after, report.size_rule) == (n, 1000, 1000)
    assert report.empty_regimes == () and report.empty_regime_note == ""
    frame = report.to_frame()
    assert list(frame.index) == NAMES
    for name, count in IMBALANCED.items():
        row = report[name]
        assert row.count_before == count
        assert row.share_before == pytest.approx(count / n)
        assert row.target == row.effective_target == TARGETS[name]
        assert row.share_after == pytest.approx(TARGETS[name])
        assert row.count_after == round(TARGETS[name] * 1000)
        assert row.oversampled == max(row.count_after - count, 0)
        assert row.dropped == max(count - row.count_after, 0)
    assert report["crash"].oversampled == 60 and report["normal"].dropped == 1000
    assert frame["share_before"].sum() == pytest.approx(1) and frame["share_after"].sum() == pytest.approx(1)
    with pytest.raises(KeyError):
        report["panic"]


regime_counts = st.lists(st.integers(0, 60), min_size=5, max_size=5).filter(lambda c: sum(c) > 0)
targets_strategy = st.lists(st.integers(0, 10), min_size=5, max_size=5).filter(lambda t: sum(t) > 0)


@settings(max_examples=150, deadline=None)
@given(counts=regime_counts, weights=targets_strategy,
       size=st.one_of(st.integers(1, 700), st.sampled_from(["keep_rare", "same"])),
       seed=st.integers(0, 2**31 - 1))
def test_balancing_properties_over_random_mixes(counts, weights, size, seed) -> None:
    targets = dict(zip(NAMES, np.asarray(weights) / sum(weights), strict=True))
    regimes = make_regimes(dict(zip(NAMES, counts, strict=True)), seed=seed % 1000)
    available = np.array(counts)
    if not (available * (np.array(weights) > 0)).any():
        with pytest.raises(ValueError):
            RegimeBalancedSampler(targets=targets, size=size).sample_indices(regimes)
        return
    sampler = RegimeBalancedSampler(targets=targets, size=size, random_state=seed)
    indices = sampler.sample_indices(regimes)
    effective = np.array([sampler.targets_[n] for n in NAMES])
    total = len(indices)
    assert total == sampler.size_
    if size == "same":
        assert total == len(regimes)
    elif not isinstance(size, str):
        assert total == size
    assert effective.sum() == pytest.approx(1)
    drawn = np.bincount(encode_regimes(regimes[indices]), minlength=5)
    assert np.all(np.abs(drawn - effective * total) < 1)
    assert np.all(drawn[available == 0] == 0)  # nothing invented
    for code, name in enumerate(NAMES):
        originals = set(np.flatnonzero(encode_regimes(regimes) == code))
        rows = indices[encode_regimes(regimes[indices]) == code]
        if drawn[code] >= available[code]:
            assert originals <= set(rows), name  # oversampled: every original row kept
        else:
            assert len(set(rows)) == len(rows)  # undersampled: no repeats
        assert sampler.report_[name].count_after == drawn[code]
    if size == "keep_rare":
        n = available.sum()
        storm = np.isin(np.array(NAMES), ["crash", "recovery"])
        kept = (effective > 0) & (available > 0) & ((effective * n >= available * (1 - 1e-9)) | storm)
        assert np.all(drawn[kept] >= available[kept])
        if total > 1:
            assert not np.all(largest_remainder(effective, total - 1)[kept] >= available[kept])
