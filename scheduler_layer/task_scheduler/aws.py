"""AWS clients as both functions create them: short timeouts and bounded retries, so a slow call
fails inside the function's own timeout and the undo paths get to run (boto3's defaults are a 60 s
read timeout and up to 10 retries, longer than the API function's 10 s)."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(
    connect_timeout=2,
    read_timeout=3,
    retries={"mode": "standard", "total_max_attempts": 3},
)


def client(service: str) -> Any:
    return boto3.client(service, config=_CONFIG)
