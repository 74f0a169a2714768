"""The same retraining on a real local Dask cluster (prefect-dask) and in process: same models.

A small run (four symbols of the simulated market, a zoo of two members) is trained twice on
the session's Prefect server: once with ``flows.task_runner.kind: threads``, once with ``dask``
(a ``LocalCluster`` of two worker processes that the runner starts and stops). The training set,
the per-regime accuracy, the ensemble weights and the predictions of every member and of the
ensemble on the same rows must be equal bit for bit.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from flows.config import Settings, TaskRunnerConfig, load_config
from market.features import FEATURE_NAMES
from tests.conftest import DEFAULT_CONFIG
from tests.flows.conftest import PrefectServer

AS_OF = date(2026, 6, 1)
MEMBERS = ("lightgbm", "logistic_regression")


def tiny_config(path: Path, kind: str) -> Path:
    """The default configuration on four symbols with two small members, no replay buffer (so
    that the second run's training set is the first's) and the given runner."""
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    raw["market"]["universe"]["members"] = raw["market"]["universe"]["members"][:4]
    raw["models"]["zoo"] = {name: raw["models"]["zoo"][name] for name in MEMBERS}
    raw["models"]["validation"]["ensemble_storm_members"] = None  # the storm member is not in this zoo
    raw["models"]["zoo"]["lightgbm"]["kwargs"]["n_estimators"] = 40
    # lbfgs is what BLAS threads change (the reason for flows.runners.local_cluster): keep the
    # logistic regression, with fewer iterations (500 take a minute on 120,000 rows)
    raw["models"]["zoo"]["logistic_regression"]["kwargs"]["max_iter"] = 60
    raw["models"]["training"]["replay"] = False  # both runs share a home: the first's errors stay out
    raw["models"]["shap"] = {"background_samples": 50, "samples_per_regime": 100}
    raw["flows"]["task_runner"] = {"kind": kind, "n_workers": 2, "threads_per_worker": 1}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _train(root: Path, kind: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    from flows.retrain import run_retrain
    from flows.runners import configured_task_runner
    from flows.training import open_runs

    monkeypatch.setenv("STORMWATCH_HOME", str(root / "home"))  # the second run reuses the bars and archive
    config = tiny_config(root / f"{kind}.yaml", kind)
    loaded = load_config(config)
    runner = configured_task_runner(loaded)
    assert type(runner).__name__ == {"threads": "ThreadPoolTaskRunner", "dask": "DaskTaskRunner"}[kind]
    outcome = run_retrain(config_path=str(config), as_of=AS_OF, task_runner=runner)
    runs = open_runs(Settings())
    try:
        ensemble = runs.load(outcome.run_id)
    finally:
        runs.store.dispose()
    return outcome, ensemble


def _zoos(model: Any) -> dict[str, Any]:
    """The served model's zoos: the pair's two, or the hybrid zoo alone where the window zoo did
    not validate better on the calm rows (its members are then kept nowhere)."""
    from models.zoo import CalmGatedEnsemble

    return {"hybrid": model.hybrid, "calm": model.calm} if isinstance(model, CalmGatedEnsemble) else {"hybrid": model}


def test_dask_on_a_local_cluster_trains_the_same_models_as_threads_in_process(
    prefect_api: PrefectServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_process, threads_model = _train(tmp_path, "threads", monkeypatch)
    on_dask, dask_model = _train(tmp_path, "dask", monkeypatch)
    assert on_dask.training_set_hash == in_process.training_set_hash
    assert set(on_dask.fit_seconds) == set(MEMBERS)
    pd.testing.assert_frame_equal(on_dask.accuracy, in_process.accuracy, check_exact=True)
    assert on_dask.ensemble_weights == in_process.ensemble_weights
    assert on_dask.window_weights == in_process.window_weights is not None  # the window zoo, on Dask too
    assert on_dask.calm_check == in_process.calm_check is not None  # both zoos' calm validation losses
    rng = np.random.default_rng(7)
    rows = pd.DataFrame(rng.normal(size=(400, len(FEATURE_NAMES))), columns=list(FEATURE_NAMES))
    rows["vix_level"] = rng.uniform(10, 50, size=len(rows))  # both zoos serve some of these rows, if both serve
    on_threads = _zoos(threads_model)
    for zoo, ensemble in _zoos(dask_model).items():
        for name in MEMBERS:
            np.testing.assert_array_equal(ensemble.members[name].predict_proba(rows),
                                          on_threads[zoo].members[name].predict_proba(rows), err_msg=f"{zoo} {name}")
    np.testing.assert_array_equal(dask_model.predict_proba(rows), threads_model.predict_proba(rows))
    # On Dask the feature chunks were tasks on the cluster too; in process they ran in turn, no task.
    assert _task_names(on_dask.run_id) >= {"train-lightgbm", "train-logistic_regression", "features-0-4",
                                           "train-lightgbm-on-window", "train-logistic_regression-on-window"}
    assert not any(re.fullmatch(r"features-\d+-\d+", name) for name in _task_names(in_process.run_id))


def _task_names(run_id: str) -> set[str]:
    """The task runs of the retraining flow run that recorded ``run_id``."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.training import open_runs

    runs = open_runs(Settings())
    try:
        flow_run_id = runs.get(run_id).flow_run_id
    finally:
        runs.store.dispose()
    with get_client(sync_client=True) as client:
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {t.name for t in tasks}


def test_the_runner_is_built_from_the_configuration_key() -> None:
    from prefect_dask import DaskTaskRunner

    from flows.runners import build_task_runner, local_cluster

    remote = build_task_runner(TaskRunnerConfig(kind="dask", address="tcp://127.0.0.1:8786"))
    assert isinstance(remote, DaskTaskRunner) and remote.address == "tcp://127.0.0.1:8786"
    local = build_task_runner(TaskRunnerConfig(kind="dask", n_workers=3, threads_per_worker=2))
    assert local.address is None and local.cluster_class is local_cluster
    assert local.cluster_kwargs == {"n_workers": 3, "threads_per_worker": 2, "processes": True,
                                    "host": "127.0.0.1", "dashboard_address": None}
    with pytest.raises(ValueError, match="must name a Dask scheduler"):
        TaskRunnerConfig(kind="dask", address="127.0.0.1:8786")
