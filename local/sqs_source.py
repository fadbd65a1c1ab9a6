"""Lambda's SQS event source mapping, emulated: polls a queue in moto and invokes the function
with the same event Lambda builds, deleting what succeeded (partial batch failures honoured)."""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import Any

from local.functions import LocalFunction

log = logging.getLogger("local.sqs")


class QueuePoller:
    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        region: str,
        function: LocalFunction,
        batch_size: int,
    ) -> None:
        self._sqs = sqs
        self._url = queue_url
        self._arn = queue_arn
        self._region = region
        self._function = function
        self._batch_size = batch_size
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sqs-{queue_arn}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                messages = self._sqs.receive_message(
                    QueueUrl=self._url,
                    MaxNumberOfMessages=self._batch_size,
                    WaitTimeSeconds=1,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
            except Exception:
                if not self._stopped.is_set():
                    log.exception("polling %s failed", self._arn)
                self._stopped.wait(1)
                continue
            if messages:
                # Each batch on its own thread: a slow batch does not hold up the next.
                threading.Thread(
                    target=self._deliver, args=(messages,), name="sqs-batch", daemon=True
                ).start()

    def _deliver(self, messages: list[dict[str, Any]]) -> None:
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
        for message in messages:
            if message["MessageId"] not in failed:
                self._sqs.delete_message(QueueUrl=self._url, ReceiptHandle=message["ReceiptHandle"])

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
