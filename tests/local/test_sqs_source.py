"""Lambda's SQS event source, emulated (local.sqs_source): batches of at most BatchSize records
run side by side, each message is delivered once and deleted unless reported failed; and moto's
long poll wakes when a delayed message becomes receivable (local.moto_sqs)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.moto_speed import delete_sqs_messages_in_one_pass
from local.moto_sqs import DirectSqs, next_receivable_ms, receive_like_sqs
from local.sqs_source import QueuePoller
from tests.support.threads import run_with_frequent_switches

ARN = "arn:aws:sqs:us-east-1:123456789012:q"


@dataclass
class RecordingFunction:
    """Stands in for a LocalFunction: records each batch, answers as `answer` says."""

    logical_id: str = "Fn"
    barrier: threading.Barrier | None = None
    fail_bodies: set[str] = field(default_factory=set)
    batches: list[list[str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        bodies = [record["body"] for record in event["Records"]]
        with self.lock:
            self.batches.append(bodies)
        if self.barrier is not None:
            self.barrier.wait()  # breaks (and fails the test) unless all run side by side
        failures = [
            {"itemIdentifier": record["messageId"]}
            for record in event["Records"]
            if record["body"] in self.fail_bodies
        ]
        return {"batchItemFailures": failures}


@pytest.fixture
def sqs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    # moto as local mode runs it: without this, two pollers' receives can take the same message,
    # and whether it was installed would depend on which test ran first in this process.
    receive_like_sqs()
    with mock_aws():
        yield boto3.client("sqs", region_name="us-east-1")


def _poll_until(condition: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not condition():
        time.sleep(0.05)


@pytest.fixture(params=["boto3", "direct"])
def polling(request: pytest.FixtureRequest, sqs: Any) -> Any:
    """What the poller receives and deletes through: boto3's client, or the DirectSqs local mode
    gives it (moto's backend without botocore), which must behave the same."""
    return sqs if request.param == "boto3" else DirectSqs("123456789012", "us-east-1")


def _run(
    sqs: Any, function: RecordingFunction, batch_size: int, bodies: list[str], polling: Any
) -> str:
    url = sqs.create_queue(QueueName="q", Attributes={"VisibilityTimeout": "600"})["QueueUrl"]
    for body in bodies:
        sqs.send_message(QueueUrl=url, MessageBody=body)
    poller = QueuePoller(polling, url, ARN, "us-east-1", function, batch_size)  # type: ignore[arg-type]
    poller.start()
    try:
        _poll_until(lambda: sum(len(b) for b in function.batches) >= len(bodies))
        time.sleep(0.3)  # any duplicate would show now
    finally:
        poller.stop()
    return url


class CountingSqs:
    """The SQS client, counting the ReceiveMessage calls that returned messages."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.receives_with_messages = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def receive_message(self, **kwargs: Any) -> Any:
        answer = self._client.receive_message(**kwargs)
        if answer.get("Messages"):
            self.receives_with_messages += 1
        return answer


def test_messages_visible_together_run_side_by_side_each_once(sqs: Any, polling: Any) -> None:
    bodies = [f"m{n}" for n in range(24)]
    function = RecordingFunction(barrier=threading.Barrier(24, timeout=20))
    counting = CountingSqs(polling)
    url = _run(sqs, function, 1, bodies, counting)
    assert sorted(body for batch in function.batches for body in batch) == sorted(bodies)
    assert all(len(batch) == 1 for batch in function.batches)
    assert "Messages" not in sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)
    # Up to ten messages a call, as Lambda's pollers take them, not one call per batch.
    assert counting.receives_with_messages < len(bodies) / 2


def test_batches_hold_at_most_batch_size_and_failed_records_stay(sqs: Any, polling: Any) -> None:
    bodies = [f"m{n}" for n in range(7)]
    function = RecordingFunction(fail_bodies={"m3"})
    url = _run(sqs, function, 3, bodies, polling)
    assert sorted(body for batch in function.batches for body in batch) == sorted(bodies)
    assert max(len(batch) for batch in function.batches) <= 3
    left = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert left["ApproximateNumberOfMessagesNotVisible"] == "1"
    assert left["ApproximateNumberOfMessages"] == "0"


def _queue_of(sqs: Any, name: str, count: int) -> str:
    """A queue holding `count` messages m0, m1, ... (received ones stay hidden ten minutes)."""
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "600"})["QueueUrl"]
    for start in range(0, count, 10):
        sqs.send_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(n), "MessageBody": f"m{n}"} for n in range(start, start + 10)],
        )
    return url


def test_concurrent_receives_never_take_the_same_message(sqs: Any) -> None:
    url = _queue_of(sqs, "shared", 200)
    taken: list[str] = []
    lock = threading.Lock()

    def drain() -> None:
        while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            with lock:
                taken.extend(message["MessageId"] for message in messages)

    run_with_frequent_switches([drain] * 8, timeout=60)
    assert len(taken) == 200
    assert len(set(taken)) == 200


def test_concurrent_deletes_each_take_their_message_out_for_good(sqs: Any) -> None:
    """A delete rebuilds the queue without its message: two side by side must not each put
    back what the other took out (local.moto_speed holds the queue's lock for it)."""
    delete_sqs_messages_in_one_pass()
    url = _queue_of(sqs, "deleted", 400)
    handles: list[str] = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        handles.extend(message["ReceiptHandle"] for message in messages)
    assert len(handles) == 400
    direct = DirectSqs("123456789012", "us-east-1")

    def deleting(share: list[str]) -> Any:
        def delete() -> None:
            for handle in share:
                direct.delete_message(QueueUrl=url, ReceiptHandle=handle)

        return delete

    run_with_frequent_switches([deleting(handles[n::8]) for n in range(8)], timeout=60)
    left = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert left["ApproximateNumberOfMessagesNotVisible"] == "0"
    assert left["ApproximateNumberOfMessages"] == "0"


def test_direct_calls_answer_as_boto3_does(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="same")["QueueUrl"]
    attributes = {
        "tenant": {"DataType": "String", "StringValue": "acme"},
        "raw": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
    }
    for body in ("one", "two"):
        sqs.send_message(QueueUrl=url, MessageBody=body, MessageAttributes=attributes)
    direct = DirectSqs("123456789012", "us-east-1")
    wanted = {"AttributeNames": ["All"], "MessageAttributeNames": ["All"]}
    (by_boto,) = sqs.receive_message(QueueUrl=url, **wanted)["Messages"]
    (by_direct,) = direct.receive_message(QueueUrl=url, **wanted)["Messages"]

    def varying(message: dict[str, Any]) -> dict[str, Any]:
        # What differs between two messages: their ids, bodies and times.
        fixed = {k: v for k, v in message.items() if k not in ("MessageId", "ReceiptHandle")}
        fixed.pop("Body"), fixed.pop("MD5OfBody")
        fixed["Attributes"] = {
            k: v for k, v in message["Attributes"].items() if not k.endswith("Timestamp")
        }
        return fixed

    assert varying(by_direct) == varying(by_boto)
    assert set(by_direct["Attributes"]) == set(by_boto["Attributes"])
    assert {by_direct["Body"], by_boto["Body"]} == {"one", "two"}
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    assert "Messages" not in direct.receive_message(QueueUrl=url)

    answer = direct.delete_message_batch(
        QueueUrl=url,
        Entries=[
            {"Id": "a", "ReceiptHandle": by_direct["ReceiptHandle"]},
            {"Id": "b", "ReceiptHandle": "not-a-handle"},
        ],
    )
    assert answer["Successful"] == [{"Id": "a"}]
    assert [(f["Id"], f["Code"]) for f in answer["Failed"]] == [("b", "ReceiptHandleIsInvalid")]
    direct.delete_message(QueueUrl=url, ReceiptHandle=by_boto["ReceiptHandle"])
    left = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert (
        left["ApproximateNumberOfMessages"] == left["ApproximateNumberOfMessagesNotVisible"] == "0"
    )


@dataclass
class FakeMessage:
    visible_at: float = 0.0
    delayed_until: float = 0.0


def test_the_next_receivable_moment_is_the_soonest_delay_or_visibility_end() -> None:
    assert next_receivable_ms([]) is None
    messages = [FakeMessage(delayed_until=5_000), FakeMessage(visible_at=3_000), FakeMessage()]
    assert next_receivable_ms(messages[:2]) == 3_001
    assert next_receivable_ms([FakeMessage(visible_at=9_000, delayed_until=4_000)]) == 9_001


class RecordingCondition:
    def __init__(self) -> None:
        self.timeouts: list[float] = []

    def __enter__(self) -> RecordingCondition:
        return self

    def __exit__(self, *_: Any) -> None:
        return None

    def wait_for(self, predicate: Any, timeout: float) -> bool:
        self.timeouts.append(timeout)
        return bool(predicate())


def test_a_long_poll_waits_only_until_a_delayed_message_is_due() -> None:
    from moto.core.utils import unix_time_millis
    from moto.sqs.models import Queue

    receive_like_sqs()

    class WaitingQueue:
        _messages_lock = RecordingCondition()
        _messages = [FakeMessage(delayed_until=unix_time_millis() + 400)]
        messages: list[Any] = []

    Queue.wait_for_messages(WaitingQueue(), 20)  # type: ignore[arg-type]
    (timeout,) = WaitingQueue._messages_lock.timeouts
    assert 0 < timeout <= 0.4
