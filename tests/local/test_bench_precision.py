"""The precision benchmark runs small and reports its figures (the figures themselves are
printed by `make bench`, not asserted here)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.support.lambda_runtime import ROOT


@pytest.mark.slow  # waits for real time: started first (tests/conftest.py)
def test_a_small_precision_run_delivers_each_task_once_never_early() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "precision.py"),
            "--tasks=3",
            "--lead=6",
            "--spread=3",
            "--backend=scheduler",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    (line,) = result.stdout.splitlines()
    assert re.fullmatch(
        r"cores=\d+ backend=scheduler aws_timing=1 near \(queued\) tasks=3 delivered=3/3 "
        r"duplicates=0 early=0 lateness p50=-?\d+ ms p99=-?\d+ ms max=-?\d+ ms within_1s=\d/3",
        line,
    ), line
