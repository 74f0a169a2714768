"""The model registry: which run's ensemble serves (``champion``), which waits (``challenger``),
and the history of every move, so that any switch can be explained and rolled back.

Aliases follow MLflow's registry, where stages gave way to aliases: a model version (here, the
ensemble of a succeeded run, with its lineage in :class:`~memory.tables.TrainingRun` and its
files with SHA-256 in :class:`~memory.tables.TrainedModel`) carries no state of its own; an
alias row points at it. Moving an alias is one upsert of that row and one history row in one
transaction: a crash in the middle leaves the old champion serving, and two processes promoting
at once leave exactly one champion (the last to commit), on SQLite as on PostgreSQL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import select

from memory.store import Store
from memory.tables import AliasChange, GateRecord, ModelAlias, TrainingRun, utc_now

CHAMPION = "champion"
CHALLENGER = "challenger"


class RegistryError(LookupError):
    """An alias that cannot be moved: no such run, a run that did not succeed, nothing to roll back to."""


@dataclass(frozen=True)
class ModelVersion:
    """A succeeded run's ensemble as the registry lists it."""

    run_id: str
    as_of: str
    source: str
    variant: str
    aliases: tuple[str, ...]
    training_set_hash: str


class Registry:
    """Aliases and gate decisions in ``store``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def alias(self, name: str) -> str | None:
        """The run id ``name`` points at, or ``None``."""
        with self.store.session() as session:
            row = session.get(ModelAlias, name)
            return None if row is None else row.run_id

    def champion(self) -> str | None:
        return self.alias(CHAMPION)

    def set_alias(self, name: str, run_id: str, *, reason: str, _before_commit: Any = None) -> str | None:
        """Point ``name`` at ``run_id`` (a succeeded run) in one transaction; returns the run it
        pointed at before. ``_before_commit`` is a test hook run inside the transaction."""
        with self.store.session() as session:
            run = session.get(TrainingRun, run_id)
            if run is None or run.status != "succeeded":
                state = "does not exist" if run is None else f"is {run.status}"
                raise RegistryError(f"run {run_id} {state}: only a succeeded run's models can be {name}")
            current = session.get(ModelAlias, name)
            previous = None if current is None else current.run_id
            insert = postgresql_insert if self.store.backend == "postgresql" else sqlite_insert
            statement = insert(ModelAlias.__table__).values(alias=name, run_id=run_id, set_at=utc_now())  # type: ignore[attr-defined]
            statement = statement.on_conflict_do_update(
                index_elements=["alias"], set_={"run_id": run_id, "set_at": statement.excluded.set_at})
            session.exec(statement)  # type: ignore[call-overload]
            session.add(AliasChange(alias=name, run_id=run_id, previous_run_id=previous, reason=reason))
            if _before_commit is not None:
                _before_commit()
        return previous

    def clear_alias(self, name: str, *, reason: str) -> None:
        with self.store.session() as session:
            row = session.get(ModelAlias, name)
            if row is not None:
                session.delete(row)
                session.add(AliasChange(alias=name, run_id="", previous_run_id=row.run_id, reason=reason))

    def promote(self, run_id: str, *, reason: str) -> str | None:
        """Make ``run_id`` the champion (and drop it as challenger); returns the former champion."""
        previous = self.set_alias(CHAMPION, run_id, reason=reason)
        if self.alias(CHALLENGER) == run_id:
            self.clear_alias(CHALLENGER, reason=f"promoted: {reason}")
        return previous

    def rollback(self, *, reason: str = "rollback") -> str:
        """Point the champion back at the run it served before its latest move."""
        with self.store.session() as session:
            moves = session.exec(select(AliasChange).where(AliasChange.alias == CHAMPION)
                                 .order_by(AliasChange.id.desc())).all()  # type: ignore[union-attr]
        if not moves or not moves[0].previous_run_id:
            raise RegistryError("no earlier champion to roll back to")
        target = moves[0].previous_run_id
        self.set_alias(CHAMPION, target, reason=reason)
        return target

    def history(self) -> list[AliasChange]:
        with self.store.session() as session:
            return list(session.exec(select(AliasChange).order_by(AliasChange.id)).all())

    def versions(self) -> list[ModelVersion]:
        """Every succeeded run's ensemble, oldest first, with the aliases on it."""
        with self.store.session() as session:
            runs = session.exec(select(TrainingRun).where(TrainingRun.status == "succeeded")
                                .order_by(TrainingRun.started_at)).all()
            aliases = session.exec(select(ModelAlias)).all()
        on: dict[str, list[str]] = {}
        for a in aliases:
            on.setdefault(a.run_id, []).append(a.alias)
        return [ModelVersion(run_id=r.run_id, as_of=str(r.as_of), source=r.source, variant=r.variant,
                             aliases=tuple(sorted(on.get(r.run_id, []))),
                             training_set_hash=r.training_set_hash)
                for r in runs]

    def record_decision(self, record: GateRecord) -> None:
        with self.store.session() as session:
            session.add(record)

    def decisions(self, run_id: str | None = None) -> list[GateRecord]:
        with self.store.session() as session:
            query = select(GateRecord).order_by(GateRecord.id)
            if run_id is not None:
                query = query.where(GateRecord.run_id == run_id)
            return list(session.exec(query).all())


def gate_record(
    run_id: str, champion_run_id: str | None, decision: Any, gate_rows: dict[str, Any]
) -> GateRecord:
    """A :class:`GateRecord` from a ``models.gate.GateDecision`` (passed in as plain data)."""
    return GateRecord(run_id=run_id, champion_run_id=champion_run_id, promoted=decision.promote,
                      first_model=decision.first_model,
                      criteria=json.dumps([c.__dict__ for c in decision.criteria], default=float),
                      reasons="\n".join(decision.reasons), rows=decision.rows, sessions=decision.sessions,
                      gate_rows=json.dumps(gate_rows, default=str))


__all__ = ["CHALLENGER", "CHAMPION", "ModelVersion", "Registry", "RegistryError", "gate_record"]
