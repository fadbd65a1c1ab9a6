"""`Idempotency-Key` on `POST /schedule-task` (contract section 1, after the IETF httpapi
idempotency-key draft): a repeat with the same key and the same JSON body within 24 hours gets
the first answer again and creates nothing; the same key with another body is a 422; a repeat
while the first is still being handled is a 409.

Each key has one record in the tasks table (hashed into its key, never a task id; it has no
status, so no index holds it), written before anything is created:

- claimed: the body's fingerprint, the id the task will get, and a lease. Only the lease's
  holder creates the task. A request that dies (a Lambda timeout) leaves its lease to run out;
  the next repeat then takes the lease over with the same task id, and finds the task if the
  dead request got as far as creating it: never a second task.
- answered: the 201, replayed to every repeat until the record expires (TTL, `expires_at`).

Only a 201 is kept. An answer that created nothing (a 4xx, a 503) frees the key, so a repeat is
handled afresh: a request that failed may succeed when sent again."""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger

from task_scheduler import aws
from task_scheduler.clock import Clock
from task_scheduler.errors import (
    DependencyFailure,
    FieldProblem,
    IdempotencyKeyReused,
    InvalidRequest,
    RepeatInProgress,
)
from task_scheduler.schedule_request import MAX_BODY_BYTES
from task_scheduler.task_items import attributes, epoch, plain

logger = Logger(child=True)

KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_CHARS = 255
KEY_LIFETIME = timedelta(hours=24)
# Longer than the API function can run (10 s): a lease this old belongs to a request that died.
LEASE = timedelta(seconds=60)
_RECORD_PREFIX = "idempotency-key:"


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    replayed: bool = False


def parse_key(raw: str | None) -> str | None:
    """The header's value as a key, None when it was not sent; a bad one is a 400 naming it."""
    if raw is None:
        return None
    if not 1 <= len(raw) <= MAX_KEY_CHARS:
        problem = f"must be 1 to {MAX_KEY_CHARS} characters, not {len(raw)}"
    elif not all("!" <= char <= "~" for char in raw):
        problem = "must be visible ASCII characters only (no spaces or control characters)"
    else:
        return raw
    raise InvalidRequest([FieldProblem(KEY_HEADER, problem)])


def fingerprint(body: bytes | None) -> str:
    """What "the same body" means: equal as JSON (key order, spacing and 1 against 1.0 aside).
    A body that is not JSON is compared byte for byte (it is refused anyway)."""
    raw = body or b""
    canonical = raw
    if len(raw) <= MAX_BODY_BYTES:
        try:
            document = json.loads(raw)
        except (ValueError, RecursionError):
            pass
        else:
            canonical = json.dumps(
                _normalised(document), sort_keys=True, separators=(",", ":")
            ).encode("ascii")
    return hashlib.sha256(canonical).hexdigest()


def _normalised(value: Any) -> Any:
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_normalised(entry) for entry in value]
    if isinstance(value, dict):
        return {name: _normalised(entry) for name, entry in value.items()}
    return value


@dataclass(frozen=True)
class KeyRecord:
    fingerprint: str
    task_id: str
    lease_token: str
    lease_until: int  # Unix seconds
    answer: Answer | None


class IdempotencyRecords:
    """The records in DynamoDB; every change is conditional on the lease it was given."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def claim(
        self, key: str, print_: str, task_id: str, lease: str, now: datetime
    ) -> KeyRecord | None:
        """Takes a key nobody holds (or whose record has expired): None. Otherwise the record
        there, or None again if it went away meanwhile and this claim then got it."""
        for _ in range(3):
            item = {
                **_record_key(key),
                **attributes(
                    {
                        "request_fingerprint": print_,
                        "intended_task_id": task_id,
                        "lease_token": lease,
                        "lease_until": epoch(now + LEASE),
                        "expires_at": epoch(now + KEY_LIFETIME),
                    }
                ),
            }
            if self._write(
                "claim the idempotency key",
                self._client.put_item,
                Item=item,
                ConditionExpression="attribute_not_exists(task_id) OR expires_at < :now",
                ExpressionAttributeValues=attributes({":now": epoch(now)}),
            ):
                return None
            record = self._read(key)
            if record is not None and record.lease_token == lease:
                return None  # this claim, applied by a try whose answer was lost (SDK retry)
            if record is not None:
                return record
        raise DependencyFailure("Could not claim the idempotency key: it kept changing.")

    def take_over(self, key: str, old_lease: str, lease: str, now: datetime) -> bool:
        taken = self._write(
            "take over the idempotency key",
            self._client.update_item,
            Key=_record_key(key),
            UpdateExpression="SET lease_token = :lease, lease_until = :until",
            ConditionExpression="lease_token = :old AND attribute_not_exists(answer_status)",
            ExpressionAttributeValues=attributes(
                {":lease": lease, ":until": epoch(now + LEASE), ":old": old_lease}
            ),
        )
        if taken:
            return True
        # Refused: perhaps a retry of this very write (a lease token is never reused).
        record = self._read(key)
        return record is not None and record.lease_token == lease and record.answer is None

    def answer(self, key: str, lease: str, answer: Answer) -> None:
        self._write(
            "record the answer to the idempotency key",
            self._client.update_item,
            Key=_record_key(key),
            UpdateExpression="SET answer_status = :status, answer_body = :body REMOVE lease_until",
            ConditionExpression="lease_token = :lease",
            ExpressionAttributeValues=attributes(
                {
                    ":status": answer.status,
                    ":body": json.dumps(answer.body, separators=(",", ":")),
                    ":lease": lease,
                }
            ),
        )

    def release(self, key: str, lease: str) -> None:
        self._write(
            "free the idempotency key",
            self._client.delete_item,
            Key=_record_key(key),
            ConditionExpression="lease_token = :lease AND attribute_not_exists(answer_status)",
            ExpressionAttributeValues=attributes({":lease": lease}),
        )

    def _read(self, key: str) -> KeyRecord | None:
        item = aws.call(
            "DynamoDB",
            "read the idempotency key",
            self._client.get_item,
            TableName=self._table,
            Key=_record_key(key),
            ConsistentRead=True,
        ).get("Item")
        if not item:
            return None
        fields = plain(item)
        answer = None
        if "answer_status" in fields:
            answer = Answer(fields["answer_status"], json.loads(fields["answer_body"]), True)
        return KeyRecord(
            fingerprint=fields["request_fingerprint"],
            task_id=fields["intended_task_id"],
            lease_token=fields["lease_token"],
            lease_until=fields.get("lease_until", 0),
            answer=answer,
        )

    def _write(self, what: str, operation: Any, **kwargs: Any) -> bool:
        answer = aws.conditional_write(what, operation, TableName=self._table, **kwargs)
        return answer is not None


def _record_key(key: str) -> dict[str, Any]:
    digest = hashlib.sha256(key.encode("ascii")).hexdigest()
    return attributes({"task_id": _RECORD_PREFIX + digest})


class IdempotentCreates:
    def __init__(
        self, records: IdempotencyRecords, clock: Clock, new_id: Callable[[], str]
    ) -> None:
        self._records = records
        self._clock = clock
        self._new_id = new_id

    def handle(
        self,
        key: str,
        body: bytes | None,
        create: Callable[[str], Answer],
        created: Callable[[str], Answer | None],
    ) -> Answer:
        """The answer to a request carrying `key`: `create(task_id)`'s the first time, the same
        again after. `created(task_id)`: the answer for that task if it exists (a request that
        died after creating it), else None."""
        print_, lease, now = fingerprint(body), str(uuid.uuid4()), self._clock.now()
        task_id = self._new_id()
        record = self._records.claim(key, print_, task_id, lease, now)
        if record is not None:
            if record.fingerprint != print_:
                raise IdempotencyKeyReused(
                    [FieldProblem(KEY_HEADER, "was already used with a different request body")],
                    f"This {KEY_HEADER} was already used with a different request body: "
                    "send a new key for a new request.",
                )
            if record.answer is not None:
                return record.answer
            if record.lease_until > epoch(now) or not self._records.take_over(
                key, record.lease_token, lease, now
            ):
                raise RepeatInProgress(
                    f"A request with this {KEY_HEADER} is still being handled: "
                    "repeat it once that one has been answered."
                )
            # The request that held the key died; its task may exist already.
            task_id = record.task_id
            logger.warning("took over an abandoned idempotency key", extra={"task_id": task_id})
            found = created(task_id)
            if found is not None:
                return self._answered(key, lease, found, replayed=True)
        handled = False
        try:
            answer = create(task_id)
            handled = True
        finally:
            if not handled:
                self._release(key, lease)
        return self._answered(key, lease, answer, replayed=False)

    def _answered(self, key: str, lease: str, answer: Answer, *, replayed: bool) -> Answer:
        try:
            self._records.answer(key, lease, answer)
        except DependencyFailure:
            # The task exists all the same. A repeat gets a 409 until the lease runs out, then
            # takes the key over and finds the task: never a second one.
            logger.exception("could not record the answer to an idempotency key")
        return Answer(answer.status, answer.body, replayed)

    def _release(self, key: str, lease: str) -> None:
        try:
            self._records.release(key, lease)
        except DependencyFailure:
            # Repeats get a 409 until the lease runs out, then are handled afresh.
            logger.exception("could not free an idempotency key")
