"""The action registry. An action is one module with two roles: the API function validates its
payload when a task is scheduled (`ActionValidator`), the execute function performs it when the
task runs (`ActionPerformer`). Adding one means a new module and one line in each builder below.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from task_scheduler.errors import FieldProblem, InvalidRequest, quote

if TYPE_CHECKING:
    from task_scheduler.actions.webhook import WebhookDeliverer
    from task_scheduler.addresses import Resolver


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


class ActionValidator(Protocol):
    name: str

    def validate(self, payload: Any) -> Any:
        """The action's typed request from a payload, or InvalidRequest with fields named
        `payload.<name>`."""
        ...


class ActionPerformer(Protocol):
    name: str

    def execute(self, payload: Any, context: ActionContext) -> ActionResult: ...


class ActionRegistry[ActionRole: (ActionValidator, ActionPerformer)]:
    """The actions of one role, by name."""

    def __init__(self, actions: list[ActionRole]) -> None:
        self._actions = {action.name: action for action in actions}
        self._supported = ", ".join(f'"{name}"' for name in sorted(self._actions))

    @property
    def names(self) -> list[str]:
        return sorted(self._actions)

    def get(self, name: object) -> ActionRole:
        """The action called `name`, or InvalidRequest naming `action` and the supported ones."""
        if name is None:
            raise InvalidRequest(
                [FieldProblem("action", f"is required (supported: {self._supported})")]
            )
        if not isinstance(name, str) or name not in self._actions:
            raise InvalidRequest(
                [
                    FieldProblem(
                        "action", f"{_show(name)} is not supported (supported: {self._supported})"
                    )
                ]
            )
        return self._actions[name]


def _show(value: object) -> str:
    """`value` as the client wrote it, in JSON, quoted (at most 200 characters)."""
    return quote(json.dumps(value, ensure_ascii=False, default=repr))


def validators(
    *, allow_loopback: bool, resolver: Resolver | None = None
) -> ActionRegistry[ActionValidator]:
    """What the API function checks payloads with. `resolver` (host, port → addresses) defaults
    to the system's DNS."""
    from task_scheduler.actions.webhook import WebhookValidator
    from task_scheduler.addresses import system_resolver

    return ActionRegistry([WebhookValidator(allow_loopback, resolver or system_resolver)])


def performers(*, webhook_deliverer: WebhookDeliverer) -> ActionRegistry[ActionPerformer]:
    """What the execute function runs tasks with."""
    from task_scheduler.actions.webhook import WebhookPerformer

    return ActionRegistry([WebhookPerformer(webhook_deliverer)])
