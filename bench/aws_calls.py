"""AWS API calls per task, from the request to the recorded outcome, counted on the real code.

Run: `.venv/bin/python bench/aws_calls.py` (also part of `make bench`). Each function's objects are
built by `task_scheduler.wiring` from boto3 clients under moto, exactly as the handlers build
them, with a clock the benchmark moves (so a task due in an hour runs now); a botocore
`before-call` hook counts one per API call (the SDK's own retries are not calls). The receiver
is a webhook server on 127.0.0.1 answering 200. Each occurrence is delivered as AWS would: a
far one's rule or schedule fires in the minute two minutes before it (the execute function
queues the rest, "the hop"), then the queued message lands under a second before it; a near
one's message lands directly. Prints one line per scenario and phase.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from bench_setup import use_fake_aws, use_this_checkout

REGION = "us-east-1"
TABLE = "bench-tasks"
PREFIX = "bench"
use_this_checkout()
use_fake_aws(
    REGION,
    POWERTOOLS_SERVICE_NAME="task-scheduler",
    POWERTOOLS_METRICS_NAMESPACE="ServerlessTaskScheduler",
    POWERTOOLS_LOG_LEVEL="WARNING",
)

import boto3  # noqa: E402 - after the environment above
from moto import mock_aws  # noqa: E402

from local.template import (  # noqa: E402
    create_queues,
    create_secrets,
    create_tables,
    load_template,
)
from task_scheduler import wiring  # noqa: E402
from task_scheduler.execute_events import ExecuteEvent  # noqa: E402
from task_scheduler.model import TriggerKind  # noqa: E402
from task_scheduler.schedule_request import ScheduleRequest  # noqa: E402
from task_scheduler.settings import ApiSettings, ExecutorSettings  # noqa: E402
from task_scheduler.storage import TaskStore  # noqa: E402
from task_scheduler.timing import format_utc, parse_stored_utc, trigger_minute  # noqa: E402
from tests.support.fakes import FakeClock  # noqa: E402
from tests.support.receiver import running_receiver  # noqa: E402


class CallCounter:
    """Counts the API calls made through the clients it watches, by service and operation."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def watch(self, client: Any) -> None:
        service = client.meta.service_model.service_name

        def count(model: Any, **_: Any) -> None:
            self.calls[f"{service}:{model.name}"] += 1

        client.meta.events.register("before-call.*.*", count)

    def take(self) -> Counter[str]:
        taken, self.calls = self.calls, Counter()
        return taken


def watched(clients: Any, counter: CallCounter) -> Any:
    seen: set[int] = set()
    for value in vars(clients).values():
        if value is not None and id(value) not in seen:
            seen.add(id(value))
            counter.watch(value)
    return clients


def describe(calls: Counter[str]) -> str:
    return f"{sum(calls.values())} ({', '.join(f'{k} {v}' for k, v in sorted(calls.items()))})"


def main() -> int:
    sys.stdout.write(f"python {sys.version.split()[0]}, cores={os.cpu_count()}\n")
    for backend in ("rules", "scheduler"):
        count_backend(backend)
    return 0


def count_backend(backend: str) -> None:
    with mock_aws(config={"lambda": {"use_docker": False}}), running_receiver() as receiver:
        template = load_template()
        create_tables(boto3.client("dynamodb"), template, {"TasksTable": TABLE})
        queues = create_queues(boto3.client("sqs"), template, {})
        secret = json.dumps({"key": "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})
        secrets = create_secrets(
            boto3.client("secretsmanager"), template, {}, {"WebhookSigningSecret": secret}
        )
        role = boto3.client("iam").create_role(RoleName="bench", AssumeRolePolicyDocument="{}")[
            "Role"
        ]["Arn"]
        execute_arn = boto3.client("lambda").create_function(
            FunctionName="bench-execute",
            Runtime="python3.13",
            Role=role,
            Handler="app.lambda_handler",
            Code={"ZipFile": b"PK\x05\x06" + b"\x00" * 18},
        )["FunctionArn"]
        boto3.client("scheduler").create_schedule_group(Name=PREFIX)
        environ = {
            "TABLE_NAME": TABLE,
            "RULE_NAME_PREFIX": PREFIX,
            "EXECUTE_FUNCTION_ARN": execute_arn,
            "FUNCTION_ARN_PREFIX": execute_arn.removesuffix("bench-execute"),
            "AWS_LAMBDA_FUNCTION_NAME": "bench-execute",
            "WEBHOOK_SECRET_ARN": secrets["WebhookSigningSecret"],
            "RETRY_QUEUE_URL": queues["RetryQueue"],
            "DEAD_LETTER_QUEUE_URL": queues["DeadLetterQueue"],
            "ALLOW_LOOPBACK_TARGETS": "true",
            "TRIGGER_BACKEND": backend,
            "SCHEDULE_GROUP_NAME": PREFIX,
            "SCHEDULER_ROLE_ARN": role,
            "DEAD_LETTER_QUEUE_ARN": f"arn:aws:sqs:{REGION}:123456789012:DeadLetterQueue",
        }
        # Seven minutes past an hour: an hourly cron's occurrences are all beyond the queue's
        # 15 minutes (a rule or schedule each), a five-minute cron's all within (queued).
        clock = FakeClock(datetime.now(UTC).replace(minute=7, second=0, microsecond=0))
        counter = CallCounter()
        api = wiring.api(
            ApiSettings.from_env(environ),
            watched(wiring.ApiClients.create(backend), counter),
            clock=clock,
        )
        executor = wiring.executor(
            ExecutorSettings.from_env(environ),
            watched(wiring.ExecuteClients.create(backend), counter),
            clock=clock,
        )

        # The signing secret is read once per warm container: pay for it before counting.
        warm_up = schedule(api, clock, receiver.url, clock.now() + timedelta(seconds=2))
        run_when_due(executor, clock, warm_up, far=False)
        counter.take()

        trigger = "rule" if backend == "rules" else "schedule"
        scenarios = (
            (f"one-shot, due in an hour ({trigger} + hop)", timedelta(hours=1), None),
            ("one-shot, due in 2 s (queued)", timedelta(seconds=2), None),
            (f"recurring hourly, one occurrence ({trigger} + hop)", None, "cron(0 * * * ? *)"),
            ("recurring every 5 min, one occurrence (queued)", None, "cron(0/5 * * * ? *)"),
        )
        for label, ahead, cron in scenarios:
            run_at = cron or format_utc(clock.now() + ahead)
            task_id = schedule(api, clock, receiver.url, run_at)
            scheduled = counter.take()
            outcome = run_when_due(executor, clock, task_id, far="+ hop" in label)
            ran = counter.take()
            sys.stdout.write(
                f"backend={backend} {label}: schedule {describe(scheduled)}; "
                f"run -> {outcome} {describe(ran)}; "
                f"total {sum(scheduled.values()) + sum(ran.values())}\n"
            )


def schedule(api: Any, clock: FakeClock, url: str, run_at: datetime | str) -> str:
    body = {
        "action": "webhook",
        "payload": {"url": f"{url}/bench", "data": {"n": 1}},
        "run_at": run_at if isinstance(run_at, str) else format_utc(run_at),
    }
    command = ScheduleRequest(**body).to_command(api.actions, clock.now())
    return api.scheduler.schedule(command).task_id


def run_when_due(executor: Any, clock: FakeClock, task_id: str, *, far: bool) -> str:
    """Plays EventBridge and SQS for the task's next occurrence (module doc)."""
    task = TaskStore(boto3.client("dynamodb"), TABLE).get(task_id)  # a client nobody counts
    assert task is not None
    assert task.next_run_at is not None
    due = parse_stored_utc(task.next_run_at)
    event = ExecuteEvent(task_id, due)
    if far:
        clock.current = max(clock.current, trigger_minute(due) + timedelta(seconds=30))
        if task.trigger is TriggerKind.SCHEDULE:  # Scheduler deletes an at() schedule it fired
            boto3.client("scheduler").delete_schedule(Name=task_id, GroupName=PREFIX)
        hopped = executor.run(event).outcome.value
        assert hopped == "waiting", hopped
    clock.current = max(clock.current, due - timedelta(milliseconds=400))
    return executor.run(event).outcome.value


if __name__ == "__main__":
    sys.exit(main())
