"""``stormwatch serve`` (``make serve``): a Prefect server with Stormwatch deployed on it, until Ctrl-C."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import ConfigOption, cli_errors, console, fail, load


class PortInUse(OSError):
    """The port asked for is taken on 127.0.0.1."""


def _check_port(port: int) -> None:
    with socket.socket() as sock:
        # as the server will bind it: a socket of a server stopped a moment ago (TIME_WAIT) is no
        # obstacle to it, and must not be to this check either
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise PortInUse(f"127.0.0.1:{port} is in use (another `stormwatch serve`, or a Prefect server "
                            "already running?)") from None


def serve(
    port: Annotated[int, typer.Option("--port", "-p", help="Port of the server and UI on 127.0.0.1.")] = 4200,
    worker: Annotated[bool, typer.Option("--worker/--no-worker", help="Start a worker for the pool.")] = True,
    write_prefect_yaml: Annotated[Path | None, typer.Option(
        "--write-prefect-yaml", help="Only write prefect.yaml generated from the configuration to this "
        "path, and exit.", dir_okay=False)] = None,
    config: ConfigOption = None,
) -> None:
    """Start a Prefect server on 127.0.0.1 with its state in STORMWATCH_HOME, deploy the monitor,
    the retraining and the archive update, install the alerts, start a worker, print the UI's
    address; Ctrl-C stops everything it started."""
    from flows.serve import Served, ServeError, render_prefect_yaml

    loaded, settings = load(config)
    if write_prefect_yaml is not None:
        with cli_errors():
            write_prefect_yaml.write_text(render_prefect_yaml(loaded.config.flows), encoding="utf-8")
        console.print(f"wrote {write_prefect_yaml} from the flows section of {loaded.path}")
        return
    try:
        _check_port(port)
    except PortInUse as exc:
        raise fail(exc, "choose another with --port") from None
    served = Served(loaded=loaded, settings=settings, port=port, worker=worker,
                    log=lambda line: console.print(line, highlight=False, soft_wrap=True))
    with cli_errors(ServeError):
        try:
            served.start()
            served.wait()
        finally:
            served.close()
    console.print("stopped")
