"""The action registry. An action is one module: it validates its payload when a task is scheduled
and performs it when the task runs. Adding one means a new module and one line in `build_registry`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from task_scheduler.errors import FieldProblem, InvalidRequest


@dataclass(frozen=True)
class ActionContext:
    """What an action knows about the run it performs."""

    task_id: str
    run_id: str  # stable across retries of one run (a webhook's `webhook-id`)
    attempt: int  # 1 for the first attempt of a run


@dataclass(frozen=True)
class ActionResult:
    succeeded: bool
    duration_ms: int
    status_code: int | None = None
    error: str | None = None
    # Worth trying again later (a timeout, a 5xx, ...); meaningless when `succeeded`.
    retryable: bool = False
    retry_after_seconds: float | None = None
    response_excerpt: str | None = None


class Action(Protocol):
    name: str

    def validate(self, payload: Any) -> Any:
        """Checks a payload, raising InvalidRequest with fields named `payload.<name>`."""
        ...

    def execute(self, payload: Any, context: ActionContext) -> ActionResult: ...


class ActionRegistry:
    def __init__(self, actions: list[Action]) -> None:
        self._actions = {action.name: action for action in actions}

    @property
    def names(self) -> list[str]:
        return sorted(self._actions)

    def get(self, name: object) -> Action:
        """The action called `name`, or InvalidRequest naming `action` and the supported ones."""
        supported = ", ".join(f'"{n}"' for n in self.names)
        if name is None:
            raise InvalidRequest([FieldProblem("action", f"is required (supported: {supported})")])
        if not isinstance(name, str) or name not in self._actions:
            raise InvalidRequest(
                [FieldProblem("action", f"{_show(name)} is not supported (supported: {supported})")]
            )
        return self._actions[name]


def _show(value: object) -> str:
    text = repr(value) if not isinstance(value, str) else f'"{value}"'
    return text if len(text) <= 40 else text[:37] + "..."


def build_registry(
    *, allow_loopback: bool, resolver: Any = None, webhook_deliverer: Any = None
) -> ActionRegistry:
    """Every action the scheduler supports. The API side passes no deliverer: it only validates.
    `resolver` (host, port → addresses) defaults to the system's DNS."""
    from task_scheduler.actions.webhook import WebhookAction
    from task_scheduler.addresses import system_resolver

    return ActionRegistry(
        [WebhookAction(webhook_deliverer, allow_loopback, resolver or system_resolver)]
    )
