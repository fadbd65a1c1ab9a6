"""`next_token`s (contract section 3): opaque to clients and tamper-evident. A token is the
listing's position as compact JSON, base64url, with an HMAC-SHA256 of it under the deployment's
own key; a token that does not verify, garbled or forged, is a 400 naming `next_token`, so no
client can move a listing anywhere the API did not send it.

The key is 32 random bytes the API function creates the first time it needs one and keeps in the
tasks table (an item that is not a task: it has no status, so no index holds it). Whoever can read
that table reads every task anyway; the key guards against the API's clients, who cannot."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from typing import Any, Protocol

from task_scheduler import aws
from task_scheduler.errors import DependencyFailure, FieldProblem, InvalidRequest

# The key's item; never a task id (those are UUIDs).
KEY_ITEM_ID = "page-token-key"
# Longer tokens are refused before any decoding (ours stay well under 1 KiB).
MAX_TOKEN_CHARS = 2048
_MAC_BYTES = 16
_BASE64URL = re.compile(r"^[A-Za-z0-9_-]+$")


class KeySource(Protocol):
    def key(self) -> bytes: ...


class TableKey:
    """The signing key, read (or, the very first time, created) once per container."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name
        self._key: bytes | None = None

    def key(self) -> bytes:
        if self._key is None:
            self._key = self._read() or self._create()
        return self._key

    def _read(self) -> bytes | None:
        item = aws.call(
            "DynamoDB",
            "read the page token key",
            self._client.get_item,
            TableName=self._table,
            Key={"task_id": {"S": KEY_ITEM_ID}},
            ConsistentRead=True,
        ).get("Item")
        return bytes(item["secret"]["B"]) if item else None

    def _create(self) -> bytes:
        candidate = secrets.token_bytes(32)
        try:
            aws.call(
                "DynamoDB",
                "store the page token key",
                self._client.put_item,
                TableName=self._table,
                Item={"task_id": {"S": KEY_ITEM_ID}, "secret": {"B": candidate}},
                ConditionExpression="attribute_not_exists(task_id)",
            )
        except DependencyFailure as failure:
            if failure.code != aws.CONDITION_FAILED:
                raise
            # Another container created it first: everyone uses that one.
            stored = self._read()
            if stored is None:
                raise
            return stored
        return candidate


class PageTokens:
    def __init__(self, keys: KeySource) -> None:
        self._keys = keys

    def issue(self, position: dict[str, Any]) -> str:
        payload = json.dumps(position, separators=(",", ":"), sort_keys=True).encode("ascii")
        return f"{_encode(payload)}.{_encode(self._mac(payload))}"

    def read(self, token: str) -> dict[str, Any]:
        """The position a token holds; InvalidRequest naming `next_token` unless we issued it."""
        if len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
            raise bad_token()
        encoded_payload, encoded_mac = token.split(".")
        try:
            payload, mac = _decode(encoded_payload), _decode(encoded_mac)
        except ValueError:
            raise bad_token() from None
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise bad_token()
        position = json.loads(payload)  # ours, so valid JSON
        if not isinstance(position, dict):
            raise bad_token()
        return position

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._keys.key(), payload, hashlib.sha256).digest()[:_MAC_BYTES]


def bad_token() -> InvalidRequest:
    return InvalidRequest(
        [FieldProblem("next_token", "is not a token this API issued (garbled or changed)")]
    )


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _decode(text: str) -> bytes:
    # Strictly the alphabet: base64's decoder would skip other characters, so a garbled token
    # could read as the one it was made from.
    if not _BASE64URL.match(text):
        raise ValueError("not base64url")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as error:
        raise ValueError("not base64url") from error
    # Only the one spelling we write: the last character's unused bits must be zero too.
    if _encode(raw) != text:
        raise ValueError("not base64url as issued")
    return raw
