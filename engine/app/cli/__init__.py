"""The `simsignal` command line: one module per group of commands, one shared `app`.

`common` (the app, options, settings, errors), `replay` (demo, run), `follow` (run --feed
redis), `analysis` (evaluate, chart), `tools` (flush, bench, health, dashboard, subscribe),
`reporting` (summary.json, the engine hash). The commands are registered here, in the order
`simsignal --help` lists them.
"""

from simsignal.engine.app.cli import analysis, replay, tools
from simsignal.engine.app.cli.common import app

for _command in (replay.demo, replay.run, tools.flush, tools.bench, analysis.evaluate,
                 analysis.chart, tools.health, tools.dashboard, tools.subscribe):  # fmt: skip
    app.command()(_command)

__all__ = ["app"]
