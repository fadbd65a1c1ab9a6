"""Unit tests for triggers.EventBridgeRules and EventBridgeRuleRemover over small fakes of the
events and lambda clients.

A task runs through one EventBridge rule (a cron for its minute, or the client's recurring cron)
whose single target invokes the execute function with `{"task_id": "<id>"}`; an imminent task is
also, or only, dispatched straight to the execute function. Failures leave nothing armed.
"""

from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import EndpointConnectionError

from task_scheduler.errors import DependencyFailure, InvalidRequest
from task_scheduler.model import TriggerKind
from task_scheduler.triggers import (
    TARGET_ID,
    EventBridgeRuleRearmer,
    EventBridgeRuleRemover,
    EventBridgeRules,
    execute_input,
    rule_name,
)
from tests.support.aws_fakes import FakeClient, FakeLambda, client_error

TASK_ID = "123e4567-e89b-42d3-a456-426614174000"
PREFIX = "task-scheduler"
RULE = f"{PREFIX}-{TASK_ID}"
ARN = "arn:aws:lambda:eu-west-1:123456789012:function:execute-task"
NOW = datetime(2030, 5, 19, 17, 0, 0, tzinfo=UTC)
LATER = datetime(2030, 5, 19, 17, 56, 30, tzinfo=UTC)  # well beyond the rule lead time
SOON = NOW + timedelta(seconds=20)  # in the current minute: a rule would be too late
INPUT = '{"task_id": "' + TASK_ID + '"}'
CRON = "cron(0/15 * * * ? *)"


class FakeEvents(FakeClient):
    operations = ("put_rule", "put_targets", "remove_targets", "delete_rule")


@pytest.fixture
def calls():
    """Every call to either client, in order."""
    return []


@pytest.fixture
def events(calls):
    return FakeEvents(calls)


@pytest.fixture
def lambda_(calls):
    return FakeLambda(calls)


@pytest.fixture
def triggers(events, lambda_):
    return EventBridgeRules(events, lambda_, PREFIX, ARN)


def operations(calls):
    return [operation for operation, _ in calls]


PUT_RULE_ONE_SHOT = (
    "put_rule",
    {
        "Name": RULE,
        "ScheduleExpression": "cron(56 17 19 5 ? 2030)",
        "State": "ENABLED",
        "Description": f"Runs scheduled task {TASK_ID}",
    },
)
PUT_TARGETS = (
    "put_targets",
    {"Rule": RULE, "Targets": [{"Id": "execute-task", "Arn": ARN, "Input": INPUT}]},
)
INVOKE = (
    "invoke",
    {"FunctionName": ARN, "InvocationType": "Event", "Payload": INPUT.encode()},
)
REMOVE_RULE = [
    ("remove_targets", {"Rule": RULE, "Ids": ["execute-task"]}),
    ("delete_rule", {"Name": RULE}),
]


def put_rule_with(expression):
    name, kwargs = PUT_RULE_ONE_SHOT
    return (name, {**kwargs, "ScheduleExpression": expression})


# --- names and the execute event --------------------------------------------------------------


def test_execute_input_is_exactly_the_task_id_object():
    assert execute_input(TASK_ID) == INPUT
    assert execute_input(TASK_ID).encode() == b'{"task_id": "' + TASK_ID.encode() + b'"}'


def test_rule_name_is_the_prefix_and_the_task_id():
    assert rule_name(PREFIX, TASK_ID) == RULE
    assert TARGET_ID == "execute-task"


# --- one-shot tasks ---------------------------------------------------------------------------


def test_imminent_one_shot_is_only_dispatched_directly(triggers, calls):
    kind = triggers.arm(TASK_ID, SOON, None, False, NOW)
    assert kind is TriggerKind.DIRECT
    assert calls == [INVOKE]
    assert calls[0][1]["Payload"] == b'{"task_id": "123e4567-e89b-42d3-a456-426614174000"}'


def test_later_one_shot_gets_a_rule_for_its_minute_and_one_target(triggers, calls):
    kind = triggers.arm(TASK_ID, LATER, None, False, NOW)
    assert kind is TriggerKind.RULE
    assert calls == [PUT_RULE_ONE_SHOT, PUT_TARGETS]


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # The rule for 17:56 must exist at least 10 s before the minute starts.
        (datetime(2030, 5, 19, 17, 55, 50, tzinfo=UTC), ["put_rule", "put_targets"]),
        (datetime(2030, 5, 19, 17, 55, 51, tzinfo=UTC), ["invoke"]),
    ],
)
def test_direct_dispatch_starts_inside_the_rule_lead_time(triggers, calls, now, expected):
    triggers.arm(TASK_ID, LATER, None, False, now)
    assert operations(calls) == expected


def test_failed_dispatch_of_an_imminent_one_shot_is_a_dependency_failure(triggers, lambda_, calls):
    lambda_.fail["invoke"] = client_error("TooManyRequestsException", "Invoke")
    with pytest.raises(DependencyFailure) as caught:
        triggers.arm(TASK_ID, SOON, None, False, NOW)
    assert caught.value.message == (
        "Could not dispatch the task to the execute function: "
        "AWS answered TooManyRequestsException."
    )
    assert calls == [INVOKE]


def test_unreachable_lambda_is_a_dependency_failure(triggers, lambda_):
    lambda_.fail["invoke"] = EndpointConnectionError(endpoint_url="https://lambda.example")
    with pytest.raises(DependencyFailure, match="unreachable"):
        triggers.arm(TASK_ID, SOON, None, False, NOW)


# --- recurring tasks --------------------------------------------------------------------------


def test_recurring_task_gets_a_rule_with_its_cron(triggers, calls):
    kind = triggers.arm(TASK_ID, LATER, CRON, True, NOW)
    assert kind is TriggerKind.RULE
    assert calls == [put_rule_with(CRON), PUT_TARGETS]


def test_imminent_recurring_task_gets_its_rule_and_a_direct_dispatch(triggers, calls):
    # The rule may be created too late for the first occurrence, so that one is also sent.
    kind = triggers.arm(TASK_ID, SOON, CRON, True, NOW)
    assert kind is TriggerKind.RULE
    assert calls == [put_rule_with(CRON), PUT_TARGETS, INVOKE]


def test_failed_dispatch_of_an_imminent_recurring_task_removes_its_rule(triggers, lambda_, calls):
    lambda_.fail["invoke"] = client_error("ServiceException", "Invoke")
    with pytest.raises(DependencyFailure, match="dispatch the task"):
        triggers.arm(TASK_ID, SOON, CRON, True, NOW)
    assert calls == [put_rule_with(CRON), PUT_TARGETS, INVOKE, *REMOVE_RULE]


# --- rule failures leave no rule --------------------------------------------------------------


def test_put_rule_validation_error_is_the_clients_invalid_run_at(triggers, events, calls):
    events.fail["put_rule"] = client_error("ValidationException", "PutRule")
    with pytest.raises(InvalidRequest) as caught:
        triggers.arm(TASK_ID, LATER, CRON, True, NOW)
    assert [(p.field, p.problem) for p in caught.value.problems] == [
        ("run_at", "was rejected by EventBridge as a schedule expression")
    ]
    assert operations(calls) == ["put_rule"]


def test_the_rules_quota_used_up_is_a_dependency_failure_naming_the_quota_and_the_way_out(
    triggers, events, calls
):
    events.fail["put_rule"] = client_error("LimitExceededException", "PutRule")
    with pytest.raises(DependencyFailure) as caught:
        triggers.arm(TASK_ID, LATER, None, False, NOW)
    assert caught.value.code == "LimitExceededException"
    assert "quota of rules per event bus (300 by default" in caught.value.message
    assert "Service Quotas" in caught.value.message
    assert "TriggerBackend=scheduler" in caught.value.message
    assert operations(calls) == ["put_rule"]


@pytest.mark.parametrize("code", ["InternalException", "AccessDenied"])
def test_put_rule_failing_otherwise_is_a_dependency_failure(triggers, events, calls, code):
    events.fail["put_rule"] = client_error(code, "PutRule")
    with pytest.raises(DependencyFailure) as caught:
        triggers.arm(TASK_ID, LATER, None, False, NOW)
    assert (
        caught.value.message
        == f"Could not create the task's EventBridge rule: AWS answered {code}."
    )
    assert operations(calls) == ["put_rule"]


def test_unreachable_events_is_a_dependency_failure(triggers, events, calls):
    events.fail["put_rule"] = EndpointConnectionError(endpoint_url="https://events.example")
    with pytest.raises(DependencyFailure, match="unreachable"):
        triggers.arm(TASK_ID, LATER, None, False, NOW)
    assert operations(calls) == ["put_rule"]


def test_put_targets_error_deletes_the_rule(triggers, events, calls):
    events.fail["put_targets"] = client_error("InternalException", "PutTargets")
    with pytest.raises(DependencyFailure) as caught:
        triggers.arm(TASK_ID, LATER, None, False, NOW)
    assert caught.value.message == (
        "Could not set the task's EventBridge rule target: AWS answered InternalException."
    )
    assert calls == [PUT_RULE_ONE_SHOT, PUT_TARGETS, ("delete_rule", {"Name": RULE})]


def test_put_targets_with_a_failed_entry_deletes_the_rule(triggers, events, calls):
    events.answers["put_targets"] = {
        "FailedEntryCount": 1,
        "FailedEntries": [
            {"TargetId": "execute-task", "ErrorCode": "ConcurrentModificationException"}
        ],
    }
    with pytest.raises(DependencyFailure) as caught:
        triggers.arm(TASK_ID, LATER, CRON, True, NOW)
    assert caught.value.message == (
        "Could not set the task's EventBridge rule target: ConcurrentModificationException."
    )
    assert calls == [put_rule_with(CRON), PUT_TARGETS, ("delete_rule", {"Name": RULE})]


def test_put_targets_without_failed_entries_is_armed(triggers, events, calls):
    events.answers["put_targets"] = {"FailedEntryCount": 0, "FailedEntries": []}
    assert triggers.arm(TASK_ID, LATER, None, False, NOW) is TriggerKind.RULE
    assert operations(calls) == ["put_rule", "put_targets"]


def test_imminent_recurring_task_whose_target_fails_is_not_dispatched(triggers, events, calls):
    events.fail["put_targets"] = client_error("InternalException", "PutTargets")
    with pytest.raises(DependencyFailure):
        triggers.arm(TASK_ID, SOON, CRON, True, NOW)
    assert operations(calls) == ["put_rule", "put_targets", "delete_rule"]


def test_put_targets_failure_is_reported_even_when_deleting_the_rule_fails(triggers, events, calls):
    events.fail["put_targets"] = client_error("InternalException", "PutTargets")
    events.fail["delete_rule"] = client_error("ThrottlingException", "DeleteRule")
    with pytest.raises(DependencyFailure, match="rule target: AWS answered InternalException"):
        triggers.arm(TASK_ID, LATER, None, False, NOW)
    assert operations(calls) == ["put_rule", "put_targets", "delete_rule"]


# --- disarm -----------------------------------------------------------------------------------


def test_disarm_removes_the_target_then_the_rule(triggers, calls):
    triggers.disarm(TASK_ID)
    assert calls == REMOVE_RULE


def test_disarm_works_on_the_execute_side_without_lambda_or_arn(events, calls):
    EventBridgeRuleRemover(events, PREFIX).disarm(TASK_ID)
    assert calls == REMOVE_RULE


@pytest.mark.parametrize(
    "missing",
    [{"remove_targets"}, {"delete_rule"}, {"remove_targets", "delete_rule"}],
    ids=["target-gone", "rule-gone", "both-gone"],
)
def test_disarm_of_a_trigger_already_gone_is_not_an_error(triggers, events, calls, missing):
    for operation in missing:
        events.fail[operation] = client_error("ResourceNotFoundException", operation)
    triggers.disarm(TASK_ID)
    assert calls == REMOVE_RULE


def test_disarm_failing_to_remove_the_target_is_a_dependency_failure(triggers, events, calls):
    events.fail["remove_targets"] = client_error("ThrottlingException", "RemoveTargets")
    with pytest.raises(DependencyFailure) as caught:
        triggers.disarm(TASK_ID)
    assert caught.value.message == (
        "Could not remove the task's rule target: AWS answered ThrottlingException."
    )
    # The rule keeps its target, so it is not deleted (EventBridge would refuse anyway).
    assert operations(calls) == ["remove_targets"]


def test_disarm_failing_to_delete_the_rule_is_a_dependency_failure(triggers, events, calls):
    events.fail["delete_rule"] = client_error("InternalException", "DeleteRule")
    with pytest.raises(DependencyFailure) as caught:
        triggers.disarm(TASK_ID)
    assert (
        caught.value.message == "Could not delete the task's rule: AWS answered InternalException."
    )
    assert calls == REMOVE_RULE


@pytest.mark.parametrize("operation", ["remove_targets", "delete_rule"])
def test_disarm_with_events_unreachable_is_a_dependency_failure(triggers, events, operation):
    events.fail[operation] = EndpointConnectionError(endpoint_url="https://events.example")
    with pytest.raises(DependencyFailure, match="unreachable"):
        triggers.disarm(TASK_ID)


# --- recurring tasks whose cron is read in a time zone ----------------------------------------
# A rule reads its cron in UTC, so such a task's rule is a one-shot for its next occurrence,
# moved on by the execute side after each run.


def test_zoned_recurring_task_gets_a_one_shot_rule_for_its_first_occurrence(triggers, calls):
    kind = triggers.arm(TASK_ID, LATER, CRON, True, NOW, timezone="Europe/Paris")
    assert kind is TriggerKind.RULE
    assert calls == [PUT_RULE_ONE_SHOT, PUT_TARGETS]


def test_imminent_zoned_recurring_task_gets_its_one_shot_rule_and_a_direct_dispatch(
    triggers, calls
):
    kind = triggers.arm(TASK_ID, SOON, CRON, True, NOW, timezone="Asia/Kolkata")
    assert kind is TriggerKind.RULE
    assert calls == [put_rule_with("cron(0 17 19 5 ? 2030)"), PUT_TARGETS, INVOKE]


def test_utc_recurring_task_named_utc_keeps_its_cron_on_the_rule(triggers, calls):
    triggers.arm(TASK_ID, LATER, CRON, True, NOW, timezone="UTC")
    assert calls == [put_rule_with(CRON), PUT_TARGETS]


@pytest.fixture
def rearmer(events):
    return EventBridgeRuleRearmer(events, PREFIX)


def test_rearm_moves_the_rule_on_to_the_next_occurrence_and_leaves_its_target(rearmer, calls):
    assert rearmer.rearm(TASK_ID, "America/New_York", LATER, NOW) is False
    assert calls == [PUT_RULE_ONE_SHOT]


def test_rearm_of_a_utc_cron_changes_nothing(rearmer, calls):
    assert rearmer.rearm(TASK_ID, "UTC", LATER, NOW) is False
    assert calls == []


@pytest.mark.parametrize(
    ("now", "too_late"),
    [
        (datetime(2030, 5, 19, 17, 55, 50, tzinfo=UTC), False),
        (datetime(2030, 5, 19, 17, 55, 51, tzinfo=UTC), True),
    ],
)
def test_rearm_moments_before_the_occurrence_may_be_too_late(rearmer, calls, now, too_late):
    assert rearmer.rearm(TASK_ID, "Europe/London", LATER, now) is too_late
    assert calls == [PUT_RULE_ONE_SHOT]


def test_rearm_failing_is_a_dependency_failure(rearmer, events, calls):
    events.fail["put_rule"] = client_error("ThrottlingException", "PutRule")
    with pytest.raises(DependencyFailure) as caught:
        rearmer.rearm(TASK_ID, "Europe/London", LATER, NOW)
    assert caught.value.message == (
        "Could not re-arm the task's EventBridge rule for its next occurrence: "
        "AWS answered ThrottlingException."
    )
    assert calls == [PUT_RULE_ONE_SHOT]


def test_the_rearmer_removes_like_the_remover(rearmer, calls):
    rearmer.disarm(TASK_ID)
    assert calls == REMOVE_RULE
