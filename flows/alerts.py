"""Alerts: Prefect automations that notify through one webhook block (``stormwatch alerts install``).

Four automations, each shown on the Prefect UI's Automations page, each firing once per event:

* ``stormwatch-drift``: ``stormwatch.drift.detected`` (a detector on a market's feature,
  regime or prediction stream);
* ``stormwatch-rare-event``: ``stormwatch.rare-event.detected`` (a new storm for the archive);
* ``stormwatch-gate-failed``: ``stormwatch.gate.failed`` (a challenger refused; the champion
  keeps serving);
* ``stormwatch-flow-run-failed``: a Failed or Crashed run of any Stormwatch flow.

Subjects and bodies are Jinja templates over the event (and, for flow runs, the run and its
flow), rendered by the server when it sends. They notify through a
``CustomWebhookNotificationBlock`` named ``stormwatch-alerts`` whose URL is
``flows.alerts.webhook_url``; the JSON it posts carries ``text`` (subject and body, what Slack and
most chat webhooks read) and ``subject``/``body`` separately.

Without a URL the automations are still created, with Prefect's "do nothing" action: they show
in the UI and every firing is in the Event Feed (``prefect.automation.triggered``), so a user
sees what would have been sent and where to configure it; :meth:`InstallReport.summary` says so.
Setting the URL later and installing again switches them to the notification.

Installing is idempotent: what exists and equals the wanted definition is left alone (same
ids, no update), what differs is updated in place, what is missing is created.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

from flows.config import FlowsConfig

#: The notification block's document name.
BLOCK_NAME = "stormwatch-alerts"

#: Every Stormwatch flow, by its Prefect flow name: their failures alert.
STORMWATCH_FLOWS = ("monitor", "retrain", "update-archive", "demo")


@dataclass(frozen=True)
class AlertSpec:
    """One automation: its name, what it listens to, and the message it sends."""

    name: str
    description: str
    expect: tuple[str, ...]
    match: dict[str, Any]
    subject: str
    body: str
    match_related: dict[str, Any] | None = None


ALERTS: tuple[AlertSpec, ...] = (
    AlertSpec(
        name="stormwatch-drift",
        description="Drift detected by the monitor on a market's features, regime or predictions.",
        expect=("stormwatch.drift.detected",),
        match={"prefect.resource.id": "stormwatch.market.*"},
        subject="Stormwatch: {{ event.payload.detector }} drift on {{ event.payload.source }}",
        body="{{ event.payload.summary }} (session {{ event.payload.session }}, "
             "statistic {{ event.payload.statistic }}). A retraining is triggered.",
    ),
    AlertSpec(
        name="stormwatch-rare-event",
        description="A new rare event found by the monitor; it joins the archive.",
        expect=("stormwatch.rare-event.detected",),
        match={"prefect.resource.id": "stormwatch.rare-event.*"},
        subject="Stormwatch: new rare event {{ event.payload.name }} on {{ event.payload.source }}",
        body="{{ event.payload.summary }} ({{ event.payload.regime }}, {{ event.payload.start }} to "
             "{{ event.payload.end }}, seen at session {{ event.payload.session }}). "
             "A retraining is triggered.",
    ),
    AlertSpec(
        name="stormwatch-gate-failed",
        description="A retrained challenger failed the promotion gate; the champion keeps serving.",
        expect=("stormwatch.gate.failed",),
        match={"prefect.resource.id": "stormwatch.model.*"},
        subject="Stormwatch: run {{ event.payload.run_id }} failed the promotion gate",
        body="{{ event.payload.champion or 'no model' }} keeps serving. Reasons: "
             "{{ event.payload.reasons | join('; ') }}",
    ),
    AlertSpec(
        name="stormwatch-flow-run-failed",
        description="A Stormwatch flow run failed or crashed.",
        expect=("prefect.flow-run.Failed", "prefect.flow-run.Crashed"),
        match={"prefect.resource.id": "prefect.flow-run.*"},
        match_related={"prefect.resource.role": "flow", "prefect.resource.name": list(STORMWATCH_FLOWS)},
        subject="Stormwatch: {{ flow.name }} run {{ flow_run.name }} {{ flow_run.state.name }}",
        body="{{ flow.name }}/{{ flow_run.name }} -> {{ flow_run.state.name }}: {{ flow_run.state.message }}",
    ),
)

Change = Literal["created", "updated", "unchanged"]


@dataclass(frozen=True)
class InstallReport:
    """What an install did: the block and each automation, created, updated or left unchanged."""

    webhook_url: str | None
    block: Change | None  # None: no URL, no block
    automations: dict[str, Change]
    automation_ids: dict[str, UUID]

    @property
    def changed(self) -> bool:
        return (self.block in ("created", "updated")
                or any(c != "unchanged" for c in self.automations.values()))

    def summary(self) -> str:
        """One paragraph for the terminal."""
        counts = {c: sum(1 for v in self.automations.values() if v == c)
                  for c in ("created", "updated", "unchanged")}
        done = ", ".join(f"{n} {c}" for c, n in counts.items() if n)
        if self.webhook_url is None:
            return (f"alerts: {len(self.automations)} automations ({done}); no webhook URL is configured "
                    "(flows.alerts.webhook_url), so they show in the Prefect UI and record each firing in "
                    "the Event Feed but notify nobody: set the URL and run `stormwatch alerts install` again")
        return (f"alerts: {len(self.automations)} automations ({done}) notifying {self.webhook_url} "
                f"(block {self.block})")


def _block_fields(url: str) -> dict[str, Any]:
    return {"name": "Stormwatch", "url": url, "method": "POST",
            "json_data": {"text": "{{subject}}\n{{body}}", "subject": "{{subject}}", "body": "{{body}}"}}


async def _ensure_block(url: str) -> tuple[UUID, Change]:
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.exceptions import ObjectNotFound

    wanted = _block_fields(url)
    try:
        existing = await CustomWebhookNotificationBlock.aload(BLOCK_NAME)
    except (ObjectNotFound, ValueError):
        existing = None
    if existing is not None:
        url_now = getattr(existing.url, "get_secret_value", lambda: existing.url)()
        have = {"name": existing.name, "url": url_now, "method": existing.method,
                "json_data": existing.json_data}
        if have == wanted and existing._block_document_id is not None:
            return existing._block_document_id, "unchanged"
    block = CustomWebhookNotificationBlock(**wanted)
    block_id = await block.asave(BLOCK_NAME, overwrite=True)
    return block_id, "created" if existing is None else "updated"


def _automation(spec: AlertSpec, block_id: UUID | None) -> Any:
    from prefect.events.actions import DoNothing, SendNotification
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

    trigger = EventTrigger(expect=set(spec.expect), match=spec.match, match_related=spec.match_related or {},
                           posture=Posture.Reactive, threshold=1)
    action = (DoNothing() if block_id is None
              else SendNotification(block_document_id=block_id, subject=spec.subject, body=spec.body))
    return AutomationCore(name=spec.name, description=spec.description, enabled=True, trigger=trigger,
                          actions=[action])


def _essence(automation: Any) -> dict[str, Any]:
    """An automation's definition without its generated ids, comparable across reads."""
    fields = {"name", "description", "enabled", "trigger", "actions", "actions_on_trigger",
              "actions_on_resolve"}
    dumped = automation.model_dump(mode="json", include=fields)
    dumped["trigger"].pop("id", None)
    for key in ("expect", "after"):
        dumped["trigger"][key] = sorted(dumped["trigger"].get(key) or [])
    return dumped


async def _install(flows: FlowsConfig) -> InstallReport:
    from prefect import get_client

    url = flows.alerts.webhook_url
    block_id, block_change = await _ensure_block(url) if url else (None, None)
    changes: dict[str, Change] = {}
    ids: dict[str, UUID] = {}
    async with get_client() as client:
        for spec in ALERTS:
            wanted = _automation(spec, block_id)
            existing = await client.read_automations_by_name(spec.name)
            if not existing:
                ids[spec.name] = await client.create_automation(wanted)
                changes[spec.name] = "created"
                continue
            first, *duplicates = existing
            for extra in duplicates:  # a name is one automation: drop copies made by hand
                await client.delete_automation(extra.id)
            ids[spec.name] = first.id
            if _essence(first) == _essence(wanted) and not duplicates:
                changes[spec.name] = "unchanged"
            else:
                await client.update_automation(first.id, wanted)
                changes[spec.name] = "updated"
    return InstallReport(webhook_url=url, block=block_change, automations=changes, automation_ids=ids)


def install_alerts(flows: FlowsConfig) -> InstallReport:
    """Create or update the notification block and the four automations on the Prefect API in
    use (``PREFECT_API_URL``); a second call with the same configuration changes nothing."""
    return asyncio.run(_install(flows))


__all__ = ["ALERTS", "BLOCK_NAME", "STORMWATCH_FLOWS", "AlertSpec", "InstallReport", "install_alerts"]
