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


SIGNED = {
    "X-Amz-Target": "DynamoDB_20120810.UpdateItem",
    "Content-Type": "application/x-amz-json-1.0",
    "User-Agent": "Boto3/1.43 md/Botocore#1.43",
    "X-Amz-Date": "20261130T140000Z",
    "Authorization": "AWS4-HMAC-SHA256 Credential=k/20261130/us-east-1/dynamodb/aws4_request, "
    "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=abc",
    "Content-Length": "99",  # the body's own length is what counts
    "amz-sdk-invocation-id": "5d1d",
}


@pytest.mark.parametrize(
    ("method", "url", "headers", "body"),
    [
        ("POST", "https://dynamodb.us-east-1.amazonaws.com/", SIGNED, b'{"TableName": "t"}'),
        ("POST", "https://sqs.eu-west-1.amazonaws.com/", {**SIGNED, "x-amz-date": "b"}, b"{}"),
        ("POST", "https://dynamodb.us-east-1.amazonaws.com/", {"X-Amz-Target": "T"}, b""),
        ("GET", "https://sts.amazonaws.com/", {"Transfer-Encoding": "chunked"}, b""),
        # botocore sends the endpoint it was given as a Host header: it replaces the URL's host.
        ("POST", "https://dynamodb.us-east-1.amazonaws.com/", {**SIGNED, "host": "h:1"}, b"{}"),
        ("POST", "https://dynamodb.us-east-1.amazonaws.com/", {**SIGNED, "Host": "h"}, b"{}"),
        ("POST", "https://sqs.us-east-1.amazonaws.com/", {"host": "a", "Host": "b"}, b"{}"),
        (
            "POST",
            "https://sqs.us-east-1.amazonaws.com/",
            {"content-type": "a", "Content-Type": "b"},
            b"",
        ),
        # These take moto's own way; the environ is the same either way.
        ("POST", "https://sqs.us-east-1.amazonaws.com/123456789012/q", SIGNED, b"{}"),
        ("GET", "https://events.us-east-1.amazonaws.com/?Action=List", SIGNED, b""),
        ("PUT", "https://s3.amazonaws.com/", {**SIGNED, "x-amz-meta-a_b": "c"}, b"x"),
    ],
)
def test_requests_are_built_as_moto_builds_them(
    method: str, url: str, headers: dict[str, str], body: bytes
) -> None:
    from moto.core.request import Request

    from local.aws_dispatch import _request

    def environ(request: Any) -> dict[str, Any]:
        built = dict(request.environ)
        built.pop("werkzeug.request", None)
        built["wsgi.input"] = built["wsgi.input"].read()
        return built

    def seen(request: Any) -> tuple[Any, ...]:  # what moto reads of a request
        return request.get_data(), dict(request.headers), request.url, request.raw_url

    moto_way = Request.from_primitives
    assert environ(_request(method, url, headers, body)) == environ(
        moto_way(method, url, headers, body)
    )
    assert seen(_request(method, url, headers, body)) == seen(moto_way(method, url, headers, body))


def test_botocores_own_requests_take_the_direct_way(
    nowhere: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """botocore sends a Host header with every call: the direct environ must serve it, or it
    is never used (it was not, until the Host header was handled)."""
    from moto.core.request import Request

    def moto_way(*_: Any) -> Any:
        raise AssertionError("built through werkzeug")

    monkeypatch.setattr(Request, "from_primitives", moto_way)
    dynamodb = _client("dynamodb", nowhere, route_to(MotoDispatch(), nowhere))
    with pytest.raises(dynamodb.exceptions.ResourceNotFoundException):
        dynamodb.get_item(TableName="missing", Key={"k": {"S": "a"}})
    sqs = _client("sqs", nowhere, route_to(MotoDispatch(), nowhere))
    assert sqs.list_queues().get("QueueUrls", []) == []
