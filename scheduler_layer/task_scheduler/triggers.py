"""Arming and disarming the trigger that makes a task run. One small interface, so another backend
(EventBridge Scheduler, for very many pending tasks) can stand beside the one-shot rules."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Protocol

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from task_scheduler.aws import dependency_failure, error_code
from task_scheduler.errors import DependencyFailure, FieldProblem, InvalidRequest
from task_scheduler.model import TriggerKind
from task_scheduler.timing import needs_direct_dispatch, one_shot_rule_expression

TARGET_ID = "execute-task"
logger = Logger(child=True)


def execute_input(task_id: str) -> str:
    """The event the execute function receives, exactly `{"task_id": "<id>"}`."""
    return json.dumps({"task_id": task_id})


class Triggers(Protocol):
    def arm(
        self, task_id: str, fire_at: datetime, cron: str | None, recurring: bool, now: datetime
    ) -> TriggerKind:
        """Makes the execute function run for `task_id` at `fire_at` (and, when `recurring`, on
        every occurrence of `cron`). Raises DependencyFailure having left nothing armed."""
        ...

    def disarm(self, task_id: str) -> None:
        """Removes the task's trigger; a trigger already gone is not an error."""
        ...


def rule_name(prefix: str, task_id: str) -> str:
    return f"{prefix}-{task_id}"


class EventBridgeTriggers:
    """One rule per task on the default event bus; imminent one-shot tasks are dispatched directly.

    `lambda_client` may be None on the execute side, which only disarms.
    """

    def __init__(
        self,
        events_client: Any,
        lambda_client: Any,
        rule_name_prefix: str,
        execute_function_arn: str | None,
    ) -> None:
        self._events = events_client
        self._lambda = lambda_client
        self._prefix = rule_name_prefix
        self._target_arn = execute_function_arn

    def arm(
        self, task_id: str, fire_at: datetime, cron: str | None, recurring: bool, now: datetime
    ) -> TriggerKind:
        imminent = needs_direct_dispatch(fire_at, now)
        if not recurring and imminent:
            self._dispatch(task_id)
            return TriggerKind.DIRECT
        expression = cron if recurring and cron else one_shot_rule_expression(fire_at)
        self._put_rule(task_id, expression)
        if imminent:
            # The rule may be too late for the first occurrence: dispatch that one directly too.
            # The execute side claims each occurrence once, so a second delivery does nothing.
            try:
                self._dispatch(task_id)
            except DependencyFailure:
                self.disarm(task_id)
                raise
        return TriggerKind.RULE

    def disarm(self, task_id: str) -> None:
        name = rule_name(self._prefix, task_id)
        try:
            self._events.remove_targets(Rule=name, Ids=[TARGET_ID])
        except ClientError as error:
            if error_code(error) != "ResourceNotFoundException":
                raise dependency_failure("remove the task's rule target", error) from error
        except BotoCoreError as error:
            raise dependency_failure("remove the task's rule target", error) from error
        try:
            self._events.delete_rule(Name=name)
        except ClientError as error:
            if error_code(error) != "ResourceNotFoundException":
                raise dependency_failure("delete the task's rule", error) from error
        except BotoCoreError as error:
            raise dependency_failure("delete the task's rule", error) from error

    def _require_target(self) -> str:
        if not self._target_arn:
            raise RuntimeError("arming a trigger needs the execute function's ARN")
        return self._target_arn

    def _dispatch(self, task_id: str) -> None:
        target = self._require_target()
        try:
            self._lambda.invoke(
                FunctionName=target,
                InvocationType="Event",
                Payload=execute_input(task_id).encode("utf-8"),
            )
        except (ClientError, BotoCoreError) as error:
            raise dependency_failure("dispatch the task to the execute function", error) from error

    def _put_rule(self, task_id: str, expression: str) -> None:
        target = self._require_target()
        name = rule_name(self._prefix, task_id)
        try:
            self._events.put_rule(
                Name=name,
                ScheduleExpression=expression,
                State="ENABLED",
                Description=f"Runs scheduled task {task_id}",
            )
        except ClientError as error:
            if error_code(error) == "ValidationException":
                # Our cron grammar should have caught it; if EventBridge disagrees, it is still
                # the client's expression at fault, not a failing dependency.
                raise InvalidRequest(
                    [FieldProblem("run_at", "was rejected by EventBridge as a schedule expression")]
                ) from error
            raise dependency_failure("create the task's EventBridge rule", error) from error
        except BotoCoreError as error:
            raise dependency_failure("create the task's EventBridge rule", error) from error
        try:
            answer = self._events.put_targets(
                Rule=name,
                Targets=[{"Id": TARGET_ID, "Arn": target, "Input": execute_input(task_id)}],
            )
            if answer.get("FailedEntryCount"):
                entry = answer.get("FailedEntries", [{}])[0]
                raise DependencyFailure(
                    "Could not set the task's EventBridge rule target: "
                    f"{entry.get('ErrorCode', 'failed')}."
                )
        except (ClientError, BotoCoreError, DependencyFailure) as error:
            # Never leave a rule without its task: undo the rule before reporting.
            self._delete_rule_quietly(name)
            if isinstance(error, DependencyFailure):
                raise
            raise dependency_failure("set the task's EventBridge rule target", error) from error

    def _delete_rule_quietly(self, name: str) -> None:
        try:
            self._events.delete_rule(Name=name)
        except (ClientError, BotoCoreError):
            # A rule without a target never runs anything; it only counts against the quota.
            logger.warning("could not delete the untargeted rule %s", name, exc_info=True)
