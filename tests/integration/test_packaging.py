"""The wheel a user installs: one distinct import package, defaults inside, the demo runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from simsignal.engine.adapters.redis_store import RedisStore

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_wheel_and_the_locked_runtime_run_the_demo_in_a_new_virtualenv(
    redis_server: object, store: RedisStore, tmp_path: Path
) -> None:
    dist, target, work = tmp_path / "dist", tmp_path / "venv", tmp_path / "elsewhere"
    work.mkdir()
    source = tmp_path / "source"  # a copy, so the build leaves nothing in the checkout
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "data", "out", "build", "dist", "*_cache", "__pycache__"))  # fmt: skip
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(dist), str(source)], check=True)
    [wheel] = dist.glob("simsignal-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {
        "simsignal",
        wheel.name.split("-py3")[0] + ".dist-info",
    }
    for inside in ("simsignal/config/default.toml", "simsignal/config/settings.py",
                   "simsignal/engine/app/cli/__init__.py", "simsignal/engine/core/commit.py",
                   "simsignal/engine/adapters/redis_store.py", "simsignal/actors/session.py",
                   "simsignal/engine/app/dashboard/static/index.html"):  # every layer  # fmt: skip
        assert inside in names, inside
    # the README's route for users: a new virtualenv, the locked runtime, then the wheel
    subprocess.run([sys.executable, "-m", "venv", str(target)], check=True)
    venv_pip = [str(target / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*venv_pip, "install", "--require-hashes", "-r",
                    str(ROOT / "requirements" / "main.txt")], check=True)  # fmt: skip
    subprocess.run([*venv_pip, "install", "--no-deps", str(wheel)], check=True)
    listed = subprocess.run([*venv_pip, "list", "--format=freeze"], capture_output=True,
                            text=True, check=True).stdout  # fmt: skip
    assert "pytest" not in listed and "hypothesis" not in listed  # nothing of the dev venv

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["COLUMNS"] = "120"
    where = subprocess.run(
        [str(target / "bin" / "python"), "-c",
         "import simsignal.config.settings as s; print(s.DEFAULT_CONFIG)"],
        cwd=work, env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert where.startswith(str(target)) and Path(where).is_file()
    url = redis_server.url  # type: ignore[attr-defined]
    proc = subprocess.run(
        [str(target / "bin" / "simsignal"), "demo", "--years", "0.5", "--redis-url", url],
        cwd=work, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert store.length("simsignal:signals:000300") == 241 * 4
    assert (work / "out" / "summary.json").is_file() and (work / "data").is_dir()
