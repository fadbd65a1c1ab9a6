"""The functions' AWS calls reach moto without HTTP (local.aws_dispatch), and only those bound
for moto's endpoint: anything else still goes out."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.aws_dispatch import MotoDispatch, route_to
from tests.support.local_process import refusing_endpoint


@pytest.fixture
def nowhere(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An endpoint nothing listens on: a call that went over HTTP would fail."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws(), refusing_endpoint() as endpoint:
        yield endpoint


def _client(service: str, endpoint: str, before_send: Any) -> Any:
    client = boto3.client(service, region_name="eu-west-1", endpoint_url=endpoint)
    client.meta.events.register("before-send", before_send)
    return client


def test_calls_to_moto_are_served_in_process_with_moto_state(nowhere: str) -> None:
    before_send = route_to(MotoDispatch(), nowhere)
    dynamodb = _client("dynamodb", nowhere, before_send)
    dynamodb.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.put_item(TableName="t", Item={"k": {"S": "a"}, "n": {"N": "1"}})
    # The same state moto's own server would answer from, in the request's region.
    direct = boto3.client("dynamodb", region_name="eu-west-1")
    assert direct.get_item(TableName="t", Key={"k": {"S": "a"}})["Item"]["n"] == {"N": "1"}
    sqs = _client("sqs", nowhere, before_send)
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="hello")
    assert [m["Body"] for m in sqs.receive_message(QueueUrl=url)["Messages"]] == ["hello"]


def test_moto_errors_reach_the_caller_as_aws_errors(nowhere: str) -> None:
    dynamodb = _client("dynamodb", nowhere, route_to(MotoDispatch(), nowhere))
    with pytest.raises(dynamodb.exceptions.ResourceNotFoundException):
        dynamodb.get_item(TableName="missing", Key={"k": {"S": "a"}})


def test_requests_for_other_endpoints_are_left_to_http(nowhere: str) -> None:
    seen: list[str] = []

    def dispatch(service: str, *_: Any) -> tuple[int, dict[str, str], bytes]:
        seen.append(service)
        return 200, {}, b"{}"

    before_send = route_to(dispatch, nowhere)
    with refusing_endpoint() as elsewhere:
        client = _client("secretsmanager", elsewhere, before_send)
        with pytest.raises(Exception, match="Could not connect"):
            client.get_secret_value(SecretId="s")
    assert seen == []
