"""`Idempotency-Key` on `POST /schedule-task` through the API handler under moto, on both trigger
backends (contract section 1): a repeat gets the first answer with `Idempotent-Replayed: true`
and creates nothing; another body is a 422, a repeat in flight a 409, a bad key a 400; keys
expire after 24 hours; a request that died holding a key never leads to a second task."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from task_scheduler import wiring
from task_scheduler.errors import RepeatInProgress
from task_scheduler.idempotency import (
    KEY_LIFETIME,
    LEASE,
    Answer,
    IdempotencyRecords,
    IdempotentCreates,
    fingerprint,
)
from task_scheduler.responses import scheduled_answer
from task_scheduler.settings import ApiSettings
from tests.integration.conftest import TABLE_NAME, Aws, Handlers, body_of, on_both_backends
from tests.support.aws_fakes import AnswerLostClient
from tests.support.fakes import FakeClock

pytestmark = on_both_backends

BODY = {
    "action": "webhook",
    "payload": {"url": "https://example.com/hooks/report", "data": {"n": 1}},
    "run_at": "2099-05-19T17:56:00Z",
}


def _post(handlers: Handlers, key: str | None, body: Any = BODY, raw: str | None = None) -> dict:
    headers = {"Idempotency-Key": key} if key is not None else None
    return handlers.api("POST", "/schedule-task", body, raw_body=raw, headers=headers)


def _tasks(aws: Aws) -> list[dict[str, Any]]:
    items = aws.dynamodb.scan(TableName=TABLE_NAME, ConsistentRead=True)["Items"]
    return [item for item in items if "status" in item]


def _replayed(response: dict) -> str | None:
    return (response.get("multiValueHeaders") or {}).get("Idempotent-Replayed", [None])[0]


def test_a_repeat_gets_the_first_answer_and_creates_nothing(aws: Aws, handlers: Handlers) -> None:
    first = _post(handlers, "order-42")
    assert first["statusCode"] == 201, first["body"]
    assert _replayed(first) is None

    # The same JSON written differently is the same body.
    spelled_otherwise = json.dumps(dict(reversed(list(BODY.items()))), indent=2)
    for again in (_post(handlers, "order-42"), _post(handlers, "order-42", raw=spelled_otherwise)):
        assert again["statusCode"] == 201, again["body"]
        assert body_of(again) == body_of(first)
        assert _replayed(again) == "true"

    assert len(_tasks(aws)) == 1
    assert len(aws.triggers()) == 1
    items = aws.dynamodb.scan(TableName=TABLE_NAME)["Items"]
    (key_record,) = [i for i in items if i["task_id"]["S"].startswith("idempotency-key:")]
    expires = datetime.fromtimestamp(int(key_record["expires_at"]["N"]), UTC)
    assert abs(expires - (datetime.now(UTC) + KEY_LIFETIME)) < timedelta(minutes=1)
    assert "order-42" not in json.dumps(key_record)  # kept hashed


def test_another_key_or_none_creates_another_task(aws: Aws, handlers: Handlers) -> None:
    assert _post(handlers, "a")["statusCode"] == 201
    assert _post(handlers, "b")["statusCode"] == 201
    assert _post(handlers, None)["statusCode"] == 201
    assert len(_tasks(aws)) == 3


def test_the_same_key_with_another_body_is_a_422_naming_it(aws: Aws, handlers: Handlers) -> None:
    assert _post(handlers, "k1")["statusCode"] == 201

    response = _post(handlers, "k1", {**BODY, "run_at": "2099-05-19T17:57:00Z"})

    assert response["statusCode"] == 422, response["body"]
    assert body_of(response)["errors"] == [
        {"field": "Idempotency-Key", "problem": "was already used with a different request body"}
    ]
    assert len(_tasks(aws)) == 1
    assert len(aws.triggers()) == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "two words", "caf\u00e9", "tab\there", "\x7f"])
def test_a_bad_key_is_a_400_naming_it(aws: Aws, handlers: Handlers, key: str) -> None:
    response = _post(handlers, key)

    assert response["statusCode"] == 400, response["body"]
    assert [e["field"] for e in body_of(response)["errors"]] == ["Idempotency-Key"]
    assert aws.table_is_empty()


def test_the_longest_key_is_accepted(aws: Aws, handlers: Handlers) -> None:
    key = "".join(chr(33 + n % 94) for n in range(255))
    assert _post(handlers, key)["statusCode"] == 201
    assert _replayed(_post(handlers, key)) == "true"


def test_a_refused_request_frees_its_key(aws: Aws, handlers: Handlers) -> None:
    refused = _post(handlers, "k2", {**BODY, "run_at": "2001-01-01T00:00:00Z"})
    assert refused["statusCode"] == 400, refused["body"]
    assert aws.table_is_empty()

    accepted = _post(handlers, "k2")

    assert accepted["statusCode"] == 201, accepted["body"]
    assert _replayed(accepted) is None


def test_a_repeat_while_the_first_is_handled_is_a_409(aws: Aws, handlers: Handlers) -> None:
    records = IdempotencyRecords(aws.dynamodb, TABLE_NAME)
    # Another invocation holds the key and is creating the task right now.
    assert (
        records.claim(
            "busy",
            fingerprint(json.dumps(BODY).encode()),
            str(uuid.uuid4()),
            "its-lease",
            datetime.now(UTC),
        )
        is None
    )

    response = _post(handlers, "busy")

    assert response["statusCode"] == 409, response["body"]
    assert "still being handled" in body_of(response)["message"]
    assert _tasks(aws) == []


def _api(aws: Aws) -> wiring.Api:
    settings = ApiSettings.from_env()
    return wiring.api(settings, wiring.ApiClients.create(settings.trigger_backend))


def test_three_concurrent_clients_with_one_key_create_exactly_one_task(
    aws: Aws, function_env: None
) -> None:
    api = _api(aws)
    body = json.dumps(BODY).encode()
    creates: list[str] = []
    conflicts = threading.Semaphore(0)

    def create(task_id: str) -> Answer:
        creates.append(task_id)
        # Held until both other clients have been told the first request is in flight.
        assert conflicts.acquire(timeout=10)
        assert conflicts.acquire(timeout=10)
        task = api.scheduler_with_id(task_id).schedule(api.command(body, "application/json"))
        return Answer(201, scheduled_answer(task))

    answers: list[Answer] = []
    start = threading.Barrier(3)

    def client() -> None:
        start.wait()
        deadline = time.monotonic() + 20
        told_in_flight = False
        while time.monotonic() < deadline:
            try:
                answers.append(
                    api.idempotent_creates.handle("shared", body, create, lambda _: None)
                )
                return
            except RepeatInProgress:
                if not told_in_flight:
                    told_in_flight = True
                    conflicts.release()
                time.sleep(0.02)
        raise AssertionError("no answer in time")

    threads = [threading.Thread(target=client) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert len(creates) == 1
    assert len(answers) == 3
    assert {json.dumps(a.body, sort_keys=True) for a in answers} == {
        json.dumps(answers[0].body, sort_keys=True)
    }
    assert sorted(a.replayed for a in answers) == [False, True, True]
    assert [item["task_id"]["S"] for item in _tasks(aws)] == creates
    assert len(aws.triggers()) == 1


def _clocked(aws: Aws, clock: FakeClock) -> IdempotentCreates:
    return IdempotentCreates(
        IdempotencyRecords(aws.dynamodb, TABLE_NAME), clock, lambda: str(uuid.uuid4())
    )


def _creating(api: wiring.Api, body: bytes):
    def create(task_id: str) -> Answer:
        task = api.scheduler_with_id(task_id).schedule(api.command(body, "application/json"))
        return Answer(201, scheduled_answer(task))

    return create


def test_a_key_is_forgotten_after_24_hours(aws: Aws, function_env: None) -> None:
    api = _api(aws)
    body = json.dumps(BODY).encode()
    clock = FakeClock(datetime.now(UTC))
    creates = _clocked(aws, clock)
    first = creates.handle("day-old", body, _creating(api, body), lambda _: None)

    clock.current += KEY_LIFETIME - timedelta(seconds=5)
    assert creates.handle("day-old", body, _creating(api, body), lambda _: None).replayed
    # Past its lifetime (DynamoDB's TTL deletes the record some time after), even with
    # another body.
    clock.current += timedelta(seconds=10)
    other = json.dumps({**BODY, "run_at": "2099-06-01T00:00:00Z"}).encode()
    later = creates.handle("day-old", other, _creating(api, other), lambda _: None)

    assert not later.replayed
    assert later.body["task_id"] != first.body["task_id"]
    assert len(_tasks(aws)) == 2


def test_a_key_left_by_a_request_that_died_never_leads_to_a_second_task(
    aws: Aws, function_env: None
) -> None:
    api = _api(aws)
    body = json.dumps(BODY).encode()
    clock = FakeClock(datetime.now(UTC))
    records = IdempotencyRecords(aws.dynamodb, TABLE_NAME)
    creates = _clocked(aws, clock)
    # A request claimed the key, created its task, and died before recording its answer.
    task_id = str(uuid.uuid4())
    assert records.claim("died", fingerprint(body), task_id, "dead-lease", clock.now()) is None
    api.scheduler_with_id(task_id).schedule(api.command(body, "application/json"))

    def found(candidate: str) -> Answer | None:
        task = api.scheduler.get(candidate)
        return Answer(201, scheduled_answer(task))

    with pytest.raises(RepeatInProgress):  # its lease has not run out yet
        creates.handle("died", body, _creating(api, body), found)
    clock.current += LEASE + timedelta(seconds=1)
    answer = creates.handle("died", body, _creating(api, body), found)

    assert answer.body["task_id"] == task_id
    assert [item["task_id"]["S"] for item in _tasks(aws)] == [task_id]
    assert len(aws.triggers()) == 1
    assert creates.handle("died", body, _creating(api, body), found).replayed


def test_a_key_left_before_its_task_was_created_creates_it_with_the_id_reserved(
    aws: Aws, function_env: None
) -> None:
    api = _api(aws)
    body = json.dumps(BODY).encode()
    clock = FakeClock(datetime.now(UTC))
    records = IdempotencyRecords(aws.dynamodb, TABLE_NAME)
    task_id = str(uuid.uuid4())
    assert records.claim("died-early", fingerprint(body), task_id, "dead", clock.now()) is None
    clock.current += LEASE + timedelta(seconds=1)

    answer = _clocked(aws, clock).handle("died-early", body, _creating(api, body), lambda _: None)

    assert answer.body["task_id"] == task_id
    assert [item["task_id"]["S"] for item in _tasks(aws)] == [task_id]


def test_a_claim_whose_answer_was_lost_is_still_ours(aws: Aws) -> None:
    # The SDK retries a claim that was applied but answered with an error (a 5xx, a timeout):
    # the retry fails its condition on the record the first try wrote, and that is this claim's.
    body = json.dumps(BODY).encode()
    records = IdempotencyRecords(AnswerLostClient(aws.dynamodb, {"put_item"}), TABLE_NAME)
    now = datetime.now(UTC)
    assert records.claim("lost", fingerprint(body), str(uuid.uuid4()), "mine", now) is None
    # Another request's claim still finds the key held.
    held = records.claim("lost", fingerprint(body), str(uuid.uuid4()), "theirs", now)
    assert held is not None
    assert held.lease_token == "mine"


def test_a_take_over_whose_answer_was_lost_is_still_ours(aws: Aws) -> None:
    body = json.dumps(BODY).encode()
    now = datetime.now(UTC)
    IdempotencyRecords(aws.dynamodb, TABLE_NAME).claim(
        "lost-lease", fingerprint(body), str(uuid.uuid4()), "dead", now
    )
    records = IdempotencyRecords(AnswerLostClient(aws.dynamodb, {"update_item"}), TABLE_NAME)
    later = now + LEASE + timedelta(seconds=1)
    assert records.take_over("lost-lease", "dead", "mine", later)
    assert not records.take_over("lost-lease", "dead", "theirs", later)
