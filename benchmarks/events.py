"""Event to retraining flow run on a local Prefect server: how long the trigger takes (issue 11).

Starts ``prefect server start`` on loopback (a temporary ``PREFECT_HOME``, SQLite), creates the
work pool, deploys the retrain deployment of ``prefect.yaml`` with the real ``prefect deploy``,
then, seven times: emits ``stormwatch.rare-event.detected`` and waits for the retraining flow run
the trigger creates. Prints the median and worst time from the emit call to the run being
readable through the API (and the server's own ``created - occurred``), and the ratio against
the 3 s target.

The production trigger has a cooldown (one retraining per burst), so before each sample the
trigger's automation is re-saved with a fresh trigger id: the server then starts it with a new,
empty bucket, exactly as right after a deploy. Nothing else about the trigger changes.
"""

from __future__ import annotations

import asyncio
import inspect
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET_SECONDS = 3.0
SAMPLES = 7


async def _retrain_runs(client: Any, deployment_id: Any) -> list[Any]:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    return await client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))


async def _fresh_bucket(client: Any, automation: Any) -> None:
    """Re-save the trigger's automation unchanged: the server gives the saved trigger a new id,
    and buckets are kept per trigger id, so its cooldown starts afresh."""
    from prefect.events.schemas.automations import AutomationCore

    core = AutomationCore.model_validate(automation.model_dump(exclude={"id", "created", "updated", "owner_resource"}))
    await client.update_automation(automation.id, core)


async def _sample(client: Any, deployment_id: Any, automation: Any, index: int) -> tuple[float, float]:
    from prefect.events import emit_event
    from prefect.events.worker import EventsWorker

    await _fresh_bucket(client, automation)
    await asyncio.sleep(1.5)  # the triggers service reloads a changed automation
    known = {r.id for r in await _retrain_runs(client, deployment_id)}
    name = f"bench-{index}"
    started = time.perf_counter()
    event = emit_event(event="stormwatch.rare-event.detected",
                       resource={"prefect.resource.id": f"stormwatch.rare-event.simulated.{name}",
                                 "prefect.resource.name": name},
                       payload={"source": "simulated", "name": name, "regime": "crash", "start": "2026-03-02",
                                "end": "2026-03-13", "session": "2026-03-13", "summary": f"{name}: benchmark"})
    assert event is not None
    drained = EventsWorker.drain_all(timeout=5)  # in a running loop it returns an awaitable
    if inspect.isawaitable(drained):
        await drained
    deadline = started + 30.0
    while time.perf_counter() < deadline:
        new = [r for r in await _retrain_runs(client, deployment_id) if r.id not in known]
        if new:
            seen = time.perf_counter() - started
            server = (new[0].created - event.occurred).total_seconds()
            return seen, server
        await asyncio.sleep(0.05)
    raise RuntimeError(f"no retraining flow run within 30 s of event {index}")


async def _measure(deployment_name: str, trigger_name: str) -> list[tuple[float, float]]:
    from prefect import get_client

    async with get_client() as client:
        deployment = next(d for d in await client.read_deployments() if d.name == deployment_name)
        (automation,) = await client.read_automations_by_name(trigger_name)
        samples = []
        for index in range(SAMPLES):
            samples.append(await _sample(client, deployment.id, automation, index))
            (automation,) = await client.read_automations_by_name(trigger_name)
        return samples


def main() -> list[str]:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.config import load_config
    from flows.serve import (
        PROJECT_ROOT,
        RETRAIN_TRIGGER,
        client_environment,
        deploy,
        ensure_work_pool,
        free_port,
        start_server,
        stop,
    )

    home = Path(tempfile.mkdtemp(prefix="stormwatch-bench-events-"))
    started = time.perf_counter()
    process, api_url, _ = start_server(home, free_port(), ui=False)
    try:
        up = time.perf_counter() - started
        with temporary_settings({PREFECT_API_URL: api_url}):
            asyncio.run(ensure_work_pool(load_config().config.flows.work_pool))
            deploy(PROJECT_ROOT / "prefect.yaml", client_environment(api_url, home), names=["retrain"])
            samples = asyncio.run(_measure("retrain", RETRAIN_TRIGGER))
    finally:
        stop(process)
    seen = [s for s, _ in samples]
    server = [s for _, s in samples]
    median = statistics.median(seen)
    print(f"event -> retraining flow run, local prefect server (up in {up:.1f} s), {SAMPLES} events")
    print(f"  emit to run readable: median {median:.2f} s, worst {max(seen):.2f} s "
          f"({', '.join(f'{s:.2f}' for s in seen)})")
    print(f"  server, run created - event occurred: median {statistics.median(server):.2f} s")
    print(f"  ratio to the {TARGET_SECONDS:.0f} s target: {median / TARGET_SECONDS:.2f} "
          f"(total {time.perf_counter() - started:.0f} s)")
    missed = [f"event to flow run took {median:.2f} s (> {TARGET_SECONDS:.0f} s)"] if median > TARGET_SECONDS else []
    print("target: " + ("met" if not missed else "NOT MET: " + "; ".join(missed)))
    return missed


if __name__ == "__main__":
    sys.exit(1 if main() else 0)
