"""Panels of the simulated market shared by the feature, label and archive tests."""

from __future__ import annotations

from datetime import date

import pytest

from market.config import SimulatorSettings
from market.panel import BarPanel
from market.sources.simulated import SimulatedSource
from market.universe import Universe
from tests.conftest import DEFAULT_CONFIG


def default_universe() -> Universe:
    import yaml

    return Universe.model_validate(yaml.safe_load(DEFAULT_CONFIG.read_text())["market"]["universe"])


def simulated_panel(end: date, universe: Universe | None = None, seed: int = 20080915) -> BarPanel:
    universe = universe or default_universe()
    settings = SimulatorSettings(seed=seed, end=end, live_sessions=0, live_storm=None)
    market = SimulatedSource(universe, settings).market()
    return BarPanel.from_bars(
        {s: market.bars[s] for s in universe.symbols},
        market.bars[universe.market_proxy],
        market.vix,
        {m.symbol: m.sector.value for m in universe.members},
    )


@pytest.fixture(scope="session")
def panel_2005_2011() -> BarPanel:
    """The default universe simulated from 2005 to the end of 2011 (covers the 2008 crisis)."""
    return simulated_panel(date(2011, 12, 30))
