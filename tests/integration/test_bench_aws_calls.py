"""The AWS-call benchmark runs and counts what the code does (its figures are printed by
`make bench`, not asserted here beyond what cannot change without the design changing)."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.support.lambda_runtime import ROOT


def test_the_call_counting_benchmark_counts_every_phase() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "aws_calls.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("python ")
    scenarios = {line.split(":", 1)[0]: line for line in lines[1:]}
    assert len(scenarios) == 8  # four per backend
    for line in scenarios.values():
        counts = re.search(r"schedule (\d+) .*run -> \w+ (\d+) .*total (\d+)", line)
        assert counts, line
        scheduled, ran, total = (int(n) for n in counts.groups())
        assert scheduled >= 1
        assert ran >= 2  # at least the claim and the record
        assert total == scheduled + ran
    rule = scenarios["backend=rules one-shot, due in an hour (rule + hop)"]
    assert "dynamodb:PutItem" in rule
    assert "events:PutRule" in rule
    assert "sqs:SendMessage 1" in rule  # the hop from the early rule to the due second
    schedule = scenarios["backend=scheduler one-shot, due in an hour (schedule + hop)"]
    assert "scheduler:CreateSchedule" in schedule
    assert "events:" not in schedule
    assert "dynamodb:GetItem" not in schedule  # the event carries the occurrence
    queued = scenarios["backend=scheduler one-shot, due in 2 s (queued)"]
    assert "scheduler:" not in queued
    assert "sqs:SendMessage 1" in queued
