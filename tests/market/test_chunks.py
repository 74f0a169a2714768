"""Features and samples computed a chunk of symbols at a time equal the unchunked computation, bit
for bit: per-symbol features never read another column, and cross-sectional ones are combined
over the whole universe once every chunk is in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from market.cache import stream_parquet_atomically
from market.features import compute_features, symbol_chunks
from market.panel import BarPanel
from market.samples import build_samples


@pytest.fixture(scope="module")
def gappy_panel(panel_2005_2011: BarPanel) -> BarPanel:
    """The default universe with a three-session gap in one symbol and a late listing in another:
    the cases where a chunked computation could differ (a gap restarts TA-Lib, a missing symbol
    changes a session's ranks and sector means)."""
    close = panel_2005_2011.close.copy()
    close.iloc[1500:1503, 5] = np.nan
    close.iloc[:1200, 40] = np.nan
    return BarPanel(open=panel_2005_2011.open, high=panel_2005_2011.high, low=panel_2005_2011.low, close=close,
                    volume=panel_2005_2011.volume, proxy=panel_2005_2011.proxy, vix=panel_2005_2011.vix,
                    sectors=panel_2005_2011.sectors)


@pytest.mark.parametrize("partial", [False, True])
def test_chunked_features_equal_the_unchunked_ones_bit_for_bit(gappy_panel: BarPanel, partial: bool) -> None:
    sessions = gappy_panel.sessions[1100:1700]
    whole = compute_features(gappy_panel, sessions, partial=partial, chunk_symbols=len(gappy_panel.symbols))
    for size in (1, 7, 64):
        chunked = compute_features(gappy_panel, sessions, partial=partial, chunk_symbols=size)
        pd.testing.assert_frame_equal(chunked.frame, whole.frame, check_exact=True)
        pd.testing.assert_series_equal(chunked.dropped, whole.dropped)
    # The comparison can fail: the gap and the late listing do change cross-sectional features.
    assert whole.frame["rank_ret_1"].xs(gappy_panel.sessions[1150], level="date").count() == 75
    late = whole.frame.xs(gappy_panel.symbols[40], level="symbol")
    assert (whole.dropped.iloc[40] == 0 and late["ret_250"].isna().any()) if partial else whole.dropped.iloc[40] > 0


def test_chunked_samples_equal_the_unchunked_ones(gappy_panel: BarPanel) -> None:
    for options in ({"partial": True, "require_label": False}, {"barrier": 1.0}):
        whole = build_samples(gappy_panel, "2009-06-01", "2011-12-30", chunk_symbols=1000, **options)
        chunked = build_samples(gappy_panel, "2009-06-01", "2011-12-30", chunk_symbols=9, **options)
        pd.testing.assert_frame_equal(chunked.frame, whole.frame, check_exact=True)
        assert chunked.dropped_unlabelled == whole.dropped_unlabelled
        pd.testing.assert_series_equal(chunked.dropped_lookback, whole.dropped_lookback)


def test_chunks_cover_every_symbol_once() -> None:
    assert symbol_chunks(10, 4) == [slice(0, 4), slice(4, 8), slice(8, 10)]
    assert symbol_chunks(3, 64) == [slice(0, 3)]
    with pytest.raises(ValueError, match="chunk_symbols must be at least 1"):
        symbol_chunks(3, 0)


def test_streamed_parts_read_back_as_their_concatenation(tmp_path: Path) -> None:
    index = pd.MultiIndex.from_product([pd.bdate_range("2024-01-01", periods=3), ["A", "B"]],
                                       names=["date", "symbol"])
    frame = pd.DataFrame({"x": np.arange(6, dtype="float32"),
                          "event": pd.Categorical(list("ppqqpq"), categories=["p", "q"])}, index=index)
    path = tmp_path / "parts.parquet"
    assert stream_parquet_atomically((frame.iloc[:2], frame.iloc[2:2], frame.iloc[2:]), path) == 6
    pd.testing.assert_frame_equal(pd.read_parquet(path), frame)

    other = frame.assign(x=frame["x"].astype("float64"))
    with pytest.raises(ValueError, match="a part's columns differ from the first part's"):
        stream_parquet_atomically((frame.iloc[:2], other.iloc[2:]), tmp_path / "torn.parquet")
    assert not (tmp_path / "torn.parquet").exists() and list(tmp_path.iterdir()) == [path]
