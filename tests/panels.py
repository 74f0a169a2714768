"""Panels of the simulated market for tests in every room."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import yaml

from market.config import SimulatorSettings
from market.panel import BarPanel
from market.sources.simulated import SimulatedSource
from market.universe import Universe
from tests.conftest import DEFAULT_CONFIG


def default_universe() -> Universe:
    return Universe.model_validate(yaml.safe_load(DEFAULT_CONFIG.read_text())["market"]["universe"])


def small_universe(per_sector: int = 2) -> Universe:
    """The first ``per_sector`` symbols of each sector of the default universe."""
    universe = default_universe()
    members = [m for symbols in universe.by_sector().values() for m in symbols[:per_sector]]
    return universe.model_copy(update={"members": tuple(m for m in universe.members if m.symbol in members)})


def simulated_panel(end: date, universe: Universe | None = None, seed: int = 20080915) -> BarPanel:
    """The simulated market from 2005 to ``end`` as a panel (no live period)."""
    universe = universe or default_universe()
    settings = SimulatorSettings(seed=seed, end=end, live_sessions=0, live_storm=None)
    market = SimulatedSource(universe, settings).market()
    return BarPanel.from_bars(
        {s: market.bars[s] for s in universe.symbols},
        market.bars[universe.market_proxy],
        market.vix,
        {m.symbol: m.sector.value for m in universe.members},
    )


def prediction_book(sessions: int = 250, symbols: int = 20, seed: int = 1) -> pd.DataFrame:
    """Forward returns of a (session, symbol) panel, half normal then half crash, two sectors:
    what the backtest and the tracking tests score predictions against."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2024-01-01", periods=sessions)
    index = pd.MultiIndex.from_product([dates, [f"S{i:02d}" for i in range(symbols)]], names=["date", "symbol"])
    regime = np.where(index.get_level_values("date") < dates[sessions // 2], "normal", "crash")
    return pd.DataFrame({"r": rng.normal(0, 0.02, len(index)), "regime": regime,
                         "sector": np.tile(["Energy", "Utilities"] * (symbols // 2), sessions)}, index=index)
