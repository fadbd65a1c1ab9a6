"""Makes moto's SQS receive as SQS does when several pollers share a queue, and as fast.

A message is handed to one receive at a time: moto picks the messages of a ReceiveMessage and
marks them received in two steps without a lock, so two concurrent receives (local mode's five
pollers) could both take the same message, a duplicate SQS makes only rarely. Here picking and
marking happen under the queue's own lock (released while the receive waits for messages).

The long poll returns when a message becomes visible: moto's ReceiveMessage with WaitTimeSeconds
waits on the queue for a second at a time and is woken only by a new message being sent: a
delayed message (DelaySeconds), or one whose visibility timeout ends, is found only when that
second is up. The scheduler's retry queue delivers tasks
through delayed messages, so that second would be lateness AWS does not have. Here the wait ends
at the moment the first such message becomes receivable (sooner than moto's second).
"""

from __future__ import annotations

import functools
from typing import Any

_MARK = "_task_scheduler_visibility"


def receive_like_sqs() -> None:
    """Idempotent: a message goes to one concurrent receive only, and a waiting ReceiveMessage
    wakes at the moment a delayed or in-flight message becomes receivable."""
    from moto.sqs.models import Queue, SQSBackend

    if getattr(Queue.wait_for_messages, _MARK, False):
        return
    receive_message = SQSBackend.receive_message

    @functools.wraps(receive_message)
    def receive_one_at_a_time(backend: Any, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        # The queue's lock is reentrant and its wait releases it: other receives (and sends)
        # go on while this one waits; only picking and marking messages is one step.
        with backend.get_queue(queue_name)._messages_lock:
            return receive_message(backend, queue_name, *args, **kwargs)

    SQSBackend.receive_message = receive_one_at_a_time  # type: ignore[method-assign]
    SQSBackend.is_message_valid_based_on_retention_period = within_retention  # type: ignore[method-assign]
    Queue.messages = property(receivable_messages)  # type: ignore[method-assign,assignment]

    @functools.wraps(Queue.wait_for_messages)
    def wait_for_messages(queue: Any, timeout: float) -> None:
        from moto.core.utils import unix_time_millis

        with queue._messages_lock:
            wait = float(timeout)
            soonest = next_receivable_ms(queue._messages)
            if soonest is not None:
                wait = min(wait, max(0.0, (soonest - unix_time_millis()) / 1000))
            if not queue.messages:
                queue._messages_lock.wait_for(lambda: queue.messages, timeout=wait)

    setattr(wait_for_messages, _MARK, True)
    Queue.wait_for_messages = wait_for_messages  # type: ignore[method-assign]


def receivable_messages(queue: Any) -> list[Any]:
    """moto's `Queue.messages` (those visible and not delayed), reading the clock once per call
    instead of twice per message (moto's clock reading is slow, and receives scan the queue)."""
    from moto.core.utils import unix_time_millis

    now = unix_time_millis()
    return [m for m in queue._messages if now > m.visible_at and now >= m.delayed_until]


def within_retention(backend: Any, queue_name: str, message: Any) -> bool:
    """moto's check that a received message is within the queue's retention period, reading the
    period itself: moto's own computes every queue attribute (message counts included, each a
    scan of the whole queue) for each message it hands out, which made receiving from a queue of
    a thousand messages cost a second of CPU per hundred."""
    from moto.core.utils import unix_time

    retention = int(backend.get_queue(queue_name).message_retention_period)
    return retention + message.sent_timestamp / 1000 > unix_time()


def next_receivable_ms(messages: list[Any]) -> float | None:
    """The earliest time (epoch milliseconds) at which one of `messages` that cannot be received
    now (delayed, or in flight) can be; None when there is none. moto counts a message visible
    from the millisecond after its `visible_at`, and delayed until `delayed_until`."""
    times = [max(m.visible_at + 1, m.delayed_until) for m in messages]
    return min(times) if times else None


class DirectSqs:
    """The three SQS calls Lambda's event source makes (ReceiveMessage, DeleteMessage,
    DeleteMessageBatch), served by moto's SQS backend in this process and answered as boto3's
    client answers them. The pollers are AWS's side of the mapping, not the functions' code: going
    through botocore and moto's HTTP handler cost them more CPU than the receive itself (signing,
    moto's request parsing and response serialisation, botocore's parsing of it back)."""

    def __init__(self, account_id: str, region: str) -> None:
        from moto.sqs.models import sqs_backends

        self._backend = sqs_backends[account_id][region]

    @staticmethod
    def _queue_name(queue_url: str) -> str:
        return queue_url.rstrip("/").rsplit("/", 1)[-1]

    def receive_message(  # boto3's parameter names, so either can serve the poller
        self,
        *,
        QueueUrl: str,
        MaxNumberOfMessages: int = 1,
        WaitTimeSeconds: int | None = None,
        AttributeNames: list[str] | None = None,
        MessageAttributeNames: list[str] | None = None,
    ) -> dict[str, Any]:
        name = self._queue_name(QueueUrl)
        queue = self._backend.get_queue(name)
        if WaitTimeSeconds is None:  # the queue's own long-poll setting, as SQS reads it
            WaitTimeSeconds = int(queue.receive_message_wait_time_seconds)
        messages = self._backend.receive_message(
            name,
            MaxNumberOfMessages,
            WaitTimeSeconds,
            queue.visibility_timeout,
            MessageAttributeNames or [],
        )
        wanted = set(AttributeNames or [])
        answer = [_as_received(message, wanted) for message in messages]
        return {"Messages": answer} if answer else {}

    def delete_message(self, *, QueueUrl: str, ReceiptHandle: str) -> dict[str, Any]:
        self._backend.delete_message(self._queue_name(QueueUrl), ReceiptHandle)
        return {}

    def delete_message_batch(
        self,
        *,
        QueueUrl: str,
        Entries: list[dict[str, str]],
    ) -> dict[str, Any]:
        succeeded, failed = self._backend.delete_message_batch(
            self._queue_name(QueueUrl),
            [{"Id": entry["Id"], "ReceiptHandle": entry["ReceiptHandle"]} for entry in Entries],
        )
        answer: dict[str, Any] = {"Successful": [{"Id": each} for each in succeeded]}
        if failed:
            answer["Failed"] = failed
        return answer


_SYSTEM_ATTRIBUTES = {
    # SQS's name -> its value in moto's message (None: left out, as SQS leaves it out)
    "SenderId": lambda m: m.sender_id,
    "SentTimestamp": lambda m: str(m.sent_timestamp),
    "ApproximateReceiveCount": lambda m: str(m.approximate_receive_count),
    "ApproximateFirstReceiveTimestamp": lambda m: str(m.approximate_first_receive_timestamp),
    "MessageDeduplicationId": lambda m: m.deduplication_id,
    "MessageGroupId": lambda m: m.group_id,
    "SequenceNumber": lambda m: m.sequence_number,
}


def _as_received(message: Any, wanted: set[str]) -> dict[str, Any]:
    """One message as boto3's ReceiveMessage answer holds it (moto's SQSResponse, without the
    HTTP round trip)."""
    received: dict[str, Any] = {
        "MessageId": message.id,
        "ReceiptHandle": message.receipt_handle,
        "MD5OfBody": message.body_md5,
        "Body": message.body,
    }
    if message.message_attributes:
        received["MessageAttributes"] = message.message_attributes
        received["MD5OfMessageAttributes"] = message.attribute_md5
    if wanted:
        attributes = {}
        for name, read in _SYSTEM_ATTRIBUTES.items():
            if "All" in wanted or name in wanted:
                value = read(message)
                if value is not None:
                    attributes[name] = value
        received["Attributes"] = attributes
    return received
