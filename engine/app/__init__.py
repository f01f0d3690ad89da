"""The app layer: what a user runs (the CLI, dashboard, terminal views, charts, bench, evaluate).

The top of the house: it may use every layer below, and nothing imports it.
"""
