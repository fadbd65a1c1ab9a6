"""Unit tests for scheduling.Scheduler with small in-memory fakes (no AWS), and for the edge that
turns a request into its command (ScheduleRequest.to_command).

Contract sections 1 to 3: a 201 only once the trigger is armed; bad input and failed dependencies
leave nothing behind; unknown and never-acknowledged tasks are 404; a cancel removes the trigger
of a `scheduled` task, repeats as the same answer, and is a 409 once the task runs or finished.
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
    FieldProblem,
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
from tests.support.fakes import FakeClock, FakeStore, FakeTriggers, RecordingLogger

NOW = datetime(2030, 5, 19, 17, 0, 0, tzinfo=UTC)
TASK_ID = "123e4567-e89b-42d3-a456-426614174000"
PAYLOAD = {"url": "https://example.com/hooks/report", "data": {"msg": "Hello"}}

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
    return []


@pytest.fixture
def store(log):
    return FakeStore(log=log)


@pytest.fixture
def triggers(log):
    return FakeTriggers(log)


@pytest.fixture
def scheduler(store, triggers):
    return Scheduler(store, triggers, clock(), new_id=lambda: TASK_ID)


def request(run_at="2030-05-19T19:56:00+02:00", payload=PAYLOAD, action="webhook", retry=None):
    return ScheduleRequest(action=action, payload=payload, run_at=run_at, retry=retry)


def submit(scheduler, scheduled, actions=None):
    """What the API does with a request: checked at the edge (an invalid one raises
    InvalidRequest there, before the scheduler is reached), then its command scheduled."""
    command = scheduled.to_command(actions or registry(), NOW)
    return scheduler.schedule(command)


# --- success ----------------------------------------------------------------------------------


def test_success_writes_pending_then_arms_then_marks_scheduled(scheduler, store, triggers, log):
    command = request().to_command(registry(), NOW)
    task = scheduler.schedule(command)
    schedule = command.schedule
    assert log == [
        ("create_pending", TASK_ID),
        ("arm", TASK_ID),
        ("mark_scheduled", TASK_ID, TriggerKind.RULE),
    ]
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
    assert schedule.run_at == "2030-05-19T17:56:00Z"
    assert triggers.armed == {
        TASK_ID: (datetime(2030, 5, 19, 17, 56, tzinfo=UTC), None, False, NOW)
    }
    assert store.tasks[TASK_ID].status is TaskStatus.SCHEDULED


def test_cron_task_arms_the_expression_as_recurring(scheduler, triggers):
    command = request(run_at="cron(0/15 * * * ? *)").to_command(registry(), NOW)
    task = scheduler.schedule(command)
    schedule = command.schedule
    assert task.run_at == "cron(0/15 * * * ? *)"
    assert task.next_run_at == "2030-05-19T17:15:00Z"
    assert task.recurring is True
    assert schedule.recurring is True
    assert triggers.armed[TASK_ID] == (
        datetime(2030, 5, 19, 17, 15, tzinfo=UTC),
        "cron(0/15 * * * ? *)",
        True,
        NOW,
    )


def test_single_moment_cron_is_armed_as_a_one_shot(scheduler, triggers):
    task = submit(scheduler, request(run_at="cron(30 9 1 1 ? 2031)"))
    assert task.recurring is False
    assert triggers.armed[TASK_ID][1:3] == ("cron(30 9 1 1 ? 2031)", False)


def test_default_ids_are_uuid4(store, triggers):
    import uuid

    scheduler = Scheduler(store, triggers, clock())
    first = submit(scheduler, request())
    second = submit(scheduler, request())
    assert first.task_id != second.task_id
    for task_id in (first.task_id, second.task_id):
        assert uuid.UUID(task_id).version == 4
        assert str(uuid.UUID(task_id)) == task_id


# --- failures leave nothing behind ------------------------------------------------------------

UNDO = [("disarm", TASK_ID), ("delete_unacknowledged", TASK_ID)]


@pytest.fixture
def service_log(monkeypatch):
    recorder = RecordingLogger()
    monkeypatch.setattr(scheduling, "logger", recorder)
    return recorder


def test_failed_arm_propagates_and_undoes_both_steps(scheduler, store, triggers, log):
    triggers.fail_arm = failure = arm_failure()
    with pytest.raises(DependencyFailure) as caught:
        submit(scheduler, request())
    assert caught.value is failure
    # A failed arm may still have left a trigger behind (an ambiguous answer): disarm it too.
    assert log == [("create_pending", TASK_ID), ("arm", TASK_ID), *UNDO]
    assert store.tasks == {}
    assert triggers.armed == {}


def test_arm_rejected_as_invalid_is_a_400_and_undone(scheduler, store, triggers, log):
    # EventBridge refused the expression our grammar accepted: the client's fault, not a 503.
    rejected = InvalidRequest(
        [FieldProblem("run_at", "was rejected by EventBridge as a schedule expression")]
    )
    triggers.fail_arm = rejected
    with pytest.raises(InvalidRequest) as caught:
        submit(scheduler, request(run_at="cron(0/15 * * * ? *)"))
    assert caught.value is rejected
    assert log == [("create_pending", TASK_ID), ("arm", TASK_ID), *UNDO]
    assert store.tasks == {}


def test_failed_mark_scheduled_disarms_and_deletes_the_row(scheduler, store, triggers, log):
    store.fail_on.add("mark_scheduled")
    with pytest.raises(DependencyFailure, match="mark_scheduled"):
        submit(scheduler, request())
    assert log == [
        ("create_pending", TASK_ID),
        ("arm", TASK_ID),
        ("mark_scheduled", TASK_ID, TriggerKind.RULE),
        ("get", TASK_ID),  # read back: did the write land after all?
        *UNDO,
    ]
    assert store.tasks == {}
    assert triggers.armed == {}


def test_ambiguous_mark_scheduled_is_a_success(scheduler, store, triggers, log):
    # The write landed (the row is `scheduled`) but every answer was lost: reading it back
    # shows the task scheduled with its trigger armed, so the client gets its 201.
    store.ambiguous_on.add("mark_scheduled")
    task = submit(scheduler, request())
    assert task.status is TaskStatus.SCHEDULED
    assert log == [
        ("create_pending", TASK_ID),
        ("arm", TASK_ID),
        ("mark_scheduled", TASK_ID, TriggerKind.RULE),
        ("get", TASK_ID),
    ]
    assert store.tasks[TASK_ID].status is TaskStatus.SCHEDULED
    assert TASK_ID in triggers.armed


def test_failed_create_pending_arms_nothing(scheduler, store, triggers, log):
    store.fail_on.add("create_pending")
    with pytest.raises(DependencyFailure):
        submit(scheduler, request())
    assert log == [("create_pending", TASK_ID), ("delete_unacknowledged", TASK_ID)]
    assert triggers.armed == {}


def test_failing_delete_in_undo_still_raises_the_original_failure(
    scheduler, store, triggers, log, service_log
):
    triggers.fail_arm = failure = arm_failure()
    store.fail_on.add("delete_unacknowledged")
    with pytest.raises(DependencyFailure) as caught:
        submit(scheduler, request())
    assert caught.value is failure
    assert log[-2:] == UNDO
    assert service_log.lines == [("exception", "undo: could not remove the row")]
    # What is left is only a pending row, which a client never sees.
    assert store.tasks[TASK_ID].status is TaskStatus.PENDING
    with pytest.raises(TaskNotFound):
        scheduler.get(TASK_ID)


def test_failing_disarm_in_undo_still_deletes_the_row(scheduler, store, triggers, log, service_log):
    store.fail_on.add("mark_scheduled")
    triggers.fail_disarm = disarm_failure()
    with pytest.raises(DependencyFailure, match="mark_scheduled"):
        submit(scheduler, request())
    assert log[-2:] == UNDO
    assert store.tasks == {}
    assert service_log.lines == [("exception", "undo: could not remove the trigger")]
    # The trigger stays armed; when it fires, the execute side finds no task and removes it.
    assert TASK_ID in triggers.armed


def test_failed_create_pending_removes_what_may_have_landed(scheduler, store, triggers, log):
    # A PutItem applied with every answer lost leaves a row: it is deleted before the 503.
    store.ambiguous_on.add("create_pending")
    with pytest.raises(DependencyFailure):
        submit(scheduler, request())
    assert log == [("create_pending", TASK_ID), ("delete_unacknowledged", TASK_ID)]
    assert store.tasks == {}
    assert triggers.armed == {}


def test_both_undo_steps_failing_still_raise_the_original_failure(
    scheduler, store, triggers, log, service_log
):
    triggers.fail_arm = failure = arm_failure()
    triggers.fail_disarm = disarm_failure()
    store.fail_on.add("delete_unacknowledged")
    with pytest.raises(DependencyFailure) as caught:
        submit(scheduler, request())
    assert caught.value is failure
    assert log == [("create_pending", TASK_ID), ("arm", TASK_ID), *UNDO]
    assert service_log.lines == [
        ("exception", "undo: could not remove the trigger"),
        ("exception", "undo: could not remove the row"),
    ]


# --- the stored-size rule ----------------------------------------------------------------------


def _payload_of_largest_size(size):
    """A payload whose task, grown to its largest, takes exactly `size` bytes: one more byte of
    `data` is one more stored byte."""
    probe_store = FakeStore()
    submit(Scheduler(probe_store, FakeTriggers(), clock(), new_id=lambda: TASK_ID), request())
    without_data = {**PAYLOAD, "data": ""}
    probe = probe_store.tasks[TASK_ID].with_changes(payload=without_data)
    return {**PAYLOAD, "data": "x" * (size - largest_stored_size(probe))}


def test_a_task_that_could_outgrow_storage_is_refused_before_anything_is_written(scheduler, log):
    payload = _payload_of_largest_size(MAX_STORED_TASK_BYTES + 1)
    with pytest.raises(PayloadTooLarge) as caught:
        submit(scheduler, request(payload=payload))
    assert f"{MAX_STORED_TASK_BYTES + 1:,} bytes" in caught.value.message
    assert f"{MAX_STORED_TASK_BYTES:,} bytes" in caught.value.message
    assert log == []


def test_a_task_at_the_stored_size_limit_is_scheduled(scheduler, store):
    payload = _payload_of_largest_size(MAX_STORED_TASK_BYTES)
    task = submit(scheduler, request(payload=payload))
    assert largest_stored_size(task) == MAX_STORED_TASK_BYTES
    assert store.tasks[TASK_ID].status is TaskStatus.SCHEDULED


# --- invalid requests touch nothing -----------------------------------------------------------


def test_invalid_request_names_every_field_and_touches_nothing(scheduler, store, triggers, log):
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
    assert triggers.armed == {}


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
    store, triggers, log, address
):
    resolved = []

    def resolver(host, port):
        resolved.append((host, port))
        return [address]

    scheduler = Scheduler(store, triggers, clock(), lambda: TASK_ID)
    with pytest.raises(InvalidRequest) as caught:
        submit(scheduler, request(), registry(resolver))
    [problem] = caught.value.problems
    assert problem.field == "payload.url"
    assert problem.problem.startswith("is refused")
    assert address in problem.problem
    assert resolved == [("example.com", 443)]
    assert log == []
    assert store.tasks == {}


def test_loopback_target_is_scheduled_when_loopback_is_allowed(store, triggers):
    actions = registry(lambda host, port: ["127.0.0.1"], allow_loopback=True)
    scheduler = Scheduler(store, triggers, clock(), lambda: TASK_ID)
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


def test_get_of_a_pending_task_is_not_found(scheduler, store, triggers):
    triggers.fail_arm = arm_failure()
    store.fail_on.add("delete_unacknowledged")  # leaves the pending row behind
    with pytest.raises(DependencyFailure):
        submit(scheduler, request())
    assert store.tasks[TASK_ID].status is TaskStatus.PENDING
    with pytest.raises(TaskNotFound):
        scheduler.get(TASK_ID)


# --- cancel -----------------------------------------------------------------------------------


def test_cancel_of_a_scheduled_task_writes_cancelled_then_disarms(scheduler, store, triggers, log):
    submit(scheduler, request())
    log.clear()
    task = scheduler.cancel(TASK_ID)
    assert log == [("get", TASK_ID), ("cancel", TASK_ID), ("disarm", TASK_ID)]
    assert task.status is TaskStatus.CANCELLED
    assert task.task_id == TASK_ID
    assert task.next_run_at is None
    assert store.tasks[TASK_ID].status is TaskStatus.CANCELLED
    assert triggers.armed == {}
    # Kept for the executor's retention, like any finished task (the settings' default: 30 days).
    assert store.cancels == [(TASK_ID, NOW, timedelta(days=30))]


def test_cancel_expires_the_task_after_the_retention_it_is_given(store, triggers):
    scheduler = Scheduler(
        store, triggers, clock(), new_id=lambda: TASK_ID, retention=timedelta(days=7)
    )
    submit(scheduler, request())
    scheduler.cancel(TASK_ID)
    assert store.cancels == [(TASK_ID, NOW, timedelta(days=7))]


def test_cancel_of_a_recurring_task_disarms_its_trigger(scheduler, store, triggers):
    submit(scheduler, request(run_at="cron(0/15 * * * ? *)"))
    assert scheduler.cancel(TASK_ID).status is TaskStatus.CANCELLED
    assert triggers.armed == {}


def test_cancel_repeated_answers_the_same(scheduler, store, triggers, log):
    submit(scheduler, request())
    first = scheduler.cancel(TASK_ID)
    log.clear()
    second = scheduler.cancel(TASK_ID)
    assert (second.task_id, second.status) == (first.task_id, TaskStatus.CANCELLED)
    # No second write; the trigger is removed again, in case the first removal failed.
    assert log == [("get", TASK_ID), ("disarm", TASK_ID)]
    assert len(store.cancels) == 1


def test_cancel_answers_cancelled_when_the_trigger_cannot_be_removed(
    scheduler, store, triggers, service_log
):
    submit(scheduler, request())
    triggers.fail_disarm = disarm_failure()
    task = scheduler.cancel(TASK_ID)
    # The task is cancelled anyway: its trigger, if it fires, finds it so and removes itself.
    assert task.status is TaskStatus.CANCELLED
    assert store.tasks[TASK_ID].status is TaskStatus.CANCELLED
    assert ("exception", "cancel: could not remove the trigger") in service_log.lines


def test_cancel_of_an_unknown_task_is_not_found(scheduler, store, log):
    with pytest.raises(TaskNotFound):
        scheduler.cancel(TASK_ID)
    assert store.cancels == []
    with pytest.raises(TaskNotFound):
        scheduler.cancel("not-a-uuid")


def test_cancel_of_a_pending_task_is_not_found(scheduler, store, triggers):
    triggers.fail_arm = arm_failure()
    store.fail_on.add("delete_unacknowledged")  # leaves the pending row behind
    with pytest.raises(DependencyFailure):
        submit(scheduler, request())
    with pytest.raises(TaskNotFound):
        scheduler.cancel(TASK_ID)
    assert store.tasks[TASK_ID].status is TaskStatus.PENDING
    assert store.cancels == []


@pytest.mark.parametrize(
    ("status", "why"),
    [
        (TaskStatus.RUNNING, "it is running"),
        (TaskStatus.COMPLETED, "it has finished"),
        (TaskStatus.FAILED, "it has finished"),
    ],
)
def test_cancel_of_a_running_or_finished_task_is_a_conflict(
    scheduler, store, triggers, status, why
):
    submit(scheduler, request())
    store.tasks[TASK_ID] = store.tasks[TASK_ID].with_changes(status=status)
    triggers.disarmed.clear()
    with pytest.raises(TaskConflict) as caught:
        scheduler.cancel(TASK_ID)
    assert why in caught.value.message
    assert TASK_ID in caught.value.message
    assert store.cancels == []
    assert store.tasks[TASK_ID].status is status
    assert triggers.disarmed == []


def test_cancel_losing_to_a_concurrent_claim_is_a_conflict(scheduler, store, triggers):
    task = submit(scheduler, request())
    store.before_cancel = lambda: store.claim(TASK_ID, task.next_run_at, NOW)
    with pytest.raises(TaskConflict) as caught:
        scheduler.cancel(TASK_ID)
    assert "it is running" in caught.value.message
    assert store.tasks[TASK_ID].status is TaskStatus.RUNNING
    assert TASK_ID in triggers.armed  # the run goes on; its trigger is the executor's to remove


def test_cancel_whose_write_landed_with_its_answer_lost_is_a_success(scheduler, store, triggers):
    # A retried write finds its own first try applied: the condition fails on `cancelled`.
    submit(scheduler, request())
    store.before_cancel = lambda: store.tasks.update(
        {TASK_ID: store.tasks[TASK_ID].with_changes(status=TaskStatus.CANCELLED)}
    )
    assert scheduler.cancel(TASK_ID).status is TaskStatus.CANCELLED
    assert triggers.armed == {}


def test_cancel_whose_write_fails_changes_nothing(scheduler, store, triggers):
    submit(scheduler, request())
    store.fail_on.add("cancel")
    with pytest.raises(DependencyFailure):
        scheduler.cancel(TASK_ID)
    assert store.tasks[TASK_ID].status is TaskStatus.SCHEDULED
    assert TASK_ID in triggers.armed


# --- the package on its own -------------------------------------------------------------------

ORPHAN_SCRIPT = textwrap.dedent(
    """
    from datetime import UTC, datetime, timedelta

    from task_scheduler.actions import validators
    from task_scheduler.model import TriggerKind
    from task_scheduler.schedule_request import ScheduleRequest
    from task_scheduler.scheduling import Scheduler

    class Clock:
        def now(self):
            return datetime(2030, 5, 19, 17, 0, tzinfo=UTC)

    class Store:
        def create_pending(self, task, now): pass
        def mark_scheduled(self, task_id, trigger, now): pass

    class Triggers:
        def arm(self, task_id, fire_at, cron, recurring, now, *, timezone): return TriggerKind.RULE

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
