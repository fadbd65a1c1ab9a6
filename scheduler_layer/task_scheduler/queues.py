"""SQS: the queue that carries occurrences over their last minutes and seconds (a delayed message
per occurrence due within 15 minutes, the hop of an early trigger, the wait before a retry: no
Lambda sleeps through any of them), and the dead-letter queue (tasks that ended `failed`)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from task_scheduler import aws
from task_scheduler.execute_events import execute_input
from task_scheduler.timing import format_utc, queue_delay_seconds


class RetryQueue:
    """The template's RetryQueue: it began with retries, and now carries every wait."""

    def __init__(self, client: Any, queue_url: str) -> None:
        self._client = client
        self._url = queue_url

    def arm_at(self, task_id: str, at: datetime, now: datetime) -> None:
        """Delivers the occurrence `at` to the execute function at most a second before it, or
        after 15 minutes if that is sooner (the execute side then sends it on again)."""
        self._send(task_id, at, queue_delay_seconds(at, now))

    def redeliver(self, task_id: str, due: datetime, delay_seconds: int) -> None:
        self._send(task_id, due, delay_seconds)

    def _send(self, task_id: str, due: datetime, delay_seconds: int) -> None:
        aws.call(
            "SQS",
            "queue the task's next occurrence",
            self._client.send_message,
            QueueUrl=self._url,
            MessageBody=execute_input(task_id, due),
            DelaySeconds=delay_seconds,
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
