"""Worker processes (local.workers): a function runs in another process with its template
environment, events and results cross as JSON, a function's error comes back as its type and
message, and stopping leaves no worker behind."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local.functions import load_functions
from local.stack import LocalConfig
from local.worker_process import FunctionsSpec
from local.workers import FunctionError, WorkerPool

ARN = "arn:aws:lambda:us-east-1:123456789012:function:local-Fn"
HANDLER = """\
import os

GREETING = os.environ["GREETING"]  # read at import, as settings are


def handler(event, context):
    if event.get("fail"):
        raise ValueError("asked to fail")
    return {"greeting": GREETING, "event": event, "name": context.function_name, "pid": os.getpid()}
"""


def _unavailable(*_: Any) -> tuple[int, dict[str, str], bytes]:
    return 500, {}, b"{}"


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[WorkerPool]:
    (tmp_path / "app.py").write_text(HANDLER, encoding="utf-8")
    template = {
        "Resources": {
            "Fn": {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    "CodeUri": str(tmp_path),
                    "Handler": "app.handler",
                    "Environment": {"Variables": {"GREETING": "hello"}},
                },
            }
        }
    }
    spec = FunctionsSpec(template, {}, {"Fn": ARN}, {}, "http://127.0.0.1:9")
    workers = WorkerPool(2, spec, _unavailable)
    workers.start()
    try:
        yield workers
    finally:
        workers.stop()


def _function(pool: WorkerPool) -> Any:
    template = {
        "Resources": {
            "Fn": {"Type": "AWS::Serverless::Function", "Properties": {"Handler": "app.handler"}}
        }
    }
    return load_functions(template, {}, {"Fn": ARN}, {}, 4, pool.handler)["Fn"]


def test_a_function_runs_in_a_worker_with_its_environment(pool: WorkerPool) -> None:
    result = _function(pool).invoke({"n": 1, "nested": {"list": [1, "two"]}})
    assert result["greeting"] == "hello"
    assert result["event"] == {"n": 1, "nested": {"list": [1, "two"]}}
    assert result["name"] == "local-Fn"
    assert result["pid"] in pool.pids
    assert result["pid"] != os.getpid()


def test_a_function_error_comes_back_with_its_type_and_message(pool: WorkerPool) -> None:
    with pytest.raises(FunctionError, match="ValueError: asked to fail") as raised:
        _function(pool).invoke({"fail": True})
    assert raised.value.error_type == "ValueError"


def test_stopping_leaves_no_worker_running(pool: WorkerPool) -> None:
    pids = pool.pids
    pool.stop()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in pids):
        time.sleep(0.1)
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)


def test_workers_default_to_one_per_core_and_zero_runs_in_process() -> None:
    assert LocalConfig.from_env({}).workers == (os.cpu_count() or 1)
    assert LocalConfig.from_env({"LOCAL_WORKERS": "0"}).workers == 0
    assert LocalConfig().workers == 0
