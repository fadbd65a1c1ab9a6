"""In-memory stand-ins for the services' collaborators (the ports), shared by the unit tests of
scheduling and execution: no AWS, no mocking library, no sleeps."""

from __future__ import annotations

from datetime import timedelta

from task_scheduler.arming import OccurrenceArming
from task_scheduler.errors import DependencyFailure
from task_scheduler.model import MAX_RECORDED_ATTEMPTS, TaskStatus, TriggerKind
from task_scheduler.ports import Claim
from task_scheduler.signing import SigningSecret
from task_scheduler.timing import format_utc


class StaticSecret:
    """A signing secret given as text (`whsec_...`), instead of one read from Secrets Manager."""

    def __init__(self, secret: str) -> None:
        self._secret = SigningSecret(secret)

    def get(self) -> SigningSecret:
        return self._secret


class FakeClock:
    """now() is settable (`current`); sleep(s) advances it by exactly s and records s.

    `can_sleep=False`: for a service that must never sleep, whose sleep fails the test.
    """

    def __init__(self, now, can_sleep=True):
        self.current = now
        self.can_sleep = can_sleep
        self.sleeps = []

    def now(self):
        return self.current

    def sleep(self, seconds):
        if not self.can_sleep:
            raise AssertionError("this service must not sleep")
        assert seconds > 0
        self.sleeps.append(seconds)
        self.current += timedelta(seconds=seconds)


class FakeStore:
    """The TaskRepository over a dict, with the same conditions as DynamoDB.

    Every call goes to `log` (shared with the triggers, to check the order of the scheduling
    writes). The execute-side writes also go to `events` (shared with the retry queue and the
    dead letters, to check the order of the execution writes) and to `claims`, `records` and
    `retries`.

    A name in `fail_on` makes that call raise DependencyFailure before it changes anything; a
    name in `ambiguous_on` makes it apply its change and then raise (a write that succeeded but
    whose answer was lost, e.g. a timeout). `lose_claims` / `lose_records`: another invocation
    won, so claims / records are refused. `before_cancel`: a function run inside `cancel` before
    its condition is checked (a concurrent claim landing first).
    """

    def __init__(self, *tasks, log=None):
        self.log = [] if log is None else log
        self.tasks = {task.task_id: task for task in tasks}
        self.fail_on = set()
        self.ambiguous_on = set()
        self.claims = []
        self.records = []
        self.retries = []
        self.events = []
        self.lose_claims = False
        self.lose_records = False
        self.cancels = []
        self.before_cancel = None

    def _enter(self, name, *args):
        self.log.append((name, *args))
        if name in self.fail_on:
            raise DependencyFailure(f"Could not {name}: DynamoDB answered InternalServerError.")

    def _leave(self, name):
        if name in self.ambiguous_on:
            raise DependencyFailure(f"Could not {name}: the answer timed out.")

    def get(self, task_id):
        self._enter("get", task_id)
        return self.tasks.get(task_id)

    # -- scheduling ------------------------------------------------------------------------------

    def create(self, task):
        self._enter("create", task.task_id, task.trigger)
        assert task.status is TaskStatus.SCHEDULED
        self.tasks[task.task_id] = task
        self._leave("create")

    def delete_unacknowledged(self, task_id):
        # The same condition as the real store: pending or scheduled, never once it runs.
        self._enter("delete_unacknowledged", task_id)
        task = self.tasks.get(task_id)
        if task is not None and task.status in (TaskStatus.PENDING, TaskStatus.SCHEDULED):
            del self.tasks[task_id]

    def cancel(self, task_id, now, retention):
        # The same condition as the real store: only a `scheduled` or `paused` task is cancelled.
        self._enter("cancel", task_id)
        self.cancels.append((task_id, now, retention))
        if self.before_cancel is not None:
            self.before_cancel()
        task = self.tasks.get(task_id)
        if task is None or task.status not in (TaskStatus.SCHEDULED, TaskStatus.PAUSED):
            return False
        self.tasks[task_id] = task.with_changes(
            status=TaskStatus.CANCELLED, updated_at=format_utc(now), next_run_at=None
        )
        self._leave("cancel")
        return True

    # -- execution -------------------------------------------------------------------------------

    def claim(self, task_id, due, now):
        self._enter("claim", task_id, due)
        self.claims.append((task_id, due, now))
        task = self.tasks.get(task_id)
        if self.lose_claims or task is None:
            return Claim(current=task)
        if task.status is not TaskStatus.SCHEDULED or task.next_run_at != due:
            return Claim(current=task)
        claimed = task.with_changes(status=TaskStatus.RUNNING, updated_at=format_utc(now))
        self.tasks[task_id] = claimed
        return Claim(claimed=claimed)

    def record_run(
        self, task, status, attempt, now, *, next_run_at, error, retention, trigger=None
    ):
        self._enter("record_run", task.task_id, status)
        self.events.append(("record_run", status))
        self.records.append(
            {
                "status": status,
                "attempt": attempt,
                "now": now,
                "next_run_at": next_run_at,
                "error": error,
                "retention": retention,
                "trigger": trigger,
            }
        )
        current = self.tasks.get(task.task_id)
        # Conditional on `running`, like the real write; False when another invocation won.
        if self.lose_records or current is None or current.status is not TaskStatus.RUNNING:
            return False
        self.tasks[task.task_id] = current.with_changes(
            status=status,
            updated_at=format_utc(now),
            attempts=(*task.attempts, attempt)[-MAX_RECORDED_ATTEMPTS:],
            runs=current.runs + 1,
            next_run_at=next_run_at,
            last_error=error,
            run_attempts=0,
            trigger=trigger or current.trigger,
        )
        return True

    def record_retry(self, task, attempt, retry_at, now, error):
        self._enter("record_retry", task.task_id, retry_at)
        self.events.append(("record_retry", retry_at))
        self.retries.append({"attempt": attempt, "retry_at": retry_at, "now": now, "error": error})
        current = self.tasks.get(task.task_id)
        if self.lose_records or current is None or current.status is not TaskStatus.RUNNING:
            return False
        self.tasks[task.task_id] = current.with_changes(
            status=TaskStatus.SCHEDULED,
            updated_at=format_utc(now),
            attempts=(*task.attempts, attempt)[-MAX_RECORDED_ATTEMPTS:],
            run_attempts=task.run_attempts + 1,
            next_run_at=retry_at,
            last_error=error or "failed",
        )
        return True


class FakeFarTrigger:
    """A backend's FarTrigger (`arming`): a rule (`removes_itself_after_firing` False) or a
    schedule (True). Every call goes to `log`; arms are kept in `armed` (task_id → due).
    `fail_arm` / `fail_disarm`: an exception to raise (before changing anything)."""

    def __init__(self, log=None, kind=TriggerKind.RULE, removes_itself_after_firing=False):
        self.log = [] if log is None else log
        self.kind = kind
        self.removes_itself_after_firing = removes_itself_after_firing
        self.armed = {}
        self.disarmed = []
        self.fail_arm = None
        self.fail_disarm = None

    def arm(self, task_id, due):
        self.log.append(("arm", task_id))
        if self.fail_arm is not None:
            raise self.fail_arm
        self.armed[task_id] = due

    def disarm(self, task_id):
        self.log.append(("disarm", task_id))
        if self.fail_disarm is not None:
            raise self.fail_disarm
        self.disarmed.append(task_id)
        self.armed.pop(task_id, None)


def fake_arming(far=None, queue=None):
    """The real OccurrenceArming over a fake far trigger and a fake queue."""
    far = far if far is not None else FakeFarTrigger()
    queue = queue if queue is not None else FakeRetryQueue([])
    return OccurrenceArming(far, queue)


class FakeRetryQueue:
    """The RetryArming port; `events` is shared with the store to check the order of writes."""

    def __init__(self, events, fail=False):
        self.events = events
        self.fail = fail
        self.armed = []
        self.redelivered = []

    def arm_at(self, task_id, at, now):
        self.events.append(("arm_at", task_id))
        if self.fail:
            raise DependencyFailure("Could not queue the task's next attempt.")
        self.armed.append((task_id, at, now))

    def redeliver(self, task_id, due, delay_seconds):
        self.events.append(("redeliver", task_id))
        if self.fail:
            raise DependencyFailure("Could not queue the task's next attempt.")
        self.redelivered.append((task_id, due, delay_seconds))


class FakeDeadLetters:
    """The DeadLetters port; `events` is shared with the store to check the order of writes."""

    def __init__(self, events, fail=False):
        self.events = events
        self.fail = fail
        self.sent = []

    def send(self, task_id, run_at, error, attempts, now):
        self.events.append(("dead_letter", task_id))
        if self.fail:
            raise DependencyFailure("Could not send the failed task to the dead-letter queue.")
        self.sent.append((task_id, run_at, error, attempts, now))


class RecordingLogger:
    """Stands in for a service module's logger: keeps (level, message) of every call."""

    def __init__(self):
        self.lines = []

    def __getattr__(self, level):
        def record(message, *args, **kwargs):
            self.lines.append((level, message))

        return record
