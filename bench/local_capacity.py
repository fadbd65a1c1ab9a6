"""Capacity of local mode: N tasks scheduled through the HTTP API by concurrent clients stay
pending (spread over the coming days), and a sample due a minute or two ahead fires correctly
with all of them waiting. Prints the scheduling rate, the triggers moto holds, local mode's
memory (its main process, which holds moto's state, and its worker processes), and the sample's
deliveries (exactly once, never early, how late).

Run: `.venv/bin/python bench/local_capacity.py [--tasks 10000] [--sample 50] [--clients 16]
[--backend scheduler|rules] [--lead-seconds 60] [--spread-seconds 60]`. Exits 0 when every task
was scheduled, moto holds a trigger for each, and each sample task was delivered exactly once,
never early, and nothing else was delivered.

With `--backend rules` local mode's rules quota (LOCAL_RULES_QUOTA) is raised above the task
count, as a quota increase would on AWS. Local mode does not print moto's endpoint, so the
triggers are counted through the moto port found among the local-mode process's listening
sockets (Linux /proc); where that fails, the count is reported as unavailable.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import requests
from bench_setup import use_this_checkout
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

use_this_checkout()

from local_burst import cpu_seconds, load_average  # noqa: E402 - after the path above

from task_scheduler.timing import format_utc, minute_start  # noqa: E402 - after the path above
from tests.support.local_process import LocalProcess, local_mode  # noqa: E402 - after the path above
from tests.support.receiver import running_receiver  # noqa: E402 - after the path above

# The sample must still be in the future when its requests land.
SCHEDULING_SLACK_SECONDS = 10

REGION = "us-east-1"
API_CHECKS = 100  # tasks read back through GET /tasks/{id}
PENDING_PATH = "/pending/"
SAMPLE_PATH = "/sample/"
CONNECT_ATTEMPTS = 3
REFUSALS_SHOWN = 5  # distinct non-201 answers printed
ANSWER_CHARS = 300  # of a refused request's body, as printed
LOCAL_LOG_LINES = 40  # local mode's error log lines printed when a request was refused


@dataclass(frozen=True)
class Scheduled:
    index: int
    status: int
    seconds: float
    task_id: str | None
    retries: int  # requests sent again after their connection failed
    answer: str | None = None  # a non-201's body, or the client-side error when none came


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def schedule_all(
    local: LocalProcess, bodies: list[dict[str, Any]], clients: int
) -> tuple[list[Scheduled], float]:
    """POSTs every body from `clients` threads, each with its own session; returns each answer
    and the wall time the whole took. A request whose connection failed is sent again, as a
    careful client would, with the same Idempotency-Key; the API does not honour that key yet
    (issue 10), so a retried request whose first try had landed would schedule twice: `retried=`
    counts retries and the trigger count shows any excess. A task that gets no answer in
    CONNECT_ATTEMPTS has status 0."""
    sessions = threading.local()

    def post(index: int) -> Scheduled:
        if not hasattr(sessions, "session"):
            sessions.session = requests.Session()
        headers = {"x-api-key": local.api_key, "Idempotency-Key": str(uuid.uuid4())}
        began = time.monotonic()
        for attempt in range(CONNECT_ATTEMPTS):
            try:
                response = sessions.session.post(
                    f"{local.url}/schedule-task", json=bodies[index], headers=headers, timeout=60
                )
            except requests.ConnectionError as error:
                failure = error
                continue
            except requests.RequestException as error:  # e.g. no answer within the timeout
                took = time.monotonic() - began
                return Scheduled(index, 0, took, None, attempt, client_error(error))
            took = time.monotonic() - began
            if response.status_code == 201:
                return Scheduled(index, 201, took, response.json().get("task_id"), attempt)
            body = response.text[:ANSWER_CHARS]
            return Scheduled(index, response.status_code, took, None, attempt, body)
        took = time.monotonic() - began
        return Scheduled(index, 0, took, None, CONNECT_ATTEMPTS, client_error(failure))

    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        answers = list(pool.map(post, range(len(bodies))))
    return answers, time.monotonic() - began


def client_error(error: requests.RequestException) -> str:
    return f"no answer: {type(error).__name__}: {error}"[:ANSWER_CHARS]


def refusals(answers: list[Scheduled]) -> list[str]:
    """The first REFUSALS_SHOWN distinct non-201 answers, each as `status body` with how many
    requests got it."""
    counts: dict[str, int] = {}
    for answer in answers:
        if answer.status != 201:
            key = f"{answer.status} {answer.answer}"
            counts[key] = counts.get(key, 0) + 1
    return [f"x{count} {key}" for key, count in list(counts.items())[:REFUSALS_SHOWN]]


def local_errors(local: LocalProcess) -> list[str]:
    """Local mode's warnings and errors: its own log (stderr) but INFO lines, tracebacks
    included, and the handlers' Powertools JSON log lines (stdout) at WARNING or ERROR."""
    own = [line.rstrip() for line in list(local.stderr_lines) if " local INFO " not in line]
    handlers = [
        line.rstrip()
        for line in list(local.stdout_lines)
        if '"level":"ERROR"' in line.replace(" ", "")
        or '"level":"WARNING"' in line.replace(" ", "")
    ]
    return own[:LOCAL_LOG_LINES] + handlers[:LOCAL_LOG_LINES]


def webhook(url: str, index: int, run_at: datetime) -> dict[str, Any]:
    return {
        "action": "webhook",
        "payload": {"url": url, "data": {"index": index}},
        "run_at": format_utc(run_at),
    }


def listening_ports(pid: int) -> set[int]:
    """TCP ports process `pid` listens on (Linux): its socket inodes matched in /proc/net."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed since listed
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def aws_client(service: str, port: int) -> Any:
    return boto3.client(
        service,
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name=REGION,
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 - moto takes any credentials
        config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=120),
    )


def moto_port(local: LocalProcess) -> int | None:
    """The port of local mode's moto server: the listening port that answers a Scheduler call."""
    for port in sorted(listening_ports(local.process.pid) - {local.port}):
        try:
            aws_client("scheduler", port).list_schedule_groups(MaxResults=1)
        except (BotoCoreError, ClientError):
            continue
        return port
    return None


def trigger_names(backend: str, port: int) -> Callable[[], list[str]]:
    """Lists the names of every schedule (scheduler) or every default-bus rule (rules)."""

    def schedules() -> list[str]:
        client = aws_client("scheduler", port)
        names = []
        for page in client.get_paginator("list_schedules").paginate():
            names += [schedule["Name"] for schedule in page["Schedules"]]
        return names

    def rules() -> list[str]:
        client = aws_client("events", port)
        names = []
        for page in client.get_paginator("list_rules").paginate():
            names += [rule["Name"] for rule in page["Rules"]]
        return names

    return schedules if backend == "scheduler" else rules


def count_armed(names: list[str], task_ids: set[str]) -> int:
    """How many of `task_ids` have a trigger: a schedule is named by the task id, a rule ends
    with it (after the stack's prefix)."""
    return sum(1 for name in names if name[-36:] in task_ids)


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of process `pid`, in KiB."""
    figures = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            figures[key] = int(value.split()[0])
    return figures


def children(pid: int) -> list[int]:
    """Process `pid`'s children (Linux): local mode's workers and multiprocessing's resource
    tracker."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def api_statuses(local: LocalProcess, task_ids: list[str]) -> list[str]:
    session = requests.Session()
    headers = {"x-api-key": local.api_key}
    return [
        session.get(f"{local.url}/tasks/{task_id}", headers=headers, timeout=30)
        .json()
        .get("status", "?")
        for task_id in task_ids
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=10_000, help="tasks left pending")
    parser.add_argument("--sample", type=int, default=50, help="tasks due a minute or two ahead")
    parser.add_argument("--clients", type=int, default=16, help="concurrent API clients")
    parser.add_argument("--backend", choices=("scheduler", "rules"), default="scheduler")
    parser.add_argument(
        "--lead-seconds",
        type=int,
        default=60,
        help="the sample's minute starts at least this long after the pending tasks are in",
    )
    parser.add_argument(
        "--spread-seconds",
        type=int,
        default=60,
        help="the sample's run_at is a random second among the first this many of its minute",
    )
    parser.add_argument("--seed", type=int, default=9)
    args = parser.parse_args()
    if args.lead_seconds <= SCHEDULING_SLACK_SECONDS:
        parser.error(f"--lead-seconds must exceed {SCHEDULING_SLACK_SECONDS}")
    if not 1 <= args.spread_seconds <= 60:
        parser.error("--spread-seconds must be 1-60")

    rng = random.Random(args.seed)
    env = {"TRIGGER_BACKEND": args.backend}
    if args.backend == "rules":
        env["LOCAL_RULES_QUOTA"] = str(args.tasks + args.sample + 100)
    label = f"cores={os.cpu_count()} backend={args.backend}"
    out = sys.stdout.write
    failures = []

    with running_receiver() as receiver, local_mode(**env) as local:
        # Pending tasks: one-shots at random seconds from an hour to a week ahead.
        now = datetime.now(UTC)
        pending_bodies = [
            webhook(
                f"{receiver.url}{PENDING_PATH}{i}",
                i,
                now + timedelta(hours=1, seconds=rng.randrange(7 * 24 * 3600 - 3600)),
            )
            for i in range(args.tasks)
        ]
        cpu_before = cpu_seconds(local.process.pid)
        pending, seconds = schedule_all(local, pending_bodies, args.clients)
        cpu_after = cpu_seconds(local.process.pid)
        ok = [answer for answer in pending if answer.status == 201]
        latencies = [answer.seconds for answer in pending]
        out(
            f"{label} tasks={args.tasks} clients={args.clients} scheduled_ok={len(ok)} "
            f"in={seconds:.1f}s rate={len(pending) / seconds:.0f} req/s "
            f"p50={statistics.median(latencies) * 1000:.0f} ms "
            f"p99={percentile(latencies, 0.99) * 1000:.0f} ms "
            f"max={max(latencies) * 1000:.0f} ms "
            f"retried={sum(answer.retries for answer in pending)}\n"
        )
        per_request = {
            part: (cpu_after[part] - cpu_before[part]) / len(pending) * 1000
            for part in ("main", "workers")
        }
        out(
            f"{label} scheduling_cpu main={per_request['main']:.1f} ms/req "
            f"workers={per_request['workers']:.1f} ms/req load_avg={load_average()}\n"
        )
        for refusal in refusals(pending):
            out(f"{label} refused {refusal}\n")
        if len(ok) != args.tasks:
            statuses = sorted({answer.status for answer in pending})
            failures.append(f"scheduling answered {statuses}")

        # The sample: random seconds of the first minute at least --lead-seconds ahead.
        minute = minute_start(datetime.now(UTC) + timedelta(seconds=args.lead_seconds - 1))
        minute += timedelta(minutes=1)
        run_ats = [
            minute
            + timedelta(seconds=rng.randrange(args.spread_seconds))  # whole seconds, as run_at
            for _ in range(args.sample)
        ]
        sample_bodies = [
            webhook(f"{receiver.url}{SAMPLE_PATH}{i}", i, run_ats[i]) for i in range(args.sample)
        ]
        sample, _ = schedule_all(local, sample_bodies, args.clients)
        if datetime.now(UTC) >= minute - timedelta(seconds=SCHEDULING_SLACK_SECONDS):
            failures.append("the sample was scheduled too late; rerun")
        for refusal in refusals(sample):
            out(f"{label} sample refused {refusal}\n")
        if sum(1 for answer in sample if answer.status == 201) != args.sample:
            failures.append(f"sample scheduling answered {sorted({a.status for a in sample})}")
        if any(answer.status != 201 for answer in pending + sample):
            for line in local_errors(local):
                sys.stderr.write(f"local mode: {line}\n")
            log_path = Path(tempfile.gettempdir()) / f"local_capacity_{os.getpid()}.log"
            log_path.write_text("".join(local.stderr_lines) + "".join(local.stdout_lines))
            sys.stderr.write(f"local mode's whole log so far: {log_path}\n")

        pending_ids = {answer.task_id for answer in ok if answer.task_id}
        sample_ids = {answer.task_id for answer in sample if answer.task_id}
        checked = rng.sample(sorted(pending_ids), min(API_CHECKS, len(pending_ids)))
        statuses = api_statuses(local, checked)
        port = moto_port(local)
        list_triggers = trigger_names(args.backend, port) if port else None
        kind = "schedules" if args.backend == "scheduler" else "rules"
        if list_triggers:
            names = list_triggers()
            armed_pending = count_armed(names, pending_ids)
            armed_sample = count_armed(names, sample_ids)
            out(
                f"{label} pending_{kind}={armed_pending}/{len(pending_ids)} "
                f"sample_{kind}={armed_sample}/{len(sample_ids)} total_{kind}={len(names)} "
                f"(moto 127.0.0.1:{port}) "
                f"api_status_scheduled={statuses.count('scheduled')}/{len(checked)}\n"
            )
            # The sample is due within the queue's 15 minutes: queued messages, no triggers.
            if armed_pending != len(pending_ids) or armed_sample != 0:
                failures.append(f"moto holds other {kind} than the pending tasks'")
        else:
            out(
                f"{label} pending_{kind}=unavailable (moto's port not found) "
                f"api_status_scheduled={statuses.count('scheduled')}/{len(checked)}\n"
            )
        if statuses.count("scheduled") != len(checked):
            failures.append("a pending task read back other than scheduled")
        main_memory = memory_kib(local.process.pid)
        workers = [memory_kib(child) for child in children(local.process.pid)]
        total_rss = main_memory["VmRSS"] + sum(worker["VmRSS"] for worker in workers)
        out(
            f"{label} local_mode_rss={total_rss / 1024:.0f} MiB "
            f"(main {main_memory['VmRSS'] / 1024:.0f} MiB, peak "
            f"{main_memory['VmHWM'] / 1024:.0f} MiB; {len(workers)} child processes "
            f"{sum(worker['VmRSS'] for worker in workers) / 1024:.0f} MiB) with "
            f"{len(pending_ids) + len(sample_ids)} tasks pending\n"
        )

        deadline = (max(run_ats) - datetime.now(UTC)).total_seconds() + 120
        expected = {f"{SAMPLE_PATH}{i}" for i in range(args.sample)}

        def sample_paths() -> set[str]:
            return {r.path for r in receiver.requests if r.path.startswith(SAMPLE_PATH)}

        stop_at = time.monotonic() + max(deadline, 0)
        while time.monotonic() < stop_at and not expected <= sample_paths():
            time.sleep(0.2)
        time.sleep(2)  # let any duplicate arrive before counting
        got = receiver.requests
        after = count_armed(list_triggers(), sample_ids) if list_triggers else None

    sample_got = [r for r in got if r.path.startswith(SAMPLE_PATH)]
    unexpected = [r for r in got if not r.path.startswith(SAMPLE_PATH)]
    paths = [r.path for r in sample_got]
    lateness = [
        (r.received_at - run_ats[int(r.path.removeprefix(SAMPLE_PATH))]).total_seconds()
        for r in sample_got
    ]
    duplicates = len(paths) - len(set(paths))
    early = sum(1 for late in lateness if late < 0)
    delivered = len(set(paths) & expected)
    line = (
        f"{label} sample={args.sample} minute={format_utc(minute)} "
        f"delivered={delivered}/{args.sample} duplicates={duplicates} early={early} "
        f"unexpected={len(unexpected)}"
    )
    if lateness:
        line += (
            f" lateness p50={statistics.median(lateness) * 1000:.0f} ms "
            f"p99={percentile(lateness, 0.99) * 1000:.0f} ms max={max(lateness) * 1000:.0f} ms"
        )
    if after is not None:
        line += f" sample_{kind}_left={after}"
    out(line + "\n")
    if delivered != args.sample or duplicates or early or unexpected:
        failures.append("the sample was not delivered exactly once, never early, and alone")
    for failure in failures:
        sys.stderr.write(f"FAILED: {failure}\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
