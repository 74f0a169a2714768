"""Training-run records and model files: what every retraining run did, and what it left.

A run is recorded ``running`` when it starts; it ends ``succeeded``, with its model files,
their SHA-256, fit times and per-regime metrics written in one transaction, or ``failed`` with
its reason and no model. Model files are written under the run's directory through a staging
folder that is renamed into place only on success, so a crash midway leaves no file a later
reader could mistake for a trained model. Every load verifies the file's SHA-256 first.

Model files are skops archives (``<member>.skops``), which build only the types their reader
trusts, so reading a file does not run code hidden in it. Inside one, an XGBoost booster is its
own UBJSON (``Booster.save_raw``), a LightGBM booster its model text, and scikit-learn's
estimators their arrays and plain attributes: nothing is a pickle. The types a file may hold are
given by the caller (the zoo's :data:`models.zoo.TRUSTED_TYPE_PREFIXES`), since which model
classes exist is the models room's knowledge. Files written before skops (``.joblib``) still
load, after their checksum matches, with a warning: they are pickles.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import joblib
import pandas as pd
import skops.io as sio
from sqlmodel import select

from memory.store import Store
from memory.tables import RunMetric, TrainedModel, TrainingRun, utc_now


class RunNotFound(LookupError):
    """No training run with that id (or prefix)."""


class ModelChecksumError(RuntimeError):
    """A model file whose bytes do not match the SHA-256 recorded when it was written."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


#: The suffix of a model file (a skops archive).
MODEL_SUFFIX = ".skops"

log = logging.getLogger(__name__)


class UntrustedModelError(RuntimeError):
    """A model file holding a type its reader does not trust: it is refused before anything is built."""


def save_model(model: Any, path: Path) -> str:
    """Write ``model`` to ``path`` (a skops archive) and return the file's SHA-256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sio.dump(model, path, compression=zipfile.ZIP_DEFLATED)
    return sha256_of(path)


def load_model(path: Path, sha256: str, trusted: Sequence[str] = ()) -> Any:
    """The model at ``path``, after checking its SHA-256 against the recorded one and every
    type it holds against ``trusted`` (dotted-name prefixes; skops's own safe types need none)."""
    if not path.exists():
        raise ModelChecksumError(f"model file {path} is missing")
    actual = sha256_of(path)
    if actual != sha256:
        raise ModelChecksumError(f"model file {path} does not match its recorded checksum "
                                 f"(sha256 {actual[:12]}..., recorded {sha256[:12]}...): refusing to load it")
    if path.suffix == ".joblib":
        log.warning("model file %s is a pickle written before skops files; its checksum matched", path)
        return joblib.load(path)
    try:
        held = sio.get_untrusted_types(file=path)
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise UntrustedModelError(f"model file {path} is not a readable skops archive: {exc}") from exc
    refused = [name for name in held if not name.startswith(tuple(trusted))]
    if refused:
        raise UntrustedModelError(f"model file {path} holds type(s) this reader does not trust: "
                                  f"{', '.join(refused)}; refusing to load it")
    return sio.load(path, trusted=held)


@dataclass(frozen=True)
class ModelFile:
    """A model a run produced, as handed to :meth:`RunStore.succeed`."""

    member: str
    model: Any
    fit_seconds: float
    ensemble_weight: float | None = None
    params: Mapping[str, Any] | None = None


class RunStore:
    """Training runs in ``store``, their files under ``root/<run_id>/``."""

    def __init__(self, root: Path, store: Store, *, trusted: Sequence[str] = ()) -> None:
        self.root = Path(root)
        self.store = store
        self.trusted = tuple(trusted)  # type-name prefixes a model file may hold (see load_model)

    def run_dir(self, run_id: str) -> Path:
        return self.root / run_id

    def start(self, run: TrainingRun) -> TrainingRun:
        with self.store.session() as session:
            session.add(run)
        return run

    def update(self, run_id: str, **fields: Any) -> None:
        with self.store.session() as session:
            run = session.get(TrainingRun, run_id)
            if run is None:
                raise RunNotFound(f"no training run {run_id}")
            for key, value in fields.items():
                setattr(run, key, value)
            session.add(run)

    def write_file(self, run_id: str, name: str, frame: pd.DataFrame) -> Path:
        """A Parquet file of the run (for instance the replay rows it trained on)."""
        path = self.run_dir(run_id) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        frame.to_parquet(tmp)
        tmp.replace(path)
        return path

    def succeed(
        self,
        run_id: str,
        models: Sequence[ModelFile],
        metrics: Mapping[str, pd.DataFrame],
        **fields: Any,
    ) -> list[TrainedModel]:
        """Write the model files, then record them, the metrics and ``succeeded`` at once."""
        staging = self.run_dir(run_id) / ".staging"
        final = self.run_dir(run_id) / "models"
        if staging.exists():
            shutil.rmtree(staging)
        written = []
        for item in models:
            path = staging / f"{item.member}{MODEL_SUFFIX}"
            digest = save_model(item.model, path)
            written.append(TrainedModel(
                run_id=run_id, member=item.member, model_class=type(item.model).__name__,
                path=str(final / path.name), sha256=digest, fit_seconds=item.fit_seconds,
                ensemble_weight=item.ensemble_weight, params=json.dumps(item.params or {}, default=str),
            ))
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
        try:
            with self.store.session() as session:
                run = session.get(TrainingRun, run_id)
                if run is None:
                    raise RunNotFound(f"no training run {run_id}")
                for record in written:
                    session.add(record)
                for member, table in metrics.items():
                    for regime, row in table.iterrows():
                        session.add(RunMetric(
                            run_id=run_id, member=member, regime=str(regime), n=int(row["n"]),
                            accuracy=float(row["accuracy"]),
                            balanced_accuracy=float(row["balanced_accuracy"]),
                            log_loss=float(row["log_loss"]), brier=float(row["brier"]),
                            roc_auc=None if pd.isna(row["roc_auc"]) else float(row["roc_auc"]),
                        ))
                for key, value in fields.items():
                    setattr(run, key, value)
                run.status = "succeeded"
                run.finished_at = utc_now()
                session.add(run)
        except BaseException:
            shutil.rmtree(final, ignore_errors=True)
            raise
        return written

    def fail(self, run_id: str, reason: str) -> None:
        """Record the run as failed with ``reason``; remove any file it staged."""
        shutil.rmtree(self.run_dir(run_id) / ".staging", ignore_errors=True)
        with self.store.session() as session:
            run = session.get(TrainingRun, run_id)
            if run is None:
                raise RunNotFound(f"no training run {run_id}")
            if run.status == "succeeded":  # a later step (the gate) failed: its models stay trained
                run.reason = f"after its models were recorded: {reason}"
            else:
                run.status = "failed"
                run.reason = reason
                run.finished_at = utc_now()
            session.add(run)

    # -- reading ---------------------------------------------------------------------------------

    def runs(self) -> list[TrainingRun]:
        with self.store.session() as session:
            return list(session.exec(select(TrainingRun).order_by(TrainingRun.started_at)).all())

    def get(self, run_id: str) -> TrainingRun:
        """The run with id ``run_id``, or the only one whose id starts with it."""
        with self.store.session() as session:
            run = session.get(TrainingRun, run_id)
            if run is not None:
                return run
            matches = session.exec(select(TrainingRun).where(TrainingRun.run_id.startswith(run_id))).all()  # type: ignore[attr-defined]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise RunNotFound(f"no training run {run_id!r}: `stormwatch runs list` shows them")
        raise RunNotFound(f"{len(matches)} runs start with {run_id!r}: give more of the id")

    def models(self, run_id: str) -> list[TrainedModel]:
        with self.store.session() as session:
            return list(session.exec(select(TrainedModel).where(TrainedModel.run_id == run_id)
                                     .order_by(TrainedModel.id)).all())

    def load(self, run_id: str, member: str = "ensemble") -> Any:
        """A model of a succeeded run, verified against its recorded SHA-256 and the trusted types."""
        for record in self.models(run_id):
            if record.member == member:
                return load_model(Path(record.path), record.sha256, self.trusted)
        raise RunNotFound(f"run {run_id} has no model {member!r}")

    def metrics(self, run_id: str) -> pd.DataFrame:
        with self.store.session() as session:
            rows = session.exec(select(RunMetric).where(RunMetric.run_id == run_id)).all()
        return pd.DataFrame([r.model_dump(exclude={"id", "run_id"}) for r in rows])

    def latest_succeeded(self, source: str | None = None) -> TrainingRun | None:
        runs = [r for r in self.runs() if r.status == "succeeded" and (source is None or r.source == source)]
        return runs[-1] if runs else None


def new_run(*, run_id: str, config_hash: str, config_version: str, as_of: date, source: str,
            symbols: Sequence[str], variant: str, flow_run_id: str = "") -> TrainingRun:
    return TrainingRun(run_id=run_id, status="running", config_hash=config_hash,
                       config_version=config_version, as_of=as_of, source=source,
                       symbols=",".join(symbols), variant=variant, flow_run_id=flow_run_id)


__all__ = [
    "MODEL_SUFFIX", "ModelChecksumError", "ModelFile", "RunNotFound", "RunStore", "UntrustedModelError",
    "load_model", "new_run", "save_model",
    "sha256_of",
]
