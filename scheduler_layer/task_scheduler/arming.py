"""How an occurrence is armed, the same on both backends and in both functions: straight into the
queue when it is near, otherwise a rule or schedule that fires shortly before it (the reasons are
in `timing`). Also what removing a task's trigger means for each kind of trigger."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from task_scheduler.model import TriggerKind
from task_scheduler.ports import RetryArming
from task_scheduler.timing import within_queue_horizon


class FarTrigger(Protocol):
    """A backend's trigger for an occurrence beyond the queue's reach: a rule or a schedule."""

    kind: TriggerKind
    removes_itself_after_firing: bool

    def arm(self, task_id: str, due: datetime) -> None:
        """Fires shortly before `due` with `due` in its event; re-arming moves it on. Raises
        DependencyFailure, having left nothing that fires with a wrong event."""
        ...

    def disarm(self, task_id: str) -> None:
        """Removes it; one already gone is not an error."""
        ...


class OccurrenceArming:
    def __init__(self, far: FarTrigger, queue: RetryArming) -> None:
        self._far = far
        self._queue = queue

    @property
    def far_kind(self) -> TriggerKind:
        return self._far.kind

    def arm(
        self, task_id: str, due: datetime, now: datetime, current: TriggerKind | None = None
    ) -> TriggerKind:
        """Makes the execute function run the occurrence `due` within a second after it; returns
        the kind of trigger the task now has (`current`: the one it had). A queued message cannot
        be taken back: undone, it finds its task gone or changed and does nothing."""
        if within_queue_horizon(due, now):
            self._queue.arm_at(task_id, due, now)
            if current is self._far.kind and not self._far.removes_itself_after_firing:
                return current  # its rule stays (matching a past minute) until the task ends
            return TriggerKind.QUEUE
        self._far.arm(task_id, due)
        return self._far.kind

    def disarm(self, task_id: str, kind: TriggerKind | None) -> None:
        """Removes the rule or schedule the task may have; a queued message has nothing to remove
        (the claim refuses it)."""
        if kind not in (TriggerKind.QUEUE, TriggerKind.DIRECT):
            self._far.disarm(task_id)

    def release(self, task_id: str, kind: TriggerKind | None) -> None:
        """After a task's last occurrence has fired: removes what does not go by itself (a rule,
        which would count against the quota forever)."""
        if not self._far.removes_itself_after_firing:
            self.disarm(task_id, kind)

    def kind_after_failed_arm(self, current: TriggerKind | None) -> TriggerKind:
        """A failed rule may have stayed (it is removed with its task); a schedule that was
        created all the same fires once and deletes itself."""
        if self._far.removes_itself_after_firing:
            return TriggerKind.QUEUE
        return self._far.kind
