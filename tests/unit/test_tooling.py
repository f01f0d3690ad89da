"""The lock, the linters' pins and the import layers stay consistent (no services needed)."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]


def _pins(lock: Path) -> dict[str, str]:
    text = lock.read_text()
    pins = dict(re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s\\;]+)", text, flags=re.M))
    return {name.lower().replace("_", "-"): version for name, version in pins.items()}


def test_every_locked_requirement_is_hashed() -> None:
    for lock in ("main.txt", "dev.txt", "uv.txt"):
        blocks = re.split(r"\n(?=[A-Za-z0-9_.\-]+==)", (ROOT / "requirements" / lock).read_text())
        pinned = [b for b in blocks if re.match(r"[A-Za-z0-9_.\-]+==", b)]
        assert pinned, lock
        assert all("--hash=sha256:" in b for b in pinned), lock


def test_lock_satisfies_the_ranges_in_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    main, dev = _pins(ROOT / "requirements/main.txt"), _pins(ROOT / "requirements/dev.txt")
    for spec, lock in [(r, main) for r in project["dependencies"]] + [
        (r, dev) for r in project["optional-dependencies"]["dev"]
    ]:
        req = Requirement(spec)
        name = req.name.lower().replace("_", "-")
        assert name in lock, f"{name} is not in the lock"
        assert req.specifier.contains(lock[name], prereleases=True), (spec, lock[name])
    assert {k: v for k, v in main.items() if k in dev} == {k: dev[k] for k in main}, (
        "requirements/main.txt and dev.txt pin different versions: run scripts/lock.sh"
    )


def test_pre_commit_uses_the_locked_linters() -> None:
    dev = _pins(ROOT / "requirements/dev.txt")
    config = (ROOT / ".pre-commit-config.yaml").read_text()
    assert f"rev: v{dev['ruff']}" in config
    assert f"mypy=={dev['mypy']}" in config
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'"ruff=={dev["ruff"]}"' in pyproject and f'"mypy=={dev["mypy"]}"' in pyproject


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_code_imports_only_the_distinct_package_names() -> None:
    """`engine` and `actors` are folders; their import names live under `simsignal`."""
    folders = ("engine/**/*.py", "actors/*.py", "tests/**/*.py", "scripts/*.py")
    for path in [p for pattern in folders for p in ROOT.glob(pattern)]:
        bad = {n for n in _imports(path) if n.split(".")[0] in {"engine", "actors", "config"}}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """import-linter's contracts (pyproject.toml) over the `simsignal` package found in `root`."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--config",
                           str(root / "pyproject.toml")], cwd=root, env=env, capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip


def test_the_layer_contracts_hold_on_every_module() -> None:
    done = _lint_imports(ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "BROKEN" not in done.stdout and "Contracts: 6 kept, 0 broken." in done.stdout
    counted = re.search(r"Analyzed (\d+) files", done.stdout)
    ours = [*ROOT.glob("engine/**/*.py"), *ROOT.glob("actors/*.py"), *ROOT.glob("config/*.py")]
    assert counted and int(counted.group(1)) >= len(ours)  # every module is in the graph


def test_an_upward_import_breaks_the_layers(tmp_path: Path) -> None:
    """A copy of the package whose core imports the app: the contract says which chain broke."""
    for name in ("engine", "actors", "config"):
        shutil.copytree(ROOT / name, tmp_path / name,
                        ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    (tmp_path / "simsignal").mkdir()
    shutil.copy(ROOT / "simsignal" / "__init__.py", tmp_path / "simsignal" / "__init__.py")
    for name in ("engine", "actors", "config"):
        (tmp_path / "simsignal" / name).symlink_to(tmp_path / name)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    forecast = tmp_path / "engine" / "core" / "forecast.py"
    forecast.write_text(forecast.read_text() + "\nfrom simsignal.engine.app import chart\n")
    done = _lint_imports(tmp_path)
    assert done.returncode == 1, done.stdout[-3000:]
    assert "Layers: core < config < adapters < runtime (actors) < app BROKEN" in done.stdout
    assert "simsignal.engine.core.forecast -> simsignal.engine.app.chart" in done.stdout


def test_the_tests_on_the_sessions_ray_share_one_worker(tmp_path: Path) -> None:
    """conftest's grouping, as pytest-xdist applies it with the locked pytest: every test that
    uses `ray_cluster` runs on one worker, so only one starts the session's Ray and Spark.
    (pytest 9.2 drops the group silently, pytest-xdist#1386: each worker then started both.)"""
    (tmp_path / "conftest.py").write_text(
        "import pytest\n"
        "from tests.conftest import pytest_collection_modifyitems  # the suite's own hook\n"
        "@pytest.fixture\n"
        "def ray_cluster():\n"
        "    return None\n"
    )  # fmt: skip
    for name in "abcd":
        (tmp_path / f"test_{name}.py").write_text(
            "import os\n"
            f"def test_{name}(ray_cluster):\n"
            f"    open('{name}.worker', 'w').write(os.environ['PYTEST_XDIST_WORKER'])\n"
            f"def test_{name}_alone():\n"
            "    pass\n"
        )  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist", "loadgroup", "-p",
         "no:cacheprovider", "-o", "addopts=", "--rootdir", str(tmp_path), str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    workers = {(tmp_path / f"{name}.worker").read_text() for name in "abcd"}
    assert len(workers) == 1, workers


def test_ci_installs_with_the_locked_uv() -> None:
    """`.ci/run` bootstraps uv from requirements/uv.txt; the dev lock pins the same version
    (the wheel test runs the dev venv's uv)."""
    assert _pins(ROOT / "requirements/uv.txt")["uv"] == _pins(ROOT / "requirements/dev.txt")["uv"]
    assert "-r requirements/uv.txt" in (ROOT / ".ci" / "run").read_text()
