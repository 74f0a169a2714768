"""The Prefect task runner a flow's tasks run on, from ``flows.task_runner`` (SPEC scale-out).

``threads`` keeps every task in the flow's process; ``dask`` hands them to prefect-dask's
``DaskTaskRunner``, either on a cluster started elsewhere (``address``) or on a local cluster of
``n_workers`` processes that lives as long as the flow run. Only tasks are distributed: the
retraining flow submits one ``train-member`` task per zoo member, so members train on the
cluster's workers while the other steps run in the flow's process. Nothing home-made: the
runner is Prefect's or prefect-dask's own.

The retrain deployment's entrypoint is :data:`retrain` here, the retraining flow with the
configured runner: a deployment cannot pass a task runner as a parameter, so the runner is
chosen when the worker loads the flow, from the configuration that process would read
(``STORMWATCH_CONFIG``, ``./stormwatch.yaml``, else the packaged default).
"""

from __future__ import annotations

from typing import Any

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from flows.config import (
    FlowsConfig,
    LoadedConfig,
    Settings,
    TaskRunnerConfig,
    load_config,
    resolve_config_path,
)
from flows.retrain import retrain as _retrain


def build_task_runner(config: TaskRunnerConfig, *, max_workers: int = 2) -> TaskRunner:
    """The Prefect task runner ``config`` describes; ``max_workers`` threads for ``threads``.

    >>> type(build_task_runner(TaskRunnerConfig())).__name__
    'ThreadPoolTaskRunner'
    >>> runner = build_task_runner(TaskRunnerConfig(kind="dask", n_workers=3))
    >>> type(runner).__name__, runner.cluster_kwargs["n_workers"]
    ('DaskTaskRunner', 3)
    >>> build_task_runner(TaskRunnerConfig(kind="dask", address="tcp://10.0.0.5:8786")).address
    'tcp://10.0.0.5:8786'
    """
    if config.kind == "threads":
        return ThreadPoolTaskRunner(max_workers=max_workers)
    from prefect_dask import DaskTaskRunner

    if config.address is not None:
        return DaskTaskRunner(address=config.address)
    # processes=True: members fit in their own processes (no GIL sharing); loopback only, and no
    # dashboard (it would need bokeh and a port nobody asked for).
    return DaskTaskRunner(cluster_class=local_cluster, cluster_kwargs={
        "n_workers": config.n_workers, "threads_per_worker": config.threads_per_worker,
        "processes": True, "host": "127.0.0.1", "dashboard_address": None})


#: Dask's nanny starts workers with one BLAS/OpenMP thread (``distributed.nanny.pre-spawn-environ``).
#: OpenBLAS sums in a different order with one thread than with several, so a logistic regression
#: fitted on such a worker differs in its last bits from the same fit in the flow's process
#: (measured: 303 of 800 probabilities differed). Local workers therefore start with the flow
#: process's thread settings; only the memory-trim setting of Dask's default is kept. A cluster
#: given by ``address`` is configured where it runs: start its workers with the same thread
#: variables (or none) as the machine the results are compared against.
_PRE_SPAWN_ENVIRON = {"MALLOC_TRIM_THRESHOLD_": 65536}


def local_cluster(**cluster_kwargs: Any) -> Any:
    """A ``distributed.LocalCluster`` whose workers keep the flow process's thread settings
    (the ``cluster_class`` the Dask runner starts for a run)."""
    import dask
    from distributed import LocalCluster

    with dask.config.set({"distributed.nanny.pre-spawn-environ": _PRE_SPAWN_ENVIRON}):
        return LocalCluster(**cluster_kwargs)


def configured_task_runner(loaded: LoadedConfig) -> TaskRunner:
    """The task runner of a loaded configuration (threads: ``max_parallel_members`` of them)."""
    flows: FlowsConfig = loaded.config.flows
    return build_task_runner(flows.task_runner,
                             max_workers=loaded.config.models.training.max_parallel_members)


def _configuration_of_this_process() -> LoadedConfig:
    path, origin = resolve_config_path(None, Settings().config)
    return load_config(path, origin=origin)


#: The retraining flow on the configured task runner: the retrain deployment's entrypoint.
retrain = _retrain.with_options(task_runner=configured_task_runner(_configuration_of_this_process()))

__all__ = ["build_task_runner", "configured_task_runner", "retrain"]
