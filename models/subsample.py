"""Session-block subsampling for the zoo members that do not scale (issue 12, point 2).

A member whose configuration sets ``max_rows`` (:class:`models.config.MemberSpec`) and whose
training set has more rows than that trains on a subsample of it: whole blocks of consecutive
sessions (every row of a session, all symbols together, in the same block), drawn per regime so
that each regime keeps its share of rows, reproducibly (the same rows, the same seed and the
same settings give the same subsample). Members that scale (LightGBM, XGBoost, the logistic
regression) set no ``max_rows`` and keep every row.

Whole sessions keep what the training set's assembly guaranteed: the rows were purged against
the validation sets before balancing, and a subset of purged rows is purged; no session's
cross-section is cut in half, and rows whose label windows overlap (neighbouring sessions) stay
together or go together.
"""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state

from market.vocabulary import REGIME_NAMES
from models.reports import PerRegimeRows
from models.sampling import encode_regimes, largest_remainder

__all__ = ["RegimeSubsample", "SessionBlockSubsampler", "SubsampleReport"]


@dataclass(frozen=True)
class RegimeSubsample:
    """One regime's rows and shares before and after a subsampling (weights when given)."""

    regime: str
    rows_before: int
    rows_after: int
    share_before: float
    share_after: float
    weight_share_before: float | None = None
    weight_share_after: float | None = None


@dataclass(frozen=True)
class SubsampleReport(PerRegimeRows):
    """What a subsampling did: rows, sessions and blocks before and after, the settings used,
    and one :class:`RegimeSubsample` per regime present. ``subsampled`` is False when the set
    was within ``max_rows`` (or ``max_rows`` was None): then every row was kept."""

    subsampled: bool
    max_rows: int | None
    block_sessions: int
    seed: int | None
    rows_before: int
    rows_after: int
    sessions_before: int
    sessions_after: int
    blocks_before: int
    blocks_after: int
    regimes: tuple[RegimeSubsample, ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the run record keeps it): per-regime rows as a list."""
        out = asdict(self)
        out["regimes"] = [asdict(r) for r in self.regimes]
        return out


class SessionBlockSubsampler(BaseEstimator):
    """Pick at most ``max_rows`` rows as whole blocks of consecutive sessions, stratified by regime.

    The sessions the set holds, in time order, are cut into blocks of ``block_sessions``
    consecutive ones (the last block may be shorter); a block holds every row of its sessions.
    Each block belongs to the regime most of its rows have (ties to the earlier regime of
    :data:`market.vocabulary.REGIMES`). Each regime's quota is its share of the rows times
    ``max_rows``, rounded by the largest-remainder method (the quotas sum to ``max_rows``). Its
    blocks are walked in a seeded random order, and a block is kept when it still fits in the
    quota. What the regimes leave of the budget then goes, a block at a time while one fits, to
    the regime whose distance from its quota the block shrinks most or grows least (ties: the
    regime furthest below its quota relative to it, so that a rare regime whose quota is smaller
    than its blocks still gets one). So the subsample never exceeds ``max_rows`` and falls short
    of it by less than the smallest block left out, each regime is within about one of its
    blocks of its quota, and (blocks being mostly of one regime) each regime keeps its share of
    the rows. A set of at most ``max_rows`` rows is kept whole.

    Parameters
    ----------
    max_rows : int or None, default=None
        The most rows to keep; None keeps every row.
    block_sessions : int, default=5
        Consecutive sessions per block (5: the label horizon, one trading week).
    random_state : int, RandomState instance or None, default=None
        Seeds the order in which each regime's blocks are drawn: the same seed, the same rows.

    Attributes
    ----------
    report_ : SubsampleReport
        Rows, sessions and blocks before and after, per-regime rows and shares.

    See Also
    --------
    models.sampling.RegimeBalancedSampler : balances the training set before any subsampling.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from models.subsample import SessionBlockSubsampler
    >>> sessions = pd.bdate_range("2020-01-01", periods=200)
    >>> dates = np.repeat(sessions, 50)  # 50 symbols a session: 10,000 rows
    >>> regimes = np.where(dates < sessions[40], "crash", "normal")
    >>> subsampler = SessionBlockSubsampler(max_rows=3000, block_sessions=5, random_state=0)
    >>> kept = subsampler.sample_indices(dates, regimes)
    >>> len(kept), subsampler.report_.blocks_after, subsampler.report_.blocks_before
    (3000, 12, 40)
    >>> subsampler.report_["crash"].rows_after, subsampler.report_["normal"].rows_after
    (500, 2500)
    >>> SessionBlockSubsampler(max_rows=20000).sample_indices(dates, regimes).size  # within budget: all
    10000
    """

    def __init__(self, *, max_rows=None, block_sessions=5, random_state=None):
        self.max_rows = max_rows
        self.block_sessions = block_sessions
        self.random_state = random_state

    def sample_indices(self, dates: Any, regimes: Any, *, sample_weight: Any = None) -> np.ndarray:
        """Positional indices (ascending) of the rows kept. Sets ``report_``.

        Parameters
        ----------
        dates : array-like of shape (n_samples,)
            Each row's session (anything :class:`pandas.DatetimeIndex` reads).
        regimes : array-like of shape (n_samples,)
            Each row's regime (names or :class:`~market.vocabulary.Regime` members).
        sample_weight : array-like of shape (n_samples,), default=None
            Only reported (each regime's share of the weight before and after); the caller takes
            the kept rows' weights with the same indices.

        Returns
        -------
        indices : ndarray of shape (report_.rows_after,)
            ``np.arange(n_samples)`` when the set is within ``max_rows``.
        """
        max_rows, block = self._validated()
        days = pd.DatetimeIndex(dates).asi8
        codes = encode_regimes(regimes)
        n = codes.size
        if days.size != n:
            raise ValueError(f"dates has {days.size} rows but regimes has {n}")
        weights = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        if weights is not None and weights.shape != (n,):
            raise ValueError(f"sample_weight has shape {weights.shape}, expected ({n},)")
        sessions, session_of_row = np.unique(days, return_inverse=True)
        block_of_row = session_of_row // block
        n_blocks = int(block_of_row.max()) + 1 if n else 0

        if max_rows is None or n <= max_rows:
            kept = np.arange(n, dtype=np.intp)
            self.report_ = self._report(codes, weights, kept, subsampled=False, sessions=len(sessions),
                                        sessions_after=len(sessions), blocks=n_blocks, blocks_after=n_blocks)
            return kept

        n_regimes = len(REGIME_NAMES)
        per_block = np.bincount(block_of_row * n_regimes + codes, minlength=n_blocks * n_regimes)
        per_block = per_block.reshape(n_blocks, n_regimes)
        block_rows = per_block.sum(axis=1)
        stratum = per_block.argmax(axis=1)  # the regime most of a block's rows have; ties: the earlier one
        stratum_rows = np.bincount(stratum, weights=block_rows, minlength=n_regimes)
        quotas = largest_remainder(stratum_rows / stratum_rows.sum(), max_rows)

        rng = check_random_state(self.random_state)
        chosen = np.zeros(n_blocks, dtype=bool)
        orders, taken = [], np.zeros(n_regimes, dtype=np.int64)
        for code in range(n_regimes):  # in REGIMES order, one permutation each: reproducible
            order = rng.permutation(np.flatnonzero(stratum == code))
            orders.append(order)
            left = int(quotas[code])
            for b in order:
                if block_rows[b] <= left:
                    chosen[b] = True
                    left -= int(block_rows[b])
            taken[code] = quotas[code] - left
        _top_up(chosen, orders, block_rows, quotas, taken, left=max_rows - int(taken.sum()))
        kept = np.flatnonzero(chosen[block_of_row]).astype(np.intp)
        self.report_ = self._report(codes, weights, kept, subsampled=True, sessions=len(sessions),
                                    sessions_after=int(np.unique(session_of_row[kept]).size),
                                    blocks=n_blocks, blocks_after=int(chosen.sum()))
        return kept

    def _validated(self) -> tuple[int | None, int]:
        max_rows, block = self.max_rows, self.block_sessions
        if max_rows is not None and (not isinstance(max_rows, numbers.Integral) or isinstance(max_rows, bool)
                                     or max_rows < 1):
            raise ValueError(f"max_rows must be a positive number of rows or None, got {max_rows!r}")
        if not isinstance(block, numbers.Integral) or isinstance(block, bool) or block < 1:
            raise ValueError(f"block_sessions must be a positive number of sessions, got {block!r}")
        return (None if max_rows is None else int(max_rows)), int(block)

    def _report(self, codes: np.ndarray, weights: np.ndarray | None, kept: np.ndarray, *, subsampled: bool,
                sessions: int, sessions_after: int, blocks: int, blocks_after: int) -> SubsampleReport:
        n_regimes = len(REGIME_NAMES)
        before = np.bincount(codes, minlength=n_regimes)
        after = np.bincount(codes[kept], minlength=n_regimes)
        w_before = w_after = None
        if weights is not None:
            w_before = np.bincount(codes, weights=weights, minlength=n_regimes)
            w_after = np.bincount(codes[kept], weights=weights[kept], minlength=n_regimes)
        n, m = max(int(before.sum()), 1), max(int(after.sum()), 1)

        def share(values: np.ndarray | None, i: int) -> float | None:
            if values is None:
                return None
            total = float(values.sum())
            return float(values[i] / total) if total > 0 else 0.0

        seed = self.random_state if isinstance(self.random_state, numbers.Integral) else None
        return SubsampleReport(
            subsampled=subsampled, max_rows=self.max_rows, block_sessions=int(self.block_sessions),
            seed=None if seed is None else int(seed), rows_before=int(before.sum()),
            rows_after=int(after.sum()),
            sessions_before=sessions, sessions_after=sessions_after, blocks_before=blocks,
            blocks_after=blocks_after,
            regimes=tuple(
                RegimeSubsample(regime=name, rows_before=int(before[i]), rows_after=int(after[i]),
                                share_before=float(before[i] / n), share_after=float(after[i] / m),
                                weight_share_before=share(w_before, i), weight_share_after=share(w_after, i))
                for i, name in enumerate(REGIME_NAMES) if before[i] > 0
            ),
        )


def _top_up(chosen: np.ndarray, orders: list[np.ndarray], block_rows: np.ndarray, quotas: np.ndarray,
            taken: np.ndarray, *, left: int) -> None:
    """Give what the regimes left of the budget, a block at a time while one fits, to the regime
    whose distance from its quota the block shrinks most or grows least (ties: the regime
    furthest below its quota relative to it, then the earlier regime, then its draw order).
    Updates ``chosen`` and ``taken`` in place."""
    while left > 0:
        best: tuple[float, float, int, int] | None = None
        pick = -1
        for code, order in enumerate(orders):
            deficit = float(quotas[code] - taken[code])
            for rank, b in enumerate(order):
                if chosen[b] or block_rows[b] > left:
                    continue
                worse = abs(deficit - block_rows[b]) - abs(deficit)
                key = (worse, -deficit / max(int(quotas[code]), 1), code, rank)
                if best is None or key < best:
                    best, pick = key, int(b)
        if best is None:
            return
        chosen[pick] = True
        taken[best[2]] += block_rows[pick]
        left -= int(block_rows[pick])
