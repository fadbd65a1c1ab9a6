"""Settings, read once from the environment into frozen objects. Missing ones fail loudly."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

# A rule is named "<prefix>-<uuid4>": EventBridge allows 64 characters; a UUID takes 36.
MAX_RULE_PREFIX_LENGTH = 64 - 36 - 1
_RULE_PREFIX = re.compile(r"^[A-Za-z0-9._-]+$")


class ConfigurationError(RuntimeError):
    """The environment is incomplete or wrong: a deployment defect, not a client error."""


def _required(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise ConfigurationError(f"environment variable {name} is required and not set")
    return value


def _int(environ: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigurationError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _flag(environ: Mapping[str, str], name: str) -> bool:
    raw = environ.get(name, "").strip().lower()
    if raw in ("", "false", "0", "no"):
        return False
    if raw in ("true", "1", "yes"):
        return True
    raise ConfigurationError(f"{name} must be true or false, got {raw!r}")


def _rule_prefix(environ: Mapping[str, str]) -> str:
    prefix = _required(environ, "RULE_NAME_PREFIX")
    if len(prefix) > MAX_RULE_PREFIX_LENGTH or not _RULE_PREFIX.match(prefix):
        raise ConfigurationError(
            f"RULE_NAME_PREFIX must be 1-{MAX_RULE_PREFIX_LENGTH} characters of A-Z a-z 0-9 . _ -"
        )
    return prefix


RULES_BACKEND = "rules"
SCHEDULER_BACKEND = "scheduler"
TRIGGER_BACKENDS = (RULES_BACKEND, SCHEDULER_BACKEND)


def _trigger_backend(environ: Mapping[str, str]) -> str:
    value = environ.get("TRIGGER_BACKEND", "").strip() or RULES_BACKEND
    if value not in TRIGGER_BACKENDS:
        raise ConfigurationError(
            f"TRIGGER_BACKEND must be one of {', '.join(TRIGGER_BACKENDS)}, got {value!r}"
        )
    return value


def _for_scheduler(environ: Mapping[str, str], backend: str, name: str) -> str | None:
    """A variable only the `scheduler` backend uses: required with it, ignored without."""
    return _required(environ, name) if backend == SCHEDULER_BACKEND else None


@dataclass(frozen=True)
class CommonSettings:
    table_name: str
    rule_name_prefix: str
    # How long finished tasks stay readable before DynamoDB's TTL removes them.
    finished_task_retention_days: int
    # Local mode only: lets webhooks target 127.0.0.1 (the template never sets it).
    allow_loopback_targets: bool

    @staticmethod
    def _common(environ: Mapping[str, str]) -> dict:
        return {
            "table_name": _required(environ, "TABLE_NAME"),
            "rule_name_prefix": _rule_prefix(environ),
            "finished_task_retention_days": _int(
                environ, "FINISHED_TASK_RETENTION_DAYS", 30, 1, 3650
            ),
            "allow_loopback_targets": _flag(environ, "ALLOW_LOOPBACK_TARGETS"),
        }


@dataclass(frozen=True)
class TriggerSettings:
    """What arming an occurrence needs, in both functions (`arming`): the queue for the near
    ones, the backend's rule or schedule for the far ones, both aimed at the execute function."""

    execute_function_arn: str
    retry_queue_url: str  # delayed messages: near occurrences, hops, waits between attempts
    backend: str = RULES_BACKEND  # `rules` or `scheduler` (EventBridge Scheduler)
    rule_name_prefix: str = ""
    # With `scheduler`: the stack's schedule group, the role the schedules invoke the execute
    # function with, and the dead-letter queue for events they could not deliver.
    schedule_group_name: str | None = None
    scheduler_role_arn: str | None = None
    dead_letter_queue_arn: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str], execute_function_arn: str) -> TriggerSettings:
        backend = _trigger_backend(environ)
        return cls(
            execute_function_arn=execute_function_arn,
            retry_queue_url=_required(environ, "RETRY_QUEUE_URL"),
            backend=backend,
            rule_name_prefix=_rule_prefix(environ),
            schedule_group_name=_for_scheduler(environ, backend, "SCHEDULE_GROUP_NAME"),
            scheduler_role_arn=_for_scheduler(environ, backend, "SCHEDULER_ROLE_ARN"),
            dead_letter_queue_arn=_for_scheduler(environ, backend, "DEAD_LETTER_QUEUE_ARN"),
        )


@dataclass(frozen=True)
class ApiSettings(CommonSettings):
    """What the API function (schedule_task) needs."""

    triggers: TriggerSettings

    @property
    def trigger_backend(self) -> str:
        return self.triggers.backend

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ApiSettings:
        return cls(
            **cls._common(environ),
            triggers=TriggerSettings.from_env(environ, _required(environ, "EXECUTE_FUNCTION_ARN")),
        )


@dataclass(frozen=True)
class ExecutorSettings(CommonSettings):
    """What the execute function needs."""

    webhook_secret_arn: str  # Secrets Manager secret holding the signing key
    dead_letter_queue_url: str  # tasks that ended `failed`
    triggers: TriggerSettings  # to arm a recurring task's next occurrence

    @property
    def trigger_backend(self) -> str:
        return self.triggers.backend

    @property
    def retry_queue_url(self) -> str:
        return self.triggers.retry_queue_url

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ExecutorSettings:
        # A function cannot name its own ARN in the template (a circular reference): the
        # template gives the stack's `arn:...:function:` prefix, Lambda gives the name.
        own_arn = _required(environ, "FUNCTION_ARN_PREFIX") + _required(
            environ, "AWS_LAMBDA_FUNCTION_NAME"
        )
        return cls(
            **cls._common(environ),
            webhook_secret_arn=_required(environ, "WEBHOOK_SECRET_ARN"),
            dead_letter_queue_url=_required(environ, "DEAD_LETTER_QUEUE_URL"),
            triggers=TriggerSettings.from_env(environ, own_arn),
        )


@dataclass(frozen=True)
class ReconcilerSettings(CommonSettings):
    """What the reconcile function needs."""

    retry_queue_url: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ReconcilerSettings:
        return cls(**cls._common(environ), retry_queue_url=_required(environ, "RETRY_QUEUE_URL"))
