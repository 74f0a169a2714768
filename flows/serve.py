"""Stormwatch on a real Prefect server: the deployments and ``stormwatch serve`` (``make serve``).

Two halves:

* :func:`prefect_yaml` builds the content of ``prefect.yaml`` from the configuration's
  ``flows`` section, so no number is typed twice: the monitor's interval, the retraining cron
  and time zone, the trigger's cooldown and the work pool all come from ``stormwatch.yaml``.
  The checked-in ``prefect.yaml`` is this function's output for the packaged default (a test
  fails when they disagree; ``stormwatch serve --write-prefect-yaml prefect.yaml`` rewrites it),
  and ``stormwatch serve`` deploys the file generated from the configuration in use.
* :class:`Served` starts what ``make serve`` runs: ``prefect server start`` on 127.0.0.1 with
  its state in ``STORMWATCH_HOME/prefect``, the process work pool, the deployments, the alert
  automations and a worker; closing it stops every process it started (each in its own session,
  so a Ctrl-C in the terminal reaches only ``stormwatch serve``, which then stops them in order).

Why the retrain trigger looks the way it does (checked against Prefect 3.9.1's
``server/events/triggers.py``): a *reactive* trigger with ``threshold: 1`` fires on the first
matching event, then opens its next bucket only at the end of ``within``; events in between fall
before that bucket and are ignored. So ``within`` is the cooldown, and one trigger expecting both
event names shares it: a burst of drift and rare-event events starts one retraining. The
deployment's concurrency limit (1, ``ENQUEUE``) additionally keeps a scheduled run and an
event-started one from training at the same time; the monitor's (1, ``CANCEL_NEW``) cancels a
cycle that would overlap a running one.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from flows.config import FlowsConfig, LoadedConfig, Settings

#: The repository (or installed tree) the entrypoints are relative to: ``flows/`` sits in it.
PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: Events that start a retraining, and the resource ids the monitor emits them with.
RETRAIN_EVENTS = ("stormwatch.rare-event.detected", "stormwatch.drift.detected")
RETRAIN_RESOURCES = ("stormwatch.rare-event.*", "stormwatch.market.*")
RETRAIN_TRIGGER = "retrain-on-drift-or-rare-event"

_HEADER = """\
# Prefect deployments of Stormwatch. GENERATED from the `flows:` section of flows/stormwatch.yaml by
# flows/serve.py (`stormwatch serve --write-prefect-yaml prefect.yaml`); tests/flows/test_deployments.py
# fails when the two disagree. `make serve` deploys the file generated from the configuration in use.
# The build step records the directory `prefect deploy` runs in (the clone, wherever it is) and the
# pull step makes it the worker's working directory, so the relative entrypoints resolve.
"""


class ServeError(RuntimeError):
    """A step of ``stormwatch serve`` failed; the message names the step and where to look."""


def prefect_yaml(flows: FlowsConfig) -> dict[str, Any]:
    """The content of ``prefect.yaml`` for ``flows`` (a configuration's ``flows`` section).

    >>> spec = prefect_yaml(FlowsConfig())
    >>> [d["name"] for d in spec["deployments"]]
    ['monitor', 'retrain', 'update-archive']
    >>> spec["deployments"][1]["schedules"][0]["cron"], spec["deployments"][1]["schedules"][0]["timezone"]
    ('0 21 * * 6', 'America/New_York')
    >>> spec["deployments"][0]["schedules"][0]["interval"], spec["deployments"][1]["triggers"][0]["within"]
    (1800, 3600)
    """
    def pool() -> dict[str, str]:  # one mapping per deployment: no YAML anchors in the file
        return {"name": flows.work_pool}

    monitor = {
        "name": "monitor",
        "description": "One monitor cycle: new sessions scored, drift and rare events detected, "
                       "events emitted. Never two at once: an overlapping cycle is cancelled.",
        "entrypoint": "flows/monitor.py:monitor",
        "tags": ["stormwatch"],
        "work_pool": pool(),
        "schedules": [{"interval": flows.monitor_interval_minutes * 60, "slug": "monitor-interval",
                       "active": True}],
        "concurrency_limit": {"limit": 1, "collision_strategy": "CANCEL_NEW"},
    }
    schedule = flows.retrain_schedule
    retrain = {
        "name": "retrain",
        "description": "Retrain the zoo from hybrid memory: weekly, and on drift or a new rare "
                       "event (one retraining per burst). The task runner is flows.task_runner.",
        "entrypoint": "flows/runners.py:retrain",
        "tags": ["stormwatch"],
        "work_pool": pool(),
        "schedules": [{"cron": schedule.cron, "timezone": schedule.timezone, "slug": "weekly",
                       "active": True, "parameters": {"reason": "weekly schedule"}}],
        "concurrency_limit": {"limit": 1, "collision_strategy": "ENQUEUE"},
        "triggers": [{
            "type": "event",
            "name": RETRAIN_TRIGGER,
            "description": "A burst of drift and rare-event events within the cooldown retrains once.",
            "enabled": True,
            "match": {"prefect.resource.id": list(RETRAIN_RESOURCES)},
            "expect": list(RETRAIN_EVENTS),
            "posture": "Reactive",
            "threshold": 1,
            "within": flows.retrain_cooldown_minutes * 60,
            "parameters": {
                "source": "{{ event.payload.source }}",
                "as_of": "{{ event.payload.session }}",
                "reason": "{{ event.event }}: {{ event.payload.summary }}",
            },
        }],
    }
    update_archive = {
        "name": "update-archive",
        "description": "Grow the rare-event archive from the cached bars (run on demand).",
        "entrypoint": "flows/monitor.py:update_archive",
        "tags": ["stormwatch"],
        "work_pool": pool(),
    }
    return {
        "name": "stormwatch",
        "prefect-version": "3.9.1",
        "build": [{"prefect.deployments.steps.run_shell_script": {
            "id": "clone", "script": "pwd", "stream_output": False}}],
        "push": None,
        "pull": [{"prefect.deployments.steps.set_working_directory": {"directory": "{{ clone.stdout }}"}}],
        "deployments": [monitor, retrain, update_archive],
    }


def render_prefect_yaml(flows: FlowsConfig) -> str:
    """``prefect.yaml``'s text for ``flows``: the generated-file header and the YAML."""
    body = yaml.safe_dump(prefect_yaml(flows), sort_keys=False, width=110, allow_unicode=True)
    return _HEADER + body


# --------------------------------------------------------------------------------------------
# The processes of `stormwatch serve`
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for tests and ``--port 0``)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_environment(prefect_home: Path, port: int, *, ui: bool,
                       base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a ``prefect server start`` on 127.0.0.1:``port`` keeping its state
    (SQLite) in ``prefect_home``.

    The host and port are given as settings too, not only as options: the UI asks the server
    where its API is, and without them it answers the default, 127.0.0.1:4200."""
    env = dict(os.environ if base is None else base)
    env.pop("PREFECT_API_URL", None)  # the server itself is not a client of another one
    env.update({
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_UI_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{prefect_home / 'prefect.db'}",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # offline: no telemetry lookups in the log
        "PREFECT_SERVER_UI_ENABLED": "true" if ui else "false",
        "PREFECT_SERVER_LOGGING_LEVEL": env.get("PREFECT_SERVER_LOGGING_LEVEL", "WARNING"),
    })
    return env


def wait_healthy(api_url: str, process: subprocess.Popen[bytes], log: Path, *,
                 timeout: float = 180.0) -> None:
    """Return once ``api_url``/health answers; raise :class:`ServeError` if the server exits or
    does not answer in ``timeout`` seconds (the message ends with its log's tail)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServeError(f"prefect server exited with status {process.returncode} before answering "
                             f"{api_url}/health; its log {log} ends:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(f"{api_url}/health", timeout=2) as answer:  # noqa: S310 - loopback
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    raise ServeError(f"prefect server did not answer {api_url}/health within {timeout:.0f} s; "
                     f"its log {log} ends:\n{_tail(log)}")


def _tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop(process: subprocess.Popen[bytes] | None, *, grace: float = 10.0) -> None:
    """Stop a child started in its own session: SIGTERM to its process group, then SIGKILL.

    ``prefect worker start`` turns SIGTERM into a SIGINT to itself and can hang there (checked
    with 3.9.1), hence the SIGKILL after ``grace`` seconds."""
    if process is None or process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def start_server(prefect_home: Path, port: int, *, ui: bool = True,
                 base_env: Mapping[str, str] | None = None) -> tuple[subprocess.Popen[bytes], str, Path]:
    """``prefect server start`` on 127.0.0.1:``port`` with its state in ``prefect_home``, healthy.

    Returns the process, the API URL and the log file."""
    prefect_home.mkdir(parents=True, exist_ok=True)
    log = prefect_home / "server.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=server_environment(prefect_home, port, ui=ui, base=base_env), stdout=out,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    api_url = f"http://127.0.0.1:{port}/api"
    try:
        wait_healthy(api_url, process, log)
    except BaseException:
        stop(process)
        raise
    return process, api_url, log


def client_environment(api_url: str, prefect_home: Path,
                       base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a Prefect client process (deploy, worker) talking to ``api_url``."""
    env = dict(os.environ if base is None else base)
    env.update({"PREFECT_API_URL": api_url, "PREFECT_HOME": str(prefect_home),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false"})
    env.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    return env


async def ensure_work_pool(name: str) -> bool:
    """Create the process work pool ``name`` unless it exists; True when it was created."""
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists
    from prefect.workers.process import ProcessWorker

    template = ProcessWorker.get_default_base_job_template()
    async with get_client() as client:
        try:
            await client.create_work_pool(
                WorkPoolCreate(name=name, type="process", base_job_template=template))
        except ObjectAlreadyExists:
            return False
    return True


def deploy(prefect_file: Path, env: Mapping[str, str], *, names: list[str] | None = None,
           timeout: float = 300.0) -> str:
    """``prefect deploy`` of ``prefect_file`` (every deployment, or ``names``) from the project root.

    Returns its output; raises :class:`ServeError` with the output when it fails."""
    which = ["--all"] if not names else [arg for name in names for arg in ("--name", name)]
    command = [sys.executable, "-m", "prefect", "--no-prompt", "deploy", *which,
               "--prefect-file", str(prefect_file)]
    done = subprocess.run(command, cwd=PROJECT_ROOT, env=dict(env), capture_output=True, text=True,
                          timeout=timeout, check=False)
    output = done.stdout + done.stderr
    if done.returncode != 0 or "Traceback" in output:
        raise ServeError(f"prefect deploy of {prefect_file} failed (status {done.returncode}):\n"
                         f"{output[-3000:]}")
    return output


def start_worker(pool: str, env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A process worker for ``pool``, in its own session, logging to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "prefect", "worker", "start", "--pool", pool,
                                 "--type", "process"],
                                cwd=PROJECT_ROOT, env=dict(env), stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def serving_marker(settings: Settings) -> Path:
    """The file a running ``stormwatch serve`` keeps in ``STORMWATCH_HOME/prefect``: its API URL."""
    return (settings.home / "prefect" / "serving.json").resolve()


def running_server(settings: Settings) -> str | None:
    """The API URL of the ``stormwatch serve`` running on this ``STORMWATCH_HOME``, if one is up
    and answers its health check; else None (the demo then runs in Prefect's ephemeral mode)."""
    try:
        api_url = str(json.loads(serving_marker(settings).read_text(encoding="utf-8"))["api_url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as answer:  # noqa: S310 - loopback
            return api_url if answer.status == 200 else None
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


@dataclass
class Served:
    """A running ``stormwatch serve``: the server, the deployments, the alerts, the worker.

    Use it as a context manager (or call :meth:`start` and :meth:`close`); closing stops the
    worker, then the server."""

    loaded: LoadedConfig
    settings: Settings
    port: int = 4200
    ui: bool = True
    worker: bool = True
    log: Any = None  # a callable taking one line (the CLI's console.print); None: silent
    server_process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    worker_process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    api_url: str = field(default="", init=False)
    alerts: Any = field(default=None, init=False)

    @property
    def prefect_home(self) -> Path:
        return (self.settings.home / "prefect").resolve()

    @property
    def ui_url(self) -> str:
        return self.api_url.removesuffix("/api")

    def _say(self, line: str) -> None:
        if self.log is not None:
            self.log(line)

    def start(self) -> Served:
        """Bring everything up, in order; on any failure stop what was started and raise."""
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _start(self) -> None:
        import asyncio

        from prefect.settings import PREFECT_API_URL, temporary_settings

        from flows.alerts import install_alerts

        flows = self.loaded.config.flows
        self._say(f"starting prefect server on 127.0.0.1:{self.port} (state in {self.prefect_home})")
        self.server_process, self.api_url, _ = start_server(self.prefect_home, self.port, ui=self.ui)
        self._say(f"prefect server up (pid {self.server_process.pid}, "
                  f"log {self.prefect_home / 'server.log'})")
        env = client_environment(self.api_url, self.prefect_home)
        env["STORMWATCH_HOME"] = str(self.settings.home.resolve())
        env["STORMWATCH_CONFIG"] = str(self.loaded.path.resolve())
        with temporary_settings({PREFECT_API_URL: self.api_url}):
            created = asyncio.run(ensure_work_pool(flows.work_pool))
            self._say(f"work pool {flows.work_pool} (process): {'created' if created else 'already there'}")
            generated = self.prefect_home / "prefect.yaml"
            generated.write_text(render_prefect_yaml(flows), encoding="utf-8")
            deploy(generated, env)
            self._say(f"deployed {generated} (monitor every {flows.monitor_interval_minutes} min; retrain "
                      f"{flows.retrain_schedule.cron} {flows.retrain_schedule.timezone} and on events)")
            self.alerts = install_alerts(flows)
            self._say(self.alerts.summary())
        if self.worker:
            self.worker_process = start_worker(flows.work_pool, env, self.prefect_home / "worker.log")
            self._say(f"worker for {flows.work_pool} started (pid {self.worker_process.pid}, "
                      f"log {self.prefect_home / 'worker.log'})")
        marker = serving_marker(self.settings)
        marker.write_text(json.dumps({"api_url": self.api_url, "ui_url": self.ui_url, "pid": os.getpid()}),
                          encoding="utf-8")
        self._say(f"Prefect UI: {self.ui_url}  (export PREFECT_API_URL={self.api_url} to use it)")

    def close(self) -> None:
        """Stop the worker, then the server (each SIGTERM, then SIGKILL if it hangs)."""
        serving_marker(self.settings).unlink(missing_ok=True)
        stop(self.worker_process)
        stop(self.server_process)

    def __enter__(self) -> Served:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait(self) -> None:
        """Block until Ctrl-C (SIGINT) or SIGTERM; raise ServeError if a child died.

        Both signals are handled explicitly: a process started in the background by a
        non-interactive shell (``make serve &`` in a script) inherits SIGINT ignored, and
        Python would then never raise KeyboardInterrupt."""
        def _terminate(signum: int, frame: object) -> None:
            raise KeyboardInterrupt
        previous = {sig: signal.signal(sig, _terminate) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            while True:
                children = (("prefect server", self.server_process), ("worker", self.worker_process))
                for name, process in children:
                    if process is not None and process.poll() is not None:
                        raise ServeError(f"the {name} exited with status {process.returncode}; "
                                         f"see the logs in {self.prefect_home}")
                time.sleep(1.0)
        except KeyboardInterrupt:
            self._say("stopping the worker and the server")
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


__all__ = ["PROJECT_ROOT", "Served", "ServeError", "deploy", "ensure_work_pool", "free_port", "prefect_yaml",
           "render_prefect_yaml", "running_server", "serving_marker", "start_server", "stop"]
