"""Unit tests for schedules.EventBridgeSchedules (the `scheduler` backend's far trigger) over a
small fake of the scheduler client.

Each occurrence beyond the queue's 15 minutes gets one `at()` schedule in the stack's group,
named by the task id, for the minute two minutes before the occurrence's own, in UTC, deleted by
Scheduler once it has fired, with the occurrence in its event. Failures name what failed.
"""

from datetime import UTC, datetime

import pytest
from botocore.exceptions import EndpointConnectionError

from task_scheduler.errors import DependencyFailure
from task_scheduler.model import TriggerKind
from task_scheduler.schedules import RETRY_POLICY, EventBridgeSchedules, at_expression
from tests.support.aws_fakes import FakeScheduler, client_error

TASK_ID = "123e4567-e89b-42d3-a456-426614174000"
GROUP = "task-scheduler"
ARN = "arn:aws:lambda:eu-west-1:123456789012:function:execute-task"
ROLE = "arn:aws:iam::123456789012:role/scheduler-invokes-execute"
DLQ = "arn:aws:sqs:eu-west-1:123456789012:dead-letters"
DUE = datetime(2030, 5, 19, 17, 56, 30, tzinfo=UTC)
INPUT = '{"task_id": "' + TASK_ID + '", "due": "2030-05-19T17:56:30Z"}'
SCHEDULE = {
    "Name": TASK_ID,
    "GroupName": GROUP,
    "ScheduleExpression": "at(2030-05-19T17:54:00)",
    "ScheduleExpressionTimezone": "UTC",
    "FlexibleTimeWindow": {"Mode": "OFF"},
    "State": "ENABLED",
    "ActionAfterCompletion": "DELETE",
    "Description": f"Runs scheduled task {TASK_ID}",
    "Target": {
        "Arn": ARN,
        "RoleArn": ROLE,
        "RetryPolicy": RETRY_POLICY,
        "DeadLetterConfig": {"Arn": DLQ},
        "Input": INPUT,
    },
}
DELETE = ("delete_schedule", {"Name": TASK_ID, "GroupName": GROUP})


@pytest.fixture
def calls():
    return []


@pytest.fixture
def scheduler(calls):
    return FakeScheduler(calls)


@pytest.fixture
def schedules(scheduler):
    return EventBridgeSchedules(scheduler, GROUP, ARN, ROLE, DLQ)


def test_at_expression_is_the_minute_of_the_time():
    assert at_expression(DUE) == "at(2030-05-19T17:56:00)"


def test_kind_and_self_removal(schedules):
    assert schedules.kind is TriggerKind.SCHEDULE
    assert schedules.removes_itself_after_firing is True


def test_an_occurrence_gets_an_at_schedule_two_minutes_early_deleted_after_it_fires(
    schedules, calls
):
    schedules.arm(TASK_ID, DUE)
    assert calls == [("create_schedule", SCHEDULE)]


def test_a_fired_schedule_not_yet_deleted_is_moved_on_to_the_next_occurrence(
    schedules, scheduler, calls
):
    scheduler.fail["create_schedule"] = client_error("ConflictException", "CreateSchedule")
    schedules.arm(TASK_ID, DUE)
    assert calls == [("create_schedule", SCHEDULE), ("update_schedule", SCHEDULE)]


def test_quota_used_up_is_a_dependency_failure_naming_the_quota(schedules, scheduler):
    scheduler.fail["create_schedule"] = client_error(
        "ServiceQuotaExceededException", "CreateSchedule"
    )
    with pytest.raises(DependencyFailure) as caught:
        schedules.arm(TASK_ID, DUE)
    assert caught.value.code == "ServiceQuotaExceededException"
    assert "quota of schedules" in caught.value.message
    assert "Service Quotas" in caught.value.message


def test_a_rejected_schedule_is_a_deployment_failure_not_the_clients(schedules, scheduler):
    # Every expression sent is the scheduler's own at(): its refusal (e.g. a role Scheduler
    # cannot assume yet) is a 503 an operator sees, not a 400 blaming run_at.
    scheduler.fail["create_schedule"] = client_error("ValidationException", "CreateSchedule")
    with pytest.raises(DependencyFailure, match="ValidationException"):
        schedules.arm(TASK_ID, DUE)


@pytest.mark.parametrize(
    "error",
    [
        client_error("InternalServerException", "CreateSchedule"),
        EndpointConnectionError(endpoint_url="https://scheduler.example"),
    ],
)
def test_other_create_failures_are_dependency_failures(schedules, scheduler, error):
    scheduler.fail["create_schedule"] = error
    with pytest.raises(DependencyFailure, match="create the task's schedule"):
        schedules.arm(TASK_ID, DUE)


def test_disarm_deletes_the_schedule_and_a_schedule_already_gone_is_fine(
    schedules, scheduler, calls
):
    schedules.disarm(TASK_ID)
    scheduler.fail["delete_schedule"] = client_error("ResourceNotFoundException", "Delete")
    schedules.disarm(TASK_ID)
    assert calls == [DELETE, DELETE]


def test_disarm_failing_otherwise_is_a_dependency_failure(schedules, scheduler):
    scheduler.fail["delete_schedule"] = client_error("ThrottlingException", "DeleteSchedule")
    with pytest.raises(DependencyFailure, match="delete the task's schedule"):
        schedules.disarm(TASK_ID)
