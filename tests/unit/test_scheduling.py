"""Unit tests for scheduling.Scheduler with small in-memory fakes (no AWS), and for the edge that
turns a request into its command (ScheduleRequest.to_command).

Contract sections 1 to 4: the first occurrence is armed before the task is written (straight into
the queue when it is within 15 minutes, otherwise a rule or schedule two minutes early), then the
task is written once, `scheduled`; a failed write is read back, else undone and raised; bad input
and failed dependencies leave nothing that runs; unknown and never-acknowledged tasks are 404; a
cancel removes what its trigger kind leaves, repeats as the same answer, and is a 409 once the
task runs or finished.
"""

import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aws_lambda_powertools import Logger

from task_scheduler import scheduling
from task_scheduler.actions import validators
from task_scheduler.errors import (
    DependencyFailure,
    InvalidRequest,
    PayloadTooLarge,
    TaskConflict,
    TaskNotFound,
)
from task_scheduler.model import TaskStatus, TriggerKind
from task_scheduler.responses import task_view
from task_scheduler.schedule_request import ScheduleRequest
from task_scheduler.scheduling import Scheduler
from task_scheduler.task_items import MAX_STORED_TASK_BYTES, largest_stored_size
from task_scheduler.timing import QUEUE_HORIZON, format_utc
from task_scheduler.triggers import EventBridgeRules
from tests.support.aws_fakes import FakeClient
from tests.support.fakes import (
    FakeClock,
    FakeFarTrigger,
    FakeRetryQueue,
    FakeStore,
    fake_arming,
)

NOW = datetime(2030, 5, 19, 17, 0, 0, tzinfo=UTC)
TASK_ID = "123e4567-e89b-42d3-a456-426614174000"
PAYLOAD = {"url": "https://example.com/hooks/report", "data": {"msg": "Hello"}}
FAR = datetime(2030, 5, 19, 17, 56, tzinfo=UTC)  # the default request's run_at: 56 minutes away
NEAR = datetime(2030, 5, 19, 17, 10, tzinfo=UTC)  # within the queue's 15 minutes

pytestmark = pytest.mark.usefixtures("no_dns")


def public_resolver(host, port):
    """Stands in for DNS: every name is one public address (example.com is never looked up)."""
    return ["93.184.215.14"]


def registry(resolver=public_resolver, allow_loopback=False):
    return validators(allow_loopback=allow_loopback, resolver=resolver)


def clock():
    """The scheduler's clock: it must never sleep."""
    return FakeClock(NOW, can_sleep=False)


def arm_failure():
    return DependencyFailure("Could not create the task's EventBridge rule.")


def disarm_failure():
    return DependencyFailure("Could not delete the task's rule: AWS answered ThrottlingException.")


@pytest.fixture(autouse=True, scope="module")
def handler_logger():
    """The Lambda handlers create the parent Powertools logger before using the package; do the
    same here (see test_scheduler_works_without_a_handler_logger for what happens otherwise)."""
    return Logger()


@pytest.fixture
def log():
    """Every call of the store, the far trigger and the queue, in order."""
    return []


@pytest.fixture
def store(log):
    return FakeStore(log=log)


@pytest.fixture
def far(log):
    return FakeFarTrigger(log)


@pytest.fixture
def queue(log):
    return FakeRetryQueue(log)


@pytest.fixture
def scheduler(store, far, queue):
    return Scheduler(store, fake_arming(far, queue), clock(), new_id=lambda: TASK_ID)


def request(run_at="2030-05-19T19:56:00+02:00", payload=PAYLOAD, action="webhook", **options):
    return ScheduleRequest(action=action, payload=payload, run_at=run_at, **options)


def near_request():
    return request(run_at=format_utc(NEAR))


def submit(scheduler, scheduled, actions=None):
    """What the API does with a request: checked at the edge (an invalid one raises
    InvalidRequest there, before the scheduler is reached), then its command scheduled."""
    command = scheduled.to_command(actions or registry(), NOW)
    return scheduler.schedule(command)


class ServiceLog:
    """Stands in for the scheduling module's logger: keeps (level, message, extra) of each call."""

    def __init__(self):
        self.lines = []

    def __getattr__(self, level):
        def record(message, *args, **kwargs):
            self.lines.append((level, message, kwargs.get("extra")))

        return record

    def messages(self, level):
        return [message for logged, message, _ in self.lines if logged == level]


@pytest.fixture
def service_log(monkeypatch):
    recorder = ServiceLog()
    monkeypatch.setattr(scheduling, "logger", recorder)
    return recorder


# --- a far occurrence: a rule or schedule, armed before the task is written -------------------


def test_far_occurrence_is_armed_then_the_task_written_once_scheduled(
    scheduler, store, far, log, service_log
):
    command = request().to_command(registry(), NOW)
    task = scheduler.schedule(command)
    assert log == [("arm", TASK_ID), ("create", TASK_ID, TriggerKind.RULE)]
    assert far.armed == {TASK_ID: FAR}
    assert task.task_id == TASK_ID
    assert task.status is TaskStatus.SCHEDULED
    assert task.status.value == "scheduled"
    assert task.trigger is TriggerKind.RULE
    assert task.run_at == "2030-05-19T17:56:00Z"
    assert task.next_run_at == "2030-05-19T17:56:00Z"
    assert task.action == "webhook"
    assert task.payload == PAYLOAD
    assert task.created_at == task.updated_at == "2030-05-19T17:00:00Z"
    assert task.recurring is False
    assert task.max_attempts == 5
    assert task.run_attempts == 0
    assert command.schedule.run_at == "2030-05-19T17:56:00Z"
    assert store.tasks[TASK_ID] == task
    extra = {"task_id": TASK_ID, "run_at": task.run_at, "next_run_at": task.next_run_at}
    assert service_log.lines == [("info", "task scheduled", {**extra, "trigger": "rule"})]


def test_the_schedules_backend_arms_and_cancels_a_schedule(store, log):
    far = FakeFarTrigger(log, kind=TriggerKind.SCHEDULE, removes_itself_after_firing=True)
    scheduler = Scheduler(store, fake_arming(far, FakeRetryQueue(log)), clock(), lambda: TASK_ID)
    assert submit(scheduler, request()).trigger is TriggerKind.SCHEDULE
    scheduler.cancel(TASK_ID)
    assert log == [
        ("arm", TASK_ID),
        ("create", TASK_ID, TriggerKind.SCHEDULE),
        ("get", TASK_ID),
        ("cancel", TASK_ID),
        ("disarm", TASK_ID),
    ]


class FakeEvents(FakeClient):
    operations = ("put_rule", "put_targets", "remove_targets", "delete_rule")


def test_the_api_arms_a_far_occurrences_rule_for_the_minute_two_minutes_before_it(store):
    # With the real rules backend: the rule fires in 17:54, whatever its second, with the due
    # second in its event; the execute function hops it on to 17:56:30 through the queue.
    calls = []
    rules = EventBridgeRules(FakeEvents(calls), "task-scheduler", "arn:execute")
    scheduler = Scheduler(store, fake_arming(rules, FakeRetryQueue([])), clock(), lambda: TASK_ID)
    task = submit(scheduler, request(run_at="2030-05-19T17:56:30Z"))
    assert task.trigger is TriggerKind.RULE
    (put_rule, rule), (put_targets, targets) = calls
    assert (put_rule, put_targets) == ("put_rule", "put_targets")
    assert rule["ScheduleExpression"] == "cron(54 17 19 5 ? 2030)"
    assert targets["Targets"][0]["Input"] == (
        '{"task_id": "' + TASK_ID + '", "due": "2030-05-19T17:56:30Z"}'
    )


# --- a near occurrence: straight into the queue -----------------------------------------------


def test_near_occurrence_is_queued_to_its_second_then_written(scheduler, store, far, queue, log):
    task = submit(scheduler, near_request())
    assert log == [("arm_at", TASK_ID), ("create", TASK_ID, TriggerKind.QUEUE)]
    assert queue.armed == [(TASK_ID, NEAR, NOW)]
    assert far.armed == {}  # no rule: it could not fire before the occurrence's second
    assert task.trigger is TriggerKind.QUEUE
    assert store.tasks[TASK_ID].trigger is TriggerKind.QUEUE
    assert task.next_run_at == "2030-05-19T17:10:00Z"


@pytest.mark.parametrize(
    ("ahead", "kind"),
    [
        (timedelta(seconds=1), TriggerKind.QUEUE),  # nothing missed because its minute began
        (QUEUE_HORIZON, TriggerKind.QUEUE),
        (QUEUE_HORIZON + timedelta(seconds=1), TriggerKind.RULE),
    ],
)
def test_the_queues_15_minutes_decide_between_queue_and_rule(scheduler, far, queue, ahead, kind):
    due = NOW + ahead
    assert submit(scheduler, request(run_at=format_utc(due))).trigger is kind
    assert (queue.armed, far.armed) == (
        ([(TASK_ID, due, NOW)], {}) if kind is TriggerKind.QUEUE else ([], {TASK_ID: due})
    )


def test_cron_task_arms_its_first_occurrence_and_recurs(scheduler, store, far, queue):
    command = request(run_at="cron(0 18 * * ? *)").to_command(registry(), NOW)
    task = scheduler.schedule(command)
    assert task.run_at == "cron(0 18 * * ? *)"
    assert task.next_run_at == "2030-05-19T18:00:00Z"
    assert task.recurring is True
    assert command.schedule.recurring is True
    assert far.armed == {TASK_ID: datetime(2030, 5, 19, 18, 0, tzinfo=UTC)}
    assert queue.armed == []
    assert store.tasks[TASK_ID].trigger is TriggerKind.RULE


def test_cron_task_whose_first_occurrence_is_near_is_queued(scheduler, far, queue):
    task = submit(scheduler, request(run_at="cron(0/15 * * * ? *)"))
    first = datetime(2030, 5, 19, 17, 15, tzinfo=UTC)  # exactly 15 minutes away
    assert task.recurring is True
    assert task.trigger is TriggerKind.QUEUE
    assert queue.armed == [(TASK_ID, first, NOW)]
    assert far.armed == {}


def test_zoned_cron_task_arms_its_first_occurrence_in_utc(scheduler, store, far):
    # 20:00 in Paris (summer time) is 18:00 UTC; the zone is kept for the next occurrences.
    task = submit(scheduler, request(run_at="cron(0 20 * * ? *)", timezone="Europe/Paris"))
    assert far.armed == {TASK_ID: datetime(2030, 5, 19, 18, 0, tzinfo=UTC)}
    assert task.next_run_at == "2030-05-19T18:00:00Z"
    assert store.tasks[TASK_ID].timezone == "Europe/Paris"


def test_single_moment_cron_is_armed_as_a_one_shot(scheduler, far):
    task = submit(scheduler, request(run_at="cron(30 9 1 1 ? 2031)"))
    assert task.recurring is False
    assert far.armed == {TASK_ID: datetime(2031, 1, 1, 9, 30, tzinfo=UTC)}


def test_default_ids_are_uuid4(store, far, queue):
    import uuid

    scheduler = Scheduler(store, fake_arming(far, queue), clock())
    first = submit(scheduler, request())
    second = submit(scheduler, request())
    assert first.task_id != second.task_id
    for task_id in (first.task_id, second.task_id):
        assert uuid.UUID(task_id).version == 4
        assert str(uuid.UUID(task_id)) == task_id


# --- failures leave nothing that runs ---------------------------------------------------------

UNDO = [("delete_unacknowledged", TASK_ID), ("disarm", TASK_ID)]
WRITE_FAILED = [("arm", TASK_ID), ("create", TASK_ID, TriggerKind.RULE), ("get", TASK_ID)]


def test_failed_arm_is_removed_raised_and_nothing_is_written(scheduler, store, far, log):
    # A rule whose creation failed may exist all the same (an answer lost): it is removed.
    far.fail_arm = failure = arm_failure()
    with pytest.raises(DependencyFailure) as caught:
        submit(scheduler, request())
    assert caught.value is failure
    assert log == [("arm", TASK_ID), ("disarm", TASK_ID)]
    assert store.tasks == {}


def test_failed_arm_whose_removal_fails_too_is_still_raised(
    scheduler, store, far, log, service_log
):
    far.fail_arm = failure = arm_failure()
    far.fail_disarm = disarm_failure()
    with pytest.raises(DependencyFailure) as caught:
        submit(scheduler, request())
    assert caught.value is failure
    assert store.tasks == {}
    assert service_log.lines == [
        ("exception", "undo: could not remove the trigger", {"task_id": TASK_ID})
    ]


def test_failed_queueing_of_a_near_occurrence_is_raised_and_nothing_is_written(
    scheduler, store, queue, log
):
    queue.fail = True
    with pytest.raises(DependencyFailure, match="queue"):
        submit(scheduler, near_request())
    # A message may have been sent all the same; nothing to take back, but no rule either.
    assert log == [("arm_at", TASK_ID), ("disarm", TASK_ID)]
    assert store.tasks == {}


def test_failed_write_is_read_back_then_undone_and_raised(scheduler, store, far, log, service_log):
    store.fail_on.add("create")
    with pytest.raises(DependencyFailure, match="create"):
        submit(scheduler, request())
    assert log == [*WRITE_FAILED, *UNDO]
    assert store.tasks == {}
    assert far.armed == {}
    assert service_log.lines == []  # no "task scheduled"


def test_failed_write_of_a_queued_task_deletes_the_row_and_leaves_the_message(
    scheduler, store, far, queue, log
):
    # A message cannot be taken back: it finds no task (the execute function looks again for a
    # few seconds, then gives up).
    store.fail_on.add("create")
    with pytest.raises(DependencyFailure, match="create"):
        submit(scheduler, near_request())
    assert log == [
        ("arm_at", TASK_ID),
        ("create", TASK_ID, TriggerKind.QUEUE),
        ("get", TASK_ID),
        ("delete_unacknowledged", TASK_ID),
    ]
    assert store.tasks == {}
    assert far.disarmed == []


def test_ambiguous_write_that_landed_is_a_success(scheduler, store, far, log):
    # The write landed but every answer was lost: reading it back shows the task scheduled with
    # its trigger armed, so the client gets its 201.
    store.ambiguous_on.add("create")
    task = submit(scheduler, request())
    assert task.status is TaskStatus.SCHEDULED
    assert log == WRITE_FAILED
    assert store.tasks[TASK_ID] == task
    assert far.armed == {TASK_ID: FAR}


def test_ambiguous_write_that_cannot_be_read_back_is_undone(scheduler, store, far, log):
    # Not knowing whether it landed, the row is removed: a 503 must leave nothing that runs.
    store.ambiguous_on.add("create")
    store.fail_on.add("get")
    with pytest.raises(DependencyFailure, match="create"):
        submit(scheduler, request())
    assert log == [*WRITE_FAILED, *UNDO]
    assert store.tasks == {}
    assert far.armed == {}


def test_failing_disarm_in_undo_leaves_the_rule_to_remove_itself(
    scheduler, store, far, log, service_log
):
    store.fail_on.add("create")
    far.fail_disarm = disarm_failure()
    with pytest.raises(DependencyFailure, match="create"):
        submit(scheduler, request())
    assert log[-2:] == UNDO
    assert store.tasks == {}
    assert service_log.lines == [
        ("exception", "undo: could not remove the trigger", {"task_id": TASK_ID})
    ]
    # The rule stays armed; when it fires, the execute side finds no task and removes it.
    assert far.armed == {TASK_ID: FAR}


def test_a_row_the_undo_cannot_delete_keeps_its_trigger(scheduler, store, far, log, service_log):
    # Whether the write landed is unknown; should it have, a `scheduled` task is never left
    # without its trigger (it runs, though its client was answered 503).
    store.ambiguous_on.add("create")
    store.fail_on.update({"get", "delete_unacknowledged"})
    with pytest.raises(DependencyFailure, match="create"):
        submit(scheduler, request())
    assert log == [*WRITE_FAILED, ("delete_unacknowledged", TASK_ID)]
    assert far.armed == {TASK_ID: FAR}
    assert store.tasks[TASK_ID].status is TaskStatus.SCHEDULED
    assert service_log.lines == [
        ("exception", "undo: could not remove the row", {"task_id": TASK_ID})
    ]


# --- the stored-size rule ----------------------------------------------------------------------


def _payload_of_largest_size(size):
    """A payload whose task, grown to its largest, takes exactly `size` bytes: one more byte of
    `data` is one more stored byte."""
    probe_store = FakeStore()
    submit(Scheduler(probe_store, fake_arming(), clock(), new_id=lambda: TASK_ID), request())
    without_data = {**PAYLOAD, "data": ""}
    probe = probe_store.tasks[TASK_ID].with_changes(payload=without_data)
    return {**PAYLOAD, "data": "x" * (size - largest_stored_size(probe))}


def test_a_task_that_could_outgrow_storage_is_refused_before_anything_is_armed(scheduler, log):
    payload = _payload_of_largest_size(MAX_STORED_TASK_BYTES + 1)
    with pytest.raises(PayloadTooLarge) as caught:
        submit(scheduler, request(payload=payload))
    assert f"{MAX_STORED_TASK_BYTES + 1:,} bytes" in caught.value.message
    assert f"{MAX_STORED_TASK_BYTES:,} bytes" in caught.value.message
    assert log == []  # no trigger, no message, no row


def test_a_task_at_the_stored_size_limit_is_scheduled(scheduler, store):
    payload = _payload_of_largest_size(MAX_STORED_TASK_BYTES)
    task = submit(scheduler, request(payload=payload))
    assert largest_stored_size(task) == MAX_STORED_TASK_BYTES
    assert store.tasks[TASK_ID].status is TaskStatus.SCHEDULED


# --- invalid requests touch nothing -----------------------------------------------------------


def test_invalid_request_names_every_field_and_touches_nothing(scheduler, store, far, log):
    bad = request(
        run_at="2030-05-19T16:00:00Z",
        payload={"url": "ftp://example.com", "timeout_seconds": 99, "extra": 1},
    )
    with pytest.raises(InvalidRequest) as caught:
        submit(scheduler, bad)
    assert [p.field for p in caught.value.problems] == [
        "payload.extra",
        "payload.url",
        "payload.timeout_seconds",
        "run_at",
    ]
    assert caught.value.message == "Invalid request: 4 fields are invalid."
    assert log == []
    assert store.tasks == {}
    assert far.armed == {}


def test_unknown_action_and_bad_run_at_are_both_reported(scheduler, log):
    with pytest.raises(InvalidRequest) as caught:
        submit(scheduler, request(action="email", run_at="cron(0 18 * * * *)"))
    assert [p.field for p in caught.value.problems] == ["action", "run_at"]
    assert 'supported: "webhook"' in caught.value.problems[0].problem
    assert log == []


def test_missing_everything_is_reported_at_once(scheduler, log):
    with pytest.raises(InvalidRequest) as caught:
        submit(scheduler, ScheduleRequest(action="webhook", payload=None, run_at=None))
    assert [(p.field, p.problem) for p in caught.value.problems] == [
        ("payload", "is required"),
        ("run_at", "is required"),
    ]
    assert log == []


def test_retry_max_attempts_is_kept_on_the_task(scheduler, store):
    task = submit(scheduler, request(retry={"max_attempts": 12}))
    assert task.max_attempts == 12
    assert store.tasks[TASK_ID].max_attempts == 12
    assert task_view(task)["retry"] == {"max_attempts": 12}


def test_bad_retry_is_reported_with_the_other_problems_and_touches_nothing(scheduler, log):
    bad = request(run_at="2030-05-19T16:00:00Z", retry={"max_attempts": 0})
    with pytest.raises(InvalidRequest) as caught:
        submit(scheduler, bad)
    assert [p.field for p in caught.value.problems] == ["run_at", "retry.max_attempts"]
    assert log == []


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.8", "169.254.169.254", "::1"])
def test_target_resolving_to_a_forbidden_address_is_refused_and_touches_nothing(
    scheduler, store, log, address
):
    resolved = []

    def resolver(host, port):
        resolved.append((host, port))
        return [address]

    with pytest.raises(InvalidRequest) as caught:
        submit(scheduler, request(), registry(resolver))
    [problem] = caught.value.problems
    assert problem.field == "payload.url"
    assert problem.problem.startswith("is refused")
    assert address in problem.problem
    assert resolved == [("example.com", 443)]
    assert log == []
    assert store.tasks == {}


def test_loopback_target_is_scheduled_when_loopback_is_allowed(scheduler):
    actions = registry(lambda host, port: ["127.0.0.1"], allow_loopback=True)
    task = submit(scheduler, request(payload={"url": "http://localhost:8080/hook"}), actions)
    assert task.status is TaskStatus.SCHEDULED


# --- get --------------------------------------------------------------------------------------


def test_get_returns_a_scheduled_task(scheduler):
    scheduled = submit(scheduler, request())
    task = scheduler.get(TASK_ID)
    assert task.status is TaskStatus.SCHEDULED
    assert task.task_id == scheduled.task_id
    assert task.trigger is TriggerKind.RULE


def test_get_of_an_unknown_id_is_not_found(scheduler, log):
    with pytest.raises(TaskNotFound) as caught:
        scheduler.get("9b2f6c1e-4d3a-4b5c-8d7e-0f1a2b3c4d5e")
    assert caught.value.task_id == "9b2f6c1e-4d3a-4b5c-8d7e-0f1a2b3c4d5e"
    assert log == [("get", "9b2f6c1e-4d3a-4b5c-8d7e-0f1a2b3c4d5e")]


@pytest.mark.parametrize(
    "task_id",
    ["not-a-uuid", "", "123", TASK_ID.replace("-", ""), "{" + TASK_ID + "}", "urn:uuid:" + TASK_ID],
)
def test_get_of_a_non_uuid_is_not_found_without_reading(scheduler, log, task_id):
    with pytest.raises(TaskNotFound) as caught:
        scheduler.get(task_id)
    assert caught.value.message == f"Task {task_id} was not found."
    assert log == []


def leave_a_pending_row(scheduler, store):
    """A `pending` row, as older versions wrote before arming (never acknowledged to a client)."""
    submit(scheduler, request())
    store.tasks[TASK_ID] = store.tasks[TASK_ID].with_changes(status=TaskStatus.PENDING)


# --- cancel -----------------------------------------------------------------------------------


def test_cancel_of_a_scheduled_task_writes_cancelled_then_disarms(scheduler, store, far, log):
    submit(scheduler, request())
    log.clear()
    task = scheduler.cancel(TASK_ID)
    assert log == [("get", TASK_ID), ("cancel", TASK_ID), ("disarm", TASK_ID)]
    assert task.status is TaskStatus.CANCELLED
    assert task.task_id == TASK_ID
    assert task.next_run_at is None
    assert store.tasks[TASK_ID].status is TaskStatus.CANCELLED
    assert far.armed == {}
    # Kept for the executor's retention, like any finished task (the settings' default: 30 days).
    assert store.cancels == [(TASK_ID, NOW, timedelta(days=30))]


def test_cancel_of_a_queued_task_has_no_trigger_to_remove(scheduler, store, log, service_log):
    # The queued message cannot be taken back: it finds the task cancelled and does nothing.
    submit(scheduler, near_request())
    log.clear()
    assert scheduler.cancel(TASK_ID).status is TaskStatus.CANCELLED
    assert log == [("get", TASK_ID), ("cancel", TASK_ID)]
    assert store.tasks[TASK_ID].status is TaskStatus.CANCELLED
    assert ("info", "task cancelled", {"task_id": TASK_ID}) in service_log.lines


def test_cancel_expires_the_task_after_the_retention_it_is_given(store, far, queue):
    scheduler = Scheduler(
        store, fake_arming(far, queue), clock(), new_id=lambda: TASK_ID, retention=timedelta(days=7)
    )
    submit(scheduler, request())
    scheduler.cancel(TASK_ID)
    assert store.cancels == [(TASK_ID, NOW, timedelta(days=7))]


def test_cancel_repeated_answers_the_same(scheduler, store, log):
    submit(scheduler, request())
    first = scheduler.cancel(TASK_ID)
    log.clear()
    second = scheduler.cancel(TASK_ID)
    assert (second.task_id, second.status) == (first.task_id, TaskStatus.CANCELLED)
    # No second write; the trigger is removed again, in case the first removal failed.
    assert log == [("get", TASK_ID), ("disarm", TASK_ID)]
    assert len(store.cancels) == 1


def test_cancel_answers_cancelled_when_the_trigger_cannot_be_removed(
    scheduler, store, far, service_log
):
    submit(scheduler, request())
    far.fail_disarm = disarm_failure()
    task = scheduler.cancel(TASK_ID)
    # The task is cancelled anyway: its trigger, if it fires, finds it so and removes itself.
    assert task.status is TaskStatus.CANCELLED
    assert store.tasks[TASK_ID].status is TaskStatus.CANCELLED
    assert (
        "exception",
        "cancel: could not remove the trigger",
        {"task_id": TASK_ID},
    ) in service_log.lines


def test_cancel_of_an_unknown_task_is_not_found(scheduler, store):
    with pytest.raises(TaskNotFound):
        scheduler.cancel(TASK_ID)
    assert store.cancels == []
    with pytest.raises(TaskNotFound):
        scheduler.cancel("not-a-uuid")


def test_a_pending_task_from_an_older_version_is_not_found_nor_cancelled(scheduler, store, far):
    leave_a_pending_row(scheduler, store)
    with pytest.raises(TaskNotFound):
        scheduler.get(TASK_ID)
    with pytest.raises(TaskNotFound):
        scheduler.cancel(TASK_ID)
    assert store.tasks[TASK_ID].status is TaskStatus.PENDING
    assert store.cancels == []
    assert far.disarmed == []


@pytest.mark.parametrize(
    ("status", "why"),
    [
        (TaskStatus.RUNNING, "it is running"),
        (TaskStatus.COMPLETED, "it has finished"),
        (TaskStatus.FAILED, "it has finished"),
    ],
)
def test_cancel_of_a_running_or_finished_task_is_a_conflict(scheduler, store, far, status, why):
    submit(scheduler, request())
    store.tasks[TASK_ID] = store.tasks[TASK_ID].with_changes(status=status)
    with pytest.raises(TaskConflict) as caught:
        scheduler.cancel(TASK_ID)
    assert why in caught.value.message
    assert TASK_ID in caught.value.message
    assert store.cancels == []
    assert store.tasks[TASK_ID].status is status
    assert far.disarmed == []


def test_cancel_losing_to_a_concurrent_claim_is_a_conflict(scheduler, store, far):
    task = submit(scheduler, request())
    store.before_cancel = lambda: store.claim(TASK_ID, task.next_run_at, FAR)
    with pytest.raises(TaskConflict) as caught:
        scheduler.cancel(TASK_ID)
    assert "it is running" in caught.value.message
    assert store.tasks[TASK_ID].status is TaskStatus.RUNNING
    assert far.armed == {TASK_ID: FAR}  # the run goes on; its trigger is the executor's to remove
    assert far.disarmed == []


def test_cancel_whose_write_landed_with_its_answer_lost_is_a_success(scheduler, store, far):
    # A retried write finds its own first try applied: the condition fails on `cancelled`.
    submit(scheduler, request())
    store.before_cancel = lambda: store.tasks.update(
        {TASK_ID: store.tasks[TASK_ID].with_changes(status=TaskStatus.CANCELLED)}
    )
    assert scheduler.cancel(TASK_ID).status is TaskStatus.CANCELLED
    assert far.armed == {}


def test_cancel_whose_write_fails_changes_nothing(scheduler, store, far):
    submit(scheduler, request())
    store.fail_on.add("cancel")
    with pytest.raises(DependencyFailure):
        scheduler.cancel(TASK_ID)
    assert store.tasks[TASK_ID].status is TaskStatus.SCHEDULED
    assert far.armed == {TASK_ID: FAR}


# --- the package on its own -------------------------------------------------------------------

ORPHAN_SCRIPT = textwrap.dedent(
    """
    from task_scheduler.actions import validators
    from task_scheduler.model import TriggerKind
    from task_scheduler.schedule_request import ScheduleRequest
    from task_scheduler.scheduling import Scheduler
    from datetime import UTC, datetime

    class Clock:
        def now(self):
            return datetime(2030, 5, 19, 17, 0, tzinfo=UTC)

    class Store:
        def create(self, task): pass

    class Triggers:
        def arm(self, task_id, due, now, current=None): return TriggerKind.RULE

    actions = validators(allow_loopback=False, resolver=lambda host, port: ["93.184.215.14"])
    request = ScheduleRequest("webhook", {"url": "https://example.com"}, "2030-05-19T18:00:00Z")
    scheduler = Scheduler(Store(), Triggers(), Clock())
    task = scheduler.schedule(request.to_command(actions, Clock().now()))
    print(task.status.value)
    """
)


def test_scheduler_works_without_a_handler_logger():
    # The service is meant to be usable with its collaborators passed in, without a Lambda
    # handler having created a parent Powertools logger first. Run in a fresh interpreter, as
    # the parent logger created for the other tests cannot be removed again.
    layer = Path(__file__).resolve().parents[2] / "scheduler_layer"
    env = {**os.environ, "PYTHONPATH": str(layer)}
    result = subprocess.run(
        [sys.executable, "-c", ORPHAN_SCRIPT],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-1500:]
    assert result.stdout.strip() == "scheduled"


def test_a_row_read_back_absent_has_its_trigger_removed_even_if_the_delete_fails(
    scheduler, store, far, log
):
    # The read shows the write did not land: whatever the delete answers, nothing may stay armed.
    store.fail_on.update({"create", "delete_unacknowledged"})
    with pytest.raises(DependencyFailure, match="create"):
        submit(scheduler, request())
    assert log == [*WRITE_FAILED, *UNDO]
    assert far.armed == {}
    assert store.tasks == {}
