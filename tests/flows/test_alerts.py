"""The alert automations on a real Prefect server, notifying a webhook receiver on loopback.

A receiver (``http.server`` in a thread) stands in for Slack: the automation's notification
arrives there with the subject and body templated from the event. A second install changes
nothing; without a URL the automations exist (the UI shows them) and notify nobody.
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from typer.testing import CliRunner

from flows.alerts import ALERTS, BLOCK_NAME, install_alerts
from flows.config import AlertsConfig, FlowsConfig
from tests.flows.conftest import PrefectServer


class Receiver:
    """A webhook receiver on 127.0.0.1: every POSTed JSON body lands in :attr:`received`."""

    def __init__(self) -> None:
        self.received: queue.Queue[dict[str, Any]] = queue.Queue()
        self.bodies: list[dict[str, Any]] = []  # every notification so far, in order of arrival
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length", 0))
                received.put(json.loads(self.rfile.read(length) or b"{}"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, predicate: Any, timeout: float = 30.0) -> dict[str, Any]:
        """The first notification satisfying ``predicate``, among those received so far or within
        ``timeout``; the others stay for the next call."""
        deadline = time.monotonic() + timeout
        while True:
            for body in self.bodies:
                if predicate(body):
                    return body
            if time.monotonic() >= deadline:
                raise AssertionError(f"no matching notification within {timeout} s; received: {self.bodies}")
            try:
                self.bodies.append(self.received.get(timeout=0.25))
            except queue.Empty:
                pass

    def until_notified(self, emit: Any, predicate: Any, *, attempts: int = 4, each: float = 15.0) -> dict[str, Any]:
        """``emit()``, again up to ``attempts`` times, until a notification satisfies ``predicate``.
        The server's triggers service learns of a created or changed automation asynchronously
        (notes/prefect-3.md: the automation must exist before the event), so on a loaded machine
        an event just after ``install_alerts`` can still meet the old do-nothing automation and
        be lost; a later one is not. Without a notification after every attempt, it fails."""
        for _ in range(attempts - 1):
            emit()
            try:
                return self.wait_for(predicate, timeout=each)
            except AssertionError:
                pass
        emit()
        return self.wait_for(predicate, timeout=each)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    try:
        yield hook
    finally:
        hook.close()


def _automations() -> dict[str, Any]:
    from prefect import get_client

    async def go() -> dict[str, Any]:
        async with get_client() as client:
            return {a.name: a for a in await client.read_automations()}

    return asyncio.run(go())


def test_without_a_url_the_automations_exist_and_notify_nobody(prefect_api: PrefectServer) -> None:
    report = install_alerts(FlowsConfig())
    assert report.webhook_url is None and report.block is None
    assert set(report.automations) == {a.name for a in ALERTS}
    assert "no webhook URL is configured (flows.alerts.webhook_url)" in report.summary()
    on_server = _automations()
    for spec in ALERTS:
        automation = on_server[spec.name]
        assert automation.enabled and [a.type for a in automation.actions] == ["do-nothing"]
        assert automation.trigger.expect == set(spec.expect)


def test_a_drift_event_notifies_the_webhook_templated_and_a_second_install_changes_nothing(
    prefect_api: PrefectServer, receiver: Receiver
) -> None:
    from prefect.events import emit_event
    from prefect.events.worker import EventsWorker

    flows = FlowsConfig(alerts=AlertsConfig(webhook_url=receiver.url))
    first = install_alerts(flows)
    assert first.block in ("created", "updated") and first.changed  # switched from do-nothing
    before = _automations()
    second = install_alerts(flows)
    assert not second.changed, second
    assert second.block == "unchanged" and set(second.automations.values()) == {"unchanged"}
    after = _automations()
    for spec in ALERTS:  # same automations, not even touched
        assert after[spec.name].id == before[spec.name].id
        assert after[spec.name].model_dump() == before[spec.name].model_dump()
    assert [a.type for a in after["stormwatch-drift"].actions] == ["send-notification"]

    def emit_both() -> None:
        emit_event(event="stormwatch.drift.detected",
                   resource={"prefect.resource.id": "stormwatch.market.alert-test",
                             "prefect.resource.name": "alert-test"},
                   payload={"source": "alert-test", "session": "2026-03-13", "detector": "prediction",
                            "statistic": 0.37, "summary": "prediction drift: log loss up 12%"})
        emit_event(event="stormwatch.gate.failed",
                   resource={"prefect.resource.id": "stormwatch.model.alert-test",
                             "prefect.resource.name": "alert-test"},
                   payload={"run_id": "run-7", "champion": "run-3",
                            "reasons": ["crash log loss worse by 0.04", "calibration off"]})
        EventsWorker.drain_all(timeout=10)

    drift = receiver.until_notified(emit_both, lambda b: "drift" in b.get("subject", ""))
    assert drift["subject"] == "Stormwatch: prediction drift on alert-test"
    assert drift["body"] == ("prediction drift: log loss up 12% (session 2026-03-13, statistic 0.37). "
                             "A retraining is triggered.")
    assert drift["text"] == f"{drift['subject']}\n{drift['body']}"
    gate = receiver.wait_for(lambda b: "gate" in b.get("subject", ""))
    assert gate["subject"] == "Stormwatch: run run-7 failed the promotion gate"
    assert gate["body"] == "run-3 keeps serving. Reasons: crash log loss worse by 0.04; calibration off"


def test_a_failed_stormwatch_flow_run_notifies_the_webhook(
    prefect_api: PrefectServer, receiver: Receiver, tmp_path: Any
) -> None:
    from flows.retrain import retrain

    install_alerts(FlowsConfig(alerts=AlertsConfig(webhook_url=receiver.url)))
    missing = tmp_path / "no-such-config.yaml"

    def fail_a_run() -> None:
        with pytest.raises(Exception, match="no-such-config.yaml"):
            retrain(config_path=str(missing))  # the real flow, failing at its first step

    failed = receiver.until_notified(fail_a_run, lambda b: b.get("subject", "").startswith("Stormwatch: retrain run"))
    assert failed["subject"].endswith(" Failed")
    assert "retrain/retrain-default-today -> Failed" in failed["body"]


def test_alerts_install_command_says_where_it_installed(prefect_api: PrefectServer) -> None:
    from flows.cli import app

    done = CliRunner().invoke(app, ["alerts", "install"])
    assert done.exit_code == 0, done.output
    assert prefect_api.api_url in done.output and "4 automations" in done.output
    assert BLOCK_NAME not in done.output  # the packaged configuration has no URL: no block
    assert "no webhook URL is configured" in " ".join(done.output.split())


def test_alerts_install_refuses_without_a_server_instead_of_using_a_throwaway_one() -> None:
    from flows.cli import app

    refused = CliRunner().invoke(app, ["alerts", "install"])
    assert refused.exit_code == 1, refused.output
    assert "PREFECT_API_URL is not set" in refused.output and "make serve" in refused.output


def test_every_flow_of_the_package_is_covered_by_the_flow_run_failure_alert() -> None:
    import importlib
    import pkgutil

    from prefect import Flow

    import flows
    from flows.alerts import STORMWATCH_FLOWS

    names = set()
    for module in pkgutil.iter_modules(flows.__path__):
        loaded = importlib.import_module(f"flows.{module.name}")
        names |= {value.name for value in vars(loaded).values() if isinstance(value, Flow)}
    assert {"retrain", "monitor", "update-archive"} <= names
    assert names <= set(STORMWATCH_FLOWS), f"flows without a failure alert: {names - set(STORMWATCH_FLOWS)}"
