"""Makes moto's DynamoDB keep a promise real DynamoDB makes: a conditional write is atomic.

moto checks a write's condition and applies the write as two separate steps without a lock, so
two threads can both pass `status = scheduled` and both "claim" a task. DynamoDB never allows
that, and the scheduler relies on it (a duplicate delivery must not call a webhook twice). Local
mode and the tests run moto in this process, so its write operations are serialised here.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

_LOCK = threading.RLock()
_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item")
_MARK = "_task_scheduler_atomic"


def make_dynamodb_writes_atomic() -> None:
    """Idempotent: wraps moto's DynamoDB backend write methods in one process-wide lock."""
    from moto.dynamodb.models import DynamoDBBackend

    for name in _WRITES:
        method = getattr(DynamoDBBackend, name)
        if getattr(method, _MARK, False):
            continue
        setattr(DynamoDBBackend, name, _locked(method))


def _locked(method: Any) -> Any:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return method(*args, **kwargs)

    setattr(wrapper, _MARK, True)
    return wrapper
