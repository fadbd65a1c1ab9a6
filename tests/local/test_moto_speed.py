"""local.moto_speed makes moto cheaper without changing an answer: the same UpdateItem calls
(every kind of action, repeated expression texts with new values, conditions, errors) answer
the same with and without it. Each side runs in its own interpreter, since the changes patch
moto's classes for the life of the process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _answers(*flags: str) -> dict[str, list[Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.moto_answers", *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout)


def test_cheaper_moto_answers_as_moto_does() -> None:
    answers, cheaper = _answers(), _answers("--cheaper")
    assert cheaper == answers
    plain = answers["dynamodb"]
    # The run reached what it is for: answers, refusals and errors of several kinds.
    codes = {a["error"]["Code"] for a in plain if isinstance(a, dict) and "error" in a}
    assert codes == {"ConditionalCheckFailedException", "ValidationException"}
    assert sum(1 for a in plain if isinstance(a, dict) and a.get("Attributes")) >= 16
    assert any("Items" in a for a in plain if isinstance(a, dict))
    assert answers["sqs"] == [
        ["delay 0", "delay 0"],
        {
            "ApproximateNumberOfMessages": "1",
            "ApproximateNumberOfMessagesDelayed": "2",
            "ApproximateNumberOfMessagesNotVisible": "2",
        },
        ["delay 0", "delay 0"],
        "deleted",
        "deleted",  # again: accepted
        "deleted",  # by a handle from before the message was received again
        "ReceiptHandleIsInvalid",
        {
            "ApproximateNumberOfMessages": "0",
            "ApproximateNumberOfMessagesDelayed": "2",
            "ApproximateNumberOfMessagesNotVisible": "1",
        },
        [],
        "1",
    ]


def test_the_changes_are_made_once() -> None:
    from moto.core.serialize import BaseJSONSerializer
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser, Node
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser
    from moto.sqs.models import Queue

    from local.moto_speed import make_moto_cheaper

    def patched() -> tuple[object, ...]:
        return (
            DepthFirstTraverser.traverse_node_recursively,
            Node.__deepcopy__,  # type: ignore[attr-defined]
            UpdateExpressionParser.__dict__["make"].__func__,
            BaseJSONSerializer._serialize_result,
            Queue.approximate_number_of_messages_delayed,
            Queue.delete_message,
        )

    make_moto_cheaper()
    first = patched()
    make_moto_cheaper()
    assert patched() == first
