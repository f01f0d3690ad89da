"""Judging the signals: walk-forward forecasts, calibration, statistics and the report."""
