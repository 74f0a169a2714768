"""The hybrid training set: the recent window, the rare-event archive and the replay buffer.

A model trained on the rolling window alone forgets what it has not seen for three years; the
archive brings back every configured storm and the replay buffer the model's own worst
mistakes. This module puts the three together, each row tagged with where it came from
(``provenance``: ``window``, ``archive`` or ``replay``, plus the archive ``event``), and reports
rows per provenance and regime. Balancing (module 3) and weighting (module 5) come after, in
``models``; this room only remembers.

Every part reaching :func:`assemble_hybrid` must already be purged against the validation
sets: the assembly only draws from what it is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from market.samples import Samples
from market.vocabulary import REGIMES
from memory.config import ArchiveEvent, HybridConfig, ReplayConfig


@dataclass(frozen=True)
class HybridSet:
    """The assembled rows and the account of where they came from.

    ``counts``: rows per source (``window``, ``archive · <event>``, ``replay``) and regime, with
    totals; ``archive_shares``: each event's configured weight, available rows and rows taken.
    """

    samples: Samples
    counts: pd.DataFrame
    archive_shares: pd.DataFrame


def _largest_remainder(shares: np.ndarray, total: int) -> np.ndarray:
    raw = shares * total
    counts = np.floor(raw).astype(np.int64)
    short = total - int(counts.sum())
    if short > 0:
        counts[np.argsort(-(raw - counts), kind="stable")[:short]] += 1
    return counts


def archive_by_event_weight(
    archive: Samples,
    events: Sequence[ArchiveEvent],
    *,
    rows: int | str = "all",
    seed: int = 0,
) -> tuple[Samples, pd.DataFrame]:
    """Archive rows redrawn so that each event's share of them is its configured weight.

    The 2018 Volmageddon is one month, the 2022 bear a whole year; without redrawing, the long
    events would dominate whatever their weight says. Each event gets
    ``round(weight * total)`` rows (largest remainder, renormalised over the events present):
    an event with more rows than that keeps a random subset without replacement; one with fewer
    keeps every row and draws the rest with replacement. The total is ``rows`` or the number of
    archive rows given, whichever is smaller (``rows="all"``: every one): a small universe's
    archive is not inflated with copies of its own rows.

    Returns the redrawn rows and a table of event, weight, available and taken rows.
    """
    if "event" not in archive.rows.columns:
        raise KeyError("archive samples need an 'event' column")
    names = archive.rows["event"].astype(str).to_numpy()
    present = [e for e in events if (names == e.name).any()]
    unknown = sorted(set(names) - {e.name for e in events})
    if unknown:
        raise ValueError(f"archive rows of events not in the configuration: {', '.join(unknown)}")
    total = len(archive) if rows == "all" else min(int(rows), len(archive))  # at most what it holds
    table = []
    if not present or total == 0:
        return archive.take(np.empty(0, dtype=np.int64)), pd.DataFrame(
            columns=["event", "weight", "share", "available", "taken"])
    weights = np.array([e.weight for e in present])
    targets = _largest_remainder(weights / weights.sum(), total)
    rng = np.random.default_rng(seed)
    picked = []
    for event, target in zip(present, targets, strict=True):
        positions = np.flatnonzero(names == event.name)
        if target <= len(positions):
            chosen = np.sort(rng.choice(positions, size=target, replace=False))
        else:
            extra = rng.choice(positions, size=target - len(positions), replace=True)
            chosen = np.concatenate([positions, np.sort(extra)])
        picked.append(chosen)
        table.append({"event": event.name, "weight": event.weight, "share": target / total,
                      "available": len(positions), "taken": int(target)})
    return archive.take(np.concatenate(picked)), pd.DataFrame(table)


def cap_replay(replay: Samples, other_rows: int, config: ReplayConfig) -> Samples:
    """At most ``max_share_of_training`` of the final set from replay, the highest losses first.

    With ``r`` replay rows among ``n`` non-replay rows the share is ``r / (n + r)``; the cap
    keeps the largest ``r`` with ``r <= share * (n + r)``.
    """
    share = config.max_share_of_training
    limit = int(np.floor(share * other_rows / (1.0 - share))) if share < 1 else len(replay)
    if len(replay) <= limit:
        return replay
    loss = replay.rows["loss"].to_numpy() if "loss" in replay.rows.columns else np.zeros(len(replay))
    order = np.argsort(-loss, kind="stable")[:limit]
    return replay.take(np.sort(order))


def _source(samples: Samples) -> np.ndarray:
    provenance = samples.rows["provenance"].astype(str)
    if "event" not in samples.rows.columns:
        return provenance.to_numpy()
    named = "archive · " + samples.rows["event"].astype(str)
    return np.where(provenance == "archive", named, provenance)


def provenance_counts(samples: Samples) -> pd.DataFrame:
    """Rows per source (window, each archive event, replay) and regime, with totals."""
    regimes = samples.rows["regime"].astype(str).to_numpy()
    frame = pd.DataFrame({"source": _source(samples), "regime": regimes})
    table = pd.crosstab(frame["source"], frame["regime"], margins=True, margins_name="total")
    columns = [r.value for r in REGIMES if r.value in table.columns] + ["total"]
    return table.reindex(columns=columns, fill_value=0)


def assemble_hybrid(
    window: Samples,
    archive: Samples | None,
    replay: Samples | None,
    *,
    events: Sequence[ArchiveEvent],
    hybrid: HybridConfig,
    replay_config: ReplayConfig,
) -> HybridSet:
    """Window rows, archive rows at their events' shares, and capped replay rows, in that order.

    Every part must carry ``regime`` and ``label_end`` in its rows; ``provenance`` is set here.
    ``archive`` or ``replay`` may be ``None`` (switched off, or nothing there yet).
    """
    parts = [window.assign(provenance="window")]
    shares = pd.DataFrame(columns=["event", "weight", "share", "available", "taken"])
    if archive is not None and len(archive):
        drawn, shares = archive_by_event_weight(archive, events, rows=hybrid.archive_rows, seed=hybrid.seed)
        parts.append(drawn.assign(provenance="archive"))
    if replay is not None and len(replay):
        others = sum(len(p) for p in parts)
        parts.append(cap_replay(replay, others, replay_config).assign(provenance="replay"))
    parts = [part if "event" in part.rows.columns else part.assign(event="") for part in parts]
    samples = Samples.concat(parts)
    return HybridSet(samples=samples, counts=provenance_counts(samples), archive_shares=shares)


__all__ = ["HybridSet", "archive_by_event_weight", "assemble_hybrid", "cap_replay", "provenance_counts"]
