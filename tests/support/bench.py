"""Running a benchmark script of bench/ the way `make bench` does, for the smoke tests that check
it still runs and reports every figure (the figures themselves are not asserted)."""

from __future__ import annotations

import subprocess
import sys

from tests.support.lambda_runtime import ROOT


def run_bench(script: str, *args: str, timeout: float = 120) -> str:
    """bench/`script` with `args`, which must exit 0: its standard output."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    return result.stdout
