"""Contract section 5 end to end under moto: signatures a receiver can verify, durable retries
with one webhook-id, dead letters, and targets the scheduler refuses to reach."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

from tests.integration.conftest import (
    SIGNING_SECRET,
    TABLE_NAME,
    Aws,
    Handlers,
    body_of,
    context,
    on_both_backends,
    sqs_event,
)
from tests.support.addresses import ISSUE_SPELLINGS
from tests.support.lambda_runtime import ROOT, load_handler_module
from tests.support.receiver import Answer, ReceivedRequest, Receiver
from tests.support.timing import seconds_from_now

pytestmark = on_both_backends


def _schedule(handlers: Handlers, url: str, max_attempts: int = 5) -> str:
    body = {
        "action": "webhook",
        "payload": {"url": url, "data": {"msg": "signed"}},
        "run_at": seconds_from_now(1),
        "retry": {"max_attempts": max_attempts},
    }
    response = handlers.api("POST", "/schedule-task", body)
    assert response["statusCode"] == 201, response["body"]
    return body_of(response)["task_id"]


def _run_until_settled(aws: Aws, handlers: Handlers, task_id: str, timeout: float = 60) -> str:
    """Plays Lambda: the first invocation, then each retry message once SQS releases it."""
    outcome = handlers.run(task_id)["outcome"]
    deadline = time.monotonic() + timeout
    while outcome == "retrying" and time.monotonic() < deadline:
        messages = aws.sqs.receive_message(
            QueueUrl=aws.retry_queue_url, WaitTimeSeconds=1, MaxNumberOfMessages=1
        ).get("Messages", [])
        if not messages:
            continue
        assert json.loads(messages[0]["Body"])["task_id"] == task_id
        result = handlers.execute.lambda_handler(sqs_event(messages[0]), context())
        assert result == {"batchItemFailures": []}
        aws.sqs.delete_message(
            QueueUrl=aws.retry_queue_url, ReceiptHandle=messages[0]["ReceiptHandle"]
        )
        outcome = body_of(handlers.api("GET", f"/tasks/{task_id}"))["status"]
        outcome = "retrying" if outcome == "scheduled" else outcome
    return outcome


def _verified(request: ReceivedRequest) -> dict:
    """What the standardwebhooks library makes of a delivery (raises if the signature is bad)."""
    return Webhook(SIGNING_SECRET).verify(request.body, request.headers)


def _dead_letters(aws: Aws) -> list[dict]:
    messages = aws.sqs.receive_message(
        QueueUrl=aws.dead_letter_queue_url, MaxNumberOfMessages=10
    ).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def test_500_500_200_is_three_signed_deliveries_with_one_webhook_id(
    aws: Aws, handlers: Handlers, receiver: Receiver
) -> None:
    receiver.answers = [Answer(status=500), Answer(status=500), Answer(status=200)]
    task_id = _schedule(handlers, f"{receiver.url}/hooks/signed")

    assert _run_until_settled(aws, handlers, task_id) == "completed"

    deliveries = receiver.requests
    assert len(deliveries) == 3
    assert [_verified(d) for d in deliveries] == [{"msg": "signed"}] * 3
    assert len({d.headers["webhook-id"] for d in deliveries}) == 1
    assert all(d.headers["webhook-signature"].startswith("v1,") for d in deliveries)
    task = body_of(handlers.api("GET", f"/tasks/{task_id}"))
    assert [a["attempt"] for a in task["attempts"]] == [1, 2, 3]
    assert [a["status_code"] for a in task["attempts"]] == [500, 500, 200]
    assert _dead_letters(aws) == []


def test_a_tampered_delivery_does_not_verify(
    aws: Aws, handlers: Handlers, receiver: Receiver
) -> None:
    task_id = _schedule(handlers, f"{receiver.url}/hooks/signed")
    handlers.run(task_id)
    (delivery,) = receiver.requests
    tampered = ReceivedRequest(
        delivery.method, delivery.path, delivery.headers, b'{"msg":"forged"}', delivery.received_at
    )
    with pytest.raises(Exception, match=r"(?i)signature"):
        _verified(tampered)


def test_always_500_fails_after_max_attempts_with_a_dead_letter(
    aws: Aws, handlers: Handlers, receiver: Receiver
) -> None:
    receiver.default = Answer(status=500, body=b"boom")
    task_id = _schedule(handlers, f"{receiver.url}/hooks/down", max_attempts=3)

    assert _run_until_settled(aws, handlers, task_id) == "failed"

    assert len(receiver.requests) == 3
    task = body_of(handlers.api("GET", f"/tasks/{task_id}"))
    assert task["status"] == "failed"
    assert task["last_error"] == "HTTP 500"
    (letter,) = _dead_letters(aws)
    assert letter["task_id"] == task_id
    assert letter["error"] == "HTTP 500"
    assert letter["attempts"] == 3


def test_410_fails_at_once(aws: Aws, handlers: Handlers, receiver: Receiver) -> None:
    receiver.default = Answer(status=410)
    task_id = _schedule(handlers, f"{receiver.url}/hooks/gone")
    assert handlers.run(task_id)["outcome"] == "failed"
    assert len(receiver.requests) == 1
    assert aws.queue_messages(aws.retry_queue_url) == []
    assert [letter["attempts"] for letter in _dead_letters(aws)] == [1]


def test_429_with_retry_after_waits_at_least_that_long(
    aws: Aws, handlers: Handlers, receiver: Receiver
) -> None:
    receiver.answers = [Answer(status=429, headers={"Retry-After": "2"}), Answer(status=200)]
    task_id = _schedule(handlers, f"{receiver.url}/hooks/busy")

    assert _run_until_settled(aws, handlers, task_id) == "completed"

    first, second = receiver.requests
    assert (second.received_at - first.received_at).total_seconds() >= 2


REFUSED_TARGETS = [
    *ISSUE_SPELLINGS,
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/",
    "http://localhost/",
]


@pytest.fixture
def strict_handlers(handlers: Handlers, monkeypatch: pytest.MonkeyPatch) -> Handlers:
    """The functions as deployed: loopback targets refused (the template never allows them)."""
    monkeypatch.setenv("ALLOW_LOOPBACK_TARGETS", "false")
    return Handlers(
        schedule=load_handler_module(ROOT / "schedule_task"),
        execute=load_handler_module(ROOT / "execute_task"),
        aws=handlers.aws,
    )


@pytest.mark.parametrize("url", REFUSED_TARGETS)
def test_forbidden_targets_are_refused_when_scheduling(
    aws: Aws, strict_handlers: Handlers, url: str
) -> None:
    response = strict_handlers.api(
        "POST",
        "/schedule-task",
        {"action": "webhook", "payload": {"url": url}, "run_at": "2099-01-01T00:00:00Z"},
    )
    assert response["statusCode"] == 400
    (error,) = body_of(response)["errors"]
    assert error["field"] == "payload.url"
    assert error["problem"].startswith("is refused")
    assert aws.table_is_empty()
    assert aws.triggers() == []


def test_a_target_that_became_forbidden_fails_at_sending_without_retry(
    aws: Aws, strict_handlers: Handlers, receiver: Receiver
) -> None:
    # As if its name resolved to a public address when scheduled and to loopback now (DNS
    # rebinding): the row is written directly, the check at sending must catch it.
    port = receiver.url.rsplit(":", 1)[1]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    task_id = "123e4567-e89b-42d3-a456-426614174000"
    aws.dynamodb.put_item(
        TableName=TABLE_NAME,
        Item={
            "task_id": {"S": task_id},
            "action": {"S": "webhook"},
            "payload": {"S": json.dumps({"url": f"http://localhost:{port}/hook"})},
            "run_at": {"S": now},
            "next_run_at": {"S": now},
            "status": {"S": "scheduled"},
            "created_at": {"S": now},
            "updated_at": {"S": now},
            "recurring": {"BOOL": False},
            "runs": {"N": "0"},
            "attempts": {"L": []},
            "trigger": {"S": "direct"},
        },
    )
    assert strict_handlers.run(task_id)["outcome"] == "failed"
    assert receiver.requests == []
    task = body_of(strict_handlers.api("GET", f"/tasks/{task_id}"))
    assert task["last_error"].startswith("refused")
    assert aws.queue_messages(aws.retry_queue_url) == []
