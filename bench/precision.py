"""How close to its second does a task start? Tasks at random seconds, through local mode's HTTP
API with `LOCAL_AWS_TIMING=1` (rules and schedules fire at a random second of their minute, as
AWS may), on each trigger backend: every one delivered once, never early, and how late.

Run: `.venv/bin/python bench/precision.py [--tasks 40] [--far 0] [--backend rules|scheduler|both]`
(the near tasks are part of `make bench`). Near tasks are due 15 to 75 s ahead (`--lead`,
`--spread`): each is a queued
message delayed to its second. `--far N` adds N tasks due 16 to 18 minutes ahead, beyond the
queue's 15 minutes: each gets a rule or schedule that fires two minutes early and is hopped
through the queue to its second (the run then takes about 19 minutes). Lateness is measured at
the webhook receiver on 127.0.0.1: from `run_at` to the request's arrival. Prints one line per
backend and kind of task, with the machine's core count.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import requests
from bench_setup import use_this_checkout

use_this_checkout()

from task_scheduler.timing import format_utc  # noqa: E402 - after the path above
from tests.support.local_process import LocalProcess, local_mode  # noqa: E402 - after the path above
from tests.support.receiver import Receiver, running_receiver  # noqa: E402 - after the path above


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


def schedule_all(local: LocalProcess, receiver: Receiver, run_ats: dict[str, datetime]) -> bool:
    session = requests.Session()
    headers = {"x-api-key": local.api_key}

    def schedule(path: str) -> int:
        body = {
            "action": "webhook",
            "payload": {"url": f"{receiver.url}{path}"},
            "run_at": format_utc(run_ats[path]),
        }
        return session.post(
            f"{local.url}/schedule-task", json=body, headers=headers, timeout=30
        ).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(schedule, run_ats))
    if statuses.count(201) != len(statuses):
        sys.stderr.write(f"scheduling answered {sorted(set(statuses))}\n")
        return False
    return True


def report(label: str, run_ats: dict[str, datetime], receiver: Receiver) -> bool:
    got = [r for r in receiver.requests if r.path in run_ats]
    paths = [r.path for r in got]
    lateness = [(r.received_at - run_ats[r.path]).total_seconds() for r in got]
    delivered = len(set(paths))
    duplicates = len(paths) - delivered
    early = sum(1 for late in lateness if late < 0)
    line = (
        f"{label} tasks={len(run_ats)} delivered={delivered}/{len(run_ats)} "
        f"duplicates={duplicates} early={early}"
    )
    if lateness:
        line += (
            f" lateness p50={statistics.median(lateness) * 1000:.0f} ms "
            f"p99={percentile(lateness, 0.99) * 1000:.0f} ms max={max(lateness) * 1000:.0f} ms "
            f"within_1s={sum(1 for late in lateness if 0 <= late <= 1)}/{len(lateness)}"
        )
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    return delivered == len(run_ats) and not duplicates and not early


def run_backend(
    backend: str, near: int, far: int, lead: int, spread: int, rng: random.Random
) -> bool:
    label = f"cores={os.cpu_count()} backend={backend} aws_timing=1"
    env = {"TRIGGER_BACKEND": backend, "LOCAL_AWS_TIMING": "1"}
    with running_receiver() as receiver, local_mode(**env) as local:
        now = datetime.now(UTC).replace(microsecond=0)
        near_at = {
            f"/near/{i}": now + timedelta(seconds=rng.randrange(15, 75)) for i in range(near)
        }
        far_at = {
            f"/far/{i}": now + timedelta(seconds=rng.randrange(960, 1080)) for i in range(far)
        }
        if not schedule_all(local, receiver, {**near_at, **far_at}):
            return False
        ok = True
        for kind, run_ats in (("near (queued)", near_at), ("far (trigger + hop)", far_at)):
            if not run_ats:
                continue
            deadline = time.monotonic() + (max(run_ats.values()) - datetime.now(UTC)).seconds + 30
            while time.monotonic() < deadline and not all(
                any(r.path == path for r in receiver.requests) for path in run_ats
            ):
                time.sleep(0.5)
            time.sleep(2)  # a duplicate would have arrived by now
            ok &= report(f"{label} {kind}", run_ats, receiver)
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=40, help="near tasks per backend")
    parser.add_argument("--far", type=int, default=0, help="far tasks per backend (~19 min)")
    parser.add_argument("--backend", choices=("rules", "scheduler", "both"), default="both")
    parser.add_argument("--lead", type=int, default=15, help="near tasks: seconds ahead, at least")
    parser.add_argument("--spread", type=int, default=60, help="near tasks: over this many seconds")
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    backends = ("rules", "scheduler") if args.backend == "both" else (args.backend,)
    ok = all(
        [
            run_backend(backend, args.tasks, args.far, args.lead, args.spread, rng)
            for backend in backends
        ]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
