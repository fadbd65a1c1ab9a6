"""Lambda's SQS event source mapping, emulated: polls a queue in moto and invokes the function
with the same event Lambda builds, deleting what succeeded (partial batch failures honoured).

Like Lambda's, several pollers long-poll the queue at once, each taking up to ten messages per
call and invoking the function with batches of at most BatchSize records, batches running side
by side up to the mapping's concurrency: a thousand messages becoming visible in the same second
are taken in about a hundred calls and run together, not one by one.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from typing import Any

from local.functions import LocalFunction

log = logging.getLogger("local.sqs")

POLLERS = 5  # Lambda starts an SQS mapping with five long-polling connections
RECEIVE_MAX = 10  # SQS's most messages per ReceiveMessage


class QueuePoller:
    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        region: str,
        function: LocalFunction,
        batch_size: int,
        concurrency: int = 256,
        pollers: int = POLLERS,
    ) -> None:
        self._sqs = sqs
        self._url = queue_url
        self._arn = queue_arn
        self._region = region
        self._function = function
        self._batch_size = max(1, batch_size)
        # Batches in flight at once: a poller waits for a free slot before it takes more.
        self._slots = threading.BoundedSemaphore(max(1, concurrency))
        # Batches go to delivery threads that stay for the next one (a thread started per
        # batch cost the pollers a thread start, and a wait for it to run, per message). Not a
        # ThreadPoolExecutor: its threads hold the interpreter's exit until their invocation
        # ends, and local mode abandons invocations in flight when it stops.
        self._batches: queue.SimpleQueue[list[dict[str, Any]] | None] = queue.SimpleQueue()
        self._deliverers = 0
        self._idle_deliverers = 0
        self._deliverers_lock = threading.Lock()
        self._stopped = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, name=f"sqs-{queue_arn}-{n}", daemon=True)
            for n in range(max(1, pollers))
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopped.set()
        for thread in self._threads:
            thread.join(timeout=5)
        with self._deliverers_lock:
            for _ in range(self._deliverers):  # each ends when it is next free; one in flight
                self._batches.put(None)  # is abandoned, as local mode abandons invocations

    def _run(self) -> None:
        while not self._stopped.is_set():
            # Room for a full receive before asking for one (released as batches finish).
            held = 0
            while held < RECEIVE_MAX and self._slots.acquire(timeout=0.5 if not held else 0):
                held += 1
            if not held:
                continue
            try:
                messages = self._receive(held)
            except Exception:
                self._release(held)
                if not self._stopped.is_set():
                    log.exception("polling %s failed", self._arn)
                self._stopped.wait(1)
                continue
            batches = [
                messages[i : i + self._batch_size]
                for i in range(0, len(messages), self._batch_size)
            ]
            self._release(held - len(batches))
            for batch in batches:
                self._hand_over(batch)

    def _receive(self, room: int) -> list[dict[str, Any]]:
        # Up to `room` batches of messages: no more than the free slots can run.
        count = min(RECEIVE_MAX, room * self._batch_size)
        return self._sqs.receive_message(
            QueueUrl=self._url,
            MaxNumberOfMessages=count,
            WaitTimeSeconds=1,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])

    def _release(self, count: int) -> None:
        for _ in range(count):
            self._slots.release()

    def _hand_over(self, batch: list[dict[str, Any]]) -> None:
        """To an idle delivery thread, or to a new one: never more than the slots in use."""
        with self._deliverers_lock:
            start = not self._idle_deliverers
            if start:
                self._deliverers += 1
            else:
                self._idle_deliverers -= 1
        self._batches.put(batch)
        if start:
            threading.Thread(target=self._deliver, name="sqs-batch", daemon=True).start()

    def _deliver(self) -> None:
        while (batch := self._batches.get()) is not None:
            try:
                self._invoke(batch)
            finally:
                with self._deliverers_lock:  # idle before the slot is free: no thread too many
                    self._idle_deliverers += 1  # this thread takes a batch put from now on
                self._slots.release()

    def _invoke(self, messages: list[dict[str, Any]]) -> None:
        event = {"Records": [self._record(message) for message in messages]}
        try:
            result = self._function.invoke(event)
        except Exception:
            log.exception("%s failed on a batch from %s", self._function.logical_id, self._arn)
            return
        failed = {
            item.get("itemIdentifier")
            for item in (result or {}).get("batchItemFailures", [])
            if isinstance(item, dict)
        }
        done = [message for message in messages if message["MessageId"] not in failed]
        if len(done) == 1:
            self._sqs.delete_message(QueueUrl=self._url, ReceiptHandle=done[0]["ReceiptHandle"])
        elif done:
            self._sqs.delete_message_batch(
                QueueUrl=self._url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": message["ReceiptHandle"]}
                    for n, message in enumerate(done)
                ],
            )

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        body = message.get("Body", "")
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": body,
            "attributes": message.get("Attributes", {}),
            "messageAttributes": message.get("MessageAttributes", {}),
            "md5OfBody": message.get("MD5OfBody") or hashlib.md5(body.encode()).hexdigest(),  # noqa: S324
            "eventSource": "aws:sqs",
            "eventSourceARN": self._arn,
            "awsRegion": self._region,
        }
