"""The promotion gate on synthetic predictions whose quality per regime is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.config import GateConfig
from models.gate import PromotionGate, expected_calibration_error

N_SESSIONS, PER_SESSION = 400, 12


@pytest.fixture(scope="module")
def rows() -> dict:
    rng = np.random.default_rng(3)
    dates = np.repeat(pd.bdate_range("2023-01-02", periods=N_SESSIONS).to_numpy(), PER_SESSION)
    n = len(dates)
    regimes = np.where(np.arange(n) % 4 == 0, "crash", "normal")
    y = rng.integers(0, 2, n)
    return {"dates": dates, "regimes": regimes, "y": y, "rng": rng}


def model(rows: dict, skill: dict[str, float], seed: int) -> np.ndarray:
    """Probabilities right-signed with strength ``skill[regime]`` (negative: wrong-signed)."""
    rng = np.random.default_rng(seed)
    strength = np.vectorize(skill.get)(rows["regimes"])
    signal = np.where(rng.uniform(size=len(rows["y"])) < 0.5 + strength, 2 * rows["y"] - 1, 1 - 2 * rows["y"])
    return np.clip(0.5 + 0.08 * signal + rng.normal(0, 0.02, len(signal)), 0.01, 0.99)


def decide(rows: dict, challenger: np.ndarray, champion: np.ndarray | None, **config):
    gate = PromotionGate(GateConfig(**config), horizon=5)
    return gate.decide(challenger, rows["y"], rows["regimes"], rows["dates"], champion=champion)


def verdicts(decision) -> dict[str, str]:
    return {c.name: c.verdict for c in decision.criteria}


def test_a_challenger_worse_in_crash_is_refused_even_when_better_overall(rows: dict) -> None:
    champion = model(rows, {"normal": 0.05, "crash": 0.08}, seed=1)
    challenger = model(rows, {"normal": 0.12, "crash": 0.02}, seed=2)  # better in calm, worse in crash
    acc = lambda p: ((p > 0.5) == rows["y"]).mean()  # noqa: E731
    assert acc(challenger) > acc(champion)
    decision = decide(rows, challenger, champion)
    assert not decision.promote
    assert verdicts(decision)["crash accuracy"] == "fail"
    assert any(reason.startswith("crash accuracy") for reason in decision.reasons)


def test_a_challenger_better_on_every_criterion_is_promoted(rows: dict) -> None:
    champion = model(rows, {"normal": 0.03, "crash": 0.03}, seed=1)
    challenger = model(rows, {"normal": 0.10, "crash": 0.10}, seed=2)
    decision = decide(rows, challenger, champion)
    assert decision.promote, decision.reasons
    assert set(verdicts(decision).values()) == {"pass"}


def test_a_regime_below_the_minimum_count_is_untested_never_passed(rows: dict) -> None:
    champion = model(rows, {"normal": 0.03, "crash": 0.03}, seed=1)
    challenger = model(rows, {"normal": 0.10, "crash": -0.2}, seed=2)  # terrible in crash ...
    decision = decide(rows, challenger, champion, min_regime_samples=len(rows["y"]))  # ... but too few rows
    assert verdicts(decision)["crash accuracy"] == "untested"
    assert verdicts(decision)["normal accuracy"] == "untested"
    assert "untested" in next(c.detail for c in decision.criteria if c.name == "crash accuracy")


def test_the_first_model_must_clear_the_floors(rows: dict) -> None:
    good = model(rows, {"normal": 0.10, "crash": 0.10}, seed=4)
    first = decide(rows, good, None)
    assert first.first_model and first.promote, first.reasons
    coin = np.full(len(rows["y"]), 0.5) + np.random.default_rng(5).normal(0, 0.01, len(rows["y"]))
    refused = decide(rows, coin, None)
    assert not refused.promote and verdicts(refused)["floor: overall accuracy"] == "fail"


def test_significantly_worse_overall_fails_the_test_that_respects_overlap(rows: dict) -> None:
    champion = model(rows, {"normal": 0.10, "crash": 0.10}, seed=1)
    challenger = model(rows, {"normal": 0.0, "crash": 0.0}, seed=2)
    decision = decide(rows, challenger, champion)
    criterion = next(c for c in decision.criteria if c.name == "not significantly worse")
    assert criterion.verdict == "fail" and criterion.value < 0.05 and "HAC lags" in criterion.detail


def test_calibration_error_measures_miscalibration() -> None:
    y = np.array([0, 1] * 500)
    assert expected_calibration_error(y, np.full(1000, 0.5)) == pytest.approx(0.0)
    assert expected_calibration_error(y, np.full(1000, 0.9)) == pytest.approx(0.4)
