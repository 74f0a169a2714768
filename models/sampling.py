"""Regime-balanced sampling (SPEC.md module 3).

A training set is rebalanced to target regime shares (by default low_volatility 20%, normal 40%,
high_volatility 20%, crash 10%, recovery 10%). Each regime's row count is the target share of the
balanced size rounded by the largest-remainder method, so the counts sum to the size exactly and
each is within one row of ``target * size``. A majority regime is undersampled without
replacement; a minority regime keeps every original row once and draws the rest with replacement.
A regime with no rows is reported, never invented; nor is one seen on only a handful of sessions
(``min_sessions``): its rows are kept once, as they are, and its share goes to the others.

By default the balanced size is ``"keep_rare"``: the smallest size at which no row of an
under-represented regime is dropped (see :class:`RegimeBalancedSampler`). A prototype showed that
balancing to a fixed size threw away most crash rows and did worse (notes/simulator.md).
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils import _safe_indexing, check_consistent_length, check_random_state

from market.checks import check_shares_sum_to_one
from market.vocabulary import REGIME_NAMES, REGIMES, Regime
from models.config import SamplingConfig
from models.reports import PerRegimeRows

__all__ = [
    "RegimeBalancedSampler",
    "RegimeSampling",
    "SamplingReport",
    "encode_regimes",
    "largest_remainder",
    "per_regime",
]

_REGIME_INDEX = pd.Index(REGIME_NAMES, dtype=object)
_SIZE_RULES = ("keep_rare", "same")
_POLICIES = ("redistribute", "fail")
#: Quotas ``share * size`` are rounded to this many decimals before flooring, so that float noise
#: (0.1 * 1000 = 99.99999999999999) does not move a row from one regime to another.
_QUOTA_DECIMALS = 9
#: A regime whose target share is at least its current share, up to this relative tolerance, is
#: one that ``size="keep_rare"`` must keep whole.
_SHARE_TOLERANCE = 1e-9
#: The storm regimes the archive exists for: ``size="keep_rare"`` never drops one of their rows,
#: even when a large archive puts them above their target share (notes/simulator.md: cutting
#: crash rows to a fixed size did worse than keeping them all).
RARE_REGIMES: tuple[str, ...] = (Regime.CRASH.value, Regime.RECOVERY.value)
_RARE = np.isin(np.array(REGIME_NAMES), RARE_REGIMES)


def encode_regimes(regimes: Any) -> np.ndarray:
    """Positions in :data:`market.vocabulary.REGIMES` of a 1-D sequence of regime labels.

    Labels may be strings, :class:`~market.vocabulary.Regime` members, or a pandas Series
    (categorical or not) of either. Raises ``ValueError`` naming every unknown label (missing
    values included).

    >>> from market.vocabulary import Regime
    >>> encode_regimes(["crash", "normal", Regime.LOW_VOLATILITY])
    array([1, 0, 4])
    """
    labels = np.asarray(regimes, dtype=object)
    if labels.ndim != 1:
        raise ValueError(f"regimes must be one-dimensional, got shape {labels.shape}")
    codes = _REGIME_INDEX.get_indexer(labels)
    if (codes < 0).any():
        unknown = sorted({str(v) for v in labels[codes < 0]})
        raise ValueError(
            f"unknown regime label(s): {', '.join(unknown)}; known regimes are {', '.join(REGIME_NAMES)}"
        )
    return codes.astype(np.intp)


def per_regime(values: Mapping[Any, Any], what: str) -> np.ndarray:
    """``values`` (one finite number per regime, keyed by name or Regime) in REGIMES order.

    Raises ``ValueError`` naming unknown and missing regimes and non-finite values.

    >>> per_regime({"normal": 1, "crash": 2, "recovery": 3, "high_volatility": 4,
    ...             "low_volatility": 5}, "weights")
    array([1., 2., 3., 4., 5.])
    """
    if not isinstance(values, Mapping):
        raise ValueError(f"{what} must be a mapping from regime to number, got {type(values).__name__}")
    keys = {str(k): k for k in values}
    unknown = sorted(k for k in keys if k not in REGIME_NAMES)
    if unknown:
        raise ValueError(f"{what} name unknown regime(s): {', '.join(unknown)}")
    missing = [r for r in REGIME_NAMES if r not in keys]
    if missing:
        raise ValueError(f"{what} lack a value for: {', '.join(missing)}")
    out = np.empty(len(REGIME_NAMES))
    for i, name in enumerate(REGIME_NAMES):
        value = values[keys[name]]
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
            raise ValueError(f"{what}: the value for {name} must be a finite number, got {value!r}")
        out[i] = float(value)
    return out


def largest_remainder(shares: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` into integer counts proportional to ``shares`` (which sum to 1).

    Each count is ``floor(share * total)`` or one more; the rows left over after flooring go to
    the largest remainders, ties to the earlier position. Counts sum to ``total`` exactly and each
    is within one of ``share * total``. A zero share always gets zero.

    >>> largest_remainder(np.array([0.4, 0.1, 0.1, 0.2, 0.2]), 997)
    array([399, 100, 100, 199, 199])
    """
    return _allocate(np.asarray(shares, dtype=float), np.array([int(total)]))[0]


def _allocate(shares: np.ndarray, totals: np.ndarray) -> np.ndarray:
    """Largest-remainder counts for several totals at once: shape ``(len(totals), len(shares))``."""
    quota = np.round(shares[None, :] * totals[:, None].astype(float), _QUOTA_DECIMALS)
    floors = np.floor(quota).astype(np.int64)
    remainder = quota - floors
    remainder[:, shares <= 0] = -1.0  # never hand a leftover row to a regime with no share
    left = totals - floors.sum(axis=1)
    order = np.argsort(-remainder, axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(shares.size)[None, :].repeat(len(totals), axis=0), axis=1)
    return floors + (rank < left[:, None])


def _keep_rare_size(shares: np.ndarray, counts: np.ndarray) -> int:
    """The smallest size whose allocation keeps every row of the storm regimes and of each regime
    whose target share is at least its current share."""
    n = counts.sum()
    under = shares * n >= counts * (1.0 - _SHARE_TOLERANCE)
    keep = (shares > 0) & (counts > 0) & (under | _RARE)
    need, share = counts[keep], shares[keep]
    # A count is at most ceil(share * size), so share * size > need - 1 is necessary, and
    # floor(share * size) >= need, i.e. share * size >= need, is sufficient.
    low = max(1, int(np.max(np.floor((need - 1) / share))))
    high = int(np.max(np.ceil(need / share))) + 1
    while True:
        sizes = np.arange(low, high + 1)
        ok = (_allocate(shares, sizes)[:, keep] >= need).all(axis=1)
        if ok.any():
            return int(sizes[np.argmax(ok)])
        low, high = high + 1, 2 * high + 1  # only reached through float noise at the bound


@dataclass(frozen=True)
class RegimeSampling:
    """How one regime fared in a balancing.

    ``target`` is the share asked for, ``effective_target`` the share used after empty and sparse
    regimes were redistributed (a sparse regime's is the share its rows, kept once, end with).
    ``oversampled`` counts rows drawn with replacement beyond the originals; ``dropped`` counts
    original rows left out.
    """

    regime: str
    count_before: int
    share_before: float
    target: float
    effective_target: float
    count_after: int
    share_after: float
    oversampled: int
    dropped: int


@dataclass(frozen=True)
class SamplingReport(PerRegimeRows):
    """Before/after regime counts and shares of one balancing, one row per regime.

    ``size_rule`` is the ``size`` parameter the sampler was given (``"keep_rare"``, ``"same"`` or
    an int). ``empty_regimes`` names the regimes with a positive target but no rows;
    ``empty_regime_note`` says what the policy did about them (empty when there were none).
    ``sparse_regimes`` names the regimes seen on fewer than ``min_sessions`` sessions, kept once
    and not balanced; ``sparse_regime_note`` says so (empty when there were none).
    """

    regimes: tuple[RegimeSampling, ...]
    n_before: int
    n_after: int
    size_rule: str | int
    empty_regimes: tuple[str, ...]
    empty_regime_policy: str
    empty_regime_note: str
    min_sessions: int = 0
    sparse_regimes: tuple[str, ...] = ()
    sparse_regime_note: str = ""


class RegimeBalancedSampler(BaseEstimator):
    """Rebalance a training set to target regime shares, reproducibly, reporting what it did.

    Each regime gets ``largest_remainder(targets, size)`` rows: the counts sum to the balanced size
    exactly and each is within one row of ``target * size``. A regime with more rows than that is
    undersampled without replacement; a regime with fewer keeps every original row once and draws
    the rest uniformly with replacement, so oversampling never loses an original row.

    Parameters
    ----------
    targets : mapping of regime to float, default=None
        Target share of each regime, keyed by regime name or :class:`~market.vocabulary.Regime`;
        every regime must be present, shares non-negative and summing to 1. None means the
        SPEC.md defaults of :class:`models.config.SamplingConfig` (low_volatility 0.2, normal 0.4,
        high_volatility 0.2, crash 0.1, recovery 0.1).
    size : int or {"keep_rare", "same"}, default="keep_rare"
        The balanced number of rows. An int asks for exactly that many. ``"same"`` keeps the
        input's size. ``"keep_rare"`` is the smallest size ``N`` at which every regime that must
        be kept gets at least as many rows as it has, i.e. ``largest_remainder(targets, N)[r] >=
        count[r]`` for each such regime ``r`` (with at least one row and a positive target): the
        storm regimes of :data:`RARE_REGIMES` (crash, recovery) always, and every regime whose
        target share is at least its share of the input. No storm row and no row of an
        under-represented regime is dropped; only over-represented calm regimes are undersampled,
        and the others are oversampled around the storm rows. It lies within ``1 / target`` rows
        below ``max(count[r] / target[r])`` over the kept regimes.
    empty_regime_policy : {"redistribute", "fail"}, default="redistribute"
        What to do about a regime with a positive target but no rows. ``"redistribute"`` spreads
        its target share over the non-empty regimes in proportion to their targets and says so
        in the report; ``"fail"`` raises a ``ValueError`` naming the empty regime(s).
    min_sessions : int, default=0
        A regime with rows on fewer sessions than this is *sparse*: its rows are kept once each,
        neither oversampled nor dropped, and its target share is spread over the other regimes
        like an empty regime's (whatever ``empty_regime_policy`` says: there are rows). Sessions
        are the ``sessions`` given to :meth:`sample_indices`, or rows when none are. Why: five
        sessions drawn up to a tenth of the set teach their noise as the regime's rule (README,
        Quality). 0 balances every regime with rows.
    random_state : int, RandomState instance or None, default=None
        Seeds the draws: the same seed gives the same rows.

    Attributes
    ----------
    report_ : SamplingReport
        Per regime: counts and shares before and after, target and effective target, rows
        oversampled and dropped; which regimes were empty and how the policy handled them.
    size_ : int
        The balanced size used.
    targets_ : dict of str to float
        The effective target shares used (after redistribution of empty regimes).

    See Also
    --------
    models.weighting.RegimeWeighter : per-sample regime weights, applied after balancing.

    Examples
    --------
    >>> import numpy as np
    >>> from models.sampling import RegimeBalancedSampler
    >>> regimes = np.repeat(["normal", "low_volatility", "high_volatility", "crash", "recovery"],
    ...                     [700, 150, 100, 30, 20])
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(1000, 3)), rng.integers(0, 2, size=1000)
    >>> sampler = RegimeBalancedSampler(random_state=0)
    >>> X_res, y_res, regimes_res = sampler.fit_resample(X, y, regimes=regimes)
    >>> sampler
    RegimeBalancedSampler(random_state=0)
    >>> X_res.shape
    (749, 3)
    >>> {r: int((regimes_res == r).sum()) for r in ["normal", "crash", "low_volatility"]}
    {'normal': 299, 'crash': 75, 'low_volatility': 150}
    >>> sampler.report_["crash"].oversampled, sampler.report_["normal"].dropped
    (45, 401)
    """

    def __init__(self, *, targets=None, size="keep_rare", empty_regime_policy="redistribute",
                 min_sessions=0, random_state=None):
        self.targets = targets
        self.size = size
        self.empty_regime_policy = empty_regime_policy
        self.min_sessions = min_sessions
        self.random_state = random_state

    @classmethod
    def from_config(cls, config: SamplingConfig, *, size: int | str = "keep_rare") -> RegimeBalancedSampler:
        """A sampler with ``config``'s targets, empty-regime policy, minimum sessions and seed.

        >>> RegimeBalancedSampler.from_config(SamplingConfig(seed=7)).random_state
        7
        """
        return cls(
            targets={str(r): float(share) for r, share in config.targets.items()},
            size=size,
            empty_regime_policy=config.empty_regime_policy,
            min_sessions=config.min_regime_sessions,
            random_state=config.seed,
        )

    def sample_indices(self, regimes: Any, *, sessions: Any = None, random_state: Any = None) -> np.ndarray:
        """Positional indices of a balanced sample of rows whose regimes are ``regimes``.

        This is what :meth:`fit_resample` uses; take the same indices from any other columns to
        carry them along. Sets ``report_``, ``size_`` and ``targets_``.

        Parameters
        ----------
        regimes : array-like of shape (n_samples,)
            Regime label of each row (names or :class:`~market.vocabulary.Regime` members).
        sessions : array-like of shape (n_samples,), default=None
            The session (date) of each row, which ``min_sessions`` counts; None counts rows.
        random_state : int, RandomState instance or None, default=None
            Overrides the sampler's ``random_state`` for this call; None uses the sampler's.

        Returns
        -------
        indices : ndarray of shape (size_,)
            Row positions in ascending order (a time-ordered input stays time-ordered); an
            oversampled row appears several times, next to itself.
        """
        codes = encode_regimes(regimes)
        targets = self._validated_targets()
        policy = self.empty_regime_policy
        if policy not in _POLICIES:
            raise ValueError(f"empty_regime_policy must be one of {_POLICIES}, got {policy!r}")
        counts = np.bincount(codes, minlength=len(REGIMES))
        n = int(counts.sum())
        if n == 0:
            raise ValueError("cannot balance an empty training set: regimes has no rows")

        empty = (targets > 0) & (counts == 0)
        empty_names = tuple(REGIME_NAMES[i] for i in np.flatnonzero(empty))
        note = ""
        shares = targets / targets.sum()
        if empty.any():
            listed = ", ".join(f"{REGIME_NAMES[i]} (target {targets[i]:g})" for i in np.flatnonzero(empty))
            if policy == "fail":
                raise ValueError(
                    f"no samples of regime(s) {listed}; empty_regime_policy='redistribute' would spread "
                    "their target shares over the other regimes"
                )
            kept = np.where(counts > 0, targets, 0.0)
            if kept.sum() <= 0:
                raise ValueError(
                    f"no samples of regime(s) {listed}, and no regime with rows has a positive target"
                )
            shares = kept / kept.sum()
            note = (
                f"no samples of {listed}: their target share {targets[empty].sum():g} was spread over "
                "the non-empty regimes in proportion to their targets; no rows were invented"
            )

        min_sessions = self._validated_min_sessions()
        seen = _sessions_per_regime(codes, sessions, counts)
        sparse = (shares > 0) & (counts > 0) & (seen < min_sessions)
        sparse_names = tuple(REGIME_NAMES[i] for i in np.flatnonzero(sparse))
        sparse_note = ""
        balanced = np.where(sparse, 0.0, shares)
        if sparse.any():
            listed = ", ".join(f"{REGIME_NAMES[i]} ({seen[i]} session(s), {counts[i]} rows)"
                               for i in np.flatnonzero(sparse))
            sparse_note = (
                f"fewer than {min_sessions} sessions of {listed}: their rows were kept once, neither "
                "oversampled nor dropped, and their target share was spread over the other regimes"
            )
        if balanced.sum() > 0:
            balanced = balanced / balanced.sum()
            rest = np.where(sparse, 0, counts)
            size = self._balanced_size(balanced, rest, reserved=int(counts[sparse].sum()))
            wanted = largest_remainder(balanced, size)
            wanted[sparse] = counts[sparse]
        else:  # every regime with rows is sparse: nothing to balance them against
            wanted = np.where(shares > 0, counts, 0)
        size = int(wanted.sum())
        shares = np.where(sparse, wanted / size, balanced * (1.0 - wanted[sparse].sum() / size))

        rng = check_random_state(self.random_state if random_state is None else random_state)
        parts = []
        for code, want in enumerate(wanted):
            rows = np.flatnonzero(codes == code)
            if want <= rows.size:
                parts.append(rng.choice(rows, size=want, replace=False))
            else:
                parts.append(rows)
                parts.append(rng.choice(rows, size=want - rows.size, replace=True))
        indices = np.sort(np.concatenate(parts).astype(np.intp), kind="stable")

        self.size_ = size
        self.targets_ = dict(zip(REGIME_NAMES, shares.tolist(), strict=True))
        self.report_ = SamplingReport(
            regimes=tuple(
                RegimeSampling(
                    regime=name,
                    count_before=int(counts[i]),
                    share_before=float(counts[i] / n),
                    target=float(targets[i]),
                    effective_target=float(shares[i]),
                    count_after=int(wanted[i]),
                    share_after=float(wanted[i] / size),
                    oversampled=int(max(wanted[i] - counts[i], 0)),
                    dropped=int(max(counts[i] - wanted[i], 0)),
                )
                for i, name in enumerate(REGIME_NAMES)
            ),
            n_before=n,
            n_after=size,
            size_rule=self.size,
            empty_regimes=empty_names,
            empty_regime_policy=policy,
            empty_regime_note=note,
            min_sessions=min_sessions,
            sparse_regimes=sparse_names,
            sparse_regime_note=sparse_note,
        )
        return indices

    def fit_resample(self, X: Any, y: Any, *, regimes: Any, sessions: Any = None,
                     sample_weight: Any = None) -> tuple:
        """Balance ``X``, ``y`` and ``regimes`` (and ``sample_weight``) by regime.

        Parameters
        ----------
        X : DataFrame, ndarray or sparse matrix of shape (n_samples, n_features)
            A DataFrame keeps its index: a duplicated row keeps its original label, so each row's
            provenance survives.
        y : array-like of shape (n_samples,)
        regimes : array-like of shape (n_samples,)
            Regime label of each row.
        sessions : array-like of shape (n_samples,), default=None
            Session of each row, for ``min_sessions`` (None counts rows).
        sample_weight : array-like of shape (n_samples,), default=None
            Carried along unchanged row by row (a duplicated row keeps its weight; nothing is
            renormalised). Regime weights (:mod:`models.weighting`) are meant to be applied to
            the balanced set afterwards.

        Returns
        -------
        X_res, y_res, regimes_res : the rows of ``sample_indices(regimes)``, each of the type given
            (pandas objects through ``.iloc``, keeping their index labels).
        sample_weight_res : only when ``sample_weight`` is given, as a fourth element.
        """
        check_consistent_length(X, y, regimes, sessions, sample_weight)
        indices = self.sample_indices(regimes, sessions=sessions)
        out = (_safe_indexing(X, indices), _safe_indexing(y, indices), _take_labels(regimes, indices))
        if sample_weight is not None:
            return (*out, _safe_indexing(sample_weight, indices))
        return out

    def _validated_targets(self) -> np.ndarray:
        if self.targets is None:
            targets = SamplingConfig.model_fields["targets"].default
        else:
            targets = self.targets
        values = per_regime(targets, "sampling targets")
        check_shares_sum_to_one(dict(zip(REGIME_NAMES, values.tolist(), strict=True)), "sampling targets")
        return values

    def _validated_min_sessions(self) -> int:
        value = self.min_sessions
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise ValueError(f"min_sessions must be a non-negative int, got {value!r}")
        return int(value)

    def _balanced_size(self, shares: np.ndarray, counts: np.ndarray, *, reserved: int = 0) -> int:
        """Rows for the balanced regimes (``counts``): ``reserved`` rows of sparse regimes are
        kept besides them, and come out of an int ``size``."""
        size = self.size
        if isinstance(size, numbers.Integral) and not isinstance(size, bool):
            if size < 1:
                raise ValueError(f"size must be a positive number of rows, got {size}")
            return max(int(size) - reserved, 0)
        if isinstance(size, str) and size == "same":
            return int(counts.sum())
        if isinstance(size, str) and size == "keep_rare":
            return _keep_rare_size(shares, counts)
        raise ValueError(f"size must be a positive int or one of {_SIZE_RULES}, got {size!r}")


def _sessions_per_regime(codes: np.ndarray, sessions: Any, counts: np.ndarray) -> np.ndarray:
    """Distinct sessions each regime's rows fall on (its row count when ``sessions`` is None)."""
    if sessions is None:
        return counts
    check_consistent_length(codes, sessions)
    session_codes = pd.factorize(np.asarray(sessions))[0]
    pairs = pd.DataFrame({"regime": codes, "session": session_codes}).drop_duplicates()
    return np.bincount(pairs["regime"].to_numpy(), minlength=counts.size)


def _take_labels(regimes: Any, indices: np.ndarray) -> Any:
    """``regimes`` at ``indices``: a pandas object keeps its type and index, anything else is an array."""
    if isinstance(regimes, pd.Series | pd.Index | pd.Categorical):
        return _safe_indexing(regimes, indices) if isinstance(regimes, pd.Series) else regimes[indices]
    return np.asarray(regimes)[indices]
