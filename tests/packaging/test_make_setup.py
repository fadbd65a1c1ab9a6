"""`make local` / `make test` on a machine without Python 3.13: they stop at once and say how to
get it, instead of failing somewhere inside the venv's creation."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.support.lambda_runtime import ROOT


@pytest.mark.parametrize("goal", ["local", "test"])
def test_without_python_3_13_make_says_how_to_get_it(tmp_path, goal: str) -> None:
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    shutil.copytree(ROOT / "requirements", tmp_path / "requirements")
    result = subprocess.run(
        ["make", goal, "PYTHON="],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    for way in (
        "pyenv install 3.13",
        "uv python install 3.13",
        "apt-get install python3.13",
        f"make {goal} PYTHON=/path/to/python3.13",
    ):
        assert way in result.stderr
    assert not (tmp_path / ".venv").exists()
