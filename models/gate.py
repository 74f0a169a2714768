"""The promotion gate (SPEC.md module 10): a challenger replaces the champion only if it passes
every criterion, each reported with its value, threshold and verdict.

Both models are scored on the same rows, rows neither has trained on: the retraining run's
validation sets, the held-out tail of each archive event (fixed, never trained on by any
version) and of the rolling window (a version's window ends where its own held-out tail begins,
so last week's champion never trained on this week's tail either).

Criteria (thresholds from ``models.gate``):

* **overall log loss** not worse than the champion's by more than ``overall_margin``;
* **not significantly worse**: a one-sided Diebold-Mariano test on per-session mean loss
  differences with Newey-West (HAC) errors, lags at least the label horizon, since overlapping
  labels make neighbouring sessions' losses correlated (``notes/methods.md`` section 4); it
  fails when the challenger is worse at ``significance_alpha``;
* **per regime**: accuracy may not drop by more than ``regime_margin`` (``crash_margin`` in a
  crash); a regime with fewer than ``min_regime_samples`` rows behind either number is
  *untested*: reported, never counted as passed, and not blocking;
* **calibration**: expected calibration error not worse by more than
  ``max_calibration_worsening``;
* **stability**: the spread of accuracy across date-block folds of the validation sessions no
  more than ``max_seed_std`` above the champion's.

The first model, with no champion, must clear the absolute floors instead (``floor_*``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from market.vocabulary import REGIMES, Regime
from models.config import GateConfig

Verdict = Literal["pass", "fail", "untested"]


@dataclass(frozen=True)
class Criterion:
    """One criterion's value, threshold and verdict, in words a reader can check."""

    name: str
    value: float
    threshold: float
    verdict: Verdict
    detail: str


@dataclass(frozen=True)
class GateDecision:
    """The gate's answer: promote or not, and every criterion behind it."""

    promote: bool
    first_model: bool
    criteria: tuple[Criterion, ...]
    rows: int
    sessions: int
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def reasons(self) -> list[str]:
        """The failed criteria, one line each (empty when promoted)."""
        return [f"{c.name}: {c.detail}" for c in self.criteria if c.verdict == "fail"]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([c.__dict__ for c in self.criteria])


def log_loss_per_row(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    q = np.clip(np.asarray(p, dtype=np.float64), 1e-15, 1 - 1e-15)
    return -(y * np.log(q) + (1 - y) * np.log(1 - q))


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Mean |observed rate - mean predicted probability| over equal-width probability bins,
    weighted by the bins' row counts."""
    y, p = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
    which = np.minimum((p * bins).astype(np.int64), bins - 1)
    total = 0.0
    for b in np.unique(which):
        rows = which == b
        total += rows.sum() * abs(y[rows].mean() - p[rows].mean())
    return float(total / len(y))


def diebold_mariano(loss_difference: pd.Series, lags: int) -> tuple[float, float]:
    """One-sided Diebold-Mariano test that the mean of ``loss_difference`` (challenger minus
    champion, one value per session) is above zero, i.e. that the challenger is worse.

    The HAC variance is the Newey-West estimate with ``lags`` Bartlett-weighted autocovariances,
    as ``statsmodels``' ``OLS(d, 1).fit(cov_type="HAC")`` computes it. Returns ``(statistic,
    p_value)``; the statistic is Student-t with ``n - 1`` degrees of freedom under the null (the
    Harvey-Leybourne-Newbold small-sample reading).
    """
    import statsmodels.api as sm

    d = np.asarray(loss_difference, dtype=np.float64)
    if len(d) < max(10, 2 * lags):
        return float("nan"), float("nan")
    fit = sm.OLS(d, np.ones_like(d)).fit(cov_type="HAC", cov_kwds={"maxlags": lags})
    se = float(fit.bse[0])
    if se == 0:
        return float("nan"), float("nan")
    statistic = float(fit.params[0]) / se
    return statistic, float(stats.t.sf(statistic, df=len(d) - 1))


def _verdict(passed: bool, rows: int | None = None, minimum: int = 0) -> Verdict:
    """``untested`` when fewer than ``minimum`` rows stand behind the number, else pass/fail."""
    if rows is not None and rows < minimum:
        return "untested"
    return "pass" if passed else "fail"


def _accuracy(y: np.ndarray, p: np.ndarray) -> float:
    return float(((p > 0.5).astype(np.int64) == y).mean()) if len(y) else float("nan")


def _fold_accuracies(y: np.ndarray, p: np.ndarray, dates: np.ndarray, folds: int) -> np.ndarray:
    days = np.unique(dates)
    blocks = np.array_split(days, min(folds, len(days)))
    out = []
    for block in blocks:
        rows = np.isin(dates, block)
        if rows.any():
            out.append(_accuracy(y[rows], p[rows]))
    return np.array(out)


class PromotionGate:
    """Decides whether a challenger replaces the champion, on the same rows.

    Parameters
    ----------
    config : GateConfig
        The thresholds (``models.gate``).
    horizon : int
        The label horizon in sessions: the least number of HAC lags.
    folds : int
        Date-block folds of the validation sessions for the stability criterion.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> dates = np.repeat(pd.bdate_range("2024-01-01", periods=300).to_numpy(), 10)
    >>> y = rng.integers(0, 2, len(dates))
    >>> regimes = np.where(np.arange(len(dates)) % 3 == 0, "crash", "normal")
    >>> champion = np.clip(0.5 + 0.1 * (2 * y - 1) + rng.normal(0, 0.1, len(y)), 0.01, 0.99)
    >>> worse = np.where(regimes == "crash", 1 - champion, champion)  # wrong-signed in crashes
    >>> decision = PromotionGate(GateConfig(), horizon=5).decide(worse, y, regimes, dates, champion=champion)
    >>> decision.promote, [c.name for c in decision.criteria if c.verdict == "fail"][:2]
    (False, ['overall log loss', 'not significantly worse'])
    """

    def __init__(self, config: GateConfig, *, horizon: int = 5, folds: int = 5) -> None:
        self.config = config
        self.horizon = horizon
        self.folds = folds

    def decide(
        self,
        challenger: Any,
        y_true: Any,
        regimes: Any,
        dates: Any,
        *,
        champion: Any = None,
    ) -> GateDecision:
        """The decision for ``challenger``'s probabilities of class 1 against ``champion``'s
        (``None``: the first model, judged against the floors) on the rows ``y_true``,
        ``regimes`` and ``dates`` describe."""
        y = np.asarray(y_true, dtype=np.int64)
        p = np.asarray(challenger, dtype=np.float64)
        reg = np.asarray(regimes).astype(str)
        days = pd.DatetimeIndex(dates).to_numpy()
        if not (len(y) == len(p) == len(reg) == len(days)) or len(y) == 0:
            raise ValueError("challenger, labels, regimes and dates need one value per row, and rows")
        if champion is None:
            criteria = self._floors(y, p, reg)
            first = True
        else:
            q = np.asarray(champion, dtype=np.float64)
            if q.shape != p.shape:
                raise ValueError("the champion must be scored on the same rows as the challenger")
            criteria = self._against(y, p, q, reg, days)
            first = False
        promote = all(c.verdict != "fail" for c in criteria)
        return GateDecision(promote=promote, first_model=first, criteria=tuple(criteria), rows=len(y),
                            sessions=len(np.unique(days)))

    # -- criteria ------------------------------------------------------------------------------

    def _regime_rows(self, reg: np.ndarray) -> list[tuple[Regime, np.ndarray]]:
        return [(r, reg == r.value) for r in REGIMES if (reg == r.value).any()]

    def _floors(self, y: np.ndarray, p: np.ndarray, reg: np.ndarray) -> list[Criterion]:
        c = self.config
        loss = float(log_loss_per_row(y, p).mean())
        accuracy = _accuracy(y, p)
        ece = expected_calibration_error(y, p)
        out = [
            Criterion("floor: overall log loss", loss, c.floor_log_loss, _verdict(loss <= c.floor_log_loss),
                      f"log loss {loss:.4f} against the floor {c.floor_log_loss:.4f} (a coin is 0.6931)"),
            Criterion("floor: overall accuracy", accuracy, c.floor_accuracy,
                      _verdict(accuracy >= c.floor_accuracy),
                      f"accuracy {accuracy:.3f} against the floor {c.floor_accuracy:.3f}"),
            Criterion("floor: calibration", ece, c.floor_calibration_error,
                      _verdict(ece <= c.floor_calibration_error),
                      f"expected calibration error {ece:.4f}, at most {c.floor_calibration_error:.4f}"),
        ]
        crash = reg == Regime.CRASH.value
        if crash.any():
            n, value, floor = int(crash.sum()), _accuracy(y[crash], p[crash]), c.floor_crash_accuracy
            verdict = _verdict(value >= floor, n, c.min_regime_samples)
            out.append(Criterion("floor: crash accuracy", value, floor, verdict,
                                 f"{value:.3f} on {n} rows against the floor {floor:.3f}"
                                 + (f"; fewer than {c.min_regime_samples} rows: untested"
                                    if verdict == "untested" else "")))
        return out

    def _against(self, y: np.ndarray, p: np.ndarray, q: np.ndarray, reg: np.ndarray,
                 days: np.ndarray) -> list[Criterion]:
        c = self.config
        lp, lq = log_loss_per_row(y, p), log_loss_per_row(y, q)
        out = [Criterion("overall log loss", float(lp.mean() - lq.mean()), c.overall_margin,
                         _verdict(lp.mean() - lq.mean() <= c.overall_margin),
                         f"challenger {lp.mean():.4f} vs champion {lq.mean():.4f} "
                         f"(may be worse by at most {c.overall_margin:.4f})")]
        per_session = pd.Series(lp - lq).groupby(days).mean()
        lags = max(self.horizon, int(math.floor(4 * (len(per_session) / 100) ** (2 / 9))))
        statistic, p_worse = diebold_mariano(per_session, lags)
        if math.isnan(p_worse):
            out.append(Criterion("not significantly worse", float("nan"), c.significance_alpha, "untested",
                                 f"{len(per_session)} sessions: too few for the test with {lags} lags"))
        else:
            out.append(Criterion(
                "not significantly worse", p_worse, c.significance_alpha,
                _verdict(p_worse >= c.significance_alpha),
                f"Diebold-Mariano on {len(per_session)} per-session loss differences, HAC lags {lags}: "
                f"t = {statistic:.2f}, one-sided p(challenger worse) = {p_worse:.3f}"))
        for regime, rows in self._regime_rows(reg):
            n = int(rows.sum())
            drop = _accuracy(y[rows], q[rows]) - _accuracy(y[rows], p[rows])
            margin = c.crash_margin if regime is Regime.CRASH else c.regime_margin
            verdict = _verdict(drop <= margin, n, c.min_regime_samples)
            out.append(Criterion(
                f"{regime.value} accuracy", drop, margin, verdict,
                f"challenger {_accuracy(y[rows], p[rows]):.3f} vs champion {_accuracy(y[rows], q[rows]):.3f} "
                f"on {n} rows (may drop by at most {margin:.3f})"
                + (f"; fewer than {c.min_regime_samples} rows: untested" if verdict == "untested" else "")))
        ep, eq = expected_calibration_error(y, p), expected_calibration_error(y, q)
        out.append(Criterion("calibration", ep - eq, c.max_calibration_worsening,
                             _verdict(ep - eq <= c.max_calibration_worsening),
                             f"expected calibration error {ep:.4f} vs champion {eq:.4f}"))
        sp = float(np.std(_fold_accuracies(y, p, days, self.folds)))
        sq = float(np.std(_fold_accuracies(y, q, days, self.folds)))
        out.append(Criterion("stability", sp - sq, c.max_seed_std, _verdict(sp - sq <= c.max_seed_std),
                             f"accuracy spread across {self.folds} date-block folds {sp:.4f} "
                             f"vs champion {sq:.4f}"))
        return out


__all__ = ["Criterion", "GateDecision", "PromotionGate", "diebold_mariano", "expected_calibration_error"]
