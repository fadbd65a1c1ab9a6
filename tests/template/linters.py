"""The template linters as `make test` installs them, run on a template file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml


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


def assert_lints_clean(template: dict[str, Any], directory: Path) -> None:
    """cfn-lint and `sam validate --lint` on a resolved template (one ApiAuth mode, one trigger
    backend): written to `directory`, less the conditions only a resolved Fn::If used, which
    would be reported unused (W8001)."""
    text = str(template["Resources"]) + str(template["Outputs"])
    template = {
        **template,
        "Conditions": {
            name: body for name, body in template["Conditions"].items() if repr(name) in text
        },
    }
    path = directory / "template.yaml"
    path.write_text(yaml.safe_dump(template, sort_keys=False), encoding="utf-8")
    lint = cfn_lint(path)
    assert (lint.returncode, lint.stdout, lint.stderr) == (0, "", "")
    validate = sam_validate_lint(path)
    assert validate.returncode == 0, validate.stdout + validate.stderr
    assert "is a valid SAM Template" in validate.stdout + validate.stderr
