"""Leak-free, regime-aware validation (SPEC.md module 4).

Stock-direction samples form a *panel*: many symbols share each session, and a label looks
``horizon`` sessions ahead, so rows close in time share market moves and label windows. Splitting
rows as if they were independent leaks the future. Everything here therefore works on **session
dates**, never on row offsets (the panel-data caveat of ``notes/methods.md`` section 2): the
dates are cut into blocks first and the blocks are mapped back to rows.

The rule every function applies
-------------------------------
A row's *label window* is ``[date, label_end]`` (``label_end`` is the session its horizon ends
on, a column of every sample frame). A training row is kept only if its label window does not
intersect any validation label window widened by ``embargo_sessions`` sessions **on each side**:

* *purge*: a training row whose label window overlaps a validation label window is dropped;
* *embargo after*: a training row dated within ``embargo_sessions`` sessions after the end of a
  validation label window is dropped (López de Prado's embargo: it matters where training data
  follows validation data, as in :func:`leave_one_event_out` and :func:`purge_training`);
* *embargo before*: a training row whose label ends within ``embargo_sessions`` sessions before
  a validation label window starts is dropped too. In walk-forward splits, where training only
  precedes validation, this is the only side that can act, and it works like the ``gap`` of
  scikit-learn's ``TimeSeriesSplit`` on top of the purge: the last training label ends at least
  ``embargo_sessions + 1`` sessions before the first validation session.

Sessions are counted on a calendar: the sorted union of every row's date and ``label_end`` and,
when given, the ``sessions`` argument. Without ``sessions``, a gap in the data (years between two
archive events) counts as a single step, so the embargo reaches across it and drops more than it
needs to: conservative, never leaky. Pass the exchange calendar (``market.calendar.nyse_sessions``)
to make it exact.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics
from sklearn.base import clone
from sklearn.model_selection import BaseCrossValidator
from sklearn.utils import metadata_routing

from market.vocabulary import REGIMES, Regime

#: Regimes validated on the recent rolling window, and those validated on the archive (SPEC.md).
WINDOW_REGIMES: tuple[Regime, ...] = (Regime.LOW_VOLATILITY, Regime.NORMAL, Regime.HIGH_VOLATILITY)
ARCHIVE_REGIMES: tuple[Regime, ...] = (Regime.CRASH, Regime.RECOVERY)

#: Columns of :func:`regime_metrics`, after its ``regime`` index.
METRIC_COLUMNS: tuple[str, ...] = (
    "n", "weight", "accuracy", "balanced_accuracy", "log_loss", "brier", "roc_auc", "note",
)

_NAT = np.iinfo(np.int64).min
_REGIME_VALUES = [r.value for r in REGIMES]


# --------------------------------------------------------------------------------------------
# Dates, calendars and the purge rule
# --------------------------------------------------------------------------------------------


def _as_ns(values: Any, what: str) -> np.ndarray:
    """``values`` as int64 nanoseconds since the epoch; refuses missing dates."""
    index = pd.DatetimeIndex(np.asarray(values) if isinstance(values, pd.Series) else values)
    if index.tz is not None:
        index = index.tz_localize(None)
    out = index.as_unit("ns").asi8.copy()
    if (out == _NAT).any():
        raise ValueError(f"{what} has {int((out == _NAT).sum())} missing dates: drop unlabelled rows first")
    return out


def _calendar(*parts: np.ndarray, sessions: Any = None) -> np.ndarray:
    arrays = [p for p in parts if len(p)]
    if sessions is not None and len(sessions):
        arrays.append(_as_ns(sessions, "sessions"))
    return np.unique(np.concatenate(arrays)) if arrays else np.empty(0, dtype=np.int64)


def _check_windows(start: np.ndarray, end: np.ndarray, what: str) -> None:
    if len(start) != len(end):
        raise ValueError(f"{what}: {len(start)} dates but {len(end)} label ends")
    if (end < start).any():
        raise ValueError(f"{what}: {int((end < start).sum())} rows have label_end before their date")


def _keep(
    calendar: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    against_start: np.ndarray,
    against_end: np.ndarray,
    embargo_sessions: int,
) -> np.ndarray:
    """True where ``[start, end]`` misses every ``[against_start, against_end]`` widened by the
    embargo on each side; every date must be on ``calendar``. Linear in rows plus calendar."""
    n = len(calendar)
    if len(against_start) == 0 or n == 0:
        return np.ones(len(start), dtype=bool)
    lo = np.clip(np.searchsorted(calendar, against_start) - embargo_sessions, 0, n - 1)
    hi = np.clip(np.searchsorted(calendar, against_end) + embargo_sessions, 0, n - 1)
    steps = np.zeros(n + 1, dtype=np.int64)
    np.add.at(steps, lo, 1)
    np.add.at(steps, hi + 1, -1)
    covered = np.concatenate([[0], np.cumsum(np.cumsum(steps[:n]) > 0)])
    a, b = np.searchsorted(calendar, start), np.searchsorted(calendar, end)
    return covered[b + 1] - covered[a] == 0


def purge_mask(
    dates: Any,
    label_end: Any,
    against_dates: Any,
    against_label_end: Any,
    *,
    embargo_sessions: int = 5,
    sessions: Any = None,
) -> np.ndarray:
    """Which rows may be trained on next to a validation set: the purge-and-embargo rule.

    Parameters
    ----------
    dates, label_end
        Session date and label end of each candidate training row.
    against_dates, against_label_end
        Session date and label end of each validation row.
    embargo_sessions
        Sessions by which every validation label window is widened on each side.
    sessions
        Optional trading calendar; the calendar used is its union with every date given.

    Returns
    -------
    numpy.ndarray
        Boolean, True where the row's ``[date, label_end]`` misses every widened validation
        window (see the module docstring).

    Examples
    --------
    >>> days = pd.bdate_range("2024-01-01", periods=10)
    >>> purge_mask(days[:6], days[2:8], [days[5]], [days[7]], embargo_sessions=0)
    array([ True,  True,  True, False, False, False])
    """
    start, end = _as_ns(dates, "dates"), _as_ns(label_end, "label_end")
    a_start, a_end = _as_ns(against_dates, "against_dates"), _as_ns(against_label_end, "against_label_end")
    _check_windows(start, end, "training rows")
    _check_windows(a_start, a_end, "validation rows")
    _check_embargo(embargo_sessions)
    calendar = _calendar(start, end, a_start, a_end, sessions=sessions)
    return _keep(calendar, start, end, a_start, a_end, embargo_sessions)


def _check_embargo(embargo_sessions: int) -> None:
    if not isinstance(embargo_sessions, int | np.integer) or embargo_sessions < 0:
        raise ValueError(f"embargo_sessions must be a non-negative integer, got {embargo_sessions!r}")


def _frame_dates(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Dates (index level or column ``date``) and ``label_end`` of a sample frame, as ns."""
    if "date" in (frame.index.names or ()):
        dates = frame.index.get_level_values("date")
    elif "date" in frame.columns:
        dates = frame["date"]
    else:
        raise KeyError("a sample frame needs an index level or a column named 'date'")
    if "label_end" not in frame.columns:
        raise KeyError("a sample frame needs a 'label_end' column (the session its label ends on)")
    return _as_ns(dates, "date"), _as_ns(frame["label_end"], "label_end")


def purge_training(
    train: pd.DataFrame,
    validation: pd.DataFrame | Iterable[pd.DataFrame],
    *,
    embargo_sessions: int = 5,
    sessions: Any = None,
) -> pd.DataFrame:
    """The rows of ``train`` that may be trained on next to ``validation``.

    Drops every training row whose label window overlaps, or falls within ``embargo_sessions``
    sessions of, a validation row's label window. A copy of a validation row (same date, so same
    window) is always dropped, whatever it is called or wherever it came from (window, archive,
    replay buffer). Each validation row counts on its own: scattered validation rows purge only
    their own neighbourhoods, not the whole span between them.

    Parameters
    ----------
    train
        Candidate training samples: a ``date`` index level (or column) and ``label_end``.
    validation
        One validation frame, or several (for instance the values of
        :func:`regime_validation_sets`).
    embargo_sessions, sessions
        As in :func:`purge_mask`.

    Returns
    -------
    pandas.DataFrame
        The kept rows of ``train``, in their order.
    """
    frames = [validation] if isinstance(validation, pd.DataFrame) else list(validation)
    parts = [_frame_dates(f) for f in frames]
    a_start = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, dtype=np.int64)
    a_end = np.concatenate([p[1] for p in parts]) if parts else np.empty(0, dtype=np.int64)
    start, end = _frame_dates(train)
    _check_windows(start, end, "training rows")
    _check_windows(a_start, a_end, "validation rows")
    _check_embargo(embargo_sessions)
    calendar = _calendar(start, end, a_start, a_end, sessions=sessions)
    return train.loc[_keep(calendar, start, end, a_start, a_end, embargo_sessions)]


# --------------------------------------------------------------------------------------------
# Walk-forward splits
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Fold:
    """One walk-forward fold: the rows, and the dates that explain them.

    ``span_end`` is the end of the validation span, the later of the last validation session and
    the last validation label end. ``purged`` counts the rows before the validation block (and
    inside ``max_train_sessions``) that the purge and embargo removed.
    """

    train: np.ndarray
    test: np.ndarray
    test_start: pd.Timestamp
    test_end: pd.Timestamp
    span_end: pd.Timestamp
    purged: int


class PurgedWalkForward(BaseCrossValidator):
    """Walk-forward splits on session dates, purged and embargoed for overlapping labels.

    The unique sorted session dates of the rows are cut into a first training-only stretch of
    ``min_train_sessions`` sessions and ``n_splits`` consecutive validation blocks (sizes differ
    by at most one session). Fold ``k`` validates on every row dated in block ``k`` and trains on
    rows dated before the block only (walk-forward: train on the past), after dropping

    * every row whose label window ``[date, label_end]`` overlaps the validation span
      ``[first block session, max(last block session, last block label_end)]`` (purge), and
    * every row whose label ends within ``embargo_sessions`` sessions before the block starts
      (embargo; the module docstring explains why it acts before the block here).

    With ``max_train_sessions`` the training rows are further restricted to the last that many
    sessions before the block (a rolling rather than expanding window). Block sizes count the
    rows' own session dates; the embargo counts sessions of the calendar of every date and label
    end (see the module docstring).

    Dates and label ends come from ``split``'s ``dates`` and ``label_end`` arguments or, when
    those are not given, from ``X``: its ``date`` index level and its ``label_end`` column. They
    are declared as metadata of ``split``, so with scikit-learn's metadata routing enabled
    ``cross_validate(..., cv=PurgedWalkForward(), params={"dates": d, "label_end": e})`` hands them
    over while ``X`` holds features only.

    Parameters
    ----------
    n_splits : int, default=5
        Number of validation blocks (folds).
    embargo_sessions : int, default=5
        Sessions between the last training label end and the first validation session, beyond
        the purge.
    min_train_sessions : int or None, default=None
        Sessions before the first validation block. None: ``n_sessions // (n_splits + 1)``, the
        layout of scikit-learn's ``TimeSeriesSplit``.
    max_train_sessions : int or None, default=None
        Most sessions a fold trains on (before the purge); None: all earlier sessions.

    Examples
    --------
    Four symbols on 24 sessions, labels three sessions ahead, three folds and a two-session
    embargo: each fold trains on rows whose labels end at least three sessions before its block.

    >>> rng = np.random.default_rng(0)
    >>> days = pd.bdate_range("2024-01-01", periods=27)
    >>> rows = pd.MultiIndex.from_product([days[:24], list("ABCD")], names=["date", "symbol"])
    >>> X = pd.DataFrame({"f": rng.normal(size=len(rows))}, index=rows)
    >>> X["label_end"] = days[np.repeat(np.arange(24), 4) + 3]
    >>> cv = PurgedWalkForward(n_splits=3, embargo_sessions=2)
    >>> cv.get_n_splits()
    3
    >>> for train, test in cv.split(X):
    ...     d = X.index.get_level_values("date")
    ...     print(f"train {d[train].min():%m-%d}..{d[train].max():%m-%d} ({len(train)} rows), "
    ...           f"test {d[test].min():%m-%d}..{d[test].max():%m-%d} ({len(test)} rows)")
    train 01-01..01-01 (4 rows), test 01-09..01-16 (24 rows)
    train 01-01..01-09 (28 rows), test 01-17..01-24 (24 rows)
    train 01-01..01-17 (52 rows), test 01-25..02-01 (24 rows)
    """

    __metadata_request__split = {"dates": True, "label_end": True, "groups": metadata_routing.UNUSED}

    def __init__(
        self,
        *,
        n_splits: int = 5,
        embargo_sessions: int = 5,
        min_train_sessions: int | None = None,
        max_train_sessions: int | None = None,
    ) -> None:
        self.n_splits = n_splits
        self.embargo_sessions = embargo_sessions
        self.min_train_sessions = min_train_sessions
        self.max_train_sessions = max_train_sessions

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """The number of folds, ``n_splits``."""
        return int(self.n_splits)

    def split(
        self, X: Any, y: Any = None, groups: Any = None, *, dates: Any = None, label_end: Any = None,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(train, test)`` positional row indices, one pair per fold, oldest first.

        Parameters
        ----------
        X
            The samples; read for ``dates``/``label_end`` when those are not given, and for its
            length.
        y, groups
            Ignored; present for scikit-learn compatibility.
        dates, label_end
            Session date and label end of each row of ``X``.
        """
        for fold in self.folds(X, dates=dates, label_end=label_end):
            yield fold.train, fold.test

    def describe(self, X: Any = None, *, dates: Any = None, label_end: Any = None) -> pd.DataFrame:
        """One row per fold: validation block, span end, training range and row counts."""
        start, end = self._dates(X, dates, label_end)
        rows = []
        for k, fold in enumerate(self._folds(start, end)):
            train_days = start[fold.train].astype("datetime64[ns]")
            rows.append({
                "fold": k, "train_start": pd.Timestamp(train_days.min()),
                "train_end": pd.Timestamp(train_days.max()), "n_train": len(fold.train),
                "n_purged": fold.purged, "test_start": fold.test_start, "test_end": fold.test_end,
                "span_end": fold.span_end, "n_test": len(fold.test),
            })
        return pd.DataFrame(rows).set_index("fold")

    def folds(self, X: Any = None, *, dates: Any = None, label_end: Any = None) -> Iterator[Fold]:
        """The folds with their dates and purge counts (what :meth:`split` yields, explained)."""
        start, end = self._dates(X, dates, label_end)
        yield from self._folds(start, end)

    def _folds(self, start: np.ndarray, end: np.ndarray) -> Iterator[Fold]:
        n_splits, embargo = self.n_splits, self.embargo_sessions
        if not isinstance(n_splits, int | np.integer) or n_splits < 1:
            raise ValueError(f"n_splits must be a positive integer, got {n_splits!r}")
        _check_embargo(embargo)
        if self.max_train_sessions is not None and self.max_train_sessions < 1:
            raise ValueError(f"max_train_sessions must be positive or None, got {self.max_train_sessions!r}")
        days, day_of_row = np.unique(start, return_inverse=True)
        first = len(days) // (n_splits + 1) if self.min_train_sessions is None else self.min_train_sessions
        if first < 1 or len(days) - first < n_splits:
            raise ValueError(
                f"{len(days)} sessions cannot hold {n_splits} validation blocks after "
                f"{first} training sessions (min_train_sessions={self.min_train_sessions!r})"
            )
        calendar = _calendar(start, end)
        for block in np.array_split(np.arange(first, len(days)), n_splits):
            b0, b1 = int(block[0]), int(block[-1])
            test = np.flatnonzero((day_of_row >= b0) & (day_of_row <= b1))
            span_end = max(int(days[b1]), int(end[test].max()))
            lo = 0 if self.max_train_sessions is None else max(0, b0 - self.max_train_sessions)
            before = np.flatnonzero((day_of_row >= lo) & (day_of_row < b0))
            keep = _keep(calendar, start[before], end[before], days[[b0]], np.array([span_end]), embargo)
            train = before[keep]
            if len(train) == 0:
                block_dates = f"{pd.Timestamp(days[b0]).date()}..{pd.Timestamp(days[b1]).date()}"
                raise ValueError(
                    f"the fold validating on {block_dates} "
                    f"has no training rows left after purging and a {embargo}-session embargo; "
                    "raise min_train_sessions or lower n_splits or embargo_sessions"
                )
            yield Fold(train, test, pd.Timestamp(days[b0]), pd.Timestamp(days[b1]), pd.Timestamp(span_end),
                       int(len(before) - len(train)))

    @staticmethod
    def _dates(X: Any, dates: Any, label_end: Any) -> tuple[np.ndarray, np.ndarray]:
        if dates is None:
            index = getattr(X, "index", None)
            if index is not None and "date" in (index.names or ()):
                dates = index.get_level_values("date")
            elif isinstance(X, pd.DataFrame) and "date" in X.columns:
                dates = X["date"]
            else:
                raise TypeError("pass dates=, or X with a 'date' index level or column")
        if label_end is None:
            if isinstance(X, pd.DataFrame) and "label_end" in X.columns:
                label_end = X["label_end"]
            else:
                raise TypeError("pass label_end=, or X with a 'label_end' column")
        start, end = _as_ns(dates, "dates"), _as_ns(label_end, "label_end")
        _check_windows(start, end, "rows")
        if X is not None and hasattr(X, "__len__") and len(X) != len(start):
            raise ValueError(f"X has {len(X)} rows but {len(start)} dates were given")
        return start, end


# --------------------------------------------------------------------------------------------
# The five per-regime validation sets
# --------------------------------------------------------------------------------------------


def _regimes(values: Any, n: int, what: str) -> np.ndarray:
    """Regime values (str) of ``values``, one per row; unknown or missing regimes are refused."""
    raw = np.asarray(values, dtype=object)
    if raw.shape != (n,):
        raise ValueError(f"{what} has shape {raw.shape}, expected one regime per row ({n})")
    if pd.isna(raw).any():
        raise ValueError(f"{what} has {int(pd.isna(raw).sum())} rows without a regime")
    text = pd.Series(raw).astype(str).to_numpy(dtype=object)
    valid = {r.value for r in REGIMES}
    bad = sorted(set(text) - valid)
    if bad:
        raise ValueError(f"{what} holds unknown regimes {bad}; valid: {', '.join(sorted(valid))}")
    return text


def _tail_sessions(dates: np.ndarray, fraction: float) -> np.ndarray:
    """True for rows in the last ``ceil(fraction * n_sessions)`` sessions of ``dates``."""
    days = np.unique(dates)
    if len(days) == 0:
        return np.zeros(0, dtype=bool)
    count = min(len(days), math.ceil(fraction * len(days)))
    return dates >= days[len(days) - count] if count else np.zeros(len(dates), dtype=bool)


def regime_validation_sets(
    window: pd.DataFrame,
    archive: pd.DataFrame,
    *,
    window_regimes: Any,
    archive_regimes: Any = None,
    holdout_fraction: float = 0.2,
    event_column: str = "event",
) -> dict[Regime, pd.DataFrame]:
    """The five validation sets of SPEC.md module 4, one per regime.

    ``low_volatility``, ``normal`` and ``high_volatility`` rows come from the held-out tail of
    the recent rolling ``window`` (its last ``holdout_fraction`` of sessions); ``crash`` and
    ``recovery`` rows from the held-out tail of **each** archive event (the last
    ``holdout_fraction`` of that event's sessions, so every storm of a regime is represented).
    Held-out window rows in a crash or recovery regime, and held-out archive rows of calm events,
    belong to no set. ``holdout_fraction=1.0`` validates on every row given (the caller chose
    the held-out rows itself).

    Build the training set with :func:`purge_training` against ``sets.values()``: it drops the
    validation rows and everything whose labels overlap them.

    Parameters
    ----------
    window
        Samples of the recent rolling window (index ``(date, symbol)``, ``label_end``).
    archive
        Samples of the rare-event archive, with an ``event`` column.
    window_regimes
        The regime of each window row, aligned by position (array, list or Series).
    archive_regimes
        The regime of each archive row; by default the archive's ``regime`` column.
    holdout_fraction
        Share of sessions held out, in ``(0, 1]``.
    event_column
        The archive column naming each row's event.

    Returns
    -------
    dict of Regime to pandas.DataFrame
        Every regime, in :data:`market.vocabulary.REGIMES` order; a regime without held-out rows
        maps to an empty frame (reported, never invented). Each frame carries a ``regime``
        column with the regime's value and keeps its rows' ``provenance``.
    """
    if not 0 < holdout_fraction <= 1:
        raise ValueError(f"holdout_fraction must be in (0, 1], got {holdout_fraction!r}")
    if archive_regimes is None:
        if "regime" not in archive.columns:
            raise KeyError("the archive has no 'regime' column: pass archive_regimes=")
        archive_regimes = archive["regime"]
    if event_column not in archive.columns:
        raise KeyError(f"the archive has no {event_column!r} column")
    w_reg = _regimes(window_regimes, len(window), "window_regimes")
    a_reg = _regimes(archive_regimes, len(archive), "archive_regimes")
    w_dates, _ = _frame_dates(window)
    a_dates, _ = _frame_dates(archive)

    w_held = _tail_sessions(w_dates, holdout_fraction)
    a_held = np.zeros(len(archive), dtype=bool)
    events = np.asarray(archive[event_column], dtype=object)
    for name in pd.unique(events):
        rows = np.flatnonzero(events == name)
        a_held[rows] = _tail_sessions(a_dates[rows], holdout_fraction)

    sets: dict[Regime, pd.DataFrame] = {}
    for regime in REGIMES:
        source, held, reg = (window, w_held, w_reg) if regime in WINDOW_REGIMES else (archive, a_held, a_reg)
        rows = source.iloc[np.flatnonzero(held & (reg == regime.value))]
        labels = pd.Categorical([regime.value] * len(rows), categories=_REGIME_VALUES)
        sets[regime] = rows.assign(regime=labels)
    return sets


# --------------------------------------------------------------------------------------------
# Leave one event out
# --------------------------------------------------------------------------------------------


def leave_one_event_out(
    archive: pd.DataFrame,
    *,
    embargo_sessions: int = 5,
    sessions: Any = None,
    event_column: str = "event",
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Hold out each archive event in turn; train on the others, purged and embargoed.

    Events are taken in the order of their first session. The held-out event's span runs from
    its first session to the later of its last session and its last label end; every other row
    whose label window overlaps that span widened by ``embargo_sessions`` sessions on each side
    is dropped from training (so the last days of the 2020 COVID crash, whose labels reach into
    the recovery, are purged when the recovery is held out, and vice versa). Training rows may
    come after the held-out event: this is a cross-section of storms, not a walk forward.

    Parameters
    ----------
    archive
        Archive samples: ``date`` index level (or column), ``label_end`` and ``event``.
    embargo_sessions, sessions
        As in :func:`purge_mask`. Without ``sessions`` the embargo also reaches across the gap
        to the next event in the archive (conservative); pass the exchange calendar to avoid it.
    event_column
        The column naming each row's event.

    Yields
    ------
    tuple of (str, numpy.ndarray, numpy.ndarray)
        The held-out event's name, the training and the test row positions.
    """
    if event_column not in archive.columns:
        raise KeyError(f"the archive has no {event_column!r} column")
    _check_embargo(embargo_sessions)
    start, end = _frame_dates(archive)
    _check_windows(start, end, "archive rows")
    events = np.asarray(archive[event_column], dtype=object)
    if pd.isna(events).any():
        raise ValueError(f"{int(pd.isna(events).sum())} archive rows have no {event_column}")
    calendar = _calendar(start, end, sessions=sessions)
    names = sorted(pd.unique(events), key=lambda e: start[events == e].min())
    for name in names:
        held = events == name
        test = np.flatnonzero(held)
        span = np.array([start[held].min()]), np.array([max(start[held].max(), end[held].max())])
        others = np.flatnonzero(~held)
        train = others[_keep(calendar, start[others], end[others], span[0], span[1], embargo_sessions)]
        yield str(name), train, test


# --------------------------------------------------------------------------------------------
# Metrics per regime
# --------------------------------------------------------------------------------------------


def _metrics(y: np.ndarray, p: np.ndarray, w: np.ndarray | None) -> dict[str, Any]:
    pred = (p > 0.5).astype(np.int64)
    classes = np.unique(y)
    row: dict[str, Any] = {
        "n": len(y),
        "weight": float(len(y) if w is None else w.sum()),
        "accuracy": metrics.accuracy_score(y, pred, sample_weight=w),
        "log_loss": metrics.log_loss(y, p, sample_weight=w, labels=[0, 1]),
        "brier": metrics.brier_score_loss(y, p, sample_weight=w, labels=[0, 1]),
        "note": "",
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "y_pred contains classes not in y_true"
        row["balanced_accuracy"] = metrics.balanced_accuracy_score(y, pred, sample_weight=w)
    if len(classes) < 2:
        row["roc_auc"] = float("nan")
        row["note"] = (f"only class {int(classes[0])} present: roc_auc undefined, "
                       "balanced_accuracy is that class's recall")
    else:
        row["roc_auc"] = metrics.roc_auc_score(y, p, sample_weight=w)
    return row


def regime_metrics(
    y_true: Any,
    proba: Any,
    regimes: Any,
    *,
    sample_weight: Any = None,
) -> pd.DataFrame:
    """Accuracy, balanced accuracy, log loss, Brier score and ROC AUC per regime and overall.

    Parameters
    ----------
    y_true
        Labels, 0 or 1.
    proba
        Predicted probability of class 1: one column, or the two columns of ``predict_proba``.
        The predicted class is 1 where it exceeds 0.5 (as scikit-learn's ``predict``).
    regimes
        The regime of each row (:class:`~market.vocabulary.Regime` or its value).
    sample_weight
        Optional weights (module 5); every metric is then weighted.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``regime``: one row per regime present, in
        :data:`market.vocabulary.REGIMES` order, then ``overall`` (all rows together); columns
        :data:`METRIC_COLUMNS`. ``n`` is the row count behind each number and ``weight`` their
        total weight. ``roc_auc`` is NaN where only one class is present, and ``note`` says so.

    Examples
    --------
    >>> table = regime_metrics([1, 0, 1, 1], [0.9, 0.2, 0.4, 0.8], ["crash", "crash", "normal", "normal"])
    >>> table[["n", "accuracy", "roc_auc"]]  # doctest: +NORMALIZE_WHITESPACE
             n  accuracy  roc_auc
    regime
    normal   2      0.50      NaN
    crash    2      1.00      1.0
    overall  4      0.75      1.0
    """
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim == 2:
        if p.shape[1] != 2:
            raise ValueError(f"proba has {p.shape[1]} columns; expected 1 or 2 (binary classes)")
        p = p[:, 1]
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("y_true must hold only 0 and 1 (drop unlabelled rows first)")
    if p.shape != y.shape:
        raise ValueError(f"proba has {p.shape[0]} rows but y_true has {y.shape[0]}")
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("proba must be probabilities in [0, 1]")
    reg = _regimes(regimes, len(y), "regimes")
    w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if w is not None and w.shape != y.shape:
        raise ValueError(f"sample_weight has shape {w.shape}, expected ({len(y)},)")
    if len(y) == 0:
        raise ValueError("no rows to score")
    y = y.astype(np.int64)
    rows: dict[str, dict[str, Any]] = {}
    for regime in REGIMES:
        mask = reg == regime.value
        if mask.any():
            rows[regime.value] = _metrics(y[mask], p[mask], None if w is None else w[mask])
    rows["overall"] = _metrics(y, p, w)
    table = pd.DataFrame.from_dict(rows, orient="index")[list(METRIC_COLUMNS)]
    table.index.name = "regime"
    return table


# --------------------------------------------------------------------------------------------
# Evaluation: fit on purged training rows, score on the held-out rows
# --------------------------------------------------------------------------------------------


def _fit_and_predict(estimator: Any, train: pd.DataFrame, test: pd.DataFrame, features: Sequence[str],
                     label: str, sample_weight: str | None) -> np.ndarray:
    model = clone(estimator)
    fit_params = {} if sample_weight is None else {"sample_weight": train[sample_weight].to_numpy()}
    model.fit(train[list(features)], train[label].to_numpy(dtype=np.int64), **fit_params)
    proba = model.predict_proba(test[list(features)])
    return proba[:, list(model.classes_).index(1)] if proba.ndim == 2 else proba


def evaluate_regime_sets(
    estimator: Any,
    train: pd.DataFrame,
    sets: dict[Regime, pd.DataFrame],
    features: Sequence[str],
    *,
    label: str = "label",
    sample_weight: str | None = None,
    embargo_sessions: int = 5,
    sessions: Any = None,
) -> pd.DataFrame:
    """Fit a clone of ``estimator`` on ``train`` purged against every validation set, then score
    it on the five sets: :func:`regime_metrics` per regime and overall.

    ``sample_weight`` names a column of ``train`` passed to ``fit`` (the regime weights).
    """
    held = [frame for frame in sets.values() if len(frame)]
    if not held:
        raise ValueError("every validation set is empty: nothing to score")
    kept = purge_training(train, held, embargo_sessions=embargo_sessions, sessions=sessions)
    validation = pd.concat(held)
    proba = _fit_and_predict(estimator, kept, validation, features, label, sample_weight)
    table = regime_metrics(validation[label].to_numpy(), proba, validation["regime"].astype(str).to_numpy())
    table.attrs["train_rows"] = len(kept)
    table.attrs["purged_rows"] = len(train) - len(kept)
    return table


def evaluate_leave_one_event_out(
    estimator: Any,
    archive: pd.DataFrame,
    features: Sequence[str],
    *,
    label: str = "label",
    sample_weight: str | None = None,
    embargo_sessions: int = 5,
    sessions: Any = None,
    event_column: str = "event",
) -> pd.DataFrame:
    """Train without each archive event in turn and score on it (SPEC.md module 4).

    Returns one row per held-out event, in time order: its regime (when the archive has a
    ``regime`` column), the training and test row counts, and the metrics of
    :data:`METRIC_COLUMNS` on the held-out event. How well a model trained on the *other* storms
    does on a storm it never saw is the honest measure of what the archive teaches.
    """
    rows = []
    for event, train_idx, test_idx in leave_one_event_out(
        archive, embargo_sessions=embargo_sessions, sessions=sessions, event_column=event_column
    ):
        train, test = archive.iloc[train_idx], archive.iloc[test_idx]
        if train[label].nunique() < 2:
            raise ValueError(f"training without {event!r} leaves fewer than two classes")
        proba = _fit_and_predict(estimator, train, test, features, label, sample_weight)
        scores = _metrics(test[label].to_numpy(dtype=np.int64), proba, None)
        regime = str(test["regime"].iloc[0]) if "regime" in test.columns else ""
        rows.append({"event": event, "regime": regime, "train_rows": len(train), **scores})
    table = pd.DataFrame(rows).set_index("event")
    return table[["regime", "train_rows", *METRIC_COLUMNS]]


__all__: Sequence[str] = (
    "ARCHIVE_REGIMES", "Fold", "METRIC_COLUMNS", "PurgedWalkForward", "WINDOW_REGIMES",
    "evaluate_leave_one_event_out", "evaluate_regime_sets", "leave_one_event_out", "purge_mask",
    "purge_training", "regime_metrics", "regime_validation_sets",
)
