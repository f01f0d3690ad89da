#!/usr/bin/env bash
# Regenerate the hashed lock files from pyproject.toml's ranges (run after changing them).
#   requirements/main.txt  the runtime (what the Docker image and a wheel install need)
#   requirements/dev.txt   runtime + tests, linters and references (what CI and developers use)
#   requirements/uv.txt    uv, the installer .ci/run uses for dev.txt
set -euo pipefail
cd "$(dirname "$0")/.."
common=(--quiet --generate-hashes --strip-extras --allow-unsafe --resolver=backtracking pyproject.toml)
python -m piptools compile "${common[@]}" -o requirements/main.txt
python -m piptools compile "${common[@]}" --extra dev -o requirements/dev.txt
python -m piptools compile "${common[@]/pyproject.toml/requirements/uv.in}" -o requirements/uv.txt  # CI's installer
echo "locked: $(grep -c '==' requirements/main.txt) runtime and $(grep -c '==' requirements/dev.txt) dev pins"
