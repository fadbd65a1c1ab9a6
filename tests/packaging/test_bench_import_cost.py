"""The cold-start benchmark runs against the handlers as they are and reports each one (its
figures are printed by `make bench`, not asserted here)."""

from __future__ import annotations

import re

from tests.support.bench import run_bench


def test_the_import_cost_benchmark_imports_every_handler() -> None:
    output = run_bench("import_cost.py", "--runs", "1")
    totals = re.findall(r"^(\w+): total [\d.]+ ms$", output, re.M)
    assert totals == ["schedule_task", "execute_task", "reconcile_task"]
