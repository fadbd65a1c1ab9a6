"""SQS: the retry queue (durable waits between attempts: the next attempt is a delayed message,
so no Lambda sleeps through a backoff) and the dead-letter queue (tasks that ended `failed`)."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

from task_scheduler import aws
from task_scheduler.timing import format_utc
from task_scheduler.triggers import execute_input

# SQS delays a message at most 15 minutes; a longer wait is a chain of such messages.
MAX_DELAY_SECONDS = 900


class RetryQueue:
    def __init__(self, client: Any, queue_url: str) -> None:
        self._client = client
        self._url = queue_url

    def arm_at(self, task_id: str, at: datetime, now: datetime) -> None:
        """Delivers `{"task_id": ...}` to the execute function at `at`, or after 15 minutes if
        that is sooner (the execute side then sends it on again)."""
        delay = min(MAX_DELAY_SECONDS, max(0, math.ceil((at - now).total_seconds())))
        aws.call(
            "SQS",
            "queue the task's next attempt",
            self._client.send_message,
            QueueUrl=self._url,
            MessageBody=execute_input(task_id),
            DelaySeconds=delay,
        )


class DeadLetterQueue:
    def __init__(self, client: Any, queue_url: str) -> None:
        self._client = client
        self._url = queue_url

    def send(
        self, task_id: str, run_at: str, error: str | None, attempts: int, now: datetime
    ) -> None:
        body = {
            "task_id": task_id,
            "status": "failed",
            "run_at": run_at,
            "error": error,
            "attempts": attempts,
            "failed_at": format_utc(now),
        }
        aws.call(
            "SQS",
            "send the failed task to the dead-letter queue",
            self._client.send_message,
            QueueUrl=self._url,
            MessageBody=json.dumps(body),
        )
