"""Panels of the simulated market shared by the feature and label tests."""

from __future__ import annotations

from datetime import date

import pytest

from market.panel import BarPanel
from tests.panels import simulated_panel


@pytest.fixture(scope="session")
def panel_2005_2011() -> BarPanel:
    """The default universe simulated from 2005 to the end of 2011 (covers the 2008 crisis)."""
    return simulated_panel(date(2011, 12, 30))
