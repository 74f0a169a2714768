"""The feature catalogue: about 179 causal features per (symbol, session), computed vectorised.

Every feature has a name, a family, a lookback (sessions of history it needs) and a one-line
definition (``stormwatch features list``). Features are computed on wide frames (sessions x
symbols) once for the whole history: rolling statistics run in C over all symbols at once and
standard indicators come from TA-Lib, one C call per symbol. Features at session t use bars up
to and including t only.

Gaps: a symbol with no bar on a session holds NaN there. A rolling window that covers the gap is
NaN, TA-Lib indicators restart after it, and rows without a full lookback are dropped and counted
(:class:`FeatureMatrix`), never back-filled with later values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import bottleneck as bn
import numpy as np
import pandas as pd
import talib

from market import rolling
from market.panel import BarPanel
from market.vix import VixFallback, vix_with_fallback

ANNUALISE = np.sqrt(252.0)


@dataclass(frozen=True)
class FeatureSpec:
    """What a feature is, for the catalogue a user can list."""

    name: str
    family: str
    lookback: int
    definition: str


Thunk = Callable[[], np.ndarray]


def _runs(valid: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of True in ``valid``."""
    edges = np.diff(np.concatenate(([0], valid.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


def talib_wide(function: Callable[..., Any], inputs: Sequence[np.ndarray], outputs: int = 1,
               **params: Any) -> list[np.ndarray]:
    """Apply a TA-Lib function to every column of 2-D arrays, restarting after each gap.

    TA-Lib poisons everything after a NaN for recursive indicators (EMA, RSI, ADX), so each
    contiguous run of valid bars is computed on its own; its warm-up rows stay NaN.
    """
    shape = inputs[0].shape
    results = [np.full(shape, np.nan) for _ in range(outputs)]
    for j in range(shape[1]):
        columns = [np.ascontiguousarray(a[:, j], dtype="float64") for a in inputs]
        valid = np.logical_and.reduce([np.isfinite(c) for c in columns])
        for start, stop in ([(0, len(valid))] if valid.all() else _runs(valid)):
            try:
                out = function(*(c[start:stop] for c in columns), **params)
            except Exception:  # TA-Lib refuses runs shorter than its lookback
                continue
            for k, values in enumerate(out if outputs > 1 else (out,)):
                results[k][start:stop, j] = values
    return results


class _Frames:
    """Wide arrays (sessions x symbols) of the panel, and intermediates computed once and shared."""

    def __init__(self, panel: BarPanel, vix_fallback: VixFallback) -> None:
        self.p = panel
        self.vix_fallback = vix_fallback
        self.o, self.h, self.l, self.c, self.v = (
            getattr(panel, name).to_numpy(dtype="float64") for name in ("open", "high", "low", "close", "volume")
        )
        self.pc = panel.proxy["close"].to_numpy(dtype="float64")[:, None]
        self.t = np.arange(len(panel.sessions), dtype="float64")[:, None]
        self._cache: dict[tuple[Any, ...], Any] = {}

    def memo(self, key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    @cached_property
    def log_close(self) -> np.ndarray:
        return np.log(self.c)

    @cached_property
    def r1(self) -> np.ndarray:
        return rolling.diff(self.log_close)

    @cached_property
    def up(self) -> np.ndarray:
        """1 on up sessions, 0 on others, NaN without a return."""
        return np.where(np.isnan(self.r1), np.nan, (self.r1 > 0).astype("float64"))

    @cached_property
    def market_r1(self) -> np.ndarray:
        return rolling.diff(np.log(self.pc))

    def ret(self, n: int) -> np.ndarray:
        return self.memo(("ret", n), lambda: rolling.diff(self.log_close, n))

    def market_ret(self, n: int) -> np.ndarray:
        return rolling.diff(np.log(self.pc), n)

    def sma(self, n: int) -> np.ndarray:
        return self.memo(("sma", n), lambda: rolling.mean(self.c, n))

    def vol(self, n: int) -> np.ndarray:
        return self.memo(("vol", n), lambda: rolling.std(self.r1, n) * ANNUALISE)

    def mean_volume(self, n: int) -> np.ndarray:
        return self.memo(("mv", n), lambda: rolling.mean(self.v, n))

    def talib(self, name: str, inputs: str, outputs: int = 1, **params: Any) -> list[np.ndarray]:
        key = ("talib", name, inputs, tuple(sorted(params.items())))
        return self.memo(key, lambda: talib_wide(getattr(talib, name),
                                                 [getattr(self, c) for c in inputs], outputs, **params))

    def beta(self, n: int) -> np.ndarray:
        return self.memo(("beta", n), lambda: rolling.ratio(
            rolling.cov(self.r1, np.broadcast_to(self.market_r1, self.r1.shape), n),
            rolling.var(self.market_r1, n)))

    @cached_property
    def vix_and_fallback(self) -> tuple[np.ndarray, np.ndarray]:
        vix, missing = vix_with_fallback(self.p.vix, self.p.proxy["close"], self.vix_fallback)
        return vix.to_numpy(dtype="float64")[:, None], missing.to_numpy(dtype="float64")[:, None]

    @property
    def vix(self) -> np.ndarray:
        return self.vix_and_fallback[0]


class _Universe:
    """What a cross-sectional feature combines over: the whole universe's symbols and sectors.

    Per-symbol features are computed on chunks of symbols (their values do not depend on the
    other columns); cross-sectional ones gather their per-symbol input from every chunk and are
    combined here, on the same universe-wide array in the same column order as an unchunked
    computation, so the result is bit for bit the same."""

    def __init__(self, panel: BarPanel) -> None:
        groups: dict[str, list[int]] = {}
        for j, symbol in enumerate(panel.symbols):
            groups.setdefault(panel.sectors[symbol], []).append(j)
        self.sector_groups = [np.array(g) for g in groups.values()]

    def by_sector(self, x: np.ndarray) -> np.ndarray:
        """Each symbol's equal-weighted sector mean of ``x`` over members with data."""
        out = np.empty_like(x, dtype="float64")
        for members in self.sector_groups:
            block = x[:, members]
            counts = np.sum(np.isfinite(block), axis=1, keepdims=True)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[:, members] = np.nansum(block, axis=1, keepdims=True) / np.where(counts, counts, np.nan)
        return out

    def sector_rank(self, x: np.ndarray) -> np.ndarray:
        out = np.empty_like(x, dtype="float64")
        for members in self.sector_groups:
            out[:, members] = rolling.cross_rank(x[:, members])
        return out

    @staticmethod
    def cross_mean(x: np.ndarray) -> np.ndarray:
        counts = np.sum(np.isfinite(x), axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.nansum(x, axis=1, keepdims=True) / np.where(counts, counts, np.nan)

    @staticmethod
    def cross_std(x: np.ndarray) -> np.ndarray:
        return pd.DataFrame(x).std(axis=1).to_numpy()[:, None]


Across = Callable[[np.ndarray, _Universe], np.ndarray]


@dataclass(frozen=True)
class _Feature:
    """A feature's definition. ``compute`` reads one chunk of symbols' bars; a cross-sectional
    feature also has ``across``, which combines ``compute``'s values of every symbol per session
    (``history``: over every session, for a rolling window of the combined series, else only
    on the sessions asked for)."""

    spec: FeatureSpec
    compute: Thunk
    across: Across | None = None
    history: bool = False


#: ``storm_63``: the regime labeler's default crash rules (``monitors.regimes``: a VIX above 35, a
#: fall of 15% from the highest close of the 10 sessions before), remembered for its recovery
#: exit of 63 sessions. Fixed here like every feature's constants: ``market`` reads no other room's
#: configuration, and a feature's meaning must not change with the labeler's thresholds.
STORM_VIX_ABOVE = 35.0
STORM_FALL = 0.15
STORM_FALL_SESSIONS = 10
STORM_MEMORY_SESSIONS = 63


def _storm(close: np.ndarray, vix: np.ndarray) -> np.ndarray:
    """1.0 in a storm or its aftermath, 0.0 outside, NaN without the history (see ``storm_63``).

    Why a feature of its own: a recovery's VIX comes back down to where volatile spells sit, so the
    VIX alone reads it as one of them; the market's fall before it is still in memory."""
    prior_high = rolling.shift(rolling.maximum(close, STORM_FALL_SESSIONS), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        fell = np.where(np.isnan(prior_high) | np.isnan(close), np.nan,
                        (close / prior_high - 1.0 <= -STORM_FALL).astype("float64"))
        high_vix = np.where(np.isnan(vix), np.nan, (vix > STORM_VIX_ABOVE).astype("float64"))
    return np.maximum(rolling.maximum(fell, STORM_MEMORY_SESSIONS), high_vix)


def _catalogue(f: _Frames, fallback_sessions: int) -> list[_Feature]:  # noqa: C901 - one flat list reads best
    """Every feature, in catalogue order. ``f`` is only touched when a thunk is called, so the
    catalogue can be listed without data (``_catalogue(None, sessions)``). The VIX features'
    lookbacks include the fallback's warm-up of ``fallback_sessions`` (``market.vix_fallback``)."""
    out: list[_Feature] = []
    R = rolling  # noqa: N806 - short alias keeps the definitions on one line

    def add(name: str, family: str, lookback: int, definition: str, thunk: Thunk,
            across: Across | None = None, history: bool = False) -> None:
        out.append(_Feature(FeatureSpec(name, family, lookback, definition), thunk, across, history))

    U = _Universe  # noqa: N806 - the cross-sectional combines, read like R above

    # -- returns -----------------------------------------------------------------------------
    for n in (1, 2, 3, 5, 10, 20, 40, 60, 120, 250):
        add(f"ret_{n}", "returns", n, f"log return over the last {n} sessions", lambda n=n: f.ret(n))
    for k in range(1, 6):
        add(f"ret_1_lag{k}", "returns", k + 1, f"the daily log return {k} sessions ago",
            lambda k=k: R.shift(f.r1, k))
    add("ret_250_skip_20", "returns", 250, "12-1 momentum: log return over 250 sessions minus the last 20",
        lambda: f.ret(250) - f.ret(20))
    add("mom_accel", "returns", 60, "momentum acceleration: ret_20 minus a third of ret_60",
        lambda: f.ret(20) - f.ret(60) / 3.0)
    for n in (60, 250):
        add(f"sharpe_{n}", "returns", n + 1, f"mean over std of daily log returns over {n} sessions",
            lambda n=n: R.ratio(R.mean(f.r1, n), R.std(f.r1, n)))

    # -- volatility ---------------------------------------------------------------------------
    for n in (5, 10, 20, 60, 120):
        add(f"vol_{n}", "volatility", n + 1, f"annualised std of daily log returns over {n} sessions",
            lambda n=n: f.vol(n))
    hl2 = lambda: f.memo(("hl2",), lambda: np.log(f.h / f.l) ** 2)  # noqa: E731
    co2 = lambda: f.memo(("co2",), lambda: np.log(f.c / f.o) ** 2)  # noqa: E731
    for n in (10, 20, 60):
        add(f"parkinson_{n}", "volatility", n, f"Parkinson high-low volatility over {n} sessions, annualised",
            lambda n=n: np.sqrt(np.maximum(R.mean(hl2(), n), 0) / (4 * np.log(2))) * ANNUALISE)
    for n in (10, 20, 60):
        add(f"garman_klass_{n}", "volatility", n, f"Garman-Klass OHLC volatility over {n} sessions, annualised",
            lambda n=n: np.sqrt(np.maximum(R.mean(0.5 * hl2() - (2 * np.log(2) - 1) * co2(), n), 0))
            * ANNUALISE)
    for short, long in ((5, 20), (20, 60), (5, 60)):
        add(f"vol_ratio_{short}_{long}", "volatility", long + 1, f"vol_{short} / vol_{long}",
            lambda s=short, lg=long: R.ratio(f.vol(s), f.vol(lg)))
    for n in (5, 14):
        add(f"atr_{n}_pct", "volatility", n + 1, f"TA-Lib ATR({n}) / close",
            lambda n=n: f.talib("ATR", "hlc", timeperiod=n)[0] / f.c)
    for n in (20, 60):
        add(f"downside_vol_{n}", "volatility", n + 1,
            f"annualised root mean square of negative daily returns over {n} sessions",
            lambda n=n: np.sqrt(np.maximum(R.mean(np.minimum(f.r1, 0) ** 2, n), 0)) * ANNUALISE)
    for n in (20, 60):
        add(f"skew_{n}", "volatility", n + 1, f"skewness of daily log returns over {n} sessions",
            lambda n=n: R.skew(f.r1, n))
    add("kurt_60", "volatility", 61, "excess kurtosis of daily log returns over 60 sessions",
        lambda: R.kurt(f.r1, 60))

    # -- momentum oscillators (TA-Lib) --------------------------------------------------------
    for n in (2, 6, 14, 28):
        add(f"rsi_{n}", "momentum", n + 1, f"TA-Lib RSI({n})", lambda n=n: f.talib("RSI", "c", timeperiod=n)[0])
    macd = lambda: f.talib("MACD", "c", 3, fastperiod=12, slowperiod=26, signalperiod=9)  # noqa: E731
    add("macd", "momentum", 34, "TA-Lib MACD(12, 26) line / close", lambda: macd()[0] / f.c)
    add("macd_signal", "momentum", 34, "TA-Lib MACD signal(9) / close", lambda: macd()[1] / f.c)
    add("macd_hist", "momentum", 34, "TA-Lib MACD histogram / close", lambda: macd()[2] / f.c)
    stoch = lambda: f.talib("STOCH", "hlc", 2, fastk_period=14, slowk_period=3, slowd_period=3)  # noqa: E731
    add("stoch_k", "momentum", 16, "TA-Lib slow stochastic %K(14, 3)", lambda: stoch()[0])
    add("stoch_d", "momentum", 18, "TA-Lib slow stochastic %D(14, 3, 3)", lambda: stoch()[1])
    add("willr_14", "momentum", 14, "TA-Lib Williams %R(14)", lambda: f.talib("WILLR", "hlc", timeperiod=14)[0])
    for n in (14, 20):
        add(f"cci_{n}", "momentum", n, f"TA-Lib CCI({n})", lambda n=n: f.talib("CCI", "hlc", timeperiod=n)[0])
    add("mfi_14", "momentum", 15, "TA-Lib money flow index(14)", lambda: f.talib("MFI", "hlcv", timeperiod=14)[0])
    add("ultosc", "momentum", 29, "TA-Lib ultimate oscillator(7, 14, 28)", lambda: f.talib("ULTOSC", "hlc")[0])
    add("cmo_14", "momentum", 15, "TA-Lib Chande momentum oscillator(14)",
        lambda: f.talib("CMO", "c", timeperiod=14)[0])
    add("ppo", "momentum", 26, "TA-Lib percentage price oscillator(12, 26)",
        lambda: f.talib("PPO", "c", fastperiod=12, slowperiod=26)[0])
    add("trix_15", "momentum", 44, "TA-Lib TRIX(15): rate of change of a triple EMA",
        lambda: f.talib("TRIX", "c", timeperiod=15)[0])
    add("bop", "momentum", 1, "TA-Lib balance of power: (close - open) / (high - low)",
        lambda: f.talib("BOP", "ohlc")[0])

    # -- trend --------------------------------------------------------------------------------
    for n in (5, 10, 20, 50, 100, 200):
        add(f"dist_sma_{n}", "trend", n, f"close / SMA({n}) - 1", lambda n=n: f.c / f.sma(n) - 1)
    for n in (12, 26, 50):
        add(f"dist_ema_{n}", "trend", n, f"close / TA-Lib EMA({n}) - 1",
            lambda n=n: f.c / f.talib("EMA", "c", timeperiod=n)[0] - 1)
    add("dist_kama_30", "trend", 31, "close / TA-Lib KAMA(30) - 1",
        lambda: f.c / f.talib("KAMA", "c", timeperiod=30)[0] - 1)
    for n in (10, 20, 50, 200):
        add(f"sma_slope_{n}", "trend", n + 5, f"SMA({n}) / its value 5 sessions earlier - 1",
            lambda n=n: f.sma(n) / R.shift(f.sma(n), 5) - 1)
    for short, long in ((5, 20), (20, 50), (50, 200)):
        add(f"sma_cross_{short}_{long}", "trend", long, f"SMA({short}) / SMA({long}) - 1",
            lambda s=short, lg=long: f.sma(s) / f.sma(lg) - 1)
    add("adx_14", "trend", 28, "TA-Lib ADX(14)", lambda: f.talib("ADX", "hlc", timeperiod=14)[0])
    add("plus_di_14", "trend", 15, "TA-Lib +DI(14)", lambda: f.talib("PLUS_DI", "hlc", timeperiod=14)[0])
    add("minus_di_14", "trend", 15, "TA-Lib -DI(14)", lambda: f.talib("MINUS_DI", "hlc", timeperiod=14)[0])
    aroon = lambda: f.talib("AROON", "hl", 2, timeperiod=25)  # noqa: E731
    add("aroon_down_25", "trend", 26, "TA-Lib Aroon down(25)", lambda: aroon()[0])
    add("aroon_up_25", "trend", 26, "TA-Lib Aroon up(25)", lambda: aroon()[1])
    add("aroon_osc_25", "trend", 26, "TA-Lib Aroon oscillator(25)",
        lambda: f.talib("AROONOSC", "hl", timeperiod=25)[0])
    for n in (20, 60):
        add(f"linreg_slope_{n}", "trend", n, f"TA-Lib linear-regression slope of log close over {n} sessions",
            lambda n=n: talib_wide(talib.LINEARREG_SLOPE, [f.log_close], timeperiod=n)[0])
    for n in (20, 60):
        add(f"trend_r2_{n}", "trend", n, f"R-squared of log close on time over {n} sessions",
            lambda n=n: talib_wide(talib.CORREL, [f.log_close, np.broadcast_to(f.t, f.c.shape)],
                                   timeperiod=n)[0] ** 2)
    band = lambda: f.memo(("bstd20",), lambda: R.std(f.c, 20, ddof=0))  # noqa: E731
    add("bb_pctb_20", "trend", 20, "Bollinger %B(20, 2): position of close within the bands",
        lambda: R.ratio(f.c - (f.sma(20) - 2 * band()), 4 * band()))
    add("bb_width_20", "trend", 20, "Bollinger bandwidth(20, 2): band width / SMA(20)",
        lambda: 4 * band() / f.sma(20))
    high_252 = lambda: f.memo(("high252",), lambda: R.maximum(f.h, 252))  # noqa: E731
    add("dist_high_252", "trend", 252, "close / highest high of 252 sessions - 1", lambda: f.c / high_252() - 1)
    add("dist_low_252", "trend", 252, "close / lowest low of 252 sessions - 1",
        lambda: f.c / R.minimum(f.l, 252) - 1)
    add("since_high_252", "trend", 252, "sessions since the 252-session high, / 252",
        lambda: bn.move_argmax(f.h, 252, min_count=252, axis=0) / 252.0)
    add("dist_vwap_20", "trend", 20, "close / 20-session volume-weighted average close - 1",
        lambda: f.c / R.ratio(R.total(f.c * f.v, 20), R.total(f.v, 20)) - 1)

    # -- range and candle shape ---------------------------------------------------------------
    range_pct = lambda: f.memo(("range",), lambda: (f.h - f.l) / f.c)  # noqa: E731
    clv = lambda: f.memo(("clv",), lambda: np.where(f.h > f.l, R.ratio(f.c - f.l, f.h - f.l),  # noqa: E731
                                                   np.where(np.isnan(f.c), np.nan, 0.5)))
    body = lambda: f.memo(("body",), lambda: f.c / f.o - 1)  # noqa: E731
    add("range_pct", "range", 1, "(high - low) / close", range_pct)
    add("body", "range", 1, "close / open - 1", body)
    add("upper_shadow", "range", 1, "(high - max(open, close)) / close", lambda: (f.h - np.maximum(f.o, f.c)) / f.c)
    add("lower_shadow", "range", 1, "(min(open, close) - low) / close", lambda: (np.minimum(f.o, f.c) - f.l) / f.c)
    add("clv", "range", 1, "close location value: (close - low) / (high - low), 0.5 when high = low", clv)
    add("gap", "range", 2, "open / previous close - 1", lambda: f.o / R.shift(f.c, 1) - 1)
    for n in (5, 20):
        add(f"range_mean_{n}", "range", n, f"mean of range_pct over {n} sessions",
            lambda n=n: R.mean(range_pct(), n))
    add("range_z_20", "range", 20, "z-score of range_pct against its 20-session mean and std",
        lambda: R.ratio(range_pct() - R.mean(range_pct(), 20), R.std(range_pct(), 20)))
    add("body_mean_5", "range", 5, "mean of body over 5 sessions", lambda: R.mean(body(), 5))
    add("clv_mean_5", "range", 5, "mean of clv over 5 sessions", lambda: R.mean(clv(), 5))

    # -- volume -------------------------------------------------------------------------------
    log_volume = lambda: f.memo(("logv",), lambda: np.log1p(f.v))  # noqa: E731
    for n in (5, 20, 60):
        add(f"rel_volume_{n}", "volume", n, f"volume / mean volume of {n} sessions",
            lambda n=n: R.ratio(f.v, f.mean_volume(n)))
    add("volume_z_20", "volume", 20, "z-score of log volume over 20 sessions",
        lambda: R.ratio(log_volume() - R.mean(log_volume(), 20), R.std(log_volume(), 20)))
    for n in (10, 20):
        add(f"obv_slope_{n}", "volume", max(n, 20) + 1,
            f"change of TA-Lib OBV over {n} sessions / ({n} x mean volume of 20 sessions)",
            lambda n=n: R.ratio(R.diff(f.talib("OBV", "cv")[0], n), f.mean_volume(20) * n))
    for n in (10, 20):
        add(f"pv_corr_{n}", "volume", n + 1, f"correlation of daily return and log volume change over {n} sessions",
            lambda n=n: R.corr(f.r1, R.diff(log_volume()), n))
    # Liquidity as ratios of the symbol's own history: a later dividend multiplies every earlier
    # back-adjusted price by one factor, which cancels, so the value at t never depends on it.
    add("rel_dollar_volume_20", "volume", 252, "log of mean close x volume over 20 sessions / over 252 sessions",
        lambda: np.log(R.ratio(R.mean(f.c * f.v, 20), R.mean(f.c * f.v, 252))))
    add("ad_slope_20", "volume", 21, "change of TA-Lib Chaikin A/D line over 20 sessions / (20 x mean volume)",
        lambda: R.ratio(R.diff(f.talib("AD", "hlcv")[0], 20), f.mean_volume(20) * 20))
    add("adosc", "volume", 20, "TA-Lib Chaikin A/D oscillator(3, 10) / mean volume of 20 sessions",
        lambda: R.ratio(f.talib("ADOSC", "hlcv", fastperiod=3, slowperiod=10)[0], f.mean_volume(20)))
    add("rel_amihud_20", "volume", 253,
        "log of Amihud illiquidity (mean |return| / dollar volume) over 20 sessions / over 252 sessions",
        lambda: np.log(R.ratio(R.mean(R.ratio(np.abs(f.r1), f.c * f.v), 20),
                               R.mean(R.ratio(np.abs(f.r1), f.c * f.v), 252))))
    add("up_volume_share_20", "volume", 21, "share of 20-session volume traded on up sessions",
        lambda: R.ratio(R.total(f.v * f.up, 20), R.total(f.v, 20)))

    # -- statistics ---------------------------------------------------------------------------
    for n in (20, 60):
        add(f"zscore_{n}", "statistics", n, f"(close - SMA({n})) / std of close over {n} sessions",
            lambda n=n: R.ratio(f.c - f.sma(n), R.std(f.c, n)))
    add("max_ret_20", "statistics", 21, "largest daily log return of 20 sessions", lambda: R.maximum(f.r1, 20))
    add("min_ret_20", "statistics", 21, "smallest daily log return of 20 sessions", lambda: R.minimum(f.r1, 20))
    for n in (10, 20):
        add(f"up_share_{n}", "statistics", n + 1, f"share of up sessions over {n} sessions",
            lambda n=n: R.mean(f.up, n))
    add("autocorr_20", "statistics", 22, "correlation of daily returns with the previous day's over 20 sessions",
        lambda: R.corr(f.r1, R.shift(f.r1, 1), 20))

    # -- market context (one value per session, the same for every symbol) --------------------
    for n in (1, 5, 20, 60):
        add(f"mkt_ret_{n}", "market", n, f"market proxy log return over {n} sessions", lambda n=n: f.market_ret(n))
    for n in (20, 60):
        add(f"mkt_vol_{n}", "market", n + 1, f"market proxy annualised volatility over {n} sessions",
            lambda n=n: R.std(f.market_r1, n) * ANNUALISE)
    add("mkt_drawdown_252", "market", 252, "market proxy close / its 252-session high close - 1",
        lambda: f.pc / R.maximum(f.pc, 252) - 1)
    add("mkt_dist_sma_200", "market", 200, "market proxy close / its SMA(200) - 1",
        lambda: f.pc / R.mean(f.pc, 200) - 1)
    add("mkt_rsi_14", "market", 15, "TA-Lib RSI(14) of the market proxy",
        lambda: talib_wide(talib.RSI, [f.pc], timeperiod=14)[0])
    add("breadth_up", "market", 2, "share of the universe up on the session", lambda: f.up,
        lambda x, _: U.cross_mean(x))
    for n in (50, 200):
        add(f"breadth_above_sma_{n}", "market", n, f"share of the universe above its SMA({n})",
            lambda n=n: np.where(np.isnan(f.sma(n)), np.nan, (f.c > f.sma(n)).astype("float64")),
            lambda x, _: U.cross_mean(x))
    add("dispersion_1", "market", 2, "cross-sectional std of daily returns", lambda: f.r1,
        lambda x, _: U.cross_std(x))
    add("dispersion_20", "market", 20, "cross-sectional std of 20-session returns", lambda: f.ret(20),
        lambda x, _: U.cross_std(x))

    # -- regime and macro context (VIX) -------------------------------------------------------
    fallback = fallback_sessions + 1
    add("vix_level", "macro", fallback, "VIX close (realised-volatility fallback where missing)", lambda: f.vix)
    for n in (1, 5, 20):
        add(f"vix_change_{n}", "macro", n + fallback, f"log change of the VIX over {n} sessions",
            lambda n=n: R.diff(np.log(f.vix), n))
    add("vix_pct_252", "macro", 252 + fallback, "percentile of today's VIX within its last 252 sessions",
        lambda: pd.Series(f.vix[:, 0]).rolling(252).rank(pct=True).to_numpy()[:, None])
    add("vix_z_60", "macro", 60 + fallback, "z-score of the VIX over 60 sessions",
        lambda: R.ratio(f.vix - R.mean(f.vix, 60), R.std(f.vix, 60)))
    add("storm_63", "macro", max(STORM_FALL_SESSIONS + STORM_MEMORY_SESSIONS, fallback),
        f"1 if the VIX is above {STORM_VIX_ABOVE:g} or, on any of the last {STORM_MEMORY_SESSIONS} sessions, the "
        f"market proxy closed {STORM_FALL:.0%} or more below its highest close of the {STORM_FALL_SESSIONS} "
        "sessions before; else 0: a storm and the recovery after it, whose VIX is back among calmer spells'",
        lambda: f.memo(("storm",), lambda: _storm(f.pc, f.vix)))
    add("storm_vix_63", "macro", max(STORM_FALL_SESSIONS + STORM_MEMORY_SESSIONS, fallback),
        "the VIX while storm_63 is 1, else 0: a step of it at a calm VIX ends a storm's shadow once the VIX is "
        "back among calm sessions', where storm_63 alone stays on for its whole memory",
        lambda: f.memo(("storm",), lambda: _storm(f.pc, f.vix)) * f.vix)
    add("vix_premium", "macro", fallback, "VIX / (100 x market proxy's 20-session realised volatility)",
        lambda: R.ratio(f.vix, R.std(f.market_r1, 20) * ANNUALISE * 100))
    add("vix_ratio_5_20", "macro", 20 + fallback, "5-session mean VIX / 20-session mean VIX",
        lambda: R.ratio(R.mean(f.vix, 5), R.mean(f.vix, 20)))
    add("vix_is_fallback", "macro", 0, "1 where the VIX is missing and vix_level is the realised-volatility fallback",
        lambda: f.vix_and_fallback[1])

    # -- symbol against the market ------------------------------------------------------------
    for n in (60, 252):
        add(f"beta_{n}", "market", n + 1, f"beta of daily returns on the market proxy's over {n} sessions",
            lambda n=n: f.beta(n))
    add("corr_mkt_60", "market", 61, "correlation of daily returns with the market proxy's over 60 sessions",
        lambda: R.corr(f.r1, np.broadcast_to(f.market_r1, f.r1.shape), 60))
    for n in (5, 20, 60):
        add(f"excess_ret_{n}", "market", 253, f"ret_{n} minus beta_252 x the market's {n}-session return",
            lambda n=n: f.ret(n) - f.beta(252) * f.market_ret(n))
    add("idio_vol_60", "market", 253 + 59, "annualised 60-session std of daily return minus beta_252 x market's",
        lambda: R.std(f.r1 - f.beta(252) * f.market_r1, 60) * ANNUALISE)

    # -- sector context -----------------------------------------------------------------------
    for n in (1, 5, 20):
        add(f"sector_ret_{n}", "sector", n, f"equal-weighted mean {n}-session return of the sector",
            lambda n=n: f.ret(n), lambda x, u: u.by_sector(x))
    for n in (1, 5, 20, 60):
        add(f"rel_sector_ret_{n}", "sector", n, f"ret_{n} minus the sector's mean",
            lambda n=n: f.ret(n), lambda x, u: x - u.by_sector(x))
    add("sector_vol_20", "sector", 21, "annualised 20-session volatility of the sector's mean daily return",
        lambda: f.r1, lambda x, u: R.std(u.by_sector(x), 20) * ANNUALISE, history=True)
    add("sector_breadth", "sector", 2, "share of the sector up on the session", lambda: f.up,
        lambda x, u: u.by_sector(x))

    # -- cross-sectional ranks per session ----------------------------------------------------
    ranked: list[tuple[str, int, Thunk]] = [
        ("ret_1", 1, lambda: f.ret(1)), ("ret_5", 5, lambda: f.ret(5)), ("ret_20", 20, lambda: f.ret(20)),
        ("ret_60", 60, lambda: f.ret(60)), ("ret_250", 250, lambda: f.ret(250)),
        ("vol_20", 21, lambda: f.vol(20)),
        ("rel_volume_20", 20, lambda: R.ratio(f.v, f.mean_volume(20))),
        ("rsi_14", 15, lambda: f.talib("RSI", "c", timeperiod=14)[0]),
        ("dist_sma_50", 50, lambda: f.c / f.sma(50) - 1),
        ("dist_high_252", 252, lambda: f.c / high_252() - 1),
        ("excess_ret_20", 253, lambda: f.ret(20) - f.beta(252) * f.market_ret(20)),
        ("beta_252", 253, lambda: f.beta(252)),
        ("atr_14_pct", 15, lambda: f.talib("ATR", "hlc", timeperiod=14)[0] / f.c),
        ("range_pct", 1, range_pct), ("macd_hist", 34, lambda: macd()[2] / f.c),
    ]
    for name, lookback, thunk in ranked:
        add(f"rank_{name}", "cross_section", lookback, f"percentile rank of {name} across the universe",
            thunk, lambda x, _: R.cross_rank(x))
    for name, lookback, thunk in ranked[1:4] + ranked[5:6]:
        add(f"sector_rank_{name}", "cross_section", lookback, f"percentile rank of {name} within the sector",
            thunk, lambda x, u: u.sector_rank(x))
    return out


def feature_specs(vix_fallback: VixFallback | None = None) -> tuple[FeatureSpec, ...]:
    """The catalogue under a VIX fallback (``None``: the default ``market.vix_fallback``): only
    the VIX features' lookbacks depend on it (they include its warm-up)."""
    sessions = (vix_fallback or VixFallback()).sessions
    return tuple(feature.spec for feature in _catalogue(None, sessions))  # type: ignore[arg-type]


#: The catalogue under the default VIX fallback.
FEATURES: tuple[FeatureSpec, ...] = feature_specs()
FEATURE_NAMES: tuple[str, ...] = tuple(spec.name for spec in FEATURES)
MAX_LOOKBACK: int = max(spec.lookback for spec in FEATURES)


#: Symbols whose features are computed together (``market.feature_chunk_symbols``). A chunk's
#: per-symbol intermediates (about a hundred arrays of every session x the chunk's symbols) are
#: what bounds memory, so a universe of any size needs the memory of one chunk plus the output.
DEFAULT_CHUNK_SYMBOLS = 64


@dataclass(frozen=True)
class FeatureMatrix:
    """Features of many (session, symbol) rows, and what was dropped on the way.

    ``frame`` has a ``(date, symbol)`` MultiIndex and one float32 column per feature.
    ``dropped`` counts, per symbol, the rows of the requested sessions where the symbol had a bar
    but some feature lacked its full lookback (a short history or a gap), or, computed with
    ``partial``, where every feature did.
    """

    frame: pd.DataFrame
    dropped: pd.Series

    @property
    def dropped_total(self) -> int:
        return int(self.dropped.sum())


@dataclass(frozen=True)
class FeatureBlock:
    """Features of every (session, symbol) asked for, as one dense array, before rows are kept.

    ``values`` is ``(features, sessions, symbols)``, feature-major: each feature is written
    contiguously, and the transposed view of kept rows is the column-major block pandas stores.
    The archive writes its events from one block without building the whole frame first.
    """

    values: np.ndarray
    names: tuple[str, ...]
    sessions: pd.DatetimeIndex
    symbols: pd.Index
    has_bar: np.ndarray  # (sessions, symbols): the symbol has a bar on the session
    extra: Mapping[str, np.ndarray] = field(default_factory=dict)  # (sessions, symbols) each

    def complete(self, partial: bool) -> np.ndarray:
        """(sessions, symbols): rows with a bar and every feature defined (``partial``: any)."""
        defined = np.full(self.has_bar.shape, not partial)
        for values in self.values:  # one feature at a time: no boolean copy of the whole block
            if partial:
                defined |= np.isfinite(values)
            else:
                defined &= np.isfinite(values)
        return self.has_bar & defined

    def frame(self, keep: np.ndarray) -> pd.DataFrame:
        """The rows where ``keep`` (sessions, symbols) holds, session-major, one column a feature."""
        at = np.flatnonzero(keep.reshape(-1))
        width = len(self.symbols)
        index = pd.MultiIndex.from_arrays([self.sessions[at // width], self.symbols[at % width]],
                                          names=["date", "symbol"])
        flat = self.values.reshape(len(self.names), -1)
        return pd.DataFrame(flat[:, at].T, index=index, columns=list(self.names), copy=False)

    def matrix(self, partial: bool) -> FeatureMatrix:
        complete = self.complete(partial)
        dropped = pd.Series((self.has_bar & ~complete).sum(axis=0), index=self.symbols, name="dropped")
        return FeatureMatrix(frame=self.frame(complete), dropped=dropped)


def compute_features(
    panel: BarPanel,
    sessions: pd.DatetimeIndex | None = None,
    features: Iterable[str] | None = None,
    *,
    partial: bool = False,
    vix_fallback: VixFallback | None = None,
    chunk_symbols: int = DEFAULT_CHUNK_SYMBOLS,
    mapper: ChunkMapper | None = None,
) -> FeatureMatrix:
    """Compute features of every symbol of ``panel`` on ``sessions`` (default: all).

    Everything is computed over the panel's whole history, so the rows asked for have their full
    lookback wherever the history allows; only the rows asked for are kept (as float32).

    A feature is undefined (NaN) exactly where its own window covers a missing bar or reaches
    before the symbol's first bar. By default a row is kept only when every feature is defined;
    with ``partial`` it is kept when any is, so one missing bar costs each feature only its own
    window and a short history yields rows with its long-window features undefined (for members
    that take missing values, or impute them inside their own pipeline).

    Where the panel's VIX is missing, ``vix_fallback`` (``market.vix_fallback``; ``None``: its
    defaults) stands in: pass the configured one, the regime labeler reads the same.
    ``chunk_symbols`` bounds memory and ``mapper`` runs the chunks (:func:`compute_block`); neither
    changes a value.
    """
    block = compute_block(panel, sessions, features, vix_fallback=vix_fallback, chunk_symbols=chunk_symbols,
                          mapper=mapper)
    return block.matrix(partial)


def _compute(
    panel: BarPanel,
    sessions: pd.DatetimeIndex | None,
    features: Iterable[str] | None,
    dtype: type[np.floating[Any]],
    *,
    partial: bool = False,
    vix_fallback: VixFallback | None = None,
    chunk_symbols: int = DEFAULT_CHUNK_SYMBOLS,
) -> FeatureMatrix:
    block = compute_block(panel, sessions, features, dtype=dtype, vix_fallback=vix_fallback,
                          chunk_symbols=chunk_symbols)
    return block.matrix(partial)


def symbol_chunks(count: int, size: int) -> list[slice]:
    """Consecutive slices of at most ``size`` of ``count`` symbols."""
    if size < 1:
        raise ValueError(f"chunk_symbols must be at least 1, not {size}")
    return [slice(start, min(start + size, count)) for start in range(0, count, size)]


#: Runs a function over chunks and yields the results in order: the builtin ``map`` (one chunk
#: after another, one in memory at a time) or a task runner's (``flows.chunks``: Prefect tasks,
#: on a Dask cluster when configured).
ChunkMapper = Callable[[Callable[["FeatureChunk"], "ChunkValues"], Iterable["FeatureChunk"]], Iterable["ChunkValues"]]
#: What else a chunk computes from its own bars (the labels): named arrays of every session.
ChunkExtra = Callable[[BarPanel], Mapping[str, np.ndarray]]


@dataclass(frozen=True)
class FeatureChunk:
    """One chunk's work, self-contained so that a task runner can ship it to another process."""

    panel: BarPanel  # the chunk's symbols only, every session
    columns: slice  # where its symbols sit in the universe
    take: slice | np.ndarray  # the sessions asked for, as positions
    wanted: frozenset[str] | None
    fallback: VixFallback
    dtype: Any
    extra: ChunkExtra | None = None


@dataclass(frozen=True)
class ChunkValues:
    """A chunk's results: final per-symbol features, the inputs of cross-sectional ones, extras."""

    columns: slice
    local: dict[int, np.ndarray]  # catalogue position -> (sessions asked for, symbols)
    gathered: dict[int, np.ndarray]  # catalogue position -> (sessions asked for or all, symbols)
    has_bar: np.ndarray
    extra: dict[str, np.ndarray]


def compute_chunk(chunk: FeatureChunk) -> ChunkValues:
    """Every feature of one chunk of symbols (cross-sectional ones: their per-symbol input)."""
    frames = _Frames(chunk.panel, chunk.fallback)
    local, gathered = {}, {}
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        for k, feature in enumerate(_selected(_catalogue(frames, chunk.fallback.sessions), chunk.wanted)):
            computed = feature.compute()
            if feature.across is None:  # a market-wide feature is one column: one per symbol here
                taken = computed[chunk.take]
                local[k] = np.broadcast_to(taken, (len(taken), len(chunk.panel.symbols))).astype(chunk.dtype)
            else:
                gathered[k] = computed if feature.history else computed[chunk.take]
        extra = {} if chunk.extra is None else {name: values[chunk.take]
                                                for name, values in chunk.extra(chunk.panel).items()}
    return ChunkValues(chunk.columns, local, gathered, np.isfinite(frames.c[chunk.take]), extra)


def compute_block(
    panel: BarPanel,
    sessions: pd.DatetimeIndex | None = None,
    features: Iterable[str] | None = None,
    *,
    dtype: type[np.floating[Any]] = np.float32,
    vix_fallback: VixFallback | None = None,
    chunk_symbols: int = DEFAULT_CHUNK_SYMBOLS,
    mapper: ChunkMapper | None = None,
    extra: ChunkExtra | None = None,
) -> FeatureBlock:
    """Every feature asked for on ``sessions`` (default: all) of every symbol, ``chunk_symbols``
    symbols at a time.

    A per-symbol feature reads only its own symbol's bars (and the market's), so each chunk's
    columns are final; a cross-sectional one (ranks, sector and breadth figures) gathers its
    per-symbol input from every chunk and is combined once over the whole universe. Memory is
    the output plus one chunk's intermediates, and every value equals the unchunked one.
    ``mapper`` runs the chunks (default: one after another, here); ``extra`` computes more
    per-symbol arrays from each chunk's bars (:attr:`FeatureBlock.extra`, e.g. the labels).
    """
    fallback = vix_fallback or VixFallback()
    wanted = frozenset(features) if features is not None else None
    specs = _selected(_catalogue(None, fallback.sessions), wanted)  # type: ignore[arg-type]
    rows = panel.sessions if sessions is None else panel.sessions.intersection(sessions)
    positions = panel.sessions.get_indexer(rows)
    span = slice(positions[0], positions[-1] + 1) if len(positions) else slice(0, 0)
    take = span if len(positions) == span.stop - span.start else positions
    symbols = pd.Index(panel.symbols)
    values = np.empty((len(specs), len(rows), len(symbols)), dtype=dtype)
    has_bar = np.empty((len(rows), len(symbols)), dtype=bool)
    gathered = {k: np.empty((len(panel.sessions) if f.history else len(rows), len(symbols)))
                for k, f in enumerate(specs) if f.across is not None}
    extras: dict[str, np.ndarray] = {}

    def chunks() -> Iterator[FeatureChunk]:  # made lazily: one sub-panel at a time when run in turn
        for columns in symbol_chunks(len(symbols), chunk_symbols):
            whole = columns.stop - columns.start == len(symbols)
            yield FeatureChunk(panel if whole else panel.select(symbols[columns]), columns, take, wanted,
                               fallback, dtype, extra)

    for done in (mapper or map)(compute_chunk, chunks()):
        for k, array in done.local.items():
            values[k][:, done.columns] = array
        for k, array in done.gathered.items():
            gathered[k][:, done.columns] = array
        for name, array in done.extra.items():
            extras.setdefault(name, np.empty((len(rows), len(symbols)), dtype=array.dtype))[:, done.columns] = array
        has_bar[:, done.columns] = done.has_bar
        del done
    universe = _Universe(panel)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        for k in list(gathered):
            combined = specs[k].across(gathered.pop(k), universe)  # type: ignore[misc]
            values[k] = combined[take] if specs[k].history else combined
    return FeatureBlock(values=values, names=tuple(f.spec.name for f in specs), sessions=pd.DatetimeIndex(rows),
                        symbols=symbols, has_bar=has_bar, extra=extras)


def _selected(catalogue: list[_Feature], wanted: frozenset[str] | set[str] | None) -> list[_Feature]:
    """The catalogue's features named in ``wanted`` (all when ``None``), in catalogue order."""
    chosen = [f for f in catalogue if wanted is None or f.spec.name in wanted]
    if wanted is not None and len(chosen) != len(wanted):
        unknown = sorted(wanted - {f.spec.name for f in chosen})
        raise KeyError(f"unknown features: {', '.join(unknown)}")
    return chosen


def _unstable_sessions(alpha: float, smoothings: int = 1) -> int:
    """Sessions after which a recursive smoothing's seed weighs less than 1e-9: ``(1 - alpha)^k``,
    times the number of smoothings applied one after another."""
    return smoothings * int(np.ceil(np.log(1e-9) / np.log(1.0 - alpha)))


_EMA = lambda n: 2.0 / (n + 1)  # noqa: E731 - TA-Lib's EMA constant
_WILDER = lambda n: 1.0 / n  # noqa: E731 - Wilder's smoothing (RSI, ATR, ADX, CMO)

#: Features built on TA-Lib's recursive indicators, which are seeded at the first bar they see, so
#: their value depends on where the history starts; with the sessions of extra history (beyond the
#: feature's lookback) after which that dependence is below 1e-9 of the value. KAMA's smoothing
#: adapts between ``2/31`` and ``2/3`` squared: the bound is the slowest case. Every other feature
#: only ever reads its lookback and is equal from any start.
UNSTABLE_SESSIONS: dict[str, int] = {
    "rsi_2": _unstable_sessions(_WILDER(2)), "rsi_6": _unstable_sessions(_WILDER(6)),
    "rsi_14": _unstable_sessions(_WILDER(14)), "rank_rsi_14": _unstable_sessions(_WILDER(14)),
    "mkt_rsi_14": _unstable_sessions(_WILDER(14)), "rsi_28": _unstable_sessions(_WILDER(28)),
    "atr_5_pct": _unstable_sessions(_WILDER(5)), "atr_14_pct": _unstable_sessions(_WILDER(14)),
    "rank_atr_14_pct": _unstable_sessions(_WILDER(14)),
    "plus_di_14": _unstable_sessions(_WILDER(14)), "minus_di_14": _unstable_sessions(_WILDER(14)),
    "adx_14": _unstable_sessions(_WILDER(14), 2), "cmo_14": _unstable_sessions(_WILDER(14)),
    "dist_ema_12": _unstable_sessions(_EMA(12)), "dist_ema_26": _unstable_sessions(_EMA(26)),
    "dist_ema_50": _unstable_sessions(_EMA(50)),
    **dict.fromkeys(("macd", "macd_signal", "macd_hist", "rank_macd_hist"),
                    _unstable_sessions(_EMA(26)) + _unstable_sessions(_EMA(9))),
    "trix_15": _unstable_sessions(_EMA(15), 3),
    "adosc": _unstable_sessions(_EMA(10)),
    "dist_kama_30": _unstable_sessions((2.0 / 31) ** 2),
}

#: Default extra history of :func:`newest_features`. The bounds above are worst cases (a seed
#: error as large as the value); on the simulated market every recursive feature is within 1e-9
#: of its full-history value after 300 sessions (tested), and a 76-symbol cycle on the resulting
#: 613-session window takes about a tenth of a second.
NEWEST_WARMUP = 300


def newest_features(
    panel: BarPanel,
    sessions: int = 1,
    *,
    warmup: int = NEWEST_WARMUP,
    features: Iterable[str] | None = None,
    dtype: type[np.floating[Any]] = np.float32,
    vix_fallback: VixFallback | None = None,
    partial: bool = False,
    chunk_symbols: int = DEFAULT_CHUNK_SYMBOLS,
) -> FeatureMatrix:
    """Features of the last ``sessions`` sessions of ``panel``, from a trailing window of bars.

    A monitor cycle needs the newest session's features, not the whole history's: this computes
    :func:`compute_features` on the last ``sessions + lookback + warmup`` sessions only (the
    whole panel if it is shorter), where ``lookback`` is the longest lookback of the features
    asked for. Features that only read their lookback come out equal to the full-history
    computation (to rounding, within 1e-9); those in :data:`UNSTABLE_SESSIONS` are equal within
    1e-9 once ``warmup`` covers their entry there. ``dtype=np.float64`` keeps full precision for
    comparisons; the default float32 matches :func:`compute_features`, and ``vix_fallback`` and
    ``partial`` are its (the lookbacks include the fallback's warm-up), and so is ``chunk_symbols``.
    """
    if sessions < 1:
        raise ValueError(f"sessions must be at least 1, not {sessions}")
    if warmup < 0:
        raise ValueError(f"warmup must be zero or more sessions, not {warmup}")
    wanted = set(features) if features is not None else None
    specs = feature_specs(vix_fallback)
    lookback = max((s.lookback for s in specs if wanted is None or s.name in wanted), default=0)
    window = sessions + lookback + warmup
    if len(panel.sessions) > window:
        cut = slice(len(panel.sessions) - window, None)
        panel = BarPanel(
            open=panel.open.iloc[cut], high=panel.high.iloc[cut], low=panel.low.iloc[cut],
            close=panel.close.iloc[cut], volume=panel.volume.iloc[cut], proxy=panel.proxy.iloc[cut],
            vix=panel.vix.iloc[cut], sectors=panel.sectors,
        )
    return _compute(panel, panel.sessions[-sessions:], features, dtype, vix_fallback=vix_fallback,
                    partial=partial, chunk_symbols=chunk_symbols)
