"""The cold-start benchmark runs against the handlers as they are and reports each one (its
figures are printed by `make bench`, not asserted here)."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.support.lambda_runtime import ROOT


def test_the_import_cost_benchmark_imports_every_handler() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "import_cost.py"), "--runs", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    totals = re.findall(r"^(\w+): total [\d.]+ ms$", result.stdout, re.M)
    assert totals == ["schedule_task", "execute_task", "reconcile_task"]
