"""N tasks scheduled through local mode's HTTP API for the same minute: are they all delivered
exactly once, never early, within that minute, and how late?

Run: `.venv/bin/python bench/local_burst.py [--tasks 200] [--aws-timing] [--second 0]`
(also `make bench-local`). Starts `python -m local` on a free port and a webhook receiver on
127.0.0.1, schedules the tasks concurrently, waits for the deliveries, prints lateness figures.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent / "scheduler_layer"))

from task_scheduler.timing import format_utc
from tests.support.local_process import local_mode
from tests.support.receiver import running_receiver


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--aws-timing", action="store_true", help="LOCAL_AWS_TIMING=1")
    parser.add_argument("--second", type=int, default=0, help="run_at's second within its minute")
    args = parser.parse_args()

    env = {"LOCAL_AWS_TIMING": "1"} if args.aws_timing else {}
    with running_receiver() as receiver, local_mode(**env) as local:
        # A minute far enough ahead that scheduling all the tasks finishes before it begins.
        start = datetime.now(UTC) + timedelta(seconds=30)
        minute = start.replace(second=0, microsecond=0) + timedelta(minutes=1)
        run_at = minute + timedelta(seconds=args.second)
        headers = {"x-api-key": local.api_key}
        session = requests.Session()

        def schedule(index: int) -> int:
            body = {
                "action": "webhook",
                "payload": {"url": f"{receiver.url}/task/{index}", "data": {"index": index}},
                "run_at": format_utc(run_at),
            }
            return session.post(
                f"{local.url}/schedule-task", json=body, headers=headers, timeout=30
            ).status_code

        began = time.monotonic()
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(schedule, range(args.tasks)))
        scheduling_seconds = time.monotonic() - began
        if statuses.count(201) != args.tasks:
            sys.stderr.write(f"scheduling failed: {sorted(set(statuses))}\n")
            return 1
        if datetime.now(UTC) >= minute:
            sys.stderr.write("scheduling took past the target minute; rerun\n")
            return 1

        deadline = (run_at - datetime.now(UTC)).total_seconds() + 120
        got = receiver.wait_for(args.tasks, timeout=deadline)
        time.sleep(2)  # let any duplicate arrive before counting
        got = receiver.requests

    paths = [r.path for r in got]
    lateness = [(r.received_at - run_at).total_seconds() for r in got]
    duplicates = len(paths) - len(set(paths))
    early = sum(1 for late in lateness if late < 0)
    outside = sum(1 for r in got if not minute <= r.received_at < minute + timedelta(minutes=1))
    sys.stdout.write(
        f"tasks={args.tasks} run_at={format_utc(run_at)} aws_timing={args.aws_timing} "
        f"scheduled_in={scheduling_seconds:.1f}s\n"
        f"delivered={len(set(paths))}/{args.tasks} duplicates={duplicates} early={early} "
        f"outside_minute={outside}\n"
    )
    if lateness:
        sys.stdout.write(
            "lateness after run_at: "
            f"p50={statistics.median(lateness) * 1000:.0f} ms "
            f"p99={percentile(lateness, 0.99) * 1000:.0f} ms "
            f"max={max(lateness) * 1000:.0f} ms\n"
        )
    ok = len(set(paths)) == args.tasks and not duplicates and not early and not outside
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
