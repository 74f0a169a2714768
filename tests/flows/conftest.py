"""A real ``prefect server start`` on loopback for the flows tests that need one.

``prefect_server`` (session scope) starts one server for the whole session, with its own
``PREFECT_HOME`` and SQLite database in a temporary folder, on a free port of 127.0.0.1, with
analytics and the UI off, and stops it (its whole process group) at the end. ``prefect_api``
(function scope) points this process's Prefect client at it for one test, so tests that use
Prefect's test harness or the ephemeral mode are not affected. ``deployed`` creates the work
pool and deploys ``prefect.yaml`` once per session, with the real ``prefect deploy``.

The server is started with the same code as ``stormwatch serve`` (``flows.serve``), so these
tests exercise that path too.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT


@dataclass(frozen=True)
class PrefectServer:
    """A running server: its API URL, its PREFECT_HOME, and the environment of its clients."""

    api_url: str
    home: Path
    client_env: dict[str, str]
    process: subprocess.Popen[bytes]


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    from flows.serve import client_environment, free_port, start_server, stop

    home = tmp_path_factory.mktemp("prefect-server")
    process, api_url, _ = start_server(home, free_port(), ui=False)
    try:
        env = client_environment(api_url, home)
        env.update({"PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_RUNNER_POLL_FREQUENCY": "1"})
        yield PrefectServer(api_url=api_url, home=home, client_env=env, process=process)
    finally:
        try:
            _flush_to(api_url)
        finally:
            stop(process)


def _flush_to(api_url: str) -> None:
    """Send the logs and events still queued for this server before it stops (else Prefect's
    handlers print "Error logging to API" at exit, trying a server that is gone)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api_url}):
        APILogWorker.drain_all(timeout=10)
        EventsWorker.drain_all(timeout=10)


@pytest.fixture
def prefect_api(prefect_server: PrefectServer) -> Iterator[PrefectServer]:
    """This process's Prefect client on the session's server, for one test."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: prefect_server.api_url}):
        yield prefect_server


@dataclass(frozen=True)
class Deployed:
    """What the session deployed: the deployment names and ``prefect deploy``'s output."""

    names: tuple[str, ...]
    output: str


@pytest.fixture(scope="session")
def deployed(prefect_server: PrefectServer) -> Deployed:
    """The work pool and the deployments of the checked-in ``prefect.yaml`` on the session's server."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.config import load_config
    from flows.serve import deploy, ensure_work_pool, prefect_yaml

    flows = load_config().config.flows
    with temporary_settings({PREFECT_API_URL: prefect_server.api_url}):
        asyncio.run(ensure_work_pool(flows.work_pool))
    output = deploy(REPO_ROOT / "prefect.yaml", prefect_server.client_env)
    return Deployed(names=tuple(d["name"] for d in prefect_yaml(flows)["deployments"]), output=output)
