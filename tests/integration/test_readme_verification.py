"""The README's own verification snippet, run literally against real deliveries: every delivery
the scheduler sends verifies with it, with a body or without one (a task with no `data`)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.integration.conftest import SIGNING_SECRET, Handlers, body_of, on_both_backends
from tests.support.lambda_runtime import ROOT
from tests.support.receiver import ReceivedRequest, Receiver
from tests.support.timing import seconds_from_now

pytestmark = on_both_backends


def readme_snippet() -> str:
    """The one Python block of the README that verifies a delivery."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    (snippet,) = [block for block in blocks if "Webhook(" in block]
    return snippet


def run_snippet(request: ReceivedRequest) -> dict[str, Any]:
    """Runs the snippet as a receiver would, with the raw body and headers it got."""
    namespace: dict[str, Any] = {
        "SIGNING_SECRET": SIGNING_SECRET,
        "request_body": request.body,
        "request_headers": dict(request.headers),
    }
    exec(readme_snippet(), namespace)  # noqa: S102 - the README's own text, by design
    return namespace


def deliver(handlers: Handlers, receiver: Receiver, payload: dict[str, Any]) -> ReceivedRequest:
    body = {"action": "webhook", "payload": payload, "run_at": seconds_from_now(1)}
    response = handlers.api("POST", "/schedule-task", body)
    assert response["statusCode"] == 201, response["body"]
    assert handlers.run(body_of(response)["task_id"])["outcome"] == "completed"
    (request,) = receiver.requests
    return request


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"data": {"msg": "Hello from Lambda"}}, {"msg": "Hello from Lambda"}),
        ({"data": [1, "two", None]}, [1, "two", None]),
        ({"data": None}, None),
        ({"method": "GET"}, None),  # no `data`: no body at all
        ({"method": "DELETE"}, None),
    ],
)
def test_every_delivery_verifies_with_the_readme_snippet(
    handlers: Handlers, receiver: Receiver, payload: dict[str, Any], expected: Any
) -> None:
    request = deliver(handlers, receiver, {"url": f"{receiver.url}/hook", **payload})
    assert run_snippet(request)["payload"] == expected


def test_the_readme_snippet_refuses_a_forged_delivery(
    handlers: Handlers, receiver: Receiver
) -> None:
    request = deliver(handlers, receiver, {"url": f"{receiver.url}/hook", "method": "GET"})
    forged = ReceivedRequest(
        request.method, request.path, request.headers, b'{"msg":"forged"}', request.received_at
    )
    with pytest.raises(Exception, match=r"(?i)signature"):
        run_snippet(forged)
