"""Unit tests for triggers.EventBridgeRules (the `rules` backend's far trigger) over a small fake
of the events client.

An occurrence beyond the queue's 15 minutes gets one rule per task, a one-shot cron for the minute
two minutes before the occurrence's own, with a single target invoking the execute function with
`{"task_id": ..., "due": ...}`. Re-arming moves the same rule on. Failures leave no rule that
could fire with a wrong event.
"""

from datetime import UTC, datetime

import pytest
from botocore.exceptions import EndpointConnectionError

from task_scheduler.errors import DependencyFailure
from task_scheduler.execute_events import execute_input
from task_scheduler.model import TriggerKind
from task_scheduler.triggers import TARGET_ID, EventBridgeRules, rule_name
from tests.support.aws_fakes import FakeClient, client_error

TASK_ID = "123e4567-e89b-42d3-a456-426614174000"
PREFIX = "task-scheduler"
RULE = f"{PREFIX}-{TASK_ID}"
ARN = "arn:aws:lambda:eu-west-1:123456789012:function:execute-task"
DUE = datetime(2030, 5, 19, 17, 56, 30, tzinfo=UTC)
INPUT = '{"task_id": "' + TASK_ID + '", "due": "2030-05-19T17:56:30Z"}'


class FakeEvents(FakeClient):
    operations = ("put_rule", "put_targets", "remove_targets", "delete_rule")


@pytest.fixture
def calls():
    return []


@pytest.fixture
def events(calls):
    return FakeEvents(calls)


@pytest.fixture
def rules(events):
    return EventBridgeRules(events, PREFIX, ARN)


def operations(calls):
    return [operation for operation, _ in calls]


PUT_RULE = (
    "put_rule",
    {
        "Name": RULE,
        "ScheduleExpression": "cron(54 17 19 5 ? 2030)",
        "State": "ENABLED",
        "Description": f"Runs scheduled task {TASK_ID}",
    },
)
PUT_TARGETS = (
    "put_targets",
    {"Rule": RULE, "Targets": [{"Id": TARGET_ID, "Arn": ARN, "Input": INPUT}]},
)
REMOVE_TARGETS = ("remove_targets", {"Rule": RULE, "Ids": [TARGET_ID]})
DELETE_RULE = ("delete_rule", {"Name": RULE})


def test_execute_input_is_the_task_id_and_the_occurrence():
    assert execute_input(TASK_ID, DUE) == INPUT


def test_rule_name_is_the_prefix_and_the_task_id():
    assert rule_name(PREFIX, TASK_ID) == RULE


def test_kind_and_no_self_removal(rules):
    assert rules.kind is TriggerKind.RULE
    assert rules.removes_itself_after_firing is False


def test_an_occurrence_gets_a_rule_two_minutes_early_with_one_target(rules, calls):
    rules.arm(TASK_ID, DUE)
    assert calls == [PUT_RULE, PUT_TARGETS]


def test_rearming_moves_the_same_rule_and_its_event_on(rules, calls):
    rules.arm(TASK_ID, DUE)
    rules.arm(TASK_ID, datetime(2030, 5, 20, 9, 0, tzinfo=UTC))
    (_, second_rule), (_, second_target) = calls[2], calls[3]
    assert second_rule["Name"] == RULE
    assert second_rule["ScheduleExpression"] == "cron(58 8 20 5 ? 2030)"
    assert second_target["Targets"][0]["Input"].endswith('"due": "2030-05-20T09:00:00Z"}')


def test_the_rules_quota_used_up_is_a_dependency_failure_naming_the_quota_and_the_way_out(
    rules, events, calls
):
    events.fail["put_rule"] = client_error("LimitExceededException", "PutRule")
    with pytest.raises(DependencyFailure) as caught:
        rules.arm(TASK_ID, DUE)
    assert caught.value.code == "LimitExceededException"
    assert "TriggerBackend=scheduler" in caught.value.message
    assert "Service Quotas" in caught.value.message
    assert operations(calls) == ["put_rule"]


@pytest.mark.parametrize("code", ["InternalException", "ValidationException"])
def test_put_rule_failing_otherwise_is_a_dependency_failure(rules, events, calls, code):
    # The expression is always the scheduler's own one-shot cron: a refusal is not the client's.
    events.fail["put_rule"] = client_error(code, "PutRule")
    with pytest.raises(DependencyFailure, match="create the task's EventBridge rule"):
        rules.arm(TASK_ID, DUE)
    assert operations(calls) == ["put_rule"]


def test_unreachable_events_is_a_dependency_failure(rules, events, calls):
    events.fail["put_rule"] = EndpointConnectionError(endpoint_url="https://events.example")
    with pytest.raises(DependencyFailure, match="unreachable"):
        rules.arm(TASK_ID, DUE)


def test_put_targets_error_removes_the_rule(rules, events, calls):
    events.fail["put_targets"] = client_error("InternalException", "PutTargets")
    with pytest.raises(DependencyFailure, match="set the task's EventBridge rule target"):
        rules.arm(TASK_ID, DUE)
    assert calls == [PUT_RULE, PUT_TARGETS, REMOVE_TARGETS, DELETE_RULE]


def test_put_targets_with_a_failed_entry_removes_the_rule(rules, events, calls):
    events.answers["put_targets"] = {
        "FailedEntryCount": 1,
        "FailedEntries": [{"ErrorCode": "ConcurrentModificationException"}],
    }
    with pytest.raises(DependencyFailure, match="ConcurrentModificationException"):
        rules.arm(TASK_ID, DUE)
    assert operations(calls) == ["put_rule", "put_targets", "remove_targets", "delete_rule"]


def test_put_targets_without_failed_entries_is_armed(rules, events, calls):
    events.answers["put_targets"] = {"FailedEntryCount": 0, "FailedEntries": []}
    rules.arm(TASK_ID, DUE)
    assert operations(calls) == ["put_rule", "put_targets"]


def test_put_targets_failure_is_reported_even_when_removing_the_rule_fails(rules, events, calls):
    events.fail["put_targets"] = client_error("InternalException", "PutTargets")
    events.fail["remove_targets"] = client_error("InternalException", "RemoveTargets")
    with pytest.raises(DependencyFailure, match="set the task's EventBridge rule target"):
        rules.arm(TASK_ID, DUE)


def test_disarm_removes_the_target_then_the_rule(rules, calls):
    rules.disarm(TASK_ID)
    assert calls == [REMOVE_TARGETS, DELETE_RULE]


@pytest.mark.parametrize("missing", ["remove_targets", "delete_rule"])
def test_disarm_of_a_trigger_already_gone_is_not_an_error(rules, events, calls, missing):
    events.fail[missing] = client_error("ResourceNotFoundException", missing)
    rules.disarm(TASK_ID)
    assert calls == [REMOVE_TARGETS, DELETE_RULE]


@pytest.mark.parametrize(
    ("operation", "what"),
    [
        ("remove_targets", "remove the task's rule target"),
        ("delete_rule", "delete the task's rule"),
    ],
)
def test_disarm_failing_otherwise_is_a_dependency_failure(rules, events, operation, what):
    events.fail[operation] = client_error("InternalException", operation)
    with pytest.raises(DependencyFailure, match=what):
        rules.disarm(TASK_ID)


def test_disarm_with_events_unreachable_is_a_dependency_failure(rules, events):
    events.fail["remove_targets"] = EndpointConnectionError(endpoint_url="https://events.example")
    with pytest.raises(DependencyFailure, match="unreachable"):
        rules.disarm(TASK_ID)
