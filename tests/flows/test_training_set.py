"""The retraining's assembly (``flows.training.assemble_training_set``) hands the sampler each
row's session, so a regime seen on a handful of sessions of a wide universe is kept once."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flows.config import load_config
from flows.training import assemble_training_set
from market.samples import Samples
from models.config import TrainingConfig

SYMBOLS = [f"S{i:02d}" for i in range(20)]


def window(regime_sessions: dict[str, int]) -> Samples:
    """Every symbol on every session; each regime on consecutive sessions."""
    regimes = np.repeat(list(regime_sessions), list(regime_sessions.values()))
    dates = pd.bdate_range("2023-01-02", periods=regimes.size)
    index = pd.MultiIndex.from_product([dates, SYMBOLS], names=["date", "symbol"])
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"ret_1": rng.normal(size=len(index)), "label": rng.integers(0, 2, len(index)),
                          "forward_return": 0.0, "label_end": index.get_level_values("date") + pd.Timedelta(days=7),
                          "regime": np.repeat(regimes, len(SYMBOLS))}, index=index)
    return Samples.from_frame(frame, ["ret_1"])


@pytest.mark.parametrize(("min_sessions", "sparse"), [(0, ()), (10, ("recovery",))])
def test_a_recovery_of_five_sessions_is_sparse_by_sessions_not_rows(min_sessions: int, sparse: tuple) -> None:
    config = load_config().config
    sampling = config.models.sampling.model_copy(update={"min_regime_sessions": min_sessions})
    config = config.model_copy(update={"models": config.models.model_copy(update={"sampling": sampling})})
    # 5 recovery sessions are 100 rows: more than 10, fewer than 10 sessions.
    samples = window({"normal": 200, "low_volatility": 60, "high_volatility": 40, "crash": 30, "recovery": 5})
    built = assemble_training_set(config, samples, None, None,
                                  TrainingConfig(archive=False, balance=True, weights=True, replay=False))
    recovery = next(r for r in built.sampling["regimes"] if r["regime"] == "recovery")
    if sparse:
        assert recovery["count_after"] == 100 and recovery["oversampled"] == 0
        assert "fewer than 10 sessions of recovery (5 session(s), 100 rows)" in built.sampling["note"]
    else:
        assert recovery["oversampled"] > 0 and built.sampling["note"] == ""
    assert (built.samples.rows["regime"].astype(str) == "recovery").sum() == recovery["count_after"]
