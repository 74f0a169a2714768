"""The feature catalogue: causal, gap-honest, and equal to TA-Lib and pandas where it should be."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib

from market.features import FEATURE_NAMES, FEATURES, MAX_LOOKBACK, compute_features
from market.panel import BarPanel


@pytest.fixture(scope="module")
def features(panel_2005_2011: BarPanel) -> pd.DataFrame:
    return compute_features(panel_2005_2011).frame


def test_catalogue_is_complete_and_documented(features: pd.DataFrame) -> None:
    assert 170 <= len(FEATURES) <= 190  # the original had 179
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    assert list(features.columns) == list(FEATURE_NAMES)
    families = {spec.family for spec in FEATURES}
    assert {"returns", "volatility", "momentum", "trend", "range", "volume", "market", "sector",
            "macro", "cross_section"} <= families
    for spec in FEATURES:
        assert spec.definition and 0 <= spec.lookback <= MAX_LOOKBACK
    assert features.dtypes.eq(np.float32).all()
    assert np.isfinite(features.to_numpy()).all()


def _perturb_after(panel: BarPanel, t: pd.Timestamp, seed: int) -> BarPanel:
    """The panel with every bar and VIX value after ``t`` replaced by different valid values."""
    rng = np.random.default_rng(seed)
    after = panel.sessions > t

    def scale(frame: pd.DataFrame) -> pd.DataFrame:
        factor = np.exp(rng.normal(0, 0.05, size=(int(after.sum()), 1)))
        out = frame.copy()
        out.loc[after] = frame.loc[after].to_numpy() * factor
        return out

    fields = {name: scale(getattr(panel, name)) for name in ("open", "high", "low", "close", "volume")}
    proxy = scale(panel.proxy)
    vix = panel.vix.copy()
    vix.loc[after] = vix.loc[after] * 1.7
    return BarPanel(**fields, proxy=proxy, vix=vix, sectors=panel.sectors)


@pytest.mark.parametrize("t", ["2008-10-10", "2010-06-30"])
def test_changing_bars_after_t_leaves_every_feature_at_t_unchanged(panel_2005_2011: BarPanel, t: str) -> None:
    day = pd.Timestamp(t)
    upto = panel_2005_2011.sessions[panel_2005_2011.sessions <= day][-300:]
    original = compute_features(panel_2005_2011, upto).frame
    changed = compute_features(_perturb_after(panel_2005_2011, day, seed=1), upto).frame
    pd.testing.assert_frame_equal(original, changed, check_exact=True)
    truncated = compute_features(panel_2005_2011.truncate(day), upto).frame
    pd.testing.assert_frame_equal(original, truncated, check_exact=True)
    # The check can fail: the same change does move features after t.
    later = panel_2005_2011.sessions[panel_2005_2011.sessions > day][:20]
    assert not compute_features(panel_2005_2011, later).frame.equals(
        compute_features(_perturb_after(panel_2005_2011, day, seed=1), later).frame)


def _one_symbol(panel: BarPanel, symbol: str) -> dict[str, np.ndarray]:
    return {name: getattr(panel, name)[symbol].to_numpy() for name in ("open", "high", "low", "close", "volume")}


def test_features_agree_with_talib_where_they_are_the_same_indicator(
    panel_2005_2011: BarPanel, features: pd.DataFrame
) -> None:
    symbol = "JPM"
    bars = _one_symbol(panel_2005_2011, symbol)
    o, h, l, c, v = (bars[k] for k in ("open", "high", "low", "close", "volume"))  # noqa: E741
    expected = {
        "rsi_14": talib.RSI(c, 14), "rsi_2": talib.RSI(c, 2), "atr_14_pct": talib.ATR(h, l, c, 14) / c,
        "macd": talib.MACD(c, 12, 26, 9)[0] / c, "macd_hist": talib.MACD(c, 12, 26, 9)[2] / c,
        "adx_14": talib.ADX(h, l, c, 14), "cci_20": talib.CCI(h, l, c, 20), "willr_14": talib.WILLR(h, l, c, 14),
        "mfi_14": talib.MFI(h, l, c, v, 14), "stoch_k": talib.STOCH(h, l, c, 14, 3, 0, 3, 0)[0],
        "aroon_up_25": talib.AROON(h, l, 25)[1], "dist_ema_26": c / talib.EMA(c, 26) - 1,
        "trix_15": talib.TRIX(c, 15), "bop": talib.BOP(o, h, l, c), "ultosc": talib.ULTOSC(h, l, c),
        "dist_sma_50": c / talib.SMA(c, 50) - 1, "bb_pctb_20": (c - talib.BBANDS(c, 20, 2, 2)[2])
        / (talib.BBANDS(c, 20, 2, 2)[0] - talib.BBANDS(c, 20, 2, 2)[2]),
    }
    ours = features.xs(symbol, level="symbol")
    positions = panel_2005_2011.sessions.get_indexer(ours.index)
    for name, values in expected.items():
        np.testing.assert_allclose(ours[name].to_numpy(), values[positions], rtol=2e-5, atol=1e-6, err_msg=name)


def test_features_agree_with_direct_pandas_computations(panel_2005_2011: BarPanel, features: pd.DataFrame) -> None:
    p = panel_2005_2011
    r = np.log(p.close).diff()
    m = np.log(p.proxy["close"]).diff()
    sectors = pd.Series(p.sectors)
    sector_mean_5 = np.log(p.close).diff(5).T.groupby(sectors).transform("mean").T
    vix = p.vix
    prior_high = p.proxy["close"].rolling(10).max().shift(1)
    fell = (p.proxy["close"] / prior_high - 1 <= -0.15).astype(float).where(prior_high.notna())
    storm = np.maximum(fell.rolling(63).max(), (vix > 35).astype(float).where(vix.notna()))
    expected = {
        "vol_20": r.rolling(20).std() * np.sqrt(252),
        "skew_20": r.rolling(20).skew(),
        "kurt_60": r.rolling(60).kurt(),
        "ret_60": np.log(p.close).diff(60),
        "parkinson_20": np.sqrt((np.log(p.high / p.low) ** 2).rolling(20).mean() / (4 * np.log(2))) * np.sqrt(252),
        "zscore_20": (p.close - p.close.rolling(20).mean()) / p.close.rolling(20).std(),
        "rel_volume_20": p.volume / p.volume.rolling(20).mean(),
        "pv_corr_20": r.rolling(20).corr(np.log1p(p.volume).diff()),
        "corr_mkt_60": r.rolling(60).corr(m),
        "beta_252": r.apply(lambda col: col.rolling(252).cov(m)) .div(m.rolling(252).var(), axis=0),
        "dist_high_252": p.close / p.high.rolling(252).max() - 1,
        "rank_ret_20": np.log(p.close).diff(20).rank(axis=1, pct=True),
        "rel_sector_ret_5": np.log(p.close).diff(5) - sector_mean_5,
        "mkt_vol_20": pd.DataFrame({s: m.rolling(20).std() * np.sqrt(252) for s in p.symbols}),
        "vix_pct_252": pd.DataFrame({s: vix.rolling(252).rank(pct=True) for s in p.symbols}),
        "up_volume_share_20": (p.volume.where(r > 0, 0.0).rolling(20).sum() / p.volume.rolling(20).sum()),
        "breadth_up": pd.DataFrame({s: (r > 0).mean(axis=1) for s in p.symbols}),
        "storm_63": pd.DataFrame(dict.fromkeys(p.symbols, storm)),
        "storm_vix_63": pd.DataFrame(dict.fromkeys(p.symbols, storm * vix)),
    }
    sample = features.sample(2000, random_state=0)
    dates = sample.index.get_level_values("date")
    symbols = sample.index.get_level_values("symbol")
    for name, frame in expected.items():
        values = frame.stack().reindex(pd.MultiIndex.from_arrays([dates, symbols])).to_numpy(dtype="float64")
        np.testing.assert_allclose(sample[name].to_numpy(dtype="float64"), values, rtol=2e-4, atol=2e-6,
                                   err_msg=name)


def test_the_storm_state_holds_through_a_crash_and_the_63_sessions_after_its_last_fall(
        panel_2005_2011: BarPanel, features: pd.DataFrame) -> None:
    """storm_63 is what lets a model read a recovery (its VIX back among calmer spells') like the
    crash before it: on from the crisis's first close 15% under the 10 before (the simulator's
    scripted October 2008 shock at the latest) until 63 sessions after its last, whatever the VIX,
    and off where neither a fall is that recent nor the VIX above 35."""
    storm = features["storm_63"].groupby(level="date").first()
    close, vix = panel_2005_2011.proxy["close"], panel_2005_2011.vix
    fell = (close / close.rolling(10).max().shift(1) - 1 <= -0.15).loc["2008-09-01":"2009-03-31"]
    first_fall, last_fall = fell[fell].index.min(), fell[fell].index.max()
    assert first_fall <= pd.Timestamp("2008-10-15")  # the scripted shock falls 24% from 1 October
    sessions = storm.index
    held = sessions[sessions.get_loc(first_fall): sessions.get_loc(last_fall) + 63]
    assert storm.reindex(held).eq(1.0).all()
    assert (vix.reindex(held) <= 35).any()  # on where the VIX alone would not be
    calm_2006 = storm.loc["2006"][vix.reindex(storm.loc["2006"].index) <= 35]
    assert len(calm_2006) > 100 and calm_2006.eq(0.0).all()  # no fall in 2006 of this market
    assert set(np.unique(storm.to_numpy())) == {0.0, 1.0}


def test_short_histories_are_dropped_and_counted(panel_2005_2011: BarPanel) -> None:
    p = panel_2005_2011
    late_start = p.sessions[len(p.sessions) - MAX_LOOKBACK + 10]
    close = p.close.copy()
    close.loc[close.index < late_start, "KO"] = np.nan
    short = BarPanel(p.open, p.high, p.low, close, p.volume, p.proxy, p.vix, p.sectors)
    matrix = compute_features(short)
    assert "KO" not in matrix.frame.index.get_level_values("symbol")
    has_bar = int(close["KO"].notna().sum())
    assert matrix.dropped["KO"] == has_bar > 0


def test_a_gap_is_never_filled_and_history_after_it_restarts(panel_2005_2011: BarPanel) -> None:
    """With a gap, rows whose lookback covers it are dropped; later rows equal those of a history
    that simply starts after the gap (TA-Lib restarts, rolling windows never straddle it)."""
    p = panel_2005_2011
    gap = p.sessions[(p.sessions >= "2009-06-01") & (p.sessions <= "2009-06-12")]

    def without(symbol: str, sessions: pd.DatetimeIndex) -> BarPanel:
        fields = {}
        for name in ("open", "high", "low", "close", "volume"):
            frame = getattr(p, name).copy()
            frame.loc[sessions, symbol] = np.nan
            fields[name] = frame
        return BarPanel(**fields, proxy=p.proxy, vix=p.vix, sectors=p.sectors)

    gapped = compute_features(without("XOM", gap))
    restarted = compute_features(without("XOM", p.sessions[p.sessions <= gap[-1]]))
    xom_gapped = gapped.frame.xs("XOM", level="symbol")
    xom_restarted = restarted.frame.xs("XOM", level="symbol")
    after = xom_gapped.index[xom_gapped.index > gap[-1]]
    assert len(after) and after[0] > gap[-1] + pd.Timedelta(days=300)  # a full lookback after the gap
    pd.testing.assert_frame_equal(xom_gapped.loc[after], xom_restarted.loc[after])
    assert not xom_gapped.index.isin(gap).any()
    before = xom_gapped.index[xom_gapped.index < gap[0]]
    assert len(before) > 500  # rows before the gap are kept
    assert gapped.dropped["XOM"] > compute_features(p).dropped["XOM"]


def test_a_later_dividend_adjustment_leaves_liquidity_and_ratio_features_unchanged(
    panel_2005_2011: BarPanel,
) -> None:
    """Back-adjusting for a dividend paid after t multiplies every price up to t by one factor
    (volumes unchanged): what a feature at t reads must not depend on it."""
    day = pd.Timestamp("2009-06-30")
    upto = panel_2005_2011.sessions[panel_2005_2011.sessions <= day][-60:]
    symbol = panel_2005_2011.symbols[0]
    prices = {name: getattr(panel_2005_2011, name).copy() for name in ("open", "high", "low", "close")}
    for frame in prices.values():
        frame.loc[:, symbol] *= 0.97  # the whole history as a download after the dividend shows it
    adjusted = BarPanel(**prices, volume=panel_2005_2011.volume, proxy=panel_2005_2011.proxy,
                        vix=panel_2005_2011.vix, sectors=panel_2005_2011.sectors)
    original = compute_features(panel_2005_2011, upto).frame.xs(symbol, level="symbol")
    changed = compute_features(adjusted, upto).frame.xs(symbol, level="symbol")
    assert original["rel_dollar_volume_20"].notna().all() and original["rel_amihud_20"].notna().all()
    moved = [c for c in original.columns
             if not np.allclose(changed[c], original[c], rtol=2e-5, atol=2e-6)]
    assert "log_dollar_volume_20" not in FEATURE_NAMES and "amihud_20" not in FEATURE_NAMES
    assert moved == []  # every feature reads ratios of prices, never their back-adjusted level
