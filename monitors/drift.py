"""Drift detection (SPEC.md module 6): feature drift, regime drift and prediction drift.

Every detector follows river's convention: ``update(x)`` with the newest session, then read the
read-only ``drift_detected``; ``_reset()`` builds all mutable state and runs on the next update
after an alarm. Each update leaves a :class:`DriftReport` (``report``) that says which features
or series drifted, by how much, against which threshold and since which session, or which
tests were skipped and why; a skipped test is never a silent pass.

* :class:`FeatureDriftDetector`: each feature's last few sessions against the training
  reference (KS, PSI, normalised Wasserstein), thresholds calibrated on the reference's own
  windows, a Bonferroni correction over the features and a drift-share rule for the set. A
  feature undefined for some rows (a symbol's gap or short history) is tested on its defined
  rows; one with too few of them is skipped, named;
* :class:`RegimeDriftDetector`: the recent regime mix against the training mix (chi-square and
  total variation distance);
* :class:`PredictionDriftDetector`: the Jensen-Shannon distance of predicted probabilities
  against the reference, and river's ADWIN (or DDM) on the stream of matured errors: a label
  matures ``horizon`` sessions after its prediction and nothing is scored before.

:class:`DriftMonitor` runs the three on one :class:`SessionInput` per session: one monitor cycle
is one call. Detectors are plain picklable objects, so a cycle's state can be saved and restored.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from river.base import DriftDetector
from river.drift import ADWIN
from river.drift.binary import DDM
from scipy import stats
from scipy.spatial.distance import jensenshannon

from market.vocabulary import REGIMES
from monitors.config import DriftThresholds

__all__ = [
    "DriftItem", "DriftMonitor", "DriftReport", "FeatureDriftDetector", "FeatureReference",
    "PredictionDriftDetector", "PredictionUpdate", "RegimeDriftDetector", "SessionInput",
]

#: Smallest bin share in PSI, so that an empty bin counts as rare rather than infinitely surprising.
PSI_FLOOR = 1e-4


@dataclass(frozen=True)
class DriftItem:
    """One feature or series that drifted: by how much, against which threshold, since when."""

    name: str
    measure: str
    value: float
    threshold: float
    since: pd.Timestamp
    pvalue: float | None = None

    def describe(self) -> str:
        tested = f", KS p {self.pvalue:.1e}" if self.pvalue is not None else ""
        return (f"{self.name} {self.measure} {self.value:.3g} > {self.threshold:.3g}{tested} "
                f"since {self.since.date()}")


@dataclass(frozen=True)
class DriftReport:
    """What one detector found on one session.

    ``value`` is the detector's headline statistic (the share of features drifted, the total
    variation distance of the regime mix, the Jensen-Shannon distance of the probabilities) and
    ``threshold`` what it is compared with; ``items`` are the series that drifted, strongest
    first; ``skipped`` names each test that could not run and why.
    """

    detector: str
    session: pd.Timestamp
    drifted: bool
    measure: str
    value: float
    threshold: float
    since: pd.Timestamp | None = None
    items: tuple[DriftItem, ...] = ()
    tested: int = 0
    skipped: tuple[tuple[str, str], ...] = ()
    extra: dict[str, float] = field(default_factory=dict)

    def summary(self, items: int = 3) -> str:
        """One line: the headline, the strongest items and how many tests were skipped."""
        state = "drift" if self.drifted else "no drift"
        line = f"{self.detector} {state}: {self.measure} {self.value:.3g} (threshold {self.threshold:.3g})"
        if self.since is not None and self.drifted:
            line += f" since {self.since.date()}"
        if self.items:
            shown = "; ".join(item.describe() for item in self.items[:items])
            more = f" and {len(self.items) - items} more" if len(self.items) > items else ""
            line += f": {shown}{more}"
        if self.skipped:
            line += f" [{len(self.skipped)} skipped: {self.skipped[0][0]}: {self.skipped[0][1]}]"
        return line


def _session_of(x: pd.DataFrame) -> pd.Timestamp:
    """The one session of a live frame indexed by ``(date, symbol)``."""
    if "date" not in (x.index.names or ()):
        raise ValueError("the live frame must be indexed by (date, symbol), as compute_features gives it")
    dates = x.index.get_level_values("date").unique()
    if len(dates) != 1:
        raise ValueError(f"the live frame must hold exactly one session, not {len(dates)}")
    return pd.Timestamp(dates[0])


def _psi(expected: np.ndarray, counts: np.ndarray) -> float:
    """Population stability index of bin shares (written out: scipy has no PSI)."""
    actual = np.maximum(counts / counts.sum(), PSI_FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


@dataclass(frozen=True, eq=False)
class FeatureReference:
    """The training reference of feature drift, summarised and calibrated once.

    Build it with :meth:`from_frame`. Per tested feature it keeps ``points`` (evenly spaced
    quantiles: the reference distribution at a fixed size, so a test costs the same whatever the
    reference's length), the PSI bin edges and the reference's share per bin, the standard
    deviation, and the PSI and Wasserstein thresholds: the configured floors or, if higher, the
    ``quantile`` of the same statistics over windows of ``window_sessions`` consecutive sessions
    of the reference itself. ``skipped`` names every feature that cannot be tested, and why.
    """

    names: tuple[str, ...]
    tested: np.ndarray  # bool per name
    points: np.ndarray  # reference_points x tested features
    edges: tuple[np.ndarray, ...]
    expected: tuple[np.ndarray, ...]
    std: np.ndarray
    psi_threshold: np.ndarray
    wasserstein_threshold: np.ndarray
    window_sessions: int
    rows: int
    sessions: int
    skipped: tuple[tuple[str, str], ...]

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        window_sessions: int = 3,
        psi: float = 0.2,
        psi_bins: int = 10,
        wasserstein: float = 0.1,
        reference_quantile: float = 0.99,
        calibration_windows: int = 40,
        reference_points: int = 500,
        min_reference_rows: int = 200,
    ) -> FeatureReference:
        """Summarise ``frame`` (feature rows indexed by ``(date, symbol)``) and calibrate.

        Raises
        ------
        ValueError
            If ``frame`` is not indexed by date, has fewer than ``min_reference_rows`` rows,
            spans fewer sessions than ``window_sessions``, or no feature can be tested; the
            message names the feature and the count where one is at fault.
        """
        if not isinstance(frame, pd.DataFrame) or "date" not in (frame.index.names or ()):
            raise ValueError("the feature reference must be a DataFrame indexed by (date, symbol)")
        if len(frame) < min_reference_rows:
            raise ValueError(f"the feature reference has {len(frame)} rows; feature drift needs at least "
                             f"{min_reference_rows} (monitors.drift.min_reference_rows)")
        dates = pd.DatetimeIndex(frame.index.get_level_values("date"))
        sessions = dates.unique().sort_values()
        if len(sessions) < window_sessions:
            raise ValueError(f"the feature reference spans {len(sessions)} sessions, fewer than the "
                             f"{window_sessions} of a live window (monitors.drift.window_sessions)")
        names = tuple(str(c) for c in frame.columns)
        values = frame.to_numpy(dtype="float64")
        tested = np.zeros(len(names), dtype=bool)
        skipped = []
        columns, stds = [], []
        quantiles = np.linspace(0.0, 1.0, reference_points)
        for j, name in enumerate(names):
            finite = values[:, j][np.isfinite(values[:, j])]
            if len(finite) < min_reference_rows:
                skipped.append((name, f"the reference has {len(finite)} finite rows, "
                                      f"needs {min_reference_rows}"))
            elif not finite.std() > 0:
                skipped.append((name, "constant in the reference"))
            else:
                tested[j] = True
                columns.append(np.quantile(finite, quantiles))
                stds.append(finite.std())
        if not tested.any():
            raise ValueError(f"no feature of the reference can be tested: {skipped[0][0]}: {skipped[0][1]}"
                             + (f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""))
        points = np.column_stack(columns)
        inner = np.linspace(0.0, 1.0, psi_bins + 1)[1:-1]
        edges = tuple(np.quantile(points[:, k], inner) for k in range(points.shape[1]))
        ref_values = values[:, tested]
        expected = tuple(
            np.maximum(_bin_counts(edges[k], ref_values[:, k]) / np.isfinite(ref_values[:, k]).sum(),
                       PSI_FLOOR)
            for k in range(points.shape[1])
        )
        reference = cls(
            names=names, tested=tested, points=points, edges=edges, expected=expected,
            std=np.asarray(stds), psi_threshold=np.full(points.shape[1], psi),
            wasserstein_threshold=np.full(points.shape[1], wasserstein), window_sessions=window_sessions,
            rows=len(frame), sessions=len(sessions), skipped=tuple(skipped),
        )
        # Calibration: the statistics of windows of the reference against the whole reference.
        codes = sessions.get_indexer(dates)
        last_start = len(sessions) - window_sessions
        starts = np.unique(np.linspace(0, last_start, calibration_windows).round().astype(int))
        psis, distances = [], []
        for first in starts:
            rows = (codes >= first) & (codes < first + window_sessions)
            p, w = reference.statistics(ref_values[rows])
            psis.append(p)
            distances.append(w)
        with np.errstate(all="ignore"):
            calibrated_psi = np.nanquantile(np.array(psis), reference_quantile, axis=0)
            calibrated_w = np.nanquantile(np.array(distances), reference_quantile, axis=0)
        object.__setattr__(reference, "psi_threshold", np.fmax(psi, calibrated_psi))
        object.__setattr__(reference, "wasserstein_threshold", np.fmax(wasserstein, calibrated_w))
        return reference

    @classmethod
    def from_config(cls, frame: pd.DataFrame, thresholds: DriftThresholds) -> FeatureReference:
        """:meth:`from_frame` with the settings of ``monitors.drift``."""
        t = thresholds
        return cls.from_frame(frame, window_sessions=t.window_sessions, psi=t.psi, psi_bins=t.psi_bins,
                              wasserstein=t.wasserstein, reference_quantile=t.reference_quantile,
                              calibration_windows=t.calibration_windows, reference_points=t.reference_points,
                              min_reference_rows=t.min_reference_rows)

    @property
    def tested_names(self) -> tuple[str, ...]:
        return tuple(n for n, t in zip(self.names, self.tested, strict=True) if t)

    def statistics(self, live: np.ndarray, min_rows: int = 2) -> tuple[np.ndarray, np.ndarray]:
        """PSI and normalised Wasserstein distance of each tested feature's ``live`` column
        (rows x tested features) against the reference; NaN where fewer than ``min_rows`` finite
        live values exist."""
        k = self.points.shape[1]
        psi, distance = np.full(k, np.nan), np.full(k, np.nan)
        for j in range(k):
            column = live[:, j]
            column = column[np.isfinite(column)]
            if len(column) < min_rows:
                continue
            psi[j] = _psi(self.expected[j], _bin_counts(self.edges[j], column))
            distance[j] = stats.wasserstein_distance(self.points[:, j], column) / self.std[j]
        return psi, distance


def _bin_counts(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    finite = values[np.isfinite(values)]
    codes = np.searchsorted(edges, finite, side="right")
    return np.bincount(codes, minlength=len(edges) + 1).astype("float64")


class FeatureDriftDetector(DriftDetector):
    """Feature drift: each feature's last sessions against the training reference.

    On every update the newest session's rows join a window of the last
    ``reference.window_sessions`` sessions; once it is full, each tested feature is compared with
    the reference. A feature drifts when its PSI or its Wasserstein distance (in reference
    standard deviations) exceeds the reference's calibrated threshold **and** its two-sample KS
    test (``scipy.stats.ks_2samp`` against the reference's quantile points, a conservative
    stand-in for the whole reference) rejects at ``ks_pvalue`` after a Bonferroni correction over
    the features tested this session. The KS test is only run where an effect size already
    exceeds its threshold, since elsewhere it cannot change the outcome (Bonferroni's correction
    does not depend on the other p-values). The set drifts when at least ``drift_share`` of the
    tested features drift.

    Why three controls of false alarms: 180 features tested every session would raise about two
    false alarms a session at 1% each; the correction bounds that, but panel rows are correlated
    (every market-wide feature has one value per session), so p-values alone overstate the
    evidence. The calibrated effect sizes ask for a difference the reference's own windows do not
    show, and the share rule for a broad one.

    Parameters
    ----------
    reference
        The summarised training reference (:meth:`FeatureReference.from_frame`).
    ks_pvalue
        Family-wise level of the KS tests of one session.
    drift_share
        Share of tested features that must drift for the set to drift.
    min_live_rows
        Finite live values a feature needs in the window to be tested; fewer skips it, named.

    Examples
    --------
    Ten symbols, three features, 120 calm reference sessions; from session 30 of the stream two
    of the three features shift by 1.5 standard deviations.

    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(12345)
    >>> def sessions(first, n, shift=0.0):
    ...     dates = pd.bdate_range(first, periods=n)
    ...     symbols = [f"S{i}" for i in range(10)]
    ...     index = pd.MultiIndex.from_product([dates, symbols], names=["date", "symbol"])
    ...     values = rng.standard_normal((len(index), 3)) + [shift, shift, 0.0]
    ...     return pd.DataFrame(values, index=index, columns=["a", "b", "c"])
    >>> reference = FeatureReference.from_frame(sessions("2020-01-01", 120), min_reference_rows=100)
    >>> detector = FeatureDriftDetector(reference, drift_share=0.5, min_live_rows=10)
    >>> stream = pd.concat([sessions("2021-01-01", 30), sessions("2021-02-12", 30, shift=1.5)])
    >>> for i, (day, frame) in enumerate(stream.groupby(level="date")):
    ...     detector.update(frame)
    ...     if detector.drift_detected:
    ...         report = detector.report
    ...         print(f"Change detected at index {i}, since {report.since.date()}")
    ...         for item in report.items:
    ...             print(item.describe())
    ...         break
    Change detected at index 31, since 2021-02-15
    b wasserstein 1.1 > 0.351, KS p 1.6e-05 since 2021-02-15
    a wasserstein 0.796 > 0.486, KS p 2.5e-04 since 2021-02-15
    """

    def __init__(
        self,
        reference: FeatureReference,
        *,
        ks_pvalue: float = 0.01,
        drift_share: float = 0.15,
        min_live_rows: int = 20,
    ) -> None:
        super().__init__()
        if not isinstance(reference, FeatureReference):
            raise TypeError("reference must be a FeatureReference (FeatureReference.from_frame(frame))")
        self.reference = reference
        self.ks_pvalue = ks_pvalue
        self.drift_share = drift_share
        self.min_live_rows = min_live_rows
        self._reset()

    @classmethod
    def from_config(cls, frame: pd.DataFrame, thresholds: DriftThresholds) -> FeatureDriftDetector:
        """A detector on ``frame`` as the reference, with the settings of ``monitors.drift``."""
        return cls(FeatureReference.from_config(frame, thresholds), ks_pvalue=thresholds.ks_pvalue,
                   drift_share=thresholds.drift_share, min_live_rows=thresholds.min_live_rows)

    def __repr__(self) -> str:
        r = self.reference
        return (f"FeatureDriftDetector({len(r.tested_names)} features, {r.rows} reference rows, "
                f"window {r.window_sessions} sessions)")

    def _reset(self) -> None:
        super()._reset()
        self._window: deque[tuple[pd.Timestamp, np.ndarray]] = deque(maxlen=self.reference.window_sessions)
        self._since: dict[str, pd.Timestamp] = {}
        self._report: DriftReport | None = None

    @property
    def report(self) -> DriftReport | None:
        """The report of the last update; ``None`` while the window is filling."""
        return self._report

    def update(self, x: pd.DataFrame) -> None:
        """Add the newest session's feature rows (indexed by ``(date, symbol)``) and test.

        Raises
        ------
        ValueError
            If the frame is not one session indexed by ``(date, symbol)``, or lacks a feature
            of the reference (named).
        """
        if self.drift_detected:
            self._reset()
        reference = self.reference
        session = _session_of(x)
        missing = [name for name in reference.names if name not in x.columns]
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise ValueError(f"the live frame of {session.date()} lacks {len(missing)} reference "
                             f"feature(s): {shown}")
        names = reference.tested_names
        self._window.append((session, x.loc[:, list(names)].to_numpy(dtype="float64")))
        if len(self._window) < reference.window_sessions:
            self._report = None
            return
        live = np.vstack([block for _, block in self._window])
        counts = np.isfinite(live).sum(axis=0)
        psi, distance = reference.statistics(live, self.min_live_rows)
        skipped = list(reference.skipped)
        skipped += [(names[j], f"the live window has {counts[j]} finite rows, needs {self.min_live_rows}")
                    for j in np.flatnonzero(counts < self.min_live_rows)]
        testable = counts >= self.min_live_rows
        tested = int(testable.sum())
        psi_ratio = psi / reference.psi_threshold
        w_ratio = distance / reference.wasserstein_threshold
        candidates = np.flatnonzero(testable & ((psi_ratio >= 1) | (w_ratio >= 1)))
        items = []
        drifted = set()
        pvalues = self._ks_pvalues(live, candidates)
        for j in candidates:
            corrected = min(1.0, pvalues[j] * tested)
            if corrected >= self.ks_pvalue:
                continue
            name = names[j]
            drifted.add(name)
            since = self._since.setdefault(name, session)
            if psi_ratio[j] >= w_ratio[j]:
                measure, value, threshold = "psi", psi[j], reference.psi_threshold[j]
            else:
                measure, value, threshold = "wasserstein", distance[j], reference.wasserstein_threshold[j]
            items.append((max(psi_ratio[j], w_ratio[j]), DriftItem(
                name=name, measure=measure, value=float(value), threshold=float(threshold), since=since,
                pvalue=corrected)))
        for name in [n for n in self._since if n not in drifted]:
            del self._since[name]
        items.sort(key=lambda pair: -pair[0])
        share = len(drifted) / tested if tested else 0.0
        alarm = bool(tested and share >= self.drift_share)
        self._report = DriftReport(
            detector="feature", session=session, drifted=alarm, measure="share of features drifted",
            value=share, threshold=self.drift_share,
            since=min(self._since.values()) if self._since else None,
            items=tuple(item for _, item in items), tested=tested, skipped=tuple(skipped),
            extra={"max_psi": float(np.nanmax(psi)) if tested else float("nan")},
        )
        self._drift_detected = alarm


    def _ks_pvalues(self, live: np.ndarray, candidates: np.ndarray) -> dict[int, float]:
        """KS p-values of the ``candidates`` columns against the reference points: one vectorised
        ``ks_2samp`` call for the columns without a missing value, one call per column on its
        finite values for the others (a feature undefined for some symbols: a gap, a short
        history)."""
        points = self.reference.points
        complete = [j for j in candidates if np.isfinite(live[:, j]).all()]
        out: dict[int, float] = {}
        if complete:
            result = stats.ks_2samp(points[:, complete], live[:, complete], axis=0, method="asymp")
            out.update(zip(complete, np.atleast_1d(result.pvalue).astype(float).tolist(), strict=True))
        for j in candidates:
            if j not in out:
                finite = live[:, j][np.isfinite(live[:, j])]
                out[j] = float(stats.ks_2samp(points[:, j], finite, method="asymp").pvalue)
        return out


class RegimeDriftDetector(DriftDetector):
    """Regime drift: the regime mix of the last sessions against the training mix.

    The last ``window_sessions`` labelled sessions' regime counts are tested against the
    reference shares with ``scipy.stats.chisquare``, and their total variation distance
    ``0.5 * sum |live share - reference share|`` is measured; the mix drifts when the test
    rejects at ``chi2_pvalue`` **and** the distance reaches ``tvd``. The distance guards against
    the chi-square's overconfidence: consecutive sessions' regimes are anything but independent.
    Reference shares get half a session per regime (additive smoothing), so a regime never seen
    in training, such as a first crash, is very unlikely rather than impossible.

    Parameters
    ----------
    reference
        The training sessions' regime labels (missing labels are ignored).
    window_sessions
        Labelled sessions in the live mix.
    chi2_pvalue, tvd
        The two thresholds, both of which must be passed.

    Examples
    --------
    Training saw calm markets only (three spells of low volatility for two of normal); the live
    market draws from the same mix, then turns volatile at session 40.

    >>> import random
    >>> import pandas as pd
    >>> rng = random.Random(12345)
    >>> calm = ["low_volatility"] * 3 + ["normal"] * 2
    >>> detector = RegimeDriftDetector([rng.choice(calm) for _ in range(250)], window_sessions=21)
    >>> dates = pd.bdate_range("2024-01-01", periods=80)
    >>> labels = [rng.choice(calm) for _ in range(40)] + ["high_volatility"] * 40
    >>> for i, (day, regime) in enumerate(zip(dates, labels)):
    ...     detector.update(pd.Series([regime], index=[day]))
    ...     if detector.drift_detected:
    ...         print(f"Change detected at index {i}")
    ...         print(detector.report.summary())
    ...         break
    Change detected at index 45
    regime drift: total variation distance 0.284 (threshold 0.25) since 2024-02-26:
    high_volatility share 0.286 > 0.00198 since 2024-02-26
    """

    def __init__(
        self,
        reference: Sequence[str | None] | pd.Series,
        *,
        window_sessions: int = 21,
        chi2_pvalue: float = 0.01,
        tvd: float = 0.25,
    ) -> None:
        super().__init__()
        self.reference = reference
        self.window_sessions = window_sessions
        self.chi2_pvalue = chi2_pvalue
        self.tvd = tvd
        labels = list(pd.Series(list(reference), dtype=object).dropna())
        self._order = tuple(r.value for r in REGIMES)
        unknown = sorted(set(labels) - set(self._order))
        if unknown:
            raise ValueError(f"unknown regime(s) in the reference: {', '.join(map(str, unknown))}; valid: "
                             f"{', '.join(self._order)}")
        if len(labels) < window_sessions:
            raise ValueError(f"the regime reference has {len(labels)} labelled sessions, fewer than the "
                             f"{window_sessions} of the live mix (monitors.drift.regime_window_sessions)")
        counts = np.array([labels.count(r) for r in self._order], dtype="float64") + 0.5
        self._reference_share = counts / counts.sum()
        self._reset()

    @classmethod
    def from_config(cls, reference: Iterable[str | None], thresholds: DriftThresholds) -> RegimeDriftDetector:
        return cls(list(reference), window_sessions=thresholds.regime_window_sessions,
                   chi2_pvalue=thresholds.chi2_pvalue, tvd=thresholds.tvd)

    def __repr__(self) -> str:
        return f"RegimeDriftDetector(window {self.window_sessions} sessions)"

    def _reset(self) -> None:
        super()._reset()
        self._window: deque[tuple[pd.Timestamp, str]] = deque(maxlen=self.window_sessions)
        self._report: DriftReport | None = None

    @property
    def report(self) -> DriftReport | None:
        return self._report

    def update(self, x: pd.Series) -> None:
        """Add the newest session's regime, a one-element Series indexed by the session; a
        missing label (NaN or None) leaves the window as it is and reports the skip."""
        if self.drift_detected:
            self._reset()
        if not isinstance(x, pd.Series) or len(x) != 1:
            raise ValueError("update takes the newest session's regime as a one-element Series")
        session, regime = pd.Timestamp(x.index[0]), x.iloc[0]
        if regime is None or (isinstance(regime, float) and np.isnan(regime)):
            skipped = (("regime", f"no regime label on {session.date()}"),)
            self._report = DriftReport("regime", session, False, "total variation distance", float("nan"),
                                       self.tvd, skipped=skipped)
            return
        if regime not in self._order:
            raise ValueError(f"unknown regime {regime!r} on {session.date()}; valid: "
                             f"{', '.join(self._order)}")
        self._window.append((session, str(regime)))
        if len(self._window) < self.window_sessions:
            self._report = None
            return
        labels = [r for _, r in self._window]
        observed = np.array([labels.count(r) for r in self._order], dtype="float64")
        live_share = observed / observed.sum()
        distance = 0.5 * float(np.abs(live_share - self._reference_share).sum())
        pvalue = float(stats.chisquare(observed, self._reference_share * observed.sum()).pvalue)
        alarm = pvalue < self.chi2_pvalue and distance >= self.tvd
        grown = [k for k in np.argsort(-(live_share - self._reference_share))
                 if live_share[k] > self._reference_share[k]]
        items = []
        for k in grown:
            first = next(s for s, r in self._window if r == self._order[k])
            items.append(DriftItem(self._order[k], "share", float(live_share[k]),
                                   float(self._reference_share[k]), first))
        self._report = DriftReport(
            detector="regime", session=session, drifted=alarm, measure="total variation distance",
            value=distance, threshold=self.tvd, since=min((i.since for i in items), default=None),
            items=tuple(items), tested=1, extra={"chi2_pvalue": pvalue},
        )
        self._drift_detected = alarm


@dataclass(frozen=True)
class PredictionUpdate:
    """One session of a model's output: its probabilities of an up label per symbol and,
    once they have matured, the realised labels (0 or 1 per symbol) of the predictions it made
    on session ``labels_of``."""

    session: pd.Timestamp
    probabilities: pd.Series
    labels: pd.Series | None = None
    labels_of: pd.Timestamp | None = None


class PredictionDriftDetector(DriftDetector):
    """Prediction drift: the model's output distribution and, once labels mature, its errors.

    Two series are watched. **Probabilities**: the predictions of the last ``window_sessions``
    sessions are binned on [0, 1] (``bins`` equal bins) and compared with the reference's by
    the Jensen-Shannon distance (``scipy.spatial.distance.jensenshannon``, base 2, so it lies in
    [0, 1]); it drifts at ``js_distance``. **Errors**: a label matures ``horizon`` sessions after
    its prediction (the forward return it is about needs those sessions), so the labels handed
    to an update are matched with the predictions of their session, which must be at least
    ``horizon`` updates old, and each miss (prediction >= 0.5 against the label) feeds river's
    ADWIN (``error_detector = "adwin"``) or DDM; labels offered earlier are refused, so nothing
    is scored before it matures. Labels of a prediction the detector no longer holds (made
    before its last reset) are skipped and reported. Either series drifting is a drift.

    Parameters
    ----------
    reference
        Probabilities the model gave on its training reference.
    horizon
        Sessions until a label matures.
    window_sessions, bins, js_distance
        The live window, the bins and the threshold of the Jensen-Shannon distance.
    error_detector
        ``"adwin"`` or ``"ddm"``.
    adwin_delta, ddm_warm_start, ddm_drift_threshold
        Their parameters (river's ``ADWIN(delta)``, ``DDM(warm_start, drift_threshold)``).
    min_live_rows
        Probabilities the window needs before the distance is measured.

    Examples
    --------
    A model right 60% of the time becomes right 35% of the time at session 60; its
    probabilities keep their distribution, so only the matured errors can tell.

    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(12345)
    >>> symbols = [f"S{i}" for i in range(50)]
    >>> detector = PredictionDriftDetector(rng.uniform(0.3, 0.7, 2000), horizon=5)
    >>> dates = pd.bdate_range("2024-01-01", periods=120)
    >>> made = {}
    >>> for i, day in enumerate(dates):
    ...     p = pd.Series(rng.uniform(0.3, 0.7, 50), index=symbols)
    ...     made[i] = p
    ...     labels = None
    ...     if i >= 5:
    ...         right = rng.random(50) < (0.6 if i - 5 < 60 else 0.35)
    ...         up = np.where(right, made[i - 5] >= 0.5, made[i - 5] < 0.5)
    ...         labels = pd.Series(up.astype(int), index=symbols)
    ...     detector.update(PredictionUpdate(day, p, labels, dates[i - 5] if i >= 5 else None))
    ...     if detector.drift_detected:
    ...         print(f"Change detected at index {i}")
    ...         print(detector.report.summary())
    ...         break
    Change detected at index 66
    prediction drift: error rate 0.833 (threshold 0.401) since 2024-03-26:
    matured errors error rate 0.833 > 0.401 since 2024-03-26
    """

    _VALID_ERROR_DETECTORS = ("adwin", "ddm")

    def __init__(
        self,
        reference: Sequence[float] | np.ndarray,
        *,
        horizon: int = 5,
        window_sessions: int = 5,
        bins: int = 10,
        js_distance: float = 0.1,
        error_detector: str = "adwin",
        adwin_delta: float = 0.002,
        ddm_warm_start: int = 30,
        ddm_drift_threshold: float = 3.0,
        min_live_rows: int = 20,
    ) -> None:
        super().__init__()
        if error_detector not in self._VALID_ERROR_DETECTORS:
            raise ValueError(f"invalid error_detector {error_detector!r}; valid values: "
                             f"{', '.join(self._VALID_ERROR_DETECTORS)}")
        if horizon < 1:
            raise ValueError(f"horizon must be at least 1 session, not {horizon}")
        self.reference = reference
        self.horizon = horizon
        self.window_sessions = window_sessions
        self.bins = bins
        self.js_distance = js_distance
        self.error_detector = error_detector
        self.adwin_delta = adwin_delta
        self.ddm_warm_start = ddm_warm_start
        self.ddm_drift_threshold = ddm_drift_threshold
        self.min_live_rows = min_live_rows
        values = _probabilities(np.asarray(reference, dtype="float64"), "the reference")
        if len(values) < min_live_rows:
            raise ValueError(f"the prediction reference has {len(values)} probabilities, needs at least "
                             f"{min_live_rows}")
        self._edges = np.linspace(0.0, 1.0, bins + 1)
        self._reference_hist = np.histogram(values, self._edges)[0] / len(values)
        self._reset()

    @classmethod
    def from_config(cls, reference: Sequence[float] | np.ndarray, thresholds: DriftThresholds,
                    horizon: int) -> PredictionDriftDetector:
        t = thresholds
        return cls(reference, horizon=horizon, window_sessions=t.prediction_window_sessions,
                   bins=t.probability_bins, js_distance=t.js_distance, error_detector=t.error_detector,
                   adwin_delta=t.adwin_delta, ddm_warm_start=t.ddm_warm_start,
                   ddm_drift_threshold=t.ddm_drift_threshold, min_live_rows=t.min_live_rows)

    def __repr__(self) -> str:
        return f"PredictionDriftDetector(horizon {self.horizon}, {self.error_detector})"

    def _reset(self) -> None:
        super()._reset()
        self._window: deque[np.ndarray] = deque(maxlen=self.window_sessions)
        self._window_sessions: deque[pd.Timestamp] = deque(maxlen=self.window_sessions)
        self._pending: deque[tuple[pd.Timestamp, pd.Series]] = deque(maxlen=self.horizon + 1)
        if self.error_detector == "adwin":
            self._errors: Any = ADWIN(delta=self.adwin_delta, clock=1)
        else:
            self._errors = DDM(warm_start=self.ddm_warm_start, drift_threshold=self.ddm_drift_threshold)
        self._scored: deque[tuple[pd.Timestamp, int]] = deque()  # sessions of scored predictions
        self._misses = 0
        self._warning_since: pd.Timestamp | None = None
        self._report: DriftReport | None = None

    @property
    def report(self) -> DriftReport | None:
        return self._report

    @property
    def scored(self) -> int:
        """Predictions scored against matured labels since the last reset."""
        return sum(n for _, n in self._scored)

    def update(self, x: PredictionUpdate) -> None:
        """Add the newest session's probabilities and, once matured, the labels of the
        predictions made ``horizon`` updates ago.

        Raises
        ------
        ValueError
            If a probability is missing or outside [0, 1] (the symbols are named), or labels
            arrive before ``horizon`` sessions of predictions exist.
        """
        if self.drift_detected:
            self._reset()
        session = pd.Timestamp(x.session)
        probabilities = x.probabilities.astype("float64")
        _probabilities(probabilities.to_numpy(), f"the probabilities of {session.date()}",
                       probabilities.index)
        self._pending.append((session, probabilities))
        self._window.append(probabilities.to_numpy())
        self._window_sessions.append(session)
        items: list[DriftItem] = []
        extra: dict[str, float] = {}
        skipped: tuple[tuple[str, str], ...] = ()
        if x.labels is not None:
            if x.labels_of is None:
                raise ValueError(f"labels handed on {session.date()} must say which session's predictions "
                                 f"they label (labels_of)")
            made_on = pd.Timestamp(x.labels_of)
            held = [k for k, (day, _) in enumerate(self._pending) if day == made_on]
            age = len(self._pending) - 1 - held[0] if held else None
            if age is not None and age < self.horizon:
                raise ValueError(f"labels of {made_on.date()} mature {self.horizon} sessions after the "
                                 f"prediction; on {session.date()} only {age} have passed")
            if held:
                item = self._score(*self._pending[held[0]], x.labels.dropna(), session)
                if item is not None:
                    items.append(item)
            else:
                skipped = (("matured errors", f"no prediction of {made_on.date()} is held "
                                              "(made before the last reset)"),)
        if self._scored:
            extra["error_rate"] = self._misses / self.scored
        live = np.concatenate(self._window)
        distance = float("nan")
        if len(self._window) < self.window_sessions:
            skipped += (("predicted probabilities", f"the live window holds {len(self._window)} of its "
                                                    f"{self.window_sessions} sessions"),)
        elif len(live) >= self.min_live_rows:
            hist = np.histogram(live, self._edges)[0] / len(live)
            distance = float(jensenshannon(self._reference_hist, hist, base=2))
            if distance >= self.js_distance:
                items.insert(0, DriftItem("predicted probabilities", "jensen-shannon distance", distance,
                                          self.js_distance, self._window_sessions[0]))
        else:
            skipped += (("predicted probabilities", f"the live window has {len(live)} probabilities, "
                                                    f"needs {self.min_live_rows}"),)
        alarm = bool(items)
        extra["js_distance"] = distance
        # The headline is what drifted (the distance, else the errors), or the distance.
        measure, value, threshold = "jensen-shannon distance", distance, self.js_distance
        if items and items[0].name == "matured errors":
            measure, value, threshold = "error rate", items[0].value, items[0].threshold
        self._report = DriftReport(
            detector="prediction", session=session, drifted=alarm, measure=measure, value=value,
            threshold=threshold, since=min((i.since for i in items), default=None), items=tuple(items),
            tested=1 + bool(self._scored), skipped=skipped, extra=extra,
        )
        self._drift_detected = alarm

    def _score(self, made_on: pd.Timestamp, predicted: pd.Series, labels: pd.Series,
               session: pd.Timestamp) -> DriftItem | None:
        """Feed the misses of the predictions of ``made_on`` to the error detector."""
        common = predicted.index.intersection(labels.index).sort_values()
        if len(common) == 0:
            return None
        misses = (predicted[common].to_numpy() >= 0.5) != (labels[common].to_numpy() >= 0.5)
        before = self._misses / self.scored if self._scored else float("nan")
        self._scored.append((made_on, len(common)))
        self._misses += int(misses.sum())
        alarm = False
        for miss in misses.tolist():
            self._errors.update(bool(miss) if self.error_detector == "ddm" else float(miss))
            if self.error_detector == "ddm" and self._errors.warning_detected and self._warning_since is None:
                self._warning_since = made_on
            alarm = alarm or self._errors.drift_detected
        if not alarm:
            return None
        if self.error_detector == "adwin":
            rate, since = float(self._errors.estimation), self._since_width(int(self._errors.width))
        else:
            rate, since = self._misses / self.scored, self._warning_since or made_on
        return DriftItem("matured errors", "error rate", rate, before, since)

    def _since_width(self, width: int) -> pd.Timestamp:
        """The session of the first prediction of the last ``width`` scored ones."""
        total = 0
        for made_on, n in reversed(self._scored):
            total += n
            if total >= width:
                return made_on
        return self._scored[0][0]


def _probabilities(values: np.ndarray, what: str, index: pd.Index | None = None) -> np.ndarray:
    bad = ~np.isfinite(values) | (values < 0) | (values > 1)
    if bad.any():
        where = f" ({', '.join(map(str, index[bad][:5]))})" if index is not None else ""
        raise ValueError(f"{what} hold {int(bad.sum())} value(s) that are missing or outside [0, 1]{where}")
    return values


@dataclass(frozen=True)
class SessionInput:
    """What one monitor cycle hands the drift detectors: the newest session's feature rows
    (indexed by ``(date, symbol)``), its regime label, and the model's output."""

    session: pd.Timestamp
    features: pd.DataFrame | None = None
    regime: str | None = None
    prediction: PredictionUpdate | None = None


class DriftMonitor:
    """The drift detectors of one monitor, updated together once per session.

    Any of the three may be ``None`` (no model yet, no reference): it is then reported as not
    run, never as a pass. ``alarms`` holds the reports that drifted on the last update,
    ``latest`` every detector's last report. The object is plain Python and picklable, so a
    monitor can save it after a cycle and restore it before the next.

    Examples
    --------
    >>> import pandas as pd
    >>> monitor = DriftMonitor(regime=RegimeDriftDetector(["normal"] * 60, window_sessions=5))
    >>> for day, regime in zip(pd.bdate_range("2024-01-01", periods=8), ["normal"] * 3 + ["crash"] * 5):
    ...     monitor.update(SessionInput(day, regime=regime))
    ...     for report in monitor.alarms:
    ...         print(day.date(), report.summary())
    2024-01-05 regime drift: total variation distance 0.392 (threshold 0.25) since 2024-01-04:
    crash share 0.4 > 0.008 since 2024-01-04
    >>> sorted(monitor.not_run)
    ['feature', 'prediction']
    """

    def __init__(
        self,
        *,
        features: FeatureDriftDetector | None = None,
        regime: RegimeDriftDetector | None = None,
        prediction: PredictionDriftDetector | None = None,
    ) -> None:
        self.features = features
        self.regime = regime
        self.prediction = prediction
        self.alarms: tuple[DriftReport, ...] = ()
        self.latest: dict[str, DriftReport | None] = {}

    @property
    def not_run(self) -> tuple[str, ...]:
        """The detectors this monitor does not have."""
        return tuple(name for name, d in self._detectors() if d is None)

    def _detectors(self) -> list[tuple[str, Any]]:
        return [("feature", self.features), ("regime", self.regime), ("prediction", self.prediction)]

    @property
    def drift_detected(self) -> bool:
        return bool(self.alarms)

    def update(self, x: SessionInput) -> None:
        """Update every detector that has its input in ``x``."""
        session = pd.Timestamp(x.session)
        alarms = []
        regime = pd.Series([x.regime], index=[session], dtype=object)
        inputs = {"feature": x.features, "regime": regime, "prediction": x.prediction}
        for name, detector in self._detectors():
            if detector is None or inputs[name] is None:
                continue
            detector.update(inputs[name])
            self.latest[name] = detector.report
            if detector.drift_detected:
                alarms.append(detector.report)
        self.alarms = tuple(alarms)
