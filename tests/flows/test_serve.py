"""``stormwatch serve`` (``make serve``) for real: server, pool, deployments, alerts, worker, UI.

The module's fixture runs the real ``stormwatch serve`` (what ``make serve`` runs) as a
subprocess on a free port, with its state in a temporary ``STORMWATCH_HOME``. Through the API: the
three deployments with their schedules, the retrain trigger, the four alert automations, the
work pool and a worker polling it. In headless Chromium (Debian's ``chromium``): the
deployments page, the retrain deployment's page (schedule and trigger) and the automations
page, saved to ``build/test-artifacts/`` for a person to look at. Then a Ctrl-C (SIGINT) stops
the command, its worker and its server.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from flows.alerts import ALERTS
from flows.config import Settings, load_config
from flows.serve import RETRAIN_TRIGGER, free_port, running_server
from tests.conftest import REPO_ROOT

ARTIFACTS = REPO_ROOT / "build" / "test-artifacts"


@dataclass
class Serving:
    """``stormwatch serve`` running as a subprocess: its process, what it printed, its addresses."""

    process: subprocess.Popen[str]
    lines: list[str]
    api_url: str
    ui_url: str
    home: Path

    def pids(self) -> list[int]:
        """The server's and the worker's process ids, as ``stormwatch serve`` printed them."""
        return [int(m) for line in self.lines for m in re.findall(r"\(pid (\d+)", line)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead: it only waits for its parent to read its status
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serving]:
    """The real command, as ``make serve`` runs it, with its state in a temporary STORMWATCH_HOME."""
    home = tmp_path_factory.mktemp("serve") / "home"
    port = free_port()
    env = {**os.environ, "STORMWATCH_HOME": str(home), "PREFECT_WORKER_QUERY_SECONDS": "2"}
    env.pop("PREFECT_API_URL", None)
    process = subprocess.Popen([sys.executable, "-m", "flows.cli", "serve", "--port", str(port)], cwd=REPO_ROOT,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)  # so that the test can send it a Ctrl-C alone
    lines: list[str] = []
    assert process.stdout is not None
    for line in process.stdout:  # until the UI's address: everything is up
        lines.append(line.rstrip())
        if line.startswith("Prefect UI:"):
            break
    else:
        pytest.fail("stormwatch serve exited before printing the UI's address:\n" + "\n".join(lines))
    threading.Thread(target=lambda: [lines.append(x.rstrip()) for x in process.stdout or []], daemon=True).start()
    serving = Serving(process=process, lines=lines, api_url=f"http://127.0.0.1:{port}/api",
                      ui_url=f"http://127.0.0.1:{port}", home=home)
    try:
        yield serving
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        for pid in serving.pids():
            if _alive(pid):
                os.killpg(pid, signal.SIGKILL)


def _api(served: Serving, coroutine: Any) -> Any:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: served.api_url}):
        return asyncio.run(coroutine())


def test_serve_deploys_everything_and_prints_the_ui_address(served: Serving) -> None:
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
    printed = " ".join(" ".join(served.lines).split())
    assert f"Prefect UI: {served.ui_url}" in printed and "no webhook URL is configured" in printed
    assert "/home/prefect" in printed  # the server's state is under STORMWATCH_HOME
    assert len(served.pids()) == 2, served.lines
    # what the demo asks to find the server of its STORMWATCH_HOME
    assert running_server(Settings(home=served.home)) == served.api_url


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
    served: Serving
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


def test_ctrl_c_stops_the_worker_and_the_server(served: Serving) -> None:
    pids = served.pids()
    assert pids and all(_alive(pid) for pid in pids)
    os.killpg(served.process.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
    assert served.process.wait(timeout=60) == 0, served.lines
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in pids if _alive(pid)], f"still running after Ctrl-C: {pids}"
    assert "stopping the worker and the server" in served.lines and served.lines[-1] == "stopped"
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{served.api_url}/health", timeout=2)  # noqa: S310 - loopback
    assert running_server(Settings(home=served.home)) is None
