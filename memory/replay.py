"""The error replay buffer (SPEC.md module 8): the model's worst mistakes, mixed back in.

After each validation (and, once labels mature, after live scoring) the worst
``worst_fraction`` of predictions by log loss are admitted to a bounded buffer in the store,
with their features, label, regime, sector, symbol, date, horizon and the model version that
made them; the next retraining run mixes them into its training set (``memory/hybrid.py``).

What keeps the buffer useful rather than a pile of noise (``notes/methods.md`` section 5):

* **a noise guard**: rows whose absolute forward return is among the smallest
  (``noise_quantile``) are never admitted. Their label is a coin flip, and the worst 5% by loss
  alone is mostly such rows;
* **stratified admission**: the worst fraction is taken within each regime, so a storm's
  errors do not crowd out the calm regimes' (and vice versa);
* **merging**: the same ``(symbol, date, horizon)`` seen again updates its entry (worst loss,
  ``times_seen`` + 1) instead of adding a row;
* **ageing**: an entry not seen again for ``max_age_days`` (counted from the as-of sessions of
  the runs, not the wall clock, so reruns are reproducible) is dropped;
* **bounds**: at most ``capacity`` entries, no regime above ``max_regime_share`` of it; the
  lowest losses go first. Its share of a training set and the weight of a replayed row are
  capped where the set is assembled (:func:`memory.hybrid.cap_replay`, :func:`replay_weights`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, func, select

from market.samples import Samples
from market.vocabulary import REGIMES
from memory.config import ReplayConfig
from memory.store import Store
from memory.tables import ReplayEntry


def feature_catalogue_hash(feature_names: Sequence[str]) -> str:
    return hashlib.sha256("\x1f".join(feature_names).encode()).hexdigest()


def log_loss_per_row(y_true: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Binary log loss of each prediction (``proba`` = probability of class 1), clipped."""
    p = np.clip(np.asarray(proba, dtype=np.float64), 1e-15, 1 - 1e-15)
    y = np.asarray(y_true, dtype=np.float64)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def select_worst(samples: Samples, proba: np.ndarray, config: ReplayConfig) -> pd.DataFrame:
    """Positions and losses of the rows to admit: the worst ``worst_fraction`` by log loss within
    each regime, after the noise guard.

    Returns a frame with ``position`` (into ``samples``) and ``loss``, highest loss first.
    """
    loss = log_loss_per_row(samples.target.to_numpy(), proba)
    regimes = samples.rows["regime"].astype(str).to_numpy()
    size = np.abs(samples.rows["forward_return"].to_numpy(dtype=np.float64))
    floor = np.quantile(size, config.noise_quantile) if len(size) and config.noise_quantile > 0 else -np.inf
    learnable = size > floor
    chosen = []
    for regime in np.unique(regimes):
        rows = np.flatnonzero(regimes == regime)
        count = int(np.ceil(config.worst_fraction * len(rows)))
        candidates = rows[learnable[rows]]
        worst = candidates[np.argsort(-loss[candidates], kind="stable")[:count]]
        chosen.append(worst)
    positions = np.concatenate(chosen) if chosen else np.empty(0, dtype=np.int64)
    frame = pd.DataFrame({"position": positions, "loss": loss[positions]})
    return frame.sort_values("loss", ascending=False, kind="stable").reset_index(drop=True)


def replay_weights(weights: np.ndarray, is_replay: np.ndarray, config: ReplayConfig) -> np.ndarray:
    """Weights with replayed rows' multiplied by ``weight_multiplier`` and capped at
    ``max_row_weight`` (a replayed crash row at 2.0 x 1.5 would otherwise reach 3.0+)."""
    out = np.asarray(weights, dtype=np.float64).copy()
    mask = np.asarray(is_replay, dtype=bool)
    out[mask] = np.minimum(out[mask] * config.weight_multiplier, config.max_row_weight)
    return out


@dataclass(frozen=True)
class AdmissionReport:
    """What one admission did to the buffer."""

    offered: int
    admitted: int  # new entries
    merged: int  # entries seen again
    aged_out: int
    evicted: int  # over capacity or over a regime's share
    size: int


class ReplayBuffer:
    """The bounded buffer in ``store``; :meth:`admit` after validation, :meth:`load` before
    training."""

    def __init__(self, store: Store, config: ReplayConfig) -> None:
        self.store = store
        self.config = config

    # -- writing ---------------------------------------------------------------------------------

    def admit(
        self,
        samples: Samples,
        proba: np.ndarray,
        *,
        model_version: str,
        as_of: date,
        horizon: int,
        session: Session | None = None,
    ) -> AdmissionReport:
        """Admit the worst predictions of ``model_version`` on ``samples`` (rows with
        ``regime``, ``sector``, ``forward_return`` and ``label_end``), then age out and bound.

        Inside ``session`` when given (the caller commits it with its own writes, as the monitor
        does with the session it processed), otherwise in a transaction of its own."""
        picked = select_worst(samples, proba, self.config)
        rows = samples.take(picked["position"].to_numpy())
        catalogue = feature_catalogue_hash(samples.feature_names)
        features = rows.features.to_numpy(dtype=np.float64)
        meta = rows.rows
        dates = rows.dates
        symbols = rows.features.index.get_level_values("symbol")
        events = meta["event"].astype(str).to_numpy() if "event" in meta.columns else [""] * len(rows)
        values = [
            {
                "symbol": str(symbols[i]), "date": dates[i].date(), "horizon": horizon,
                "label_end": pd.Timestamp(meta["label_end"].iloc[i]).date(),
                "label": int(rows.target.iloc[i]), "regime": str(meta["regime"].iloc[i]),
                "sector": str(meta["sector"].iloc[i]), "event": str(events[i]),
                "forward_return": float(meta["forward_return"].iloc[i]),
                "loss": float(picked["loss"].iloc[i]),
                "model_version": model_version, "times_seen": 1, "first_seen": as_of, "last_seen": as_of,
                "feature_hash": catalogue, "features": features[i].tobytes(),
            }
            for i in range(len(rows))
        ]
        if session is None:
            with self.store.session() as own:
                return self._admit(own, values, as_of)
        return self._admit(session, values, as_of)

    def _admit(self, session: Session, values: list[dict[str, Any]], as_of: date) -> AdmissionReport:
        before = session.exec(select(func.count()).select_from(ReplayEntry)).one()
        insert = postgresql_insert if self.store.backend == "postgresql" else sqlite_insert
        table = ReplayEntry.__table__  # type: ignore[attr-defined]
        for chunk in range(0, len(values), 500):
            statement = insert(table).values(values[chunk:chunk + 500])
            excluded = statement.excluded
            statement = statement.on_conflict_do_update(
                index_elements=["symbol", "date", "horizon"],
                set_={
                    "loss": func.max(table.c.loss, excluded.loss) if self.store.backend == "sqlite"
                    else func.greatest(table.c.loss, excluded.loss),
                    "times_seen": table.c.times_seen + 1,
                    "last_seen": excluded.last_seen,
                    "model_version": excluded.model_version,
                    "regime": excluded.regime,
                    "features": excluded.features,
                    "feature_hash": excluded.feature_hash,
                },
            )
            session.exec(statement)
        after_insert = session.exec(select(func.count()).select_from(ReplayEntry)).one()
        aged = self._age_out(session, as_of)
        evicted = self._bound(session)
        size = session.exec(select(func.count()).select_from(ReplayEntry)).one()
        admitted = int(after_insert - before)
        return AdmissionReport(offered=len(values), admitted=admitted, merged=len(values) - admitted,
                               aged_out=aged, evicted=evicted, size=int(size))

    def _age_out(self, session: object, as_of: date) -> int:
        oldest = as_of - timedelta(days=self.config.max_age_days)
        result = session.exec(delete(ReplayEntry).where(ReplayEntry.last_seen < oldest))  # type: ignore[attr-defined]
        return int(result.rowcount or 0)

    def _bound(self, session: object) -> int:
        """Drop the lowest-loss entries of any regime above its share, then overall."""
        rows = session.exec(select(ReplayEntry.id, ReplayEntry.regime, ReplayEntry.loss,  # type: ignore[attr-defined]
                                   ReplayEntry.last_seen)).all()
        if len(rows) == 0:
            return 0
        frame = pd.DataFrame(rows, columns=["id", "regime", "loss", "last_seen"])
        frame = frame.sort_values(["loss", "last_seen", "id"], ascending=[False, False, True], kind="stable")
        per_regime = int(np.floor(self.config.max_regime_share * self.config.capacity))
        kept = frame.groupby("regime", sort=False).head(max(per_regime, 1)).head(self.config.capacity)
        drop = sorted(set(frame["id"]) - set(kept["id"]))
        for chunk in range(0, len(drop), 500):
            session.exec(delete(ReplayEntry).where(ReplayEntry.id.in_(drop[chunk:chunk + 500])))  # type: ignore
        return len(drop)

    # -- reading ---------------------------------------------------------------------------------

    def entries(self) -> pd.DataFrame:
        """Every entry's metadata (no features), highest loss first."""
        columns = [c for c in ReplayEntry.model_fields if c != "features"]
        with self.store.session() as session:
            rows = session.exec(select(*[getattr(ReplayEntry, c) for c in columns])).all()
        frame = pd.DataFrame(rows, columns=columns)
        return frame.sort_values(["loss", "id"], ascending=[False, True]).reset_index(drop=True)

    def load(self, feature_names: Sequence[str], *, as_of: date) -> Samples | None:
        """The entries whose labels had matured by ``as_of`` (label end on or before it) as
        samples with ``provenance`` ``replay`` and their ``loss``; ``None`` when there are none.

        Entries written under another feature catalogue are refused, naming how many.
        """
        catalogue = feature_catalogue_hash(feature_names)
        with self.store.session() as session:
            entries = session.exec(select(ReplayEntry).where(ReplayEntry.label_end <= as_of)
                                   .where(ReplayEntry.date <= as_of)).all()
        if not entries:
            return None
        stale = sum(e.feature_hash != catalogue for e in entries)
        if stale:
            raise ValueError(f"{stale} replay entries were stored under another feature catalogue; "
                             "clear the buffer (`stormwatch replay clear`) after changing the features")
        entries = sorted(entries, key=lambda e: (e.date, e.symbol, e.horizon))
        index = pd.MultiIndex.from_arrays(
            [pd.DatetimeIndex([pd.Timestamp(e.date) for e in entries]), [e.symbol for e in entries]],
            names=["date", "symbol"])
        features = pd.DataFrame(np.vstack([np.frombuffer(e.features, dtype=np.float64) for e in entries]),
                                index=index, columns=list(feature_names))
        rows = pd.DataFrame({
            "forward_return": [e.forward_return for e in entries],
            "label_end": pd.DatetimeIndex([pd.Timestamp(e.label_end) for e in entries]),
            "sector": pd.Categorical([e.sector for e in entries]),
            "regime": pd.Categorical([e.regime for e in entries]),
            "event": [e.event for e in entries],
            "loss": [e.loss for e in entries],
            "model_version": [e.model_version for e in entries],
        }, index=index)
        target = pd.Series([e.label for e in entries], index=index, dtype=np.int64, name="label")
        return Samples(features=features, target=target, rows=rows)

    def summary(self) -> pd.DataFrame:
        """Entries per regime and model version, with their mean loss and times seen."""
        frame = self.entries()
        if frame.empty:
            return pd.DataFrame(columns=["regime", "model_version", "entries", "mean_loss", "seen_again"])
        order = {r.value: i for i, r in enumerate(REGIMES)}
        table = frame.groupby(["regime", "model_version"]).agg(
            entries=("id", "size"), mean_loss=("loss", "mean"),
            seen_again=("times_seen", lambda s: int((s > 1).sum()))).reset_index()
        return table.sort_values(["regime", "model_version"], key=lambda c: c.map(order) if c.name == "regime"
                                 else c).reset_index(drop=True)

    def clear(self) -> int:
        with self.store.session() as session:
            result = session.exec(delete(ReplayEntry))  # type: ignore[call-overload]
            return int(result.rowcount or 0)


def replay_version(replay: Samples | None) -> str:
    """A short content hash of the replay rows a training set used ('' when none)."""
    if replay is None or len(replay) == 0:
        return ""
    return replay.content_hash()[:16]


__all__ = [
    "AdmissionReport", "ReplayBuffer", "feature_catalogue_hash", "log_loss_per_row", "replay_version",
    "replay_weights", "select_worst",
]
