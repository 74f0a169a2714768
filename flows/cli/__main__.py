"""``python -m flows.cli``: the same as the ``stormwatch`` command."""

from flows.cli import app

app()
