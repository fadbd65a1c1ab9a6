"""local.botocore_speed: botocore's requests in local mode's workers, made cheaper without
changing what moto reads of them."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import NoCredentialsError

from local.botocore_speed import ScopeOnlySigV4Auth

ROOT = Path(__file__).resolve().parents[2]


def _request() -> AWSRequest:
    return AWSRequest(
        method="POST",
        url="http://127.0.0.1:9/",
        data=b'{"TableName": "t"}',
        headers={
            "X-Amz-Target": "DynamoDB_20120810.GetItem",
            "Content-Type": "application/x-amz-json-1.0",
        },
    )


@pytest.mark.parametrize("token", [None, "session-token"])
@pytest.mark.parametrize("retry", [False, True])
def test_scope_only_signing_sets_sigv4s_headers_but_the_signature(
    token: str | None, retry: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    fixed = datetime(2026, 11, 30, 14, 0, 0, tzinfo=UTC)
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: fixed)
    credentials = Credentials("AKID", "secret", token)
    signed, scoped = _request(), _request()
    SigV4Auth(credentials, "dynamodb", "eu-west-1").add_auth(signed)
    scope_only = ScopeOnlySigV4Auth(credentials, "dynamodb", "eu-west-1")
    scope_only.add_auth(scoped)
    if retry:  # a retry signs the same request again: its old headers are replaced, not added
        scope_only.add_auth(scoped)
    authorization, signature = signed.headers["Authorization"].split(", Signature=")
    assert len(signature) == 64
    assert scoped.headers["Authorization"] == f"{authorization}, Signature={'0' * 64}"
    assert "Credential=AKID/20261130/eu-west-1/dynamodb/aws4_request" in authorization
    assert sorted(scoped.headers.items()) == sorted(
        (name, scoped.headers["Authorization"] if name == "Authorization" else value)
        for name, value in signed.headers.items()
    )
    assert scoped.context["timestamp"] == signed.context["timestamp"] == "20261130T140000Z"


def test_scope_only_signing_without_credentials_fails_as_sigv4_does() -> None:
    with pytest.raises(NoCredentialsError):
        ScopeOnlySigV4Auth(None, "dynamodb", "eu-west-1").add_auth(_request())


# In a child interpreter: both changes are process-wide, as in a worker.
CHILD = """
import botocore.auth, botocore.useragent, boto3
from botocore.awsrequest import AWSResponse
from local.botocore_speed import ScopeOnlySigV4Auth, make_botocore_cheaper

client = boto3.client("sqs", region_name="eu-west-1", endpoint_url="http://127.0.0.1:9",
                      aws_access_key_id="k", aws_secret_access_key="s")
seen = []
class Empty:
    def stream(self, **_):
        yield b"{}"
def answer(request, **_):
    seen.append({k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()})
    return AWSResponse(request.url, 200, {}, Empty())
client.meta.events.register("before-send", answer)
client.list_queues()
original = botocore.useragent.sanitize_user_agent_string_component
make_botocore_cheaper()
make_botocore_cheaper()  # idempotent
client.list_queues()
client.list_queues()
cached = botocore.useragent.sanitize_user_agent_string_component
assert cached is not original and cached.cache_info().hits > 0, cached
assert cached.__wrapped__ is original
for text in ("Boto3/1.4", "a b#c(d)", "lang/python#3.13", "", "é"):
    for allow_hash in (False, True):
        assert cached(text, allow_hash) == original(text, allow_hash)
assert botocore.auth.AUTH_TYPE_MAPS["v4"] is ScopeOnlySigV4Auth
first, second, third = seen
assert first["User-Agent"] == second["User-Agent"] == third["User-Agent"], seen
scope = [each["Authorization"].split(", Signature=")[0] for each in seen]
assert scope[0] == scope[1] == scope[2]
assert not first["Authorization"].endswith("0" * 64)
assert second["Authorization"].endswith(", Signature=" + "0" * 64)
print("ok")
"""


def test_installed_the_user_agent_is_the_same_and_v4_requests_are_scope_signed() -> None:
    child = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "ok"
