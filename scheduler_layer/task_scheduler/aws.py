"""AWS clients as both functions create them: short timeouts and bounded retries, so a slow call
fails inside the function's own timeout and the undo paths get to run (boto3's defaults are a 60 s
read timeout and up to 10 retries, longer than the API function's 10 s)."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from task_scheduler.errors import DependencyFailure

_CONFIG = Config(
    connect_timeout=2,
    read_timeout=3,
    retries={"mode": "standard", "total_max_attempts": 3},
)


def client(service: str) -> Any:
    return boto3.client(service, config=_CONFIG)


def error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def dependency_failure(what: str, error: Exception, service: str = "AWS") -> DependencyFailure:
    """The DependencyFailure for a failed AWS call (ClientError or BotoCoreError), naming what
    could not be done and the error code AWS answered, if it answered."""
    if isinstance(error, ClientError):
        return DependencyFailure(
            f"Could not {what}: {service} answered {error_code(error) or 'an error'}."
        )
    return DependencyFailure(f"Could not {what}: {service} was unreachable.")
