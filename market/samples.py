"""Labelled samples for any window: one row per (session, symbol) with features, label, the
label's end date, sector and provenance (the original system's ``generate_labeled_data``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

import pandas as pd

from market.features import compute_features
from market.labels import make_labels
from market.panel import BarPanel

#: Columns a sample frame carries besides its features.
SAMPLE_COLUMNS: tuple[str, ...] = ("label", "forward_return", "label_end", "sector", "provenance")


@dataclass(frozen=True)
class SampleSet:
    """Samples and an account of the rows that could not become samples.

    ``frame``: index ``(date, symbol)``, the feature columns, then :data:`SAMPLE_COLUMNS`.
    ``dropped_lookback``: per symbol, rows with a bar but without a full feature lookback.
    ``dropped_unlabelled``: rows with features but no label yet (the horizon runs past the data).
    """

    frame: pd.DataFrame
    feature_names: tuple[str, ...]
    dropped_lookback: pd.Series
    dropped_unlabelled: int


def build_samples(
    panel: BarPanel,
    start: date | pd.Timestamp,
    end: date | pd.Timestamp,
    *,
    horizon: int = 5,
    kind: str = "excess",
    beta_lookback: int = 252,
    barrier: float | None = None,
    provenance: str = "window",
    require_label: bool = True,
    features: Iterable[str] | None = None,
) -> SampleSet:
    """Samples of every panel symbol on the sessions in ``[start, end]``.

    Features use the panel's whole history before ``start`` for their lookback. Rows whose
    label is still unknown are dropped and counted, unless ``require_label`` is False (live
    scoring), in which case their label stays NaN.
    """
    sessions = panel.sessions[(panel.sessions >= pd.Timestamp(start)) & (panel.sessions <= pd.Timestamp(end))]
    matrix = compute_features(panel, sessions, features)
    labels = make_labels(panel, horizon, kind, beta_lookback, barrier)  # type: ignore[arg-type]
    frame = matrix.frame
    dates = frame.index.get_level_values("date")
    symbols = frame.index.get_level_values("symbol")
    rows = labels.label.index.get_indexer(dates)
    cols = labels.label.columns.get_indexer(symbols)
    label = labels.label.to_numpy()[rows, cols]
    extra = pd.DataFrame(
        {
            "label": label,
            "forward_return": labels.forward_return.to_numpy()[rows, cols],
            "label_end": labels.label_end.to_numpy()[rows],
            "sector": pd.Categorical([panel.sectors[s] for s in symbols]),
            "provenance": pd.Categorical([provenance] * len(frame)),
        },
        index=frame.index,
    )
    combined = pd.concat([frame, extra], axis=1)
    unlabelled = combined["label"].isna()
    if require_label:
        combined = combined.loc[~unlabelled]
    return SampleSet(
        frame=combined,
        feature_names=tuple(matrix.frame.columns),
        dropped_lookback=matrix.dropped,
        dropped_unlabelled=int(unlabelled.sum()) if require_label else 0,
    )
