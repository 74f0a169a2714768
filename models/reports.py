"""What the per-regime reports of sampling and weighting have in common."""

from __future__ import annotations

from typing import Any

import pandas as pd


class PerRegimeRows:
    """A report holding one frozen row per regime in ``regimes``: look a row up by regime name,
    or see them all as a DataFrame indexed by regime."""

    regimes: tuple[Any, ...]

    def __getitem__(self, regime: str) -> Any:
        for row in self.regimes:
            if row.regime == regime:
                return row
        raise KeyError(regime)

    def to_frame(self) -> pd.DataFrame:
        """The per-regime rows as a DataFrame indexed by regime."""
        return pd.DataFrame([vars(row) for row in self.regimes]).set_index("regime")
