"""The moto fidelity layer (local.moto_fidelity): moto's DynamoDB keeps DynamoDB's promises that
the scheduler relies on, so local mode and the tests cannot show what AWS never would."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from local.moto_fidelity import make_dynamodb_writes_atomic
from tests.support.threads import run_with_frequent_switches

TABLE = "fidelity"
KEY = {"task_id": {"S": "t1"}}


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    make_dynamodb_writes_atomic()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "task_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "task_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client


def _item(client: Any) -> dict[str, Any]:
    return client.get_item(TableName=TABLE, Key=KEY, ConsistentRead=True)["Item"]


def test_an_update_too_large_for_the_item_changes_nothing(dynamodb: Any) -> None:
    dynamodb.put_item(
        TableName=TABLE,
        Item={**KEY, "status": {"S": "scheduled"}, "filler": {"S": "x" * 300_000}},
    )
    before = _item(dynamodb)

    with pytest.raises(ClientError) as raised:
        # The status is set first; the second value takes the item over 400 KB.
        dynamodb.update_item(
            TableName=TABLE,
            Key=KEY,
            UpdateExpression="SET #status = :running, more = :more",
            ConditionExpression="#status = :scheduled",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":running": {"S": "running"},
                ":scheduled": {"S": "scheduled"},
                ":more": {"S": "y" * 150_000},
            },
        )

    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert _item(dynamodb) == before


def test_a_failed_update_of_a_missing_item_creates_nothing(dynamodb: Any) -> None:
    with pytest.raises(ClientError):
        dynamodb.update_item(
            TableName=TABLE,
            Key=KEY,
            UpdateExpression="SET a = :big, b = :big",
            ExpressionAttributeValues={":big": {"S": "z" * 250_000}},
        )

    assert "Item" not in dynamodb.get_item(TableName=TABLE, Key=KEY, ConsistentRead=True)


def test_a_failed_update_in_a_table_with_a_sort_key_changes_nothing(dynamodb: Any) -> None:
    dynamodb.create_table(
        TableName="sorted",
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    key = {"pk": {"S": "p"}, "sk": {"S": "s"}}
    dynamodb.put_item(TableName="sorted", Item={**key, "n": {"N": "1"}, "f": {"S": "x" * 300_000}})

    with pytest.raises(ClientError):
        dynamodb.update_item(
            TableName="sorted",
            Key=key,
            UpdateExpression="SET n = :two, more = :more",
            ExpressionAttributeValues={":two": {"N": "2"}, ":more": {"S": "y" * 150_000}},
        )

    item = dynamodb.get_item(TableName="sorted", Key=key, ConsistentRead=True)["Item"]
    assert item["n"] == {"N": "1"}
    assert "more" not in item


def test_replacing_a_value_near_the_limit_counts_the_item_it_results_in(dynamodb: Any) -> None:
    # 250 KB replaced by 250 KB: the item stays at about 250 KB, which DynamoDB accepts (moto
    # counted the old value and the new one together).
    dynamodb.put_item(TableName=TABLE, Item={**KEY, "history": {"S": "a" * 250_000}})
    dynamodb.update_item(
        TableName=TABLE,
        Key=KEY,
        UpdateExpression="SET history = :history",
        ExpressionAttributeValues={":history": {"S": "b" * 250_000}},
    )
    assert _item(dynamodb)["history"] == {"S": "b" * 250_000}


def test_an_update_that_shrinks_an_item_at_the_limit_is_applied(dynamodb: Any) -> None:
    dynamodb.put_item(
        TableName=TABLE,
        Item={**KEY, "status": {"S": "running"}, "filler": {"S": "x" * 404_900}},
    )
    dynamodb.update_item(
        TableName=TABLE,
        Key=KEY,
        UpdateExpression="SET #status = :failed, reason = :reason REMOVE filler",
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues={":failed": {"S": "failed"}, ":reason": {"S": "y" * 200}},
    )
    item = _item(dynamodb)
    assert item["status"] == {"S": "failed"}
    assert "filler" not in item


def test_a_successful_update_still_applies(dynamodb: Any) -> None:
    dynamodb.put_item(TableName=TABLE, Item={**KEY, "status": {"S": "scheduled"}})
    dynamodb.update_item(
        TableName=TABLE,
        Key=KEY,
        UpdateExpression="SET #status = :running",
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues={":running": {"S": "running"}},
    )
    assert _item(dynamodb)["status"] == {"S": "running"}


def test_an_item_read_while_it_is_written_is_read_whole(dynamodb: Any) -> None:
    # moto hands its live item to the reply of a read and serialises it after its own write
    # lock: a write adding attributes meanwhile made the read raise "dictionary changed size
    # during iteration" (a 500), as a concurrent GetItem once did in the idempotency tests.
    dynamodb.put_item(TableName=TABLE, Item={**KEY, **{f"a{n}": {"S": "x"} for n in range(50)}})
    failures: list[BaseException] = []
    stop = threading.Event()

    def write() -> None:
        for round_ in range(150):
            names = [f"r{round_}_{n}" for n in range(20)]
            dynamodb.update_item(
                TableName=TABLE,
                Key=KEY,
                UpdateExpression="SET " + ", ".join(f"{name} = :v" for name in names),
                ExpressionAttributeValues={":v": {"S": "y"}},
            )
            dynamodb.update_item(
                TableName=TABLE, Key=KEY, UpdateExpression="REMOVE " + ", ".join(names)
            )
        stop.set()

    def read() -> None:
        while not stop.is_set():
            try:
                _item(dynamodb)
            except Exception as error:  # noqa: BLE001 - any failure of a read is the finding
                failures.append(error)
                return

    run_with_frequent_switches([write, read], timeout=120)
    assert failures == []
