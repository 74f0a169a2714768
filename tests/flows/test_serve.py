"""``stormwatch serve`` (``make serve``) for real: server, pool, deployments, alerts, worker, UI.

The module's fixture runs :class:`flows.serve.Served` (what ``stormwatch serve`` runs) on a free
port with the UI on and its state in a temporary ``STORMWATCH_HOME``. Through the API: the
three deployments with their schedules, the retrain trigger, the four alert automations, the
work pool and a worker polling it. In headless Chromium (Debian's ``chromium``): the
deployments page, the retrain deployment's page (schedule and trigger) and the automations
page, saved to ``build/test-artifacts/`` for a person to look at. Closing stops every process.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from flows.alerts import ALERTS
from flows.config import Settings, load_config
from flows.serve import RETRAIN_TRIGGER, Served, free_port
from tests.conftest import REPO_ROOT

ARTIFACTS = REPO_ROOT / "build" / "test-artifacts"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("serve") / "home"
    lines: list[str] = []
    instance = Served(loaded=load_config(), settings=Settings(home=home), port=free_port(), ui=True,
                      worker=True, log=lines.append)
    instance.start()
    instance.lines = lines  # type: ignore[attr-defined]
    try:
        yield instance
    finally:
        instance.close()
        for process in (instance.worker_process, instance.server_process):
            assert process is not None and process.poll() is not None, "a child outlived close()"


def _api(served: Served, coroutine: Any) -> Any:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: served.api_url}):
        return asyncio.run(coroutine())


def test_serve_deploys_everything_and_prints_the_ui_address(served: Served) -> None:
    from prefect import get_client

    async def read() -> dict[str, Any]:
        async with get_client() as client:
            return {"deployments": {d.name: d for d in await client.read_deployments()},
                    "automations": {a.name: a for a in await client.read_automations()},
                    "pool": await client.read_work_pool(load_config().config.flows.work_pool),
                    "workers": await client.read_workers_for_work_pool(load_config().config.flows.work_pool)}

    flows = load_config().config.flows
    deadline = time.monotonic() + 60
    state = _api(served, read)
    while not state["workers"] and time.monotonic() < deadline:  # the worker's first heartbeat
        time.sleep(1)
        state = _api(served, read)
    deployments = state["deployments"]
    assert set(deployments) == {"monitor", "retrain", "update-archive"}
    assert deployments["monitor"].schedules[0].schedule.interval.total_seconds() == flows.monitor_interval_minutes * 60
    weekly = deployments["retrain"].schedules[0].schedule
    assert (weekly.cron, weekly.timezone) == (flows.retrain_schedule.cron, flows.retrain_schedule.timezone)
    automations = state["automations"]
    assert {RETRAIN_TRIGGER, *(a.name for a in ALERTS)} <= set(automations)
    assert state["pool"].type == "process" and state["workers"], "no worker polls the pool"
    assert served.ui_url.startswith("http://127.0.0.1:")
    printed = "\n".join(served.lines)  # type: ignore[attr-defined]
    assert f"Prefect UI: {served.ui_url}" in printed and "no webhook URL is configured" in printed
    assert str(served.prefect_home) in printed  # the server's state is under STORMWATCH_HOME


def _chromium() -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("STORMWATCH_REQUIRE_CHROMIUM"):
            pytest.fail("STORMWATCH_REQUIRE_CHROMIUM is set but no chromium is on PATH")
        pytest.skip("Debian's chromium is not installed (.ci/run installs it and sets STORMWATCH_REQUIRE_CHROMIUM)")
    return browser


def _page(browser: str, url: str, *, screenshot: Path | None = None) -> str:
    """The page's DOM after its scripts ran (and a screenshot of it when asked)."""
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--virtual-time-budget=60000", "--run-all-compositor-stages-before-draw", "--window-size=1500,1300"]
    env = {**os.environ, "TZ": "UTC"}  # the UI shows times in the browser's zone: pin it
    if screenshot is not None:
        subprocess.run([*flags, f"--screenshot={screenshot}", url], capture_output=True, timeout=180, check=True,
                       env=env)
    return subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=180,
                          check=True, env=env).stdout


def test_the_prefect_ui_shows_the_deployments_their_schedules_and_triggers_and_the_automations(
    served: Served
) -> None:
    from prefect import get_client

    browser = _chromium()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    async def retrain_and_next_run() -> tuple[Any, Any]:
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

        async with get_client() as client:
            deployment = next(d for d in await client.read_deployments() if d.name == "retrain")
            runs = await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])))
            return deployment.id, min(r.expected_start_time for r in runs)

    deployments = _page(browser, f"{served.ui_url}/deployments", screenshot=ARTIFACTS / "prefect-deployments.png")
    for name in ("monitor", "retrain", "update-archive"):
        assert name in deployments, name
    assert "Every 30 minutes" in deployments and "At 09:00 PM, only on Saturday" in deployments
    retrain_id, next_run = _api(served, retrain_and_next_run)
    in_new_york = next_run.astimezone(ZoneInfo("America/New_York"))
    assert (in_new_york.strftime("%A"), in_new_york.hour, in_new_york.minute) == ("Saturday", 21, 0)
    retrain = _page(browser, f"{served.ui_url}/deployments/deployment/{retrain_id}",
                    screenshot=ARTIFACTS / "prefect-retrain-deployment.png")
    # the schedule (its slug and the next run, shown in the browser's time zone, UTC here), the trigger
    assert "weekly" in retrain and RETRAIN_TRIGGER in retrain
    assert next_run.astimezone(UTC).strftime("%Y/%m/%d %I:%M:%S %p") in retrain
    automations = _page(browser, f"{served.ui_url}/automations", screenshot=ARTIFACTS / "prefect-automations.png")
    for spec in ALERTS:
        assert spec.name in automations, spec.name
    for picture in ("prefect-deployments.png", "prefect-retrain-deployment.png", "prefect-automations.png"):
        assert (ARTIFACTS / picture).stat().st_size > 20_000, picture  # kept for a person to look at
