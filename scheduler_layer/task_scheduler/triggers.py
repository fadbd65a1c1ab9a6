"""The `rules` trigger backend: one EventBridge rule per task on the default bus, armed for the
minute `timing.TRIGGER_LEAD` before the task's next occurrence (one-shot rules only: a rule reads
its cron in UTC and fires anywhere in its minute, so the occurrences of a recurring task are armed
one at a time, by the API function for the first and by the execute function for the next).

A rule outlives its firing (a one-shot cron never matches again, but it counts against the quota
of 300 until deleted): it is removed once its task is finished or cancelled.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger

from task_scheduler import aws
from task_scheduler.errors import DependencyFailure
from task_scheduler.execute_events import execute_input
from task_scheduler.model import TriggerKind
from task_scheduler.timing import one_shot_rule_expression, trigger_minute

TARGET_ID = "execute-task"
logger = Logger(child=True)


def rule_name(prefix: str, task_id: str) -> str:
    return f"{prefix}-{task_id}"


class EventBridgeRules:
    """Arms (creates or moves on) and removes a task's rule; both functions use it."""

    kind = TriggerKind.RULE
    removes_itself_after_firing = False

    def __init__(self, events_client: Any, rule_name_prefix: str, execute_function_arn: str):
        self._events = events_client
        self._prefix = rule_name_prefix
        self._target_arn = execute_function_arn

    def arm(self, task_id: str, due: datetime) -> None:
        """The task's rule fires in `trigger_minute(due)`, with `due` in its event. Raises
        DependencyFailure having left no rule that could fire with a wrong event."""
        name = rule_name(self._prefix, task_id)
        try:
            aws.call(
                "AWS",
                "create the task's EventBridge rule",
                self._events.put_rule,
                Name=name,
                ScheduleExpression=one_shot_rule_expression(trigger_minute(due)),
                State="ENABLED",
                Description=f"Runs scheduled task {task_id}",
            )
        except DependencyFailure as failure:
            if failure.code == aws.LIMIT_EXCEEDED:
                raise DependencyFailure(
                    "Could not create the task's EventBridge rule: the account's quota of rules "
                    "per event bus (300 by default, shared with every rule on the default bus) "
                    "is used up. Deploy with TriggerBackend=scheduler (a schedule per task, "
                    "millions of them), or raise the quota in Service Quotas (EventBridge, "
                    "'Rules per event bus').",
                    failure.code,
                ) from failure
            raise
        try:
            self._put_target(task_id, name, due)
        except DependencyFailure:
            # A rule without its target, or moved on with the previous occurrence's event: gone.
            self._disarm_quietly(task_id)
            raise

    def disarm(self, task_id: str) -> None:
        """Removes the task's rule; a rule already gone is not an error."""
        name = rule_name(self._prefix, task_id)
        self._tolerating_absence(
            "remove the task's rule target", self._events.remove_targets, Rule=name, Ids=[TARGET_ID]
        )
        self._tolerating_absence("delete the task's rule", self._events.delete_rule, Name=name)

    def _put_target(self, task_id: str, name: str, due: datetime) -> None:
        answer = aws.call(
            "AWS",
            "set the task's EventBridge rule target",
            self._events.put_targets,
            Rule=name,
            Targets=[
                {"Id": TARGET_ID, "Arn": self._target_arn, "Input": execute_input(task_id, due)}
            ],
        )
        if answer.get("FailedEntryCount"):
            entry = answer.get("FailedEntries", [{}])[0]
            raise DependencyFailure(
                "Could not set the task's EventBridge rule target: "
                f"{entry.get('ErrorCode', 'failed')}."
            )

    def _disarm_quietly(self, task_id: str) -> None:
        try:
            self.disarm(task_id)
        except DependencyFailure:
            # Left behind, it fires once for an occurrence its task no longer has (the claim
            # refuses it) and the execute function removes it then.
            logger.warning("could not remove the half-armed rule", exc_info=True)

    @staticmethod
    def _tolerating_absence(what: str, operation: Any, **kwargs: Any) -> None:
        try:
            aws.call("AWS", what, operation, **kwargs)
        except DependencyFailure as failure:
            if failure.code != aws.NOT_FOUND:
                raise
