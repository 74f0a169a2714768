"""Rare-event discovery: proposals from rules and change points, windows that extend and close,
known events reported and never grown, state that survives a pickle."""

from __future__ import annotations

import pickle
import random
from datetime import date

import pandas as pd
import pytest

from monitors.rare_events import MarketSession, RareEventDiscovery, VolatilityChangeDetector

DAYS = pd.bdate_range("2024-01-01", periods=120)


def calm_vix(n: int, seed: int = 12345) -> list[float]:
    rng = random.Random(seed)
    return [15 * 2.718 ** rng.gauss(0, 0.06) for _ in range(n)]


def perform_test(detector, stream) -> list[int]:  # noqa: ANN001 - a detector and its inputs
    detections = []
    for i, x in enumerate(stream):
        detector.update(x)
        if detector.drift_detected:
            detections.append(i)
    return detections


def test_a_volatility_change_point_on_a_seeded_storm() -> None:
    stream = calm_vix(200) + [15 * 1.2 ** k for k in range(1, 8)] + [15 * 1.2 ** 7] * 40
    assert perform_test(VolatilityChangeDetector(), stream) == [201]
    # A single fat-tailed day (+25% in the VIX, about four calm standard deviations) is not a
    # change point, and a missing VIX is skipped.
    spike = calm_vix(200) + [19.0] + calm_vix(40, seed=1) + [float("nan"), 0.0]
    assert perform_test(VolatilityChangeDetector(), spike) == []


def sessions(vix: list[float], regimes: list[str | None], rule: str = "25 <= vix <= 35",
             closes: list[float] | None = None) -> list[MarketSession]:
    closes = closes or [100.0] * len(vix)
    return [MarketSession(day, close, level, regime, rule if regime else "vix < 15")
            for day, level, regime, close in zip(DAYS, vix, regimes, closes, strict=False)]


def run(discovery: RareEventDiscovery, stream: list[MarketSession]) -> list[tuple[date, str, str]]:
    seen = []
    for x in stream:
        discovery.update(x)
        seen += [(x.session.date(), c.kind, c.event.name) for c in discovery.changes if c.kind != "extended"]
    return seen


def test_a_rule_held_for_min_sessions_proposes_an_event_whose_window_starts_with_the_run() -> None:
    regimes = ["low_volatility"] * 40 + ["high_volatility"] * 2 + ["low_volatility"] + ["high_volatility"] * 8 \
        + ["low_volatility"] * 3 + ["high_volatility"] + ["low_volatility"] * 20
    vix = [14.0 if r == "low_volatility" else 27.0 for r in regimes]
    discovery = RareEventDiscovery(min_sessions=3, max_gap_sessions=5, change_point_threshold=10.0)
    assert run(discovery, sessions(vix, regimes)) == [
        # high volatility alone proposes on the 5th session (a crash or recovery on the 3rd)
        (DAYS[47].date(), "proposed", f"storm of {DAYS[43].date()}"),
        (DAYS[60].date(), "closed", f"storm of {DAYS[43].date()}"),  # the 3-session gap is bridged
    ]
    (event,) = discovery.events
    assert (event.start, event.end, event.sessions) == (DAYS[43], DAYS[54], 9)
    assert event.regime == "high_volatility" and event.peak_vix == 27.0 and event.status == "closed"
    assert event.evidence[0].detail == "25 <= vix <= 35 for 5 sessions"
    crash = RareEventDiscovery(change_point_threshold=10.0)
    seen = run(crash, sessions([40.0] * 60, ["normal"] * 40 + ["crash"] * 4 + ["normal"] * 16, rule="vix > 35"))
    assert seen[0] == (DAYS[42].date(), "proposed", f"storm of {DAYS[40].date()}")


def test_a_change_point_proposes_at_once_but_only_with_the_vix_high_enough() -> None:
    vix = calm_vix(60) + [15 * 1.25 ** k for k in range(1, 5)] + [36.0] * 10 + calm_vix(30, seed=3)
    regimes = ["normal"] * 60 + ["normal", "normal", "high_volatility", "high_volatility"] + ["crash"] * 10 \
        + ["normal"] * 30
    discovery = RareEventDiscovery(change_point_min_vix=20.0)
    seen = run(discovery, sessions(vix, regimes, rule="vix > 35"))
    assert seen[0] == (DAYS[61].date(), "proposed", f"storm of {DAYS[61].date()}")
    assert discovery.events[0].evidence[0].kind == "change point"
    assert discovery.events[0].regime == "crash"
    # The same jump from a low VIX (11 to 17) is a change of volatility, not a storm.
    low = calm_vix(60) + [11 * 1.15 ** k for k in range(1, 5)] + calm_vix(30, seed=3)
    quiet = RareEventDiscovery(change_point_min_vix=20.0)
    assert run(quiet, sessions([v * 0.75 for v in low], ["low_volatility"] * len(low))) == []


def test_a_crash_and_its_recovery_are_one_event_and_a_recovery_alone_is_one_too() -> None:
    regimes = ["normal"] * 30 + ["crash"] * 6 + ["recovery"] * 12 + ["normal"] * 20
    discovery = RareEventDiscovery(change_point_threshold=10.0)
    seen = run(discovery, sessions([30.0] * len(regimes), regimes, rule="fall >= 15% in 10 sessions"))
    assert [kind for _, kind, _ in seen] == ["proposed", "closed"]
    (event,) = discovery.events
    assert event.regime == "crash" and (event.start, event.end) == (DAYS[30], DAYS[47])
    alone = RareEventDiscovery(change_point_threshold=10.0)
    run(alone, sessions([20.0] * 40, ["normal"] * 20 + ["recovery"] * 5 + ["normal"] * 15))
    assert [e.regime for e in alone.events] == ["recovery"]


def test_an_event_overlapping_a_configured_window_is_known_and_extends_nothing() -> None:
    regimes = ["normal"] * 30 + ["high_volatility"] * 10 + ["normal"] * 20
    known = [("2024 test storm", DAYS[28].date(), DAYS[33].date())]
    discovery = RareEventDiscovery(change_point_threshold=10.0, known=known)
    seen = run(discovery, sessions([27.0] * len(regimes), regimes))
    assert [kind for _, kind, _ in seen] == ["known", "closed"]  # never proposed as new
    (event,) = discovery.events
    assert event.known_as == "2024 test storm" and event.status == "known"
    # A storm that began before a configured window was proposed, and is known once it reaches it.
    later = [("2024 later storm", DAYS[35].date(), DAYS[50].date())]
    discovery = RareEventDiscovery(change_point_threshold=10.0, known=later)
    seen = run(discovery, sessions([27.0] * len(regimes), regimes))
    assert [kind for _, kind, _ in seen] == ["proposed", "known", "closed"]
    assert discovery.events[0].known_as == "2024 later storm"


def test_drawdown_and_fallback_are_carried_as_evidence() -> None:
    closes = [100.0] * 30 + [90.0, 84.0, 80.0, 78.0] + [79.0] * 20
    regimes = ["normal"] * 30 + ["crash"] * 4 + ["normal"] * 20
    stream = [MarketSession(day, c, 40.0, r, "fall >= 15% in 10 sessions", vix_is_fallback=True)
              for day, c, r in zip(DAYS, closes, regimes, strict=False)]
    discovery = RareEventDiscovery(change_point_threshold=10.0)
    run(discovery, stream)
    (event,) = discovery.events
    assert event.drawdown == pytest.approx(-0.22) and event.vix_fallback and event.regime == "crash"


def test_state_survives_a_pickle_and_sessions_must_arrive_in_order() -> None:
    regimes = ["normal"] * 30 + ["high_volatility"] * 10 + ["normal"] * 20
    stream = sessions([27.0 if r != "normal" else 18.0 for r in regimes], regimes)
    whole = RareEventDiscovery()
    expected = run(whole, stream)
    half = RareEventDiscovery()
    first = run(half, stream[:35])
    restored = pickle.loads(pickle.dumps(half))
    assert first + run(restored, stream[35:]) == expected
    with pytest.raises(ValueError, match="sessions must arrive in order"):
        restored.update(stream[0])
