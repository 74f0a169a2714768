"""Model files: skops archives that build only trusted types, verified by checksum on every load.

The members are real (a forest, XGBoost, LightGBM and a scaled logistic regression, as the zoo
builds them), so what is checked is what a retraining run writes.
"""

from __future__ import annotations

import json
import logging
import os
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import FunctionTransformer

from memory.runs import (
    MODEL_SUFFIX,
    ModelChecksumError,
    UntrustedModelError,
    load_model,
    save_model,
    sha256_of,
)
from models.zoo import (
    TRUSTED_TYPE_PREFIXES,
    CalmGate,
    CalmGatedEnsemble,
    SoftVotingEnsemble,
    StormGate,
    build_estimator,
    for_reproducible_prediction,
)


@pytest.fixture(scope="module")
def ensemble() -> tuple[SoftVotingEnsemble, pd.DataFrame]:
    rng = np.random.default_rng(7)
    X = pd.DataFrame(rng.normal(size=(400, 5)).astype(np.float32), columns=[f"f{i}" for i in range(5)])
    y = (X["f0"] + 0.5 * rng.normal(size=len(X)) > 0).astype(np.int64)
    specs = {
        "random_forest": ("sklearn.ensemble", "RandomForestClassifier", {"n_estimators": 8, "random_state": 0}, "none"),
        "xgboost": ("xgboost", "XGBClassifier", {"n_estimators": 8, "random_state": 0}, "none"),
        "lightgbm": ("lightgbm", "LGBMClassifier", {"n_estimators": 8, "random_state": 0, "verbose": -1}, "none"),
        "logistic_regression": ("sklearn.linear_model", "LogisticRegression", {}, "standardize"),
    }
    members = {}
    for name, (module, cls, kwargs, preprocess) in specs.items():
        member = build_estimator(module, cls, kwargs, preprocess=preprocess)
        members[name] = for_reproducible_prediction(member.fit(X, y, sample_weight=np.ones(len(X))))
    weights = {"random_forest": 0.1, "xgboost": 0.4, "lightgbm": 0.3, "logistic_regression": 0.2}
    storm = {"random_forest": 0.0, "xgboost": 0.0, "lightgbm": 0.0, "logistic_regression": 1.0}
    return SoftVotingEnsemble(members=members, weights=weights, feature_names=tuple(X.columns),
                              storm_weights=storm, storm_gate=StormGate(column="f1", above=0.5)), X


def test_the_ensemble_reads_back_predicting_the_same_bits(ensemble, tmp_path: Path) -> None:
    model, X = ensemble
    path = tmp_path / f"ensemble{MODEL_SUFFIX}"
    digest = save_model(model, path)
    assert digest == sha256_of(path)
    again = load_model(path, digest, TRUSTED_TYPE_PREFIXES)
    np.testing.assert_array_equal(again.predict_proba(X), model.predict_proba(X))
    assert again.weights == model.weights and again.feature_names == model.feature_names
    assert again.storm_weights == model.storm_weights and again.storm_gate == model.storm_gate
    assert again.storm_rows(X).sum() == (X["f1"] > 0.5).sum() > 0  # the gate came back and still gates


def test_the_calm_gated_pair_reads_back_predicting_the_same_bits(ensemble, tmp_path: Path) -> None:
    """The served model of a retrain with a window zoo: two ensembles and a gate in one file."""
    model, X = ensemble
    calm = SoftVotingEnsemble(members={"lightgbm": model.members["lightgbm"]}, weights={"lightgbm": 1.0},
                              feature_names=model.feature_names)
    pair = CalmGatedEnsemble(hybrid=model, calm=calm, gate=CalmGate(column="f2", below=0.0))
    path = tmp_path / f"ensemble{MODEL_SUFFIX}"
    again = load_model(path, save_model(pair, path), TRUSTED_TYPE_PREFIXES)
    assert isinstance(again, CalmGatedEnsemble) and again.gate == pair.gate
    np.testing.assert_array_equal(again.predict_proba(X), pair.predict_proba(X))
    assert 0 < again.calm_rows(X).sum() < len(X)


def test_the_archive_holds_no_pickle_and_keeps_the_boosters_in_their_own_formats(ensemble, tmp_path) -> None:
    model, _ = ensemble
    path = tmp_path / f"ensemble{MODEL_SUFFIX}"
    save_model(model, path)
    with zipfile.ZipFile(path) as archive:
        schema = archive.read("schema.json").decode()
        blobs = {name: archive.read(name) for name in archive.namelist() if name != "schema.json"}
    assert "pickle" not in schema.lower()
    assert not any(blob.startswith(b"\x80") for blob in blobs.values())  # a pickle's protocol byte
    # LightGBM's booster is its model text; XGBoost's is its UBJSON (a binary file in the archive)
    assert "tree\\\\nversion=v4" in schema
    xgb_blob = [blob for blob in blobs.values() if b"learner" in blob]
    assert xgb_blob and xgb_blob[0][:1] == b"{"  # UBJSON opens an object with '{'
    assert json.loads(schema)["protocol"] >= 1


def test_a_tampered_file_is_refused_naming_it(ensemble, tmp_path: Path) -> None:
    model, _ = ensemble
    path = tmp_path / f"lightgbm{MODEL_SUFFIX}"
    digest = save_model(model.members["lightgbm"], path)
    path.write_bytes(path.read_bytes() + b"tampered")
    with pytest.raises(ModelChecksumError, match=r"lightgbm\.skops does not match its recorded checksum"):
        load_model(path, digest, TRUSTED_TYPE_PREFIXES)
    path.unlink()
    with pytest.raises(ModelChecksumError, match="is missing"):
        load_model(path, digest, TRUSTED_TYPE_PREFIXES)


def test_a_file_holding_an_untrusted_type_is_refused_before_anything_is_built(tmp_path: Path) -> None:
    # A transformer that would call os.system: its checksum matches, yet the function is not trusted.
    hostile = FunctionTransformer(func=os.system)
    path = tmp_path / f"member{MODEL_SUFFIX}"
    digest = save_model(hostile, path)
    with pytest.raises(UntrustedModelError, match=r"member\.skops holds type\(s\).*os.*system"):
        load_model(path, digest, TRUSTED_TYPE_PREFIXES)


def test_a_reader_trusting_nothing_refuses_the_zoos_wrappers(ensemble, tmp_path: Path) -> None:
    model, _ = ensemble
    path = tmp_path / f"ensemble{MODEL_SUFFIX}"
    digest = save_model(model, path)
    with pytest.raises(UntrustedModelError, match="models.zoo.SoftVotingEnsemble"):
        load_model(path, digest)


def test_a_file_that_is_not_a_skops_archive_is_refused(tmp_path: Path) -> None:
    path = tmp_path / f"ensemble{MODEL_SUFFIX}"
    path.write_bytes(b"not a zip")
    with pytest.raises(UntrustedModelError, match="not a readable skops archive"):
        load_model(path, sha256_of(path), TRUSTED_TYPE_PREFIXES)


def test_a_pickle_written_before_skops_still_loads_with_a_warning(ensemble, tmp_path, caplog) -> None:
    model, X = ensemble
    path = tmp_path / "ensemble.joblib"
    joblib.dump(model, path)
    with caplog.at_level(logging.WARNING, logger="memory.runs"):
        again = load_model(path, sha256_of(path), TRUSTED_TYPE_PREFIXES)
    np.testing.assert_array_equal(again.predict_proba(X), model.predict_proba(X))
    assert "is a pickle" in caplog.text
