"""The moto call-cost benchmark runs the real storage code under both variants of moto and
reports every operation of a task's run (its figures are printed by `make bench-local`, not
asserted here)."""

from __future__ import annotations

import re

from tests.support.bench import run_bench


def test_the_moto_call_cost_benchmark_reports_each_call_of_a_run() -> None:
    output = run_bench("moto_call_cost.py", "--tasks", "3")
    reported = re.findall(r"moto=(\S+) (\w+(?: \(\w+\))?) calls=3 mean=", output)
    operations = ["PutItem", "UpdateItem (claim)", "UpdateItem (record)"]
    assert reported == [
        (variant, op) for variant in ("as-shipped", "local-mode") for op in operations
    ]
