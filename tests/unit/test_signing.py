"""Unit tests for task_scheduler.signing: Standard Webhooks v1 signatures (contract section 5).

Signatures are checked with the `standardwebhooks` library, as a receiver would check them.
"""

import base64
import json
import threading
import time

import pytest
from botocore.exceptions import ClientError
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from task_scheduler.errors import DependencyFailure
from task_scheduler.signing import (
    SECRET_BYTES,
    InvalidSecret,
    SecretsManagerSecret,
    SigningSecret,
    generate_secret,
    secret_from_stored,
)
from tests.support.fakes import StaticSecret

# The example secret and message of the Standard Webhooks specification's test vector.
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MESSAGE_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
BODY = b'{"test": 2432232314}'
# What the template stores: 44 characters of A-Z a-z 0-9 (valid base64 for 33 bytes).
STORED_KEY = "Ab3dEf6hIj9lMn2pQr5tUv8xYz1bCd4fGh7jKl0nOp3r"


def whsec(raw: bytes) -> str:
    return "whsec_" + base64.b64encode(raw).decode()


def now_stamp() -> int:
    # The library refuses timestamps more than 5 minutes from its own clock.
    return int(time.time())


def verify(secret: str, body: bytes, headers: dict[str, str]) -> None:
    Webhook(secret).verify(body, headers, json_parse=False)


# --- SigningSecret: the format ----------------------------------------------------------------


def test_secret_of_16_bytes_or_more_is_accepted():
    SigningSecret(whsec(b"k" * 16))
    SigningSecret(whsec(b"k" * 32))
    SigningSecret(SECRET)  # 24 bytes


@pytest.mark.parametrize(
    "secret",
    [
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsecMfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        " whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "",
    ],
)
def test_secret_without_the_whsec_prefix_is_refused(secret):
    with pytest.raises(InvalidSecret, match="starts with whsec_"):
        SigningSecret(secret)


@pytest.mark.parametrize(
    "secret",
    [
        "whsec_not base64 at all",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",  # 31 characters: not whole base64
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw!",
        "whsec_MfKQ9r8GKYqr-TwjUPD8ILPZIo2LaLaS",  # the URL-safe alphabet is not base64
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n",
    ],
)
def test_secret_that_is_not_base64_is_refused(secret):
    with pytest.raises(InvalidSecret, match="base64"):
        SigningSecret(secret)


@pytest.mark.parametrize("size", [0, 1, 8, 15])
def test_secret_shorter_than_16_bytes_is_refused(size):
    with pytest.raises(InvalidSecret, match="at least 16 bytes"):
        SigningSecret(whsec(b"k" * size))


def test_invalid_secret_is_a_value_error():
    assert issubclass(InvalidSecret, ValueError)


# --- SigningSecret: signatures ----------------------------------------------------------------


def test_signature_matches_the_specification_test_vector():
    signature = SigningSecret(SECRET).signature(MESSAGE_ID, 1614265330, BODY)
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_signature_is_what_the_library_computes():
    stamp = now_stamp()
    headers = {
        "webhook-id": MESSAGE_ID,
        "webhook-timestamp": str(stamp),
        "webhook-signature": SigningSecret(SECRET).signature(MESSAGE_ID, stamp, BODY),
    }
    assert Webhook(SECRET).verify(BODY, headers) == {"test": 2432232314}


def test_headers_are_the_three_standard_webhooks_headers():
    stamp = now_stamp()
    headers = SigningSecret(SECRET).headers(MESSAGE_ID, stamp, BODY)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-id"] == MESSAGE_ID
    assert headers["webhook-timestamp"] == str(stamp)
    assert headers["webhook-signature"] == SigningSecret(SECRET).signature(MESSAGE_ID, stamp, BODY)


@pytest.mark.parametrize(
    "body",
    [b"", b"null", b'{"msg":"Hello from Lambda"}', '{"city":"Zürich","e":"🚀"}'.encode()],
    ids=["empty", "null", "object", "utf8"],
)
def test_headers_verify_with_the_library(body):
    headers = SigningSecret(SECRET).headers("task:1", now_stamp(), body)
    verify(SECRET, body, headers)


def test_changed_body_fails_verification():
    headers = SigningSecret(SECRET).headers(MESSAGE_ID, now_stamp(), BODY)
    with pytest.raises(WebhookVerificationError):
        verify(SECRET, b'{"test": 2432232315}', headers)


def test_body_added_to_an_empty_one_fails_verification():
    headers = SigningSecret(SECRET).headers(MESSAGE_ID, now_stamp(), b"")
    with pytest.raises(WebhookVerificationError):
        verify(SECRET, b"{}", headers)


def test_changed_id_fails_verification():
    headers = SigningSecret(SECRET).headers(MESSAGE_ID, now_stamp(), BODY)
    with pytest.raises(WebhookVerificationError):
        verify(SECRET, BODY, {**headers, "webhook-id": MESSAGE_ID + "x"})


def test_changed_timestamp_fails_verification():
    stamp = now_stamp()
    headers = SigningSecret(SECRET).headers(MESSAGE_ID, stamp, BODY)
    with pytest.raises(WebhookVerificationError):
        verify(SECRET, BODY, {**headers, "webhook-timestamp": str(stamp - 1)})


def test_another_secret_fails_verification():
    headers = SigningSecret(SECRET).headers(MESSAGE_ID, now_stamp(), BODY)
    with pytest.raises(WebhookVerificationError):
        verify(whsec(b"another key of 24 bytes!"), BODY, headers)


def test_signatures_differ_per_id_timestamp_and_body():
    secret = SigningSecret(SECRET)
    base = secret.signature("a", 1, b"x")
    assert len({base, secret.signature("b", 1, b"x"), secret.signature("a", 2, b"x")}) == 3
    assert secret.signature("a", 1, b"y") != base


# --- generate_secret --------------------------------------------------------------------------


def test_generated_secret_is_whsec_and_32_random_bytes():
    secret = generate_secret()
    assert secret.startswith("whsec_")
    assert SECRET_BYTES == 32
    assert len(base64.b64decode(secret[len("whsec_") :], validate=True)) == 32
    assert generate_secret() != secret


def test_generated_secret_is_accepted_by_the_library_and_signs_verifiably():
    secret = generate_secret()
    headers = SigningSecret(secret).headers("t:1", now_stamp(), b'{"a":1}')
    Webhook(secret).verify(b'{"a":1}', headers)


# --- secret_from_stored -----------------------------------------------------------------------


def test_stored_json_key_becomes_a_whsec_secret():
    stored = json.dumps({"format": "whsec_ + key", "key": STORED_KEY})
    secret = secret_from_stored(stored)
    assert secret == "whsec_" + STORED_KEY
    headers = SigningSecret(secret).headers("t:1", now_stamp(), BODY)
    verify(secret, BODY, headers)


def test_stored_json_with_only_a_key_and_surrounding_space_is_read():
    assert secret_from_stored(f'  {{"key": "{STORED_KEY}"}}\n') == "whsec_" + STORED_KEY


def test_stored_raw_secret_is_used_as_it_is():
    assert secret_from_stored(SECRET) == SECRET
    assert secret_from_stored(f"  {SECRET}\n") == SECRET


@pytest.mark.parametrize(
    "stored",
    ['{"format": "whsec_ + key"}', "{}", '{"key": 5}', '{"key": null}', '{"Key": "abc"}'],
)
def test_stored_json_without_a_string_key_is_refused(stored):
    with pytest.raises(InvalidSecret, match='no "key"'):
        secret_from_stored(stored)


def test_stored_text_that_looks_like_json_but_is_not_is_refused():
    with pytest.raises(InvalidSecret, match="not valid JSON"):
        secret_from_stored('{"key": ')


# --- SecretsManagerSecret ---------------------------------------------------------------------


class FakeSecretsManager:
    """get_secret_value over one stored string; counts calls; `fail` raises ClientError."""

    def __init__(self, stored, fail=0, delay=0.0):
        self.stored = stored
        self.fail = fail
        self.delay = delay
        self.calls = []

    def get_secret_value(self, **kwargs):
        self.calls.append(kwargs)
        if self.delay:
            time.sleep(self.delay)
        if self.fail:
            self.fail -= 1
            raise ClientError(
                {"Error": {"Code": "InternalServiceError", "Message": "oops"}}, "GetSecretValue"
            )
        return {"SecretString": self.stored, "Name": "signing"}


def test_secret_is_not_read_until_first_use():
    client = FakeSecretsManager(json.dumps({"key": STORED_KEY}))
    SecretsManagerSecret(client, "arn:aws:secretsmanager:eu-west-1:1:secret:signing")
    assert client.calls == []


def test_secret_is_read_once_and_cached():
    client = FakeSecretsManager(json.dumps({"key": STORED_KEY}))
    source = SecretsManagerSecret(client, "arn:signing")
    first = source.get()
    second = source.get()
    assert first is second
    assert client.calls == [{"SecretId": "arn:signing"}]
    stamp = now_stamp()
    verify("whsec_" + STORED_KEY, BODY, first.headers("t:1", stamp, BODY))


def test_raw_stored_secret_is_read_too():
    source = SecretsManagerSecret(FakeSecretsManager(SECRET), "arn:signing")
    headers = source.get().headers(MESSAGE_ID, now_stamp(), BODY)
    verify(SECRET, BODY, headers)


def test_failed_read_is_raised_and_not_cached():
    client = FakeSecretsManager(SECRET, fail=1)
    source = SecretsManagerSecret(client, "arn:signing")
    with pytest.raises(DependencyFailure):
        source.get()
    assert source.get() is source.get()
    assert len(client.calls) == 2


def test_concurrent_first_reads_read_once():
    client = FakeSecretsManager(SECRET, delay=0.05)
    source = SecretsManagerSecret(client, "arn:signing")
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(source.get())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(client.calls) == 1
    assert len({id(secret) for secret in seen}) == 1


def test_invalid_stored_secret_is_refused_when_read():
    source = SecretsManagerSecret(FakeSecretsManager("not-a-secret"), "arn:signing")
    with pytest.raises(InvalidSecret):
        source.get()


# --- StaticSecret -----------------------------------------------------------------------------


def test_static_secret_checks_the_format_when_built():
    with pytest.raises(InvalidSecret):
        StaticSecret("whsec_short")
    source = StaticSecret(SECRET)
    assert source.get() is source.get()
    verify(SECRET, BODY, source.get().headers(MESSAGE_ID, now_stamp(), BODY))


def test_stored_key_that_already_has_the_prefix_is_not_prefixed_twice():
    assert secret_from_stored(json.dumps({"key": "whsec_QUJDRA=="})) == "whsec_QUJDRA=="
