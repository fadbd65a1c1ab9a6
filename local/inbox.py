"""A webhook receiver built into local mode, so a user can watch deliveries without writing one."""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

MAX_KEPT = 1000


@dataclass(frozen=True)
class Delivery:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: datetime

    def as_dict(self) -> dict[str, Any]:
        try:
            body: Any = self.body.decode("utf-8")
            encoding = "utf-8"
        except UnicodeDecodeError:
            body, encoding = base64.b64encode(self.body).decode("ascii"), "base64"
        return {
            "method": self.method,
            "path": self.path,
            "headers": self.headers,
            "body": body,
            "body_encoding": encoding,
            "received_at": self.received_at.isoformat(timespec="milliseconds").replace(
                "+00:00", "Z"
            ),
        }


class Inbox:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._deliveries: list[Delivery] = []

    def record(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Delivery:
        delivery = Delivery(method, path, headers, body, datetime.now(UTC))
        with self._lock:
            self._deliveries.append(delivery)
            del self._deliveries[:-MAX_KEPT]
        return delivery

    def listing(self) -> dict[str, Any]:
        with self._lock:
            return {"deliveries": [d.as_dict() for d in self._deliveries]}

    def clear(self) -> None:
        with self._lock:
            self._deliveries.clear()
