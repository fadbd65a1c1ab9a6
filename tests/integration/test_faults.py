"""Fault injection: AWS calls failing at each step of scheduling and of running a task.

Faults are injected through botocore's public event hooks on the very clients the handler modules
hold (`handlers.schedule.clients.sqs`, `handlers.execute.clients.dynamodb`, ...: the clients
each handler module builds its objects from); the scheduler's own code is not patched. What must
hold (contract sections 2, 4 and 5):

- scheduling (arm first, then store the task `scheduled`): a failing call answers 503 with a JSON
  `message` and leaves nothing a client can see: no row, no rule with a target; a queued message
  cannot be taken back, so it finds no task, looks again for a few seconds and is dropped;
- running: the faulted invocation either fails (so SQS, or Lambda for a rule's event, delivers it
  again) or settles the occurrence; delivering it again ends in a consistent state; a receiver
  gets at most one successful delivery per occurrence; and a task is never left `scheduled` with
  nothing to run it.

The execute side runs on a fake clock (`ExecuteSide`): the execute function's own objects, built
by `wiring` from its settings and clients (so the faults apply), with SQS and Lambda played
around them. No test waits for a minute to come, nor for a message's delay.

What botocore does with each kind of fault (checked by the first test below):

- `before-call.<service>.<Operation>` fires once per API call, not once per attempt: the SDK's
  retries happen inside the call, after it. A ClientError raised there leaves the call before the
  retry handler sees anything, so it is not retried: the caller gets what it would get once every
  attempt of a throttled (or failing) call was refused, and the service saw none of them.
- `before-send.<service>.<Operation>` fires once per attempt, the SDK's retries included. It is
  emitted to every handler (moto's, which serves the request, among them); an exception from a
  handler stops it. So a connection error raised by a handler registered before moto's is an
  attempt that never reached the service (and is retried: standard mode, 3 attempts in all), and
  a read timeout raised by a handler after moto's is an attempt the service applied whose answer
  was lost (retried too). The handler after moto's must be registered on plain `before-send`:
  botocore calls the handlers of more specific event names first, whatever their registration.

The injector counts calls per client and operation in the test's thread; the handlers make their
AWS calls in that thread, one at a time.
"""

from __future__ import annotations

import copy
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from task_scheduler import wiring
from task_scheduler.aws import client as scheduler_client
from task_scheduler.errors import DependencyFailure
from task_scheduler.execute_events import parse_execute_event
from task_scheduler.timing import format_utc, parse_stored_utc, trigger_minute
from tests.integration.conftest import (
    REGION,
    RULE_PREFIX,
    TABLE_NAME,
    Aws,
    Handlers,
    body_of,
    context,
    sqs_event,
)
from tests.support.fakes import FakeClock
from tests.support.receiver import Answer, Receiver
from tests.support.timing import beyond_the_queue, seconds_from_now

# -- the injector -------------------------------------------------------------------------------

THROTTLE = "throttle"  # the call is refused: ThrottlingException (raised from before-call)
SERVER_ERROR = "server_error"  # the call fails: InternalServerError (raised from before-call)
UNREACHABLE = "unreachable"  # each attempt: a connection error before it reaches the service
ANSWER_LOST = "answer_lost"  # each attempt: the service applies it, then the answer times out

_CALL_ERRORS = {
    THROTTLE: ("ThrottlingException", 400),
    SERVER_ERROR: ("InternalServerError", 500),
}


class Fault:
    """Makes chosen calls of one operation of one boto3 client fail.

    `calls`: the 1-based numbers of the calls that fail, counted from now among the calls that
    `when` (a test of the call's parameters) accepts; None fails every call, () none (a spy).
    `attempts`, for the per-attempt kinds: how many attempts of a failing call fail (None: all,
    so the call fails once the SDK gives up; 1: the SDK's first retry gets through).
    """

    def __init__(
        self,
        client: Any,
        operation: str,
        *,
        kind: str = THROTTLE,
        calls: tuple[int, ...] | None = (1,),
        attempts: int | None = None,
        when: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        service = client.meta.service_model.service_id.hyphenize()
        self.operation = operation
        self.kind = kind
        self.seen = 0  # calls of the operation that `when` accepted
        self.params: list[dict[str, Any]] = []  # their parameters, in order
        self.injected = 0  # failures injected: calls (call kinds) or attempts (attempt kinds)
        self.attempts_seen = 0  # attempts of failing calls that reached before-send
        self._calls = None if calls is None else frozenset(calls)
        self._attempts = attempts
        self._when = when
        self._key = f"fault-{id(self)}"
        self._send_event = f"before-send.{service}.{operation}"
        self._failing = False
        self._attempt = 0
        self._events = client.meta.events
        self._registered: list[tuple[str, Callable[..., Any]]] = []
        for event, handler in (
            (f"provide-client-params.{service}.{operation}", self._on_params),
            (f"before-call.{service}.{operation}", self._on_call),
            (f"after-call.{service}.{operation}", self._on_end),
            (f"after-call-error.{service}.{operation}", self._on_end),
        ):
            self._events.register(event, handler)
            self._registered.append((event, handler))
        if kind == UNREACHABLE:  # before moto's handler: the attempt never reaches the service
            self._events.register_first(self._send_event, self._on_send)
            self._registered.append((self._send_event, self._on_send))
        elif kind == ANSWER_LOST:  # after moto's handler: the service has applied the attempt
            self._events.register_last("before-send", self._on_send)
            self._registered.append(("before-send", self._on_send))
        elif kind not in _CALL_ERRORS:
            raise ValueError(f"unknown fault kind {kind!r}")

    def remove(self) -> None:
        """The dependency recovers: later calls go through untouched."""
        for event, handler in self._registered:
            self._events.unregister(event, handler)
        self._registered.clear()

    def _on_params(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context[self._key] = copy.deepcopy(params)

    def _on_call(self, context: dict[str, Any], **_: Any) -> None:
        params = context.get(self._key, {})
        if self._when is not None and not self._when(params):
            return
        self.seen += 1
        self.params.append(params)
        if self._calls is not None and self.seen not in self._calls:
            return
        if self.kind in _CALL_ERRORS:
            code, status = _CALL_ERRORS[self.kind]
            self.injected += 1
            raise ClientError(
                {
                    "Error": {"Code": code, "Message": "injected"},
                    "ResponseMetadata": {"HTTPStatusCode": status},
                },
                self.operation,
            )
        self._failing = True
        self._attempt = 0

    def _on_send(self, request: Any, event_name: str, **_: Any) -> None:
        if event_name != self._send_event or not self._failing:
            return
        self._attempt += 1
        self.attempts_seen += 1
        if self._attempts is not None and self._attempt > self._attempts:
            return
        self.injected += 1
        if self.kind == UNREACHABLE:
            raise EndpointConnectionError(endpoint_url=request.url)
        raise ReadTimeoutError(endpoint_url=request.url)

    def _on_end(self, **_: Any) -> None:
        self._failing = False


def test_the_hooks_fire_once_per_call_and_once_per_attempt(aws: Aws) -> None:
    sqs = scheduler_client("sqs")  # configured as the functions configure theirs
    url = aws.retry_queue_url

    refused = Fault(sqs, "SendMessage", kind=THROTTLE, calls=(2,))
    sqs.send_message(QueueUrl=url, MessageBody="{}")
    with pytest.raises(ClientError) as raised:
        sqs.send_message(QueueUrl=url, MessageBody="{}")
    sqs.send_message(QueueUrl=url, MessageBody="{}")
    refused.remove()
    assert raised.value.response["Error"]["Code"] == "ThrottlingException"
    assert (refused.seen, refused.injected, refused.attempts_seen) == (3, 1, 0)
    assert len(aws.queue_messages(url)) == 2  # the refused call never reached the queue

    unreachable = Fault(sqs, "SendMessage", kind=UNREACHABLE)
    with pytest.raises(EndpointConnectionError):
        sqs.send_message(QueueUrl=url, MessageBody="{}")
    unreachable.remove()
    # One call, three attempts (the SDK retried twice), each one failed before being sent.
    assert (unreachable.seen, unreachable.attempts_seen, unreachable.injected) == (1, 3, 3)
    assert len(aws.queue_messages(url)) == 2

    lost_once = Fault(sqs, "SendMessage", kind=ANSWER_LOST, attempts=1)
    answer = sqs.send_message(QueueUrl=url, MessageBody="{}")
    lost_once.remove()
    assert answer["ResponseMetadata"]["RetryAttempts"] == 1
    assert (lost_once.seen, lost_once.attempts_seen, lost_once.injected) == (1, 2, 1)
    assert len(aws.queue_messages(url)) == 4  # the lost attempt was applied, and so was the retry


# -- shared helpers -----------------------------------------------------------------------------

RAISED = "raised"  # the invocation failed: SQS (or Lambda, for a rule's event) delivers it again
FINISHED = ("completed", "failed", "cancelled")
# Not a kind of its own: ANSWER_LOST on the first attempt only, so that the SDK's retry of a
# conditional write meets the write it already made.
ANSWER_LOST_ONCE = "answer_lost_once"
REFUSED_KINDS = (THROTTLE, SERVER_ERROR, UNREACHABLE)  # the call changed nothing

# When a failed invocation is delivered again: SQS, after the queue's visibility timeout (720 s
# in template.yaml); Lambda, for a rule's asynchronous event, after about a minute.
QUEUE_REDELIVERY = timedelta(seconds=720)
EVENT_REDELIVERY = timedelta(seconds=60)
# EventBridge fires a rule at some second of its minute.
RULE_FIRES_AT = timedelta(seconds=30)


def _body(receiver: Receiver, run_at: str, max_attempts: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "action": "webhook",
        "payload": {"url": f"{receiver.url}/hook", "data": {"msg": "fault"}},
        "run_at": run_at,
    }
    if max_attempts is not None:
        body["retry"] = {"max_attempts": max_attempts}
    return body


def _schedule(handlers: Handlers, body: dict[str, Any]) -> dict[str, Any]:
    response = handlers.api("POST", "/schedule-task", body)
    assert response["statusCode"] == 201, response["body"]
    return body_of(response)


def _rows(aws: Aws) -> list[dict[str, Any]]:
    return aws.dynamodb.scan(TableName=TABLE_NAME, ConsistentRead=True)["Items"]


def _status(aws: Aws, task_id: str) -> str | None:
    item = aws.item(task_id)
    return item["status"]["S"] if item else None


def _rule(task_id: str) -> str:
    return f"{RULE_PREFIX}-{task_id}"


def _rule_targets(aws: Aws, name: str) -> list[dict[str, Any]] | None:
    """The rule's targets, or None when there is no such rule."""
    if name not in aws.rule_names():
        return None
    return aws.events.list_targets_by_rule(Rule=name)["Targets"]


def _rule_events(aws: Aws, task_id: str) -> list[dict[str, Any]]:
    """What the task's rule, if any, invokes the execute function with."""
    return [json.loads(t["Input"]) for t in _rule_targets(aws, _rule(task_id)) or []]


def _queued(aws: Aws, task_id: str) -> list[dict[str, Any]]:
    """Retry-queue message bodies for the task: delayed, visible or in flight."""
    return [
        m["body"]
        for m in aws.queue_messages(aws.retry_queue_url)
        if m["body"].get("task_id") == task_id
    ]


def _dead_letters(aws: Aws, task_id: str) -> list[dict[str, Any]]:
    return [
        m["body"]
        for m in aws.queue_messages(aws.dead_letter_queue_url)
        if m["body"].get("task_id") == task_id
    ]


def _moto_queue(url: str) -> Any:
    from moto.sqs.models import sqs_backends

    return sqs_backends["123456789012"][REGION].queues[url.rsplit("/", 1)[1]]


def _assert_503(response: dict[str, Any]) -> None:
    assert response["statusCode"] == 503, response
    body = body_of(response)
    assert isinstance(body["message"], str)
    assert body["message"]


def _assert_successes(receiver: Receiver, answers: tuple[int, ...], successes: int) -> None:
    """`successes` successful deliveries (the receiver answered `answers` in order, the last one
    repeating), each of its own occurrence: a `webhook-id` is one occurrence's run."""
    answered = [answers[min(i, len(answers) - 1)] for i in range(len(receiver.requests))]
    delivered = [
        request.headers["webhook-id"]
        for request, status in zip(receiver.requests, answered, strict=True)
        if 200 <= status < 300
    ]
    assert len(delivered) == len(set(delivered)), "an occurrence was delivered successfully twice"
    assert len(delivered) == successes


@dataclass(order=True)
class _Delivery:
    at: datetime
    order: int
    event: dict[str, Any] = field(compare=False)
    message: Any = field(compare=False)  # moto's message; None for a rule's event
    again: bool = field(default=False, compare=False)  # a failed invocation's, delivered again


class ExecuteSide:
    """The execute function for one task, on a fake clock, with SQS and Lambda around it.

    Its objects are the handler's own (built by `wiring` from the handler module's settings and
    clients, so the faults apply), on a `FakeClock`. SQS is played from moto's queue: a message
    is delivered once its delay has passed on that clock, and removed once an invocation has
    processed it; a failed invocation is delivered again (`QUEUE_REDELIVERY`, or
    `EVENT_REDELIVERY` for a rule's event). After every invocation it checks that a `scheduled`
    task has something on its way for its next occurrence."""

    def __init__(self, handlers: Handlers, aws: Aws, task_id: str) -> None:
        execute = handlers.execute
        self.clock = FakeClock(datetime.now(UTC))
        self._executor = wiring.executor(execute.settings, execute.clients, clock=self.clock)
        self._aws = aws
        self._task_id = task_id
        self._queue = _moto_queue(aws.retry_queue_url)
        self._agenda: list[_Delivery] = []
        self._seen: set[str] = set()
        self._order = itertools.count()
        self.outcomes: list[str] = []
        self._collect()

    def fire(self, event: dict[str, Any], at: datetime) -> None:
        """A rule's event, invoked by EventBridge at `at`."""
        self._agenda.append(_Delivery(at, next(self._order), event, None))

    def fire_rule(self) -> None:
        """The task's rule, if it has a target, fires in its minute."""
        for event in _rule_events(self._aws, self._task_id):
            self.fire(event, trigger_minute(parse_stored_utc(event["due"])) + RULE_FIRES_AT)

    def play(self, until: datetime | None = None) -> list[str]:
        """Delivers what comes, in order, until nothing is left or what comes next is for an
        occurrence at `until` or later; returns every outcome so far."""
        while self._agenda:
            delivery = min(self._agenda)
            due = delivery.event.get("due")
            if until is not None and due is not None and parse_stored_utc(due) >= until:
                break
            self._agenda.remove(delivery)
            self.clock.current = max(self.clock.current, delivery.at)
            outcome = self._invoke(delivery.event)
            self.outcomes.append(outcome)
            if outcome == RAISED:
                again = QUEUE_REDELIVERY if delivery.message else EVENT_REDELIVERY
                self._agenda.append(
                    _Delivery(
                        self.clock.current + again,
                        next(self._order),
                        delivery.event,
                        delivery.message,
                        again=True,
                    )
                )
            elif delivery.message is not None:
                self._queue._messages.remove(delivery.message)  # the event source deletes it
            self._collect()
            self.assert_never_stranded()
            assert len(self.outcomes) < 200, "deliveries never end"
        return self.outcomes

    def armed_for(self) -> set[str]:
        """The occurrences something is on its way for: queued, to be delivered again, or in the
        event of the task's rule."""
        dues = {d.event.get("due") for d in self._agenda}
        return dues | {event.get("due") for event in _rule_events(self._aws, self._task_id)}

    def assert_never_stranded(self) -> None:
        """A `scheduled` task has something on its way for its next occurrence, or, waiting for a
        retry, a failed invocation delivered again (which queues the retry it recorded)."""
        item = self._aws.item(self._task_id)
        if item and item["status"]["S"] == "scheduled":
            next_run_at = item["next_run_at"]["S"]
            retrying = int(item.get("run_attempts", {"N": "0"})["N"]) > 0
            redelivering = any(delivery.again for delivery in self._agenda)
            assert next_run_at in self.armed_for() or (retrying and redelivering), (
                f"the task is scheduled for {next_run_at} with nothing to run it"
            )

    def _invoke(self, event: dict[str, Any]) -> str:
        execute_event = parse_execute_event(event)
        assert execute_event is not None
        try:
            return self._executor.run(execute_event).outcome.value
        except DependencyFailure:
            return RAISED

    def _collect(self) -> None:
        """New messages for the task, sent during the last invocation (on its clock)."""
        for message in list(self._queue._messages):
            body = json.loads(message.body)
            if message.id in self._seen or body.get("task_id") != self._task_id:
                continue
            self._seen.add(message.id)
            delay_ms = (
                message.delayed_until - message.sent_timestamp if message.delayed_until else 0
            )
            at = self.clock.current + timedelta(milliseconds=delay_ms)
            self._agenda.append(_Delivery(at, next(self._order), body, message))


@dataclass(frozen=True)
class Call:
    """Calls to fault: the `calls`th of the operation on the client, counted from when the fault
    is set; `kind` None is the test's kind."""

    client: str
    operation: str
    calls: tuple[int, ...] = (1,)
    kind: str | None = None


def _inject(clients: dict[str, Any], calls: tuple[Call, ...], kind: str) -> list[Fault]:
    faults = []
    for call in calls:
        chosen = call.kind or kind
        attempts = 1 if chosen == ANSWER_LOST_ONCE else None
        chosen = ANSWER_LOST if chosen == ANSWER_LOST_ONCE else chosen
        client_name, when = call.client, None
        if client_name.endswith("_sqs"):  # one SQS client serves both queues
            url = clients[client_name]
            client_name, when = "sqs", lambda params, url=url: params.get("QueueUrl") == url
        faults.append(
            Fault(
                clients[client_name],
                call.operation,
                kind=chosen,
                calls=call.calls,
                attempts=attempts,
                when=when,
            )
        )
    return faults


def _remove(faults: list[Fault]) -> None:
    for fault in faults:
        fault.remove()


# -- 1. scheduling ------------------------------------------------------------------------------


def _api_clients(handlers: Handlers) -> dict[str, Any]:
    clients = handlers.schedule.clients
    return {"dynamodb": clients.dynamodb, "events": clients.events, "sqs": clients.sqs}


class NewTaskIds:
    """Spies on the first call of either way of scheduling (the task's message, its rule), to
    learn the new task's id when no row says it. Set before the faults: a fault raising first
    would hide the call from it."""

    def __init__(self, handlers: Handlers) -> None:
        clients = handlers.schedule.clients
        self._sent = Fault(clients.sqs, "SendMessage", calls=())
        self._ruled = Fault(clients.events, "PutRule", calls=())

    def only(self) -> str:
        ids = {json.loads(p["MessageBody"])["task_id"] for p in self._sent.params}
        ids |= {p["Name"].removeprefix(f"{RULE_PREFIX}-") for p in self._ruled.params}
        (task_id,) = ids
        self._sent.remove()
        self._ruled.remove()
        return task_id


def _run_at(trigger: str) -> str:
    """Near: straight into the queue; far: a rule."""
    if trigger == "near":
        return seconds_from_now(2)
    return format_utc(beyond_the_queue())


@dataclass(frozen=True)
class ApiSite:
    """A call of Scheduler.schedule failing (the last of `calls`, with the test's kind; those
    before it fail as they say, to reach it)."""

    trigger: str  # "near": a queued message; "far": a rule
    calls: tuple[Call, ...]
    # The undo's own EventBridge call failed: its rule may stay, without a target (it can never
    # run anything), since EventBridge did not let it go.
    targetless_rule_may_stay: bool = False


# Arm first (SendMessage for a near task; PutRule, PutTargets for a far one), then PutItem; a
# failed PutItem is read back (GetItem), and if not found undone: the rule removed
# (RemoveTargets, DeleteRule) and the row deleted (DeleteItem, conditional).
_NOT_STORED = Call("dynamodb", "PutItem", kind=THROTTLE)
_STORED_UNANSWERED = Call("dynamodb", "PutItem", kind=ANSWER_LOST)


API_SITES = {
    "near-SendMessage": ApiSite("near", (Call("sqs", "SendMessage"),)),
    "near-PutItem": ApiSite("near", (Call("dynamodb", "PutItem"),)),
    "near-GetItem": ApiSite("near", (_STORED_UNANSWERED, Call("dynamodb", "GetItem"))),
    "near-DeleteItem": ApiSite("near", (_NOT_STORED, Call("dynamodb", "DeleteItem"))),
    "far-PutRule": ApiSite("far", (Call("events", "PutRule"),)),
    "far-PutTargets": ApiSite("far", (Call("events", "PutTargets"),)),
    "far-PutItem": ApiSite("far", (Call("dynamodb", "PutItem"),)),
    "far-GetItem": ApiSite("far", (_STORED_UNANSWERED, Call("dynamodb", "GetItem"))),
    "far-DeleteItem": ApiSite("far", (_NOT_STORED, Call("dynamodb", "DeleteItem"))),
    "far-undo-RemoveTargets": ApiSite(
        "far", (_NOT_STORED, Call("events", "RemoveTargets")), targetless_rule_may_stay=True
    ),
    "far-undo-DeleteRule": ApiSite(
        "far", (_NOT_STORED, Call("events", "DeleteRule")), targetless_rule_may_stay=True
    ),
}


def _failing_schedule_params() -> list[Any]:
    params = []
    for site_id, site in API_SITES.items():
        for kind in (*REFUSED_KINDS, ANSWER_LOST):
            if site.calls[-1] == Call("dynamodb", "PutItem") and kind == ANSWER_LOST:
                continue  # the write landed: read back, it is a success (test below)
            params.append(pytest.param(site, kind, id=f"{site_id}-{kind}"))
    return params


def _assert_nothing_runs(handlers: Handlers, aws: Aws, receiver: Receiver, task_id: str) -> None:
    """Whatever was armed for a task that was never stored fires, finds no task, looks again for
    a few seconds, and does nothing; a rule removes itself then."""
    side = ExecuteSide(handlers, aws, task_id)
    side.fire_rule()
    outcomes = side.play()
    assert set(outcomes) <= {"waiting", "unknown_task"}, outcomes
    assert receiver.requests == []
    assert _queued(aws, task_id) == []
    assert _rule_events(aws, task_id) == []
    assert _rows(aws) == []


@pytest.mark.parametrize(("site", "kind"), _failing_schedule_params())
def test_a_failing_scheduling_call_answers_503_and_leaves_nothing(
    aws: Aws, handlers: Handlers, receiver: Receiver, site: ApiSite, kind: str
) -> None:
    """Every attempt of the call fails (or, for the call kinds, the call is refused outright)."""
    ids = NewTaskIds(handlers)
    faults = _inject(_api_clients(handlers), site.calls, kind)

    response = handlers.api("POST", "/schedule-task", _body(receiver, _run_at(site.trigger)))

    assert all(fault.injected >= 1 for fault in faults), "a faulted call was never made"
    _remove(faults)
    _assert_503(response)
    task_id = ids.only()
    assert handlers.api("GET", f"/tasks/{task_id}")["statusCode"] == 404
    assert _rows(aws) == []
    if not site.targetless_rule_may_stay:
        assert aws.rule_names() == []
    queued = 1 if site.trigger == "near" else 0
    if site.calls[-1] == Call("sqs", "SendMessage"):
        queued = 3 if kind == ANSWER_LOST else 0  # each attempt applied, or none
    assert len(_queued(aws, task_id)) == queued
    _assert_nothing_runs(handlers, aws, receiver, task_id)


def _assert_runs_once(handlers: Handlers, aws: Aws, receiver: Receiver, task_id: str) -> None:
    """Every message armed for the task is delivered: it runs once, the others find it done."""
    side = ExecuteSide(handlers, aws, task_id)
    outcomes = side.play()
    assert outcomes[0] == "completed"
    assert set(outcomes[1:]) <= {"not_scheduled"}
    assert len(receiver.requests) == 1
    assert _status(aws, task_id) == "completed"


# The first attempt fails, before reaching AWS or applied with its answer lost; the SDK's retry
# gets through, and a repeated write is recognised as the scheduler's own.
ONCE_SITES = {
    "near-SendMessage": ApiSite("near", (Call("sqs", "SendMessage"),)),
    "near-PutItem": ApiSite("near", (Call("dynamodb", "PutItem"),)),
    "far-PutRule": ApiSite("far", (Call("events", "PutRule"),)),
    "far-PutTargets": ApiSite("far", (Call("events", "PutTargets"),)),
    "far-PutItem": ApiSite("far", (Call("dynamodb", "PutItem"),)),
}


@pytest.mark.parametrize("kind", [UNREACHABLE, ANSWER_LOST])
@pytest.mark.parametrize("site", ONCE_SITES.values(), ids=ONCE_SITES.keys())
def test_a_scheduling_call_failing_once_is_retried_and_schedules_one_task(
    aws: Aws, handlers: Handlers, receiver: Receiver, site: ApiSite, kind: str
) -> None:
    (call,) = site.calls
    fault = Fault(_api_clients(handlers)[call.client], call.operation, kind=kind, attempts=1)

    run_at = _run_at(site.trigger)
    response = handlers.api("POST", "/schedule-task", _body(receiver, run_at))

    assert (fault.injected, fault.attempts_seen) == (1, 2)
    fault.remove()
    assert response["statusCode"] == 201, response["body"]
    task_id = body_of(response)["task_id"]
    assert [row["task_id"]["S"] for row in _rows(aws)] == [task_id]
    assert body_of(handlers.api("GET", f"/tasks/{task_id}"))["status"] == "scheduled"
    if site.trigger == "far":
        assert aws.rule_names() == [_rule(task_id)]
        assert _rule_events(aws, task_id) == [{"task_id": task_id, "due": run_at}]
        assert _queued(aws, task_id) == []
        return
    assert aws.rule_names() == []
    # Each message that went out (two when the first one's answer was lost) is delivered.
    sent = 2 if (call.operation, kind) == ("SendMessage", ANSWER_LOST) else 1
    assert _queued(aws, task_id) == [{"task_id": task_id, "due": run_at}] * sent
    _assert_runs_once(handlers, aws, receiver, task_id)


@pytest.mark.parametrize("trigger", ["near", "far"])
def test_a_put_item_applied_but_unanswered_is_a_success(
    aws: Aws, handlers: Handlers, receiver: Receiver, trigger: str
) -> None:
    """Every answer of PutItem is lost, but the write landed: read back, the task is scheduled
    (201), armed, and runs once."""
    (fault,) = _inject(_api_clients(handlers), (Call("dynamodb", "PutItem"),), ANSWER_LOST)
    run_at = _run_at(trigger)

    response = handlers.api("POST", "/schedule-task", _body(receiver, run_at))

    assert fault.injected == 3
    fault.remove()
    assert response["statusCode"] == 201, response["body"]
    task_id = body_of(response)["task_id"]
    assert body_of(handlers.api("GET", f"/tasks/{task_id}"))["status"] == "scheduled"
    if trigger == "far":
        assert _rule_events(aws, task_id) == [{"task_id": task_id, "due": run_at}]
    else:
        _assert_runs_once(handlers, aws, receiver, task_id)


@pytest.mark.parametrize("trigger", ["near", "far"])
def test_a_landed_row_the_undo_cannot_delete_keeps_its_trigger_and_runs_once(
    aws: Aws, handlers: Handlers, receiver: Receiver, trigger: str
) -> None:
    """PutItem lands with every answer lost, the read-back fails, and so does the undo's
    DeleteItem. Nothing can make the row invisible then; what must hold is that a task left
    `scheduled` is never left without its trigger: it runs, once, on time (its client was
    answered 503: the contract's Idempotency-Key is what makes a retry of it safe)."""
    ids = NewTaskIds(handlers)
    calls = (_STORED_UNANSWERED, Call("dynamodb", "GetItem"), Call("dynamodb", "DeleteItem"))
    faults = _inject(_api_clients(handlers), calls, THROTTLE)

    response = handlers.api("POST", "/schedule-task", _body(receiver, _run_at(trigger)))

    _remove(faults)
    _assert_503(response)
    task_id = ids.only()
    assert _status(aws, task_id) == "scheduled"
    side = ExecuteSide(handlers, aws, task_id)
    side.fire_rule()
    side.assert_never_stranded()
    side.play()
    assert _status(aws, task_id) == "completed"
    _assert_successes(receiver, (200,), 1)


def test_a_rule_whose_quiet_delete_failed_once_is_removed(
    aws: Aws, handlers: Handlers, receiver: Receiver
) -> None:
    """PutTargets fails; deleting the untargeted rule fails once: something must remove it."""
    events = handlers.schedule.clients.events
    Fault(events, "PutTargets")
    delete = Fault(events, "DeleteRule")

    response = handlers.api("POST", "/schedule-task", _body(receiver, _run_at("far")))

    _assert_503(response)
    assert delete.injected == 1
    assert _rows(aws) == []
    assert aws.rule_names() == []


def test_a_rule_that_cannot_be_deleted_is_left_without_a_target(
    aws: Aws, handlers: Handlers, receiver: Receiver
) -> None:
    """PutTargets fails and EventBridge keeps refusing DeleteRule: the rule cannot be removed,
    but it has no target, so it can never run anything."""
    ids = NewTaskIds(handlers)
    events = handlers.schedule.clients.events
    Fault(events, "PutTargets")
    Fault(events, "DeleteRule", calls=None)

    response = handlers.api("POST", "/schedule-task", _body(receiver, _run_at("far")))

    _assert_503(response)
    task_id = ids.only()
    assert handlers.api("GET", f"/tasks/{task_id}")["statusCode"] == 404
    assert _rows(aws) == []
    assert aws.rule_names() == [_rule(task_id)]
    assert _rule_targets(aws, _rule(task_id)) == []


# -- 2. execution -------------------------------------------------------------------------------


def _execute_clients(handlers: Handlers, aws: Aws) -> dict[str, Any]:
    clients = handlers.execute.clients
    return {
        "dynamodb": clients.dynamodb,
        "events": clients.events,
        "secretsmanager": clients.secretsmanager,
        "sqs": clients.sqs,
        # One SQS client serves both queues; a case names the queue whose send it faults.
        "retry_sqs": aws.retry_queue_url,
        "dead_letter_sqs": aws.dead_letter_queue_url,
    }


@dataclass(frozen=True)
class Expect:
    """How a faulted run plays out, every delivery included."""

    outcomes: tuple[str, ...] | None  # every invocation's outcome, in order (None: not checked)
    final: str = "completed"  # the task's status at the end
    successes: int = 1  # successful deliveries to the receiver (one per occurrence at most)
    dead_letters: int = 0


@dataclass(frozen=True)
class RunSite:
    """A call of a run failing, and how that plays out for each kind of fault."""

    scenario: str  # see _start
    calls: tuple[Call, ...]
    refused: Expect  # throttle, server error, unreachable: the call changed nothing
    lost: Expect  # applied, every answer lost
    lost_once: Expect | None = None  # applied, the first answer lost: the SDK's retry meets it


_CLAIM = Call("dynamodb", "UpdateItem", (1,))
_RECORD = Call("dynamodb", "UpdateItem", (2,))  # the claim is the first UpdateItem


_FAILED_UNDELIVERED = {"final": "failed", "successes": 0, "dead_letters": 1}
# A recurring task's run recorded, its next occurrence armed (not run here).
_NEXT = {"final": "scheduled"}

RUN_SITES = {
    # A near one-shot task: its queued message; UpdateItem claim, GetSecretValue, the webhook,
    # UpdateItem record (nothing to release: a message is gone once delivered).
    "claim": RunSite(
        "near",
        (_CLAIM,),
        refused=Expect((RAISED, "completed")),  # SQS delivers it again: run late, once
        lost=Expect(("completed",)),  # read back: its own claim token
        lost_once=Expect(("completed",)),  # the retry's refusal returns the claim it made
    ),
    # The claim landed, unanswered, and cannot be read back: the task stays `running`, found
    # interrupted when delivered again, and recorded failed (never delivered: safe side).
    "claim-read-back": RunSite(
        "near",
        (Call("dynamodb", "UpdateItem", kind=ANSWER_LOST), Call("dynamodb", "GetItem")),
        refused=Expect((RAISED, "failed"), **_FAILED_UNDELIVERED),
        lost=Expect((RAISED, "failed"), **_FAILED_UNDELIVERED),
    ),
    # The secret cannot be read: a failed attempt (nothing sent), retried through the queue.
    "secret": RunSite(
        "near",
        (Call("secretsmanager", "GetSecretValue"),),
        refused=Expect(("retrying", "completed")),
        lost=Expect(("retrying", "completed")),
    ),
    # Delivered, not recorded: `running`, interrupted when delivered again, recorded failed
    # although the receiver got it (never delivered twice).
    "record": RunSite(
        "near",
        (_RECORD,),
        refused=Expect((RAISED, "failed"), final="failed", dead_letters=1),
        lost=Expect((RAISED, "not_scheduled")),
        lost_once=Expect(("completed",)),  # the retry's refusal shows its own token: recorded
    ),
    # Answered 500, then 200: UpdateItem record_retry, SendMessage (the retry), and the retry's
    # claim and record.
    "retry-record": RunSite(
        "near_retry",
        (_RECORD,),
        refused=Expect((RAISED, "failed"), **_FAILED_UNDELIVERED),
        lost=Expect(None),
        lost_once=Expect(None),
    ),
    "retry-SendMessage": RunSite(
        "near_retry",
        (Call("retry_sqs", "SendMessage"),),
        refused=Expect(None),
        # Three retry messages: the first runs it, the others and the redelivery find it done.
        lost=Expect((RAISED, "completed", "not_scheduled", "not_scheduled", "not_scheduled")),
    ),
    # One attempt allowed, answered 500: SendMessage (the dead letter, before the record), then
    # UpdateItem record.
    "dead-letter": RunSite(
        "near_dead",
        (Call("dead_letter_sqs", "SendMessage"),),
        refused=Expect((RAISED, "failed"), **_FAILED_UNDELIVERED),
        # Sent three times, answers lost, then once more when the interrupted run is recorded.
        lost=Expect((RAISED, "failed"), final="failed", successes=0, dead_letters=4),
    ),
    "dead-letter-record": RunSite(
        "near_dead",
        (_RECORD,),
        refused=Expect((RAISED, "failed"), final="failed", successes=0, dead_letters=2),
        lost=Expect((RAISED, "not_scheduled"), **_FAILED_UNDELIVERED),
    ),
    # A far one-shot task: its rule's event, 90 s early, hops through the queue (SendMessage);
    # then the claim, the webhook, the record, and the rule released (RemoveTargets, DeleteRule).
    "hop": RunSite(
        "far",
        (Call("retry_sqs", "SendMessage"),),
        refused=Expect((RAISED, "waiting", "completed")),  # Lambda retries the rule's event
        lost=Expect((RAISED, "waiting", "completed", *["not_scheduled"] * 3)),
    ),
    "release-RemoveTargets": RunSite(
        "far",
        (Call("events", "RemoveTargets"),),
        refused=Expect(("waiting", RAISED, "not_scheduled")),  # delivered again, it releases
        lost=Expect(("waiting", RAISED, "not_scheduled")),
    ),
    "release-DeleteRule": RunSite(
        "far",
        (Call("events", "DeleteRule"),),
        refused=Expect(("waiting", RAISED, "not_scheduled")),
        lost=Expect(("waiting", RAISED, "not_scheduled")),
    ),
    "far-record": RunSite(
        "far",
        (_RECORD,),
        refused=Expect(("waiting", RAISED, "failed"), final="failed", dead_letters=1),
        lost=Expect(("waiting", RAISED, "not_scheduled")),
        lost_once=Expect(None),
    ),
    # An event without its occurrence (an older version's rule): GetItem reads the task's.
    "undated-GetItem": RunSite(
        "undated",
        (Call("dynamodb", "GetItem"),),
        refused=Expect((RAISED, "completed")),
        lost=Expect((RAISED, "completed")),
    ),
    # A far recurring task: after its run, the next occurrence's rule is moved on (PutRule,
    # PutTargets); failing, the queue carries it instead, 15 minutes at a time.
    "rearm-PutRule": RunSite(
        "recurring_far",
        (Call("events", "PutRule"),),
        refused=Expect(("waiting", "rescheduled"), **_NEXT),
        lost=Expect(("waiting", "rescheduled"), **_NEXT),
    ),
    "rearm-PutTargets": RunSite(
        "recurring_far",
        (Call("events", "PutTargets"),),
        refused=Expect(("waiting", "rescheduled"), **_NEXT),
        lost=Expect(("waiting", "rescheduled"), **_NEXT),
    ),
    # Neither the rule nor the queue (its second SendMessage: the first was the hop): the run
    # stays `running`, interrupted when delivered again, and its next occurrence is armed then.
    "rearm-and-queue": RunSite(
        "recurring_far",
        (Call("events", "PutRule"), Call("retry_sqs", "SendMessage", (2,))),
        refused=Expect(("waiting", RAISED, "rescheduled"), **_NEXT),
        lost=Expect(("waiting", RAISED, "rescheduled"), **_NEXT),
    ),
    "recurring-record": RunSite(
        "recurring_far",
        (_RECORD,),
        refused=Expect(("waiting", RAISED, "rescheduled"), **_NEXT),
        lost=Expect(("waiting", RAISED, "not_due"), **_NEXT),  # recorded: the event is stale
        lost_once=Expect(("waiting", "rescheduled"), **_NEXT),
    ),
    # A recurring task every minute: its next occurrence is queued (SendMessage); failing, it
    # is queued again (the fallback). Two occurrences are played.
    "next-SendMessage": RunSite(
        "recurring_near",
        (Call("retry_sqs", "SendMessage"),),
        refused=Expect(("rescheduled", "rescheduled"), final="scheduled", successes=2),
        # Four messages for the second occurrence: one runs it, the others are stale.
        lost=Expect(
            ("rescheduled", "rescheduled", *["not_due"] * 3), final="scheduled", successes=2
        ),
    ),
    # Both sends fail: `running` until delivered again, then its next occurrence is armed from
    # then on (the occurrence missed meanwhile is skipped; its messages, when lost answers
    # sent them, look again for a while and are dropped).
    "next-unarmed": RunSite(
        "recurring_near",
        (Call("retry_sqs", "SendMessage", (1, 2)),),  # one fault: a first one would hide the call
        refused=Expect((RAISED, "rescheduled"), final="scheduled"),
        lost=Expect(None, final="scheduled"),
    ),
}


def _failing_run_params() -> list[Any]:
    params = []
    for site_id, site in RUN_SITES.items():
        expectations = [(kind, site.refused) for kind in REFUSED_KINDS]
        expectations.append((ANSWER_LOST, site.lost))
        if site.lost_once:
            expectations.append((ANSWER_LOST_ONCE, site.lost_once))
        for kind, expect in expectations:
            params.append(pytest.param(site, kind, expect, id=f"{site_id}-{kind}"))
    return params


@dataclass(frozen=True)
class Started:
    task_id: str
    side: ExecuteSide  # its first event on the way
    answers: tuple[int, ...]  # what the receiver answers, in order (the last one repeats)
    until: datetime | None  # the occurrence from which on nothing is played


def _start(scenario: str, handlers: Handlers, aws: Aws, receiver: Receiver) -> Started:
    """Schedules the scenario's task through the API: `near`, one-shot within the queue's reach
    (a queued message), answered 200; `near_retry`, the same answered 500 then 200; `near_dead`,
    one attempt allowed, answered 500; `far`, one-shot on a rule; `undated`, the same run by an
    event without its occurrence (an older version's rule); `recurring_far`, hourly (each
    occurrence on the rule); `recurring_near`, every minute (each occurrence a queued message)."""
    answers, max_attempts = (200,), None
    if scenario == "near_retry":
        answers = (500, 200)
    elif scenario == "near_dead":
        answers, max_attempts = (500,), 1
    if scenario.startswith("near"):
        run_at = seconds_from_now(2)
    elif scenario == "recurring_near":
        run_at = "cron(* * * * ? *)"
    elif scenario == "recurring_far":  # hourly, at a minute half an hour from now
        run_at = f"cron({(datetime.now(UTC) + timedelta(minutes=30)).minute} * * * ? *)"
    else:
        run_at = _run_at("far")
    receiver.answers = [Answer(status=status) for status in answers]
    answer = _schedule(handlers, _body(receiver, run_at, max_attempts))
    task_id = answer["task_id"]
    due = parse_stored_utc(answer.get("next_run_at") or answer["run_at"])
    side = ExecuteSide(handlers, aws, task_id)
    if scenario == "undated":
        side.fire({"task_id": task_id}, due)
    else:
        side.fire_rule()
    played = {"recurring_near": timedelta(minutes=2), "recurring_far": timedelta(hours=1)}
    until = due + played[scenario] if scenario in played else None
    return Started(task_id, side, answers, until)


@pytest.mark.parametrize(("site", "kind", "expect"), _failing_run_params())
def test_a_failing_call_in_a_run_ends_consistent(
    aws: Aws, handlers: Handlers, receiver: Receiver, site: RunSite, kind: str, expect: Expect
) -> None:
    started = _start(site.scenario, handlers, aws, receiver)
    faults = _inject(_execute_clients(handlers, aws), site.calls, kind)

    outcomes = started.side.play(started.until)

    assert all(fault.injected >= 1 for fault in faults), "a faulted call was never made"
    if expect.outcomes is not None:
        assert tuple(outcomes) == expect.outcomes
    task_id = started.task_id
    assert _status(aws, task_id) == expect.final
    _assert_successes(receiver, started.answers, expect.successes)
    letters = _dead_letters(aws, task_id)
    assert len(letters) == expect.dead_letters
    assert all(letter["status"] == "failed" for letter in letters)
    if expect.final in FINISHED:
        assert aws.rule_names() == []
        assert _queued(aws, task_id) == []
    else:  # what comes next is armed (checked after every delivery too)
        next_run_at = aws.item(task_id)["next_run_at"]["S"]
        assert started.until is not None
        assert parse_stored_utc(next_run_at) >= started.until
        assert next_run_at in started.side.armed_for()


# -- 3. the handler around it -------------------------------------------------------------------


def test_a_failing_run_of_a_queued_record_is_reported_and_its_redelivery_completes(
    aws: Aws, handlers: Handlers, receiver: Receiver
) -> None:
    """The execute handler itself, in real time: a record whose run fails is reported as a batch
    item failure (SQS delivers it again), not raised, and the redelivery runs the task once."""
    task_id = _schedule(handlers, _body(receiver, seconds_from_now(2)))["task_id"]
    fault = Fault(handlers.execute.clients.dynamodb, "UpdateItem", kind=SERVER_ERROR)
    deadline = time.monotonic() + 10
    messages: list[dict[str, Any]] = []
    while not messages and time.monotonic() < deadline:  # its delay over, SQS releases it
        messages = aws.sqs.receive_message(QueueUrl=aws.retry_queue_url, WaitTimeSeconds=1).get(
            "Messages", []
        )
    (message,) = messages
    assert json.loads(message["Body"])["task_id"] == task_id

    first = handlers.execute.lambda_handler(sqs_event(message), context())

    assert fault.injected == 1
    assert first == {"batchItemFailures": [{"itemIdentifier": message["MessageId"]}]}
    assert _status(aws, task_id) == "scheduled"
    fault.remove()
    assert handlers.execute.lambda_handler(sqs_event(message), context()) == {
        "batchItemFailures": []
    }
    assert _status(aws, task_id) == "completed"
    assert len(receiver.requests) == 1


def test_a_fault_that_outlasts_the_sdk_retries_is_a_dependency_failure(
    aws: Aws, handlers: Handlers, receiver: Receiver
) -> None:
    """Not ClientError only: DynamoDB unreachable on every attempt (a BotoCoreError) fails the
    invocation the same way, and the retry completes it."""
    run_at = seconds_from_now(2)
    task_id = _schedule(handlers, _body(receiver, run_at))["task_id"]
    fault = Fault(handlers.execute.clients.dynamodb, "UpdateItem", kind=UNREACHABLE)
    with pytest.raises(DependencyFailure) as raised:
        handlers.run(task_id)  # its queued message, once its delay is over
    assert isinstance(raised.value.__cause__, BotoCoreError)
    assert fault.attempts_seen == 3
    assert _status(aws, task_id) == "scheduled"
    fault.remove()
    assert handlers.run(task_id, run_at)["outcome"] == "completed"  # delivered again
    assert len(receiver.requests) == 1
