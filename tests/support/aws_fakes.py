"""Small recording fakes of boto3 clients, for the adapters' unit tests."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError


def client_error(code: str, operation: str = "Operation") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} (test)"}}, operation)


class FakeClient:
    """Records every call as (operation, kwargs) in `calls` (shared between fakes, to check the
    order across clients); `fail[operation]` is raised instead of answering, and
    `answers[operation]` is returned (default: an empty answer). Operations are the boto3
    method names listed in `operations`."""

    operations: tuple[str, ...] = ()

    def __init__(self, calls: list[tuple[str, dict[str, Any]]]) -> None:
        self.calls = calls
        self.fail: dict[str, Exception] = {}
        self.answers: dict[str, Any] = {}

    def __getattr__(self, operation: str) -> Any:
        if operation not in self.operations:
            raise AttributeError(operation)

        def call(**kwargs: Any) -> Any:
            self.calls.append((operation, kwargs))
            if operation in self.fail:
                raise self.fail[operation]
            return self.answers.get(operation, {})

        return call


class FakeLambda(FakeClient):
    operations = ("invoke",)


class FakeScheduler(FakeClient):
    operations = ("create_schedule", "update_schedule", "delete_schedule")


class AnswerLostClient:
    """Sends each named write twice, as a retry after a lost answer does, and reports the
    outcome of the second try."""

    def __init__(self, client: Any, operations: set[str]) -> None:
        self._client = client
        self._operations = operations

    def __getattr__(self, name: str) -> Any:
        operation = getattr(self._client, name)
        if name not in self._operations:
            return operation

        def twice(**kwargs: Any) -> Any:
            operation(**kwargs)
            return operation(**kwargs)

        return twice
