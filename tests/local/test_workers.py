"""Worker processes (local.workers): a function runs in another process with its template
environment, events and results cross as JSON, a function's error comes back as its type and
message, and stopping leaves no worker behind."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
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


AWS_HANDLER = """\
import os

import boto3

client = boto3.client(
    "dynamodb",
    region_name="us-east-1",
    endpoint_url=os.environ["ENDPOINT"],
    aws_access_key_id="local",
    aws_secret_access_key="local",
)


def handler(event, context):
    return client.get_item(TableName="t", Key={"pk": {"S": event["key"]}})["Item"]["pk"]["S"]
"""
ENDPOINT = "http://127.0.0.1:9"


class EchoingMoto:
    """Stands in for moto's dispatch: answers a GetItem with the key it asked for, and notes how
    many calls it was in at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inside = 0
        self.most_at_once = 0
        self.calls = 0
        self.authorizations: set[str] = set()

    def __call__(
        self, service: str, method: str, url: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self._inside += 1
            self.calls += 1
            self.authorizations.add(headers["Authorization"])
            self.most_at_once = max(self.most_at_once, self._inside)
        time.sleep(0.002)  # calls served side by side would overlap here
        key = json.loads(body)["Key"]["pk"]["S"]
        with self._lock:
            self._inside -= 1
        item = json.dumps({"Item": {"pk": {"S": key}}}).encode()
        return 200, {"Content-Type": "application/x-amz-json-1.0"}, item


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


def test_workers_aws_calls_each_get_their_own_answer_served_one_at_a_time(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(AWS_HANDLER, encoding="utf-8")
    properties = {
        "CodeUri": str(tmp_path),
        "Handler": "app.handler",
        "Environment": {"Variables": {"ENDPOINT": ENDPOINT}},
    }
    template = {
        "Resources": {"Fn": {"Type": "AWS::Serverless::Function", "Properties": properties}}
    }
    moto = EchoingMoto()
    workers = WorkerPool(2, FunctionsSpec(template, {}, {"Fn": ARN}, {}, ENDPOINT), moto)
    workers.start()
    try:
        function = load_functions(
            {"Resources": {"Fn": {"Type": "AWS::Serverless::Function", "Properties": {}}}},
            {},
            {"Fn": ARN},
            {},
            32,
            workers.handler,
        )["Fn"]
        keys = [f"task-{n}" for n in range(64)]
        with ThreadPoolExecutor(max_workers=32) as callers:
            answers = list(callers.map(lambda key: function.invoke({"key": key}), keys))
    finally:
        workers.stop()
    assert answers == keys
    assert moto.calls == len(keys)
    # moto's state is served by one thread in the main process: never two calls at once.
    assert moto.most_at_once == 1
    # Signed with the scope moto reads, and no signature computed (local.botocore_speed).
    assert {each.split(", Signature=")[1] for each in moto.authorizations} == {"0" * 64}
    assert all("Credential=local/" in each for each in moto.authorizations)
    assert all("/us-east-1/dynamodb/aws4_request" in each for each in moto.authorizations)


def test_the_workers_sockets_are_in_a_directory_only_this_user_can_enter(pool: WorkerPool) -> None:
    # What keeps other users' processes off the connections (they carry no authkey).
    sockets = Path(pool.socket_directory)
    assert sockets.stat().st_mode & 0o777 == 0o700
    assert sockets.stat().st_uid == os.getuid()
    assert {path.name for path in sockets.iterdir()} >= {"main", "worker-0", "worker-1"}


def test_the_aws_server_serves_a_connection_added_after_another_one_closed() -> None:
    """A worker thread's connection that ends is dropped from the server's selector, so a new
    connection that gets its file number is served, not refused as already registered."""
    import socket
    from multiprocessing.connection import Connection

    from local.workers import _AwsServer

    moto = EchoingMoto()
    server = _AwsServer(moto)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    body = json.dumps({"Key": {"pk": {"S": "k"}}}).encode()
    try:
        for round_ in range(3):
            ours, theirs = socket.socketpair()
            caller, served = Connection(ours.detach()), Connection(theirs.detach())
            server.add(served)
            caller.send(("dynamodb", "POST", "https://x/", {"Authorization": "a"}, body))
            assert caller.poll(10), f"round {round_}: no answer"
            assert json.loads(caller.recv()[2]) == {"Item": {"pk": {"S": "k"}}}
            caller.close()  # the worker thread is gone: the server closes its end
            deadline = time.monotonic() + 10
            while not served.closed and time.monotonic() < deadline:
                time.sleep(0.01)
            assert served.closed
    finally:
        server.stop()
        thread.join(timeout=5)
    assert moto.calls == 3
