"""One `sam build` for every packaging test of the session, whichever pytest-xdist worker runs
them: the first worker to need it builds into the session's shared temporary folder under a file
lock, and records the outcome; the others wait on the lock and use (or report) that outcome."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _session_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The temporary folder of the whole run: xdist gives each worker a subfolder of it."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def _sam_build(out: Path) -> subprocess.CompletedProcess[str]:
    sam = shutil.which("sam", path=str(Path(sys.executable).parent)) or shutil.which("sam")
    assert sam, "sam (aws-sam-cli) is not installed: run `make test`, which installs it"
    env = {
        **os.environ,
        "SAM_CLI_TELEMETRY": "0",
        "AWS_DEFAULT_REGION": "us-east-1",
        # sam looks for python3.13 on PATH; the venv's interpreter is that version.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    return subprocess.run(
        [sam, "build", "--template", "template.yaml", "--build-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    shared = _session_root(tmp_path_factory) / "sam"
    shared.mkdir(exist_ok=True)
    out = shared / "build"
    outcome = shared / "outcome.json"
    with (shared / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not outcome.exists():
            result = _sam_build(out)
            output = result.stdout + result.stderr
            outcome.write_text(json.dumps({"returncode": result.returncode, "output": output}))
        built = json.loads(outcome.read_text())
    assert built["returncode"] == 0, built["output"]
    return out
