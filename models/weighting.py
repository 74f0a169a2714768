"""Regime-weighted loss (SPEC.md module 5).

Each sample is weighted by its regime (by default crash 2.0, recovery 1.5, high_volatility 1.3,
normal 1.0, low_volatility 0.8). The weights reach every model through ``sample_weight``; this
module computes them, reports each regime's share of samples and of total weight and the
effective dataset size (the sum of the weights: 1,170 for 1,000 samples balanced as in module
3), and scores predictions with the same weights (weighted accuracy and MAE).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.metrics import accuracy_score, mean_absolute_error
from sklearn.utils import check_consistent_length

from market.vocabulary import REGIME_NAMES, REGIMES
from models.config import ModelsConfig
from models.reports import PerRegimeRows
from models.sampling import encode_regimes, per_regime

__all__ = ["RegimeWeighter", "RegimeWeightShare", "WeightReport", "weighted_accuracy", "weighted_mae"]


@dataclass(frozen=True)
class RegimeWeightShare:
    """One regime's weight, sample count, share of the samples and share of the total weight."""

    regime: str
    weight: float
    count: int
    sample_share: float
    weight_share: float


@dataclass(frozen=True)
class WeightReport(PerRegimeRows):
    """Per-regime shares of samples and of weight, with ``n`` samples of total weight
    ``effective_size`` (shares are NaN when there are no samples)."""

    regimes: tuple[RegimeWeightShare, ...]
    n: int
    effective_size: float


class RegimeWeighter(BaseEstimator):
    """Per-sample weights by market regime, and a report of what they do to the data.

    Parameters
    ----------
    weights : mapping of regime to float, default=None
        Weight of each regime, keyed by regime name or :class:`~market.vocabulary.Regime`; every
        regime must be present with a positive finite weight. None means the SPEC.md defaults of
        :class:`models.config.ModelsConfig` (crash 2.0, recovery 1.5, high_volatility 1.3,
        normal 1.0, low_volatility 0.8).

    See Also
    --------
    models.sampling.RegimeBalancedSampler : balances regime shares before weighting.
    weighted_accuracy, weighted_mae : scores with the same weights.

    Examples
    --------
    >>> import numpy as np
    >>> from models.weighting import RegimeWeighter
    >>> regimes = np.repeat(["low_volatility", "normal", "high_volatility", "crash", "recovery"],
    ...                     [200, 400, 200, 100, 100])
    >>> weighter = RegimeWeighter()
    >>> weighter.weights_for(["crash", "normal", "low_volatility"])
    array([2. , 1. , 0.8])
    >>> report = weighter.report(regimes)
    >>> report.n, round(report.effective_size, 6)
    (1000, 1170.0)
    >>> report["crash"].sample_share, round(report["crash"].weight_share, 4)
    (0.1, 0.1709)
    """

    def __init__(self, *, weights=None):
        self.weights = weights

    @classmethod
    def from_config(cls, config: ModelsConfig) -> RegimeWeighter:
        """A weighter with the regime weights of ``config``.

        >>> RegimeWeighter.from_config(ModelsConfig()).weights["crash"]
        2.0
        """
        return cls(weights={str(r): float(w) for r, w in config.weights.items()})

    def weights_for(self, regimes: Any) -> np.ndarray:
        """The weight of each sample's regime, as a float array of shape (n_samples,).

        Raises ``ValueError`` naming any unknown regime label.
        """
        return self._regime_weights()[encode_regimes(regimes)]

    def report(self, regimes: Any) -> WeightReport:
        """Each regime's share of the samples and of the total weight, and the effective size."""
        weights = self._regime_weights()
        counts = np.bincount(encode_regimes(regimes), minlength=len(REGIMES))
        n = int(counts.sum())
        mass = weights * counts
        total = float(mass.sum())
        with np.errstate(invalid="ignore", divide="ignore"):
            sample_share = counts / n if n else np.full(len(REGIMES), np.nan)
            weight_share = mass / total if n else np.full(len(REGIMES), np.nan)
        return WeightReport(
            regimes=tuple(
                RegimeWeightShare(
                    regime=name,
                    weight=float(weights[i]),
                    count=int(counts[i]),
                    sample_share=float(sample_share[i]),
                    weight_share=float(weight_share[i]),
                )
                for i, name in enumerate(REGIME_NAMES)
            ),
            n=n,
            effective_size=total,
        )

    def _regime_weights(self) -> np.ndarray:
        weights = ModelsConfig.model_fields["weights"].default if self.weights is None else self.weights
        values = per_regime(weights, "regime weights")
        bad = [f"{name}={v:g}" for name, v in zip(REGIME_NAMES, values, strict=True) if v <= 0]
        if bad:
            raise ValueError(f"regime weights must be positive: {', '.join(bad)}")
        return values


def _sample_weights(regimes: Any, weights: Mapping[Any, float] | RegimeWeighter | None) -> np.ndarray:
    weighter = weights if isinstance(weights, RegimeWeighter) else RegimeWeighter(weights=weights)
    sample_weight = weighter.weights_for(regimes)
    if sample_weight.size == 0:
        raise ValueError("cannot score an empty set of predictions")
    return sample_weight


def weighted_accuracy(
    y_true: Any, y_pred: Any, regimes: Any, *, weights: Mapping[Any, float] | RegimeWeighter | None = None
) -> float:
    """Accuracy with each sample weighted by its regime's weight.

    ``sum(w * (y_true == y_pred)) / sum(w)``; ``weights`` is a mapping of regime weights or a
    :class:`RegimeWeighter` (None: the SPEC.md defaults).

    >>> round(weighted_accuracy([1, 0], [1, 1], ["crash", "normal"]), 4)  # 2.0 / (2.0 + 1.0)
    0.6667
    """
    check_consistent_length(y_true, y_pred, regimes)
    return float(accuracy_score(y_true, y_pred, sample_weight=_sample_weights(regimes, weights)))


def weighted_mae(
    y_true: Any, proba: Any, regimes: Any, *, weights: Mapping[Any, float] | RegimeWeighter | None = None
) -> float:
    """Mean absolute error between the predicted probability of class 1 and the 0/1 label,
    each sample weighted by its regime's weight.

    ``proba`` is the probability of the positive class, shape (n_samples,), or the
    ``predict_proba`` output of a binary classifier, shape (n_samples, 2), whose second column
    is used. Labels must be 0 or 1.

    >>> round(weighted_mae([1, 0], [0.75, 0.5], ["crash", "normal"]), 4)  # (2 * 0.25 + 1 * 0.5) / 3
    0.3333
    """
    label = np.asarray(y_true, dtype=float)
    p = np.asarray(proba, dtype=float)
    if p.ndim == 2 and p.shape[1] == 2:
        p = p[:, 1]
    if p.ndim != 1:
        raise ValueError(f"proba must have shape (n_samples,) or (n_samples, 2), got {np.shape(proba)}")
    check_consistent_length(label, p, regimes)
    if not np.isin(label, (0.0, 1.0)).all():
        raise ValueError("weighted_mae needs labels of 0 or 1 (missing labels are not allowed)")
    if not ((p >= 0) & (p <= 1)).all():
        raise ValueError("proba must hold probabilities between 0 and 1")
    return float(mean_absolute_error(label, p, sample_weight=_sample_weights(regimes, weights)))
