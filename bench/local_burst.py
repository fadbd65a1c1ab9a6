"""N tasks scheduled through local mode's HTTP API for the same second: are they all delivered
exactly once, never early, and how late?

Run: `.venv/bin/python bench/local_burst.py [--tasks 1000] [--backend rules|scheduler]
[--clients 16] [--minutes-ahead 1] [--aws-timing] [--second 0]` (`make bench-local` runs it for
both backends). Starts `python -m local` on a free port (with the rules quota raised above the
task count, as a quota increase would on AWS) and a webhook receiver on 127.0.0.1, schedules the
tasks concurrently, waits for the deliveries, and prints one line per figure, each starting with
the machine's core count and the backend, so runs on different machines compare: the scheduling
rate, the deliveries, their lateness (with the connections the machine dropped for a full listen
backlog meanwhile, each a second late), and the CPU spent on the burst by local mode's main
process (which holds moto's state), by its workers, and by this process (the receiver, and the
reading of local mode's log): the machine's load does not change these.
Exits 0 when every task was delivered exactly once, never early; otherwise it names the tasks
missing or delivered more than once, and keeps local mode's log in a file.

The due second is in the first minute that begins at least `--minutes-ahead` minutes (and 30 s)
after the start: how a task travels to it (a rule or schedule, the retry queue's delayed
messages, a direct dispatch) is the scheduler's choice for that distance.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
from bench_setup import use_this_checkout

use_this_checkout()

from task_scheduler.timing import format_utc  # noqa: E402 - after the path above
from tests.support.local_process import local_mode  # noqa: E402 - after the path above
from tests.support.receiver import running_receiver  # noqa: E402 - after the path above


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def cpu_seconds(pid: int) -> dict[str, float]:
    """CPU time (user + system) of local mode's main process and of its workers (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")

    def of(each: int) -> float:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended since listed
            return 0.0
        return (int(fields[11]) + int(fields[12])) / tick

    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return {"main": of(pid), "workers": sum(of(int(child)) for child in children)}


def listen_overflows() -> int:
    """Connections the machine dropped because a listener's backlog was full (Linux): each one
    is tried again by TCP a second later, lateness that is not local mode's."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            return int(dict(zip(names.split(), values.split(), strict=True))["ListenOverflows"])
    return 0


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--backend", choices=("rules", "scheduler"), default="rules")
    parser.add_argument("--clients", type=int, default=16, help="concurrent API clients")
    parser.add_argument("--minutes-ahead", type=int, default=1, help="how far ahead run_at is")
    parser.add_argument("--aws-timing", action="store_true", help="LOCAL_AWS_TIMING=1")
    parser.add_argument("--second", type=int, default=0, help="run_at's second within its minute")
    args = parser.parse_args()

    env = {"TRIGGER_BACKEND": args.backend, "LOCAL_RULES_QUOTA": str(args.tasks + 300)}
    if args.aws_timing:
        env["LOCAL_AWS_TIMING"] = "1"
    label = f"cores={os.cpu_count()} backend={args.backend} tasks={args.tasks}"
    out = sys.stdout.write
    with running_receiver() as receiver, local_mode(**env) as local:
        # A minute far enough ahead that scheduling all the tasks finishes before it begins.
        start = datetime.now(UTC) + timedelta(minutes=args.minutes_ahead - 1, seconds=30)
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
                f"{local.url}/schedule-task", json=body, headers=headers, timeout=60
            ).status_code

        began = time.monotonic()
        with ThreadPoolExecutor(max_workers=args.clients) as pool:
            statuses = list(pool.map(schedule, range(args.tasks)))
        scheduling_seconds = time.monotonic() - began
        out(
            f"{label} run_at={format_utc(run_at)} clients={args.clients} "
            f"scheduled_in={scheduling_seconds:.1f}s "
            f"rate={args.tasks / scheduling_seconds:.0f} req/s load_avg={load_average()}\n"
        )
        if statuses.count(201) != args.tasks:
            counts = ", ".join(f"{statuses.count(s)}x {s}" for s in sorted(set(statuses)))
            log_path = Path(tempfile.gettempdir()) / f"local_burst_{os.getpid()}.log"
            log_path.write_text(local.output, encoding="utf-8")
            sys.stderr.write(f"FAILED: scheduling answered {counts}; local mode's log {log_path}\n")
            return 1
        if datetime.now(UTC) >= run_at:
            sys.stderr.write("FAILED: scheduling took past run_at; rerun with --minutes-ahead\n")
            return 1

        # CPU local mode spends from just before run_at to the last delivery: what the burst
        # costs, whatever else the machine is running.
        time.sleep(max(0.0, (run_at - datetime.now(UTC)).total_seconds() - 1))
        cpu_before = cpu_seconds(local.process.pid)
        overflows_before = listen_overflows()
        own_before = time.process_time()
        deadline = (run_at - datetime.now(UTC)).total_seconds() + 180
        receiver.wait_for(args.tasks, timeout=deadline)
        cpu_after = cpu_seconds(local.process.pid)
        overflows = listen_overflows() - overflows_before
        own_cpu = time.process_time() - own_before
        time.sleep(2)  # let any duplicate arrive before counting
        got = receiver.requests
        log_text = local.output

    paths = [r.path for r in got]
    lateness = [(r.received_at - run_at).total_seconds() for r in got]
    delivered = len(set(paths))
    duplicates = len(paths) - delivered
    early = sum(1 for late in lateness if late < 0)
    out(f"{label} delivered={delivered}/{args.tasks} duplicates={duplicates} early={early}\n")
    if lateness:
        out(
            f"{label} lateness first={min(lateness) * 1000:.0f} ms "
            f"p10={percentile(lateness, 0.10) * 1000:.0f} ms "
            f"p50={statistics.median(lateness) * 1000:.0f} ms "
            f"p99={percentile(lateness, 0.99) * 1000:.0f} ms "
            f"max={max(lateness) * 1000:.0f} ms load_avg={load_average()} "
            f"listen_overflows={overflows}\n"
        )
    main_cpu = cpu_after["main"] - cpu_before["main"]
    workers_cpu = cpu_after["workers"] - cpu_before.get("workers", 0.0)
    out(
        f"{label} burst_cpu main={main_cpu:.1f}s ({main_cpu / args.tasks * 1000:.1f} ms/task) "
        f"workers={workers_cpu:.1f}s ({workers_cpu / args.tasks * 1000:.1f} ms/task) "
        f"receiver={own_cpu:.1f}s ({own_cpu / args.tasks * 1000:.1f} ms/task)\n"
    )
    ok = delivered == args.tasks and not duplicates and not early
    if not ok:
        seen = Counter(paths)
        missing = sorted({f"/task/{index}" for index in range(args.tasks)} - seen.keys())
        doubled = sorted(path for path, count in seen.items() if count > 1)
        log_path = Path(tempfile.gettempdir()) / f"local_burst_{os.getpid()}.log"
        log_path.write_text(log_text, encoding="utf-8")
        sys.stderr.write(
            "FAILED: not every task was delivered exactly once, never early: "
            f"missing {len(missing)} {missing[:5]}, more than once {len(doubled)} {doubled[:5]}, "
            f"early {early}; local mode's log {log_path}\n"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
