"""Unit tests for schedules.EventBridgeSchedules and EventBridgeScheduleRemover (the `scheduler`
trigger backend) over small fakes of the scheduler and lambda clients.

A task runs through one schedule in the stack's group, named by the task id: `at(...)` for the
minute of a one-shot task, deleted after it runs, or the client's cron read in the client's zone;
an imminent task is also, or only, dispatched straight to the execute function. Failures leave
nothing armed.
"""

from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import EndpointConnectionError

from task_scheduler.errors import DependencyFailure, InvalidRequest
from task_scheduler.model import TriggerKind
from task_scheduler.schedules import (
    RETRY_POLICY,
    EventBridgeScheduleRemover,
    EventBridgeSchedules,
    at_expression,
)
from tests.support.aws_fakes import FakeLambda, FakeScheduler, client_error

TASK_ID = "123e4567-e89b-42d3-a456-426614174000"
GROUP = "task-scheduler"
ARN = "arn:aws:lambda:eu-west-1:123456789012:function:execute-task"
ROLE = "arn:aws:iam::123456789012:role/scheduler-invokes-execute"
DLQ = "arn:aws:sqs:eu-west-1:123456789012:dead-letters"
NOW = datetime(2030, 5, 19, 17, 0, 0, tzinfo=UTC)
LATER = datetime(2030, 5, 19, 17, 56, 30, tzinfo=UTC)
SOON = NOW + timedelta(seconds=20)
INPUT = '{"task_id": "' + TASK_ID + '"}'
CRON = "cron(0 9 * * ? *)"
TARGET = {
    "Arn": ARN,
    "RoleArn": ROLE,
    "RetryPolicy": RETRY_POLICY,
    "DeadLetterConfig": {"Arn": DLQ},
    "Input": INPUT,
}


@pytest.fixture
def calls():
    return []


@pytest.fixture
def scheduler(calls):
    return FakeScheduler(calls)


@pytest.fixture
def lambda_(calls):
    return FakeLambda(calls)


@pytest.fixture
def schedules(scheduler, lambda_):
    return EventBridgeSchedules(scheduler, lambda_, GROUP, ARN, ROLE, DLQ)


def created(expression, timezone, after):
    return (
        "create_schedule",
        {
            "Name": TASK_ID,
            "GroupName": GROUP,
            "ScheduleExpression": expression,
            "ScheduleExpressionTimezone": timezone,
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "State": "ENABLED",
            "ActionAfterCompletion": after,
            "Description": f"Runs scheduled task {TASK_ID}",
            "Target": TARGET,
        },
    )


INVOKE = (
    "invoke",
    {"FunctionName": ARN, "InvocationType": "Event", "Payload": INPUT.encode("utf-8")},
)
DELETE = ("delete_schedule", {"Name": TASK_ID, "GroupName": GROUP})


def test_at_expression_is_the_minute_of_the_time():
    assert at_expression(LATER) == "at(2030-05-19T17:56:00)"


def test_one_shot_gets_an_at_schedule_for_its_minute_deleted_after_it_runs(schedules, calls):
    assert schedules.arm(TASK_ID, LATER, None, False, NOW) is TriggerKind.SCHEDULE
    assert calls == [created("at(2030-05-19T17:56:00)", "UTC", "DELETE")]


def test_recurring_cron_is_read_in_the_clients_zone_and_kept(schedules, calls):
    arm = schedules.arm(TASK_ID, LATER, CRON, True, NOW, timezone="Europe/Paris")
    assert arm is TriggerKind.SCHEDULE
    assert calls == [created(CRON, "Europe/Paris", "NONE")]


def test_imminent_one_shot_is_dispatched_directly_without_a_schedule(schedules, calls):
    assert schedules.arm(TASK_ID, SOON, None, False, NOW) is TriggerKind.DIRECT
    assert calls == [INVOKE]


def test_imminent_recurring_gets_its_schedule_and_its_first_occurrence_directly(schedules, calls):
    assert schedules.arm(TASK_ID, SOON, CRON, True, NOW) is TriggerKind.SCHEDULE
    assert calls == [created(CRON, "UTC", "NONE"), INVOKE]


def test_failed_dispatch_of_an_imminent_recurring_task_removes_its_schedule(
    schedules, lambda_, calls
):
    lambda_.fail["invoke"] = client_error("ServiceException", "Invoke")
    with pytest.raises(DependencyFailure, match="dispatch the task"):
        schedules.arm(TASK_ID, SOON, CRON, True, NOW)
    assert calls == [created(CRON, "UTC", "NONE"), INVOKE, DELETE]


def test_a_schedule_of_the_same_name_already_there_is_a_dependency_failure(
    schedules, scheduler, calls
):
    # The SDK's own retries reuse CreateSchedule's idempotency token, so a conflict is never our
    # earlier try: it must not pass for an armed task.
    scheduler.fail["create_schedule"] = client_error("ConflictException", "CreateSchedule")
    with pytest.raises(DependencyFailure, match="ConflictException"):
        schedules.arm(TASK_ID, LATER, None, False, NOW)


def test_quota_used_up_is_a_dependency_failure_naming_the_quota(schedules, scheduler):
    scheduler.fail["create_schedule"] = client_error(
        "ServiceQuotaExceededException", "CreateSchedule"
    )
    with pytest.raises(DependencyFailure) as caught:
        schedules.arm(TASK_ID, LATER, None, False, NOW)
    assert caught.value.code == "ServiceQuotaExceededException"
    assert "quota of schedules" in caught.value.message
    assert "Service Quotas" in caught.value.message


def test_a_rejected_cron_is_the_clients_invalid_run_at_and_timezone(schedules, scheduler):
    scheduler.fail["create_schedule"] = client_error("ValidationException", "CreateSchedule")
    with pytest.raises(InvalidRequest) as caught:
        schedules.arm(TASK_ID, LATER, CRON, True, NOW)
    assert [p.field for p in caught.value.problems] == ["run_at"]
    with pytest.raises(InvalidRequest) as caught:
        schedules.arm(TASK_ID, LATER, CRON, True, NOW, timezone="Europe/Paris")
    assert [p.field for p in caught.value.problems] == ["run_at", "timezone"]


def test_a_rejected_one_shot_is_a_deployment_failure_not_the_clients(schedules, scheduler):
    # The at() expression is the scheduler's own: its refusal (e.g. a role Scheduler cannot
    # assume yet) is a 503 an operator sees, not a 400 blaming run_at.
    scheduler.fail["create_schedule"] = client_error("ValidationException", "CreateSchedule")
    with pytest.raises(DependencyFailure, match="ValidationException"):
        schedules.arm(TASK_ID, LATER, None, False, NOW)


@pytest.mark.parametrize(
    "error",
    [
        client_error("InternalServerException", "CreateSchedule"),
        EndpointConnectionError(endpoint_url="https://scheduler.example"),
    ],
)
def test_other_create_failures_are_dependency_failures(schedules, scheduler, calls, error):
    scheduler.fail["create_schedule"] = error
    with pytest.raises(DependencyFailure, match="create the task's schedule"):
        schedules.arm(TASK_ID, LATER, None, False, NOW)


def test_disarm_deletes_the_schedule_and_a_schedule_already_gone_is_fine(scheduler, calls):
    remover = EventBridgeScheduleRemover(scheduler, GROUP)
    remover.disarm(TASK_ID)
    scheduler.fail["delete_schedule"] = client_error("ResourceNotFoundException", "Delete")
    remover.disarm(TASK_ID)
    assert calls == [DELETE, DELETE]


def test_disarm_failing_otherwise_is_a_dependency_failure(scheduler):
    scheduler.fail["delete_schedule"] = client_error("ThrottlingException", "DeleteSchedule")
    with pytest.raises(DependencyFailure, match="delete the task's schedule"):
        EventBridgeScheduleRemover(scheduler, GROUP).disarm(TASK_ID)


def test_nothing_to_rearm_a_schedule_follows_its_cron_in_its_zone(scheduler, calls):
    remover = EventBridgeScheduleRemover(scheduler, GROUP)
    assert remover.rearm(TASK_ID, "Europe/Paris", LATER, NOW) is False
    assert calls == []
