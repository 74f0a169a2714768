"""The deployments of ``prefect.yaml`` on a real Prefect server (the ``prefect_server`` fixture).

``prefect.yaml`` agrees with the configuration it is generated from; ``prefect deploy`` of it
gives deployments with the configured cron, time zone and interval, the concurrency limits, and
a trigger that turns a burst of ``stormwatch.rare-event.detected`` / ``stormwatch.drift.detected``
events into ONE retraining flow run whose parameters are the event's details.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from flows.config import FlowsConfig, Schedule, load_config
from flows.serve import PROJECT_ROOT, RETRAIN_TRIGGER, prefect_yaml, render_prefect_yaml
from tests.conftest import REPO_ROOT
from tests.flows.conftest import Deployed, PrefectServer


def test_prefect_yaml_is_the_one_generated_from_the_packaged_configuration() -> None:
    flows = load_config().config.flows
    checked_in = (REPO_ROOT / "prefect.yaml").read_text()
    assert checked_in == render_prefect_yaml(flows), (
        "prefect.yaml differs from the `flows:` section of flows/stormwatch.yaml: regenerate it with "
        "`stormwatch serve --write-prefect-yaml prefect.yaml`")
    spec = yaml.safe_load(checked_in)
    by_name = {d["name"]: d for d in spec["deployments"]}
    assert by_name["monitor"]["schedules"][0]["interval"] == flows.monitor_interval_minutes * 60
    assert by_name["retrain"]["schedules"][0]["cron"] == flows.retrain_schedule.cron
    assert by_name["retrain"]["triggers"][0]["within"] == flows.retrain_cooldown_minutes * 60


def test_the_generated_yaml_follows_a_changed_configuration() -> None:
    changed = FlowsConfig(retrain_schedule=Schedule(cron="30 6 * * 1", timezone="Europe/London"),
                          monitor_interval_minutes=5, retrain_cooldown_minutes=15, work_pool="elsewhere")
    spec = prefect_yaml(changed)
    by_name = {d["name"]: d for d in spec["deployments"]}
    assert by_name["retrain"]["schedules"][0] | {} == {
        "cron": "30 6 * * 1", "timezone": "Europe/London", "slug": "weekly", "active": True,
        "parameters": {"reason": "weekly schedule"}}
    assert by_name["monitor"]["schedules"][0]["interval"] == 300
    assert by_name["retrain"]["triggers"][0]["within"] == 900
    assert {d["work_pool"]["name"] for d in spec["deployments"]} == {"elsewhere"}


def _read(name: str) -> Any:
    from prefect import get_client

    async def go() -> Any:
        async with get_client() as client:
            for deployment in await client.read_deployments():
                if deployment.name == name:
                    return deployment
        raise AssertionError(f"no deployment {name!r} on the server")

    return asyncio.run(go())


def _flow_runs(deployment_id: Any) -> list[Any]:
    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId, FlowRunFilter

    async def go() -> list[Any]:
        async with get_client() as client:
            return await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
                flow_run_filter=FlowRunFilter())

    return asyncio.run(go())


def test_the_retrain_deployment_has_the_weekly_cron_its_time_zone_the_trigger_and_the_limit(
    deployed: Deployed, prefect_api: PrefectServer
) -> None:
    flows = load_config().config.flows
    retrain = _read("retrain")
    (schedule,) = retrain.schedules
    assert schedule.schedule.cron == flows.retrain_schedule.cron == "0 21 * * 6"
    assert schedule.schedule.timezone == flows.retrain_schedule.timezone == "America/New_York"
    assert schedule.active and schedule.parameters == {"reason": "weekly schedule"}
    assert retrain.work_pool_name == flows.work_pool
    assert retrain.entrypoint == "flows/runners.py:retrain"
    assert retrain.global_concurrency_limit is not None and retrain.global_concurrency_limit.limit == 1
    assert retrain.concurrency_options.collision_strategy.value == "ENQUEUE"
    # deploying works from any clone: the pull step's directory is where `prefect deploy` ran
    (pull,) = retrain.pull_steps
    assert pull["prefect.deployments.steps.set_working_directory"]["directory"] == str(PROJECT_ROOT)


def test_the_retrain_trigger_is_an_automation_expecting_both_events_with_the_cooldown(
    deployed: Deployed, prefect_api: PrefectServer
) -> None:
    from prefect import get_client

    async def go() -> list[Any]:
        async with get_client() as client:
            return await client.read_automations_by_name(RETRAIN_TRIGGER)

    (automation,) = asyncio.run(go())
    trigger = automation.trigger
    assert trigger.expect == {"stormwatch.rare-event.detected", "stormwatch.drift.detected"}
    assert trigger.posture.value == "Reactive" and trigger.threshold == 1
    assert trigger.within == timedelta(minutes=load_config().config.flows.retrain_cooldown_minutes)
    (action,) = automation.actions
    assert action.type == "run-deployment" and action.deployment_id == _read("retrain").id
    assert action.parameters["as_of"] == "{{ event.payload.session }}"


def _emit_rare_event(name: str, session: str) -> None:
    from prefect.events import emit_event

    emitted = emit_event(
        event="stormwatch.rare-event.detected",
        resource={"prefect.resource.id": f"stormwatch.rare-event.simulated.{name}",
                  "prefect.resource.name": name},
        payload={"source": "simulated", "name": name, "regime": "crash", "start": "2026-03-02",
                 "end": session, "session": session, "summary": f"{name}: proxy -18% in 9 sessions"})
    assert emitted is not None, "emit_event did not accept the event"


def _emit_drift(session: str) -> None:
    from prefect.events import emit_event

    assert emit_event(
        event="stormwatch.drift.detected",
        resource={"prefect.resource.id": "stormwatch.market.simulated", "prefect.resource.name": "simulated"},
        payload={"source": "simulated", "session": session, "detector": "feature", "statistic": 0.42,
                 "summary": "feature drift: 31 of 180 features"}) is not None


def _flush_events() -> None:
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all(timeout=10)


def _wait_for_runs(deployment_id: Any, count: int, timeout: float = 30.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    runs: list[Any] = []
    while time.monotonic() < deadline:
        runs = [r for r in _flow_runs(deployment_id) if r.parameters.get("reason", "").startswith("stormwatch.")]
        if len(runs) >= count:
            return runs
        time.sleep(0.25)
    return runs


def test_a_burst_of_storm_events_creates_one_retraining_run_templated_from_the_first_event(
    deployed: Deployed, prefect_api: PrefectServer
) -> None:
    retrain = _read("retrain")
    # The first event goes alone: the server may evaluate events sent together in another order.
    _emit_rare_event("spring-crash", "2026-03-13")
    _flush_events()
    runs = _wait_for_runs(retrain.id, 1)
    assert len(runs) == 1, [r.parameters for r in runs]
    for i in range(4):  # the burst: more rare events and drift, within the cooldown
        _emit_rare_event(f"aftershock-{i}", f"2026-03-1{6 + i}")
        _emit_drift(f"2026-03-1{6 + i}")
    _flush_events()
    time.sleep(5.0)  # long enough for the burst's other events to have been evaluated (and ignored)
    runs = _wait_for_runs(retrain.id, 2, timeout=0.5)
    assert len(runs) == 1, f"the burst started {len(runs)} retrainings: {[r.parameters for r in runs]}"
    (run,) = runs
    assert run.parameters["source"] == "simulated"
    assert str(run.parameters["as_of"]) == "2026-03-13"
    assert run.parameters["reason"] == "stormwatch.rare-event.detected: spring-crash: proxy -18% in 9 sessions"
    assert run.state.type.value == "SCHEDULED"


def _states(run_ids: list[Any]) -> dict[Any, Any]:
    from prefect import get_client

    async def go() -> dict[Any, Any]:
        async with get_client() as client:
            return {run_id: (await client.read_flow_run(run_id)).state for run_id in run_ids}

    return asyncio.run(go())


def _cancel_scheduled_runs() -> None:
    """Cancel every run waiting on the server (the burst test's retraining, the schedules' next
    runs), so that the worker started below picks up only the runs a test creates."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType
    from prefect.states import Cancelled

    async def go() -> None:
        async with get_client() as client:
            waiting = await client.read_flow_runs(flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
                type=FlowRunFilterStateType(any_=[StateType.SCHEDULED, StateType.PENDING]))))
            for run in waiting:
                await client.set_flow_run_state(run.id, Cancelled(message="cleared by the test"), force=True)

    asyncio.run(go())


def test_two_overlapping_monitor_runs_the_second_is_cancelled(
    deployed: Deployed, prefect_api: PrefectServer, tmp_path: Path
) -> None:
    from prefect import get_client
    from prefect.deployments import run_deployment
    from prefect.states import Cancelled

    from flows.serve import start_worker, stop

    monitor = _read("monitor")
    _cancel_scheduled_runs()
    first = run_deployment(name="monitor/monitor", timeout=0, as_subflow=False)
    second = run_deployment(name="monitor/monitor", timeout=0, as_subflow=False)
    env = {**prefect_api.client_env, "STORMWATCH_HOME": str(tmp_path / "home")}
    worker = start_worker(load_config().config.flows.work_pool, env, tmp_path / "worker.log")
    ids = [first.id, second.id]
    try:
        deadline = time.monotonic() + 90
        states = _states(ids)
        while time.monotonic() < deadline and any(s.type.value == "SCHEDULED" for s in states.values()):
            time.sleep(0.5)
            states = _states(ids)
        kinds = sorted(s.type.value for s in states.values())
        cancelled = [s for s in states.values() if s.type.value == "CANCELLED"]
        assert len(cancelled) == 1, f"{kinds}; worker log:\n{(tmp_path / 'worker.log').read_text()[-2000:]}"
        (other,) = [s for s in states.values() if s.type.value != "CANCELLED"]
        assert other.type.value in ("PENDING", "RUNNING", "COMPLETED", "FAILED"), kinds  # it got the slot
        assert "concurrency" in (cancelled[0].message or "").lower(), cancelled[0].message
        print(f"overlapping monitor runs: {kinds}; the cancelled one: {cancelled[0].message}")
        assert all(r.deployment_id == monitor.id for r in (first, second))
    finally:
        async def cancel_rest() -> None:
            async with get_client() as client:
                for run_id in ids:
                    run = await client.read_flow_run(run_id)
                    if run.state is not None and not run.state.is_final():
                        await client.set_flow_run_state(run_id, Cancelled(message="test over"), force=True)

        asyncio.run(cancel_rest())
        stop(worker)


def test_the_monitor_deployment_polls_on_the_interval_and_cancels_an_overlapping_run(
    deployed: Deployed, prefect_api: PrefectServer
) -> None:
    flows = load_config().config.flows
    monitor = _read("monitor")
    (schedule,) = monitor.schedules
    assert schedule.schedule.interval == timedelta(minutes=flows.monitor_interval_minutes)
    assert monitor.global_concurrency_limit is not None and monitor.global_concurrency_limit.limit == 1
    assert monitor.concurrency_options.collision_strategy.value == "CANCEL_NEW"
    assert _read("update-archive").entrypoint == "flows/monitor.py:update_archive"


def test_serve_writes_the_prefect_yaml_of_the_configuration_in_use(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    config = tmp_path / "mine.yaml"
    config.write_text((REPO_ROOT / "flows" / "stormwatch.yaml").read_text().replace(
        "monitor_interval_minutes: 30", "monitor_interval_minutes: 10"))
    out = tmp_path / "prefect.yaml"
    done = CliRunner().invoke(app, ["serve", "--write-prefect-yaml", str(out), "-c", str(config)])
    assert done.exit_code == 0, done.output
    assert out.read_text() == render_prefect_yaml(load_config(config).config.flows)
    assert yaml.safe_load(out.read_text())["deployments"][0]["schedules"][0]["interval"] == 600


def test_serve_refuses_a_port_in_use_naming_it() -> None:
    import socket

    from typer.testing import CliRunner

    from flows.cli import app

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = CliRunner().invoke(app, ["serve", "--port", str(port)])
    assert done.exit_code == 1, done.output
    assert f"127.0.0.1:{port} is in use" in done.output and "--port" in done.output


def test_a_worker_loads_the_retrain_deployment_from_the_pulled_directory_and_runs_it(
    deployed: Deployed, prefect_api: PrefectServer, tmp_path: Path
) -> None:
    """The entrypoint (flows/runners.py:retrain) loads in the worker's process from the pull step's
    directory and receives the parameters; a configuration that does not exist ends the run at
    its first step, Failed (not Crashed), naming the file."""
    from prefect.deployments import run_deployment

    from flows.serve import start_worker, stop

    _cancel_scheduled_runs()
    missing = tmp_path / "no-such-config.yaml"
    run = run_deployment(name="retrain/retrain", timeout=0, as_subflow=False,
                         parameters={"config_path": str(missing), "reason": "test: worker"})
    env = {**prefect_api.client_env, "STORMWATCH_HOME": str(tmp_path / "home")}
    worker = start_worker(load_config().config.flows.work_pool, env, tmp_path / "worker.log")
    try:
        deadline = time.monotonic() + 120
        state = _states([run.id])[run.id]
        while time.monotonic() < deadline and not state.is_final():
            time.sleep(0.5)
            state = _states([run.id])[run.id]
    finally:
        stop(worker)
    log = (tmp_path / "worker.log").read_text()
    assert state.type.value == "FAILED", f"{state.type.value}: {state.message}; worker log:\n{log[-2000:]}"
    assert "no-such-config.yaml" in (state.message or "") + log
