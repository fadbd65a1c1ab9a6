"""The template linters as `make test` installs them, run on a template file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    assert found, f"{name} is not installed: run `make test`, which installs it"
    return found


def cfn_lint(template: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("cfn-lint"), template.name],
        cwd=template.parent,
        capture_output=True,
        text=True,
        check=False,
    )


def sam_validate_lint(template: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1"}
    return subprocess.run(
        [tool("sam"), "validate", "--lint", "--template", template.name],
        cwd=template.parent,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
