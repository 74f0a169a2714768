"""Labelled samples for any window: one row per (session, symbol) with features, label, the
label's end date, sector and provenance (the original system's ``generate_labeled_data``)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import partial as partial_function
from typing import Any

import numpy as np
import pandas as pd

from market.features import DEFAULT_CHUNK_SYMBOLS, ChunkMapper, FeatureBlock, compute_block
from market.labels import make_labels
from market.panel import BarPanel
from market.vix import VixFallback

#: Columns a sample frame carries besides its features.
SAMPLE_COLUMNS: tuple[str, ...] = ("label", "forward_return", "label_end", "sector", "provenance")

#: Columns that may never be a feature, whatever a frame or a caller says: the target, what the
#: target is made of, and row metadata. A model fitted on any of them trains on the future.
NOT_FEATURES: frozenset[str] = frozenset({*SAMPLE_COLUMNS, "regime", "event", "true_regime", "oracle"})


@dataclass(frozen=True)
class Samples:
    """Labelled rows split into what a model may see and what travels beside it.

    A sample frame holds the features, the label, the forward return the label is made of and
    row metadata side by side: one ``drop(columns="label")`` away from training on the future.
    ``Samples`` keeps them apart from the archive to the zoo: models receive :attr:`features`
    (the feature columns, by name, nothing else), the target is :attr:`target`, and
    :attr:`rows` holds the rest (``label_end`` for purging, ``forward_return``, ``sector``,
    ``regime``, ``provenance``, ``event``...). All three share one ``(date, symbol)`` index.

    Examples
    --------
    >>> index = pd.MultiIndex.from_tuples([(pd.Timestamp("2024-01-02"), "AAPL")], names=["date", "symbol"])
    >>> frame = pd.DataFrame({"ret_1": [0.01], "label": [1.0], "forward_return": [0.02],
    ...                       "label_end": [pd.Timestamp("2024-01-09")]}, index=index)
    >>> samples = Samples.from_frame(frame, ["ret_1"])
    >>> list(samples.features.columns), samples.target.tolist(), list(samples.rows.columns)
    (['ret_1'], [1], ['forward_return', 'label_end'])
    >>> Samples.from_frame(frame, ["ret_1", "forward_return"])
    Traceback (most recent call last):
    ...
    ValueError: 'forward_return' is not a feature: it is the target or row metadata ...
    """

    features: pd.DataFrame
    target: pd.Series
    rows: pd.DataFrame

    def __post_init__(self) -> None:
        index = self.features.index
        if not (index.equals(self.target.index) and index.equals(self.rows.index)):
            raise ValueError("features, target and rows must share one index")
        leaked = sorted(NOT_FEATURES & set(self.features.columns))
        if leaked:
            raise ValueError(f"{leaked[0]!r} is not a feature: it is the target or row metadata")

    @classmethod
    def from_frame(
        cls, frame: pd.DataFrame, feature_names: Sequence[str], *, label: str = "label"
    ) -> Samples:
        """Split a sample frame: ``feature_names`` become features, ``label`` the target (0/1),
        every other column row metadata. Extra columns never become features."""
        names = list(feature_names)
        leaked = [n for n in names if n in NOT_FEATURES or n == label]
        if leaked:
            raise ValueError(f"{leaked[0]!r} is not a feature: it is the target or row metadata "
                             "(a model fitted on it trains on the future)")
        missing = [n for n in names if n not in frame.columns]
        if missing:
            raise KeyError(f"the sample frame lacks {len(missing)} feature(s): {', '.join(missing[:5])}")
        if label not in frame.columns:
            raise KeyError(f"the sample frame has no {label!r} column")
        if frame[label].isna().any():
            unlabelled = int(frame[label].isna().sum())
            raise ValueError(f"{unlabelled} rows have no {label}: drop unlabelled rows first")
        meta = [c for c in frame.columns if c not in set(names) and c != label]
        return cls(features=frame.loc[:, names], target=frame[label].astype(np.int64),
                   rows=frame.loc[:, meta])

    @classmethod
    def concat(cls, parts: Sequence[Samples]) -> Samples:
        """Rows of ``parts`` one after the other (features must match by name and order)."""
        names = list(parts[0].features.columns)
        for part in parts[1:]:
            if list(part.features.columns) != names:
                raise ValueError("cannot concatenate samples with different feature columns")
        rows = pd.concat([p.rows for p in parts])
        for column in ("provenance", "regime", "event", "sector"):
            if column in rows.columns:
                rows[column] = rows[column].astype(str).astype("category")
        return cls(features=pd.concat([p.features for p in parts]),
                   target=pd.concat([p.target for p in parts]), rows=rows)

    def __len__(self) -> int:
        return len(self.target)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(self.features.columns)

    @property
    def dates(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.features.index.get_level_values("date"))

    def take(self, positions: Sequence[int] | np.ndarray) -> Samples:
        """The rows at ``positions`` (repeats allowed: balanced sampling draws with replacement)."""
        at = np.asarray(positions, dtype=np.int64)
        return Samples(features=self.features.iloc[at], target=self.target.iloc[at], rows=self.rows.iloc[at])

    def where(self, mask: np.ndarray | pd.Series) -> Samples:
        return self.take(np.flatnonzero(np.asarray(mask, dtype=bool)))

    def assign(self, **columns: object) -> Samples:
        """A copy with row metadata columns set (never features)."""
        return Samples(features=self.features, target=self.target, rows=self.rows.assign(**columns))

    def to_frame(self) -> pd.DataFrame:
        """Features, label and row metadata side by side, for storage."""
        return pd.concat([self.features, self.target.rename("label").astype("float64"), self.rows], axis=1)

    def content_hash(self, sample_weight: np.ndarray | None = None) -> str:
        """sha256 of the rows in order: index, features, target, regime, provenance and weights.

        Two training sets with the same hash fed the same values to every model, bit for bit.
        """
        digest = hashlib.sha256()
        dates = self.features.index.get_level_values("date")
        digest.update(np.asarray(dates.asi8, dtype=np.int64).tobytes())
        digest.update("\x1f".join(map(str, self.features.index.get_level_values("symbol"))).encode())
        digest.update("\x1f".join(self.features.columns).encode())
        digest.update(np.ascontiguousarray(self.features.to_numpy(dtype=np.float64)).tobytes())
        digest.update(self.target.to_numpy(dtype=np.int64).tobytes())
        for column in ("regime", "provenance", "event"):
            if column in self.rows.columns:
                digest.update("\x1f".join(map(str, self.rows[column])).encode())
        if sample_weight is not None:
            digest.update(np.asarray(sample_weight, dtype=np.float64).tobytes())
        return digest.hexdigest()


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


@dataclass(frozen=True)
class SampleBlock:
    """Features and labels of every (session, symbol) asked for, dense, before rows are kept:
    what :func:`build_samples` turns into one frame and the archive into one frame per event."""

    features: FeatureBlock
    label: np.ndarray  # (sessions, symbols), NaN where the label is not known yet
    forward_return: np.ndarray  # (sessions, symbols)
    label_end: np.ndarray  # (sessions,) datetime64: the session the label's horizon ends on
    complete: np.ndarray  # (sessions, symbols): a bar and the features (all, or any when partial)
    sectors: pd.Categorical  # (symbols,) every symbol's sector, over the universe's sectors

    @property
    def labelled(self) -> np.ndarray:
        return ~np.isnan(self.label)

    def frame(self, keep: np.ndarray, provenance: str) -> pd.DataFrame:
        """The rows where ``keep`` (sessions, symbols) holds: features, then :data:`SAMPLE_COLUMNS`."""
        frame = self.features.frame(keep)
        at = np.flatnonzero(keep.reshape(-1))
        width = len(self.features.symbols)
        frame["label"] = self.label.reshape(-1)[at]
        frame["forward_return"] = self.forward_return.reshape(-1)[at]
        frame["label_end"] = self.label_end[at // width]
        frame["sector"] = self.sectors.take(at % width)
        frame["provenance"] = pd.Categorical.from_codes(np.zeros(len(at), dtype=np.int8), [provenance])
        return frame


def _labels_of(panel: BarPanel, **settings: Any) -> dict[str, np.ndarray]:
    """A chunk's labels and forward returns on every session (a label reads only its own symbol's
    bars and the market's, like a per-symbol feature)."""
    labels = make_labels(panel, **settings)
    return {"label": labels.label.to_numpy(), "forward_return": labels.forward_return.to_numpy()}


def sample_block(
    panel: BarPanel,
    sessions: pd.DatetimeIndex,
    *,
    horizon: int = 5,
    kind: str = "excess",
    beta_lookback: int = 252,
    barrier: float | None = None,
    features: Iterable[str] | None = None,
    partial: bool = False,
    vix_fallback: VixFallback | None = None,
    chunk_symbols: int = DEFAULT_CHUNK_SYMBOLS,
    mapper: ChunkMapper | None = None,
) -> SampleBlock:
    """Features and labels on ``sessions``, ``chunk_symbols`` symbols at a time, each chunk run by
    ``mapper`` (:func:`market.features.compute_block`)."""
    labels = partial_function(_labels_of, horizon=horizon, kind=kind, beta_lookback=beta_lookback,
                              barrier=barrier)
    block = compute_block(panel, sessions, features, vix_fallback=vix_fallback, chunk_symbols=chunk_symbols,
                          mapper=mapper, extra=labels)
    at = panel.sessions.get_indexer(block.sessions)
    label, forward = block.extra["label"], block.extra["forward_return"]
    ends = np.full(len(panel.sessions), np.datetime64("NaT"), dtype="datetime64[ns]")
    ends[: max(len(panel.sessions) - horizon, 0)] = panel.sessions[horizon:].to_numpy()
    names = [panel.sectors[s] for s in block.symbols]
    sectors = pd.Categorical(names, categories=sorted(set(names)))
    return SampleBlock(features=block, label=label, forward_return=forward, label_end=ends[at],
                       complete=block.complete(partial), sectors=sectors)


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
    partial: bool = False,
    vix_fallback: VixFallback | None = None,
    chunk_symbols: int = DEFAULT_CHUNK_SYMBOLS,
    mapper: ChunkMapper | None = None,
) -> SampleSet:
    """Samples of every panel symbol on the sessions in ``[start, end]``.

    Features use the panel's whole history before ``start`` for their lookback. Rows whose
    label is still unknown are dropped and counted, unless ``require_label`` is False (live
    scoring), in which case their label stays NaN. ``partial`` keeps rows where only some
    features are undefined (a gap or a short history; see :func:`compute_features`).
    ``vix_fallback`` is the configured ``market.vix_fallback`` (``None``: its defaults), and
    ``chunk_symbols`` (``market.feature_chunk_symbols``) bounds memory and ``mapper`` runs the
    chunks (a task runner's); neither changes a value.
    """
    sessions = panel.sessions[(panel.sessions >= pd.Timestamp(start)) & (panel.sessions <= pd.Timestamp(end))]
    block = sample_block(panel, sessions, horizon=horizon, kind=kind, beta_lookback=beta_lookback,
                         barrier=barrier, features=features, partial=partial, vix_fallback=vix_fallback,
                         chunk_symbols=chunk_symbols, mapper=mapper)
    unlabelled = block.complete & ~block.labelled
    keep = block.complete & block.labelled if require_label else block.complete
    has_bar = block.features.has_bar
    return SampleSet(
        frame=block.frame(keep, provenance),
        feature_names=block.features.names,
        dropped_lookback=pd.Series((has_bar & ~block.complete).sum(axis=0), index=block.features.symbols,
                                   name="dropped"),
        dropped_unlabelled=int(unlabelled.sum()) if require_label else 0,
    )
