"""Sector and symbol tracking names the weak spots, with the counts behind them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitors.tracking import plot_sector_regime, track
from tests.panels import prediction_book


@pytest.fixture(scope="module")
def book() -> pd.DataFrame:
    return prediction_book()


def test_tracking_names_the_weak_sector_with_its_count(book: pd.DataFrame, tmp_path) -> None:
    y = (book["r"] > 0).astype(int).to_numpy()
    p = np.where(book["sector"] == "Energy", 0.5 + 0.1 * (2 * y - 1), 0.5 - 0.1 * (2 * y - 1))  # utilities wrong
    report = track(y, p, sectors=book["sector"], symbols=book.index.get_level_values("symbol"),
                   regimes=book["regime"], min_rows=100)
    assert report.by_sector.loc["Energy", "accuracy"] == 1.0 and report.by_sector.loc["Utilities", "accuracy"] == 0.0
    assert report.weakest_sectors.index[0] == "Utilities" and report.weakest_sectors["n"].iloc[0] == 2500
    assert report.weakest_symbols["sector"].eq("Utilities").all()
    few = track(y[:50], p[:50], sectors=book["sector"][:50], symbols=book.index.get_level_values("symbol")[:50],
                regimes=book["regime"][:50], min_rows=100)
    assert few.weakest_symbols.empty  # two or three rows a symbol: nobody is called weak
    assert plot_sector_regime(report, tmp_path / "heat.png").stat().st_size > 5_000
