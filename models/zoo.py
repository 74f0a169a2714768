"""The eight-model zoo and the ensemble served from it (SPEC.md, "Models").

Every member is a scikit-learn classifier built from the configuration (``models.zoo``), each
slot written the way Qlib writes components: ``class`` + ``module_path`` + ``kwargs``, resolved
through an allow-list (:data:`ALLOWED_CLASSES`) and checked against the class's own parameters,
so that ``get_params()``, ``clone`` and the configuration round-trip. Each member is fitted with
``sample_weight`` (the regime weights of module 5) and nothing else: models receive the feature
columns by name, never the label, the forward return or row metadata.

Which variant fills each slot, and why (fit times on 2 cores, about 100,000 rows x 180 features):

* ``random_forest``: ``RandomForestClassifier`` with bounded depth, leaf size and bootstrap
  share: a full-depth forest takes minutes and memorises noise; bounded, it fits in seconds.
* ``extra_trees``: ``ExtraTreesClassifier``, bounded the same way.
* ``xgboost``: ``XGBClassifier`` with the ``hist`` tree method.
* ``lightgbm``: ``LGBMClassifier``, deterministic.
* ``gradient_boosting``: ``HistGradientBoostingClassifier`` (scikit-learn's own boosting)
  behind :class:`QuantileBinnedClassifier`; ``GradientBoostingClassifier`` needs ten minutes on
  these rows, and the histogram booster's own weighted binning 88 s.
* ``mlp``: ``MLPClassifier`` with early stopping, behind :class:`ScaledClassifier`.
* ``logistic_regression``: ``LogisticRegression`` behind :class:`ScaledClassifier`.
* ``svm``: :class:`NystroemSVC`, an RBF-kernel SVM approximated by Nystroem features and a linear
  SVM with Platt-calibrated probabilities, behind :class:`ScaledClassifier`: a kernel ``SVC`` is
  quadratic in rows.

All eight accept ``sample_weight`` in ``fit`` (scikit-learn 1.9's MLP does), so no member needs
weighted resampling. All eight take missing features (a gap, a short history: samples are built
with ``partial``): the forests, XGBoost and LightGBM natively, the histogram booster on bin codes
that keep them missing, and the MLP, logistic regression and SVM through
:class:`ScaledClassifier`'s median imputation, fitted on the training rows. The served model is
:class:`SoftVotingEnsemble`, whose member weights come from purged validation log loss: skill
averaged over the regime sets (:func:`regime_mean_skill`) or on all rows (:func:`ensemble_weights`);
with ``models.validation.ensemble_window_zoo_below_vix`` set, rows of a calm market are served by
a second zoo fitted on the rolling window alone (:class:`CalmGatedEnsemble`), where it validates
better there.
"""

from __future__ import annotations

import importlib
import inspect
import re
import typing
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from pydantic import TypeAdapter, ValidationError
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.impute import SimpleImputer
from sklearn.kernel_approximation import Nystroem
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted, validate_data

#: The classes a configuration may name, by ``(module_path, class)``. Anything else is refused:
#: a configuration file must not be a way to import and run arbitrary code.
ALLOWED_CLASSES: frozenset[tuple[str, str]] = frozenset({
    ("sklearn.ensemble", "RandomForestClassifier"),
    ("sklearn.ensemble", "ExtraTreesClassifier"),
    ("sklearn.ensemble", "HistGradientBoostingClassifier"),
    ("sklearn.ensemble", "GradientBoostingClassifier"),
    ("sklearn.neural_network", "MLPClassifier"),
    ("sklearn.linear_model", "LogisticRegression"),
    ("sklearn.svm", "SVC"),
    ("sklearn.svm", "LinearSVC"),
    ("xgboost", "XGBClassifier"),
    ("lightgbm", "LGBMClassifier"),
    ("models.zoo", "NystroemSVC"),
    ("models.regime_aware", "RegimeInteractionClassifier"),
})

#: What a model file of the zoo may contain, by the start of each type's dotted name: the
#: packages of the allowed classes (and their internals, such as a forest's trees), this package's
#: wrappers, and two plain containers. Model files are skops archives, which build only types
#: their reader trusts; anything else in a file is refused before it is built.
TRUSTED_TYPE_PREFIXES: tuple[str, ...] = (
    *sorted({f"{module.split('.')[0]}." for module, _ in ALLOWED_CLASSES}),
    "numpy.dtype", "collections.OrderedDict",
)


class ZooConfigError(ValueError):
    """A model slot of the configuration that cannot be built; the message names the key."""


class _PreparedInputs:
    """What both input wrappers share: predictions go through ``_transform`` to the fitted
    ``estimator_``, and missing values are accepted (imputed or kept as missing)."""

    estimator_: Any

    def _transform(self, X: Any) -> np.ndarray:
        raise NotImplementedError

    def predict_proba(self, X: Any) -> np.ndarray:
        Z = self._transform(X)
        return self.estimator_.predict_proba(Z)

    def predict(self, X: Any) -> np.ndarray:
        Z = self._transform(X)
        return self.estimator_.predict(Z)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()  # type: ignore[misc]
        tags.input_tags.allow_nan = True
        return tags


class ScaledClassifier(_PreparedInputs, ClassifierMixin, BaseEstimator):
    """Median imputation and weighted standardisation in front of a scale-sensitive learner.

    Trees do not care about scale or missing values; an MLP, a logistic regression and an SVM
    do. A ``Pipeline`` would do the same but cannot pass ``sample_weight`` to its steps without
    switching on scikit-learn's global metadata routing, so this wrapper forwards the weights
    itself: to the scaler (weighted mean and variance) and to the learner.

    Parameters
    ----------
    estimator : classifier
        The learner fitted on the imputed, standardised features.

    Attributes
    ----------
    estimator_ : classifier
        The fitted clone of ``estimator``.
    classes_ : ndarray
        The class labels.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 3)) * [1, 100, 0.01]
    >>> y = (X[:, 0] > 0).astype(int)
    >>> model = ScaledClassifier(estimator=LogisticRegression()).fit(X, y)
    >>> float(model.score(X, y)) > 0.9
    True
    """

    def __init__(self, estimator: Any = None) -> None:
        self.estimator = estimator

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> ScaledClassifier:
        if self.estimator is None:
            raise ValueError("ScaledClassifier needs an estimator")
        X, y = validate_data(self, X, y, ensure_all_finite="allow-nan")
        self.imputer_ = SimpleImputer(strategy="median", keep_empty_features=True).fit(X)
        Z = self.imputer_.transform(X)  # a new array: scaling it in place spares a copy of the rows
        self.scaler_ = StandardScaler(copy=False).fit(Z, sample_weight=sample_weight)
        self.estimator_ = clone(self.estimator).fit(self.scaler_.transform(Z), y, sample_weight=sample_weight)
        self.classes_ = self.estimator_.classes_
        return self

    def _transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan")
        return self.scaler_.transform(self.imputer_.transform(X))


class QuantileBinnedClassifier(_PreparedInputs, ClassifierMixin, BaseEstimator):
    """Features replaced by their quantile-bin codes (unweighted) before a histogram booster.

    ``HistGradientBoostingClassifier`` bins every feature into at most 255 bins before it
    boosts. With ``sample_weight`` and fewer than 200,000 rows it finds the bin edges as 254
    weighted percentiles per feature, one sort each: 88 s of a 92 s fit at 100,000 x 179 rows.
    Given features that already hold at most ``n_bins`` distinct values, it takes them as the
    bins. This wrapper computes the edges from unweighted quantiles (as the booster does without
    weights) and passes the codes; the weights still drive every split, leaf value and the loss.
    Missing values stay missing (the booster learns where they go); a feature with no value in
    the training rows carries nothing and becomes one constant code.

    Parameters
    ----------
    estimator : classifier
        The booster fitted on the bin codes.
    n_bins : int, default=255
        Bins per feature, at most the booster's ``max_bins``.

    Examples
    --------
    >>> from sklearn.ensemble import HistGradientBoostingClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(500, 2))
    >>> y = (X[:, 0] > 0.3).astype(int)
    >>> model = QuantileBinnedClassifier(estimator=HistGradientBoostingClassifier(max_iter=20)).fit(X, y)
    >>> float(model.score(X, y)) > 0.95
    True
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "estimator": "no_validation",  # type: ignore[dict-item]
        "n_bins": [Interval(Integral, 2, 255, closed="both")],
    }

    def __init__(self, estimator: Any = None, *, n_bins: int = 255) -> None:
        self.estimator = estimator
        self.n_bins = n_bins

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> QuantileBinnedClassifier:
        if self.estimator is None:
            raise ValueError("QuantileBinnedClassifier needs an estimator")
        X, y = validate_data(self, X, y, ensure_all_finite="allow-nan")
        quantiles = np.linspace(0, 1, self.n_bins + 1)[1:-1]
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column has no edges
            edges = np.nanquantile(X, quantiles, axis=0, method="averaged_inverted_cdf").T
        self.edges_ = [np.unique(row[np.isfinite(row)]) for row in edges]
        self.estimator_ = clone(self.estimator).fit(self._codes(X), y, sample_weight=sample_weight)
        self.classes_ = self.estimator_.classes_
        return self

    def _codes(self, X: np.ndarray) -> np.ndarray:
        codes = np.empty(X.shape, dtype=np.float64)
        for j, edges in enumerate(self.edges_):
            codes[:, j] = np.searchsorted(edges, X[:, j], side="right")
        codes[np.isnan(X)] = np.nan
        # No edges: the column had no value to fit on (the booster's binning fails on an
        # all-missing column), so every row gets the same code.
        codes[:, [j for j, edges in enumerate(self.edges_) if len(edges) == 0]] = 0.0
        return codes

    def _transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        return self._codes(validate_data(self, X, reset=False, ensure_all_finite="allow-nan"))


class NystroemSVC(ClassifierMixin, BaseEstimator):
    """An RBF-kernel SVM in linear time: Nystroem features, a linear SVM, Platt probabilities.

    ``SVC`` with an RBF kernel costs time quadratic in rows (hours at 100,000 rows). The Nystroem
    method approximates the same kernel with ``n_components`` random landmark features, on which
    a ``LinearSVC`` is an approximate kernel SVM; ``CalibratedClassifierCV`` (sigmoid) turns its
    margins into probabilities from out-of-fold margins, so the ensemble can soft-vote it.
    Weights reach the SVM's hinge loss and the calibration. Expects standardised inputs without
    missing values (use it inside :class:`ScaledClassifier`, which imputes and standardises).

    Parameters
    ----------
    n_components : int, default=300
        Landmarks of the kernel approximation.
    gamma : float or None, default=None
        RBF kernel width; ``None`` means ``1 / n_features``.
    C : float, default=0.1
        Inverse regularisation strength of the linear SVM.
    calibration_folds : int, default=3
        Folds of the sigmoid calibration.
    random_state : int, default=0
        Seed of the landmark draw.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(400, 2))
    >>> y = (np.hypot(X[:, 0], X[:, 1]) > 1.1).astype(int)  # a circle: no line separates it
    >>> model = NystroemSVC(n_components=50, C=1.0).fit(X, y)
    >>> float(model.score(X, y)) > 0.9
    True
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "gamma": [Interval(Real, 0, None, closed="neither"), None],
        "C": [Interval(Real, 0, None, closed="neither")],
        "calibration_folds": [Interval(Integral, 2, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(self, *, n_components: int = 300, gamma: float | None = None, C: float = 0.1,
                 calibration_folds: int = 3, random_state: int = 0) -> None:
        self.n_components = n_components
        self.gamma = gamma
        self.C = C
        self.calibration_folds = calibration_folds
        self.random_state = random_state

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> NystroemSVC:
        self._validate_params()
        X, y = validate_data(self, X, y)
        components = min(self.n_components, X.shape[0])
        gamma = self.gamma if self.gamma is not None else 1.0 / X.shape[1]
        self.kernel_ = Nystroem(gamma=gamma, n_components=components, random_state=self.random_state).fit(X)
        svm = LinearSVC(C=self.C, random_state=self.random_state)
        self.calibrated_ = CalibratedClassifierCV(svm, method="sigmoid", cv=self.calibration_folds,
                                                  ensemble=False)
        self.calibrated_.fit(self.kernel_.transform(X), y, sample_weight=sample_weight)
        self.classes_ = self.calibrated_.classes_
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return self.calibrated_.predict_proba(self.kernel_.transform(X))

    def predict(self, X: Any) -> np.ndarray:
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


# --------------------------------------------------------------------------------------------
# Building members from the configuration
# --------------------------------------------------------------------------------------------


def _resolve(module_path: str, class_name: str, where: str) -> type:
    if (module_path, class_name) not in ALLOWED_CLASSES:
        allowed = ", ".join(f"{m}.{c}" for m, c in sorted(ALLOWED_CLASSES))
        raise ZooConfigError(f"{where}: {module_path}.{class_name} is not an allowed model class; "
                             f"allowed: {allowed}")
    return getattr(importlib.import_module(module_path), class_name)


def _init_hints(cls: type) -> dict[str, Any]:
    """Type hints of ``__init__`` along the MRO (XGBoost declares its parameters on a base)."""
    hints: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            hints.update(typing.get_type_hints(init))
        except Exception:  # noqa: BLE001 - unresolvable annotations only cost us the type check
            continue
    hints.pop("return", None)
    return hints


def _extra_parameters(cls: type) -> frozenset[str]:
    """Keyword arguments a class accepts beyond ``get_params()``: LightGBM's scikit-learn wrapper
    passes any booster parameter (``deterministic``, ``verbose``...) through ``**kwargs``."""
    if cls.__module__.startswith("lightgbm"):
        from lightgbm.basic import _ConfigAliases  # the booster's own parameter table

        table = _ConfigAliases._get_all_param_aliases()
        return frozenset(table) | frozenset(a for aliases in table.values() for a in aliases)
    return frozenset()


def _check_types(cls: type, kwargs: Mapping[str, Any], where: str) -> None:
    hints = _init_hints(cls)
    for key, value in kwargs.items():
        hint = hints.get(key)
        if hint is None or hint is inspect.Parameter.empty:
            continue
        try:
            adapter = TypeAdapter(hint)
        except Exception:  # noqa: BLE001 - e.g. numpy generator types pydantic cannot describe
            continue
        try:
            adapter.validate_python(value, strict=False)
        except ValidationError:
            raise ZooConfigError(
                f"{where}.{key}: {value!r} is not a valid {hint} for {cls.__name__}") from None


def build_estimator(module_path: str, class_name: str, kwargs: Mapping[str, Any], *, preprocess: str = "none",
                    where: str = "models.zoo") -> Any:
    """An unfitted member: the allowed class with ``kwargs`` checked by name and by type.

    Unknown keyword arguments, values of the wrong type (by the class's annotations) and values
    scikit-learn's own parameter constraints refuse all raise :class:`ZooConfigError` naming
    ``where`` and the key, before anything is fitted.
    """
    cls = _resolve(module_path, class_name, where)
    estimator = cls()
    valid = estimator.get_params(deep=False)
    unknown = sorted(set(kwargs) - set(valid) - _extra_parameters(cls))
    if unknown:
        raise ZooConfigError(f"{where}.kwargs.{unknown[0]}: not a parameter of {class_name}; "
                             f"its parameters: {', '.join(sorted(valid))}")
    _check_types(cls, kwargs, f"{where}.kwargs")
    estimator.set_params(**dict(kwargs))
    if hasattr(estimator, "_parameter_constraints"):  # scikit-learn's declared constraints (private API)
        try:
            estimator._validate_params()
        except ValueError as exc:
            named = re.search(r"The '(\w+)' parameter", str(exc))
            key = f".{named.group(1)}" if named else ""
            raise ZooConfigError(f"{where}.kwargs{key}: {exc}") from None
    if preprocess == "standardize":
        return ScaledClassifier(estimator=estimator)
    if preprocess == "quantile_bins":
        return QuantileBinnedClassifier(estimator=estimator)
    if preprocess != "none":
        raise ZooConfigError(f"{where}.preprocess: unknown step {preprocess!r}; one of none, standardize, "
                             "quantile_bins")
    return estimator


# --------------------------------------------------------------------------------------------
# The served ensemble
# --------------------------------------------------------------------------------------------


def fit_inputs(model: Any, X: pd.DataFrame) -> pd.DataFrame:
    """``X`` as ``model.fit`` can take it when features are missing.

    scikit-learn 1.9's forests look for missing values through a writable view of their input,
    and pandas' copy-on-write hands out read-only arrays: a float32 feature frame whose rows are
    contiguous and that holds a NaN fails their fit ("buffer source array is read-only"). As
    float64 (exact for float32 values) the forest converts it into a fresh float32 array, so it
    fits the same bits. Every other member, and a frame without a missing value, gets ``X``.

    Examples
    --------
    >>> from sklearn.ensemble import RandomForestClassifier
    >>> X = pd.DataFrame({"a": np.array([0.0, np.nan, 1.0, 2.0], dtype=np.float32)})
    >>> fit_inputs(RandomForestClassifier(), X).dtypes.tolist(), fit_inputs(ScaledClassifier(), X) is X
    ([dtype('float64')], True)
    """
    from sklearn.ensemble._forest import BaseForest

    if isinstance(model, BaseForest) and isinstance(X, pd.DataFrame) and X.isna().to_numpy().any():
        return X.astype(np.float64)
    return X


def for_reproducible_prediction(model: Any) -> Any:
    """``model`` set to predict the same bits on every call, and so after a write and a read.

    scikit-learn's forests add their trees' probabilities from ``n_jobs`` threads in whatever
    order the threads finish, which moves the last bit from call to call; summed in one thread
    the order is fixed. Fitting keeps its threads; only prediction gives them up, and a forest's
    prediction is cheap next to its fit.
    """
    from sklearn.ensemble._forest import BaseForest

    if isinstance(model, BaseForest) and model.n_jobs not in (None, 1):
        model.set_params(n_jobs=1)
    return model


def positive_class_proba(model: Any, X: Any) -> np.ndarray:
    """The probability of class 1 from ``model.predict_proba``, whatever its class order."""
    proba = model.predict_proba(X)
    return proba[:, list(model.classes_).index(1)]


def ensemble_weights(log_loss: Mapping[str, float], reference_log_loss: float) -> dict[str, float]:
    """Soft-vote weights from each member's validation log loss.

    A member's weight is its skill, ``reference_log_loss - log_loss`` (how much better than
    predicting the base rate it is), clipped at zero and normalised. Log losses of direction
    models differ in the third decimal, so weights proportional to ``1 / log_loss`` would be
    nearly equal; skill separates a member with an edge from one without. When no member beats
    the reference, every member gets the same weight.

    Examples
    --------
    >>> ensemble_weights({"a": 0.680, "b": 0.690, "c": 0.700}, 0.693)
    {'a': 0.8125, 'b': 0.1875, 'c': 0.0}
    """
    return weights_from_skill({name: reference_log_loss - loss for name, loss in log_loss.items()})


def weights_from_skill(skill: Mapping[str, float]) -> dict[str, float]:
    """Soft-vote weights proportional to skill (log loss below a reference), clipped at zero;
    equal weights when no member has any.

    >>> weights_from_skill({"a": 0.004, "b": -0.001})
    {'a': 1.0, 'b': 0.0}
    """
    clipped = {name: max(0.0, value) for name, value in skill.items()}
    total = sum(clipped.values())
    if total <= 0:
        return {name: 1.0 / len(skill) for name in skill}
    return {name: round(value / total, 12) for name, value in clipped.items()}


def regime_mean_skill(
    log_loss: Mapping[str, Mapping[str, float]],
    reference_log_loss: Mapping[str, float],
    rows: Mapping[str, int],
    *,
    min_rows: int,
) -> dict[str, float] | None:
    """Each member's skill averaged over the regimes with at least ``min_rows`` validation rows.

    ``log_loss[member][regime]`` and ``reference_log_loss[regime]`` (the training base rate's log
    loss on that regime's rows) are per regime. On all rows together the calm sets, several times
    larger, decide the weights, and a member that is right only in storms gets none; averaged
    per regime, a crash set counts as much as a normal one. ``None`` when no regime has enough
    rows (the caller falls back to the overall skill).

    >>> regime_mean_skill({"trees": {"normal": 0.680, "crash": 0.700},
    ...                    "linear": {"normal": 0.688, "crash": 0.680}},
    ...                   {"normal": 0.690, "crash": 0.693}, {"normal": 5000, "crash": 400}, min_rows=200)
    {'trees': 0.0015, 'linear': 0.0075}
    """
    kept = [regime for regime, n in rows.items() if n >= min_rows and regime in reference_log_loss]
    if not kept:
        return None
    return {name: round(float(np.mean([reference_log_loss[r] - losses[r] for r in kept])), 12)
            for name, losses in log_loss.items()}


def _gate_values(X: pd.DataFrame, column: str, gate: str) -> np.ndarray:
    """The column a row-wise gate reads, as floats (NaN where it is missing or not a number)."""
    if column not in X.columns:
        raise KeyError(f"the {gate} gate reads the feature {column!r}, which the frame lacks")
    return pd.to_numeric(X[column], errors="coerce").to_numpy(dtype=float)


@dataclass(frozen=True)
class StormGate:
    """Which rows the ensemble serves with its storm weights: those whose ``column`` (the VIX
    level, with the labeler's own fallback where the VIX is missing) is above ``above`` (the
    labeler's crash threshold). A row-wise rule on a causal feature, so the served model needs
    nothing but the features it was trained on; a missing value is not a storm."""

    column: str = "vix_level"
    above: float = 35.0

    def mask(self, X: pd.DataFrame) -> np.ndarray:
        return np.nan_to_num(_gate_values(X, self.column, "storm"), nan=-np.inf) > self.above


def _check_weights(members: Mapping[str, Any], weights: Mapping[str, float], what: str) -> None:
    if set(members) != set(weights):
        raise ValueError(f"every member needs a{what} weight and every{what} weight a member")
    if not np.isclose(sum(weights.values()), 1.0):
        raise ValueError(f"ensemble{what} weights must sum to 1, got {sum(weights.values())}")


@dataclass(frozen=True)
class SoftVotingEnsemble:
    """The served model: a weighted average of fitted members' probabilities.

    Built from members that were already fitted and validated (refitting them, as scikit-learn's
    ``VotingClassifier`` would, would double the retraining time and detach the weights from the
    validation that chose them). Members with zero weight are kept, so that their own
    predictions stay available for reports, but do not vote.

    With ``storm_weights`` and a ``storm_gate``, rows the gate calls a storm are served with
    their own weights, chosen on the validation rows of storms, so that members that are best in
    calm markets need not outvote the one that is right in storms. How well that works depends on
    how many storm sessions validation has (a retrain's are a handful), which is why
    ``models.validation.ensemble_storm_weights`` is off by default and the quality benchmark
    measures it as a variant.
    """

    members: Mapping[str, Any]
    weights: Mapping[str, float]
    feature_names: tuple[str, ...]
    storm_weights: Mapping[str, float] | None = None
    storm_gate: StormGate | None = None

    def __post_init__(self) -> None:
        _check_weights(self.members, self.weights, "")
        if (self.storm_weights is None) != (self.storm_gate is None):
            raise ValueError("storm weights and a storm gate go together: give both or neither")
        if self.storm_weights is not None:
            _check_weights(self.members, self.storm_weights, " storm")

    @property
    def classes_(self) -> np.ndarray:
        return np.array([0, 1])

    def _features(self, X: pd.DataFrame) -> pd.DataFrame:
        missing = [name for name in self.feature_names if name not in X.columns]
        if missing:
            raise KeyError(f"the frame lacks {len(missing)} feature(s) the ensemble was trained on: "
                           f"{', '.join(missing[:5])}")
        return X.loc[:, list(self.feature_names)]

    def member_proba(self, X: pd.DataFrame) -> dict[str, np.ndarray]:
        """Each member's probability of class 1."""
        frame = self._features(X)
        return {name: positive_class_proba(model, frame) for name, model in self.members.items()}

    def storm_rows(self, X: pd.DataFrame) -> np.ndarray:
        """Where the storm weights serve (all False without a gate)."""
        return np.zeros(len(X), dtype=bool) if self.storm_gate is None else self.storm_gate.mask(X)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        frame = self._features(X)
        storm = self.storm_rows(X)
        storm_weights = self.storm_weights or {}
        p = np.zeros(len(frame))
        for name, model in self.members.items():
            calm_w, storm_w = self.weights[name], storm_weights.get(name, 0.0)
            if calm_w > 0 or (storm_w > 0 and storm.any()):
                p += np.where(storm, storm_w, calm_w) * positive_class_proba(model, frame)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] > 0.5).astype(np.int64)


@dataclass(frozen=True)
class CalmGate:
    """Which rows the window zoo serves: those whose ``column`` (the VIX level) is below ``below``
    (the labeler's high-volatility threshold). A missing value is not calm: the hybrid zoo, which
    has seen every regime, serves it."""

    column: str = "vix_level"
    below: float = 25.0

    def mask(self, X: pd.DataFrame) -> np.ndarray:
        return np.nan_to_num(_gate_values(X, self.column, "calm"), nan=np.inf) < self.below

    @property
    def rule(self) -> str:
        return f"{self.column} < {self.below:g}"


@dataclass(frozen=True)
class CalmGatedEnsemble:
    """The served model when calm rows go to the zoo fitted on the rolling window alone.

    Members fitted on the hybrid set (window, archive, replay, balanced towards storms and
    weighted by regime) give up accuracy in calm markets for accuracy in storms: on the quality
    benchmark each of them scored 1 to 8 points below the window-only members on calm rows. So
    rows the ``gate`` calls calm (a VIX below the labeler's high-volatility threshold) are served
    by ``calm`` (the window zoo's ensemble), every other row by ``hybrid``. The gate reads a causal
    feature row by row, so the pair needs nothing its members were not trained on.

    Examples
    --------
    >>> from sklearn.dummy import DummyClassifier
    >>> X = pd.DataFrame({"vix_level": [15.0, 40.0]})
    >>> def constant(up):  # a model that says "up" with probability up / 10
    ...     model = DummyClassifier(strategy="prior").fit([[0]] * 10, [1] * up + [0] * (10 - up))
    ...     return SoftVotingEnsemble(members={"m": model}, weights={"m": 1.0}, feature_names=("vix_level",))
    >>> pair = CalmGatedEnsemble(hybrid=constant(3), calm=constant(8), gate=CalmGate(below=25.0))
    >>> pair.predict_proba(X)[:, 1].round(2).tolist(), pair.calm_rows(X).tolist()
    ([0.8, 0.3], [True, False])
    """

    hybrid: SoftVotingEnsemble
    calm: SoftVotingEnsemble
    gate: CalmGate

    @property
    def classes_(self) -> np.ndarray:
        return np.array([0, 1])

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.hybrid.feature_names

    def calm_rows(self, X: pd.DataFrame) -> np.ndarray:
        """Where the window zoo serves."""
        return self.gate.mask(X)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        calm = self.calm_rows(X)
        p = np.empty(len(X))
        if (~calm).any():
            p[~calm] = self.hybrid.predict_proba(X.loc[~calm])[:, 1]
        if calm.any():
            p[calm] = self.calm.predict_proba(X.loc[calm])[:, 1]
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] > 0.5).astype(np.int64)


__all__: Sequence[str] = (
    "ALLOWED_CLASSES", "TRUSTED_TYPE_PREFIXES", "CalmGate", "CalmGatedEnsemble", "NystroemSVC",
    "ScaledClassifier", "SoftVotingEnsemble",
    "StormGate", "ZooConfigError",
    "build_estimator", "ensemble_weights", "for_reproducible_prediction", "positive_class_proba",
    "regime_mean_skill", "weights_from_skill",
)
