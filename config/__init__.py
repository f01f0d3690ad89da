"""Packaged defaults: `default.toml` ships inside the wheel as `simsignal.config`."""
