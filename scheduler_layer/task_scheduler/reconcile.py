"""The reconciler: nothing lost. Every few minutes it looks for tasks that should have run and
did not (a lost trigger, a retry message that never came) and for tasks left `running` by an
execution that died, and hands each to the execute function again through the retry queue.
The execute side decides what to do (run it late, or record the interrupted run as failed) and
claims each occurrence once, so running the reconciler twice, or alongside a late trigger, is
harmless."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from aws_lambda_powertools import Logger

from task_scheduler.clock import Clock
from task_scheduler.model import TaskStatus
from task_scheduler.ports import OverdueTasks, RetryArming
from task_scheduler.timing import format_utc, parse_stored_utc

logger = Logger(child=True)

# Later than this past `next_run_at`, a `scheduled` task has lost its trigger (a rule fires
# within its minute, a retry message within seconds of its delay).
OVERDUE_AFTER = timedelta(minutes=3)


@dataclass(frozen=True)
class ReconcileReport:
    redispatched: int
    still_running: int


class Reconciler:
    def __init__(self, due: OverdueTasks, retries: RetryArming, clock: Clock) -> None:
        self._due = due
        self._retries = retries
        self._clock = clock

    def run(self) -> ReconcileReport:
        now = self._clock.now()
        before = format_utc(now - OVERDUE_AFTER)
        redispatched = still_running = 0
        for entry in self._due.overdue(before):
            if entry.status is TaskStatus.RUNNING and not entry.is_interrupted(now):
                still_running += 1  # a long occurrence still in progress
                continue
            if entry.status not in (TaskStatus.SCHEDULED, TaskStatus.RUNNING):
                continue
            # Now, for the occurrence it is stuck on (the execute side claims exactly that one).
            self._retries.redeliver(entry.task_id, parse_stored_utc(entry.next_run_at), 0)
            redispatched += 1
            logger.warning(
                "task overdue; handing it to the execute function again",
                extra={
                    "task_id": entry.task_id,
                    "status": entry.status.value,
                    "next_run_at": entry.next_run_at,
                },
            )
        logger.info(
            "reconciled", extra={"redispatched": redispatched, "still_running": still_running}
        )
        return ReconcileReport(redispatched, still_running)
