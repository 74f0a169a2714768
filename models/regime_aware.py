"""A regime-aware linear member: return signals whose sign may flip with the market's state.

Trees learn a weak signal that is momentum in calm markets and reversal in storms poorly: every
split on a return feature has to be repeated under every split on the VIX, and at an edge of a
few points of accuracy the leaves run out of rows first. A linear model can say the same thing
with one coefficient per (signal, state) pair: the effect of a return signal ``s`` on the log
odds is ``a + b_1 h_1(z) + ... + b_k h_k(z)``, a piecewise-linear function of the causal state
``z`` (VIX level, realised market volatility, drawdown), so the sign can turn at a VIX of 35
and stay turned in a crash. The state enters through hinge functions ``max(z - t, 0)`` at
``knots`` (in weighted standard deviations of the training rows, or in a column's own units),
which is what lets the effect be flat over calm and volatile markets and flip only past a
threshold, instead of growing linearly with the VIX. ``basis="step"`` uses indicators ``z > t``
instead: the effect is then constant between knots, which is what a sign that flips with the
regime looks like, and it does not extrapolate past the last knot into a storm deeper than any
in training.

Knots in a column's own units (``knots={"vix_level": [20, 30, 40]}``) stay where they are said
to be: knots in standard deviations move with the training set's mix of calm and storm rows
(balancing and weights change it), so the same ``1.0`` means a VIX of 30 in one retrain and of 40
in the next.

The design matrix is ``[signals, state basis, signals x state basis]``, standardised and fitted
by an L2-regularised logistic regression with ``sample_weight``. ``state_effects=False`` drops
the state basis's own terms and keeps only its products with the signals: the state then
changes how a signal is read, never the odds by itself. For a market-neutral label that is the
right shape (a storm does not make the average name beat the market), and it stops the fit from
spending the few storm sessions of training on their own base rate, which a new storm does not
share. Only causal features go in:
which columns are signals and which are state is configuration (``models.zoo.regime_aware``),
by name; the simulator's true regime is never a column of the feature matrix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data


def _weighted_mean_std(values: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and standard deviations over the finite entries, weighted; std 1 where a
    column is constant or empty (so it is centred, not blown up). Products with the weight
    vector, not weighted copies of the matrix: the design matrix of a retrain is 120,000 rows."""
    finite = np.isfinite(values)
    if finite.all():
        total = np.full(values.shape[1], weights.sum())
        filled = values
        w = weights
    else:
        w_cols = finite * weights[:, None]
        total = w_cols.sum(axis=0)
        filled = np.where(finite, values, 0.0)
    safe = np.where(total > 0, total, 1.0)
    if finite.all():
        mean = (w @ filled) / safe
        var = (w @ (filled - mean) ** 2) / safe
    else:
        mean = (w_cols * filled).sum(axis=0) / safe
        var = (w_cols * (filled - mean) ** 2).sum(axis=0) / safe
    std = np.sqrt(np.maximum(var, 0.0))
    return mean, np.where(std > 1e-12, std, 1.0)


class RegimeInteractionClassifier(ClassifierMixin, BaseEstimator):
    """Logistic regression on return signals, the market state and their interactions.

    Parameters
    ----------
    signal_columns : sequence of str or int, default=None
        The return features whose effect may change with the state: names (the input must then
        be a DataFrame with those columns) or positions. ``None``: every column.
    state_columns : sequence of str or int, default=None
        The causal regime-state features (VIX level, realised volatility, drawdown). ``None``:
        every column.
    knots : sequence of float or mapping of column to sequence of float, default=(0.0, 1.0, 2.0)
        Points of the state basis (hinges or steps). A sequence: in (weighted) standard
        deviations from the mean, the same for every state column. A mapping: per state column
        (each one named, by the same name or position as in ``state_columns``, or every key a
        state column when ``state_columns`` is None), in that column's own units.
    basis : {"hinge", "step"}, default="hinge"
        How the state enters: the state itself and hinges ``max(z - t, 0)`` (an effect that
        grows past each knot), or steps ``z > t`` alone (an effect that is constant between
        knots).
    state_effects : bool, default=True
        Whether the state basis enters on its own as well as in the interactions. ``False``:
        only ``signals x state basis`` (and the signals), so the state cannot move the
        prediction when the signals are zero.
    clip : float, default=5.0
        Standardised values are clipped to ``[-clip, clip]``: a VIX of 80 must not dominate the
        fit. Steps compare the unclipped value with their knots, so a knot past ``clip``
        standard deviations still fires.
    C : float, default=0.1
        Inverse L2 regularisation strength of the logistic regression.
    max_iter : int, default=300
        Iterations of the lbfgs solver.

    Attributes
    ----------
    signal_index_, state_index_ : ndarray
        Positions of the signal and state columns in the input.
    knots_ : list of ndarray
        Per state column, its knots in standard deviations of the training rows, sorted.
    classifier_ : LogisticRegression
        The fitted model on the design matrix.
    classes_ : ndarray
        The class labels.
    n_iter_ : ndarray
        Iterations the solver ran.

    Examples
    --------
    A signal that is momentum when the state is low and reversal when it is high: a logistic
    regression on the raw columns cannot fit it, the interaction model can.

    >>> rng = np.random.default_rng(0)
    >>> signal, state = rng.normal(size=2000), rng.uniform(0, 3, size=2000)
    >>> y = (np.where(state > 2, -1, 1) * signal + rng.normal(scale=0.5, size=2000) > 0).astype(int)
    >>> X = np.column_stack([signal, state])
    >>> model = RegimeInteractionClassifier(signal_columns=[0], state_columns=[1]).fit(X, y)
    >>> float(model.score(X, y)) > 0.8, float(LogisticRegression().fit(X, y).score(X, y)) < 0.7
    (True, True)
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "signal_columns": ["array-like", None],
        "state_columns": ["array-like", None],
        "knots": ["array-like", dict],
        "basis": [StrOptions({"hinge", "step"})],
        "state_effects": ["boolean"],
        "clip": [Interval(Real, 0, None, closed="neither")],
        "C": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        *,
        signal_columns: Sequence[str | int] | None = None,
        state_columns: Sequence[str | int] | None = None,
        knots: Sequence[float] | Mapping[str | int, Sequence[float]] = (0.0, 1.0, 2.0),
        basis: str = "hinge",
        state_effects: bool = True,
        clip: float = 5.0,
        C: float = 0.1,
        max_iter: int = 300,
    ) -> None:
        self.signal_columns = signal_columns
        self.state_columns = state_columns
        self.knots = knots
        self.basis = basis
        self.state_effects = state_effects
        self.clip = clip
        self.C = C
        self.max_iter = max_iter

    def _positions(self, columns: Sequence[str | int] | None, n_features: int, what: str) -> np.ndarray:
        if columns is None:
            return np.arange(n_features)
        names = getattr(self, "feature_names_in_", None)
        out = []
        for column in columns:
            if isinstance(column, str):
                if names is None:
                    raise ValueError(f"{what}: {column!r} is a column name, but X has no column names "
                                     "(pass a DataFrame, or positions)")
                found = np.flatnonzero(names == column)
                if not len(found):
                    raise ValueError(f"{what}: X has no column {column!r}")
                out.append(int(found[0]))
            elif isinstance(column, Integral) and 0 <= int(column) < n_features:
                out.append(int(column))
            else:
                raise ValueError(f"{what}: {column!r} is neither a column name nor a position "
                                 f"below {n_features}")
        if not out:
            raise ValueError(f"{what} is empty: name at least one column")
        return np.asarray(out, dtype=np.int64)

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> RegimeInteractionClassifier:
        """Standardise signals and state (weighted), build the interactions, fit the logistic
        regression with ``sample_weight``."""
        self._validate_params()
        X, y = validate_data(self, X, y, ensure_all_finite="allow-nan", dtype=np.float64)
        check_classification_targets(y)
        weights = _check_sample_weight(sample_weight, X, dtype=np.float64)
        self.signal_index_ = self._positions(self.signal_columns, X.shape[1], "signal_columns")
        state_columns = self.state_columns
        if state_columns is None and isinstance(self.knots, Mapping):
            state_columns = list(self.knots)
        self.state_index_ = self._positions(state_columns, X.shape[1], "state_columns")
        self.signal_mean_, self.signal_std_ = _weighted_mean_std(X[:, self.signal_index_], weights)
        self.state_mean_, self.state_std_ = _weighted_mean_std(X[:, self.state_index_], weights)
        self.knots_ = self._standardised_knots(state_columns)
        design = self._design(X)
        self.design_mean_, self.design_std_ = _weighted_mean_std(design, weights)
        self.classifier_ = LogisticRegression(C=self.C, max_iter=self.max_iter)
        self.classifier_.fit(self._scaled(design), y, sample_weight=weights)
        self.classes_ = self.classifier_.classes_
        self.n_iter_ = self.classifier_.n_iter_
        return self

    def _standardised_knots(self, state_columns: Sequence[str | int] | None) -> list[np.ndarray]:
        """Every state column's knots in standard deviations: a sequence as it is, a mapping's
        values moved by the column's weighted mean and scaled by its standard deviation."""
        def checked(values: Any, what: str) -> np.ndarray:
            knots = np.asarray(values, dtype=np.float64).ravel()
            if not np.isfinite(knots).all():
                raise ValueError(f"{what} must be finite numbers, got {values!r}")
            return np.sort(knots)

        n_state = len(self.state_index_)
        if not isinstance(self.knots, Mapping):
            return [checked(self.knots, "knots")] * n_state
        names = list(range(n_state)) if state_columns is None else list(state_columns)
        missing = [c for c in names if c not in self.knots]
        extra = [c for c in self.knots if c not in names]
        if missing or extra:
            raise ValueError(f"knots names every state column and no other: missing {missing}, "
                             f"not a state column {extra}")
        return [(checked(self.knots[c], f"knots[{c!r}]") - self.state_mean_[j]) / self.state_std_[j]
                for j, c in enumerate(names)]

    def _standardised(self, values: np.ndarray, mean: np.ndarray, std: np.ndarray, *,
                      clip: bool = True) -> np.ndarray:
        z = (values - mean) / std
        z = np.where(np.isfinite(z), z, 0.0)  # a missing value sits at the mean
        return np.clip(z, -self.clip, self.clip) if clip else z

    def _design(self, X: np.ndarray) -> np.ndarray:
        s = self._standardised(X[:, self.signal_index_], self.signal_mean_, self.signal_std_)
        # steps read the state unclipped: a knot past ``clip`` standard deviations still fires
        z = self._standardised(X[:, self.state_index_], self.state_mean_, self.state_std_,
                               clip=self.basis != "step")
        if isinstance(self.knots_, np.ndarray):  # a model file of before per-column knots: the old layout
            z = np.clip(z, -self.clip, self.clip)
            pieces = [(z > t).astype(np.float64) if self.basis == "step" else np.maximum(z - t, 0.0)
                      for t in self.knots_]
            basis = np.concatenate([z, *pieces], axis=1)
        else:
            columns = []
            for j, knots in enumerate(self.knots_):
                zj = z[:, j : j + 1]
                columns += [(zj > knots).astype(np.float64)] if self.basis == "step" else [
                    zj, np.maximum(zj - knots, 0.0)]
            basis = np.concatenate(columns, axis=1)
        cross = (s[:, :, None] * basis[:, None, :]).reshape(len(X), -1)
        # A model file written before ``state_effects`` existed has no such attribute: it had them.
        if getattr(self, "state_effects", True):
            return np.concatenate([s, basis, cross], axis=1)
        return np.concatenate([s, cross], axis=1)

    def _scaled(self, design: np.ndarray, dtype: type[np.floating[Any]] = np.float32) -> np.ndarray:
        """The standardised design, for the solver in single precision: its matrix products are
        bound by memory (120,000 x 142 doubles are 136 MB a pass), and the interactions need no
        more. Predictions take double precision: a float32 product's rounding depends on how many
        rows BLAS blocks together, so a row's probability would change with the batch around it."""
        return ((design - self.design_mean_) / self.design_std_).astype(dtype)

    def decision_function(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan", dtype=np.float64)
        return self.classifier_.decision_function(self._scaled(self._design(X), np.float64))

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan", dtype=np.float64)
        return self.classifier_.predict_proba(self._scaled(self._design(X), np.float64))

    def predict(self, X: Any) -> np.ndarray:
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags


__all__: Sequence[str] = ("RegimeInteractionClassifier",)
