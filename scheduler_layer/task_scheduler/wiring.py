"""Each function's objects, built from its settings and its AWS clients in one place. Handlers
create the clients once per container (module scope, reused while warm) and call these; tests
pass clients of their own (moto's, or ones that inject faults)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from task_scheduler import aws
from task_scheduler.clock import Clock, SystemClock
from task_scheduler.schedule_request import ScheduleCommand, parse_schedule_body
from task_scheduler.settings import (
    RULES_BACKEND,
    SCHEDULER_BACKEND,
    ApiSettings,
    ExecutorSettings,
    ReconcilerSettings,
    TriggerSettings,
)

# Each builder imports what its function uses, so no function's cold start pays for another's
# modules (the execute function's HTTP delivery above all).
if TYPE_CHECKING:
    from task_scheduler.actions import ActionRegistry, ActionValidator
    from task_scheduler.addresses import Resolver
    from task_scheduler.arming import OccurrenceArming
    from task_scheduler.execution import Executor
    from task_scheduler.idempotency import IdempotentCreates
    from task_scheduler.reconcile import Reconciler
    from task_scheduler.scheduling import Scheduler
    from task_scheduler.task_listing import TaskListing


def _trigger_client(trigger_backend: str) -> dict[str, Any]:
    """The client of the backend's triggers: EventBridge for rules, EventBridge Scheduler for
    schedules (only the one in use is created: each costs the cold start a few milliseconds)."""
    if trigger_backend == SCHEDULER_BACKEND:
        return {"events": None, "scheduler": aws.client("scheduler")}
    return {"events": aws.client("events"), "scheduler": None}


@dataclass(frozen=True)
class ApiClients:
    dynamodb: Any
    events: Any  # with the `rules` backend
    sqs: Any  # near occurrences go straight into the queue
    scheduler: Any = None  # with the `scheduler` backend

    @classmethod
    def create(cls, trigger_backend: str = RULES_BACKEND) -> ApiClients:
        return cls(
            dynamodb=aws.client("dynamodb"),
            sqs=aws.client("sqs"),
            **_trigger_client(trigger_backend),
        )


@dataclass(frozen=True)
class ExecuteClients:
    dynamodb: Any
    events: Any  # with the `rules` backend
    sqs: Any  # the retry queue and the dead-letter queue
    secretsmanager: Any
    scheduler: Any = None  # with the `scheduler` backend

    @classmethod
    def create(cls, trigger_backend: str = RULES_BACKEND) -> ExecuteClients:
        return cls(
            dynamodb=aws.client("dynamodb"),
            sqs=aws.client("sqs"),
            secretsmanager=aws.client("secretsmanager"),
            **_trigger_client(trigger_backend),
        )


@dataclass(frozen=True)
class ReconcileClients:
    dynamodb: Any
    sqs: Any

    @classmethod
    def create(cls) -> ReconcileClients:
        return cls(aws.client("dynamodb"), aws.client("sqs"))


@dataclass(frozen=True)
class Api:
    """What the API function's routes use: the edge that turns a body into a command, and the
    service that carries it out."""

    scheduler: Scheduler
    actions: ActionRegistry[ActionValidator]
    clock: Clock
    listing: TaskListing
    idempotent_creates: IdempotentCreates
    # The same scheduler, giving the next task the id given (one an Idempotency-Key reserved).
    scheduler_with_id: Callable[[str], Scheduler]

    def command(self, body: bytes | None, content_type: str | None) -> ScheduleCommand:
        """The request body as a valid command, or the domain error that answers it."""
        return parse_schedule_body(body, content_type).to_command(self.actions, self.clock.now())


def api(
    settings: ApiSettings,
    clients: ApiClients,
    *,
    clock: Clock | None = None,
    new_id: Any = None,
    resolver: Resolver | None = None,
) -> Api:
    from task_scheduler.actions import validators
    from task_scheduler.idempotency import IdempotencyRecords, IdempotentCreates
    from task_scheduler.page_tokens import PageTokens, TableKey
    from task_scheduler.scheduling import Scheduler, new_task_id
    from task_scheduler.storage import TaskStore
    from task_scheduler.task_listing import TaskListing
    from task_scheduler.task_pauses import TaskPauses

    clock = clock or SystemClock()
    store = TaskStore(clients.dynamodb, settings.table_name)
    triggers = _arming(settings.triggers, clients.events, clients.scheduler, clients.sqs)
    pauses = TaskPauses(clients.dynamodb, settings.table_name)

    def scheduler(task_ids: Callable[[], str]) -> Scheduler:
        return Scheduler(
            store,
            triggers,
            clock,
            task_ids,
            retention=timedelta(days=settings.finished_task_retention_days),
            pauses=pauses,
        )

    return Api(
        scheduler=scheduler(new_id or new_task_id),
        scheduler_with_id=lambda task_id: scheduler(lambda: task_id),
        idempotent_creates=IdempotentCreates(
            IdempotencyRecords(clients.dynamodb, settings.table_name), clock, new_task_id
        ),
        actions=validators(allow_loopback=settings.allow_loopback_targets, resolver=resolver),
        clock=clock,
        listing=TaskListing(
            clients.dynamodb,
            settings.table_name,
            PageTokens(TableKey(clients.dynamodb, settings.table_name)),
        ),
    )


def _arming(settings: TriggerSettings, events: Any, scheduler: Any, sqs: Any) -> OccurrenceArming:
    """Both functions arm occurrences the same way, with the backend's far trigger."""
    from task_scheduler.arming import FarTrigger, OccurrenceArming
    from task_scheduler.queues import RetryQueue

    far: FarTrigger
    if settings.backend == SCHEDULER_BACKEND:
        from task_scheduler.schedules import EventBridgeSchedules

        assert settings.schedule_group_name  # required by the settings with this backend
        assert settings.scheduler_role_arn
        assert settings.dead_letter_queue_arn
        far = EventBridgeSchedules(
            scheduler,
            settings.schedule_group_name,
            settings.execute_function_arn,
            settings.scheduler_role_arn,
            settings.dead_letter_queue_arn,
        )
    else:
        from task_scheduler.triggers import EventBridgeRules

        far = EventBridgeRules(events, settings.rule_name_prefix, settings.execute_function_arn)
    return OccurrenceArming(far, RetryQueue(sqs, settings.retry_queue_url))


def executor(
    settings: ExecutorSettings, clients: ExecuteClients, *, clock: Clock | None = None
) -> Executor:
    from task_scheduler.actions import performers
    from task_scheduler.delivery import HttpWebhookDeliverer
    from task_scheduler.execution import Executor
    from task_scheduler.queues import DeadLetterQueue, RetryQueue
    from task_scheduler.signing import SecretsManagerSecret
    from task_scheduler.storage import TaskStore

    deliverer = HttpWebhookDeliverer(
        SecretsManagerSecret(clients.secretsmanager, settings.webhook_secret_arn),
        allow_loopback=settings.allow_loopback_targets,
    )
    return Executor(
        store=TaskStore(clients.dynamodb, settings.table_name),
        triggers=_arming(settings.triggers, clients.events, clients.scheduler, clients.sqs),
        actions=performers(webhook_deliverer=deliverer),
        clock=clock or SystemClock(),
        retention=timedelta(days=settings.finished_task_retention_days),
        retries=RetryQueue(clients.sqs, settings.retry_queue_url),
        dead_letters=DeadLetterQueue(clients.sqs, settings.dead_letter_queue_url),
    )


def reconciler(
    settings: ReconcilerSettings, clients: ReconcileClients, *, clock: Clock | None = None
) -> Reconciler:
    from task_scheduler.due_index import DueIndex
    from task_scheduler.queues import RetryQueue
    from task_scheduler.reconcile import Reconciler

    return Reconciler(
        due=DueIndex(clients.dynamodb, settings.table_name),
        retries=RetryQueue(clients.sqs, settings.retry_queue_url),
        clock=clock or SystemClock(),
    )
