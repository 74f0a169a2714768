"""The VIX, and the fallback used where it is missing.

Real VIX history starts later than most price histories (the bundled series only covers
2014-2018) and has gaps. Where it is missing, Stormwatch reads the market proxy's realised
volatility in VIX units instead, so regime labels and macro features keep working; every
consumer marks which values are the fallback.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Sessions of market-proxy returns behind the fallback.
FALLBACK_SESSIONS = 21
#: VIX ~ this x realised volatility: 1.1 is the long-run ratio of implied to realised volatility
#: (the variance risk premium), so the fallback reads in VIX units.
FALLBACK_SCALE = 1.1
#: The fallback in words, for reports and the data snapshot that records it.
FALLBACK_DESCRIPTION = (f"{FALLBACK_SCALE:g} x the market proxy's {FALLBACK_SESSIONS}-session realised "
                        "volatility")


def realised_vix(
    proxy_close: pd.Series, sessions: int = FALLBACK_SESSIONS, scale: float = FALLBACK_SCALE
) -> pd.Series:
    """The proxy's trailing realised volatility, annualised, in VIX units (percent x scale).

    Causal: the value at t uses closes up to t. NaN until ``sessions`` returns exist.
    """
    returns = np.log(proxy_close.astype("float64")).diff()
    return (returns.rolling(sessions).std() * np.sqrt(252.0) * 100.0 * scale).rename("vix")


def vix_with_fallback(
    vix: pd.Series, proxy_close: pd.Series, sessions: int = FALLBACK_SESSIONS, scale: float = FALLBACK_SCALE
) -> tuple[pd.Series, pd.Series]:
    """The VIX on the proxy's sessions, with the realised fallback where it is missing.

    Returns the series and a boolean series that is True where the fallback was used.
    """
    observed = vix.reindex(proxy_close.index).astype("float64")
    missing = observed.isna()
    filled = observed.where(~missing, realised_vix(proxy_close, sessions, scale))
    return filled.rename("vix"), missing.rename("vix_is_fallback")
