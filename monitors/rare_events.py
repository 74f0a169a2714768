"""Rare-event discovery (SPEC.md module 7): proposing new archive events from live sessions.

A storm is proposed as a new archive event when either

* the regime rules (:mod:`monitors.regimes`) hold crash, recovery or high volatility for
  ``min_sessions`` consecutive sessions, or
* the market's volatility has a change point: river's ``PageHinkley`` on the daily change of
  log VIX (:class:`VolatilityChangeDetector`), which sees a storm's first sessions before the
  VIX has crossed a regime threshold. A change point counts once the VIX stands at
  ``change_point_min_vix`` or more, on its session or within ``min_sessions`` after it: a jump
  from 11 to 15 is a change of volatility, not a storm.

The proposal carries its window, regime and evidence (the rules and change points that fired,
the market proxy's worst drawdown from its trailing high, the peak VIX and whether it was the
realised-volatility fallback). Its window extends on every session the storm lasts and the
event closes after more than ``max_gap_sessions`` quiet sessions. An event whose window
overlaps a configured (known) archive window is reported as known and extends nothing.

Both classes are plain Python and picklable: a monitor saves them after a cycle and restores
them before the next, and one cycle is one ``update`` with the newest session.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Literal

import pandas as pd
from river.base import DriftDetector
from river.drift import PageHinkley

from market.vocabulary import Regime
from monitors.config import RareEventDetection

__all__ = [
    "EventChange", "Evidence", "MarketSession", "ProposedEvent", "RareEventDiscovery",
    "VolatilityChangeDetector",
]

STORM_REGIMES = frozenset({Regime.CRASH.value, Regime.RECOVERY.value, Regime.HIGH_VOLATILITY.value})
#: An event's regime is the most severe one seen in its window.
SEVERITY = (Regime.CRASH.value, Regime.HIGH_VOLATILITY.value, Regime.RECOVERY.value)
CHANGE_POINT = "volatility change point"


class VolatilityChangeDetector(DriftDetector):
    """A change point upwards in the market's volatility: river's ``PageHinkley`` (``mode="up"``)
    on the daily change of log VIX.

    The VIX is the market's own gauge of expected volatility, and its daily log change is close
    to stationary (its level is not), so the running mean PageHinkley compares against stays
    near zero in calm markets; a storm's first sessions lift log VIX by 0.15 to 0.3 a day
    against a calm standard deviation near 0.06, so the cumulative rise crosses ``threshold``
    within two or three sessions, while a single fat-tailed day does not. ``delta`` is the rise
    per session that is tolerated without accumulating. A missing or non-positive VIX is
    skipped. After an alarm the detector starts afresh (``min_sessions`` before the next).

    Parameters
    ----------
    threshold
        Cumulative rise of log VIX (above ``delta`` a session) that is a change point.
    delta
        Tolerated rise per session.
    min_sessions
        Changes PageHinkley sees before it may alarm.

    Examples
    --------
    A calm VIX near 15 for a year, then a storm that doubles it over five sessions.

    >>> import random
    >>> rng = random.Random(12345)
    >>> calm = [15 * 2.718 ** rng.gauss(0, 0.08) for _ in range(250)]
    >>> storm = [calm[-1] * 1.18 ** k for k in range(1, 6)]
    >>> detector = VolatilityChangeDetector()
    >>> for i, vix in enumerate(calm + storm):
    ...     detector.update(vix)
    ...     if detector.drift_detected:
    ...         print(f"Change detected at index {i}, input value: {vix:.1f}")
    Change detected at index 252, input value: 22.1
    """

    def __init__(self, threshold: float = 0.3, delta: float = 0.05, min_sessions: int = 30) -> None:
        super().__init__()
        self.threshold = threshold
        self.delta = delta
        self.min_sessions = min_sessions
        self._reset()

    def _reset(self) -> None:
        super()._reset()
        self._page_hinkley = PageHinkley(min_instances=self.min_sessions, delta=self.delta,
                                         threshold=self.threshold, mode="up")
        self._last_log: float | None = None

    def update(self, x: float) -> None:
        """Add the newest session's VIX (observed or fallback)."""
        if self.drift_detected:
            self._reset()
        if x is None or not math.isfinite(x) or x <= 0:
            return
        level = math.log(x)
        if self._last_log is not None:
            self._page_hinkley.update(level - self._last_log)
            self._drift_detected = self._page_hinkley.drift_detected
        self._last_log = level


@dataclass(frozen=True)
class MarketSession:
    """What rare-event discovery reads of one session: the market proxy's close, the VIX
    (observed, or the realised-volatility fallback) and the causal regime label with its rule."""

    session: pd.Timestamp
    close: float
    vix: float
    regime: str | None
    rule: str = ""
    vix_is_fallback: bool = False


@dataclass(frozen=True)
class Evidence:
    """Why an event was proposed or grew: a regime rule or a volatility change point."""

    session: pd.Timestamp
    kind: Literal["rule", "change point"]
    detail: str

    def describe(self) -> str:
        return f"{self.detail} ({self.session.date()})"


@dataclass(frozen=True)
class ProposedEvent:
    """A rare event seen in live data, with its window, regime and evidence.

    ``name`` (``"storm of 2026-12-18"``) depends only on the first session, so seeing the same
    event again gives the same name (idempotent recording). ``regime`` is the most severe regime
    of the window: crash once any crash session is in it, else high_volatility, else recovery.
    A crash and the recovery the rules label after it are one event: the recovery rule runs 63
    sessions after the crash low whatever the market does, so on its own it would propose
    storms that the market has long left.
    ``known_as`` names the configured archive event it overlaps, if any: such an event is
    reported, never added.
    """

    name: str
    regime: str
    start: pd.Timestamp
    end: pd.Timestamp
    proposed_on: pd.Timestamp
    sessions: int
    evidence: tuple[Evidence, ...]
    drawdown: float
    peak_vix: float
    vix_fallback: bool
    closed_on: pd.Timestamp | None = None
    known_as: str | None = None

    @property
    def status(self) -> str:
        if self.known_as is not None:
            return "known"
        return "open" if self.closed_on is None else "closed"

    def describe(self) -> str:
        known = f", known: {self.known_as}" if self.known_as else ""
        evidence = "; ".join(e.describe() for e in self.evidence[:3])
        return (f"{self.name}: {self.regime} {self.start.date()}..{self.end.date()} "
                f"({self.sessions} sessions, "
                f"drawdown {self.drawdown:.1%}, peak VIX {self.peak_vix:.1f}"
                f"{' fallback' if self.vix_fallback else ''}{known}) evidence: {evidence}")


@dataclass(frozen=True)
class EventChange:
    """What happened to an event on one update."""

    kind: Literal["proposed", "extended", "closed", "known"]
    event: ProposedEvent


@dataclass
class _Tracker:
    """The open event and the run of rule sessions leading to the next."""

    run: int = 0
    run_start: pd.Timestamp | None = None
    run_rule: str = ""
    run_severe: bool = False  # a crash or recovery session in the run
    event: ProposedEvent | None = None
    quiet: int = 0


class RareEventDiscovery:
    """Propose, extend and close rare events from one session at a time.

    Parameters
    ----------
    min_sessions
        Consecutive sessions a rule must hold crash or recovery (with high volatility) to propose.
    high_volatility_min_sessions
        The same for a run of high volatility alone: the VIX rules read noise in a calm VIX near
        25 as three sessions of high volatility now and then, a storm holds it for weeks.
    max_gap_sessions
        Quiet sessions an open event bridges; the next one closes it.
    change_point_threshold, change_point_delta, change_point_min_sessions
        The :class:`VolatilityChangeDetector`.
    change_point_min_vix
        The VIX level at which a change point counts.
    drawdown_sessions
        Sessions of the trailing high that drawdowns are measured from.
    known
        ``(name, first day, last day)`` of the configured archive events.

    Examples
    --------
    A calm market whose VIX rises past 25 on the 41st session and stays there for 9 sessions.

    >>> import pandas as pd
    >>> discovery = RareEventDiscovery(known=[("2020 COVID crash", date(2020, 2, 20), date(2020, 3, 23))])
    >>> days = pd.bdate_range("2024-01-01", periods=60)
    >>> vix = [14.0] * 40 + [27.0] * 9 + [14.0] * 11
    >>> for day, level in zip(days, vix):
    ...     regime = "high_volatility" if level > 25 else "low_volatility"
    ...     rule = "25 <= vix <= 35"
    ...     discovery.update(MarketSession(day, close=100.0, vix=level, regime=regime, rule=rule))
    ...     for change in discovery.changes:
    ...         print(day.date(), change.kind, change.event.name, change.event.end.date())
    2024-02-26 proposed storm of 2024-02-26 2024-02-26
    2024-02-27 extended storm of 2024-02-26 2024-02-27
    2024-02-28 extended storm of 2024-02-26 2024-02-28
    2024-02-29 extended storm of 2024-02-26 2024-02-29
    2024-03-01 extended storm of 2024-02-26 2024-03-01
    2024-03-04 extended storm of 2024-02-26 2024-03-04
    2024-03-05 extended storm of 2024-02-26 2024-03-05
    2024-03-06 extended storm of 2024-02-26 2024-03-06
    2024-03-07 extended storm of 2024-02-26 2024-03-07
    2024-03-15 closed storm of 2024-02-26 2024-03-07
    """

    def __init__(
        self,
        *,
        min_sessions: int = 3,
        high_volatility_min_sessions: int = 5,
        max_gap_sessions: int = 5,
        change_point_threshold: float = 0.3,
        change_point_delta: float = 0.05,
        change_point_min_sessions: int = 30,
        change_point_min_vix: float = 20.0,
        drawdown_sessions: int = 252,
        known: Sequence[tuple[str, date, date]] = (),
    ) -> None:
        self.min_sessions = min_sessions
        self.high_volatility_min_sessions = high_volatility_min_sessions
        self.max_gap_sessions = max_gap_sessions
        self.change_point_threshold = change_point_threshold
        self.change_point_delta = change_point_delta
        self.change_point_min_sessions = change_point_min_sessions
        self.change_point_min_vix = change_point_min_vix
        self.drawdown_sessions = drawdown_sessions
        self.known = tuple(known)
        self._reset()

    @classmethod
    def from_config(cls, settings: RareEventDetection,
                    known: Sequence[tuple[str, date, date]] = ()) -> RareEventDiscovery:
        """Discovery with the settings of ``monitors.rare_events`` and the configured events."""
        return cls(min_sessions=settings.min_sessions,
                   high_volatility_min_sessions=settings.high_volatility_min_sessions,
                   max_gap_sessions=settings.max_gap_sessions,
                   change_point_threshold=settings.change_point_threshold,
                   change_point_delta=settings.change_point_delta,
                   change_point_min_sessions=settings.change_point_min_sessions,
                   change_point_min_vix=settings.change_point_min_vix,
                   drawdown_sessions=settings.drawdown_sessions, known=known)

    def _reset(self) -> None:
        self._volatility = VolatilityChangeDetector(self.change_point_threshold, self.change_point_delta,
                                                    self.change_point_min_sessions)
        self._closes: deque[float] = deque(maxlen=self.drawdown_sessions)
        self._tracker = _Tracker()
        self._changes: tuple[EventChange, ...] = ()
        self._events: dict[str, ProposedEvent] = {}
        self._change_point = False
        self._armed = 0  # sessions left for a change point to be confirmed by the VIX level
        self._last: pd.Timestamp | None = None

    @property
    def changes(self) -> tuple[EventChange, ...]:
        """What the last update proposed, extended, closed or found known."""
        return self._changes

    @property
    def event_proposed(self) -> bool:
        """Whether the last update proposed a new event (a known one is not new)."""
        return any(c.kind == "proposed" for c in self._changes)

    @property
    def change_point(self) -> bool:
        """Whether the last update confirmed a volatility change point."""
        return self._change_point

    @property
    def events(self) -> tuple[ProposedEvent, ...]:
        """Every event seen so far, open, closed or known, in the order they began."""
        return tuple(self._events.values())

    def update(self, x: MarketSession) -> None:
        """Read the newest session.

        Raises
        ------
        ValueError
            If sessions do not arrive in increasing order.
        """
        session = pd.Timestamp(x.session)
        if self._last is not None and session <= self._last:
            raise ValueError(f"sessions must arrive in order: {session.date()} after {self._last.date()}")
        self._last = session
        if math.isfinite(x.close):
            self._closes.append(float(x.close))
        drawdown = x.close / max(self._closes) - 1.0 if self._closes and math.isfinite(x.close) else 0.0
        self._volatility.update(x.vix)
        if self._volatility.drift_detected:
            self._armed = self.min_sessions
        high = math.isfinite(x.vix) and x.vix >= self.change_point_min_vix
        self._change_point = self._armed > 0 and high
        self._armed = 0 if self._change_point else max(0, self._armed - 1)
        stormy = x.regime in STORM_REGIMES
        self._changes = tuple(self._step(self._tracker, x, session, stormy, self._change_point, drawdown))

    def _step(self, tracker: _Tracker, x: MarketSession, session: pd.Timestamp,
              in_family: bool, change_point: bool, drawdown: float) -> list[EventChange]:
        if in_family:
            if tracker.run == 0:
                tracker.run_start, tracker.run_rule, tracker.run_severe = session, x.rule, False
            tracker.run += 1
            tracker.run_severe = tracker.run_severe or x.regime != Regime.HIGH_VOLATILITY.value
        else:
            tracker.run = 0
        needed = self.min_sessions if tracker.run_severe else self.high_volatility_min_sessions
        evidence = []
        if change_point:
            detail = f"{CHANGE_POINT}: log VIX rose more than {self.change_point_threshold:g}"
            evidence.append(Evidence(session, "change point", detail))
        event = tracker.event
        if event is None:
            if tracker.run >= needed:
                assert tracker.run_start is not None
                evidence.insert(0, Evidence(tracker.run_start, "rule",
                                            f"{tracker.run_rule} for {needed} sessions"))
                start = tracker.run_start
            elif change_point:
                start = session
            else:
                return []
            event = ProposedEvent(
                name=f"storm of {start.date()}", regime=self._regime(x.regime, None), start=start,
                end=session, proposed_on=session,
                sessions=0, evidence=tuple(evidence), drawdown=min(drawdown, 0.0), peak_vix=x.vix,
                vix_fallback=x.vix_is_fallback)
            event = replace(event, sessions=tracker.run if tracker.run >= needed else 1)
            return self._publish(tracker, event, "proposed")
        if in_family or change_point:
            seen = any(e.kind == "rule" and x.rule in e.detail for e in event.evidence)
            if in_family and x.rule and not seen:
                evidence.insert(0, Evidence(session, "rule", x.rule))
            tracker.quiet = 0
            grown = replace(
                event, end=session, sessions=event.sessions + 1, regime=self._regime(x.regime, event),
                evidence=event.evidence + tuple(evidence), drawdown=min(event.drawdown, drawdown),
                peak_vix=max(event.peak_vix, x.vix) if math.isfinite(x.vix) else event.peak_vix,
                vix_fallback=event.vix_fallback or x.vix_is_fallback)
            return self._publish(tracker, grown, "extended")
        tracker.quiet += 1
        if tracker.quiet > self.max_gap_sessions:
            tracker.quiet = 0
            return self._publish(tracker, replace(event, closed_on=session), "closed")
        return []

    def _regime(self, regime: str | None, event: ProposedEvent | None) -> str:
        seen = [r for r in (regime, event.regime if event is not None else None) if r in SEVERITY]
        # A change point alone, before any rule fired, reads as high volatility.
        return min(seen, key=SEVERITY.index) if seen else Regime.HIGH_VOLATILITY.value

    def _publish(self, tracker: _Tracker, event: ProposedEvent, kind: str) -> list[EventChange]:
        """Record ``event``'s new state; an event overlapping a known window becomes known once."""
        was_known = tracker.event is not None and tracker.event.known_as is not None
        if event.known_as is None:
            for name, first, last in self.known:
                if event.start <= pd.Timestamp(last) and event.end >= pd.Timestamp(first):
                    event = replace(event, known_as=name)
                    break
        tracker.event = None if event.closed_on is not None else event
        self._events[event.name] = event
        if event.known_as is not None:
            # A known event is reported once, when it becomes known (and when it ends), never grown.
            if not was_known:
                return [EventChange("known", event)]
            return [EventChange("closed", event)] if kind == "closed" else []
        return [EventChange(kind, event)]  # type: ignore[arg-type]
