"""The boundary for AWS calls: clients as every function creates them, and the one place where an
AWS failure becomes a domain error.

Clients have short timeouts and bounded retries, so a slow call fails inside the function's own
timeout and the undo paths get to run (boto3's defaults are a 60 s read timeout and up to 10
retries, longer than the API function's 10 s)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from task_scheduler.errors import DependencyFailure

_CONFIG = Config(
    connect_timeout=2,
    read_timeout=3,
    retries={"mode": "standard", "total_max_attempts": 3},
)

# Error codes the scheduler's code decides on.
CONDITION_FAILED = "ConditionalCheckFailedException"
NOT_FOUND = "ResourceNotFoundException"
VALIDATION = "ValidationException"
LIMIT_EXCEEDED = "LimitExceededException"


def client(service: str) -> Any:
    return boto3.client(service, config=_CONFIG)


def call(service: str, what: str, operation: Callable[..., Any], /, **kwargs: Any) -> Any:
    """`operation(**kwargs)`, with a failure raised as DependencyFailure naming what could not be
    done, the service, and the error code AWS answered (also kept in `.code`)."""
    try:
        return operation(**kwargs)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code") or None
        raise DependencyFailure(
            f"Could not {what}: {service} answered {code or 'an error'}.",
            code,
            error.response.get("Item"),
        ) from error
    except BotoCoreError as error:
        raise DependencyFailure(f"Could not {what}: {service} was unreachable.") from error


def conditional_write(what: str, operation: Callable[..., Any], /, **kwargs: Any) -> Any | None:
    """A DynamoDB write with a ConditionExpression: its answer, or None when the condition was
    not met (nothing was changed). Any other failure is raised as by `call`."""
    try:
        return call("DynamoDB", what, operation, **kwargs)
    except DependencyFailure as failure:
        if failure.code == CONDITION_FAILED:
            return None
        raise
