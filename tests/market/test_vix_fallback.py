"""The VIX fallback, calibrated on real overlapping history (the bundled S&P 500 and VIX) and
measured on the sessions it was not fitted on."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from arch.data import sp500
from arch.data import vix as arch_vix

from flows.config import load_config
from market.vix import VixFallback, fit_fallback, realised_vix, vix_with_fallback
from monitors.regimes import RegimeLabeler
from tests.conftest import DEFAULT_CONFIG
from tests.panels import simulated_panel, small_universe

#: The shipped map: the defaults of ``market.vix_fallback``, as the packaged stormwatch.yaml sets them.
CALIBRATED = VixFallback()
FALLBACK_SESSIONS = CALIBRATED.sessions

#: The first held-out session: 2014-01-03 to 2016-12-29 (754 sessions) fit, the rest (503) measure.
HELD_OUT = pd.Timestamp("2016-12-30")


@pytest.fixture(scope="module")
def history() -> tuple[pd.Series, pd.Series]:
    close = sp500.load()["Close"].astype("float64")
    close.index = pd.DatetimeIndex(close.index).normalize()
    vix = arch_vix.load()["vix"].dropna()
    vix.index = pd.DatetimeIndex(vix.index).normalize()
    return close, vix.loc[vix.index.isin(close.index)]


def test_the_shipped_map_is_the_fit_on_the_first_part(history: tuple[pd.Series, pd.Series]) -> None:
    close, vix = history
    fitted = fit_fallback(close.loc[:HELD_OUT - pd.Timedelta(days=1)], vix.loc[:HELD_OUT - pd.Timedelta(days=1)])
    for name in ("intercept", "daily", "weekly", "monthly"):
        assert getattr(fitted, name) == pytest.approx(getattr(CALIBRATED, name), abs=5e-4)
    assert fitted.sessions == CALIBRATED.sessions
    assert load_config().config.market.vix_fallback == CALIBRATED  # the packaged file ships the fit
    assert len(vix) == 1257 and len(vix.loc[HELD_OUT:]) == 503


def test_held_out_the_map_is_close_to_the_vix_and_labels_regimes_like_it(
    history: tuple[pd.Series, pd.Series],
) -> None:
    close, vix = history
    held = vix.loc[HELD_OUT:]
    calibrated = realised_vix(close).loc[held.index]
    former = realised_vix(close, VixFallback(intercept=0.0, daily=0.0, weekly=0.0, monthly=1.1)).loc[held.index]
    error, former_error = (calibrated - held).abs().mean(), (former - held).abs().mean()
    assert error < 1.8 and error < 0.5 * former_error
    assert abs((calibrated - held).mean()) < 1.0

    labeler = RegimeLabeler()
    truth = labeler.label(close.loc[:held.index[-1]], vix).regime.loc[held.index]
    without = labeler.label(close.loc[:held.index[-1]], None)
    assert without.fallback.loc[held.index].all()
    agreement = (without.regime.loc[held.index] == truth).mean()
    assert agreement >= 0.90  # the acceptance asks for 85%


def test_the_fallback_is_causal_and_fills_only_what_is_missing(history: tuple[pd.Series, pd.Series]) -> None:
    close, vix = history
    window = close.loc["2015-06-01":"2015-12-31"]
    full = realised_vix(window)
    for day in window.index[[FALLBACK_SESSIONS, 60, -1]]:
        assert realised_vix(window.loc[:day]).iloc[-1] == pytest.approx(full.loc[day], rel=1e-12)
    assert full.iloc[:FALLBACK_SESSIONS].isna().all() and full.iloc[FALLBACK_SESSIONS:].notna().all()
    gappy = vix.loc[window.index].copy()
    gappy.iloc[50:60] = np.nan
    level, used = vix_with_fallback(gappy, window)
    assert used.iloc[50:60].all() and used.sum() == 10
    assert level.iloc[50:60].equals(full.iloc[50:60]) and level.iloc[70] == vix.loc[window.index[70]]


def test_the_features_and_the_labeler_read_the_one_configured_fallback(tmp_path: Path) -> None:
    """``market.vix_fallback`` in the configuration file is what both the training window's
    ``vix_level`` and the regime labeler's VIX are: change it there and both change, alike."""
    from flows.training import MarketData, label_regimes, window_samples

    panel = simulated_panel(date(2009, 6, 30), small_universe(1))
    panel = replace(panel, vix=pd.Series(np.nan, index=panel.vix.index))  # no VIX: the fallback throughout
    data = MarketData(source="simulated", panel=panel, as_of=panel.sessions[-1], snapshot="")
    text = DEFAULT_CONFIG.read_text()
    assert text.count("    intercept: 8.751\n") == 1
    changed_file = tmp_path / "stormwatch.yaml"
    changed_file.write_text(text.replace("    intercept: 8.751\n", "    intercept: 20.0\n"))
    levels = {}
    for name, config in (("shipped", load_config().config), ("changed", load_config(changed_file).config)):
        feature = window_samples(config, data).features["vix_level"]
        timeline = label_regimes(config, data)
        dates = feature.index.get_level_values("date")
        assert timeline.fallback.loc[dates].all()
        np.testing.assert_allclose(feature.to_numpy(), timeline.vix.loc[dates].to_numpy(), rtol=1e-6)
        levels[name] = (feature, timeline)
    (shipped, calm), (changed, nervous) = levels["shipped"], levels["changed"]
    np.testing.assert_allclose(changed - shipped, 20.0 - 8.751, rtol=1e-4)
    assert (nervous.vix - calm.vix).dropna().round(9).eq(20.0 - 8.751).all()
    assert (nervous.regime == "low_volatility").sum() < (calm.regime == "low_volatility").sum()
