"""The `scheduler` trigger backend: one EventBridge Scheduler schedule per task, in the stack's own
schedule group, named by the task id (contract section 7). Unlike rules there is no quota of a
few hundred shared with the account (a million schedules per account and region by default).

Each occurrence gets an `at()` schedule for the minute `timing.TRIGGER_LEAD` before its own, in
UTC, deleted by Scheduler once it has fired (`ActionAfterCompletion: DELETE`). A recurring task's
occurrences are armed one at a time, like rules, and for the same reason: a `cron()` schedule
fires at the occurrence's minute, too late to start within a second of it. Its zone and daylight
saving rules are applied when each occurrence is computed (`zoned_cron`, Scheduler's rules).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from task_scheduler import aws
from task_scheduler.errors import DependencyFailure
from task_scheduler.execute_events import execute_input
from task_scheduler.model import TriggerKind
from task_scheduler.timing import minute_start, trigger_minute

QUOTA_EXCEEDED = "ServiceQuotaExceededException"
CONFLICT = "ConflictException"
# How Scheduler retries an invocation the execute function's service refused (throttling, ...)
# before the event goes to the dead-letter queue.
RETRY_POLICY = {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 10}


def at_expression(moment: datetime) -> str:
    """The one-shot expression for the minute of `moment` (UTC)."""
    return f"at({minute_start(moment).strftime('%Y-%m-%dT%H:%M:%S')})"


class EventBridgeSchedules:
    """Arms and removes a task's schedule; both functions use it (both pass the role)."""

    kind = TriggerKind.SCHEDULE
    removes_itself_after_firing = True

    def __init__(
        self,
        scheduler_client: Any,
        group_name: str,
        execute_function_arn: str,
        role_arn: str,
        dead_letter_queue_arn: str,
    ) -> None:
        self._scheduler = scheduler_client
        self._group = group_name
        self._target = {
            "Arn": execute_function_arn,
            "RoleArn": role_arn,
            "RetryPolicy": RETRY_POLICY,
            "DeadLetterConfig": {"Arn": dead_letter_queue_arn},
        }

    def arm(self, task_id: str, due: datetime) -> None:
        """The task's schedule fires in `trigger_minute(due)` with `due` in its event. One that
        has fired may still be there (deleted shortly after): it is moved on instead."""
        schedule = {
            "Name": task_id,
            "GroupName": self._group,
            "ScheduleExpression": at_expression(trigger_minute(due)),
            "ScheduleExpressionTimezone": "UTC",
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "State": "ENABLED",
            "ActionAfterCompletion": "DELETE",
            "Description": f"Runs scheduled task {task_id}",
            "Target": {**self._target, "Input": execute_input(task_id, due)},
        }
        try:
            self._call("create the task's schedule", self._scheduler.create_schedule, schedule)
        except DependencyFailure as failure:
            if failure.code != CONFLICT:
                raise
            self._call("move the task's schedule on", self._scheduler.update_schedule, schedule)

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
            # Gone already: a schedule deletes itself once it has fired.
            if failure.code != aws.NOT_FOUND:
                raise

    @staticmethod
    def _call(what: str, operation: Any, schedule: dict[str, Any]) -> None:
        try:
            aws.call("AWS", what, operation, **schedule)
        except DependencyFailure as failure:
            if failure.code == QUOTA_EXCEEDED:
                raise DependencyFailure(
                    "Could not create the task's schedule: the account's EventBridge Scheduler "
                    "quota of schedules is used up (1,000,000 per region by default). Raise it "
                    "in Service Quotas (EventBridge Scheduler, 'Number of schedules').",
                    failure.code,
                ) from failure
            raise
