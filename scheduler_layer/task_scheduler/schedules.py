"""The `scheduler` trigger backend: one EventBridge Scheduler schedule per task, in the stack's own
schedule group, named by the task id (contract section 7). Unlike rules there is no quota of a
few hundred shared with the account (a million schedules per account and region by default), and
a schedule reads its cron in any time zone (`ScheduleExpressionTimezone`), daylight saving
included, so a recurring task needs no re-arming after each run.

- One-shot: `at(...)` for the minute of its time (the execute function waits out the seconds, as
  with rules), deleted by Scheduler once it has run (`ActionAfterCompletion: DELETE`).
- Recurring: the client's `cron(...)` in the client's zone.
- Imminent: a task whose minute has begun, or begins within `RULE_LEAD_SECONDS`, is dispatched
  straight to the execute function as with rules (a schedule for a minute already evaluated may
  never fire); a recurring one gets its schedule too.

Two roles, as for rules: `EventBridgeSchedules` arms and removes (the API function, which passes
the schedules' execution role), `EventBridgeScheduleRemover` removes and has nothing to re-arm
(the execute function).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from task_scheduler import aws
from task_scheduler.errors import DependencyFailure, FieldProblem, InvalidRequest
from task_scheduler.model import TriggerKind
from task_scheduler.timing import minute_start
from task_scheduler.triggers import arm_with_imminent_dispatch, dispatch_directly, execute_input
from task_scheduler.zoned_cron import DEFAULT_TIMEZONE

QUOTA_EXCEEDED = "ServiceQuotaExceededException"
# How Scheduler retries an invocation the execute function's service refused (throttling, ...)
# before the event goes to the dead-letter queue.
RETRY_POLICY = {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 10}


def at_expression(moment: datetime) -> str:
    """The one-shot expression for the minute of `moment` (UTC)."""
    return f"at({minute_start(moment).strftime('%Y-%m-%dT%H:%M:%S')})"


class EventBridgeScheduleRemover:
    def __init__(self, scheduler_client: Any, group_name: str) -> None:
        self._scheduler = scheduler_client
        self._group = group_name

    def disarm(self, task_id: str) -> None:
        try:
            aws.call(
                "AWS",
                "delete the task's schedule",
                self._scheduler.delete_schedule,
                Name=task_id,
                GroupName=self._group,
            )
        except DependencyFailure as failure:
            # Gone already: a one-shot schedule deletes itself once it has run.
            if failure.code != aws.NOT_FOUND:
                raise

    def rearm(self, task_id: str, timezone: str, next_run_at: datetime, now: datetime) -> bool:
        """Nothing to do: a schedule fires on every occurrence of its cron in its own zone."""
        return False


class EventBridgeSchedules:
    """Arms a task's schedule; removes it on the same terms as `EventBridgeScheduleRemover`."""

    def __init__(
        self,
        scheduler_client: Any,
        lambda_client: Any,
        group_name: str,
        execute_function_arn: str,
        role_arn: str,
        dead_letter_queue_arn: str,
    ) -> None:
        self._scheduler = scheduler_client
        self._lambda = lambda_client
        self._group = group_name
        self._target = {
            "Arn": execute_function_arn,
            "RoleArn": role_arn,
            "RetryPolicy": RETRY_POLICY,
            "DeadLetterConfig": {"Arn": dead_letter_queue_arn},
        }
        self._remover = EventBridgeScheduleRemover(scheduler_client, group_name)

    def arm(
        self,
        task_id: str,
        fire_at: datetime,
        cron: str | None,
        recurring: bool,
        now: datetime,
        *,
        timezone: str = DEFAULT_TIMEZONE,
    ) -> TriggerKind:
        def create() -> TriggerKind:
            if recurring and cron:
                self._create(task_id, cron, timezone, delete_after_completion=False)
            else:
                self._create(task_id, at_expression(fire_at), "UTC", delete_after_completion=True)
            return TriggerKind.SCHEDULE

        return arm_with_imminent_dispatch(
            fire_at,
            recurring,
            now,
            create,
            dispatch=lambda: dispatch_directly(self._lambda, self._target["Arn"], task_id),
            disarm=lambda: self.disarm(task_id),
        )

    def disarm(self, task_id: str) -> None:
        self._remover.disarm(task_id)

    def _create(
        self, task_id: str, expression: str, timezone: str, *, delete_after_completion: bool
    ) -> None:
        try:
            aws.call(
                "AWS",
                "create the task's schedule",
                self._scheduler.create_schedule,
                Name=task_id,
                GroupName=self._group,
                ScheduleExpression=expression,
                ScheduleExpressionTimezone=timezone,
                FlexibleTimeWindow={"Mode": "OFF"},
                State="ENABLED",
                ActionAfterCompletion="DELETE" if delete_after_completion else "NONE",
                Description=f"Runs scheduled task {task_id}",
                Target={**self._target, "Input": execute_input(task_id)},
            )
        except DependencyFailure as failure:
            if failure.code == QUOTA_EXCEEDED:
                raise DependencyFailure(
                    "Could not create the task's schedule: the account's EventBridge Scheduler "
                    "quota of schedules is used up (1,000,000 per region by default). Raise it "
                    "in Service Quotas (EventBridge Scheduler, 'Number of schedules').",
                    failure.code,
                ) from failure
            if failure.code == aws.VALIDATION and not delete_after_completion:
                # The client's own cron (and zone) that our checks let through; a one-shot's
                # at() is ours, so its refusal is a deployment's (e.g. the role), a 503.
                problems = [FieldProblem("run_at", "was rejected by EventBridge Scheduler")]
                if timezone != DEFAULT_TIMEZONE:
                    problems.append(
                        FieldProblem("timezone", "was rejected by EventBridge Scheduler")
                    )
                raise InvalidRequest(problems) from failure
            raise
