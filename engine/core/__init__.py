"""The core layer: maths, algorithms, the minute pipeline and its messages; no I/O.

NumPy, numba, pyarrow and orjson only: no Ray, Spark, Redis, pandas, terminal or web library
(`[tool.importlinter]` in pyproject.toml). Everything here runs, and is tested, in one process.
"""
