"""The triggers that make a task run, on EventBridge: one rule per task on the default bus, and a
direct dispatch for imminent tasks. Two roles: `EventBridgeRules` arms and removes (the API
function); `EventBridgeRuleRearmer` moves a rule on to a task's next occurrence and removes it once
the task is done (the execute function, which never creates a rule's target).

A rule reads its cron in UTC. A recurring task whose cron is read in another zone
(`zoned_cron`) therefore gets a one-shot rule for its next occurrence, which the execute function
moves on after each run (same rule, same target, a new schedule expression).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger

from task_scheduler import aws
from task_scheduler.errors import DependencyFailure, FieldProblem, InvalidRequest
from task_scheduler.model import TriggerKind
from task_scheduler.timing import needs_direct_dispatch, one_shot_rule_expression
from task_scheduler.zoned_cron import DEFAULT_TIMEZONE

TARGET_ID = "execute-task"
logger = Logger(child=True)


def execute_input(task_id: str) -> str:
    """The event the execute function receives, exactly `{"task_id": "<id>"}`."""
    return json.dumps({"task_id": task_id})


def dispatch_directly(lambda_client: Any, execute_function_arn: str, task_id: str) -> None:
    """Runs the task now: an asynchronous invocation of the execute function, for an occurrence
    too close for a rule or schedule to be sure to fire (both backends)."""
    aws.call(
        "AWS",
        "dispatch the task to the execute function",
        lambda_client.invoke,
        FunctionName=execute_function_arn,
        InvocationType="Event",
        Payload=execute_input(task_id).encode("utf-8"),
    )


def arm_with_imminent_dispatch(
    fire_at: datetime,
    recurring: bool,
    now: datetime,
    arm: Callable[[], TriggerKind],
    *,
    dispatch: Callable[[], None],
    disarm: Callable[[], None],
) -> TriggerKind:
    """Both backends' policy for an occurrence so close that a new rule or schedule may never
    fire for it (EventBridge never fires one for a minute it has already evaluated): a one-shot
    task is only dispatched directly; a recurring one gets its trigger (`arm`) and its first
    occurrence directly too, the trigger undone if that dispatch fails. The execute side claims
    each occurrence once, so a second delivery does nothing."""
    imminent = needs_direct_dispatch(fire_at, now)
    if not recurring and imminent:
        dispatch()
        return TriggerKind.DIRECT
    kind = arm()
    if imminent:
        try:
            dispatch()
        except DependencyFailure:
            disarm()
            raise
    return kind


def rule_name(prefix: str, task_id: str) -> str:
    return f"{prefix}-{task_id}"


def rule_follows_cron(timezone: str) -> bool:
    """Whether a rule can carry a recurring task's cron itself: only when it is read in UTC."""
    return timezone == DEFAULT_TIMEZONE


def _put_rule(events: Any, name: str, task_id: str, expression: str, what: str) -> None:
    """Creates the task's rule, or changes the schedule of the one there (its target stays)."""
    aws.call(
        "AWS",
        what,
        events.put_rule,
        Name=name,
        ScheduleExpression=expression,
        State="ENABLED",
        Description=f"Runs scheduled task {task_id}",
    )


class EventBridgeRuleRemover:
    def __init__(self, events_client: Any, rule_name_prefix: str) -> None:
        self._events = events_client
        self._prefix = rule_name_prefix

    def disarm(self, task_id: str) -> None:
        name = rule_name(self._prefix, task_id)
        self._tolerating_absence(
            "remove the task's rule target", self._events.remove_targets, Rule=name, Ids=[TARGET_ID]
        )
        self._tolerating_absence("delete the task's rule", self._events.delete_rule, Name=name)

    @staticmethod
    def _tolerating_absence(what: str, operation: Any, **kwargs: Any) -> None:
        try:
            aws.call("AWS", what, operation, **kwargs)
        except DependencyFailure as failure:
            if failure.code != aws.NOT_FOUND:
                raise


class EventBridgeRuleRearmer(EventBridgeRuleRemover):
    """The execute function's role: keeps a recurring task's rule on its next occurrence."""

    def rearm(self, task_id: str, timezone: str, next_run_at: datetime, now: datetime) -> bool:
        """Moves the task's one-shot rule on to `next_run_at` (the rule exists: a recurring task's
        is removed only once the task is finished). True when that is so close that the rule may
        not fire for it (`timing.needs_direct_dispatch`). A rule that carries the cron itself
        fires on every occurrence as it is: nothing to do."""
        if rule_follows_cron(timezone):
            return False
        _put_rule(
            self._events,
            rule_name(self._prefix, task_id),
            task_id,
            one_shot_rule_expression(next_run_at),
            "re-arm the task's EventBridge rule for its next occurrence",
        )
        return needs_direct_dispatch(next_run_at, now)


class EventBridgeRules:
    """Arms a task's trigger; removes it on the same terms as `EventBridgeRuleRemover`."""

    def __init__(
        self,
        events_client: Any,
        lambda_client: Any,
        rule_name_prefix: str,
        execute_function_arn: str,
    ) -> None:
        self._events = events_client
        self._lambda = lambda_client
        self._prefix = rule_name_prefix
        self._target_arn = execute_function_arn
        self._remover = EventBridgeRuleRemover(events_client, rule_name_prefix)

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
        if recurring and cron and rule_follows_cron(timezone):
            expression = cron
        else:  # one occurrence, or the first of a cron read in another zone (module doc)
            expression = one_shot_rule_expression(fire_at)

        def put_rule() -> TriggerKind:
            self._put_rule(task_id, expression)
            return TriggerKind.RULE

        return arm_with_imminent_dispatch(
            fire_at,
            recurring,
            now,
            put_rule,
            dispatch=lambda: dispatch_directly(self._lambda, self._target_arn, task_id),
            disarm=lambda: self.disarm(task_id),
        )

    def disarm(self, task_id: str) -> None:
        self._remover.disarm(task_id)

    def _put_rule(self, task_id: str, expression: str) -> None:
        name = rule_name(self._prefix, task_id)
        try:
            _put_rule(self._events, name, task_id, expression, "create the task's EventBridge rule")
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
            if failure.code == aws.VALIDATION:
                # Our cron grammar should have caught it; if EventBridge disagrees, it is still
                # the client's expression at fault, not a failing dependency.
                raise InvalidRequest(
                    [FieldProblem("run_at", "was rejected by EventBridge as a schedule expression")]
                ) from failure
            raise
        try:
            self._put_target(task_id, name)
        except DependencyFailure:
            # Never leave a rule without its task: undo the rule before reporting.
            self._delete_rule_quietly(name)
            raise

    def _put_target(self, task_id: str, name: str) -> None:
        answer = aws.call(
            "AWS",
            "set the task's EventBridge rule target",
            self._events.put_targets,
            Rule=name,
            Targets=[{"Id": TARGET_ID, "Arn": self._target_arn, "Input": execute_input(task_id)}],
        )
        if answer.get("FailedEntryCount"):
            entry = answer.get("FailedEntries", [{}])[0]
            raise DependencyFailure(
                "Could not set the task's EventBridge rule target: "
                f"{entry.get('ErrorCode', 'failed')}."
            )

    def _delete_rule_quietly(self, name: str) -> None:
        try:
            aws.call("AWS", "delete the untargeted rule", self._events.delete_rule, Name=name)
        except DependencyFailure:
            # A rule without a target never runs anything; it only counts against the quota.
            logger.warning("could not delete the untargeted rule %s", name, exc_info=True)
