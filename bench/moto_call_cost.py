"""moto's own CPU per DynamoDB call of a task's run, as shipped and with local mode's changes
(local.moto_speed): what bounds local mode under a burst, where every task's claim and record
are served by moto in one process.

Run: `.venv/bin/python bench/moto_call_cost.py [--tasks 300]`. Creates N tasks with the real
storage code (TaskStore.create: PutItem), claims each (UpdateItem, ALL_NEW) and records its run
(UpdateItem), under moto's mock_aws with the table built from template.yaml; the CPU time is
that of moto's handling of each request alone (BaseResponse.dispatch), not botocore's. Each
variant runs in its own interpreter (the changes patch moto for the life of a process). Prints
one line per variant and operation: calls, mean and median CPU ms per call.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from bench_setup import use_fake_aws, use_this_checkout

TABLE = "bench-tasks"
VARIANTS = {"as-shipped": [], "local-mode": ["--cheaper"]}


def measure(tasks: int, cheaper: bool) -> dict[str, list[float]]:
    """CPU seconds of moto's dispatch per operation name, for `tasks` task runs."""
    use_this_checkout()
    use_fake_aws()
    import boto3
    from moto import mock_aws
    from moto.core.responses import BaseResponse

    from local.moto_fidelity import make_dynamodb_writes_atomic
    from local.template import create_tables, load_template
    from task_scheduler.model import Attempt, TaskStatus, TriggerKind, new_task
    from task_scheduler.storage import TaskStore
    from task_scheduler.timing import format_utc

    make_dynamodb_writes_atomic()  # as local mode serves DynamoDB
    if cheaper:
        from local.moto_speed import make_moto_cheaper

        make_moto_cheaper()
    spent: dict[str, list[float]] = {}
    dispatch = BaseResponse._dispatch

    def timed(response: Any, request: Any, full_url: str, headers: Any) -> Any:
        began = time.process_time()
        try:
            return dispatch(response, request, full_url, headers)
        finally:
            target = str(headers.get("X-Amz-Target", "")).rsplit(".", 1)[-1]
            spent.setdefault(target, []).append(time.process_time() - began)

    BaseResponse._dispatch = timed  # type: ignore[method-assign]
    with mock_aws():
        dynamodb = boto3.client("dynamodb")
        create_tables(dynamodb, load_template(), {"TasksTable": TABLE})
        store = TaskStore(dynamodb, TABLE)
        now = datetime.now(UTC).replace(microsecond=0)
        due = now + timedelta(hours=1)
        spent.clear()
        for index in range(tasks):
            task = new_task(
                str(uuid.uuid4()),
                "webhook",
                {"url": f"https://example.com/hooks/{index}", "data": {"index": index}},
                format_utc(due),
                due,
                recurring=False,
                now=now,
                trigger=TriggerKind.RULE,
            )
            store.create(task)
            claim = store.claim(task.task_id, format_utc(due), due)
            assert claim.claimed is not None, "the bench's claim was refused"
            attempt = Attempt(1, format_utc(due), 42, status_code=200)
            recorded = store.record_run(
                claim.claimed,
                TaskStatus.COMPLETED,
                attempt,
                due + timedelta(seconds=1),
                next_run_at=None,
                error=None,
                retention=timedelta(days=7),
            )
            assert recorded, "the bench's record was refused"
    # The claim and the record are both UpdateItem: in call order, claim first.
    updates = spent.pop("UpdateItem", [])
    spent["UpdateItem (claim)"] = updates[0::2]
    spent["UpdateItem (record)"] = updates[1::2]
    return spent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--cheaper", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:  # one variant, in this interpreter: its figures as JSON
        sys.stdout.write(json.dumps(measure(args.tasks, args.cheaper)) + "\n")
        return 0
    for name, flags in VARIANTS.items():
        done = subprocess.run(
            [sys.executable, __file__, "--measure", "--tasks", str(args.tasks), *flags],
            capture_output=True,
            text=True,
            check=True,
        )
        for operation, seconds in sorted(json.loads(done.stdout).items()):
            if not seconds:
                continue
            sys.stdout.write(
                f"cores={os.cpu_count()} moto={name} {operation} calls={len(seconds)} "
                f"mean={statistics.mean(seconds) * 1000:.2f} ms "
                f"median={statistics.median(seconds) * 1000:.2f} ms\n"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
