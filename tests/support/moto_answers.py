"""Runs of moto calls local.moto_speed changes the cost of, printed as JSON: DynamoDB UpdateItem
calls of every kind and the other item operations (each answer or error), and SQS sends,
receives and queue counts. `python -m tests.support.moto_answers [--cheaper]` runs them with or
without local.moto_speed's changes, so a test can see that they change no answer."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

TWO_NAMES = "SET #a = :v, #b = :w"
VALUES_2 = {":v": {"S": "v"}, ":w": {"N": "2"}}
APPEND = "SET n = n + :one, m.k = list_append(if_not_exists(m.k, :empty), :more)"
UPDATES: list[dict[str, Any]] = [
    # (the same expression texts come back with other values: a cached parse must not keep them)
    {
        "UpdateExpression": "SET #s = :s, n = :n, tags = :t, m = :m",
        "Values": {
            ":s": {"S": "a"},
            ":n": {"N": "1"},
            ":t": {"SS": ["x"]},
            ":m": {"M": {"k": {"L": [{"S": "v"}]}}},
        },
    },
    {
        "UpdateExpression": "SET #s = :s, n = :n, tags = :t, m = :m",
        "Values": {":s": {"S": "b"}, ":n": {"N": "7"}, ":t": {"SS": ["y", "z"]}, ":m": {"M": {}}},
    },
    {
        "UpdateExpression": APPEND,
        "Values": {":one": {"N": "2"}, ":empty": {"L": []}, ":more": {"L": [{"N": "3"}]}},
    },
    {
        "UpdateExpression": APPEND,
        "Values": {
            ":one": {"N": "-5"},
            ":empty": {"L": []},
            ":more": {"L": [{"BOOL": True}, {"NULL": True}]},
        },
    },
    {"UpdateExpression": "SET m.k[0] = :v REMOVE tags", "Values": {":v": {"S": "first"}}},
    {"UpdateExpression": "ADD n :d, tags :t", "Values": {":d": {"N": "10"}, ":t": {"SS": ["q"]}}},
    {"UpdateExpression": "DELETE tags :t", "Values": {":t": {"SS": ["q"]}}},
    {
        "UpdateExpression": "SET #s = :s",
        "Values": {":s": {"S": "c"}},
        "ConditionExpression": "#s = :s",
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    },
    {
        "UpdateExpression": "SET #s = :s",
        "Values": {":s": {"S": "b"}},
        "ConditionExpression": "attribute_exists(n) AND #s <> :s",
    },
    {  # a condition text seen before, with another value: it holds this time
        "UpdateExpression": "SET #s = :s",
        "Values": {":s": {"S": "b"}},
        "ConditionExpression": "#s = :s",
    },
    {
        "UpdateExpression": "SET n = :z",
        "Values": {":z": {"N": "3"}, ":p": {"S": "x"}},
        "ConditionExpression": "(attribute_exists(n) OR size(tags) > :z) AND "
        "NOT begins_with(#s, :p)",
    },
    {
        "UpdateExpression": "SET n = :z",
        "Values": {":z": {"N": "3"}},
        "ConditionExpression": "n = :z ; n",
    },
    {"UpdateExpression": "SET a = :v, a.b = :v", "Values": {":v": {"S": "overlap"}}},
    {"UpdateExpression": "SET n = nowhere + :n", "Values": {":n": {"N": "1"}}},
    {"UpdateExpression": "SET n = if_not_exists(nowhere, :n)", "Values": {":n": {"N": "8"}}},
    {"UpdateExpression": "SET x = :s, g = :n", "Values": {":s": {"S": "t"}, ":n": {"N": "1"}}},
    {"UpdateExpression": "SET x = :s, g = :e", "Values": {":s": {"S": "t"}, ":e": {"S": ""}}},
    {"UpdateExpression": "SET x = :s, g = :s", "Values": {":s": {"S": "indexed"}}},
    {"UpdateExpression": "SET a = :v, a.b = :v", "Values": {":v": {"S": "overlap again"}}},
    # One text, names that make it valid, then overlapping, then updating the key, then valid:
    # whether a text passed its checks depends on its names too.
    {"UpdateExpression": TWO_NAMES, "Values": VALUES_2, "Names": {"#a": "x", "#b": "y"}},
    {"UpdateExpression": TWO_NAMES, "Values": VALUES_2, "Names": {"#a": "x", "#b": "x"}},
    {"UpdateExpression": TWO_NAMES, "Values": VALUES_2, "Names": {"#a": "pk", "#b": "y"}},
    {"UpdateExpression": TWO_NAMES, "Values": VALUES_2, "Names": {"#a": "y", "#b": "x"}},
    {"UpdateExpression": "SET a = :v SET b = :v", "Values": {":v": {"S": "two SET clauses"}}},
    {"UpdateExpression": "SET a = :v SET b = :v", "Values": {":v": {"S": "and again"}}},
    {"UpdateExpression": "SET nothing.deeper = :v", "Values": {":v": {"S": "no path"}}},
    {"UpdateExpression": "SET n = n + :text", "Values": {":text": {"S": "not a number"}}},
    {"UpdateExpression": "SET = :v", "Values": {":v": {"S": "syntax"}}},
    {"UpdateExpression": "SET pk = :v", "Values": {":v": {"S": "key"}}},
    # Reserved words, in any case, where a name is read: refused unless given as #names.
    {"UpdateExpression": "SET status = :v", "Values": {":v": {"S": "reserved"}}},
    {"UpdateExpression": "SET n = :v, m.Value = :v", "Values": {":v": {"S": "reserved"}}},
    {
        "UpdateExpression": "SET n = :z",
        "Values": {":z": {"N": "4"}},
        "ConditionExpression": "attribute_exists(n) OR Comment = :z",
    },
    {"UpdateExpression": "SET statuses = :v", "Values": {":v": {"S": "not reserved"}}},
    {
        "UpdateExpression": "SET #s = :s, n = :n, tags = :t, m = :m",
        "Values": {
            ":s": {"S": "d"},
            ":n": {"N": "0.5"},
            ":t": {"NS": ["1"]},
            ":m": {"M": {"k": {"L": []}}},
        },
    },
]


def run_dynamodb() -> list[Any]:
    import boto3
    from botocore.exceptions import ClientError

    table = "updates"
    client = boto3.client("dynamodb", region_name="us-east-1")
    client.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "g", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[  # an index key: checked for its type and for an empty value
            {
                "IndexName": "by-g",
                "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    answers: list[Any] = []
    for key in ("one", "two"):  # the second item starts missing: UpdateItem creates it
        for update in UPDATES:
            request: dict[str, Any] = {
                "TableName": table,
                "Key": {"pk": {"S": key}},
                "UpdateExpression": update["UpdateExpression"],
                "ExpressionAttributeValues": update["Values"],
                "ReturnValues": "ALL_NEW",
            }
            if "Names" in update:
                request["ExpressionAttributeNames"] = update["Names"]
            elif "#s" in update["UpdateExpression"] + update.get("ConditionExpression", ""):
                request["ExpressionAttributeNames"] = {"#s": "status"}
            for name in ("ConditionExpression", "ReturnValuesOnConditionCheckFailure"):
                if name in update:
                    request[name] = update[name]
            try:
                answer = client.update_item(**request)
                answers.append({"Attributes": answer.get("Attributes")})
            except ClientError as error:
                answers.append(
                    {"error": error.response["Error"], "item": error.response.get("Item")}
                )
            except ValueError as error:  # moto's own failure on a condition it cannot split
                answers.append({"raised": type(error).__name__, "message": str(error)})
        answers.append(client.get_item(TableName=table, Key={"pk": {"S": key}}).get("Item"))
    # The other item operations, an item with binary attributes and nulls among them.
    binary = {
        "pk": {"S": "bin"},
        "b": {"B": b"\x00\xff"},
        "bs": {"BS": [b"a"]},
        "z": {"NULL": True},
    }
    answers.append(client.put_item(TableName=table, Item=binary, ReturnValues="ALL_OLD"))
    answers.append(client.put_item(TableName=table, Item=binary, ReturnValues="ALL_OLD"))
    # Binary values one kind at a time (each parsed from base64 on its own).
    answers.append(client.put_item(TableName=table, Item={"pk": {"S": "b1"}, "b": {"B": b"\x01"}}))
    answers.append(client.put_item(TableName=table, Item={"pk": {"S": "b2"}, "s": {"BS": [b"z"]}}))
    # What was stored, read by conditions: one byte (not its four characters of base64), and a
    # set holding the bytes b"z" (not the text "eg==").
    for key, condition, values in (
        ("b1", "size(b) = :one", {":one": {"N": "1"}}),
        ("b2", "contains(s, :z)", {":z": {"B": b"z"}}),
    ):
        answers.append(client.get_item(TableName=table, Key={"pk": {"S": key}}))
        try:
            client.update_item(
                TableName=table,
                Key={"pk": {"S": key}},
                UpdateExpression="SET seen = :yes",
                ConditionExpression=condition,
                ExpressionAttributeValues={**values, ":yes": {"BOOL": True}},
            )
            answers.append("held")
        except ClientError as error:
            answers.append(error.response["Error"])
    for key in ("one", "bin", "absent"):
        answers.append(client.get_item(TableName=table, Key={"pk": {"S": key}}))
    for projection in ("n, tags", "n, comment", "n, #s"):  # COMMENT is a reserved word
        try:
            answers.append(
                client.get_item(
                    TableName=table,
                    Key={"pk": {"S": "one"}},
                    ProjectionExpression=projection,
                    **({"ExpressionAttributeNames": {"#s": "status"}} if "#" in projection else {}),
                )
            )
        except ClientError as error:
            answers.append(error.response["Error"])
    answers.append(
        client.query(
            TableName=table,
            KeyConditionExpression="pk = :k",
            ExpressionAttributeValues={":k": {"S": "bin"}},
        )
    )
    answers.append(client.scan(TableName=table, Limit=2))
    answers.append(client.scan(TableName=table, ReturnConsumedCapacity="TOTAL"))
    for key in ("two", "absent"):
        answers.append(
            client.delete_item(TableName=table, Key={"pk": {"S": key}}, ReturnValues="ALL_OLD")
        )
    for answer in answers:
        if isinstance(answer, dict):
            answer.pop("ResponseMetadata", None)
    return answers


def run_sqs() -> list[Any]:
    import boto3
    from botocore.exceptions import ClientError

    client = boto3.client("sqs", region_name="us-east-1")
    answers: list[Any] = []
    url = client.create_queue(QueueName="counted", Attributes={"VisibilityTimeout": "600"})[
        "QueueUrl"
    ]
    for delay in (0, 0, 0, 900, 900):
        client.send_message(QueueUrl=url, MessageBody=f"delay {delay}", DelaySeconds=delay)
    received = client.receive_message(QueueUrl=url, MaxNumberOfMessages=2)["Messages"]
    answers.append(sorted(message["Body"] for message in received))
    counts = client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    answers.append({k: v for k, v in counts.items() if k.startswith("ApproximateNumber")})
    # Deletes: by the current handle, again, by a handle a message had before it was received
    # again, and by one no message had.
    first, second = (message["ReceiptHandle"] for message in received)
    client.change_message_visibility(QueueUrl=url, ReceiptHandle=second, VisibilityTimeout=0)
    again = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    answers.append(sorted(message["Body"] for message in again))
    for handle in (first, first, second, "not-a-handle"):
        try:
            client.delete_message(QueueUrl=url, ReceiptHandle=handle)
            answers.append("deleted")
        except ClientError as error:
            answers.append(error.response["Error"]["Code"])
    counts = client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    answers.append({k: v for k, v in counts.items() if k.startswith("ApproximateNumber")})
    answers.append(
        sorted(
            message["Body"]
            for message in client.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0
            ).get("Messages", [])
        )
    )
    fifo = client.create_queue(
        QueueName="deduplicated.fifo",
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
    )["QueueUrl"]
    for _ in range(3):  # the same body: one message
        client.send_message(QueueUrl=fifo, MessageBody="same", MessageGroupId="g")
    counts = client.get_queue_attributes(QueueUrl=fifo, AttributeNames=["All"])["Attributes"]
    answers.append(counts["ApproximateNumberOfMessages"])
    return answers


def main() -> None:
    from moto import mock_aws

    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    os.environ.pop("AWS_ENDPOINT_URL", None)
    if "--cheaper" in sys.argv:
        from local.moto_speed import make_moto_cheaper

        make_moto_cheaper()
    with mock_aws():
        answers = {"dynamodb": run_dynamodb(), "sqs": run_sqs()}
    sys.stdout.write(json.dumps(answers, sort_keys=True, default=str) + "\n")


if __name__ == "__main__":
    main()
