"""Labels: forward-return direction with no look-ahead, and samples that score at chance when
their labels are shuffled in time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from market.labels import make_labels
from market.panel import BarPanel
from market.samples import SAMPLE_COLUMNS, build_samples

HORIZON = 5


def _change_closes(panel: BarPanel, sessions: pd.DatetimeIndex, factor: float) -> BarPanel:
    fields = {}
    for name in ("open", "high", "low", "close"):
        frame = getattr(panel, name).copy()
        frame.loc[sessions] *= factor
        fields[name] = frame
    proxy = panel.proxy.copy()
    proxy.loc[sessions, ["open", "high", "low", "close"]] *= factor ** 0.5
    return BarPanel(**fields, volume=panel.volume, proxy=proxy, vix=panel.vix, sectors=panel.sectors)


@pytest.mark.parametrize("kind", ["excess", "total"])
def test_label_at_t_depends_only_on_bars_up_to_t_plus_horizon(panel_2005_2011: BarPanel, kind: str) -> None:
    p = panel_2005_2011
    t = p.sessions.get_loc(pd.Timestamp("2009-03-02"))
    base = make_labels(p, HORIZON, kind)
    later = _change_closes(p, p.sessions[t + HORIZON + 1 :], 1.3)
    pd.testing.assert_frame_equal(base.forward_return.iloc[: t + 1], make_labels(later, HORIZON, kind)
                                  .forward_return.iloc[: t + 1], check_exact=True)
    # ...while the bar at t + horizon does move the label of t: the test can fail.
    at_end = _change_closes(p, p.sessions[[t + HORIZON]], 1.3)
    moved = make_labels(at_end, HORIZON, kind).forward_return.iloc[t] - base.forward_return.iloc[t]
    assert (moved.abs() > 0.01).all()


def test_label_end_and_the_unlabelled_tail(panel_2005_2011: BarPanel) -> None:
    labels = make_labels(panel_2005_2011, HORIZON)
    sessions = panel_2005_2011.sessions
    assert labels.label_end.iloc[100] == sessions[100 + HORIZON]
    assert labels.label.iloc[-HORIZON:].isna().all().all()
    assert labels.label_end.iloc[-HORIZON:].isna().all()
    assert labels.label.iloc[300:-HORIZON].notna().all().all()
    assert set(np.unique(labels.label.iloc[300:-HORIZON])) == {0.0, 1.0}


def test_excess_label_removes_beta_times_the_market(panel_2005_2011: BarPanel) -> None:
    p = panel_2005_2011
    total = make_labels(p, HORIZON, "total").forward_return
    excess = make_labels(p, HORIZON, "excess").forward_return
    market = np.log(p.proxy["close"]).shift(-HORIZON) - np.log(p.proxy["close"])
    period = slice("2007-01-01", "2011-12-20")
    # Total returns ride the market; excess returns are (nearly) uncorrelated with it.
    with_market_total = total.loc[period].corrwith(market.loc[period])
    with_market_excess = excess.loc[period].corrwith(market.loc[period])
    assert with_market_total.mean() > 0.4
    assert with_market_excess.abs().mean() < 0.1
    implied_beta = ((total - excess).loc[period].div(market.loc[period], axis=0)).median()
    assert implied_beta.between(0.3, 2.5).all()


def test_samples_carry_label_end_sector_and_provenance(panel_2005_2011: BarPanel) -> None:
    samples = build_samples(panel_2005_2011, "2011-12-01", "2011-12-30", provenance="window")
    frame = samples.frame
    assert list(frame.columns[-len(SAMPLE_COLUMNS):]) == list(SAMPLE_COLUMNS)
    assert samples.dropped_unlabelled == HORIZON * len(panel_2005_2011.symbols)
    assert frame.index.get_level_values("date").max() < panel_2005_2011.sessions[-HORIZON]
    assert (frame["label_end"] > frame.index.get_level_values("date")).all()
    assert set(frame["provenance"]) == {"window"}
    assert frame.loc[(slice(None), "XOM"), "sector"].eq("Energy").all()
    live = build_samples(panel_2005_2011, "2011-12-01", "2011-12-30", require_label=False)
    assert live.frame["label"].isna().sum() == HORIZON * len(panel_2005_2011.symbols)


def test_labels_shuffled_in_time_score_at_chance(panel_2005_2011: BarPanel) -> None:
    """The cardinal-sin check: a model that scores above chance on shuffled labels has seen the
    future. The same model on the true labels does better, so the test can tell them apart."""
    samples = build_samples(panel_2005_2011, "2006-01-01", "2011-12-20").frame
    features = samples.columns[: -len(SAMPLE_COLUMNS)]
    dates = samples.index.get_level_values("date")
    train, test = dates < "2009-12-31", dates >= "2010-01-08"  # a gap longer than the horizon
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=300))

    def score(labels: np.ndarray) -> float:
        model.fit(samples.loc[train, features], labels[train])
        return balanced_accuracy_score(labels[test], model.predict(samples.loc[test, features]))

    y = samples["label"].to_numpy()
    rng = np.random.default_rng(0)
    shuffled = y.copy()
    for symbol in np.unique(samples.index.get_level_values("symbol")):
        rows = np.flatnonzero(samples.index.get_level_values("symbol") == symbol)
        shuffled[rows] = y[rng.permutation(rows)]
    assert test.sum() > 30_000
    assert abs(score(shuffled) - 0.5) <= 0.02
    assert score(y) > 0.51


def test_triple_barrier_label_decides_on_the_first_barrier_touched(panel_2005_2011: BarPanel) -> None:
    p = panel_2005_2011
    plain = make_labels(p, HORIZON, "total")
    barrier = make_labels(p, HORIZON, "total", barrier=0.5)
    log_close = np.log(p.close)
    sigma = log_close.diff().rolling(20).std() * np.sqrt(HORIZON) * 0.5
    t = p.sessions.get_loc(pd.Timestamp("2010-05-03"))
    for symbol in p.symbols[:20]:
        path = [log_close[symbol].iloc[t + k] - log_close[symbol].iloc[t] for k in range(1, HORIZON + 1)]
        width = sigma[symbol].iloc[t]
        touches = [(1.0 if r >= width else 0.0) for r in path if abs(r) >= width]
        expected = touches[0] if touches else float(path[-1] > 0)
        assert barrier.label[symbol].iloc[t] == expected, symbol
    # The label differs from the plain direction exactly where a barrier was touched first and
    # the path then came back across zero; the vertical barrier and label end are unchanged.
    differs = (barrier.label != plain.label).to_numpy().mean()
    assert 0.0 < differs < 0.3
    pd.testing.assert_series_equal(barrier.label_end, plain.label_end)
    assert barrier.label.iloc[-HORIZON:].isna().all().all()
