"""Standard Webhooks v1 signatures (https://www.standardwebhooks.com): what lets a receiver trust
that a delivery came from this deployment and was not replayed or altered."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import threading
from typing import Any, Protocol

from task_scheduler import aws

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SECRET_BYTES = 32


class InvalidSecret(ValueError):
    """The configured signing secret is not `whsec_` followed by base64."""


class SigningSecret:
    def __init__(self, secret: str) -> None:
        if not secret.startswith(SECRET_PREFIX):
            raise InvalidSecret(f"a signing secret starts with {SECRET_PREFIX}")
        try:
            self._key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            raise InvalidSecret("a signing secret is whsec_ followed by base64") from None
        if len(self._key) < 16:
            raise InvalidSecret("a signing secret holds at least 16 bytes")

    def signature(self, message_id: str, timestamp: int, body: bytes) -> str:
        """`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`."""
        signed = f"{message_id}.{timestamp}.".encode() + body
        digest = hmac.new(self._key, signed, hashlib.sha256).digest()
        return "v1," + base64.b64encode(digest).decode("ascii")

    def headers(self, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
        return {
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": self.signature(message_id, timestamp, body),
        }


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def secret_from_stored(value: str) -> str:
    """The `whsec_...` secret from what Secrets Manager holds: the JSON the template generates
    (`{"key": "<base64>"}`), or the secret itself."""
    text = value.strip()
    if text.startswith("{"):
        try:
            document: Any = json.loads(text)
        except ValueError:
            raise InvalidSecret("the stored signing secret is not valid JSON") from None
        key = document.get("key") if isinstance(document, dict) else None
        if not isinstance(key, str):
            raise InvalidSecret('the stored signing secret has no "key"')
        return key if key.startswith(SECRET_PREFIX) else SECRET_PREFIX + key
    return text


class SecretSource(Protocol):
    def get(self) -> SigningSecret: ...


class SecretsManagerSecret:
    """Reads the secret once per warm container, on first use (not at import: cold starts of the
    API function, which never signs, do not pay for it)."""

    def __init__(self, client: Any, secret_id: str) -> None:
        self._client = client
        self._secret_id = secret_id
        self._cached: SigningSecret | None = None
        self._lock = threading.Lock()

    def get(self) -> SigningSecret:
        """Raises DependencyFailure when Secrets Manager fails, InvalidSecret when what it holds
        is malformed."""
        with self._lock:
            if self._cached is None:
                answer = aws.call(
                    "Secrets Manager",
                    "read the signing secret",
                    self._client.get_secret_value,
                    SecretId=self._secret_id,
                )
                value = answer["SecretString"]
                self._cached = SigningSecret(secret_from_stored(value))
            return self._cached
