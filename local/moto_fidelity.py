"""Makes moto's DynamoDB keep two promises real DynamoDB makes: a conditional write is atomic,
and a write that fails changes nothing.

moto checks a write's condition and applies the write as two separate steps without a lock, so
two threads can both pass `status = scheduled` and both "claim" a task. DynamoDB never allows
that, and the scheduler relies on it (a duplicate delivery must not call a webhook twice). Local
mode and the tests run moto in this process, so its write operations are serialised here.

moto also applies an UpdateItem action by action to the stored item, so one that fails part way
(the item outgrowing 400 KB, say) leaves the actions before it applied: a status changed by a
call that raised. Its PutItem builds the whole new item before storing it, and its
TransactWriteItems rolls back by itself; UpdateItem is restored here. And moto checks the size
after each action, counting a replaced value twice (old and new), so it refuses updates that
DynamoDB, which checks the item the update results in, accepts: an item near the limit could
not even shrink. Here UpdateItem's size is checked once, on the resulting item.
"""

from __future__ import annotations

import copy
import functools
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_LOCK = threading.RLock()
_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item")
_MARK = "_task_scheduler_atomic"
# moto's own figure for DynamoDB's item limit (its LimitedSizeDict), counted by moto's Item.size.
_MOTO_ITEM_LIMIT = 405_000
_updating = threading.local()  # set while an UpdateItem runs: its size is checked at the end


def make_dynamodb_writes_atomic() -> None:
    """Idempotent: wraps moto's DynamoDB backend write methods in one process-wide lock, and
    makes UpdateItem check the size of the item it results in and change nothing when it fails.
    Each DynamoDB request is also handled whole under that lock: moto hands the live stored item
    to a request's reply and serialises it after the backend call, so a write landing meanwhile
    made a read fail ("dictionary changed size during iteration", a 500) or see half a write."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import LimitedSizeDict
    from moto.dynamodb.responses import DynamoHandler

    if not getattr(DynamoHandler.call_action, _MARK, False):
        DynamoHandler.call_action = _locked(DynamoHandler.call_action)  # type: ignore[method-assign]

    if not getattr(LimitedSizeDict.__setitem__, _MARK, False):
        LimitedSizeDict.__setitem__ = _unchecked_while_updating(LimitedSizeDict.__setitem__)
    for name in _WRITES:
        method = getattr(DynamoDBBackend, name)
        if getattr(method, _MARK, False):
            continue
        if name == "update_item":
            method = _undone_on_failure(method)
        setattr(DynamoDBBackend, name, _locked(method))


def _undone_on_failure(update_item: Any) -> Any:
    """UpdateItem that refuses a resulting item over the limit, and, when it raises, puts the
    item back as it was (or absent, if it was)."""
    from moto.dynamodb.exceptions import ItemSizeToUpdateTooLarge

    @functools.wraps(update_item)
    def wrapper(backend: Any, table_name: str, key: dict[str, Any], *args: Any, **kw: Any) -> Any:
        restore = _snapshot(backend, table_name, key)
        _updating.active = True
        try:
            item = update_item(backend, table_name, key, *args, **kw)
            if item.size() > _MOTO_ITEM_LIMIT:
                raise ItemSizeToUpdateTooLarge()
            return item
        except BaseException:
            restore()
            raise
        finally:
            _updating.active = False

    return wrapper


def _unchecked_while_updating(setitem: Any) -> Any:
    """moto's per-attribute size check, skipped inside UpdateItem (checked once at its end)."""

    @functools.wraps(setitem)
    def wrapper(attrs: dict[str, Any], name: str, value: Any) -> None:
        if getattr(_updating, "active", False):
            dict.__setitem__(attrs, name, value)
        else:
            setitem(attrs, name, value)

    setattr(wrapper, _MARK, True)
    return wrapper


def _snapshot(backend: Any, table_name: str, key: dict[str, Any]) -> Callable[[], None]:
    """A copy of the item `key` names, and how to put it back. Raises what UpdateItem would for
    an unknown table or a malformed key, before anything is changed."""
    table = backend.get_table(table_name)
    hash_value, range_value = backend.get_keys_value(table, key)
    saved = copy.deepcopy(table.get_item(hash_value, range_value))

    def restore() -> None:
        # moto keeps items by hash key, and by range key within it when the table has one.
        items = table.items[hash_value] if range_value is not None else table.items
        slot = range_value if range_value is not None else hash_value
        if saved is None:
            items.pop(slot, None)
        else:
            items[slot] = saved

    return restore


def _locked(method: Any) -> Any:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return method(*args, **kwargs)

    setattr(wrapper, _MARK, True)
    return wrapper


class RuleListener:
    """Told of each EventBridge rule write and delete moto performs (`watch_event_rules`)."""

    def rule_written(self, name: str, expression: str | None, state: str) -> None: ...

    def rule_deleted(self, name: str) -> None: ...


_listeners: list[RuleListener] = []


def watch_event_rules(listener: RuleListener) -> None:
    """Calls `listener` after each PutRule / EnableRule / DisableRule / DeleteRule moto serves,
    so the local clock learns of rules as they are written instead of scanning all of them."""
    from moto.events.models import EventsBackend

    _listeners.append(listener)
    if getattr(EventsBackend.put_rule, _MARK, False):
        return

    def after_put(backend: Any, result: Any, *args: Any, **kwargs: Any) -> None:
        for each in list(_listeners):
            each.rule_written(result.name, result.scheduled_expression, result.state)

    def after_state_change(backend: Any, result: Any, name: str, *args: Any, **kw: Any) -> None:
        rule = backend._get_event_bus("default").rules.get(name)
        if rule is not None:
            for each in list(_listeners):
                each.rule_written(rule.name, rule.scheduled_expression, rule.state)

    def after_delete(backend: Any, result: Any, name: str, *args: Any, **kwargs: Any) -> None:
        for each in list(_listeners):
            each.rule_deleted(name)

    for method, hook in (
        ("put_rule", after_put),
        ("enable_rule", after_state_change),
        ("disable_rule", after_state_change),
        ("delete_rule", after_delete),
    ):
        setattr(EventsBackend, method, _followed_by(getattr(EventsBackend, method), hook))


# Rules per event bus, as EventBridge's quota (300 by default, shared with every rule of the
# account's default bus); None: unlimited, moto's own behaviour.
_rules_quota: int | None = None


def limit_default_bus_rules(quota: int | None) -> None:
    """From now on PutRule refuses to create a rule on the default bus beyond `quota` rules, as
    EventBridge does with LimitExceededException (updating an existing rule is still allowed);
    None lifts the limit."""
    from moto.core.exceptions import JsonRESTError
    from moto.events.models import EventsBackend

    global _rules_quota
    _rules_quota = quota
    if getattr(EventsBackend.put_rule, _QUOTA_MARK, False):
        return
    put_rule = EventsBackend.put_rule

    @functools.wraps(put_rule)
    def limited(backend: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        rules = backend._get_event_bus(
            backend._normalize_event_bus_arn(kwargs.get("event_bus_arn"))
        ).rules
        if _rules_quota is not None and name not in rules and len(rules) >= _rules_quota:
            raise JsonRESTError(
                "LimitExceededException",
                f"The requested resource exceeds the maximum number allowed ({_rules_quota}).",
            )
        return put_rule(backend, name, *args, **kwargs)

    setattr(limited, _QUOTA_MARK, True)
    setattr(limited, _MARK, getattr(put_rule, _MARK, False))
    EventsBackend.put_rule = limited  # type: ignore[method-assign]


_QUOTA_MARK = "_task_scheduler_rules_quota"


def unwatch_event_rules(listener: RuleListener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def _followed_by(method: Any, hook: Any) -> Any:
    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = method(self, *args, **kwargs)
        hook(self, result, *args, **kwargs)
        return result

    setattr(wrapper, _MARK, True)
    return wrapper


def rule_targets(
    account: str, region: str, name: str
) -> tuple[str, list[tuple[str, str | None]]] | None:
    """The rule's ARN and its targets (ARN, Input) as moto holds them; None when it is gone or
    disabled."""
    from moto.events.models import events_backends

    rule = events_backends[account][region].event_buses["default"].rules.get(name)
    if rule is None or rule.state != "ENABLED":
        return None
    return rule.arn, [(target["Arn"], target.get("Input")) for target in rule.targets]


# -- EventBridge Scheduler -------------------------------------------------------------------------


class ScheduleListener:
    """Told of each EventBridge Scheduler schedule write and delete moto performs
    (`watch_schedules`)."""

    def schedule_written(
        self, group: str, name: str, expression: str, timezone: str, state: str
    ) -> None: ...

    def schedule_deleted(self, group: str, name: str) -> None: ...


@dataclass(frozen=True)
class ScheduleTarget:
    """A schedule's target and completion action as moto holds them, at one revision."""

    arn: str
    input: str | None
    action_after_completion: str | None
    revision: int


_schedule_listeners: list[ScheduleListener] = []
# Scheduler writes, their listeners and the local deletes after completion happen one at a time,
# so "delete it unless it was rewritten since it fired" is one step.
_SCHEDULES_LOCK = threading.RLock()
_REVISION = "_task_scheduler_revision"
_revisions = itertools.count(1)


def watch_schedules(listener: ScheduleListener) -> None:
    """Calls `listener` after each CreateSchedule / UpdateSchedule / DeleteSchedule moto serves,
    so the local clock learns of schedules as they are written instead of scanning them. Also
    makes UpdateSchedule replace the whole definition as Scheduler does: a State or
    ActionAfterCompletion left out takes its default (ENABLED, NONE), not the old value."""
    from moto.scheduler.models import EventBridgeSchedulerBackend
    from moto.scheduler.responses import EventBridgeSchedulerResponse

    _schedule_listeners.append(listener)
    if getattr(EventBridgeSchedulerBackend.create_schedule, _MARK, False):
        return

    def after_write(backend: Any, schedule: Any, *args: Any, **kwargs: Any) -> None:
        schedule.state = schedule.state or "ENABLED"
        setattr(schedule, _REVISION, next(_revisions))
        for each in list(_schedule_listeners):
            each.schedule_written(
                schedule.group_name,
                schedule.name,
                schedule.schedule_expression,
                schedule.schedule_expression_timezone or "UTC",
                schedule.state,
            )

    def after_delete(
        backend: Any, result: Any, group_name: str | None, name: str, *args: Any, **kw: Any
    ) -> None:
        for each in list(_schedule_listeners):
            each.schedule_deleted(group_name or "default", name)

    for method, hook in (
        ("create_schedule", after_write),
        ("update_schedule", after_write),
        ("delete_schedule", after_delete),
    ):
        followed = _followed_by(getattr(EventBridgeSchedulerBackend, method), hook)
        setattr(EventBridgeSchedulerBackend, method, _serialised(followed))
    update_response = EventBridgeSchedulerResponse.update_schedule

    @functools.wraps(update_response)
    def update_replacing_all(response: Any) -> str:
        with _SCHEDULES_LOCK:
            answer = update_response(response)
            schedule = response.scheduler_backend.get_schedule(
                response._get_param("GroupName"), response.uri.split("?")[0].split("/")[-1]
            )
            schedule.action_after_completion = response._get_param("ActionAfterCompletion")
            return answer

    EventBridgeSchedulerResponse.update_schedule = update_replacing_all  # type: ignore[method-assign]


def unwatch_schedules(listener: ScheduleListener) -> None:
    if listener in _schedule_listeners:
        _schedule_listeners.remove(listener)


def _serialised(method: Any) -> Any:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _SCHEDULES_LOCK:
            return method(*args, **kwargs)

    setattr(wrapper, _MARK, True)
    return wrapper


def schedule_target(account: str, region: str, group: str, name: str) -> ScheduleTarget | None:
    """The schedule's target (ARN, Input) and ActionAfterCompletion as moto holds them; None when
    it is gone or disabled."""
    from moto.scheduler.models import scheduler_backends

    with _SCHEDULES_LOCK:
        schedule = _schedule(scheduler_backends[account][region], group, name)
        if schedule is None or (schedule.state or "ENABLED") != "ENABLED":
            return None
        return ScheduleTarget(
            schedule.target["Arn"],
            schedule.target.get("Input"),
            schedule.action_after_completion,
            getattr(schedule, _REVISION, 0),
        )


def delete_completed_schedule(
    account: str, region: str, group: str, name: str, revision: int
) -> bool:
    """Deletes the schedule, as Scheduler does after the last invocation of one whose
    ActionAfterCompletion is DELETE, unless it was rewritten since `revision` was read (it then
    has a new definition to run). True when deleted."""
    from moto.scheduler.models import scheduler_backends

    backend = scheduler_backends[account][region]
    with _SCHEDULES_LOCK:
        schedule = _schedule(backend, group, name)
        if schedule is None or getattr(schedule, _REVISION, 0) != revision:
            return False
        backend.delete_schedule(group, name)
        return True


def _schedule(backend: Any, group: str, name: str) -> Any:
    found = backend.schedule_groups.get(group)
    return found.schedules.get(name) if found is not None else None
