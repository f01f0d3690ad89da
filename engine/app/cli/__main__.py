"""`python -m simsignal.engine.app.cli`: the same as the `simsignal` command."""

from simsignal.engine.app.cli import app

app()
