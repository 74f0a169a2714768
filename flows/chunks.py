"""Feature chunks as Prefect tasks: on a Dask cluster when the flow runs on one.

The feature engine computes a universe a chunk of symbols at a time
(:func:`market.features.compute_block`, ``market.feature_chunk_symbols``) and takes a mapper
that runs the chunks. Inside a flow whose task runner is prefect-dask's ``DaskTaskRunner``,
:func:`chunk_mapper` submits one ``feature-chunk`` task per chunk, so the cluster's workers
compute them while the flow's process combines the cross-sectional features; on any other
runner it returns ``None``: the chunks run one after another in the flow's process, one in
memory at a time, as the memory bound wants (threads would hold several at once).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext

from market.features import ChunkMapper, ChunkValues, FeatureChunk, compute_chunk


@task(name="feature-chunk", task_run_name="features-{chunk.columns.start}-{chunk.columns.stop}",
      cache_policy=NO_CACHE, persist_result=False, retries=1)
def feature_chunk(chunk: FeatureChunk) -> ChunkValues:
    """One chunk of symbols' features and labels (cached nowhere: the bars are the input)."""
    return compute_chunk(chunk)


def on_dask() -> bool:
    """Whether the current flow run's tasks go to a Dask cluster."""
    context = FlowRunContext.get()
    return context is not None and type(context.task_runner).__name__ == "DaskTaskRunner"


def chunk_mapper() -> ChunkMapper | None:
    """The mapper for the current flow run: chunks as tasks on its Dask cluster, else ``None``."""
    if not on_dask():
        return None

    def submit_all(function: Callable[[FeatureChunk], ChunkValues],
                   chunks: Iterable[FeatureChunk]) -> Iterator[ChunkValues]:
        futures = [feature_chunk.submit(chunk) for chunk in chunks]  # every chunk in flight at once
        for future in futures:
            yield future.result()

    return submit_all
