"""Feature chunks as Prefect tasks on a real local Dask cluster: the same samples as in process."""

from __future__ import annotations

from datetime import date

import pandas as pd
from prefect import flow, get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.runtime import flow_run

from flows.chunks import chunk_mapper
from flows.config import TaskRunnerConfig
from flows.runners import build_task_runner
from market.samples import build_samples
from tests.flows.conftest import PrefectServer
from tests.panels import simulated_panel, small_universe

PANEL = simulated_panel(date(2012, 6, 29), small_universe())


def _samples(chunk_symbols: int) -> tuple[pd.DataFrame, str]:
    built = build_samples(PANEL, "2011-06-01", "2012-06-29", chunk_symbols=chunk_symbols, mapper=chunk_mapper())
    return built.frame, str(flow_run.id)


def _task_run_names(flow_run_id: str) -> list[str]:
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return sorted(r.name for r in runs)


def test_chunks_run_as_tasks_on_a_local_dask_cluster_and_give_the_same_samples(prefect_api: PrefectServer) -> None:
    expected = build_samples(PANEL, "2011-06-01", "2012-06-29", chunk_symbols=len(PANEL.symbols)).frame
    on_dask = flow(name="chunks-on-dask", task_runner=build_task_runner(
        TaskRunnerConfig(kind="dask", n_workers=2)))(_samples)
    frame, run_id = on_dask(5)
    pd.testing.assert_frame_equal(frame, expected, check_exact=True)
    # one feature-chunk task per five symbols, on the cluster's workers
    assert _task_run_names(run_id) == sorted(f"features-{start}-{min(start + 5, len(PANEL.symbols))}"
                                             for start in range(0, len(PANEL.symbols), 5))

    # On threads the chunks run one after another in the flow's process: no task, same samples.
    in_process = flow(name="chunks-in-process", task_runner=build_task_runner(TaskRunnerConfig()))(_samples)
    frame, run_id = in_process(5)
    pd.testing.assert_frame_equal(frame, expected, check_exact=True)
    assert _task_run_names(run_id) == []
