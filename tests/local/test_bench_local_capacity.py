"""The capacity benchmark runs small and reports every figure (the figures themselves are printed
by the full-size run, not asserted here)."""

from __future__ import annotations

import re

import pytest

from tests.support.bench import run_bench

FIGURE_LINES = (
    r"^cores=\d+ backend=scheduler tasks=200 clients=16 scheduled_ok=200 in=[\d.]+s "
    r"rate=\d+ req/s p50=\d+ ms p99=\d+ ms max=\d+ ms retried=\d+$",
    r"^cores=\d+ backend=scheduler scheduling_cpu main=[\d.]+ ms/req workers=[\d.]+ ms/req "
    r"load_avg=[\d.]+ [\d.]+ [\d.]+$",
    r"^cores=\d+ backend=scheduler pending_schedules=200/200 sample_schedules=0/5 "
    r"total_schedules=200 \(moto 127\.0\.0\.1:\d+\) api_status_scheduled=100/100$",
    r"^cores=\d+ backend=scheduler local_mode_rss=\d+ MiB \(main \d+ MiB, peak \d+ MiB; \d+ "
    r"child processes \d+ MiB\) with 205 tasks pending$",
    r"^cores=\d+ backend=scheduler sample=5 minute=\S+ delivered=5/5 duplicates=0 early=0 "
    r"unexpected=0 lateness p50=\d+ ms p99=\d+ ms max=\d+ ms sample_schedules_left=0$",
)


@pytest.mark.slow
def test_a_small_capacity_run_schedules_holds_and_fires_its_sample() -> None:
    output = run_bench(
        "local_capacity.py",
        "--tasks=200",
        "--sample=5",
        "--lead-seconds=15",
        "--spread-seconds=5",
        timeout=300,
    )
    lines = output.splitlines()
    assert len(lines) == len(FIGURE_LINES), output
    for line, pattern in zip(lines, FIGURE_LINES, strict=True):
        assert re.match(pattern, line), line
