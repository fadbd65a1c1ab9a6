"""Makes moto's SQS long poll return when a message becomes visible, as SQS's does.

moto's ReceiveMessage with WaitTimeSeconds waits on the queue for a second at a time and is woken
only by a new message being sent: a delayed message (DelaySeconds), or one whose visibility
timeout ends, is found only when that second is up. The scheduler's retry queue delivers tasks
through delayed messages, so that second would be lateness AWS does not have. Here the wait ends
at the moment the first such message becomes receivable (sooner than moto's second).
"""

from __future__ import annotations

import functools
from typing import Any

_MARK = "_task_scheduler_visibility"


def wake_long_polls_on_visibility() -> None:
    """Idempotent: patches moto's Queue so a waiting ReceiveMessage wakes at the moment a delayed
    or in-flight message becomes receivable."""
    from moto.sqs.models import Queue

    if getattr(Queue.wait_for_messages, _MARK, False):
        return

    @functools.wraps(Queue.wait_for_messages)
    def wait_for_messages(queue: Any, timeout: float) -> None:
        from moto.core.utils import unix_time_millis

        with queue._messages_lock:
            wait = float(timeout)
            soonest = next_receivable_ms(queue._messages)
            if soonest is not None:
                wait = min(wait, max(0.0, (soonest - unix_time_millis()) / 1000))
            if not queue.messages:
                queue._messages_lock.wait_for(lambda: queue.messages, timeout=wait)

    setattr(wait_for_messages, _MARK, True)
    Queue.wait_for_messages = wait_for_messages  # type: ignore[method-assign]


def next_receivable_ms(messages: list[Any]) -> float | None:
    """The earliest time (epoch milliseconds) at which one of `messages` that cannot be received
    now (delayed, or in flight) can be; None when there is none. moto counts a message visible
    from the millisecond after its `visible_at`, and delayed until `delayed_until`."""
    times = [max(m.visible_at + 1, m.delayed_until) for m in messages]
    return min(times) if times else None
