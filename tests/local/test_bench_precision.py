"""The precision benchmark runs small and reports its figures (the figures themselves are
printed by `make bench`, not asserted here)."""

from __future__ import annotations

import re

import pytest

from tests.support.bench import run_bench


@pytest.mark.slow  # waits for real time: started first (tests/conftest.py)
def test_a_small_precision_run_delivers_each_task_once_never_early() -> None:
    output = run_bench("precision.py", "--tasks=3", "--lead=6", "--spread=3", "--backend=scheduler")
    (line,) = output.splitlines()
    assert re.fullmatch(
        r"cores=\d+ backend=scheduler aws_timing=1 near \(queued\) tasks=3 delivered=3/3 "
        r"duplicates=0 early=0 lateness p50=-?\d+ ms p99=-?\d+ ms max=-?\d+ ms within_1s=\d/3",
        line,
    ), line
