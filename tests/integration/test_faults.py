"""Fault injection: AWS calls failing at each step of scheduling and of running a task.

Faults are injected through botocore's public event hooks on the very clients the handler modules
hold (`handlers.schedule.clients.dynamodb`, `handlers.execute.clients.sqs`, ...: the clients
each handler module builds its objects from); the scheduler's own code is not patched. What must
hold (contract sections 2 and 5):

- scheduling: a failing call answers 503 with a JSON `message` and leaves nothing a client can see
  (no rule, no `scheduled` row; a `pending` row only when the undo's own DeleteItem failed too);
- running: the faulted invocation either fails (so Lambda, or SQS, delivers it again) or records
  the outcome; delivering it again ends in a consistent state; a receiver gets at most one
  successful delivery; and a task is never left `scheduled` with nothing to run it.

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
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from task_scheduler.aws import client as scheduler_client
from task_scheduler.errors import DependencyFailure
from task_scheduler.model import INTERRUPTED_AFTER
from task_scheduler.timing import format_utc, parse_stored_utc
from tests.integration.conftest import (
    RULE_PREFIX,
    TABLE_NAME,
    Aws,
    Handlers,
    body_of,
    context,
    sqs_event,
)
from tests.support.lambda_runtime import ROOT, load_handler_module
from tests.support.receiver import Answer, Receiver
from tests.support.timing import (
    earliest_rule_minute,
    seconds_from_now,
    wait_until_its_rule_could_fire,
)

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

RAISED = "raised"  # the invocation failed: Lambda retries an asynchronous event
BATCH_FAILURE = "batch_failure"  # the SQS record was reported failed: SQS delivers it again
QUEUE_OK = "ok"  # the SQS record was processed (the event source deletes it)
FINISHED = ("completed", "failed", "cancelled")


def _body(
    receiver: Receiver, run_at: str, max_attempts: int | None = None, path: str = "/hook"
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "action": "webhook",
        "payload": {"url": f"{receiver.url}{path}", "data": {"msg": "fault"}},
        "run_at": run_at,
    }
    if max_attempts is not None:
        body["retry"] = {"max_attempts": max_attempts}
    return body


def _schedule(
    handlers: Handlers, receiver: Receiver, run_at: str, max_attempts: int | None = None, **kw: Any
) -> str:
    response = handlers.api("POST", "/schedule-task", _body(receiver, run_at, max_attempts, **kw))
    assert response["statusCode"] == 201, response["body"]
    return body_of(response)["task_id"]


def _soon() -> str:
    """A run_at a second or so ahead (dispatched directly). Times are stored in whole seconds, cut
    down: 1.5 s leaves half a second for the request to arrive while it is still in the future."""
    return seconds_from_now(1.5)


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


def _queued(aws: Aws, task_id: str) -> list[dict[str, Any]]:
    """Retry-queue messages for the task: delayed, visible or in flight."""
    return [m for m in aws.queue_messages(aws.retry_queue_url) if m["body"] == {"task_id": task_id}]


def _dead_letters(aws: Aws, task_id: str) -> list[dict[str, Any]]:
    return [
        m["body"]
        for m in aws.queue_messages(aws.dead_letter_queue_url)
        if m["body"].get("task_id") == task_id
    ]


def _ways_to_run(aws: Aws, task_id: str) -> set[str]:
    """What will make the task progress without a client: its end state, an armed rule, a
    message in the retry queue."""
    ways = set()
    if _status(aws, task_id) in FINISHED:
        ways.add("finished")
    if _rule_targets(aws, _rule(task_id)):
        ways.add("rule")
    if _queued(aws, task_id):
        ways.add("queued")
    return ways


def _assert_503(response: dict[str, Any]) -> None:
    assert response["statusCode"] == 503, response
    body = body_of(response)
    assert isinstance(body["message"], str)
    assert body["message"]


def _invoke_direct(handlers: Handlers, task_id: str) -> str:
    """The event a rule or a direct dispatch delivers; a raise is what Lambda retries."""
    try:
        return handlers.run(task_id)["outcome"]
    except DependencyFailure:
        return RAISED


def _receive(aws: Aws, task_id: str, timeout: float = 10) -> dict[str, Any] | None:
    """The next retry message for the task once SQS releases it (its delay over)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # One at a time: a received message stays in flight (invisible) until it is deleted.
        for message in aws.sqs.receive_message(
            QueueUrl=aws.retry_queue_url, WaitTimeSeconds=1, MaxNumberOfMessages=1
        ).get("Messages", []):
            assert json.loads(message["Body"]) == {"task_id": task_id}
            return message
    return None


def _invoke_queued(handlers: Handlers, aws: Aws, message: dict[str, Any]) -> str:
    """Plays the SQS event source: one record; deleted unless reported as failed."""
    result = handlers.execute.lambda_handler(sqs_event(message), context())
    failures = result["batchItemFailures"]
    if failures:
        assert failures == [{"itemIdentifier": message["MessageId"]}]
        return BATCH_FAILURE
    aws.sqs.delete_message(QueueUrl=aws.retry_queue_url, ReceiptHandle=message["ReceiptHandle"])
    return QUEUE_OK


def _drain(handlers: Handlers, aws: Aws, task_id: str, timeout: float = 8) -> None:
    """Delivers the task's retry messages as SQS releases them, while any is left."""
    while _queued(aws, task_id):
        message = _receive(aws, task_id, timeout)
        assert message is not None, "a retry message was never released"
        assert _invoke_queued(handlers, aws, message) == QUEUE_OK


def _reconcile() -> None:
    """One run of the reconcile function (every 5 minutes in the stack)."""
    load_handler_module(ROOT / "reconcile_task").lambda_handler({}, context())


def _recover_interrupted(handlers: Handlers, aws: Aws, task_id: str) -> None:
    """What happens to a task left `running` once INTERRUPTED_AFTER has passed. The clock is moved
    by back-dating the row's times (the only thing a test changes directly); the reconciler then
    finds it and hands it to the execute function, which records the interrupted run."""
    item = aws.item(task_id)
    assert item is not None
    earlier = INTERRUPTED_AFTER + timedelta(minutes=5)
    aws.dynamodb.update_item(
        TableName=TABLE_NAME,
        Key={"task_id": {"S": task_id}},
        UpdateExpression="SET updated_at = :updated, next_run_at = :next",
        ExpressionAttributeValues={
            ":updated": {"S": format_utc(parse_stored_utc(item["updated_at"]["S"]) - earlier)},
            ":next": {"S": format_utc(parse_stored_utc(item["next_run_at"]["S"]) - earlier)},
        },
    )
    _reconcile()
    assert _queued(aws, task_id), "the reconciler did not hand the interrupted task back"
    _drain(handlers, aws, task_id)


def _statuses_answered(answers: tuple[int, ...], count: int) -> list[int]:
    """What the receiver answered to its first `count` requests (the last answer repeats)."""
    return [answers[min(i, len(answers) - 1)] for i in range(count)]


# -- 1. scheduling ------------------------------------------------------------------------------


def _schedule_client(handlers: Handlers, name: str) -> Any:
    clients = handlers.schedule.clients
    return {"dynamodb": clients.dynamodb, "events": clients.events, "lambda": clients.lambda_}[name]


@dataclass(frozen=True)
class Site:
    client: str
    operation: str
    imminent: bool  # run_at seconds away: a direct dispatch instead of a rule

    def run_at(self) -> str:
        return seconds_from_now(2) if self.imminent else seconds_from_now(3600)


# Every AWS call Scheduler.schedule makes, in order, for both kinds of trigger.
SCHEDULE_SITES = {
    "rule-PutItem": Site("dynamodb", "PutItem", imminent=False),
    "rule-PutRule": Site("events", "PutRule", imminent=False),
    "rule-PutTargets": Site("events", "PutTargets", imminent=False),
    "rule-UpdateItem": Site("dynamodb", "UpdateItem", imminent=False),
    "direct-PutItem": Site("dynamodb", "PutItem", imminent=True),
    "direct-Invoke": Site("lambda", "Invoke", imminent=True),
    "direct-UpdateItem": Site("dynamodb", "UpdateItem", imminent=True),
}


def _failing_schedule_params() -> list[Any]:
    params = []
    for site_id, site in SCHEDULE_SITES.items():
        for kind in (THROTTLE, SERVER_ERROR, UNREACHABLE, ANSWER_LOST):
            if (site.operation, kind) == ("UpdateItem", ANSWER_LOST):
                continue  # the write landed: read back, it is a success (test below)
            params.append(pytest.param(site, kind, id=f"{site_id}-{kind}"))
    return params


@pytest.mark.parametrize(("site", "kind"), _failing_schedule_params())
def test_a_failing_scheduling_call_answers_503_and_leaves_nothing(
    aws: Aws, handlers: Handlers, receiver: Receiver, site: Site, kind: str
) -> None:
    """Every attempt of the call fails (or, for the call kinds, the call is refused outright)."""
    store = _schedule_client(handlers, "dynamodb")
    written = Fault(store, "PutItem", calls=())  # a spy: the new task's id
    fault = Fault(_schedule_client(handlers, site.client), site.operation, kind=kind)

    response = handlers.api("POST", "/schedule-task", _body(receiver, site.run_at()))

    assert fault.injected >= 1
    _assert_503(response)
    (item,) = [p["Item"] for p in written.params]
    task_id = item["task_id"]["S"]
    assert aws.rule_names() == []
    assert _rows(aws) == []
    assert handlers.api("GET", f"/tasks/{task_id}")["statusCode"] == 404
    if site.imminent:
        # A dispatch that went out before the failure finds no task and does nothing.
        written.remove()
        fault.remove()
        assert handlers.run(task_id)["outcome"] == "unknown_task"
        assert receiver.requests == []
        assert aws.rule_names() == []


@pytest.mark.parametrize("kind", [UNREACHABLE, ANSWER_LOST])
@pytest.mark.parametrize("site", SCHEDULE_SITES.values(), ids=SCHEDULE_SITES.keys())
def test_a_scheduling_call_failing_once_is_retried_and_schedules_one_task(
    aws: Aws, handlers: Handlers, receiver: Receiver, site: Site, kind: str
) -> None:
    """The first attempt fails (before reaching AWS, or applied with its answer lost); the SDK's
    retry gets through, and the scheduler recognises a repeated write as its own."""
    fault = Fault(_schedule_client(handlers, site.client), site.operation, kind=kind, attempts=1)

    response = handlers.api("POST", "/schedule-task", _body(receiver, site.run_at()))

    assert (fault.injected, fault.attempts_seen) == (1, 2)
    assert response["statusCode"] == 201, response["body"]
    task_id = body_of(response)["task_id"]
    assert [row["task_id"]["S"] for row in _rows(aws)] == [task_id]
    assert body_of(handlers.api("GET", f"/tasks/{task_id}"))["status"] == "scheduled"
    if not site.imminent:
        assert aws.rule_names() == [_rule(task_id)]
        (target,) = _rule_targets(aws, _rule(task_id)) or []
        assert json.loads(target["Input"]) == {"task_id": task_id}
        return
    assert aws.rule_names() == []
    assert aws.item(task_id)["trigger"]["S"] == "direct"
    # Lambda runs each dispatch that went out (two when the first one's answer was lost).
    dispatches = 2 if (site.operation, kind) == ("Invoke", ANSWER_LOST) else 1
    fault.remove()
    outcomes = [handlers.run(task_id)["outcome"] for _ in range(dispatches)]
    assert outcomes == ["completed", "not_scheduled"][:dispatches]
    assert len(receiver.requests) == 1


def test_undo_recovers_a_rule_whose_quiet_delete_failed(
    aws: Aws, handlers: Handlers, receiver: Receiver
) -> None:
    """PutTargets fails; deleting the untargeted rule fails once; the undo deletes it."""
    events = _schedule_client(handlers, "events")
    written = Fault(_schedule_client(handlers, "dynamodb"), "PutItem", calls=())
    Fault(events, "PutTargets")
    delete = Fault(events, "DeleteRule", calls=(1,))

    response = handlers.api("POST", "/schedule-task", _body(receiver, seconds_from_now(3600)))

    _assert_503(response)
    assert delete.seen == 2  # the quiet delete after PutTargets, then the undo's
    assert aws.rule_names() == []
    assert _rows(aws) == []
    task_id = written.params[0]["Item"]["task_id"]["S"]
    assert handlers.api("GET", f"/tasks/{task_id}")["statusCode"] == 404


def test_a_rule_that_cannot_be_deleted_is_left_without_a_target(
    aws: Aws, handlers: Handlers, receiver: Receiver
) -> None:
    """PutTargets fails and EventBridge keeps refusing DeleteRule: the rule cannot be removed,
    but it has no target, so it can never run anything."""
    events = _schedule_client(handlers, "events")
    written = Fault(_schedule_client(handlers, "dynamodb"), "PutItem", calls=())
    Fault(events, "PutTargets")
    Fault(events, "DeleteRule", calls=None)

    response = handlers.api("POST", "/schedule-task", _body(receiver, seconds_from_now(3600)))

    _assert_503(response)
    task_id = written.params[0]["Item"]["task_id"]["S"]
    assert handlers.api("GET", f"/tasks/{task_id}")["statusCode"] == 404
    assert _rows(aws) == []
    assert aws.rule_names() == [_rule(task_id)]
    assert _rule_targets(aws, _rule(task_id)) == []


def test_a_rule_whose_target_cannot_be_removed_cleans_up_when_it_fires(
    aws: Aws, handlers: Handlers, receiver: Receiver
) -> None:
    """UpdateItem fails and the undo cannot remove the rule's target: the rule stays armed, the row
    goes. When it fires, the execution finds no task, calls nothing and removes the rule."""
    events = _schedule_client(handlers, "events")
    Fault(_schedule_client(handlers, "dynamodb"), "UpdateItem")
    remove = Fault(events, "RemoveTargets", calls=None)

    response = handlers.api("POST", "/schedule-task", _body(receiver, seconds_from_now(3600)))

    _assert_503(response)
    assert remove.injected == 1
    assert _rows(aws) == []
    (name,) = aws.rule_names()
    task_id = name.removeprefix(f"{RULE_PREFIX}-")
    assert handlers.api("GET", f"/tasks/{task_id}")["statusCode"] == 404
    remove.remove()
    (target,) = _rule_targets(aws, name) or []
    assert handlers.execute.lambda_handler(json.loads(target["Input"]), context()) == {
        "task_id": task_id,
        "outcome": "unknown_task",
    }
    assert aws.rule_names() == []
    assert receiver.requests == []


# The call that fails first, for which the undo's DeleteItem then fails too.
UNDONE_SITES = {k: v for k, v in SCHEDULE_SITES.items() if v.operation != "PutItem"}


@pytest.mark.parametrize("site", UNDONE_SITES.values(), ids=UNDONE_SITES.keys())
def test_undo_failing_to_delete_the_row_leaves_it_pending_and_invisible(
    aws: Aws, handlers: Handlers, receiver: Receiver, site: Site
) -> None:
    store = _schedule_client(handlers, "dynamodb")
    fault = Fault(_schedule_client(handlers, site.client), site.operation)
    delete = Fault(store, "DeleteItem", calls=None)
    started = datetime.now(UTC)

    response = handlers.api("POST", "/schedule-task", _body(receiver, site.run_at()))

    assert fault.injected == 1
    assert delete.injected == 1
    _assert_503(response)
    assert aws.rule_names() == []
    (row,) = _rows(aws)
    task_id = row["task_id"]["S"]
    assert row["status"]["S"] == "pending"
    expires_at = datetime.fromtimestamp(int(row["expires_at"]["N"]), UTC)
    assert started < expires_at <= started + timedelta(days=2)
    assert handlers.api("GET", f"/tasks/{task_id}")["statusCode"] == 404
    if site.operation == "UpdateItem" and site.imminent:
        # The dispatch went out: the execution waits for the acknowledgement, which never comes,
        # and does nothing.
        fault.remove()
        delete.remove()
        assert handlers.run(task_id)["outcome"] == "not_scheduled"
        assert receiver.requests == []
        assert _status(aws, task_id) == "pending"


def test_a_mark_scheduled_applied_but_unanswered_is_never_half_visible(
    aws: Aws, handlers: Handlers, receiver: Receiver
) -> None:
    """UpdateItem (pending -> scheduled) reaches DynamoDB but every answer is lost, and the undo's
    DeleteItem fails. Whatever the answer, the client must not see half a task: either 503 and
    no visible task, or 201 with the task scheduled and its rule armed."""
    store = _schedule_client(handlers, "dynamodb")
    written = Fault(store, "PutItem", calls=())
    Fault(store, "UpdateItem", kind=ANSWER_LOST)
    Fault(store, "DeleteItem", calls=None)

    response = handlers.api("POST", "/schedule-task", _body(receiver, seconds_from_now(3600)))

    task_id = written.params[0]["Item"]["task_id"]["S"]
    if response["statusCode"] == 201:
        assert body_of(handlers.api("GET", f"/tasks/{task_id}"))["status"] == "scheduled"
        assert _rule_targets(aws, _rule(task_id))
    else:
        _assert_503(response)
        assert handlers.api("GET", f"/tasks/{task_id}")["statusCode"] == 404
        assert [row["status"]["S"] for row in _rows(aws)] in ([], ["pending"])
        assert aws.rule_names() == []


@pytest.mark.parametrize("site_id", ["rule-UpdateItem", "direct-UpdateItem"])
def test_a_mark_scheduled_that_landed_unanswered_is_a_success(
    aws: Aws, handlers: Handlers, receiver: Receiver, site_id: str
) -> None:
    """Every answer of the pending -> scheduled write is lost, but the write landed: reading it
    back, the scheduler answers 201, and the task runs once."""
    site = SCHEDULE_SITES[site_id]
    fault = Fault(_schedule_client(handlers, "dynamodb"), "UpdateItem", kind=ANSWER_LOST)

    response = handlers.api("POST", "/schedule-task", _body(receiver, site.run_at()))

    assert fault.injected >= 1
    assert response["statusCode"] == 201, response["body"]
    task_id = body_of(response)["task_id"]
    assert body_of(handlers.api("GET", f"/tasks/{task_id}"))["status"] == "scheduled"
    if site.imminent:
        fault.remove()
        assert handlers.run(task_id)["outcome"] == "completed"
        assert len(receiver.requests) == 1
    else:
        assert _rule_targets(aws, _rule(task_id))


# -- 2. execution -------------------------------------------------------------------------------


def _execute_client(handlers: Handlers, name: str) -> Any:
    clients = handlers.execute.clients
    return {
        # One SQS client serves both queues; the cases name the queue whose call they fault.
        "retry_sqs": clients.sqs,
        "dead_letter_sqs": clients.sqs,
        "dynamodb": clients.dynamodb,
        "events": clients.events,
        "secretsmanager": clients.secretsmanager,
    }[name]


@dataclass(frozen=True)
class RunCase:
    """One AWS call of an execution failing, and what must follow."""

    client: str
    operation: str
    call: int = 1  # the Nth call of the operation in the faulted invocation
    kind: str = THROTTLE
    answers: tuple[int, ...] = (200,)  # the receiver's answers in order (the last repeats)
    max_attempts: int | None = None
    first: str = RAISED  # what the faulted invocation does
    after_first: str = "scheduled"  # the task's status right after it
    queued_after_first: int = 0  # retry messages for the task right after it
    second: str = "completed"  # what its redelivery (Lambda's retry, SQS's) does
    # Left `running` by the fault: the design keeps it so until INTERRUPTED_AFTER, when the
    # reconciler hands it back and the run is recorded `failed` ("interrupted").
    interrupted: bool = False
    final: str = "completed"
    dead_letters: int = 0
    delivered: bool | None = None  # a successful delivery happened (default: final completed)

    def expected_successes(self) -> int:
        delivered = self.final == "completed" if self.delivered is None else self.delivered
        return 1 if delivered else 0

    def injected(self, handlers: Handlers, aws: Aws) -> Fault:
        """The fault, on the executor's client. Both queues share one SQS client: a send counts
        (and fails) only when it goes to the queue this case is about."""
        queue = {"retry_sqs": aws.retry_queue_url, "dead_letter_sqs": aws.dead_letter_queue_url}
        when = _to_queue(queue[self.client]) if self.client in queue else None
        client = _execute_client(handlers, self.client)
        return Fault(client, self.operation, kind=self.kind, calls=(self.call,), when=when)


def _to_queue(url: str) -> Callable[[dict[str, Any]], bool]:
    return lambda params: params.get("QueueUrl") == url


# A task dispatched directly (run_at a second or so ahead), its first invocation faulted. The
# calls, in order: GetItem, UpdateItem (claim), GetSecretValue, the webhook, then UpdateItem
# (record the run, or the attempt to retry) and SQS SendMessage (the retry, or the dead letter
# before the record), and RemoveTargets + DeleteRule (disarm) once finished.
DIRECT_CASES = {
    "GetItem": RunCase("dynamodb", "GetItem"),
    "UpdateItem-claim": RunCase("dynamodb", "UpdateItem", call=1),
    # The claim is applied but every answer lost: reading it back, the invocation finds its
    # own claim token and runs the task.
    "UpdateItem-claim-answer-lost": RunCase(
        "dynamodb",
        "UpdateItem",
        call=1,
        kind=ANSWER_LOST,
        first="completed",
        after_first="completed",
        second="not_scheduled",
    ),
    # The secret cannot be read: a failed attempt (no delivery), retried through the queue.
    "GetSecretValue": RunCase(
        "secretsmanager",
        "GetSecretValue",
        first="retrying",
        queued_after_first=1,
        second=QUEUE_OK,
    ),
    # Delivered, not recorded: `running` until INTERRUPTED_AFTER, then recorded `failed`
    # ("interrupted") although the receiver got it once.
    "UpdateItem-record": RunCase(
        "dynamodb",
        "UpdateItem",
        call=2,
        delivered=True,
        after_first="running",
        second="not_scheduled",
        interrupted=True,
        final="failed",
        dead_letters=1,
    ),
    # Answered 500, the retry not recorded: same, the remaining attempts are not made.
    "UpdateItem-record-retry": RunCase(
        "dynamodb",
        "UpdateItem",
        call=2,
        answers=(500, 200),
        after_first="running",
        second="not_scheduled",
        interrupted=True,
        final="failed",
        dead_letters=1,
    ),
    # Answered 500, the retry recorded but not queued: `scheduled` for its retry time; Lambda's
    # retry of the invocation runs it.
    "SendMessage-retry": RunCase("retry_sqs", "SendMessage", answers=(500, 200)),
    # The same, each attempt of the send applied and its answer lost: three messages queued.
    "SendMessage-retry-answer-lost": RunCase(
        "retry_sqs",
        "SendMessage",
        kind=ANSWER_LOST,
        answers=(500, 200),
        queued_after_first=3,
    ),
    # The dead letter goes before the record: not sent, the task stays `running`.
    "SendMessage-dead-letter": RunCase(
        "dead_letter_sqs",
        "SendMessage",
        answers=(500,),
        max_attempts=1,
        after_first="running",
        second="not_scheduled",
        interrupted=True,
        final="failed",
        dead_letters=1,
    ),
    # Sent three times (answers lost), then once more when the interrupted run is recorded.
    "SendMessage-dead-letter-answer-lost": RunCase(
        "dead_letter_sqs",
        "SendMessage",
        kind=ANSWER_LOST,
        answers=(500,),
        max_attempts=1,
        after_first="running",
        second="not_scheduled",
        interrupted=True,
        final="failed",
        dead_letters=4,
    ),
    "RemoveTargets": RunCase(
        "events", "RemoveTargets", after_first="completed", second="not_scheduled"
    ),
    "DeleteRule": RunCase("events", "DeleteRule", after_first="completed", second="not_scheduled"),
}


def _check_the_end(
    handlers: Handlers, aws: Aws, receiver: Receiver, task_id: str, case: RunCase
) -> None:
    status = _status(aws, task_id)
    if case.interrupted:
        # Legitimately `running` until INTERRUPTED_AFTER: nothing runs it again before.
        assert status == "running"
        assert _queued(aws, task_id) == []
        _recover_interrupted(handlers, aws, task_id)
        task = body_of(handlers.api("GET", f"/tasks/{task_id}"))
        assert task["last_error"].startswith("interrupted")
    assert _status(aws, task_id) == case.final
    assert _ways_to_run(aws, task_id) == {"finished"}
    assert aws.rule_names() == []
    answered = _statuses_answered(case.answers, len(receiver.requests))
    successes = sum(200 <= s < 300 for s in answered)
    assert successes <= 1, f"a webhook was delivered successfully {successes} times"
    assert successes == case.expected_successes()
    assert len({r.headers["webhook-id"] for r in receiver.requests}) <= 1
    letters = _dead_letters(aws, task_id)
    assert len(letters) == case.dead_letters
    assert all(letter["status"] == "failed" for letter in letters)


@pytest.mark.parametrize("case", DIRECT_CASES.values(), ids=DIRECT_CASES.keys())
def test_a_failing_call_in_a_directly_dispatched_run(
    aws: Aws, handlers: Handlers, receiver: Receiver, case: RunCase
) -> None:
    receiver.answers = [Answer(status=status) for status in case.answers]
    task_id = _schedule(handlers, receiver, _soon(), case.max_attempts)
    fault = case.injected(handlers, aws)

    first = _invoke_direct(handlers, task_id)

    assert fault.injected >= 1, "the faulted call was never made"
    assert first == case.first
    assert _status(aws, task_id) == case.after_first
    assert len(_queued(aws, task_id)) == case.queued_after_first
    if first != RAISED:  # nothing will deliver this event again: something else must run it
        assert _ways_to_run(aws, task_id)
    fault.remove()

    if first in (RAISED, "completed", "failed"):
        # Lambda's retry of the same event (after a finished run: a duplicate delivery).
        second = _invoke_direct(handlers, task_id)
    else:
        message = _receive(aws, task_id)
        assert message is not None
        second = _invoke_queued(handlers, aws, message)
    assert second == case.second
    _drain(handlers, aws, task_id)  # messages left over (a send whose answer was lost)

    _check_the_end(handlers, aws, receiver, task_id, case)


def test_a_lost_retry_message_with_a_long_retry_after_is_not_stranded(
    aws: Aws, handlers: Handlers, receiver: Receiver
) -> None:
    """The receiver asks for a 10-minute wait (Retry-After: 600); queueing the retry fails, so the
    invocation fails and Lambda retries it (about a minute later: still long before the retry
    time)."""
    receiver.answers = [Answer(status=503, headers={"Retry-After": "600"}), Answer(status=200)]
    task_id = _schedule(handlers, receiver, _soon())
    fault = RunCase("retry_sqs", "SendMessage").injected(handlers, aws)

    assert _invoke_direct(handlers, task_id) == RAISED
    assert fault.injected == 1
    assert _status(aws, task_id) == "scheduled"
    fault.remove()

    # Lambda's retry, about a minute later: still well before the retry time, so it is ignored
    # and returns normally (no further retry).
    assert _invoke_direct(handlers, task_id) == "not_due"

    assert len(receiver.requests) == 1
    assert _ways_to_run(aws, task_id), "the task is `scheduled` with nothing to run it"


# The same task, its first attempt answered 500 (no fault), its retry message then delivered
# with a fault: the record is reported failed, and SQS delivers it again. (The signing secret is
# read once per container, so a retry makes no GetSecretValue call.)
def _queued_case(*args: Any, answers: tuple[int, ...] = (500, 200), **kw: Any) -> RunCase:
    """The record is reported failed (SQS delivers it again) and its redelivery is processed."""
    return RunCase(*args, answers=answers, first=BATCH_FAILURE, second=QUEUE_OK, **kw)


QUEUED_CASES = {
    "GetItem": _queued_case("dynamodb", "GetItem"),
    "UpdateItem-claim": _queued_case("dynamodb", "UpdateItem", call=1),
    "UpdateItem-record": _queued_case(
        "dynamodb",
        "UpdateItem",
        call=2,
        delivered=True,
        after_first="running",
        interrupted=True,
        final="failed",
        dead_letters=1,
    ),
    "SendMessage-retry": _queued_case("retry_sqs", "SendMessage", answers=(500, 500, 200)),
    "SendMessage-dead-letter": _queued_case(
        "dead_letter_sqs",
        "SendMessage",
        answers=(500,),
        max_attempts=2,
        after_first="running",
        interrupted=True,
        final="failed",
        dead_letters=1,
    ),
    "RemoveTargets": _queued_case("events", "RemoveTargets", after_first="completed"),
    "DeleteRule": _queued_case("events", "DeleteRule", after_first="completed"),
}


@pytest.mark.parametrize("case", QUEUED_CASES.values(), ids=QUEUED_CASES.keys())
def test_a_failing_call_in_a_run_from_the_retry_queue(
    aws: Aws, handlers: Handlers, receiver: Receiver, case: RunCase
) -> None:
    receiver.answers = [Answer(status=status) for status in case.answers]
    task_id = _schedule(handlers, receiver, _soon(), case.max_attempts)
    assert handlers.run(task_id)["outcome"] == "retrying"
    message = _receive(aws, task_id)
    assert message is not None
    fault = case.injected(handlers, aws)

    first = _invoke_queued(handlers, aws, message)

    assert fault.injected >= 1, "the faulted call was never made"
    assert first == case.first
    assert _status(aws, task_id) == case.after_first
    assert [m["body"] for m in _queued(aws, task_id)] == [{"task_id": task_id}]  # in flight
    fault.remove()

    second = _invoke_queued(handlers, aws, message)  # SQS delivers the record again
    _drain(handlers, aws, task_id)

    assert second == case.second
    _check_the_end(handlers, aws, receiver, task_id, case)


def test_disarming_a_finished_task_fails_then_its_retry_removes_the_rule(
    aws: Aws, handlers: Handlers, receiver: Receiver
) -> None:
    """Two tasks on rules for the same minute (waits for it, up to about 70 s): for one,
    RemoveTargets fails after the run is recorded; for the other, DeleteRule does. Each invocation
    fails, so Lambda retries it; the retry finds the task finished and removes its rule."""
    rule_minute = earliest_rule_minute()
    run_at = format_utc(rule_minute)
    first_id = _schedule(handlers, receiver, run_at, path="/first")
    second_id = _schedule(handlers, receiver, run_at, path="/second")
    assert sorted(aws.rule_names()) == sorted([_rule(first_id), _rule(second_id)])
    events = _execute_client(handlers, "events")
    remove = Fault(events, "RemoveTargets", when=lambda p: p.get("Rule") == _rule(first_id))
    delete = Fault(events, "DeleteRule", when=lambda p: p.get("Name") == _rule(second_id))
    inputs = {
        task_id: json.loads(target["Input"])
        for task_id in (first_id, second_id)
        for target in _rule_targets(aws, _rule(task_id)) or []
    }

    wait_until_its_rule_could_fire(rule_minute)
    for task_id in (first_id, second_id):  # EventBridge invokes each rule's target
        with pytest.raises(DependencyFailure):
            handlers.execute.lambda_handler(inputs[task_id], context())

    assert (remove.injected, delete.injected) == (1, 1)
    assert _status(aws, first_id) == _status(aws, second_id) == "completed"
    assert _rule_targets(aws, _rule(first_id))  # still armed, for a minute that has passed
    assert _rule_targets(aws, _rule(second_id)) == []
    remove.remove()
    delete.remove()

    for task_id in (first_id, second_id):  # Lambda's retries
        assert handlers.execute.lambda_handler(inputs[task_id], context()) == {
            "task_id": task_id,
            "outcome": "not_scheduled",
        }

    assert aws.rule_names() == []
    assert sorted(r.path for r in receiver.requests) == ["/first", "/second"]
    for task_id in (first_id, second_id):
        assert _status(aws, task_id) == "completed"
        assert _ways_to_run(aws, task_id) == {"finished"}


def test_a_fault_that_outlasts_the_sdk_retries_is_a_dependency_failure(
    aws: Aws, handlers: Handlers, receiver: Receiver
) -> None:
    """Not ClientError only: DynamoDB unreachable on every attempt (a BotoCoreError) fails the
    invocation the same way, and the retry completes it."""
    task_id = _schedule(handlers, receiver, _soon())
    fault = Fault(_execute_client(handlers, "dynamodb"), "UpdateItem", kind=UNREACHABLE)
    with pytest.raises(DependencyFailure) as raised:
        handlers.run(task_id)
    assert isinstance(raised.value.__cause__, BotoCoreError)
    assert fault.attempts_seen == 3
    assert _status(aws, task_id) == "scheduled"
    fault.remove()
    assert handlers.run(task_id)["outcome"] == "completed"
    assert len(receiver.requests) == 1
