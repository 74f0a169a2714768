"""The embedded simulated market: a seeded panel with a known best achievable prediction.

Stormwatch must run on a fresh machine with no network, and its model-quality benchmarks need a
yardstick that real data cannot give: the best accuracy any model could reach. This source
serves both. It simulates the configured universe on real NYSE sessions, with regime-switching
volatility, scripted storms in the eight archive windows of SPEC.md, a VIX, sectors and volume,
and hides a regime-dependent predictable component whose conditional expectation it knows
exactly (see ``notes/simulator.md``).

Model of one session ``t`` (all returns are log returns):

* a regime ``R_t``: scripted inside :data:`SCRIPTED_REGIMES` and the configured live storm,
  elsewhere a persistent Markov chain (:data:`TRANSITIONS`);
* a market factor ``m_t = drift(R_t) + vol(R_t) * e_t`` with Student-t ``e_t``; the market proxy's
  close is exactly ``exp(cumsum(m))``;
* eleven GICS sector factors ``s_kt`` and, per stock, ``r_it = beta_i m_t + x_it`` with the
  excess return ``x_it = gamma_i s_{k(i),t} + phi(R_{t-1}) S_{i,t-1} + sigma_i(R_t) u_it``, where
  ``S_it`` is the sum of the last :data:`SIGNAL_LOOKBACK` excess returns and
  ``phi = kappa / sqrt(SIGNAL_LOOKBACK)`` (:data:`SIGNAL_STRENGTH`). Writing it as
  ``kappa * sigma_x * z`` with ``z = S / (sqrt(L) sigma_x)`` the standardised 5-session excess
  return shows it is the note's design: the drift of tomorrow is ``kappa(R_t)`` excess-volatility
  units per unit of today's standardised signal, momentum in calm regimes and reversal in crashes;
* ``log VIX`` mean-reverting toward ``100 x`` the regime's annualised market vol plus a premium,
  jumping when the market falls.

The true regime reaches the bars only through what it does to the market: volatility (returns,
intraday ranges, volume, VIX) and the market's drift; it is exported separately as ground truth
for benchmarks, never as a column of a bar frame.

Every random component draws from its own generator, ``default_rng([seed, component, ...])``,
in session order, and every recursion is causal, so the value at a date never depends on the
end date: a cache refreshed day by day splices cleanly (tested).
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from math import sqrt

import numpy as np
import pandas as pd

from market.calendar import nyse_sessions
from market.config import SimulatorSettings
from market.sources.base import (
    RangeClipped,
    SourceInfo,
    SymbolNotAvailable,
    conform_bars,
    date_range,
)
from market.universe import Universe
from market.vocabulary import BAR_COLUMNS, SECTORS, Regime, Sector

TRADING_DAYS = 252
#: The settings used when none are given (those of a default ``stormwatch.yaml``).
DEFAULT_SETTINGS = SimulatorSettings()


@dataclass(frozen=True)
class RegimeDynamics:
    """How the simulated market behaves in one regime.

    Parameters
    ----------
    market_vol
        Annualised volatility of the market factor. Sets the proxy's realised volatility and,
        through :data:`VIX_PREMIUM`, the level VIX reverts to.
    market_drift
        Annualised log drift of the market factor: crashes fall and recoveries rise on average,
        not only by chance.
    excess_scale
        Multiplier of the sector and idiosyncratic volatilities relative to ``normal``. It grows
        more slowly than ``market_vol``, so correlations rise in storms as they do in real ones.
    """

    market_vol: float
    market_drift: float
    excess_scale: float


#: Per-regime dynamics. Calm 9% and crash 65% annualised market vol follow the note's bands.
REGIME_DYNAMICS: dict[Regime, RegimeDynamics] = {
    Regime.LOW_VOLATILITY: RegimeDynamics(market_vol=0.09, market_drift=0.15, excess_scale=0.8),
    Regime.NORMAL: RegimeDynamics(market_vol=0.15, market_drift=0.08, excess_scale=1.0),
    Regime.HIGH_VOLATILITY: RegimeDynamics(market_vol=0.26, market_drift=-0.05, excess_scale=1.4),
    Regime.CRASH: RegimeDynamics(market_vol=0.65, market_drift=-0.60, excess_scale=2.2),
    Regime.RECOVERY: RegimeDynamics(market_vol=0.35, market_drift=0.80, excess_scale=1.7),
}

#: ``kappa`` per regime: the predictable part of tomorrow's excess return, in units of the
#: excess volatility per unit of the standardised 5-session excess return. Positive is momentum,
#: negative reversal. The magnitudes put the oracle's accuracy on the 5-session market-neutral
#: label at about 56-58% in every regime (the note's prototype at 0.06/0.10 reached only
#: 51-55%). High volatility keeps momentum on purpose: the sign flips only in crash and recovery,
#: the rare regimes a model trained on a recent calm-plus-volatile window never sees.
SIGNAL_STRENGTH: dict[Regime, float] = {
    Regime.LOW_VOLATILITY: 0.12,
    Regime.NORMAL: 0.12,
    Regime.HIGH_VOLATILITY: 0.12,
    Regime.CRASH: -0.18,
    Regime.RECOVERY: -0.18,
}

#: Sessions summed into the hidden signal ``S_it`` (the note's "5-session excess return").
SIGNAL_LOOKBACK = 5

#: The simulator's own storm calendar, the eight archive windows of SPEC.md module 1. Hard-coded
#: rather than read from ``memory``'s archive because ``market`` imports no other room, and
#: because the simulated history must not change when a user edits the archive.
SCRIPTED_REGIMES: tuple[tuple[date, date, Regime], ...] = (
    (date(2008, 9, 1), date(2009, 3, 31), Regime.CRASH),
    (date(2011, 7, 1), date(2011, 8, 31), Regime.HIGH_VOLATILITY),
    (date(2015, 8, 1), date(2015, 9, 30), Regime.HIGH_VOLATILITY),
    (date(2018, 2, 1), date(2018, 2, 28), Regime.CRASH),
    (date(2020, 2, 20), date(2020, 3, 23), Regime.CRASH),
    (date(2020, 3, 24), date(2020, 6, 30), Regime.RECOVERY),
    (date(2022, 1, 1), date(2022, 12, 31), Regime.HIGH_VOLATILITY),
    (date(2023, 3, 1), date(2023, 4, 30), Regime.HIGH_VOLATILITY),
)

#: Scripted collapses: (first date, sessions, total market log return over them). A random walk
#: at crash volatility falls 15% within 10 sessions only about half the time, and the regime
#: labeler's price rule, the archive and the benchmarks all rely on the 2008 and 2020 crashes
#: really falling. Over each stretch the market factor is therefore a Brownian bridge: still
#: random day by day (the regime's volatility, the same Student-t draws), but conditioned to end
#: at the given total. The bridge is causal, so prefix stability holds even when the simulation
#: ends inside a stretch. Targets follow history: -24% (Oct 2008), -10% (Feb 2018), -24% (Mar 2020).
SCRIPTED_SHOCKS: tuple[tuple[date, int, float], ...] = (
    (date(2008, 10, 1), 10, float(np.log(0.76))),
    (date(2018, 2, 1), 6, float(np.log(0.90))),
    (date(2020, 3, 9), 10, float(np.log(0.76))),
)

#: The same conditioning for a scripted live storm whose regime is ``crash``: its first (up to)
#: 10 sessions fall 20%, so the monitor's price rule can see it.
LIVE_STORM_FALL: float = float(np.log(0.80))
LIVE_STORM_FALL_SESSIONS = 10

#: The Markov chain outside scripted windows: expected spell length in sessions and where a spell
#: goes when it ends. Long calm and normal spells, short rare volatile ones; a crash is entered
#: mostly from high volatility and usually ends in a recovery.
TRANSITIONS: dict[Regime, tuple[float, dict[Regime, float]]] = {
    Regime.LOW_VOLATILITY: (150.0, {Regime.NORMAL: 0.9, Regime.HIGH_VOLATILITY: 0.1}),
    Regime.NORMAL: (
        120.0,
        {Regime.LOW_VOLATILITY: 0.55, Regime.HIGH_VOLATILITY: 0.43, Regime.CRASH: 0.02},
    ),
    Regime.HIGH_VOLATILITY: (
        30.0,
        {Regime.NORMAL: 0.8, Regime.LOW_VOLATILITY: 0.1, Regime.CRASH: 0.1},
    ),
    Regime.CRASH: (15.0, {Regime.RECOVERY: 0.8, Regime.HIGH_VOLATILITY: 0.2}),
    Regime.RECOVERY: (
        40.0,
        {Regime.NORMAL: 0.6, Regime.HIGH_VOLATILITY: 0.3, Regime.LOW_VOLATILITY: 0.1},
    ),
}
INITIAL_REGIME = Regime.LOW_VOLATILITY

#: VIX: points added to 100 x annualised regime vol (the variance premium), daily mean-reversion
#: speed of log VIX, its response to the market's log return, and its own daily noise.
VIX_PREMIUM = 3.0
VIX_REVERSION = 0.12
VIX_MARKET_RESPONSE = 3.0
VIX_NOISE = 0.05

#: Sector beta centres: defensives below one, cyclicals above, so betas look like the real ones.
SECTOR_BETA: dict[Sector, float] = {
    Sector.INFORMATION_TECHNOLOGY: 1.20,
    Sector.COMMUNICATION_SERVICES: 1.05,
    Sector.CONSUMER_DISCRETIONARY: 1.15,
    Sector.CONSUMER_STAPLES: 0.65,
    Sector.HEALTH_CARE: 0.80,
    Sector.FINANCIALS: 1.20,
    Sector.INDUSTRIALS: 1.05,
    Sector.ENERGY: 1.10,
    Sector.UTILITIES: 0.55,
    Sector.REAL_ESTATE: 0.90,
    Sector.MATERIALS: 1.05,
}
SECTOR_VOL = 0.10  # annualised, normal regime
MARKET_TAIL_DF = 5.0
IDIO_TAIL_DF = 4.0
PROXY_START_PRICE = 120.0
PROXY_VOLUME = 8.0e7

_ORDER: tuple[Regime, ...] = (
    Regime.LOW_VOLATILITY,
    Regime.NORMAL,
    Regime.HIGH_VOLATILITY,
    Regime.CRASH,
    Regime.RECOVERY,
)
_CODE = {regime: code for code, regime in enumerate(_ORDER)}
# Component ids of the generators; never renumber them, or every simulated history changes.
_C_REGIME, _C_MARKET, _C_SECTORS, _C_VIX, _C_PARAMS, _C_IDIO, _C_BARS = range(1, 8)


@dataclass(frozen=True, eq=False)
class SimulatedMarket:
    """The whole simulated panel, with the ground truth a real source cannot have.

    Treat it as read-only: one instance is shared by every source built with the same settings.

    Attributes
    ----------
    sessions
        Every simulated session, historical and live.
    last_historical_session
        The last session on or before today (or ``settings.end``); later sessions are the live
        period the monitor walks through.
    regimes
        The true regime per session. For benchmarks only: a model must infer it.
    vix, market_returns
        The VIX close and the market factor's log return (the proxy's log return) per session.
    betas
        True beta per symbol (the proxy's is 1.0).
    bars
        Canonical bar frames per symbol, proxy included.
    expected_excess_return
        Sessions x stocks: ``E[sum of x_i over (t, t + horizon] | data up to t]``, exact under
        the true dynamics given that the regime of ``t`` persists over the horizon (the only
        approximation: a regime change inside the horizon is not anticipated). ``x`` is the log
        return minus the true beta times the market's.
    oracle
        Sessions x stocks, +1/-1: the sign of ``expected_excess_return``, the best achievable
        prediction of the market-neutral direction label.
    """

    sessions: pd.DatetimeIndex
    last_historical_session: pd.Timestamp
    regimes: pd.Series
    vix: pd.Series
    market_returns: pd.Series
    betas: pd.Series
    bars: dict[str, pd.DataFrame]
    expected_excess_return: pd.DataFrame
    oracle: pd.DataFrame

    def ground_truth(self) -> pd.DataFrame:
        """The oracle in long format, one row per (session, stock), for quality benchmarks.

        Never a feature: it uses the true regime and the true betas.
        """
        n, k = self.oracle.shape
        return pd.DataFrame(
            {
                "date": np.repeat(self.sessions.to_numpy(), k),
                "symbol": np.tile(self.oracle.columns.to_numpy(dtype=object), n),
                "regime": np.repeat(self.regimes.to_numpy(dtype=object), k),
                "expected_excess_return": self.expected_excess_return.to_numpy().ravel(),
                "oracle_direction": self.oracle.to_numpy().ravel(),
            }
        )


def excess_forward_return(
    closes: pd.DataFrame, proxy_close: pd.Series, betas: pd.Series, horizon: int
) -> pd.DataFrame:
    """Forward log return over ``(t, t + horizon]`` minus beta times the proxy's: the
    market-neutral label the oracle predicts. NaN where the horizon runs past the data.

    >>> idx = pd.date_range("2024-01-01", periods=3)
    >>> closes = pd.DataFrame({"A": [1.0, 2.0, 4.0]}, index=idx)
    >>> proxy = pd.Series([1.0, 1.0, 2.0], index=idx)
    >>> excess_forward_return(closes, proxy, pd.Series({"A": 0.5}), 1)["A"].round(3).tolist()
    [0.693, 0.347, nan]
    """
    log_c = np.log(closes)
    log_p = np.log(proxy_close)
    fwd = log_c.shift(-horizon) - log_c
    market = (log_p.shift(-horizon) - log_p).to_numpy()[:, None]
    return fwd - market * betas.reindex(closes.columns).to_numpy()[None, :]


def _symbol_key(symbol: str) -> int:
    """A stable integer per symbol, so a symbol's path does not depend on the other members."""
    return int.from_bytes(hashlib.blake2b(symbol.encode(), digest_size=8).digest(), "little")


def _sessions(settings: SimulatorSettings, end: date) -> tuple[pd.DatetimeIndex, pd.Timestamp, int]:
    history = nyse_sessions(settings.start, end)
    last = history[-1] if len(history) else pd.Timestamp(end)
    live_n = settings.live_sessions
    if live_n:
        first = pd.Timestamp(end) + pd.Timedelta(days=1)
        live = nyse_sessions(first, first + pd.Timedelta(days=2 * live_n + 15))[:live_n]
    else:
        live = history[:0]
    return history.append(live).rename("date"), last, len(history)


def _regime_path(
    sessions: pd.DatetimeIndex,
    n_history: int,
    settings: SimulatorSettings,
    rng: np.random.Generator,
) -> np.ndarray:
    """Codes into ``_ORDER`` per session: scripted where forced, a Markov chain elsewhere.

    Run sequentially with one uniform per session (consumed even where the path is forced), so
    the chain after any date depends only on what came before it.
    """
    n = len(sessions)
    forced = np.full(n, -1, dtype=np.int64)
    for first, last, regime in SCRIPTED_REGIMES:
        forced[(sessions >= pd.Timestamp(first)) & (sessions <= pd.Timestamp(last))] = _CODE[regime]
    storm = settings.live_storm
    if storm is not None:
        begin = n_history + storm.starts_after_sessions
        forced[begin : begin + storm.sessions] = _CODE[storm.regime]
    cumulative = []
    for regime in _ORDER:
        length, exits = TRANSITIONS[regime]
        row = np.array([exits.get(other, 0.0) for other in _ORDER]) / sum(exits.values())
        row = row / length
        row[_CODE[regime]] = 1.0 - 1.0 / length
        cumulative.append(np.cumsum(row).tolist())
    uniforms = rng.random(n).tolist()  # one per session, used or not: keeps draws aligned
    path = np.empty(n, dtype=np.int64)
    state = _CODE[INITIAL_REGIME]
    for t in range(n):
        if forced[t] >= 0:
            state = int(forced[t])
        else:
            row, u = cumulative[state], uniforms[t]
            state = next((j for j, c in enumerate(row) if u < c), len(row) - 1)
        path[t] = state
    return path


def _bridge(
    m: np.ndarray, sigma: np.ndarray, eps: np.ndarray, first: int, length: int, total: float
) -> None:
    """Overwrite ``m[first:first + length]`` with a Brownian bridge from 0 to ``total``.

    Causal: session ``j`` uses only the bridge's level so far, so truncating the simulation
    inside the stretch leaves the earlier sessions unchanged.
    """
    level = 0.0
    for j in range(length):
        i = first + j
        if i >= len(m):
            return
        left = length - j
        if left == 1:
            m[i] = total - level
        else:
            m[i] = (total - level) / left + sigma[i] * sqrt((left - 1) / left) * eps[i]
        level += m[i]


def _student_t(rng: np.random.Generator, df: float, size: int | tuple[int, int]) -> np.ndarray:
    """Student-t draws scaled to unit variance: fat tails without changing the volatility."""
    return rng.standard_t(df, size=size) * sqrt((df - 2.0) / df)


@dataclass(frozen=True, eq=False)
class _Panel:
    sessions: pd.DatetimeIndex
    last_historical_session: pd.Timestamp
    codes: np.ndarray
    vix: np.ndarray
    market: np.ndarray
    excess: np.ndarray  # sessions x stocks
    stocks: tuple[str, ...]
    betas: np.ndarray  # stocks
    bars: dict[str, pd.DataFrame]


def _simulate_panel(universe: Universe, settings: SimulatorSettings, end: date) -> _Panel:
    """Everything that does not depend on the label horizon, simulated once.

    Python loops run only over sessions for the recursions that must be sequential (regime
    chain, VIX, hidden signal), each step vectorised across stocks; per-symbol generators are
    keyed by a hash of the symbol, so adding a member leaves every other member's path intact.
    """
    seed = settings.seed % 2**64

    def rng(*component: int) -> np.random.Generator:
        return np.random.default_rng([seed, *component])

    sessions, last_hist, n_history = _sessions(settings, end)
    n = len(sessions)
    codes = _regime_path(sessions, n_history, settings, rng(_C_REGIME))
    dyn = [REGIME_DYNAMICS[r] for r in _ORDER]
    m_vol = np.array([d.market_vol for d in dyn])[codes] / sqrt(TRADING_DAYS)
    m_drift = np.array([d.market_drift for d in dyn])[codes] / TRADING_DAYS
    scale = np.array([d.excess_scale for d in dyn])[codes]
    phi = np.array([SIGNAL_STRENGTH[r] for r in _ORDER])[codes] / sqrt(SIGNAL_LOOKBACK)

    # Market factor, with the scripted collapses bridged in.
    eps_m = _student_t(rng(_C_MARKET), MARKET_TAIL_DF, n)
    market = m_drift + m_vol * eps_m
    for first_day, length, total in SCRIPTED_SHOCKS:
        first = int(sessions.searchsorted(pd.Timestamp(first_day)))
        if first < n and sessions[0] <= pd.Timestamp(first_day):
            _bridge(market, m_vol, eps_m, first, length, total)
    storm = settings.live_storm
    if storm is not None and storm.regime == Regime.CRASH:
        length = min(LIVE_STORM_FALL_SESSIONS, storm.sessions)
        _bridge(market, m_vol, eps_m, n_history + storm.starts_after_sessions, length,
                LIVE_STORM_FALL)

    # VIX: log VIX reverts toward the regime's implied level and jumps when the market falls.
    target = np.log(100.0 * np.array([d.market_vol for d in dyn])[codes] + VIX_PREMIUM)
    vix_noise = rng(_C_VIX).standard_normal(n)
    # A given fall moves a VIX that is already high less in relative terms (as in late 2008).
    response = VIX_MARKET_RESPONSE * np.sqrt(REGIME_DYNAMICS[Regime.NORMAL].market_vol
                                             / (m_vol * sqrt(TRADING_DAYS)))
    pull = (target * VIX_REVERSION - response * market + VIX_NOISE * vix_noise).tolist()
    log_vix = np.empty(n)
    level = float(np.log(100.0 * REGIME_DYNAMICS[INITIAL_REGIME].market_vol + VIX_PREMIUM))
    keep = 1.0 - VIX_REVERSION
    for t in range(n):
        level = keep * level + pull[t]
        log_vix[t] = level

    # Sector factors: one column per GICS sector in SECTORS order, whatever the universe holds.
    sector_vol = SECTOR_VOL / sqrt(TRADING_DAYS)
    sectors = _student_t(rng(_C_SECTORS), MARKET_TAIL_DF, (n, len(SECTORS))) * sector_vol
    sectors *= scale[:, None]

    proxy = universe.market_proxy
    members = [mb for mb in universe.members if mb.symbol != proxy]
    stocks = tuple(mb.symbol for mb in members)
    k = len(stocks)
    betas, gammas, idio, price0, volume0 = (np.empty(k) for _ in range(5))
    eps_idio = np.empty((n, k))
    noise = np.empty((n, k + 1, 4))
    for j, member in enumerate(members):
        key = _symbol_key(member.symbol)
        params = rng(_C_PARAMS, key)
        betas[j] = np.clip(SECTOR_BETA[member.sector] + 0.15 * params.standard_normal(), 0.3, 2.0)
        gammas[j] = params.uniform(0.7, 1.3)
        idio[j] = params.uniform(0.15, 0.32) / sqrt(TRADING_DAYS)
        price0[j] = np.exp(params.uniform(np.log(20.0), np.log(250.0)))
        volume0[j] = np.exp(params.normal(np.log(6.0e6), 0.7))
        eps_idio[:, j] = _student_t(rng(_C_IDIO, key), IDIO_TAIL_DF, n)
        noise[:, j, :] = rng(_C_BARS, key).standard_normal((n, 4))
    noise[:, k, :] = rng(_C_BARS, _symbol_key(proxy)).standard_normal((n, 4))

    # Excess returns with the hidden signal: a causal recursion, vectorised across stocks.
    sector_index = np.array([SECTORS.index(mb.sector) for mb in members], dtype=np.int64)
    base = gammas[None, :] * sectors[:, sector_index] + (scale[:, None] * idio[None, :]) * eps_idio
    excess = np.empty((n, k))
    drift = np.zeros(k)
    for t in range(n):
        excess[t] = base[t] + drift
        drift = phi[t] * excess[max(0, t - SIGNAL_LOOKBACK + 1) : t + 1].sum(axis=0)

    # Bars for the stocks and the proxy (last column: beta 1, no sector, no idiosyncratic part).
    returns = np.empty((n, k + 1))
    returns[:, :k] = market[:, None] * betas[None, :] + excess
    returns[:, k] = market
    all_beta = np.append(betas, 1.0)
    day_vol = np.sqrt(
        (m_vol[:, None] * all_beta[None, :]) ** 2
        + np.append((gammas * sector_vol) ** 2 + idio**2, 0.0)[None, :] * (scale**2)[:, None]
    )
    log_close = np.log(np.append(price0, PROXY_START_PRICE))[None, :] + np.cumsum(returns, axis=0)
    prev_close = np.vstack([log_close[:1] - returns[:1], log_close[:-1]])
    log_open = prev_close + 0.25 * returns + 0.2 * day_vol * noise[:, :, 0]
    log_high = np.maximum(log_open, log_close) + 0.5 * day_vol * np.abs(noise[:, :, 1])
    log_low = np.minimum(log_open, log_close) - 0.5 * day_vol * np.abs(noise[:, :, 2])
    normal_vol = REGIME_DYNAMICS[Regime.NORMAL].market_vol
    log_volume = (
        np.log(np.append(volume0, PROXY_VOLUME))[None, :]
        + 0.35 * np.log(m_vol * sqrt(TRADING_DAYS) / normal_vol)[:, None]
        + 0.12 * np.abs(market)[:, None] / (normal_vol / sqrt(TRADING_DAYS))
        + 0.25 * noise[:, :, 3]
    )
    values = {
        "open": np.exp(log_open),
        "high": np.exp(log_high),
        "low": np.exp(log_low),
        "close": np.exp(log_close),
        "volume": np.round(np.exp(log_volume)),
    }
    bars: dict[str, pd.DataFrame] = {}
    for j, symbol in enumerate((*stocks, proxy)):
        frame = pd.DataFrame({c: values[c][:, j] for c in BAR_COLUMNS}, index=sessions)
        bars[symbol] = conform_bars(frame)
    return _Panel(
        sessions=sessions,
        last_historical_session=last_hist,
        codes=codes,
        vix=np.exp(log_vix),
        market=market,
        excess=excess,
        stocks=stocks,
        betas=betas,
        bars=bars,
    )


def _expected_excess(excess: np.ndarray, phi: np.ndarray, horizon: int) -> np.ndarray:
    """``E[x_{t+1} + ... + x_{t+horizon} | data up to t]`` with ``phi`` frozen at ``phi_t``.

    The recursion is linear with zero-mean shocks, so the expectation propagates exactly:
    ``E[x_{t+h}] = phi_t * (known part of S_{t+h-1} + expected part)``.
    """
    n, k = excess.shape
    lookback = SIGNAL_LOOKBACK
    cumulative = np.zeros((n + 1, k))
    np.cumsum(excess, axis=0, out=cumulative[1:])
    t = np.arange(n)
    ph = phi[:, None]
    recent: list[np.ndarray] = []
    total = np.zeros((n, k))
    for h in range(1, horizon + 1):
        if h <= lookback:
            known = cumulative[t + 1] - cumulative[np.maximum(t + h - lookback, 0)]
        else:
            known = np.zeros((n, k))
        step = ph * (known + sum(recent, np.zeros((n, k))))
        recent = [*recent, step][-lookback:]
        total += step
    return total


def simulate_market(
    universe: Universe,
    settings: SimulatorSettings = DEFAULT_SETTINGS,
    *,
    horizon: int = 5,
    today: date | None = None,
) -> SimulatedMarket:
    """Simulate the whole panel, uncached (see :class:`SimulatedSource` for the cached way).

    Parameters
    ----------
    universe
        The stocks and the market proxy to simulate.
    settings
        Seed, date range, live period and live storm.
    horizon
        Sessions of the forward return the oracle predicts (``LabelSettings.horizon``).
    today
        The last possible historical date when ``settings.end`` is ``None``; defaults to today.
    """
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1, not {horizon}")
    end = settings.end or today or date.today()
    return _assemble(_simulate_panel(universe, settings, end), horizon)


def _assemble(panel: _Panel, horizon: int) -> SimulatedMarket:
    sessions = panel.sessions
    phi = np.array([SIGNAL_STRENGTH[r] for r in _ORDER])[panel.codes] / sqrt(SIGNAL_LOOKBACK)
    expected = _expected_excess(panel.excess, phi, horizon)
    columns = pd.Index(panel.stocks, name="symbol")
    proxy = next(s for s in panel.bars if s not in panel.stocks)
    return SimulatedMarket(
        sessions=sessions,
        last_historical_session=panel.last_historical_session,
        regimes=pd.Series(
            np.array([r.value for r in _ORDER], dtype=object)[panel.codes],
            index=sessions,
            name="regime",
        ),
        vix=pd.Series(panel.vix, index=sessions, name="vix"),
        market_returns=pd.Series(panel.market, index=sessions, name="market"),
        betas=pd.Series(np.append(panel.betas, 1.0), index=[*panel.stocks, proxy], name="beta"),
        bars=panel.bars,
        expected_excess_return=pd.DataFrame(expected, index=sessions, columns=columns),
        oracle=pd.DataFrame(
            np.where(expected >= 0.0, 1, -1).astype(np.int8), index=sessions, columns=columns
        ),
    )


@lru_cache(maxsize=4)
def _panel(universe: Universe, settings: SimulatorSettings, end: date) -> _Panel:
    return _simulate_panel(universe, settings, end)


@lru_cache(maxsize=8)
def _market(
    universe: Universe, settings: SimulatorSettings, end: date, horizon: int
) -> SimulatedMarket:
    return _assemble(_panel(universe, settings, end), horizon)


class SimulatedSource:
    """The embedded offline market source: a seeded simulation with known ground truth.

    Construction is cheap; the first call that needs data simulates the whole panel (about a
    second for the default universe since 2005) and memoises it per (universe, settings, end
    date, horizon) for the process, so every flow and test sharing a configuration pays once.

    Parameters
    ----------
    universe
        The stocks and market proxy to serve; the proxy is served as a symbol too.
    settings
        Seed, date range, live period and live storm (``market.sources.simulated`` in
        ``stormwatch.yaml``).
    horizon
        The label horizon the oracle is computed for.
    today
        Fixes "today" (the end of the history when ``settings.end`` is ``None``); defaults to
        the date when the source is built, so one source stays consistent across midnight.
    """

    def __init__(
        self,
        universe: Universe,
        settings: SimulatorSettings = DEFAULT_SETTINGS,
        *,
        horizon: int = 5,
        today: date | None = None,
    ) -> None:
        if horizon < 1:
            raise ValueError(f"horizon must be at least 1, not {horizon}")
        self.universe = universe
        self.settings = settings
        self.horizon = horizon
        self.today = today or date.today()
        self._span: tuple[pd.Timestamp, pd.Timestamp] | None = None
        end = settings.end or self.today
        if end < settings.start:
            raise ValueError(
                f"the simulated market starts on {settings.start} (market.sources.simulated.start), "
                f"after its last historical day {end}: choose a later day"
            )
        self.info = SourceInfo(
            name="simulated",
            real=False,
            provenance=(
                f"seeded simulation (seed {settings.seed}) of {len(universe.members)} symbols "
                f"on NYSE sessions from {settings.start} to {end} plus "
                f"{settings.live_sessions} live sessions, with known ground truth; not market data"
            ),
        )

    def market(self) -> SimulatedMarket:
        """The whole simulated panel, computed once per configuration."""
        end = self.settings.end or self.today
        return _market(self.universe, self.settings, end, self.horizon)

    def available_symbols(self) -> tuple[str, ...]:
        proxy = self.universe.market_proxy
        return (*(s for s in self.universe.symbols if s != proxy), proxy)

    def span(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        """The first and last simulated session, live ones included (no simulation needed)."""
        if self._span is None:
            sessions, _, _ = _sessions(self.settings, self.settings.end or self.today)
            self._span = (sessions[0], sessions[-1])
        return self._span

    def _within_span(self, start: date, end: date) -> tuple[pd.Timestamp, pd.Timestamp]:
        """``[start, end]`` cut to the simulated span: refused when reversed or wholly outside it
        (as every source refuses), with a :class:`RangeClipped` warning when cut."""
        first, last = date_range(start, end)
        held_first, held_last = self.span()
        if last < held_first or first > held_last:
            raise SymbolNotAvailable(
                f"the simulated market runs from {held_first.date()} to {held_last.date()} "
                f"({self.settings.live_sessions} live sessions after {self.settings.end or self.today}); "
                f"the requested range {first.date()} to {last.date()} lies outside it"
            )
        cut_first, cut_last = max(first, held_first), min(last, held_last)
        # One message per cut end, independent of the other end, so that the several calls of
        # one fetch (bars from the last cached session, the VIX whole) say it once.
        if cut_first > first and len(nyse_sessions(first, cut_first)) > 1:
            warnings.warn(
                f"the simulated market starts on {held_first.date()} (market.sources.simulated.start): "
                f"the range is cut there instead of starting on {first.date()}", RangeClipped, stacklevel=3)
        if cut_last < last and len(nyse_sessions(cut_last, last)) > 1:
            warnings.warn(
                f"the simulated market ends on {held_last.date()}, {self.settings.live_sessions} live "
                f"sessions after {self.settings.end or self.today}: the range is cut there instead of "
                f"ending on {last.date()}", RangeClipped, stacklevel=3)
        return cut_first, cut_last

    def fetch_bars(
        self, symbols: Sequence[str], start: date, end: date
    ) -> dict[str, pd.DataFrame]:
        """Bars of ``symbols`` on simulated sessions in ``[start, end]``, live ones included.

        Raises
        ------
        SymbolNotAvailable
            Naming every requested symbol that is neither a universe member nor the proxy.
        """
        known = set(self.available_symbols())
        unknown = [s for s in symbols if s not in known]
        if unknown:
            raise SymbolNotAvailable(
                f"the simulated source has no {', '.join(unknown)}: it serves the configured "
                f"universe and the market proxy {self.universe.market_proxy} only"
            )
        first, last = self._within_span(start, end)
        bars = self.market().bars
        return {s: bars[s].loc[first:last].copy() for s in symbols}

    def fetch_vix(self, start: date, end: date) -> pd.Series:
        """The simulated VIX close on sessions in ``[start, end]``, named ``vix``."""
        first, last = self._within_span(start, end)
        return self.market().vix.loc[first:last].copy()



__all__ = [
    "LIVE_STORM_FALL",
    "REGIME_DYNAMICS",
    "SCRIPTED_REGIMES",
    "SCRIPTED_SHOCKS",
    "SIGNAL_LOOKBACK",
    "SIGNAL_STRENGTH",
    "TRANSITIONS",
    "RegimeDynamics",
    "SimulatedMarket",
    "SimulatedSource",
    "excess_forward_return",
    "simulate_market",
]
