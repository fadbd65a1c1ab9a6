"""The `scheduler` trigger backend under moto (contract section 7): one EventBridge Scheduler
schedule per task in the stack's group, shaped as issue 9 asks, run by its own input, removed when
the task is done, and nothing left behind when arming or storing fails. The backend-neutral
suites (delivery, reconciler, stored size, README verification) also run on this backend."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from task_scheduler import wiring
from task_scheduler.execute_events import ExecuteEvent
from task_scheduler.timing import format_utc, parse_stored_utc, trigger_minute
from tests.integration.conftest import (
    REGION,
    SCHEDULE_GROUP,
    SCHEDULER_ROLE_ARN,
    Aws,
    Handlers,
    body_of,
)
from tests.support.fakes import FakeClock
from tests.support.receiver import Receiver
from tests.support.timing import beyond_the_queue, seconds_from_now


@pytest.fixture
def trigger_backend() -> str:
    return "scheduler"


def _schedule(handlers: Handlers, url: str, run_at: str, **extra: Any) -> dict[str, Any]:
    body = {"action": "webhook", "payload": {"url": url, "data": {"n": 1}}, "run_at": run_at}
    return handlers.api("POST", "/schedule-task", {**body, **extra})


def _executor_at(handlers: Handlers, moment: datetime) -> Any:
    """The execute function's objects, built by wiring from its own settings and clients as its
    handler builds them, on a clock standing at `moment` (no test waits for a minute to come)."""
    execute = handlers.execute
    return wiring.executor(execute.settings, execute.clients, clock=FakeClock(moment))


def _dead_letter_arn(aws: Aws) -> str:
    return aws.sqs.get_queue_attributes(
        QueueUrl=aws.dead_letter_queue_url, AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]


def test_a_one_shot_task_gets_one_at_schedule_in_the_stacks_group(
    aws: Aws, handlers: Handlers, receiver: Receiver
) -> None:
    run_at = "2030-05-19T17:56:30Z"
    response = _schedule(handlers, f"{receiver.url}/hook", run_at)
    assert response["statusCode"] == 201, response["body"]
    task_id = body_of(response)["task_id"]

    (schedule,) = aws.schedules().values()
    assert schedule["Name"] == task_id
    assert schedule["GroupName"] == SCHEDULE_GROUP
    # Two minutes before the task's minute: Scheduler fires early, the queue carries the rest.
    assert schedule["ScheduleExpression"] == "at(2030-05-19T17:54:00)"
    assert schedule["ScheduleExpressionTimezone"] == "UTC"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert schedule["ActionAfterCompletion"] == "DELETE"
    assert schedule["State"] == "ENABLED"
    target = schedule["Target"]
    assert target["Arn"] == aws.execute_function_arn
    assert target["RoleArn"] == SCHEDULER_ROLE_ARN
    assert json.loads(target["Input"]) == {"task_id": task_id, "due": run_at}
    assert target["DeadLetterConfig"] == {"Arn": _dead_letter_arn(aws)}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    assert aws.rule_names() == []
    assert body_of(handlers.api("GET", f"/tasks/{task_id}"))["status"] == "scheduled"


def _fire(aws: Aws, handlers: Handlers, schedule: dict[str, Any], second: int = 30) -> Any:
    """Plays Scheduler: fires the at() schedule at `second` of its minute with its input, then
    deletes it (ActionAfterCompletion DELETE). The execute function sends the rest on."""
    fired_at = datetime.strptime(schedule["ScheduleExpression"], "at(%Y-%m-%dT%H:%M:%S)")
    fired_at = fired_at.replace(tzinfo=UTC) + timedelta(seconds=second)
    event = json.loads(schedule["Target"]["Input"])
    boto3.client("scheduler", region_name=REGION).delete_schedule(
        Name=schedule["Name"], GroupName=SCHEDULE_GROUP
    )
    report = _executor_at(handlers, fired_at).run(
        ExecuteEvent(event["task_id"], parse_stored_utc(event["due"]))
    )
    assert report.outcome.value == "waiting"
    (message,) = [m for m in aws.queue_messages(aws.retry_queue_url) if m["body"] == event]
    assert 60 <= message["delay_seconds"] <= 180
    return event


def test_a_recurring_tasks_occurrences_each_get_an_at_schedule_in_turn(
    aws: Aws, handlers: Handlers, receiver: Receiver
) -> None:
    # Every hour at the minute half an hour from now, read in New York: always far.
    minute = (datetime.now(UTC) + timedelta(minutes=30)).minute
    expression = f"cron({minute} * * * ? *)"
    response = _schedule(handlers, f"{receiver.url}/hook", expression, timezone="America/New_York")
    assert response["statusCode"] == 201, response["body"]
    answer = body_of(response)
    assert answer["timezone"] == "America/New_York"
    due = parse_stored_utc(answer["next_run_at"])
    (schedule,) = aws.schedules().values()
    assert schedule["ScheduleExpression"] == f"at({trigger_minute(due):%Y-%m-%dT%H:%M:%S})"
    assert schedule["ScheduleExpressionTimezone"] == "UTC"  # the zone is applied when computing
    assert schedule["ActionAfterCompletion"] == "DELETE"

    event = _fire(aws, handlers, schedule)
    report = _executor_at(handlers, due).run(ExecuteEvent(event["task_id"], due))

    assert report.outcome.value == "rescheduled"
    assert len(receiver.requests) == 1
    task = body_of(handlers.api("GET", f"/tasks/{answer['task_id']}"))
    next_run = parse_stored_utc(task["next_run_at"])
    assert next_run == due + timedelta(hours=1)
    (following,) = aws.schedules().values()
    assert following["ScheduleExpression"] == f"at({trigger_minute(next_run):%Y-%m-%dT%H:%M:%S})"
    assert json.loads(following["Target"]["Input"]) == {
        "task_id": answer["task_id"],
        "due": task["next_run_at"],
    }
    assert following["Target"]["Arn"] == aws.execute_function_arn  # armed by the execute side
    assert following["Target"]["RoleArn"] == SCHEDULER_ROLE_ARN


def test_a_finished_task_leaves_no_schedule(
    aws: Aws, handlers: Handlers, receiver: Receiver
) -> None:
    run_at = beyond_the_queue()
    response = _schedule(handlers, f"{receiver.url}/hook", format_utc(run_at))
    task_id = body_of(response)["task_id"]
    (schedule,) = aws.schedules().values()
    event = _fire(aws, handlers, schedule)
    report = _executor_at(handlers, run_at).run(ExecuteEvent(task_id, run_at))
    assert report.outcome.value == "completed"
    assert event == {"task_id": task_id, "due": format_utc(run_at)}
    assert aws.schedules() == {}


def test_a_near_one_shot_is_queued_without_a_schedule(
    aws: Aws, handlers: Handlers, receiver: Receiver
) -> None:
    response = _schedule(handlers, f"{receiver.url}/hook", seconds_from_now(2))
    assert response["statusCode"] == 201, response["body"]
    assert aws.schedules() == {}
    assert handlers.run(body_of(response)["task_id"])["outcome"] == "completed"


def test_an_event_for_an_unknown_task_removes_its_schedule(aws: Aws, handlers: Handlers) -> None:
    task_id = "123e4567-e89b-42d3-a456-426614174000"
    boto3.client("scheduler", region_name=REGION).create_schedule(
        Name=task_id,
        GroupName=SCHEDULE_GROUP,
        ScheduleExpression="cron(0 9 * * ? *)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": aws.execute_function_arn, "RoleArn": SCHEDULER_ROLE_ARN},
    )
    assert handlers.run(task_id)["outcome"] == "unknown_task"
    assert aws.schedules() == {}


@pytest.fixture
def failing(handlers: Handlers) -> Iterator[dict[str, str]]:
    """`failing[operation] = code` makes the API function's scheduler or DynamoDB client answer
    that operation with that error code, every time (an error no SDK retry gets past)."""
    codes: dict[str, str] = {}

    def refuse(model: Any, **_: Any) -> None:
        if model.name in codes:
            raise ClientError({"Error": {"Code": codes[model.name], "Message": "test"}}, model.name)

    clients = (handlers.schedule.clients.scheduler, handlers.schedule.clients.dynamodb)
    for client in clients:
        client.meta.events.register("before-call.*.*", refuse)
    yield codes
    for client in clients:
        client.meta.events.unregister("before-call.*.*", refuse)


@pytest.mark.parametrize(
    ("operation", "code"),
    [
        ("CreateSchedule", "InternalServerException"),
        ("CreateSchedule", "ServiceQuotaExceededException"),
        ("PutItem", "InternalServerError"),  # storing the task, after arming
    ],
)
def test_a_failure_to_arm_or_store_answers_503_and_leaves_nothing(
    aws: Aws, handlers: Handlers, failing: dict[str, str], operation: str, code: str
) -> None:
    failing[operation] = code
    response = _schedule(handlers, "http://127.0.0.1:9/hook", "2030-05-19T17:56:30Z")
    assert response["statusCode"] == 503
    assert body_of(response)["message"]
    assert aws.schedules() == {}
    assert aws.table_is_empty()


def test_the_schedules_quota_is_named_with_the_way_out(
    handlers: Handlers, failing: dict[str, str]
) -> None:
    failing["CreateSchedule"] = "ServiceQuotaExceededException"
    response = _schedule(handlers, "http://127.0.0.1:9/hook", "2030-05-19T17:56:30Z")
    assert response["statusCode"] == 503
    assert "quota of schedules" in body_of(response)["message"]
    assert "Service Quotas" in body_of(response)["message"]
