"""The VIX, and the fallback used where it is missing.

Real VIX history starts later than most price histories (the bundled series only covers
2014-2018) and a folder of the user's own files often has none. Where it is missing, Stormwatch
forecasts the VIX from the market proxy's realised volatility instead, so regime labels and
macro features keep working; every consumer marks which values are the fallback.

The forecast is a HAR-type map (Corsi's heterogeneous autoregressive model of realised
volatility: a daily, a weekly and a monthly component), fitted by least squares on real
overlapping history: the bundled S&P 500 (``arch.data.sp500``) and VIX (``arch.data.vix``),
fitted on 2014-01-03 to 2016-12-29 (754 sessions) and measured on 2016-12-30 to 2018-12-31
(503 held-out sessions, ``tests/market/test_vix_fallback.py``). Held out, it misses the VIX by
1.65 points on average (RMSE 2.19, bias +0.66) and gives the same regime label as the real VIX
on 92.4% of sessions; an affine map of 21-session volatility alone misses by 1.93 (91.8%), and
the former 1.1 x realised volatility by 3.95 (bias -2.29; 87.1%).

The map is one configuration setting, ``market.vix_fallback`` (:class:`VixFallback`), read by
the features and the regime labeler alike, so the two never disagree about what the VIX was.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

#: Sessions of the weekly component (the HAR model's fixed form, not a fitted number).
WEEKLY_SESSIONS = 5
_ANNUAL_PERCENT = np.sqrt(252.0) * 100.0


class VixFallback(BaseModel):
    """VIX ~ ``intercept + daily x |r_t| + weekly x vol_5 + monthly x vol_sessions``, each
    volatility annualised in percent (VIX units): the ``market.vix_fallback`` setting.

    The intercept carries the variance risk premium that a plain multiple of realised
    volatility misses in calm markets. The defaults are :func:`fit_fallback` on the bundled
    S&P 500 and VIX, 2014-01-03 to 2016-12-29, rounded to three decimals (held out on 2017-18:
    mean absolute error 1.65 VIX points, 92.4% regime agreement; see the module docstring).
    ``sessions`` is the monthly component's window and so the fallback's warm-up: the first
    ``sessions`` sessions of a history have no fallback.

    Examples
    --------
    >>> VixFallback().describe()  # doctest: +ELLIPSIS
    '8.751 + 0.075 x |daily return| + 0.159 x 5-session + 0.338 x 21-session realised volatility ...'
    >>> VixFallback(sessions=1)
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for VixFallback
    ...
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    intercept: float = 8.751
    daily: float = 0.075
    weekly: float = 0.159
    monthly: float = 0.338
    sessions: int = Field(21, ge=2)

    def describe(self) -> str:
        """The map in words, for the fetch's note and the data snapshot that records it."""
        return (f"{self.intercept:g} + {self.daily:g} x |daily return| + {self.weekly:g} x "
                f"{WEEKLY_SESSIONS}-session + {self.monthly:g} x {self.sessions}-session realised volatility "
                "of the market proxy (HAR map, market.vix_fallback)")


def _components(proxy_close: pd.Series, sessions: int) -> pd.DataFrame:
    returns = np.log(proxy_close.astype("float64")).diff()
    return pd.DataFrame({
        "daily": returns.abs() * _ANNUAL_PERCENT,
        "weekly": returns.rolling(WEEKLY_SESSIONS).std() * _ANNUAL_PERCENT,
        "monthly": returns.rolling(sessions).std() * _ANNUAL_PERCENT,
    })


def realised_vix(proxy_close: pd.Series, fallback: VixFallback | None = None) -> pd.Series:
    """The VIX forecast from the proxy's realised volatility (see :class:`VixFallback`; ``None``:
    its defaults, the shipped calibration).

    Causal: the value at t uses closes up to t. NaN until ``max(sessions, 5)`` returns exist.
    """
    fallback = fallback or VixFallback()
    parts = _components(proxy_close, fallback.sessions)
    level = (fallback.intercept + fallback.daily * parts["daily"] + fallback.weekly * parts["weekly"]
             + fallback.monthly * parts["monthly"])
    return level.rename("vix")


def fit_fallback(proxy_close: pd.Series, vix: pd.Series, sessions: int | None = None) -> VixFallback:
    """Least-squares :class:`VixFallback` on the sessions where both the VIX and every
    component exist (how the defaults of :class:`VixFallback` were made); ``sessions`` is the
    monthly window (``None``: the default's)."""
    sessions = VixFallback().sessions if sessions is None else sessions
    data = _components(proxy_close, sessions).join(vix.rename("vix"), how="inner").dropna()
    if len(data) < 20:
        raise ValueError(f"{len(data)} sessions with both the VIX and realised volatility: too few to fit")
    design = np.column_stack([np.ones(len(data)), data["daily"], data["weekly"], data["monthly"]])
    coef = np.linalg.lstsq(design, data["vix"].to_numpy(), rcond=None)[0]
    intercept, daily, weekly, monthly = map(float, coef)
    return VixFallback(intercept=intercept, daily=daily, weekly=weekly, monthly=monthly, sessions=sessions)


def vix_with_fallback(
    vix: pd.Series, proxy_close: pd.Series, fallback: VixFallback | None = None
) -> tuple[pd.Series, pd.Series]:
    """The VIX on the proxy's sessions, with the realised fallback where it is missing.

    Returns the series and a boolean series that is True where the fallback was used.
    """
    observed = vix.reindex(proxy_close.index).astype("float64")
    missing = observed.isna()
    filled = observed.where(~missing, realised_vix(proxy_close, fallback))
    return filled.rename("vix"), missing.rename("vix_is_fallback")
