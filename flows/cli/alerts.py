"""``stormwatch alerts install``: the alert automations and their webhook block on the Prefect server."""

from __future__ import annotations

import typer

from flows.cli.common import ConfigOption, cli_errors, console, fail, load

app = typer.Typer(help="Alerts: Prefect automations on drift, rare events, failed gates and failed runs.",
                  no_args_is_help=True)


class NoPrefectServer(RuntimeError):
    """Alerts live on a Prefect server, and none is named."""


@app.command("install")
def install(config: ConfigOption = None) -> None:
    """Create or update the four alert automations and the webhook block (flows.alerts.webhook_url)
    on the server of PREFECT_API_URL; a second run changes nothing."""
    from prefect.settings import PREFECT_API_URL

    from flows.alerts import install_alerts

    loaded, _ = load(config, home=False)
    api_url = PREFECT_API_URL.value()
    if not api_url:
        # Without a server Prefect would install them into a throw-away ephemeral one.
        raise fail(NoPrefectServer("PREFECT_API_URL is not set: alerts live on a Prefect server"),
                   "start one with `make serve` (it installs them) and export the PREFECT_API_URL it prints")
    with cli_errors(RuntimeError, OSError):
        report = install_alerts(loaded.config.flows)
    console.print(f"on {api_url}: {report.summary()}")
    for name, change in report.automations.items():
        console.print(f"  {name}: {change}")
